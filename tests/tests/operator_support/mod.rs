//! Shared by the operator integration tests: install the CRD (idempotently),
//! run the operator in-process watching only the test's namespace, apply CR
//! YAML with kubectl, and small assertions on children.

#![allow(dead_code)]

use std::io::Write;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use cmw_operator::crd::ClaudeMiddleware;
use cmw_operator::metrics::Metrics;
use cmw_operator::{ControllerConfig, run_controller};
use cmw_tests::controlplane::{DEFAULT_TIMEOUT, TestNamespace, eventually};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, Resource};
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
pub fn install_crd(ns: &TestNamespace) -> anyhow::Result<()> {
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
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let established = cp
            .kubectl_ok(&[
                "get",
                "crd/claudemiddlewares.middleware.claude-relay.io",
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Established\")].status}",
            ])
            .unwrap_or_default();
        if established.trim() == "True" {
            return Ok(());
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the ClaudeMiddleware CRD was not Established within 60 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
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
}

impl Operator {
    pub fn start(client: Client, ns: &str) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        let metrics = Arc::new(Metrics::default());
        let config = ControllerConfig {
            namespace: Some(ns.to_string()),
            proxy_image: IMAGE.into(),
            instance: Some(format!("test-{ns}")),
        };
        let task = tokio::spawn(run_controller(
            client,
            config,
            metrics.clone(),
            async move {
                let _ = stopped.await;
            },
        ));
        Self {
            stop: Some(stop),
            task,
            metrics,
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
