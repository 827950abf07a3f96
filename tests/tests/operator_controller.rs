//! The operator against the real control plane (kube-apiserver, etcd and
//! kube-controller-manager from tests/controlplane): CRD admission, the
//! children of a minimal and a full CR, edits, pruning, scaling, drift,
//! garbage collection, missing Secrets, Ready, and a quiet steady state.
//!
//! There is no kubelet: `Ready` is reached by marking the pods Running/Ready
//! through the pods/status subresource (see `mark_pods_ready`); the real
//! ReplicaSet and Deployment controllers then count them available.
//! Each test has its own namespace and its own in-process operator watching
//! only that namespace.

mod operator_support;

use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use cmw_operator::metrics::Metrics;
use cmw_operator::readiness::Readiness;
use cmw_operator::reconcile::dereference::{Dereferenced, hash};
use cmw_operator::reconcile::validate::validate;
use cmw_operator::render::render;
use cmw_tests::controlplane::{DEFAULT_TIMEOUT, eventually, test_namespace};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use operator_support::*;
use serde_json::json;

/// The server's objects carry every field the renderer produced, with the same value.
async fn assert_children_match_render(
    client: &Client,
    ns: &str,
    redis_hash: Option<String>,
) -> anyhow::Result<()> {
    let cr = cr_api(client, ns).get(NAME).await?;
    let dereferenced = Dereferenced {
        redis_password_hash: redis_hash,
    };
    let want = render(&validate(&cr, IMAGE, dereferenced)?);
    assert_child_matches(client, ns, Some(&want.deployment), "Deployment").await?;
    assert_child_matches(client, ns, Some(&want.service), "Service").await?;
    assert_child_matches(client, ns, want.network_policy.as_ref(), "NetworkPolicy").await?;
    assert_child_matches(client, ns, want.ingress.as_ref(), "Ingress").await?;
    assert_child_matches(client, ns, want.hpa.as_ref(), "HPA").await?;
    assert_child_matches(client, ns, want.pdb.as_ref(), "PDB").await?;
    Ok(())
}

/// When the renderer produced a child of this kind, the server's object
/// carries every field of it with the same value.
async fn assert_child_matches<K>(
    client: &Client,
    ns: &str,
    want: Option<&K>,
    kind: &str,
) -> anyhow::Result<()>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    if let Some(want) = want {
        let got = get::<K>(client, ns, NAME).await?;
        assert_subset(
            &serde_json::to_value(want)?,
            &serde_json::to_value(&got)?,
            kind,
        );
    }
    Ok(())
}

