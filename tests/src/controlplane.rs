//! The local Kubernetes control plane the operator's integration tests run against: a real
//! etcd, kube-apiserver and kube-controller-manager started by `tests/controlplane/up.sh`.
//!
//! One control plane serves a whole test run; every test gets a fresh namespace.
//!
//! ```no_run
//! use cmw_tests::controlplane::{eventually, test_namespace, DEFAULT_TIMEOUT};
//! use k8s_openapi::api::core::v1::ConfigMap;
//! use kube::Api;
//!
//! # async fn example() -> anyhow::Result<()> {
//! let (client, ns) = test_namespace("my-feature").await;
//! let config_maps: Api<ConfigMap> = Api::namespaced(client, &ns.name);
//! let cm = eventually("the ConfigMap", DEFAULT_TIMEOUT, || async {
//!     Ok(config_maps.get("made-by-the-operator").await?)
//! })
//! .await?;
//! # Ok(()) }
//! ```
//!
//! Which control plane is used:
//! - If `CLAUDE_MIDDLEWARE_CONTROLPLANE` names a directory holding a `kubeconfig` (the test
//!   command `scripts/test.sh` starts one and sets it), that one is used as it is.
//! - Otherwise `up.sh` is run for that directory, or for the default
//!   `${TMPDIR:-/tmp}/claude-middleware-controlplane`. `up.sh` does nothing if the control
//!   plane there is already healthy and serialises concurrent callers, so parallel test
//!   binaries share one. A control plane the harness started keeps running after the tests
//!   (the next run attaches in a second); stop it with `tests/controlplane/down.sh`.
//!
//! The identity in the kubeconfig is an admin (`system:masters`); RBAC is enforced for every
//! other identity, and ServiceAccount tokens can be requested (TokenRequest), so tests can
//! check least-privilege roles by acting as a ServiceAccount.

use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{ObjectMeta, PostParams};
use kube::config::{AuthInfo, KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

/// Names the directory of an already running control plane (or the one to start).
pub const DIR_ENV: &str = "CLAUDE_MIDDLEWARE_CONTROLPLANE";

/// Set to `1` to keep test namespaces after the tests, for looking at what they left.
pub const KEEP_NAMESPACES_ENV: &str = "CLAUDE_MIDDLEWARE_KEEP_NAMESPACES";

/// Label put on every test namespace, so leftovers can be found:
/// `kubectl get ns -l claude-middleware.test/namespace`.
pub const TEST_NAMESPACE_LABEL: &str = "claude-middleware.test/namespace";

/// A generous default for [`eventually`]: controllers on a busy 2-core machine can take
/// many seconds to act, and a slow pass is not a failure.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(90);

/// A running control plane: where its files are.
#[derive(Debug, Clone)]
pub struct ControlPlane {
    /// The directory `up.sh` manages (logs in `dir/logs`).
    pub dir: PathBuf,
    /// An admin kubeconfig for it.
    pub kubeconfig: PathBuf,
    /// A kubectl of the same Kubernetes release.
    pub kubectl: PathBuf,
}

/// The control plane of this test run, started or attached to on first use (see the module
/// docs). Blocks while `up.sh` runs, which on a machine without the cached binaries includes
/// building them (10-20 minutes).
///
/// # Panics
/// If no control plane can be started; the message says why and `up.sh` printed the logs.
pub fn shared() -> &'static ControlPlane {
    static SHARED: OnceLock<Result<ControlPlane, String>> = OnceLock::new();
    let result =
        SHARED.get_or_init(|| ControlPlane::start_or_attach().map_err(|e| format!("{e:#}")));
    match result {
        Ok(control_plane) => control_plane,
        Err(e) => panic!("no Kubernetes control plane for the tests: {e}"),
    }
}

impl ControlPlane {
    /// Attaches to the control plane in `$CLAUDE_MIDDLEWARE_CONTROLPLANE` if it has a
    /// kubeconfig, otherwise runs `up.sh` (a no-op when it is already healthy).
    pub fn start_or_attach() -> anyhow::Result<Self> {
        let named = std::env::var_os(DIR_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        if let Some(dir) = &named
            && dir.join("kubeconfig").is_file()
        {
            return Ok(Self::in_dir(dir));
        }
        let dir = named.unwrap_or_else(default_dir);
        Self::up(&dir)
    }

    /// Runs `tests/controlplane/up.sh DIR` and returns the control plane it left running.
    pub fn up(dir: &Path) -> anyhow::Result<Self> {
        let script = scripts_dir().join("up.sh");
        // up.sh reports progress (and on failure the daemons' logs) on stderr; let it through.
        let status = Command::new(&script)
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .status()
            .with_context(|| format!("running {}", script.display()))?;
        if !status.success() {
            bail!(
                "{} {} failed ({status}); see its output above",
                script.display(),
                dir.display()
            );
        }
        let control_plane = Self::in_dir(dir);
        if !control_plane.kubeconfig.is_file() {
            bail!(
                "{} succeeded but left no {}",
                script.display(),
                control_plane.kubeconfig.display()
            );
        }
        Ok(control_plane)
    }

    fn in_dir(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            kubeconfig: dir.join("kubeconfig"),
            kubectl: dir.join("bin").join("kubectl"),
        }
    }

