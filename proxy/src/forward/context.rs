//! What forwarding reads and updates, borrowed from the running proxy's
//! state: forwarding sees these parts, never the whole state, so it sits
//! below the state and the route table in the dependency order.

use std::sync::Arc;
use std::time::Duration;

use crate::accounts::{Pool, now_ms};
use crate::auth::Authenticator;
use crate::config::{Config, CooldownDefaults};
use crate::metrics::Metrics;
use crate::selection::{FailureKind, Selector};
use crate::sessions::Sessions;
use crate::shared_health::SharedHealth;

use super::Target;
use crate::upstream::UpstreamClient;

/// The settings forwarding uses, taken from [`Config`] once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardSettings {
    pub max_body_bytes: u64,
    pub retry_attempts: u32,
    /// Between two chunks from the backend, and for its response head.
    pub proxy_timeout: Duration,
    pub cooldowns: CooldownDefaults,
    /// The wait suggested when no account is free and none says when it will be.
    pub no_account_retry_after: Duration,
}

impl ForwardSettings {
    pub fn from_config(config: &Config) -> Self {
        Self {
            max_body_bytes: config.max_body_bytes,
            retry_attempts: config.retry_attempts,
            proxy_timeout: config.proxy_timeout,
            cooldowns: config.cooldowns,
            no_account_retry_after: config.account_refresh_interval,
        }
    }
}

pub struct Forwarding<'a> {
    pub settings: &'a ForwardSettings,
    pub auth: &'a Authenticator,
    pub pool: &'a Pool,
    pub selector: &'a Selector,
    pub shared_health: &'a SharedHealth,
    pub sessions: &'a Sessions,
    pub client: &'a UpstreamClient,
    pub target: &'a Target,
    pub metrics: &'a Arc<Metrics>,
}

impl Forwarding<'_> {
    /// Cools an account down here and, with shared health, on every replica.
    pub fn cool_down(&self, account: &Arc<str>, kind: FailureKind, cooldown: Duration) {
        let now = now_ms();
        let in_force = self.selector.cool_down(account, kind, cooldown, now);
        self.shared_health.publish_cooldown(account, in_force, now);
    }
}
