//! Shared by the operator integration tests: the usual setup in one call
//! ([`OperatorTest`]: namespace → CRD → operator, then CR → children), the
//! operator in-process or as a process (`process.rs`), kubectl with stdin,
//! and small reads and assertions on CRs and children.

#![allow(dead_code)]

pub mod process;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use cmw_operator::crd::ClaudeMiddleware;
use cmw_operator::metrics::Metrics;
use cmw_operator::readiness::Readiness;
use cmw_operator::{ControllerConfig, run_controller};
use cmw_tests::controlplane::{DEFAULT_TIMEOUT, TestNamespace, eventually, test_namespace};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::{ByteString, NamespaceResourceScope};
use kube::api::{ListParams, ObjectMeta, Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const MINIMAL_CR: &str = include_str!("../../../operator/tests/golden/minimal.cr.yaml");
pub const FULL_CR: &str = include_str!("../../../operator/tests/golden/full.cr.yaml");
pub const CRD_YAML: &str = include_str!("../../../crds/claudemiddleware.yaml");
pub const IMAGE: &str = "example.invalid/claude-middleware:test";
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by=claude-middleware-operator";

/// Server-side applies the checked-in CRD (shared by every test and test
/// process; SSA makes that idempotent) and waits until it is served.
pub async fn install_crd(ns: &TestNamespace) -> anyhow::Result<()> {
    let cp = ns.control_plane();
    kubectl_stdin(
        ns,
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=operator-tests",
            "-f",
            "-",
        ],
        CRD_YAML,
        false,
    )?;
    // Polled rather than `kubectl wait`, which can fail on a CRD whose
    // status has no conditions yet ("accessor error: <nil>").
    eventually(
        "the ClaudeMiddleware CRD Established",
        Duration::from_secs(60),
        || async {
            let established = cp.kubectl_ok(&[
                "get",
                "crd/claudemiddlewares.middleware.claude-relay.io",
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Established\")].status}",
            ])?;
            ensure!(established.trim() == "True", "Established={established:?}");
            Ok(())
        },
    )
    .await
}

/// Runs `kubectl ARGS` with `stdin`; in the test namespace when `namespaced`.
/// Returns stdout, or fails with stderr.
pub fn kubectl_stdin(
    ns: &TestNamespace,
    args: &[&str],
    stdin: &str,
    namespaced: bool,
) -> anyhow::Result<String> {
    let mut all: Vec<&str> = vec![];
    if namespaced {
        all.extend(["--namespace", ns.name.as_str()]);
    }
    all.extend_from_slice(args);
    let mut child = ns
        .control_plane()
        .kubectl_command(&all)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("spawning kubectl")?;
    child
        .stdin
        .take()
        .context("kubectl stdin")?
        .write_all(stdin.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "kubectl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `kubectl apply -f -` of a CR fixture moved into the test namespace.
pub fn apply_cr(ns: &TestNamespace, yaml: &str) -> anyhow::Result<String> {
    kubectl_stdin(
        ns,
        &["apply", "-f", "-"],
        &in_namespace(yaml, &ns.name),
        true,
    )
}

pub fn in_namespace(yaml: &str, ns: &str) -> String {
    yaml.replace("namespace: ai", &format!("namespace: {ns}"))
}

/// The operator running in this process, watching one namespace; stopped on drop.
pub struct Operator {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    pub metrics: Arc<Metrics>,
    pub readiness: Readiness,
}

impl Operator {
    pub fn start(client: Client, ns: &str) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        let metrics = Arc::new(Metrics::default());
        let readiness = Readiness::default();
        let task = tokio::spawn(run_controller(
            client,
            controller_config(ns, &format!("test-{ns}")),
            metrics.clone(),
            readiness.clone(),
            async move {
                let _ = stopped.await;
            },
        ));
        Self {
            stop: Some(stop),
            task,
            metrics,
            readiness,
        }
    }

    /// Graceful stop: waits for in-flight reconciles.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(20), &mut self.task).await;
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The controller's configuration in the tests: one namespace, the test image.
pub fn controller_config(ns: &str, instance: &str) -> ControllerConfig {
    ControllerConfig {
        namespace: Some(ns.to_string()),
        proxy_image: IMAGE.into(),
        instance: Some(instance.into()),
    }
}

/// The usual start of an operator test: a fresh namespace, the CRD, and an
/// in-process operator watching only that namespace. Destructure it:
/// `let OperatorTest { client, ns, operator } = OperatorTest::start("x").await?;`
pub struct OperatorTest {
    pub client: Client,
    pub operator: Operator,
    pub ns: TestNamespace,
}

impl OperatorTest {
    pub async fn start(prefix: &str) -> anyhow::Result<Self> {
        let (client, ns) = test_namespace(prefix).await;
        install_crd(&ns).await?;
        let operator = Operator::start(client.clone(), &ns.name);
        Ok(Self {
            client,
            operator,
            ns,
        })
    }
}

/// Applies a CR fixture and waits until the CR named `relay` has exactly the
/// children `want` (kind names, as [`existing_children`]).
pub async fn apply_and_wait(
    client: &Client,
    ns: &TestNamespace,
    cr: &str,
    want: &[&str],
) -> anyhow::Result<()> {
    apply_cr(ns, cr)?;
    wait_children(client, &ns.name, want).await
}

/// What the minimal CR makes.
pub const MINIMAL_CHILDREN: [&str; 3] = ["Deployment", "Service", "NetworkPolicy"];
/// What the full CR makes: every kind.
pub const ALL_CHILDREN: [&str; 6] = [
    "Deployment",
    "Service",
    "NetworkPolicy",
    "Ingress",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
];
/// The name of the CR in the fixtures.
pub const NAME: &str = "relay";

/// Which of the six child kinds exist for the CR `relay`, by kind name.
pub async fn existing_children(client: &Client, ns: &str) -> anyhow::Result<Vec<&'static str>> {
    let present = [
        exists::<Deployment>(client, ns, NAME).await?,
        exists::<Service>(client, ns, NAME).await?,
        exists::<NetworkPolicy>(client, ns, NAME).await?,
        exists::<Ingress>(client, ns, NAME).await?,
        exists::<HorizontalPodAutoscaler>(client, ns, NAME).await?,
        exists::<PodDisruptionBudget>(client, ns, NAME).await?,
    ];
    Ok(ALL_CHILDREN
        .into_iter()
        .zip(present)
        .filter_map(|(kind, present)| present.then_some(kind))
        .collect())
}

/// Waits until the CR `relay` has exactly the children `want`.
pub async fn wait_children(client: &Client, ns: &str, want: &[&str]) -> anyhow::Result<()> {
    eventually(&format!("children {want:?}"), DEFAULT_TIMEOUT, || async {
        let have = existing_children(client, ns).await?;
        ensure!(have == want, "have {have:?}");
        Ok(())
    })
    .await
}

/// Server-side applies a Secret with `data` (as a user would: not owned by the CR).
pub async fn put_secret(
    client: &Client,
    ns: &str,
    name: &str,
    data: &[(&str, &str)],
) -> anyhow::Result<()> {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect::<BTreeMap<_, _>>(),
        ),
        ..Default::default()
    };
    Api::<Secret>::namespaced(client.clone(), ns)
        .patch(
            name,
            &PatchParams::apply("operator-tests").force(),
            &Patch::Apply(&secret),
        )
        .await?;
    Ok(())
}

