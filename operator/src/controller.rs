//! Wiring of the kube-runtime Controller: the CR (behind `DeserializeGuard`),
//! its children (label-selected), and referenced Secrets (through a mapper).
//! Each of the eight watches reports the end of its first list to the
//! [`Readiness`]; the operator is ready once all have.

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::core::DeserializeGuard;
use kube::core::PartialObjectMeta;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store, reflector};
use kube::runtime::utils::Backoff;
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tracing::{debug, info};

use crate::crd::ClaudeMiddleware;
use crate::metrics::Metrics;
use crate::readiness::{Part, Readiness};
use crate::reconcile::{self, Context, dereference::referenced_secrets};
use crate::render::labels::{MANAGED_BY_SELECTOR, MANAGER};

type Guarded = DeserializeGuard<ClaudeMiddleware>;
type Meta<K> = PartialObjectMeta<K>;

/// What the controller needs to know; the CLI fills it from flags/env.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// Watch only this namespace; all namespaces when `None`.
    pub namespace: Option<String>,
    /// Image of the proxy when a CR does not set one.
    pub proxy_image: String,
    /// Reporting instance of Events (the pod name).
    pub instance: Option<String>,
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// The watches: the CR, six child kinds, Secrets.
const WATCHES: usize = 8;

/// Runs the controller until `shutdown` resolves (then finishes in-flight
/// reconciles and returns). Marks `readiness` once every watch has listed.
pub async fn run_controller(
    client: Client,
    config: ControllerConfig,
    metrics: Arc<Metrics>,
    readiness: Readiness,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let ns = config.namespace.as_deref();
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: MANAGER.into(),
            instance: config.instance.clone(),
        },
    );
    let ctx = Arc::new(Context::new(
        client.clone(),
        config.proxy_image.clone(),
        recorder,
        metrics,
    ));

    let mut parts = readiness.parts(WATCHES).into_iter();
    let mut part = || parts.next().expect("one part per watch");
    // What `Controller::new` does (a reflector of the CRs), plus the signal.
    let (store, writer) = reflector::store();
    let crs = watcher(api::<Guarded>(&client, ns), watcher::Config::default());
    let controller = Controller::for_stream(
        listed(reflector(writer, crs), part()).applied_objects(),
        store.clone(),
    )
    .with_config(
        kube::runtime::controller::Config::default()
            // Unbounded, 500 CRs at once sent bursts the API server
            // answered with 504s (bench/results/profiles.md).
            .concurrency(RECONCILE_CONCURRENCY)
            // A rollout's burst of child events becomes one reconcile.
            .debounce(RECONCILE_DEBOUNCE),
    );
    info!(
        namespace = ns.unwrap_or("<all>"),
        "starting the ClaudeMiddleware controller"
    );
    controller
        .owns_stream(owned::<Deployment>(&client, ns, part()))
        .owns_stream(owned::<Service>(&client, ns, part()))
        .owns_stream(owned::<NetworkPolicy>(&client, ns, part()))
        .owns_stream(owned::<Ingress>(&client, ns, part()))
        .owns_stream(owned::<HorizontalPodAutoscaler>(&client, ns, part()))
        .owns_stream(owned::<PodDisruptionBudget>(&client, ns, part()))
        .watches_stream(
            listed(
                watcher(api::<Secret>(&client, ns), watcher::Config::default()),
                part(),
            )
            .touched_objects(),
            move |secret| referencing(&store, &secret),
        )
        .graceful_shutdown_on(shutdown)
        .trigger_backoff(WatchBackoff::default())
        .run(reconcile::reconcile, reconcile::error_policy, ctx)
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => debug!(object = %obj, "reconciled"),
                Err(e) => debug!(error = %e, "reconcile failed"),
            }
        })
        .await;
    info!("controller stopped");
}

/// Reconciles in flight at once (never two of one CR).
const RECONCILE_CONCURRENCY: u16 = 16;
/// Quiet time before reconciling after an event on a CR or its children.
const RECONCILE_DEBOUNCE: std::time::Duration = std::time::Duration::from_millis(250);

/// Backoff after a watch error. kube-runtime applies ONE backoff to the merged
/// stream of all eight watches and polls none of them while it sleeps, so when
/// the API server goes away (every watch fails at once, then every retry) its
/// default, 0.8 s doubling to 30 s, serialises those errors into minutes in
/// which the operator hears nothing even though the API server is back
/// (tests/tests/operator_faults.rs restarts it). Capped at 2 s: at most one
/// retry per 2 s during an outage, and back within seconds after it.
#[derive(Debug, Clone)]
pub struct WatchBackoff {
    next: Duration,
}

impl WatchBackoff {
    const MIN: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(2);
}

impl Default for WatchBackoff {
    fn default() -> Self {
        Self { next: Self::MIN }
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let now = self.next;
        self.next = (now * 2).min(Self::MAX);
        Some(now)
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.next = Self::MIN;
    }
}

/// What `Controller::owns` watches (the metadata of our label-selected
/// children of kind K), releasing `part` once listed.
fn owned<K>(
    client: &Client,
    namespace: Option<&str>,
    part: Part,
) -> impl Stream<Item = Result<Meta<K>, watcher::Error>> + Send + 'static
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
{
    let children = watcher::Config::default().labels(MANAGED_BY_SELECTOR);
    listed(watcher(api::<Meta<K>>(client, namespace), children), part).touched_objects()
}

/// The watch stream, releasing `part` at the end of its first complete list
/// (the `InitDone` event).
fn listed<K>(
    events: impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send,
    part: Part,
) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send {
    let mut part = Some(part);
    events.inspect(move |event| {
        if matches!(event, Ok(watcher::Event::InitDone))
            && let Some(p) = part.take()
        {
            debug!(kind = std::any::type_name::<K>(), "watch listed");
            p.done();
        }
    })
}

/// The CRs in the Secret's namespace that reference it. No owner reference is
/// put on Secrets: they belong to the user.
fn referencing(store: &Store<Guarded>, secret: &Secret) -> Vec<ObjectRef<Guarded>> {
    let ns = secret.namespace();
    let name = secret.name_any();
    store
        .state()
        .into_iter()
        .filter(|g| match &g.0 {
            Ok(cr) => cr.namespace() == ns && referenced_secrets(cr).any(|s| s == name),
            Err(_) => false,
        })
        .map(|g| ObjectRef::from_obj(g.as_ref()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_backoff_doubles_up_to_two_seconds_and_resets() {
        let mut b = WatchBackoff::default();
        let ms: Vec<u128> = b.by_ref().take(7).map(|d| d.as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1600, 2000, 2000]);
        b.reset();
        assert_eq!(b.next(), Some(Duration::from_millis(100)));
    }
}
