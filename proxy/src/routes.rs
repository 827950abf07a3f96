//! The route table: `/health`, `/ready`, `/metrics`, the six proxied
//! prefixes, and a JSON 404 for the rest.

use std::time::Instant;

use http::{Method, Response, StatusCode};

use crate::accounts::{Readiness, now_ms, readiness, short_id};
use crate::client_head::ClientHead;
use crate::forward::{ClientBody, Peer, forward};
use crate::metrics::{AccountIdLabels, AccountLabels};
use crate::response::{ProxyBody, error_response, json_response};
use crate::state::App;

pub use cmw_contract::PROXIED_PREFIXES;

/// Which route a path takes.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    Health,
    Ready,
    Metrics,
    Proxied(&'static str),
    /// `.` or `..` segments: refused rather than normalised, so nothing
    /// outside the proxied prefixes can be reached through them.
    BadPath,
    NotFound,
}

pub fn route(method: &Method, path: &str) -> Route {
    let is_get = method == Method::GET || method == Method::HEAD;
    match path {
        "/health" if is_get => return Route::Health,
        "/ready" if is_get => return Route::Ready,
        "/metrics" if is_get => return Route::Metrics,
        _ => {}
    }
    if has_dot_segment(path) {
        return Route::BadPath;
    }
    PROXIED_PREFIXES
        .iter()
        .find(|prefix| path.starts_with(*prefix) || path == prefix.trim_end_matches('/'))
        .map_or(Route::NotFound, |prefix| Route::Proxied(prefix))
}

fn has_dot_segment(path: &str) -> bool {
    // Nearly no path has a `.` or a `%` at all: one scan says so.
    memchr::memchr2(b'.', b'%', path.as_bytes()).is_some() && path.split('/').any(is_dot_segment)
}

/// `.` or `..`, also percent-encoded (`%2e`), checked without allocating.
fn is_dot_segment(segment: &str) -> bool {
    let mut rest = segment.as_bytes();
    let mut dots = 0;
    while let Some(&first) = rest.first() {
        if first == b'.' {
            rest = &rest[1..];
        } else if rest.len() >= 3 && first == b'%' && rest[1] == b'2' && rest[2] | 0x20 == b'e' {
            rest = &rest[3..];
        } else {
            return false;
        }
        dots += 1;
    }
    dots == 1 || dots == 2
}

/// One request's answer. The head and the app are borrowed from the
/// connection: moving the head (about 300 bytes) into each layer's future
/// cost a copy per layer.
pub async fn handle(
    app: &App,
    head: &ClientHead,
    body: ClientBody,
    peer: Option<&Peer>,
) -> Response<ProxyBody> {
    match route(&head.method, head.uri.path()) {
        Route::Health => json_response(
            StatusCode::OK,
            &serde_json::json!({"status": "ok", "service": "claude-middleware"}),
        ),
        Route::Ready => ready(app),
        Route::Metrics => metrics(app),
        Route::Proxied(prefix) => forward(&app.forwarding(), head, body, peer, prefix).await,
        Route::BadPath => error_response(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "paths with . or .. segments are not accepted",
            None,
        ),
        Route::NotFound => error_response(
            StatusCode::NOT_FOUND,
            "not_found_error",
            &format!(
                "not found: this proxy serves {}",
                PROXIED_PREFIXES.join(", ")
            ),
            None,
        ),
    }
}

fn ready(app: &App) -> Response<ProxyBody> {
    if app.is_draining() {
        return json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({"status": "draining"}),
        );
    }
    let snapshot = app.pool.snapshot();
    let status = app.pool.status();
    let accounts = snapshot.as_ref().map_or(0, |s| s.accounts.len());
    match readiness(
        snapshot.as_deref(),
        &status,
        app.config.account_refresh_interval,
        Instant::now(),
    ) {
        Readiness::Ready => json_response(
            StatusCode::OK,
            &serde_json::json!({"status": "ready", "accounts": accounts}),
        ),
        // Still serving from the last good pool: stay in the load balancer,
        // so a Redis outage does not take every replica out at once.
        Readiness::Degraded {
            redis_error,
            pool_age,
        } => json_response(
            StatusCode::OK,
            &serde_json::json!({
                "status": "degraded",
                "accounts": accounts,
                "reason": redis_error,
                "pool_age_seconds": pool_age.as_secs(),
            }),
        ),
        Readiness::NotReady { reason } => json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({"status": "not_ready", "accounts": accounts, "reason": reason}),
        ),
    }
}

fn metrics(app: &App) -> Response<ProxyBody> {
    refresh_state_gauges(app);
    let mut response = Response::new(ProxyBody::full(app.metrics.encode().into()));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// Gauges that describe state rather than events are set at scrape time.
fn refresh_state_gauges(app: &App) {
    let m = &app.metrics;
    let now = now_ms();
    let pool = app.pool.snapshot();
    m.pool_accounts
        .set(pool.as_ref().map_or(0, |p| p.accounts.len() as i64));
    let cooling = app.selector.active_cooldowns(now);
    m.cooling_accounts.set(cooling.len() as i64);
    m.account_healthy.clear();
    for account in pool.iter().flat_map(|p| p.accounts.iter()) {
        let healthy = !cooling.iter().any(|(id, _)| *id == account.id);
        m.account_healthy
            .get_or_create(&AccountIdLabels {
                account: account.short_id().to_string(),
            })
            .set(i64::from(healthy));
    }
    m.account_cooldown_seconds.clear();
    for (id, cooldown) in cooling {
        m.account_cooldown_seconds
            .get_or_create(&AccountLabels {
                account: short_id(&id).to_string(),
                reason: cooldown.kind.as_str(),
            })
            .set((cooldown.until_ms - now) as f64 / 1000.0);
    }
    let age = app
        .pool
        .status()
        .last_success
        .map_or(-1.0, |t| t.elapsed().as_secs_f64());
    m.redis_last_success_age_seconds.set(age);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route(&Method::GET, "/health"), Route::Health);
        assert_eq!(route(&Method::GET, "/ready"), Route::Ready);
        assert_eq!(route(&Method::GET, "/metrics"), Route::Metrics);
        assert_eq!(route(&Method::POST, "/health"), Route::NotFound);
        for prefix in PROXIED_PREFIXES {
            let path = format!("{prefix}messages");
            for method in [
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::DELETE,
                Method::PATCH,
            ] {
                assert_eq!(route(&method, &path), Route::Proxied(prefix));
            }
        }
        assert_eq!(route(&Method::POST, "/v1"), Route::Proxied("/v1/"));
        assert_eq!(route(&Method::POST, "/v2/messages"), Route::NotFound);
        assert_eq!(route(&Method::POST, "/v1x/messages"), Route::NotFound);
        assert_eq!(route(&Method::GET, "/"), Route::NotFound);
        assert_eq!(route(&Method::GET, "/admin"), Route::NotFound);
    }

    #[test]
    fn dot_segments_are_refused() {
        assert_eq!(route(&Method::GET, "/v1/../admin"), Route::BadPath);
        assert_eq!(route(&Method::GET, "/v1/%2e%2e/admin"), Route::BadPath);
        assert_eq!(route(&Method::GET, "/v1/%2E./admin"), Route::BadPath);
        assert_eq!(route(&Method::GET, "/v1/./messages"), Route::BadPath);
        assert_eq!(
            route(&Method::GET, "/v1/messages..json"),
            Route::Proxied("/v1/")
        );
    }
}
