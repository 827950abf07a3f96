//! The proxy's environment: the variable names and value syntax are the
//! proxy's own, from the contract crate (contract/src/settings.rs). Tuning variables are set only when the CR
//! sets them, so the proxy's own defaults apply otherwise.

use cmw_contract::settings::*;
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, SecretKeySelector};

use super::{API_KEYS_DIR, API_KEYS_FILE};
use crate::crd::{LogFormat, LogLevel};
use crate::reconcile::validate::ValidatedMiddleware;
use crate::render::CONTAINER_PORT;

pub fn env(v: &ValidatedMiddleware) -> Vec<EnvVar> {
    let mut env = vec![
        plain(PORT.env, CONTAINER_PORT.to_string()),
        plain(TARGET_URL.env, v.target.url.clone()),
        plain(PROXY_TIMEOUT.env, v.target.timeout_seconds.to_string()),
        plain(REDIS_HOST.env, v.redis.host.clone()),
        plain(REDIS_PORT.env, v.redis.port.to_string()),
        plain(REDIS_DB.env, v.redis.db.to_string()),
    ];
    if let Some(secret) = &v.redis.password_secret_ref {
        env.push(EnvVar {
            name: REDIS_PASSWORD.env.into(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: secret.name.clone(),
                    key: secret.key.clone(),
                    optional: Some(false),
                }),
                ..Default::default()
            }),
            value: None,
        });
    }
    env.push(plain(
        MIDDLEWARE_AUTH_ENABLED.env,
        v.auth.enabled.to_string(),
    ));
    env.push(plain(MIDDLEWARE_API_KEY_PREFIX.env, v.auth.prefix.clone()));
    if v.auth.api_keys_secret_ref.is_some() {
        env.push(plain(
            MIDDLEWARE_API_KEYS_FILE.env,
            format!("{API_KEYS_DIR}/{API_KEYS_FILE}"),
        ));
    }
    env.extend(tuning(v));
    env
}

/// Optional settings (mostly `spec.proxy`): only what the CR sets.
fn tuning(v: &ValidatedMiddleware) -> impl Iterator<Item = EnvVar> {
    let p = &v.proxy;
    let log_mode = p.log_level.map(|level| match level {
        LogLevel::Debug => "debug",
        LogLevel::Info => "release",
    });
    let log_format = p.log_format.map(|format| match format {
        LogFormat::Text => "text",
        LogFormat::Json => "json",
    });
    let optional: [(&str, Option<String>); 14] = [
        (GIN_MODE.env, log_mode.map(String::from)),
        (LOG_FORMAT.env, log_format.map(String::from)),
        (TARGET_V1_PATH.env, v.target.v1_path.clone()),
        (
            ACCOUNT_REFRESH_INTERVAL.env,
            p.account_refresh_interval.clone(),
        ),
        (COOLDOWN_RATE_LIMIT.env, p.cooldown_rate_limit.clone()),
        (COOLDOWN_AUTH.env, p.cooldown_auth.clone()),
        (COOLDOWN_SERVER_ERROR.env, p.cooldown_server_error.clone()),
        (COOLDOWN_OVERLOADED.env, p.cooldown_overloaded.clone()),
        (STICKY_SESSION_TTL.env, p.sticky_session_ttl.clone()),
        (MAX_BODY_BYTES.env, p.max_body_bytes.map(|v| v.to_string())),
        (RETRY_ATTEMPTS.env, p.retry_attempts.map(|v| v.to_string())),
        (SHARED_HEALTH.env, p.shared_health.map(|v| v.to_string())),
        (HEALTH_KEY_PREFIX.env, p.health_key_prefix.clone()),
        (DRAIN_TIMEOUT.env, p.drain_timeout.clone()),
    ];
    optional
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| plain(k, v)))
}

fn plain(name: &str, value: String) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value),
        value_from: None,
    }
}