/// The holder of the operator's Lease in `ns`.
pub async fn lease_holder(client: &Client, ns: &str) -> anyhow::Result<Option<String>> {
    Ok(Api::<Lease>::namespaced(client.clone(), ns)
        .get_opt("claude-middleware-operator")
        .await?
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity))
}

/// Names of the objects of kind K labelled with the CR's instance.
pub async fn names_of<K>(client: &Client, ns: &str, instance: &str) -> anyhow::Result<Vec<String>>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let list = api
        .list(&ListParams::default().labels(&format!("app.kubernetes.io/instance={instance}")))
        .await?;
    let mut names: Vec<String> = list.items.iter().map(|o| o.name_any()).collect();
    names.sort();
    Ok(names)
}

/// The CR's status has caught up with its spec.
pub async fn observed(client: &Client, ns: &str, name: &str) -> anyhow::Result<()> {
    let cr = cr_api(client, ns).get(name).await?;
    let seen = cr.status.as_ref().and_then(|s| s.observed_generation);
    ensure!(
        seen == cr.metadata.generation,
        "{name}: observedGeneration {seen:?}, generation {:?}",
        cr.metadata.generation
    );
    Ok(())
}

pub fn cr_api(client: &Client, ns: &str) -> Api<ClaudeMiddleware> {
    Api::namespaced(client.clone(), ns)
}

pub async fn get<K>(client: &Client, ns: &str, name: &str) -> anyhow::Result<K>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    Ok(api.get(name).await?)
}

pub async fn exists<K>(client: &Client, ns: &str, name: &str) -> anyhow::Result<bool>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    Ok(api.get_opt(name).await?.is_some())
}

/// Waits for the CR's condition `type_` to have `status`.
pub async fn condition(
    client: &Client,
    ns: &str,
    name: &str,
    type_: &str,
    status: &str,
) -> anyhow::Result<Condition> {
    let api = cr_api(client, ns);
    eventually(
        &format!("{type_}={status} on {ns}/{name}"),
        DEFAULT_TIMEOUT,
        || async {
            let cr = api.get(name).await?;
            let c = cr
                .status
                .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == type_))
                .context("no such condition yet")?;
            if c.status != status {
                bail!("{type_} is {} ({}: {})", c.status, c.reason, c.message);
            }
            Ok(c)
        },
    )
    .await
}

/// There is no kubelet: play its part and mark every pod of the CR Running
/// and Ready through the pods/status subresource, so the ReplicaSet and
/// Deployment controllers count them available.
pub async fn mark_pods_ready(client: &Client, ns: &str, instance: &str) -> anyhow::Result<usize> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let list = pods
        .list(&ListParams::default().labels(&format!("app.kubernetes.io/instance={instance}")))
        .await?;
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    for pod in &list.items {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let status = json!({
            "status": {
                "phase": "Running",
                "conditions": [
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                    {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                    {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
                    {"type": "Ready", "status": "True", "lastTransitionTime": now},
                ],
            }
        });
        pods.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
            .await?;
    }
    Ok(list.items.len())
}

/// Fails unless every field set in `want` has the same value in `got`
/// (objects recursively; arrays element-wise and of the same length).
pub fn assert_subset(want: &serde_json::Value, got: &serde_json::Value, path: &str) {
    use serde_json::Value;
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for (k, v) in w {
                let g = g
                    .get(k)
                    .unwrap_or_else(|| panic!("{path}.{k} missing on the server: want {v}"));
                assert_subset(v, g, &format!("{path}.{k}"));
            }
        }
        (Value::Array(w), Value::Array(g)) => {
            assert_eq!(w.len(), g.len(), "{path}: want {want}, got {got}");
            for (i, (w, g)) in w.iter().zip(g).enumerate() {
                assert_subset(w, g, &format!("{path}[{i}]"));
            }
        }
        _ => assert_eq!(want, got, "{path}"),
    }
}
