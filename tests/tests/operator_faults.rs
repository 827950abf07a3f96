//! The operator under faults and hostile input, injected for real (issue 8,
//! operator half): the API server killed and restarted mid-reconcile, two
//! operator processes where the leader is SIGKILLed, a malformed CR in the
//! watch, a referenced Secret deleted and re-created, least-privilege RBAC,
//! and the rendered pod under Pod Security "restricted".
//!
//! Faults that would disturb other tests (restarting the API server, loosening
//! the CRD schema) run on a private control plane of their own
//! (`PrivateControlPlane`, ~6 s to start); the rest share the test run's.
//! Every test prints what it tried and what it observed.
//!
//! Drift repair of an operator-owned field with a foreign field kept, and the
//! in-process standby taking over after a graceful stop, are in
//! operator_controller.rs; the positive half of the deploy/ RBAC (the binary,
//! as the deploy/ ServiceAccount, watching all namespaces) in
//! scripts/check-deploy.sh.

mod operator_support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use cmw_operator::leader::{LeaseConfig, run_as_leader};
use cmw_operator::metrics::{ErrorLabels, Metrics};
use cmw_operator::readiness::Readiness;
use cmw_operator::reconcile::dereference::{Dereferenced, hash};
use cmw_operator::reconcile::validate::validate;
use cmw_operator::render::render;
use cmw_tests::controlplane::{
    DEFAULT_TIMEOUT, PrivateControlPlane, TestNamespace, eventually, test_namespace,
    test_namespace_in,
};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::rbac::v1::ClusterRole;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use operator_support::process::{LEADER, OperatorProcess, RECONCILES};
use operator_support::*;
use serde_json::json;

const CRD_NAME: &str = "claudemiddlewares.middleware.claude-relay.io";

// ---------------------------------------------------------------------------
// Helpers of this file
// ---------------------------------------------------------------------------

/// MINIMAL_CR renamed to `name`.
fn minimal_named(name: &str) -> String {
    MINIMAL_CR.replace("name: relay,", &format!("name: {name},"))
}

fn pod_template_annotation(d: &Deployment, key: &str) -> Option<String> {
    d.spec
        .as_ref()?
        .template
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get(key)
        .cloned()
}

