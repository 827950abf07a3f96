//! The real `claude-middleware-operator` binary as a child process, with its
//! admin endpoints (/healthz, /readyz, /metrics) on a free port.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::Context;
use cmw_tests::controlplane::ControlPlane;
use cmw_tests::ports::free_port;

use super::IMAGE;

/// The real `claude-middleware-operator` binary: `$CLAUDE_MIDDLEWARE_OPERATOR_BIN`, or beside
/// the running test executable (built by `cargo build --workspace --bins`).
fn operator_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("CLAUDE_MIDDLEWARE_OPERATOR_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("path of the running test executable");
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let bin = dir.join("claude-middleware-operator");
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build --workspace --bins` first (or set CLAUDE_MIDDLEWARE_OPERATOR_BIN)",
        bin.display()
    );
    bin
}

/// One `claude-middleware-operator run` process with the admin kubeconfig, watching one
/// namespace, its log in a temp file. SIGKILLed on drop.
pub struct OperatorProcess {
    pub id: String,
    child: Child,
    admin: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl OperatorProcess {
    pub fn spawn(
        cp: &ControlPlane,
        ns: &str,
        id: &str,
        leader_election: bool,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let log = dir.path().join(format!("{id}.log"));
        let port = free_port();
        let file = std::fs::File::create(&log)?;
        let child = Command::new(operator_binary())
            .arg("run")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("KUBECONFIG", &cp.kubeconfig)
            .env("WATCH_NAMESPACE", ns)
            .env("POD_NAMESPACE", ns)
            .env("POD_NAME", id)
            .env("LEASE_NAME", "claude-middleware-operator")
            .env("LEADER_ELECTION", leader_election.to_string())
            .env("METRICS_ADDR", format!("127.0.0.1:{port}"))
            .env("PROXY_IMAGE", IMAGE)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .context("starting claude-middleware-operator")?;
        Ok(Self {
            id: id.into(),
            child,
            admin: format!("http://127.0.0.1:{port}"),
            log,
            _dir: dir,
        })
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        let response = reqwest::get(format!("{}{path}", self.admin)).await?;
        let status = response.status().as_u16();
        Ok((status, response.text().await?))
    }

    /// The value of the sample `name` (with its labels, if any) on /metrics.
    pub async fn metric(&self, name: &str) -> anyhow::Result<f64> {
        let (_, text) = self.get("/metrics").await?;
        sample(&text, name).with_context(|| format!("{name} not on /metrics of {}", self.id))
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn sigkill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        self.sigkill();
    }
}

fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

pub const LEADER: &str = "claude_middleware_operator_leader";
pub const RECONCILES: &str = "claude_middleware_operator_reconciles_total";