/// Waits until the operator has not reconciled for `quiet`.
async fn until_quiet(metrics: &Metrics, quiet: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + DEFAULT_TIMEOUT;
    let (mut seen, mut since) = (metrics.reconciles.get(), Instant::now());
    while since.elapsed() < quiet {
        ensure!(
            Instant::now() < deadline,
            "still reconciling after {DEFAULT_TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = metrics.reconciles.get();
        if now != seen {
            (seen, since) = (now, Instant::now());
        }
    }
    Ok(())
}

fn env_value(d: &Deployment, name: &str) -> Option<String> {
    d.spec.as_ref()?.template.spec.as_ref()?.containers[0]
        .env
        .as_ref()?
        .iter()
        .find(|e| e.name == name)
        .and_then(|e| e.value.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crd_installs_and_bad_crs_are_refused_at_admission() -> anyhow::Result<()> {
    let (client, ns) = test_namespace("op-admission").await;
    install_crd(&ns).await?;
    let crd = Api::<CustomResourceDefinition>::all(client.clone())
        .get("claudemiddlewares.middleware.claude-relay.io")
        .await?;
    assert_eq!(crd.spec.names.short_names, Some(vec!["cmw".to_string()]));
    assert_eq!(crd.spec.names.categories, Some(vec!["claude".to_string()]));
    let version = &crd.spec.versions[0];
    let scale = version
        .subresources
        .as_ref()
        .and_then(|s| s.scale.clone())
        .context("scale subresource")?;
    assert_eq!(
        scale.label_selector_path.as_deref(),
        Some(".status.selector")
    );

    // Schema errors (ranges, enums) are reported together…
    let bad_schema = r#"
apiVersion: middleware.claude-relay.io/v1alpha1
kind: ClaudeMiddleware
metadata: {name: bad, namespace: ai}
spec:
  replicas: -1
  target: {url: "http://relay:3001", timeoutSeconds: 0}
  redis: {host: redis, port: 70000}
  proxy: {logFormat: xml}
"#;
    let err = apply_cr(&ns, bad_schema)
        .expect_err("a bad CR must be refused")
        .to_string();
    for needle in [
        "spec.target.timeoutSeconds",
        "spec.replicas",
        "spec.redis.port",
        "spec.proxy.logFormat",
    ] {
        assert!(
            err.contains(needle),
            "admission message lacks {needle:?}: {err}"
        );
    }
    // …and CEL rules are checked once the schema is satisfied.
    let bad_rules = r#"
apiVersion: middleware.claude-relay.io/v1alpha1
kind: ClaudeMiddleware
metadata: {name: bad, namespace: ai}
spec:
  target: {url: "ftp://relay:3001"}
  redis: {host: redis}
  auth: {enabled: true}
  autoscaling: {enabled: true, minReplicas: 5, maxReplicas: 2}
  podDisruptionBudget: {minAvailable: 1, maxUnavailable: 1}
"#;
    let err = apply_cr(&ns, bad_rules)
        .expect_err("a bad CR must be refused")
        .to_string();
    for needle in [
        "target.url must be an http:// or https:// URL",
        "auth.apiKeysSecretRef is required when auth.enabled is true",
        "autoscaling.minReplicas must be <= autoscaling.maxReplicas",
        "set at most one of podDisruptionBudget.minAvailable and podDisruptionBudget.maxUnavailable",
    ] {
        assert!(
            err.contains(needle),
            "admission message lacks {needle:?}: {err}"
        );
    }
    let missing = "apiVersion: middleware.claude-relay.io/v1alpha1\nkind: ClaudeMiddleware\nmetadata: {name: bad, namespace: ai}\nspec: {redis: {host: r}}\n";
    let err = apply_cr(&ns, missing)
        .expect_err("target is required")
        .to_string();
    assert!(err.contains("spec.target: Required value"), "{err}");

    // The smallest valid CR is accepted, and the printer columns and category work.
    apply_cr(&ns, MINIMAL_CR)?;
    let table = ns
        .control_plane()
        .kubectl_ok(&["get", "claude", "-n", &ns.name])?;
    for column in ["NAME", "READY", "REPLICAS", "ENDPOINT", "AGE"] {
        assert!(table.contains(column), "{table}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minimal_cr_gets_its_children_turns_ready_and_then_writes_nothing() -> anyhow::Result<()> {
    let OperatorTest {
        client,
        ns,
        operator,
    } = OperatorTest::start("op-minimal").await?;

    let started = Instant::now();
    apply_and_wait(&client, &ns, MINIMAL_CR, &MINIMAL_CHILDREN).await?;
    println!(
        "kubectl apply → all children exist: {:?}",
        started.elapsed()
    );

    let cr = cr_api(&client, &ns.name).get(NAME).await?;
    let uid = cr.uid().context("uid")?;
    let d = get::<Deployment>(&client, &ns.name, NAME).await?;
    let owner = &d.owner_references()[0];
    assert_eq!(
        (owner.uid.as_str(), owner.controller),
        (uid.as_str(), Some(true))
    );
    assert_eq!(
        d.labels()["app.kubernetes.io/managed-by"],
        "claude-middleware-operator"
    );
    assert_children_match_render(&client, &ns.name, None).await?;

    let status = eventually(
        "status with selector and endpoint",
        DEFAULT_TIMEOUT,
        || async {
            let s = cr_api(&client, &ns.name)
                .get(NAME)
                .await?
                .status
                .context("no status")?;
            ensure!(s.endpoint.is_some(), "no endpoint yet");
            Ok(s)
        },
    )
    .await?;
    assert_eq!(
        status.selector.as_deref(),
        Some("app.kubernetes.io/instance=relay,app.kubernetes.io/name=claude-middleware")
    );
    assert_eq!(
        status.endpoint.as_deref(),
        Some(format!("http://relay.{}.svc:8080", ns.name).as_str())
    );

    // No kubelet: mark the pod Ready through pods/status, as a kubelet would.
    eventually(
        "Ready=True once the Deployment is available",
        DEFAULT_TIMEOUT,
        || async {
            mark_pods_ready(&client, &ns.name, NAME).await?;
            let cr = cr_api(&client, &ns.name).get(NAME).await?;
            let ready = cr
                .status
                .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "Ready"));
            match ready {
                Some(c) if c.status == "True" => Ok(()),
                other => bail!("Ready is {other:?}"),
            }
        },
    )
    .await?;
    let cr = cr_api(&client, &ns.name).get(NAME).await?;
    let s = cr.status.clone().context("status")?;
    assert_eq!(s.observed_generation, cr.metadata.generation);
    assert_eq!(
        (s.replicas, s.ready_replicas, s.updated_replicas),
        (1, 1, 1)
    );
    assert_eq!(s.replicas_summary.as_deref(), Some("1/1"));

    // Steady state: after convergence nothing is written, neither the
    // children nor the CR's status, and nothing is reconciled (no reconcile
    // storm from our own writes, no needless periodic work). It starts once
    // the last events of the convergence (the Ready status write, the
    // controller-manager's last Deployment status) have been handled.
    until_quiet(&operator.metrics, Duration::from_secs(5)).await?;
    let versions = || async {
        Ok::<_, anyhow::Error>(vec![
            cr_api(&client, &ns.name)
                .get(NAME)
                .await?
                .resource_version(),
            get::<Deployment>(&client, &ns.name, NAME)
                .await?
                .resource_version(),
            get::<Service>(&client, &ns.name, NAME)
                .await?
                .resource_version(),
            get::<NetworkPolicy>(&client, &ns.name, NAME)
                .await?
                .resource_version(),
        ])
    };
    let before = versions().await?;
    let reconciles_before = operator.metrics.reconciles.get();
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(
        versions().await?,
        before,
        "resourceVersions changed in a steady state"
    );
    let reconciles = operator.metrics.reconciles.get() - reconciles_before;
    println!("reconciles during the 30 s steady window: {reconciles}");
    assert_eq!(reconciles, 0, "reconciled during a steady state");
    operator.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_cr_children_edits_prune_autoscaling_secrets_and_garbage_collection()
-> anyhow::Result<()> {
    let OperatorTest {
        client,
        ns,
        operator: _operator,
    } = OperatorTest::start("op-full").await?;
    put_secret(&client, &ns.name, "redis-auth", &[("password", "s3cret")]).await?;
    put_secret(
        &client,
        &ns.name,
        "api-keys",
        &[("keys", "cr_0123456789abcdef")],
    )
    .await?;
    apply_and_wait(&client, &ns, FULL_CR, &ALL_CHILDREN).await?;
    eventually("children as rendered", DEFAULT_TIMEOUT, || async {
        assert_children_match_render(&client, &ns.name, Some(hash(b"s3cret"))).await
    })
    .await?;
    let ingress = get::<Ingress>(&client, &ns.name, NAME).await?;
    assert!(
        !ingress
            .annotations()
            .contains_key("nginx.ingress.kubernetes.io/rewrite-target")
    );

    // Autoscaling is on: the operator's applied configuration has no
    // spec.replicas, and the HPA (kube-controller-manager) sets it.
    let d = get::<Deployment>(&client, &ns.name, NAME).await?;
    let ours = d
        .managed_fields()
        .iter()
        .find(|m| {
            m.manager.as_deref() == Some("claude-middleware-operator")
                && m.operation.as_deref() == Some("Apply")
        })
        .context("no managedFields entry of the operator")?;
    let fields = serde_json::to_value(&ours.fields_v1)?;
    assert!(fields["f:spec"].is_object(), "{fields}");
    assert!(
        fields["f:spec"].get("f:replicas").is_none(),
        "operator still owns spec.replicas: {fields}"
    );
    eventually(
        "the HPA scales the Deployment to minReplicas",
        DEFAULT_TIMEOUT,
        || async {
            let d = get::<Deployment>(&client, &ns.name, NAME).await?;
            ensure!(d.spec.and_then(|s| s.replicas) == Some(2), "not yet");
            Ok(())
        },
    )
    .await?;

    // Rotating the Redis password (a Secret the CR references, found through
    // the Secret mapper) rolls the pods via the template hash.
    put_secret(&client, &ns.name, "redis-auth", &[("password", "rotated")]).await?;
    eventually(
        "the template hash follows the Secret",
        DEFAULT_TIMEOUT,
        || async {
            let d = get::<Deployment>(&client, &ns.name, NAME).await?;
            let a = d
                .spec
                .and_then(|s| s.template.metadata)
                .and_then(|m| m.annotations)
                .unwrap_or_default();
            ensure!(
                a.get("middleware.claude-relay.io/redis-password-hash") == Some(&hash(b"rotated")),
                "{a:?}"
            );
            Ok(())
        },
    )
    .await?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    assert!(
        secrets
            .get("redis-auth")
            .await?
            .owner_references()
            .is_empty(),
        "no owner refs on Secrets"
    );

    // Edit: ingress off and a longer timeout.
    let edited = FULL_CR
        .replace(
            "  ingress:\n    enabled: true",
            "  ingress:\n    enabled: false",
        )
        .replace("timeoutSeconds: 600", "timeoutSeconds: 900");
    let without_ingress: Vec<&str> = ALL_CHILDREN
        .into_iter()
        .filter(|k| *k != "Ingress")
        .collect();
    apply_and_wait(&client, &ns, &edited, &without_ingress).await?;
    eventually("PROXY_TIMEOUT updated", DEFAULT_TIMEOUT, || async {
        let d = get::<Deployment>(&client, &ns.name, NAME).await?;
        ensure!(
            env_value(&d, "PROXY_TIMEOUT").as_deref() == Some("900"),
            "not yet"
        );
        Ok(())
    })
    .await?;

    // Deleting the CR garbage-collects every child (kube-controller-manager's GC).
    ns.control_plane()
        .kubectl_ok(&["delete", "cmw", NAME, "-n", &ns.name, "--wait=false"])?;
    wait_children(&client, &ns.name, &[]).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_subresource_reaches_the_deployment_and_drift_is_repaired() -> anyhow::Result<()> {
    let OperatorTest {
        client,
        ns,
        operator: _operator,
    } = OperatorTest::start("op-scale").await?;
    apply_and_wait(&client, &ns, MINIMAL_CR, &MINIMAL_CHILDREN).await?;

    ns.control_plane()
        .kubectl_ok(&["scale", "cmw/relay", "--replicas=4", "-n", &ns.name])?;
    eventually(
        "Deployment at 4 replicas and a PDB",
        DEFAULT_TIMEOUT,
        || async {
            let d = get::<Deployment>(&client, &ns.name, NAME).await?;
            ensure!(d.spec.and_then(|s| s.replicas) == Some(4), "not yet");
            ensure!(
                exists::<PodDisruptionBudget>(&client, &ns.name, NAME).await?,
                "no PDB yet"
            );
            Ok(())
        },
    )
    .await?;
    eventually("status.replicas follows", DEFAULT_TIMEOUT, || async {
        let s = cr_api(&client, &ns.name)
            .get(NAME)
            .await?
            .status
            .context("status")?;
        ensure!(s.replicas == 4, "status.replicas {}", s.replicas);
        Ok(())
    })
    .await?;

    // A hand edit of a field the operator owns is restored; a field it does
    // not own is left alone.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let hand = json!({
        "metadata": {"annotations": {"example.com/hand-edit": "kept"}},
        "spec": {"revisionHistoryLimit": 9, "minReadySeconds": 3}
    });
    let pp = PatchParams {
        field_manager: Some("hand-editor".into()),
        ..Default::default()
    };
    deployments.patch(NAME, &pp, &Patch::Merge(&hand)).await?;
    eventually(
        "revisionHistoryLimit restored, foreign fields kept",
        DEFAULT_TIMEOUT,
        || async {
            let d = deployments.get(NAME).await?;
            let spec = d.spec.clone().context("spec")?;
            ensure!(
                spec.revision_history_limit == Some(5),
                "revisionHistoryLimit {:?}",
                spec.revision_history_limit
            );
            ensure!(
                spec.min_ready_seconds == Some(3),
                "minReadySeconds {:?}",
                spec.min_ready_seconds
            );
            ensure!(
                d.annotations()
                    .get("example.com/hand-edit")
                    .map(String::as_str)
                    == Some("kept"),
                "annotation lost"
            );
            Ok(())
        },
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_secret_or_invalid_spec_is_degraded_with_an_event_and_nothing_is_torn_down()
-> anyhow::Result<()> {
    let OperatorTest {
        client,
        ns,
        operator: _operator,
    } = OperatorTest::start("op-secret").await?;
    apply_and_wait(&client, &ns, MINIMAL_CR, &MINIMAL_CHILDREN).await?;
    condition(&client, &ns.name, NAME, "Degraded", "False").await?;

    let with_password = MINIMAL_CR.replace(
        "redis: {host: redis}",
        "redis: {host: redis, passwordSecretRef: {name: redis-auth, key: password}}",
    );
    apply_cr(&ns, &with_password)?;
    let degraded = condition(&client, &ns.name, NAME, "Degraded", "True").await?;
    assert_eq!(degraded.reason, "SecretMissing");
    assert!(
        degraded.message.contains("redis-auth"),
        "{}",
        degraded.message
    );
    condition(&client, &ns.name, NAME, "Stalled", "True").await?;
    warning_event(&client, &ns.name, "SecretMissing").await?;
    // Still running as before: the children were not deleted or changed.
    let d = get::<Deployment>(&client, &ns.name, NAME).await?;
    assert!(env_value(&d, "REDIS_HOST").is_some());
    assert_eq!(
        existing_children(&client, &ns.name).await?,
        MINIMAL_CHILDREN
    );

    // The Secret appears without the key: a different reason (found through the Secret watch).
    put_secret(&client, &ns.name, "redis-auth", &[("other", "x")]).await?;
    eventually("reason SecretKeyMissing", DEFAULT_TIMEOUT, || async {
        let c = condition(&client, &ns.name, NAME, "Degraded", "True").await?;
        ensure!(c.reason == "SecretKeyMissing", "reason {}", c.reason);
        Ok(())
    })
    .await?;
    // Fixed: Degraded clears and the password reaches the pod template.
    put_secret(&client, &ns.name, "redis-auth", &[("password", "pw")]).await?;
    condition(&client, &ns.name, NAME, "Degraded", "False").await?;
    let d = get::<Deployment>(&client, &ns.name, NAME).await?;
    let c = &d
        .spec
        .clone()
        .context("spec")?
        .template
        .spec
        .context("pod")?
        .containers[0];
    let pw = c
        .env
        .clone()
        .unwrap_or_default()
        .into_iter()
        .find(|e| e.name == "REDIS_PASSWORD")
        .context("REDIS_PASSWORD")?;
    assert_eq!(
        pw.value_from.and_then(|v| v.secret_key_ref).map(|s| s.name),
        Some("redis-auth".to_string())
    );

    // What only the validate step can refuse (the schema admits five digits
    // of port): Degraded with the field named, an Event, and the Deployment
    // left as it was.
    let before = get::<Deployment>(&client, &ns.name, NAME).await?;
    apply_cr(
        &ns,
        &with_password.replace("claude-relay:3001", "claude-relay:99999"),
    )?;
    let invalid = eventually("reason InvalidSpec", DEFAULT_TIMEOUT, || async {
        let c = condition(&client, &ns.name, NAME, "Degraded", "True").await?;
        ensure!(c.reason == "InvalidSpec", "reason {}", c.reason);
        Ok(c)
    })
    .await?;
    assert!(
        invalid.message.contains("spec.target.url"),
        "{}",
        invalid.message
    );
    warning_event(&client, &ns.name, "InvalidSpec").await?;
    let after = get::<Deployment>(&client, &ns.name, NAME).await?;
    assert_eq!(
        after.spec, before.spec,
        "an invalid spec changed the Deployment"
    );
    assert_eq!(
        existing_children(&client, &ns.name).await?,
        MINIMAL_CHILDREN
    );
    Ok(())
}

/// Waits for a Warning Event with `reason` about the CR.
async fn warning_event(client: &Client, ns: &str, reason: &str) -> anyhow::Result<()> {
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    eventually(
        &format!("a Warning Event {reason} on the CR"),
        DEFAULT_TIMEOUT,
        || async {
            let list = events.list(&ListParams::default()).await?;
            list.items
                .iter()
                .find(|e| {
                    e.reason.as_deref() == Some(reason)
                        && e.type_.as_deref() == Some("Warning")
                        && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(NAME)
                })
                .map(|_| ())
                .with_context(|| format!("no {reason} event yet"))
        },
    )
    .await
}

/// One operator replica of two in this process: its stop switch, metrics and task.
struct Replica {
    id: String,
    stop: tokio::sync::watch::Sender<bool>,
    metrics: std::sync::Arc<cmw_operator::metrics::Metrics>,
    task: tokio::task::JoinHandle<Result<Outcome, String>>,
}

use cmw_operator::leader::{LeaseConfig, Outcome, run_as_leader};

fn replica(client: &Client, ns: &str, id: &str) -> Replica {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let metrics = std::sync::Arc::new(cmw_operator::metrics::Metrics::default());
    let lease = LeaseConfig {
        name: "claude-middleware-operator".into(),
        namespace: ns.into(),
        identity: id.into(),
        duration_seconds: 6,
        grace_seconds: 2,
    };
    let config = controller_config(ns, id);
    let (client, m) = (client.clone(), metrics.clone());
    let task = tokio::spawn(async move {
        run_as_leader(client, lease, config, m, Readiness::default(), stopped)
            .await
            .map_err(|e| e.to_string())
    });
    Replica {
        id: id.into(),
        stop,
        metrics,
        task,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_lease_holder_reconciles_and_a_standby_takes_over() -> anyhow::Result<()> {
    let (client, ns) = test_namespace("op-leader").await;
    install_crd(&ns).await?;
    let a = replica(&client, &ns.name, "replica-a");
    let b = replica(&client, &ns.name, "replica-b");

    let (leader, _) = eventually("exactly one leader", DEFAULT_TIMEOUT, || async {
        let (la, lb) = (a.metrics.leader.get(), b.metrics.leader.get());
        ensure!(la + lb == 1, "leader gauges a={la} b={lb}");
        Ok(if la == 1 { ("a", "b") } else { ("b", "a") })
    })
    .await?;
    let (leader, standby) = if leader == "a" { (a, b) } else { (b, a) };
    assert_eq!(
        lease_holder(&client, &ns.name).await?.as_deref(),
        Some(leader.id.as_str())
    );

    apply_and_wait(&client, &ns, MINIMAL_CR, &MINIMAL_CHILDREN).await?;
    assert_eq!(
        standby.metrics.reconciles.get(),
        0,
        "the standby must not reconcile"
    );

    // The leader stops (as on SIGTERM): it releases the Lease and the standby
    // takes over without waiting for expiry, and acts on the next change.
    leader.stop.send(true)?;
    let outcome = leader.task.await?.map_err(anyhow::Error::msg)?;
    assert_eq!(outcome, Outcome::Stopped);
    eventually("the standby leads", DEFAULT_TIMEOUT, || async {
        ensure!(standby.metrics.leader.get() == 1, "not yet");
        ensure!(
            lease_holder(&client, &ns.name).await?.as_deref() == Some(standby.id.as_str()),
            "holder"
        );
        Ok(())
    })
    .await?;
    ns.control_plane()
        .kubectl_ok(&["scale", "cmw/relay", "--replicas=2", "-n", &ns.name])?;
    eventually("the new leader reconciles", DEFAULT_TIMEOUT, || async {
        let d = get::<Deployment>(&client, &ns.name, NAME).await?;
        ensure!(d.spec.and_then(|s| s.replicas) == Some(2), "not yet");
        Ok(())
    })
    .await?;
    standby.stop.send(true)?;
    let _ = standby.task.await?;
    Ok(())
}
