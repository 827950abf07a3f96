//! The reconciler: dereference → validate → render → server-side apply →
//! prune → status. Errors the user must fix become a Degraded condition and a
//! Warning Event; nothing already running is torn down because of them.

pub mod apply;
pub mod dereference;
pub mod error;
pub mod optional;
pub mod optional_conditions;
pub mod status;
pub mod validate;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

pub use error::{Error, Result};

use crate::crd::{ClaudeMiddleware, ClaudeMiddlewareStatus};
use crate::metrics::Metrics;
use crate::render::{self, labels, service};
use status::{Problem, StatusInput};

/// Periodic re-check of a healthy CR (drift in fields nobody watches).
pub const RESYNC: Duration = Duration::from_secs(300);
const BACKOFF_BASE: Duration = Duration::from_secs(2);
const BACKOFF_MAX: Duration = Duration::from_secs(300);

pub struct Context {
    pub client: Client,
    pub proxy_image: String,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    /// Consecutive failures per CR (namespace/name), for per-object backoff.
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    pub fn new(
        client: Client,
        proxy_image: String,
        recorder: Recorder,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            client,
            proxy_image,
            recorder,
            metrics,
            failures: Mutex::default(),
        }
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn key<K: Resource>(obj: &K) -> String {
    format!(
        "{}/{}",
        obj.meta().namespace.as_deref().unwrap_or(""),
        obj.meta().name.as_deref().unwrap_or("")
    )
}

pub async fn reconcile(
    guard: Arc<DeserializeGuard<ClaudeMiddleware>>,
    ctx: Arc<Context>,
) -> Result<Action> {
    let started = Instant::now();
    let result = match &guard.0 {
        Ok(cr) => reconcile_cr(cr, &ctx).await,
        Err(invalid) => Err(Error::Malformed(key(guard.as_ref()), invalid.error.clone())),
    };
    ctx.metrics.observe(
        started.elapsed(),
        result.as_ref().err().map(Error::metric_label),
    );
    if result.is_ok() {
        ctx.failures().remove(&key(guard.as_ref()));
    }
    result
}

/// Per-object exponential backoff: 2 s, 4 s, … up to 5 min.
pub fn error_policy(
    guard: Arc<DeserializeGuard<ClaudeMiddleware>>,
    err: &Error,
    ctx: Arc<Context>,
) -> Action {
    let k = key(guard.as_ref());
    warn!(object = %k, error = %err, "reconcile failed");
    if matches!(err, Error::Malformed(..)) {
        // Only an edit can fix it, and an edit triggers a reconcile.
        return Action::await_change();
    }
    let mut failures = ctx.failures();
    let n = failures.entry(k).or_insert(0);
    *n = n.saturating_add(1);
    let delay = BACKOFF_BASE.saturating_mul(2u32.saturating_pow(n.saturating_sub(1).min(16)));
    Action::requeue(delay.min(BACKOFF_MAX))
}

async fn reconcile_cr(cr: &ClaudeMiddleware, ctx: &Context) -> Result<Action> {
    if cr.metadata.deletion_timestamp.is_some() {
        // Children go through garbage collection (owner references).
        return Ok(Action::await_change());
    }
    match converge(cr, ctx).await {
        Ok(next) => Ok(Action::requeue(next)),
        Err(e) => {
            if e.is_user_facing() {
                report_problem(cr, ctx, &e).await;
            }
            Err(e)
        }
    }
}

/// Returns when to look again: at the resync, or sooner while an optional
/// child waits for its CRD.
async fn converge(cr: &ClaudeMiddleware, ctx: &Context) -> Result<Duration> {
    let ns = cr.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let dereferenced = dereference::dereference(&secrets, cr).await?;
    let valid = validate::validate(cr, &ctx.proxy_image, dereferenced)?;
    let children = render::render(&valid);
    let applied = apply::apply_children(&ctx.client, &valid.owner, &children).await?;
    let optional = applied.optional;
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let mut status = status::compute(StatusInput {
        cr,
        deployment: Some(&applied.deployment),
        problem: None,
        selector: labels::selector_string(&valid.owner.name),
        endpoint: service::endpoint(
            &valid.owner.name,
            &valid.owner.namespace,
            valid.service.port,
        ),
        now: now.clone(),
    });
    optional_conditions::add(
        &mut status,
        cr.status.as_ref(),
        &optional,
        cr.metadata.generation,
        &now,
    );
    for kind in optional_conditions::newly_missing(cr.status.as_ref(), &optional) {
        let problem = Problem {
            reason: kind.event_reason().into(),
            message: optional_conditions::missing_message(kind),
        };
        publish_warning(cr, ctx, &problem).await;
    }
    patch_status(ctx, cr, status).await?;
    let waiting = optional
        .iter()
        .any(|(_, outcome)| *outcome == optional::Outcome::CrdMissing);
    Ok(if waiting {
        optional::MISSING_API_RECHECK
    } else {
        RESYNC
    })
}

/// Degraded condition plus a Warning Event. Failures here are only logged: the
/// original error is what gets retried.
async fn report_problem(cr: &ClaudeMiddleware, ctx: &Context, err: &Error) {
    let ns = cr.namespace().unwrap_or_default();
    let name = cr.name_any();
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
    let deployment = deployments.get_opt(&name).await.ok().flatten();
    let problem = Problem {
        reason: err.reason().into(),
        message: err.to_string(),
    };
    let mut status = status::compute(StatusInput {
        cr,
        deployment: deployment.as_ref(),
        problem: Some(&problem),
        selector: labels::selector_string(&name),
        endpoint: service::endpoint(&name, &ns, cr.spec.service.port),
        now: Time(k8s_openapi::jiff::Timestamp::now()),
    });
    optional_conditions::carry_over(&mut status, cr.status.as_ref());
    if let Err(e) = patch_status(ctx, cr, status).await {
        warn!(object = %key(cr), error = %e, "could not report the problem in status");
    }
    publish_warning(cr, ctx, &problem).await;
}

/// A Warning Event on the CR; a failure is only logged.
async fn publish_warning(cr: &ClaudeMiddleware, ctx: &Context, problem: &Problem) {
    let event = Event {
        type_: EventType::Warning,
        reason: problem.reason.clone(),
        note: Some(problem.message.clone()),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &cr.object_ref(&())).await {
        warn!(object = %key(cr), error = %e, "could not publish the event");
    }
}

/// Writes status only when it differs from what the CR already shows.
async fn patch_status(
    ctx: &Context,
    cr: &ClaudeMiddleware,
    status: ClaudeMiddlewareStatus,
) -> Result<()> {
    if cr.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let api: Api<ClaudeMiddleware> =
        Api::namespaced(ctx.client.clone(), &cr.namespace().unwrap_or_default());
    info!(object = %key(cr), "updating status");
    // Named, so that managedFields say who wrote status (else "unknown").
    let params = PatchParams {
        field_manager: Some(crate::render::labels::MANAGER.into()),
        ..PatchParams::default()
    };
    api.patch_status(
        &cr.name_any(),
        &params,
        &Patch::Merge(json!({ "status": status })),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::events::Reporter;

    /// A context whose client points nowhere: the paths tested here make no request.
    fn offline_context() -> Arc<Context> {
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("uri"));
        let client = Client::try_from(config).expect("client");
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "test".into(),
                instance: None,
            },
        );
        Arc::new(Context::new(
            client,
            "img".into(),
            recorder,
            Arc::new(Metrics::default()),
        ))
    }

    fn malformed() -> Arc<DeserializeGuard<ClaudeMiddleware>> {
        let guard: DeserializeGuard<ClaudeMiddleware> = serde_json::from_value(json!({
            "apiVersion": "middleware.claude-relay.io/v1alpha1",
            "kind": "ClaudeMiddleware",
            "metadata": {"name": "broken", "namespace": "ai"},
            "spec": {"target": {"url": 42}},
        }))
        .expect("a guard always deserializes");
        assert!(guard.0.is_err());
        Arc::new(guard)
    }

    #[tokio::test]
    async fn malformed_object_is_reported_and_waits_for_an_edit() {
        let ctx = offline_context();
        let guard = malformed();
        let err = reconcile(guard.clone(), ctx.clone())
            .await
            .expect_err("malformed");
        assert_eq!(err.metric_label(), "malformed");
        assert!(err.to_string().contains("ai/broken"), "{err}");
        assert_eq!(
            error_policy(guard, &err, ctx.clone()),
            Action::await_change()
        );
        assert!(
            ctx.metrics
                .encode()
                .contains("reconcile_errors_total{error=\"malformed\"} 1")
        );
    }

    #[tokio::test]
    async fn backoff_is_per_object_and_exponential() {
        let ctx = offline_context();
        let cr = |name: &str| {
            let mut cr = crate::render::testdata::minimal();
            cr.metadata.name = Some(name.into());
            Arc::new(DeserializeGuard(Ok(cr)))
        };
        let err = || Error::SecretMissing {
            namespace: "ai".into(),
            name: "x".into(),
        };
        let delays: Vec<Action> = (0..10)
            .map(|_| error_policy(cr("a"), &err(), ctx.clone()))
            .collect();
        assert_eq!(delays[0], Action::requeue(Duration::from_secs(2)));
        assert_eq!(delays[1], Action::requeue(Duration::from_secs(4)));
        assert_eq!(delays[2], Action::requeue(Duration::from_secs(8)));
        assert_eq!(delays[9], Action::requeue(BACKOFF_MAX));
        // Another object starts from the beginning.
        assert_eq!(
            error_policy(cr("b"), &err(), ctx.clone()),
            Action::requeue(Duration::from_secs(2))
        );
    }
}