// ---------------------------------------------------------------------------
// 1. The API server killed and restarted while CRs are reconciled
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_server_restart_mid_reconcile_converges_and_duplicates_nothing() -> anyhow::Result<()> {
    let private = PrivateControlPlane::start("restart")?;
    let (client, ns) = test_namespace_in(private.control_plane, "op-restart").await;
    install_crd(&ns).await?;
    let before: Vec<String> = (0..10).map(|i| format!("relay-{i}")).collect();
    for name in &before {
        apply_cr(&ns, &minimal_named(name))?;
    }
    let operator = OperatorProcess::spawn(private.control_plane, &ns.name, "restart-op", false)?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    // Kill as soon as the operator is up: it is listing and reconciling.
    eventually("the operator's /healthz", DEFAULT_TIMEOUT, || async {
        ensure!(operator.get("/healthz").await?.0 == 200, "not yet");
        Ok(())
    })
    .await?;
    let at_kill = deployments.list(&ListParams::default()).await?.items.len();
    let statuses = cr_api(&client, &ns.name)
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .filter(|cr| {
            cr.status
                .as_ref()
                .and_then(|s| s.observed_generation)
                .is_some()
        })
        .count();
    tokio::task::block_in_place(|| private.restart_apiserver(Duration::from_secs(3)))?;
    println!(
        "tried: 10 CRs, the operator binary started, kube-apiserver SIGKILLed when {at_kill}/10 Deployments and {statuses}/10 statuses existed, down 3 s, restarted"
    );
    let restarted = Instant::now();

    // Changes made only after the restart prove the watches were re-established.
    let after = ["relay-10", "relay-11"];
    for name in after {
        apply_cr(&ns, &minimal_named(name))?;
    }
    ns.control_plane()
        .kubectl_ok(&["scale", "cmw/relay-0", "--replicas=2", "-n", &ns.name])?;
    let all: Vec<String> = before
        .iter()
        .cloned()
        .chain(after.iter().map(|s| s.to_string()))
        .collect();

    eventually(
        "every CR has exactly one child of each kind, named after it, and an up-to-date status",
        DEFAULT_TIMEOUT,
        || async {
            for name in &all {
                let want = vec![name.clone()];
                ensure!(
                    names_of::<Deployment>(&client, &ns.name, name).await? == want,
                    "{name}: Deployments"
                );
                ensure!(
                    names_of::<Service>(&client, &ns.name, name).await? == want,
                    "{name}: Services"
                );
                ensure!(
                    names_of::<NetworkPolicy>(&client, &ns.name, name).await? == want,
                    "{name}: NetworkPolicies"
                );
                observed(&client, &ns.name, name).await?;
            }
            let d = deployments.get("relay-0").await?;
            ensure!(
                d.spec.and_then(|s| s.replicas) == Some(2),
                "relay-0 not scaled yet"
            );
            Ok(())
        },
    )
    .await
    .with_context(|| format!("operator log:\n{}", operator.logs()))?;
    println!(
        "observed: converged {:?} after the API server was back: 12 CRs × (1 Deployment, 1 Service, 1 NetworkPolicy), observedGeneration == generation, the post-restart scale applied",
        restarted.elapsed()
    );

    // Nothing duplicated and nothing churning: one ReplicaSet per Deployment
    // (no spurious pod-template change), and the generations stay put.
    let generations = || async {
        let mut g = BTreeMap::new();
        for d in deployments.list(&ListParams::default()).await?.items {
            g.insert(d.name_any(), d.metadata.generation.unwrap_or_default());
        }
        Ok::<_, anyhow::Error>(g)
    };
    // The controller-manager lost the API server too and may still be in its
    // own backoff: wait for its ReplicaSets, then require exactly one each.
    eventually(
        "one ReplicaSet per Deployment",
        Duration::from_secs(90),
        || async {
            for name in &all {
                let rs = names_of::<ReplicaSet>(&client, &ns.name, name).await?;
                ensure!(rs.len() == 1, "{name}: ReplicaSets {rs:?}");
            }
            Ok(())
        },
    )
    .await?;
    let first = generations().await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let second = generations().await?;
    assert_eq!(first, second, "Deployment generations still changing");
    assert_eq!(first.len(), all.len(), "Deployments: {first:?}");
    for name in &all {
        let rs = names_of::<ReplicaSet>(&client, &ns.name, name).await?;
        assert_eq!(rs.len(), 1, "{name}: ReplicaSets {rs:?}");
    }
    println!(
        "observed: {} Deployments, one ReplicaSet each, generations unchanged over 5 s ({:?}); reconciles: {}",
        first.len(),
        first.values().collect::<BTreeSet<_>>(),
        operator.metric(RECONCILES).await?
    );
    drop(operator);
    drop(ns);
    drop(private);
    Ok(())
}