    /// A kube client with the admin identity. Make one per test: a client is bound to the
    /// tokio runtime it was made on, and each `#[tokio::test]` has its own.
    pub async fn client(&self) -> anyhow::Result<Client> {
        Client::try_from(self.config().await?).context("making a kube client")
    }

    /// The admin client configuration, for tests that need to adjust it.
    pub async fn config(&self) -> anyhow::Result<Config> {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig)
            .with_context(|| format!("reading {}", self.kubeconfig.display()))?;
        Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .context("loading the control plane's kubeconfig")
    }

    /// A client acting as the ServiceAccount `namespace/name`, with a token from the
    /// TokenRequest API (valid one hour), so RBAC applies to it: for testing that a role
    /// grants exactly what a component needs. The ServiceAccount must exist.
    pub async fn service_account_client(
        &self,
        namespace: &str,
        name: &str,
    ) -> anyhow::Result<Client> {
        let admin = self.client().await?;
        let request = TokenRequest {
            spec: Some(TokenRequestSpec {
                expiration_seconds: Some(3600),
                ..TokenRequestSpec::default()
            }),
            ..TokenRequest::default()
        };
        let issued = Api::<ServiceAccount>::namespaced(admin, namespace)
            .create_token_request(name, &PostParams::default(), &request)
            .await
            .with_context(|| format!("requesting a token for ServiceAccount {namespace}/{name}"))?;
        let token = issued
            .status
            .and_then(|status| status.token)
            .context("TokenRequest answered without a token")?;
        let mut config = self.config().await?;
        config.auth_info = AuthInfo {
            token: Some(token.into()),
            ..AuthInfo::default()
        };
        Client::try_from(config).context("making a ServiceAccount kube client")
    }

    /// Runs the matching kubectl with `--kubeconfig` set to the admin kubeconfig.
    ///
    /// # Panics
    /// If kubectl cannot be started at all (a failing kubectl is returned, not a panic).
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_command(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.kubectl.display()))
    }

    /// Like [`ControlPlane::kubectl`], but fails unless kubectl succeeds, and returns its stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> anyhow::Result<String> {
        let output = self
            .kubectl_command(args)
            .output()
            .with_context(|| format!("running {}", self.kubectl.display()))?;
        if !output.status.success() {
            bail!(
                "kubectl {} failed ({}): {}",
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// A kubectl command with the admin kubeconfig, for callers that need stdin or env.
    pub fn kubectl_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.kubectl);
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .stdin(Stdio::null());
        command
    }
}

/// A namespace made for one test, deleted when dropped (without waiting for the deletion to
/// finish; namespace deletion runs in the controller-manager). Set
/// `CLAUDE_MIDDLEWARE_KEEP_NAMESPACES=1` to keep it.
#[derive(Debug)]
pub struct TestNamespace {
    /// The namespace's name: the test's prefix and a random suffix.
    pub name: String,
    control_plane: &'static ControlPlane,
}

