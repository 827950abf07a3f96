//! The running proxy's shared state: configuration, the account pool, the
//! selection state, shared health, sessions, the upstream client and metrics.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rustls::RootCertStore;

use crate::accounts::Pool;
use crate::auth::{Authenticator, KeySet};
use crate::config::Config;
use crate::forward::{ForwardSettings, Forwarding, Target};
use crate::metrics::Metrics;
use crate::selection::Selector;
use crate::sessions::Sessions;
use crate::shared_health::SharedHealth;
use crate::upstream::UpstreamClient;

pub struct App {
    pub config: Config,
    pub forward_settings: ForwardSettings,
    pub auth: Arc<Authenticator>,
    pub pool: Arc<Pool>,
    pub selector: Arc<Selector>,
    pub shared_health: Arc<SharedHealth>,
    pub sessions: Sessions,
    pub client: UpstreamClient,
    pub metrics: Arc<Metrics>,
    pub target: Target,
    draining: AtomicBool,
}

impl App {
    /// `target_roots`: CA certificates trusted for an https target besides
    /// the Web PKI roots (`TARGET_CA_FILE`).
    pub fn new(config: Config, keys: KeySet, target_roots: RootCertStore) -> Result<Self, String> {
        let target = Target::new(&config.target, &config.target_v1_path)?;
        let client = UpstreamClient::new(&target.origin(), target_roots)
            .map_err(|e| format!("backend client: {e}"))?;
        Ok(Self {
            auth: Arc::new(Authenticator::new(
                config.auth.enabled,
                config.auth.prefix.clone(),
                keys,
            )),
            pool: Arc::new(Pool::new()),
            selector: Arc::new(Selector::new()),
            shared_health: Arc::new(SharedHealth::new(
                config.shared_health,
                config.health_key_prefix.clone(),
            )),
            sessions: Sessions::new(config.sticky_session_ttl),
            client,
            metrics: Arc::new(Metrics::new()),
            target,
            draining: AtomicBool::new(false),
            forward_settings: ForwardSettings::from_config(&config),
            config,
        })
    }

    /// The parts a proxied request uses.
    pub fn forwarding(&self) -> Forwarding<'_> {
        Forwarding {
            settings: &self.forward_settings,
            auth: &self.auth,
            pool: &self.pool,
            selector: &self.selector,
            shared_health: &self.shared_health,
            sessions: &self.sessions,
            client: &self.client,
            target: &self.target,
            metrics: &self.metrics,
        }
    }

    /// From now on `/ready` answers 503, so load balancers stop sending.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
}