// ---------------------------------------------------------------------------
// 2. Two operator processes; the leader SIGKILLed
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_operator_processes_only_the_holder_writes_and_a_sigkilled_leader_is_replaced()
-> anyhow::Result<()> {
    let (client, ns) = test_namespace("op-procs").await;
    install_crd(&ns).await?;
    let cp = ns.control_plane();
    let a = OperatorProcess::spawn(cp, &ns.name, "proc-a", true)?;
    let b = OperatorProcess::spawn(cp, &ns.name, "proc-b", true)?;
    println!(
        "tried: two claude-middleware-operator processes, one Lease (15 s duration, hard-coded in main.rs)"
    );

    let leader_is_a = eventually("exactly one leader", DEFAULT_TIMEOUT, || async {
        let (la, lb) = (a.metric(LEADER).await?, b.metric(LEADER).await?);
        ensure!(la + lb == 1.0, "leader gauges a={la} b={lb}");
        Ok(la == 1.0)
    })
    .await?;
    let (mut leader, standby) = if leader_is_a { (a, b) } else { (b, a) };
    assert_eq!(
        lease_holder(&client, &ns.name).await?.as_deref(),
        Some(leader.id.as_str())
    );
    apply_cr(&ns, MINIMAL_CR)?;
    eventually("the leader reconciles", DEFAULT_TIMEOUT, || async {
        ensure!(
            exists::<Deployment>(&client, &ns.name, "relay").await?,
            "no Deployment"
        );
        observed(&client, &ns.name, "relay").await
    })
    .await?;
    let status_manager = cr_api(&client, &ns.name).get("relay").await?;
    println!(
        "observed: Lease holder {}; {} /metrics leader=1 reconciles={}; standby {} leader={} reconciles={}; CR managers {:?}",
        leader.id,
        leader.id,
        leader.metric(RECONCILES).await?,
        standby.id,
        standby.metric(LEADER).await?,
        standby.metric(RECONCILES).await?,
        status_manager
            .managed_fields()
            .iter()
            .filter_map(|m| m.manager.clone())
            .collect::<Vec<_>>()
    );
    assert_eq!(
        standby.metric(RECONCILES).await?,
        0.0,
        "the standby reconciled"
    );
    assert_eq!(standby.get("/healthz").await?.0, 200);
    // Both ready: the leader's watches listed, the standby knows its role.
    assert_eq!(leader.get("/readyz").await?.0, 200);
    eventually("the standby ready", DEFAULT_TIMEOUT, || async {
        ensure!(standby.get("/readyz").await?.0 == 200, "not yet");
        Ok(())
    })
    .await?;
    // Status is written under the operator's field manager only.
    let status_writers: Vec<_> = status_manager
        .managed_fields()
        .iter()
        .filter(|m| m.subresource.as_deref() == Some("status"))
        .filter_map(|m| m.manager.clone())
        .collect();
    assert_eq!(status_writers, ["claude-middleware-operator"]);

    // SIGKILL: no graceful release; the Lease must expire first.
    leader.sigkill();
    let killed = Instant::now();
    ns.control_plane()
        .kubectl_ok(&["scale", "cmw/relay", "--replicas=3", "-n", &ns.name])?;
    eventually("the standby takes the Lease", DEFAULT_TIMEOUT, || async {
        ensure!(standby.metric(LEADER).await? == 1.0, "not leading yet");
        ensure!(
            lease_holder(&client, &ns.name).await?.as_deref() == Some(standby.id.as_str()),
            "holder"
        );
        Ok(())
    })
    .await?;
    let took = killed.elapsed();
    eventually(
        "the new leader applies the edit made after the kill",
        DEFAULT_TIMEOUT,
        || async {
            let d = get::<Deployment>(&client, &ns.name, "relay").await?;
            ensure!(d.spec.and_then(|s| s.replicas) == Some(3), "not yet");
            ensure!(
                standby.metric(RECONCILES).await? >= 1.0,
                "no reconcile counted yet"
            );
            Ok(())
        },
    )
    .await?;
    println!(
        "observed: leader {} SIGKILLed → {} holds the Lease after {took:?}, and scaled the Deployment to 3 (reconciles={})",
        leader.id,
        standby.id,
        standby.metric(RECONCILES).await?
    );
    // Lease duration 15 s, renewal grace 5 s, plus a margin for a busy machine.
    assert!(
        took < Duration::from_secs(45),
        "takeover took {took:?}; standby log:\n{}",
        standby.logs()
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// 3. A malformed CR in the watch
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_cr_does_not_stop_the_others() -> anyhow::Result<()> {
    let private = PrivateControlPlane::start("malformed")?;
    let (client, ns) = test_namespace_in(private.control_plane, "op-malformed").await;
    install_crd(&ns).await?;

    // A permissive variant of the CRD, as a buggy or older CRD version would
    // allow: spec keeps unknown fields with no schema, so wrong types are stored.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let real = crds.get(CRD_NAME).await?;
    let mut loose = serde_json::to_value(&real)?;
    loose["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"] =
        json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
    let loose: CustomResourceDefinition = serde_json::from_value(loose)?;
    crds.replace(CRD_NAME, &PostParams::default(), &loose)
        .await?;
    let malformed = "apiVersion: middleware.claude-relay.io/v1alpha1\nkind: ClaudeMiddleware\nmetadata: {name: broken, namespace: ai}\nspec:\n  target: 42\n  redis: {host: [1, 2]}\n";
    eventually(
        "the loose schema accepts the malformed CR",
        DEFAULT_TIMEOUT,
        || async { apply_cr(&ns, malformed).map(|_| ()) },
    )
    .await?;
    apply_cr(&ns, &minimal_named("good"))?;
    println!(
        "tried: CRD loosened (spec: x-kubernetes-preserve-unknown-fields), stored CR 'broken' with spec.target=42 and redis.host=[1,2] (wrong types), and a valid CR 'good'; then the operator binary"
    );

    let op = OperatorProcess::spawn(private.control_plane, &ns.name, "malformed-op", false)?;
    let malformed_errors = "claude_middleware_operator_reconcile_errors_total{error=\"malformed\"}";
    eventually(
        "good converges and the malformed one is counted",
        DEFAULT_TIMEOUT,
        || async {
            ensure!(
                exists::<Deployment>(&client, &ns.name, "good").await?,
                "no Deployment for good"
            );
            observed(&client, &ns.name, "good").await?;
            ensure!(op.metric(malformed_errors).await? >= 1.0, "not counted yet");
            Ok(())
        },
    )
    .await?;
    // Later events are still handled: the controller did not stop on it.
    ns.control_plane()
        .kubectl_ok(&["scale", "cmw/good", "--replicas=2", "-n", &ns.name])?;
    eventually(
        "an edit of good after the malformed one is applied",
        DEFAULT_TIMEOUT,
        || async {
            let d = get::<Deployment>(&client, &ns.name, "good").await?;
            ensure!(d.spec.and_then(|s| s.replicas) == Some(2), "not yet");
            Ok(())
        },
    )
    .await?;
    let (health, _) = op.get("/healthz").await?;
    let (ready, _) = op.get("/readyz").await?;
    let logs = op.logs();
    let logged = logs
        .lines()
        .find(|l| l.contains("broken") && l.contains("could not be decoded"))
        .map(str::to_owned);
    println!(
        "observed: good has its children and status, followed a later scale; /healthz {health}, /readyz {ready}; malformed errors {}; broken has no Deployment: {}; log: {}",
        op.metric(malformed_errors).await?,
        !exists::<Deployment>(&client, &ns.name, "broken").await?,
        logged.as_deref().unwrap_or("<none>")
    );
    assert_eq!((health, ready), (200, 200));
    assert!(logged.is_some(), "no log line about 'broken':\n{logs}");
    assert!(!exists::<Deployment>(&client, &ns.name, "broken").await?);

    // Back to the real CRD; the operator keeps running.
    let current = crds.get(CRD_NAME).await?;
    let mut restored = real.clone();
    restored.metadata = current.metadata.clone();
    crds.replace(CRD_NAME, &PostParams::default(), &restored)
        .await?;
    let back = crds.get(CRD_NAME).await?;
    assert_eq!(
        serde_json::to_value(&back.spec)?,
        serde_json::to_value(&real.spec)?
    );
    assert_eq!(op.get("/healthz").await?.0, 200);
    println!("observed: the real CRD restored; operator still healthy");
    drop(op);
    drop(ns);
    drop(private);
    Ok(())
}

// ---------------------------------------------------------------------------
// 4. Secrets: API-key Secret deleted and re-created; Redis password rotated
// ---------------------------------------------------------------------------

const SECRETS_CR: &str = r#"apiVersion: middleware.claude-relay.io/v1alpha1
kind: ClaudeMiddleware
metadata: {name: relay, namespace: ai}
spec:
  target: {url: "http://claude-relay:3001"}
  redis: {host: redis, passwordSecretRef: {name: redis-auth, key: password}}
  auth: {enabled: true, apiKeysSecretRef: {name: api-keys, key: keys}}
"#;
const PASSWORD_HASH: &str = "middleware.claude-relay.io/redis-password-hash";

/// What would show a rollout: the Deployment's generation and template hash,
/// its ReplicaSets and its pods.
async fn rollout_state(
    client: &Client,
    ns: &str,
) -> anyhow::Result<(i64, Option<String>, Vec<String>, Vec<String>)> {
    let d = get::<Deployment>(client, ns, "relay").await?;
    Ok((
        d.metadata.generation.unwrap_or_default(),
        pod_template_annotation(&d, PASSWORD_HASH),
        names_of::<ReplicaSet>(client, ns, "relay").await?,
        names_of::<Pod>(client, ns, "relay").await?,
    ))
}

async fn ready(client: &Client, ns: &str) -> anyhow::Result<()> {
    eventually("Ready=True", DEFAULT_TIMEOUT, || async {
        mark_pods_ready(client, ns, "relay").await?;
        let cr = cr_api(client, ns).get("relay").await?;
        let c = cr
            .status
            .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "Ready"))
            .context("no Ready condition")?;
        ensure!(c.status == "True", "Ready {} ({})", c.status, c.message);
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_deleted_and_recreated_is_degraded_then_ready_without_a_rollout_but_a_new_redis_password_rolls()
-> anyhow::Result<()> {
    let OperatorTest {
        client,
        ns,
        operator: _operator,
    } = OperatorTest::start("op-secrets").await?;
    put_secret(&client, &ns.name, "redis-auth", &[("password", "first")]).await?;
    put_secret(
        &client,
        &ns.name,
        "api-keys",
        &[("keys", "cr_0123456789abcdef")],
    )
    .await?;
    apply_cr(&ns, SECRETS_CR)?;
    ready(&client, &ns.name).await?;
    let start = rollout_state(&client, &ns.name).await?;
    println!(
        "start: Ready; generation {}, hash {:?}, ReplicaSets {:?}, pods {:?}",
        start.0, start.1, start.2, start.3
    );

    Api::<Secret>::namespaced(client.clone(), &ns.name)
        .delete("api-keys", &DeleteParams::default())
        .await?;
    let degraded = condition(&client, &ns.name, "relay", "Degraded", "True").await?;
    println!(
        "tried: deleted Secret api-keys → observed Degraded=True {}: {}",
        degraded.reason, degraded.message
    );
    assert_eq!(degraded.reason, "SecretMissing");
    assert_eq!(
        rollout_state(&client, &ns.name).await?,
        start,
        "deleting the Secret changed the Deployment"
    );

    put_secret(
        &client,
        &ns.name,
        "api-keys",
        &[("keys", "cr_fedcba9876543210")],
    )
    .await?;
    condition(&client, &ns.name, "relay", "Degraded", "False").await?;
    ready(&client, &ns.name).await?;
    let after = rollout_state(&client, &ns.name).await?;
    println!(
        "tried: re-created api-keys (new keys) → observed Degraded=False, Ready=True; generation {}, ReplicaSets {:?}, pods {:?}",
        after.0, after.2, after.3
    );
    assert_eq!(
        after, start,
        "re-creating the API-key Secret rolled the pods"
    );

    put_secret(&client, &ns.name, "redis-auth", &[("password", "rotated")]).await?;
    let rolled = eventually(
        "a rollout for the new password",
        DEFAULT_TIMEOUT,
        || async {
            let now = rollout_state(&client, &ns.name).await?;
            ensure!(now.1 == Some(hash(b"rotated")), "hash {:?}", now.1);
            ensure!(now.2.len() == 2, "ReplicaSets {:?}", now.2);
            Ok(now)
        },
    )
    .await?;
    println!(
        "tried: changed redis-auth's password → observed template hash {:?} → {:?}, generation {} → {}, ReplicaSets {:?}",
        start.1, rolled.1, start.0, rolled.0, rolled.2
    );
    assert!(rolled.0 > start.0);
    Ok(())
}

// ---------------------------------------------------------------------------
// 5. Least privilege
// ---------------------------------------------------------------------------

/// Every permission the deploy/ roles grant, with why the operator needs it
/// (operator/src/controller.rs, reconcile/, leader.rs). A grant added to
/// deploy/rbac/ without a use here fails the test: the role stays exactly what
/// the operator uses.
const NEEDED: &[(&str, &str)] = &[
    (
        "middleware.claude-relay.io/claudemiddlewares",
        "get list watch",
    ),
    (
        "middleware.claude-relay.io/claudemiddlewares/status",
        "patch",
    ),
    (
        "middleware.claude-relay.io/claudemiddlewares/finalizers",
        "update",
    ),
    ("apps/deployments", "get list watch create patch"),
    ("/services", "get list watch create patch"),
    (
        "networking.k8s.io/networkpolicies",
        "get list watch create patch delete",
    ),
    (
        "networking.k8s.io/ingresses",
        "get list watch create patch delete",
    ),
    (
        "autoscaling/horizontalpodautoscalers",
        "get list watch create patch delete",
    ),
    (
        "policy/poddisruptionbudgets",
        "get list watch create patch delete",
    ),
    (
        "gateway.networking.k8s.io/httproutes",
        "get create patch delete",
    ),
    (
        "monitoring.coreos.com/servicemonitors",
        "get create patch delete",
    ),
    ("/secrets", "get list watch"),
    ("events.k8s.io/events", "create patch"),
    ("coordination.k8s.io/leases", "get create patch"),
];

/// (verb, group, resource, subresource, namespace or "" for cluster-wide/all):
/// broader than the operator needs, so must be refused.
const REFUSED: &[(&str, &str, &str, &str, &str)] = &[
    ("delete", "", "secrets", "", "@ns"),
    ("create", "", "secrets", "", "@ns"),
    ("update", "", "secrets", "", "@ns"),
    ("patch", "", "secrets", "", "@ns"),
    ("get", "", "secrets", "", "kube-system"),
    ("list", "", "secrets", "", ""),
    (
        "create",
        "rbac.authorization.k8s.io",
        "clusterroles",
        "",
        "",
    ),
    (
        "escalate",
        "rbac.authorization.k8s.io",
        "clusterroles",
        "",
        "",
    ),
    ("bind", "rbac.authorization.k8s.io", "clusterroles", "", ""),
    (
        "create",
        "rbac.authorization.k8s.io",
        "rolebindings",
        "",
        "@ns",
    ),
    ("impersonate", "", "users", "", ""),
    ("impersonate", "", "serviceaccounts", "", "@ns"),
    ("create", "", "serviceaccounts", "token", "@ns"),
    ("create", "", "pods", "", "@ns"),
    ("create", "", "pods", "exec", "@ns"),
    ("delete", "apps", "deployments", "", "@ns"),
    ("update", "apps", "deployments", "", "@ns"),
    ("delete", "", "services", "", "@ns"),
    (
        "create",
        "middleware.claude-relay.io",
        "claudemiddlewares",
        "",
        "@ns",
    ),
    (
        "update",
        "middleware.claude-relay.io",
        "claudemiddlewares",
        "",
        "@ns",
    ),
    (
        "delete",
        "middleware.claude-relay.io",
        "claudemiddlewares",
        "",
        "@ns",
    ),
    (
        "update",
        "middleware.claude-relay.io",
        "claudemiddlewares",
        "status",
        "@ns",
    ),
    ("delete", "coordination.k8s.io", "leases", "", "@ns"),
    ("create", "coordination.k8s.io", "leases", "", "default"),
    ("delete", "events.k8s.io", "events", "", "@ns"),
    (
        "create",
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        "",
        "",
    ),
    ("get", "", "nodes", "", ""),
    ("get", "", "configmaps", "", "@ns"),
    ("get", "apps", "deployments", "", "kube-system"),
];

async fn allowed(
    sa: &Client,
    verb: &str,
    group: &str,
    resource: &str,
    subresource: &str,
    namespace: &str,
) -> anyhow::Result<bool> {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                group: Some(group.into()),
                resource: Some(resource.into()),
                subresource: (!subresource.is_empty()).then(|| subresource.into()),
                namespace: (!namespace.is_empty()).then(|| namespace.into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = Api::<SelfSubjectAccessReview>::all(sa.clone())
        .create(&PostParams::default(), &review)
        .await?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

/// Deletes the test's cluster-scoped copy of the ClusterRole.
struct ClusterRoleGuard<'a>(&'a TestNamespace, String);
impl Drop for ClusterRoleGuard<'_> {
    fn drop(&mut self) {
        let _ = self.0.control_plane().kubectl(&[
            "delete",
            "clusterrole",
            &self.1,
            "--ignore-not-found",
            "--wait=false",
        ]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_rbac_is_exactly_what_it_uses_and_broader_verbs_are_refused() -> anyhow::Result<()>
{
    let (admin, ns) = test_namespace("op-rbac").await;
    install_crd(&ns).await?;
    let cp = ns.control_plane();
    // deploy/'s roles, bound in the test namespace only (the namespace-confined
    // mode the ClusterRole documents: WATCH_NAMESPACE and a RoleBinding).
    let role_name = format!("cmw-operator-{}", ns.name);
    let _guard = ClusterRoleGuard(&ns, role_name.clone());
    let cluster_role = include_str!("../../deploy/rbac/cluster-role.yaml").replace(
        "name: claude-middleware-operator",
        &format!("name: {role_name}"),
    );
    let lease_role = include_str!("../../deploy/rbac/leader-election-role.yaml")
        .replace("claude-middleware-system", &ns.name);
    kubectl_stdin(&ns, &["apply", "-f", "-"], &cluster_role, false)?;
    kubectl_stdin(&ns, &["apply", "-f", "-"], &lease_role, false)?;
    let sa_ref = format!("{}:operator", ns.name);
    for args in [
        vec!["create", "serviceaccount", "operator"],
        vec![
            "create",
            "rolebinding",
            "operator",
            "--clusterrole",
            role_name.as_str(),
            "--serviceaccount",
            sa_ref.as_str(),
        ],
        vec![
            "create",
            "rolebinding",
            "operator-leases",
            "--role",
            "claude-middleware-operator-leader-election",
            "--serviceaccount",
            sa_ref.as_str(),
        ],
    ] {
        let mut all = vec!["-n", ns.name.as_str()];
        all.extend(args);
        cp.kubectl_ok(&all)?;
    }

    // Exactly: what the role grants is what the operator is known to use.
    let granted = Api::<ClusterRole>::all(admin.clone())
        .get(&role_name)
        .await?;
    let lease = Api::<k8s_openapi::api::rbac::v1::Role>::namespaced(admin.clone(), &ns.name)
        .get("claude-middleware-operator-leader-election")
        .await?;
    let mut grants = BTreeSet::new();
    for rule in granted
        .rules
        .unwrap_or_default()
        .into_iter()
        .chain(lease.rules.unwrap_or_default())
    {
        for group in rule.api_groups.unwrap_or_default() {
            for resource in rule.resources.clone().unwrap_or_default() {
                for verb in &rule.verbs {
                    grants.insert(format!("{group}/{resource} {verb}"));
                }
            }
        }
    }
    let needed: BTreeSet<String> = NEEDED
        .iter()
        .flat_map(|(r, verbs)| verbs.split(' ').map(move |v| format!("{r} {v}")))
        .collect();
    let extra: Vec<_> = grants.difference(&needed).collect();
    let missing: Vec<_> = needed.difference(&grants).collect();
    println!(
        "tried: deploy/rbac grants {} (resource, verb) pairs; not used by the operator: {extra:?}; used but not granted: {missing:?}",
        grants.len()
    );
    assert!(
        extra.is_empty() && missing.is_empty(),
        "extra {extra:?}, missing {missing:?}"
    );

    // Broader verbs are refused (SelfSubjectAccessReview as the ServiceAccount).
    let sa = cp.service_account_client(&ns.name, "operator").await?;
    eventually("the RoleBinding is in effect", DEFAULT_TIMEOUT, || async {
        ensure!(
            allowed(&sa, "patch", "apps", "deployments", "", &ns.name).await?,
            "not yet"
        );
        Ok(())
    })
    .await?;
    let mut refused = vec![];
    for (verb, group, resource, sub, where_) in REFUSED {
        let where_ = if *where_ == "@ns" {
            ns.name.as_str()
        } else {
            where_
        };
        let yes = allowed(&sa, verb, group, resource, sub, where_).await?;
        let what = format!(
            "{verb} {group}/{resource}{}{} in {}",
            if sub.is_empty() { "" } else { "/" },
            sub,
            if where_.is_empty() {
                "<cluster>"
            } else {
                where_
            }
        );
        assert!(!yes, "allowed, but must be refused: {what}");
        refused.push(what);
    }
    println!(
        "observed: refused {} broader requests: {}",
        refused.len(),
        refused.join("; ")
    );
    // And attempted for real: a Secret outside its namespace, deleting one inside it.
    put_secret(&admin, &ns.name, "redis-auth", &[("password", "pw")]).await?;
    put_secret(
        &admin,
        &ns.name,
        "api-keys",
        &[("keys", "cr_0123456789abcdef")],
    )
    .await?;
    let outside = Api::<Secret>::namespaced(sa.clone(), "kube-system")
        .list(&ListParams::default())
        .await;
    let delete = Api::<Secret>::namespaced(sa.clone(), &ns.name)
        .delete("api-keys", &DeleteParams::default())
        .await;
    for (what, result) in [
        ("list secrets in kube-system", outside.err()),
        ("delete secret api-keys", delete.err()),
    ] {
        match result {
            Some(kube::Error::Api(s)) if s.code == 403 => {
                println!("observed: {what} → 403 {}", s.message)
            }
            other => bail!("{what}: want 403, got {other:?}"),
        }
    }

    // The operator as that ServiceAccount (Lease included) reconciles a full CR
    // and prunes; no Kubernetes API error means no permission was missing.
    let metrics = std::sync::Arc::new(Metrics::default());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let lease_config = LeaseConfig {
        name: "claude-middleware-operator".into(),
        namespace: ns.name.clone(),
        identity: "rbac-test".into(),
        duration_seconds: 6,
        grace_seconds: 2,
    };
    let readiness = Readiness::default();
    let task = tokio::spawn(run_as_leader(
        sa.clone(),
        lease_config,
        controller_config(&ns.name, "rbac-test"),
        metrics.clone(),
        readiness.clone(),
        stopped,
    ));
    apply_cr(&ns, FULL_CR)?;
    eventually(
        "the full CR's children and status, as the ServiceAccount, and ready",
        DEFAULT_TIMEOUT,
        || async {
            ensure!(readiness.is_ready(), "not ready: a watch has not listed");
            for present in [
                exists::<Deployment>(&admin, &ns.name, "relay").await?,
                exists::<Service>(&admin, &ns.name, "relay").await?,
                exists::<NetworkPolicy>(&admin, &ns.name, "relay").await?,
                exists::<Ingress>(&admin, &ns.name, "relay").await?,
                exists::<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler>(
                    &admin, &ns.name, "relay",
                )
                .await?,
                exists::<k8s_openapi::api::policy::v1::PodDisruptionBudget>(
                    &admin, &ns.name, "relay",
                )
                .await?,
            ] {
                ensure!(present, "a child is missing");
            }
            observed(&admin, &ns.name, "relay").await
        },
    )
    .await?;
    apply_cr(
        &ns,
        &FULL_CR.replace(
            "  ingress:\n    enabled: true",
            "  ingress:\n    enabled: false",
        ),
    )?;
    eventually(
        "the Ingress pruned, as the ServiceAccount",
        DEFAULT_TIMEOUT,
        || async {
            ensure!(
                !exists::<Ingress>(&admin, &ns.name, "relay").await?,
                "still there"
            );
            observed(&admin, &ns.name, "relay").await
        },
    )
    .await?;
    let kube_errors = metrics
        .errors
        .get_or_create(&ErrorLabels { error: "kube" })
        .get();
    println!(
        "observed: as the ServiceAccount the operator took the Lease ({:?}), made all 6 children, wrote status, pruned the Ingress; Kubernetes API errors: {kube_errors}",
        lease_holder(&admin, &ns.name).await?
    );
    assert_eq!(kube_errors, 0, "{}", metrics.encode());
    stop.send(true)?;
    let _ = tokio::time::timeout(Duration::from_secs(20), task).await;
    Ok(())
}

// ---------------------------------------------------------------------------
// 6. Pod Security Standard "restricted"
// ---------------------------------------------------------------------------

/// `kubectl create -f -` in the namespace: (succeeded, stderr) — stderr carries
/// admission warnings as well as errors.
fn kubectl_create(
    ns: &TestNamespace,
    manifest: &serde_json::Value,
) -> anyhow::Result<(bool, String)> {
    use std::io::Write;
    let mut child = ns
        .control_plane()
        .kubectl_command(&["-n", &ns.name, "create", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(manifest.to_string().as_bytes())?;
    let out = child.wait_with_output()?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rendered_pod_is_admitted_under_pod_security_restricted() -> anyhow::Result<()> {
    let (client, ns) = test_namespace("op-pss").await;
    install_crd(&ns).await?;
    let cp = ns.control_plane();
    cp.kubectl_ok(&[
        "label",
        "namespace",
        &ns.name,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/warn=restricted",
    ])?;
    // The full CR names priorityClassName "high"; the Priority admission plugin needs it to exist.
    let pc = cp.kubectl(&["create", "priorityclass", "high", "--value=1000"]);
    let pc_err = String::from_utf8_lossy(&pc.stderr);
    ensure!(
        pc.status.success() || pc_err.contains("already exists"),
        "{pc_err}"
    );

    apply_cr(&ns, FULL_CR)?;
    let cr = cr_api(&client, &ns.name).get("relay").await?;
    let dereferenced = Dereferenced {
        redis_password_hash: Some(hash(b"pw")),
    };
    let valid = validate(&cr, IMAGE, dereferenced)?;
    let template = render(&valid).deployment.spec.context("spec")?.template;
    let labels = template.metadata.as_ref().and_then(|m| m.labels.clone());
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "rendered-template", "labels": labels},
        "spec": template.spec,
    });
    let (ok, stderr) = kubectl_create(&ns, &pod)?;
    println!(
        "tried: the full CR's rendered pod template as a Pod in a namespace enforcing restricted → created={ok}, stderr={:?}",
        stderr.trim()
    );
    ensure!(ok, "the rendered pod was refused: {stderr}");
    ensure!(!stderr.contains("Warning"), "admission warnings: {stderr}");

    // The check is active: the same pod without its hardening is refused.
    let mut bare = pod.clone();
    bare["metadata"]["name"] = json!("not-hardened");
    bare["spec"]["securityContext"] = json!({});
    for c in bare["spec"]["containers"]
        .as_array_mut()
        .context("containers")?
    {
        c["securityContext"] = json!({});
    }
    let (ok, stderr) = kubectl_create(&ns, &bare)?;
    println!(
        "tried: the same pod without securityContexts → created={ok}, stderr={:?}",
        stderr.trim()
    );
    ensure!(
        !ok && stderr.contains("violates PodSecurity \"restricted"),
        "not refused: {stderr}"
    );
    Ok(())
}
