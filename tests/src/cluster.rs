//! The one-node cluster of `tests/cluster/up.sh` (a real kubelet, kube-proxy and
//! containerd), for the end-to-end tests, and what they need around it.
//!
//! `scripts/test.sh` starts the cluster when the machine can run it (root, containerd
//! installable) and names it in `CLAUDE_MIDDLEWARE_CLUSTER`; [`cluster`] is `None`
//! otherwise, with the reason in [`skip_reason`]. Pods reach only this machine, so the
//! host's real parts (the stand-in relay, redis-server, both on 127.0.0.1) are made
//! reachable on the node's bridge address by a [`Forwarder`]. [`Load`] is a steady
//! request load that counts every failure.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::controlplane::ControlPlane;

/// The cluster directory `tests/cluster/up.sh` manages.
pub const CLUSTER_ENV: &str = "CLAUDE_MIDDLEWARE_CLUSTER";
/// Why there is no cluster (set by `scripts/test.sh` when it skips it).
pub const SKIP_ENV: &str = "CLAUDE_MIDDLEWARE_CLUSTER_SKIPPED";

/// A running cluster: its directory, its API server and what `up.sh` wrote to `DIR/env`.
#[derive(Debug)]
pub struct Cluster {
    pub dir: PathBuf,
    /// The cluster's control plane (kubeconfig, kubectl), for `test_namespace_in`.
    pub control_plane: ControlPlane,
    /// The node's address on its bridge: pods reach the host here.
    pub node_ip: IpAddr,
    env: BTreeMap<String, String>,
}

/// The cluster named by `CLAUDE_MIDDLEWARE_CLUSTER`, or `None` (print [`skip_reason`]).
///
/// # Panics
/// When the variable names a directory with no ready cluster in it.
pub fn cluster() -> Option<&'static Cluster> {
    static CLUSTER: OnceLock<Option<Cluster>> = OnceLock::new();
    CLUSTER
        .get_or_init(|| {
            let dir = std::env::var_os(CLUSTER_ENV).filter(|v| !v.is_empty())?;
            match Cluster::in_dir(Path::new(&dir)) {
                Ok(cluster) => Some(cluster),
                Err(e) => panic!("{CLUSTER_ENV} names no ready cluster: {e:#}"),
            }
        })
        .as_ref()
}

/// Why the cluster tests do not run here.
pub fn skip_reason() -> String {
    std::env::var(SKIP_ENV).unwrap_or_else(|_| {
        format!("{CLUSTER_ENV} is not set (scripts/test.sh starts tests/cluster/up.sh when the machine can run it)")
    })
}

impl Cluster {
    fn in_dir(dir: &Path) -> anyhow::Result<Self> {
        let kubeconfig = dir.join("kubeconfig");
        if !kubeconfig.is_file() {
            bail!("{} is missing", kubeconfig.display());
        }
        let text = std::fs::read_to_string(dir.join("env")).context("reading DIR/env")?;
        let env: BTreeMap<String, String> = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let node_ip = env
            .get("NODE_IP")
            .context("DIR/env has no NODE_IP")?
            .parse()
            .context("NODE_IP")?;
        Ok(Self {
            dir: dir.to_path_buf(),
            control_plane: ControlPlane {
                dir: dir.join("controlplane"),
                kubeconfig,
                kubectl: dir.join("bin").join("kubectl"),
            },
            node_ip,
            env,
        })
    }

    /// A value `up.sh` wrote to `DIR/env` (e.g. `PROXY_IMAGE`).
    pub fn env(&self, name: &str) -> Option<&str> {
        self.env.get(name).map(String::as_str)
    }

    /// `kubectl` with the admin kubeconfig and `stdin` piped in; fails unless it succeeds.
    pub fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> anyhow::Result<String> {
        let mut child = self
            .control_plane
            .kubectl_command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("running kubectl")?;
        child
            .stdin
            .take()
            .context("kubectl stdin")?
            .write_all(stdin.as_bytes())?;
        let output = child.wait_with_output()?;
        if !output.status.success() {
            bail!(
                "kubectl {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Stops the kubelet and starts it again with the same command line
    /// (`tests/cluster/restart-kubelet.sh`); its pods keep running meanwhile.
    pub fn restart_kubelet(&self) -> anyhow::Result<()> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("cluster/restart-kubelet.sh");
        let status = Command::new(&script)
            .arg(&self.dir)
            .stdin(Stdio::null())
            .status()
            .with_context(|| format!("running {}", script.display()))?;
        if !status.success() {
            bail!("{} failed ({status})", script.display());
        }
        Ok(())
    }
}

/// Forwards TCP connections from `listen` (e.g. the node's address) to `target` (a
/// loopback server), byte for byte, until dropped.
pub struct Forwarder {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Forwarder {
    pub async fn start(listen: IpAddr, target: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind((listen, 0))
            .await
            .with_context(|| format!("binding {listen}:0"))?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Ok(Self { addr, task })
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a [`Load`] saw.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    pub sent: u64,
    pub failed: u64,
    /// The first few failures, for the assertion message.
    pub failures: Vec<String>,
}

/// A steady load: `workers` clients, each sending one streamed Messages request
/// every `interval` through `url`, over keep-alive connections as real clients do.
/// A request fails unless it answers 200 and its stream reaches `message_stop`.
pub struct Load {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    failures: Arc<Mutex<Vec<String>>>,
    failed: Arc<AtomicU64>,
    tasks: Vec<JoinHandle<()>>,
}

impl Load {
    pub fn start(url: &str, key: &str, workers: usize, interval: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("build the load client");
        let tasks = (0..workers)
            .map(|_| {
                let (stop, sent, failed, failures) =
                    (stop.clone(), sent.clone(), failed.clone(), failures.clone());
                let (client, url, key) = (client.clone(), url.to_string(), key.to_string());
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval(interval);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    while !stop.load(Ordering::SeqCst) {
                        tick.tick().await;
                        sent.fetch_add(1, Ordering::SeqCst);
                        if let Err(why) = one_request(&client, &url, &key).await {
                            failed.fetch_add(1, Ordering::SeqCst);
                            if let Ok(mut list) = failures.lock()
                                && list.len() < 10
                            {
                                list.push(why);
                            }
                        }
                    }
                })
            })
            .collect();
        Self {
            stop,
            sent,
            failures,
            failed,
            tasks,
        }
    }

    /// Requests so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }

    /// Stops sending, waits for the requests under way, and reports.
    pub async fn stop(self) -> LoadReport {
        self.stop.store(true, Ordering::SeqCst);
        for task in self.tasks {
            let _ = task.await;
        }
        LoadReport {
            sent: self.sent.load(Ordering::SeqCst),
            failed: self.failed.load(Ordering::SeqCst),
            failures: self.failures.lock().map(|l| l.clone()).unwrap_or_default(),
        }
    }
}

async fn one_request(client: &reqwest::Client, url: &str, key: &str) -> Result<(), String> {
    let response = client
        .post(format!("{url}/v1/messages"))
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .header("x-test-events", "5")
        .header("x-test-gap-ms", "20")
        .json(&crate::client::messages_body(true))
        .send()
        .await
        .map_err(|e| format!("send: {e:?}"))?;
    let status = response.status();
    let body = response
        .text()
        .await
        .map_err(|e| format!("{status} body: {e:?}"))?;
    if status != 200 || !body.contains("message_stop") {
        return Err(format!(
            "{status}: {}",
            body.chars().take(200).collect::<String>()
        ));
    }
    Ok(())
}
