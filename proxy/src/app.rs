//! The running proxy's shared state and its routes: `/health`, `/ready`,
//! `/metrics`, the six proxied prefixes, and a JSON 404 for the rest.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::accounts::{Pool, Readiness, now_ms, readiness, short_id};
use crate::auth::{Authenticator, KeySet};
use crate::config::Config;
use crate::errors::{error_response, json_response};
use crate::forward::{ProxyBody, Target, UpstreamClient, build_client, forward};
use crate::metrics::{AccountIdLabels, AccountLabels, Metrics};
use crate::routing::{FailureKind, Router};
use crate::sessions::Sessions;
use crate::shared::SharedHealth;

/// The route prefixes the Go middleware proxied, all methods.
pub const PROXIED_PREFIXES: [&str; 6] = [
    "/v1/",
    "/api/v1/",
    "/claude/v1/",
    "/gemini/",
    "/openai/claude/v1/",
    "/openai/gemini/v1/",
];

pub struct App {
    pub config: Config,
    pub auth: Authenticator,
    pub pool: Arc<Pool>,
    pub router: Arc<Router>,
    pub shared: Arc<SharedHealth>,
    pub sessions: Sessions,
    pub client: UpstreamClient,
    pub metrics: Arc<Metrics>,
    pub target: Target,
    draining: AtomicBool,
}

impl App {
    pub fn new(config: Config, keys: KeySet) -> Result<Self, String> {
        let target = Target::new(&config.target, &config.target_v1_path)?;
        let client = build_client().map_err(|e| format!("TLS setup failed: {e}"))?;
        Ok(Self {
            auth: Authenticator::new(config.auth.enabled, config.auth.prefix.clone(), keys),
            pool: Arc::new(Pool::new()),
            router: Arc::new(Router::new()),
            shared: Arc::new(SharedHealth::new(
                config.shared_health,
                config.health_key_prefix.clone(),
            )),
            sessions: Sessions::new(config.sticky_session_ttl),
            client,
            metrics: Arc::new(Metrics::new()),
            target,
            draining: AtomicBool::new(false),
            config,
        })
    }

    /// Benches an account here and, with shared health, on every replica.
    pub fn bench(&self, account: &Arc<str>, kind: FailureKind, cooldown: std::time::Duration) {
        let now = now_ms();
        let in_force = self.router.cool_down(account, kind, cooldown, now);
        self.shared.publish_cooldown(account, in_force, now);
    }

    /// From now on `/ready` answers 503, so load balancers stop sending.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
}

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
    path.split('/').any(is_dot_segment)
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

pub async fn handle(
    app: Arc<App>,
    request: Request<Incoming>,
    peer: Option<IpAddr>,
) -> Response<ProxyBody> {
    match route(request.method(), request.uri().path()) {
        Route::Health => json_response(
            StatusCode::OK,
            &serde_json::json!({"status": "ok", "service": "claude-middleware"}),
        ),
        Route::Ready => ready(&app),
        Route::Metrics => metrics(&app),
        Route::Proxied(prefix) => forward(&app, request, peer, prefix).await,
        Route::BadPath => error_response(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "paths with . or .. segments are not accepted",
            None,
        ),
        Route::NotFound => error_response(
            StatusCode::NOT_FOUND,
            "not_found_error",
            "not found: this proxy serves /v1/, /api/v1/, /claude/v1/, /gemini/, /openai/claude/v1/ and /openai/gemini/v1/",
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
    let cooling = app.router.active_cooldowns(now);
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