impl TestNamespace {
    /// The control plane the namespace lives in.
    pub fn control_plane(&self) -> &'static ControlPlane {
        self.control_plane
    }

    /// Runs kubectl in this namespace (`--namespace` set).
    pub fn kubectl(&self, args: &[&str]) -> Output {
        let mut all = vec!["--namespace", self.name.as_str()];
        all.extend_from_slice(args);
        self.control_plane.kubectl(&all)
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if std::env::var(KEEP_NAMESPACES_ENV).is_ok_and(|v| v == "1") {
            return;
        }
        // kubectl rather than the kube client: Drop may run while the test's runtime is
        // shutting down, where a spawned task would never run. --wait=false returns as soon
        // as the deletion is accepted.
        let _ = self
            .control_plane
            .kubectl_command(&[
                "delete",
                "namespace",
                &self.name,
                "--wait=false",
                "--ignore-not-found",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The shared control plane, an admin client, and a fresh namespace named `PREFIX-xxxxxx`
/// (the prefix is made DNS-safe). The namespace is labelled [`TEST_NAMESPACE_LABEL`].
///
/// # Panics
/// If the control plane cannot be started or the namespace cannot be created.
pub async fn test_namespace(prefix: &str) -> (Client, TestNamespace) {
    test_namespace_in(shared(), prefix).await
}

/// Like [`test_namespace`], in a given control plane (e.g. a [`PrivateControlPlane`]'s).
///
/// # Panics
/// If the namespace cannot be created.
pub async fn test_namespace_in(
    control_plane: &'static ControlPlane,
    prefix: &str,
) -> (Client, TestNamespace) {
    let client = match control_plane.client().await {
        Ok(client) => client,
        Err(e) => panic!("kube client for the test control plane: {e:#}"),
    };
    let name = namespace_name(prefix, &random_suffix());
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some([(TEST_NAMESPACE_LABEL.to_string(), "true".to_string())].into()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    if let Err(e) = Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
    {
        panic!("creating test namespace {name}: {e}");
    }
    (
        client,
        TestNamespace {
            name,
            control_plane,
        },
    )
}

/// A control plane of one test alone, for faults that would disturb every other test
/// (restarting the API server, replacing the CRD): `up.sh` into a fresh temp dir (about
/// 6 s), `down.sh` when dropped, also when the test fails. Declare it before the namespaces
/// made in it, so that it is dropped after them.
pub struct PrivateControlPlane {
    /// Leaked so that [`TestNamespace`]s can refer to it; a few bytes per test.
    pub control_plane: &'static ControlPlane,
    _dir: tempfile::TempDir,
}

impl PrivateControlPlane {
    /// Starts one in a new temp dir named after `prefix`.
    pub fn start(prefix: &str) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("cmw-cp-{prefix}-"))
            .tempdir()
            .context("temp dir for a private control plane")?;
        let control_plane = ControlPlane::up(dir.path())?;
        Ok(Self {
            control_plane: Box::leak(Box::new(control_plane)),
            _dir: dir,
        })
    }

    /// SIGKILLs its kube-apiserver, leaves it down `down`, starts it again with the same
    /// command line (etcd keeps the data) and waits for `/readyz`
    /// (`tests/controlplane/restart-apiserver.sh`). Blocking.
    pub fn restart_apiserver(&self, down: Duration) -> anyhow::Result<()> {
        let script = scripts_dir().join("restart-apiserver.sh");
        let status = Command::new(&script)
            .arg(&self.control_plane.dir)
            .arg(down.as_secs().to_string())
            .stdin(Stdio::null())
            .status()
            .with_context(|| format!("running {}", script.display()))?;
        if !status.success() {
            bail!("{} failed ({status})", script.display());
        }
        Ok(())
    }
}

impl Drop for PrivateControlPlane {
    fn drop(&mut self) {
        let _ = Command::new(scripts_dir().join("down.sh"))
            .arg(&self.control_plane.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Polls `check` every 250 ms until it returns `Ok`, and returns that value; after
/// `timeout`, fails with `what` and the last error `check` returned. Use it for every
/// assertion about what a controller does, since controllers act eventually.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(value) => return Ok(value),
            Err(e) if Instant::now() >= deadline => {
                bail!("timed out after {timeout:?} waiting for {what}; last: {e:#}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// Where `up.sh` and `down.sh` live.
pub fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("controlplane")
}

/// `${TMPDIR:-/tmp}/claude-middleware-controlplane`, as in `up.sh`.
pub fn default_dir() -> PathBuf {
    let tmp = std::env::var_os("TMPDIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    tmp.unwrap_or_else(|| PathBuf::from("/tmp"))
        .join("claude-middleware-controlplane")
}

/// `prefix-suffix` as a valid namespace name (a DNS-1123 label of at most 63 characters).
fn namespace_name(prefix: &str, suffix: &str) -> String {
    let mut clean: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    clean.truncate(63 - 1 - suffix.len());
    let clean = clean.trim_matches('-');
    if clean.is_empty() {
        format!("test-{suffix}")
    } else {
        format!("{clean}-{suffix}")
    }
}

/// Six random base-36 characters: unique across concurrent test processes and reruns.
fn random_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // RandomState is seeded randomly per process; the counter separates calls within one.
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    let mut n = hasher.finish();
    (0..6)
        .map(|_| {
            let digit = (n % 36) as u32;
            n /= 36;
            char::from_digit(digit, 36).unwrap_or('x')
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_names_are_dns_labels() {
        assert_eq!(
            namespace_name("Deployment_Test", "abc123"),
            "deployment-test-abc123"
        );
        assert_eq!(namespace_name("--", "abc123"), "test-abc123");
        let long = namespace_name(&"x".repeat(100), "abc123");
        assert_eq!(long.len(), 63);
        assert!(long.ends_with("-abc123"));
    }

    #[test]
    fn suffixes_differ() {
        let a = random_suffix();
        let b = random_suffix();
        assert_eq!(a.len(), 6);
        assert_ne!(a, b);
    }
}
