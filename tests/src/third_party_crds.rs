//! Other projects' CRDs for the tests, taken from their Go modules rather
//! than committed: the Gateway API's standard channel
//! (`config/crd/standard/` of `sigs.k8s.io/gateway-api`) and the Prometheus
//! Operator's CRDs (`example/prometheus-operator-crd/` of its module).
//! `go mod download -json MODULE@VERSION` puts a module in the Go module
//! cache once (as tests/controlplane/build.sh does for Kubernetes) and then
//! only reads it from there.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};

pub const GATEWAY_API: (&str, &str) = ("sigs.k8s.io/gateway-api", "v1.6.3");
pub const PROMETHEUS_OPERATOR: (&str, &str) = (
    "github.com/prometheus-operator/prometheus-operator",
    "v0.85.0",
);

/// The directory of `module@version` in the Go module cache, downloading it
/// the first time.
pub fn module_dir((module, version): (&str, &str)) -> anyhow::Result<PathBuf> {
    let out = Command::new("go")
        .args(["mod", "download", "-json", &format!("{module}@{version}")])
        // Outside any go.mod: a plain module download.
        .current_dir(std::env::temp_dir())
        .env("GOFLAGS", "-mod=mod")
        .output()
        .context("running `go mod download` (Go is needed for the test CRDs)")?;
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "go mod download {module}@{version}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    if let Some(error) = info["Error"].as_str() {
        bail!("go mod download {module}@{version}: {error}");
    }
    let dir = info["Dir"]
        .as_str()
        .with_context(|| format!("go mod download {module}@{version} named no Dir: {info}"))?;
    Ok(PathBuf::from(dir))
}

/// Every YAML file of the Gateway API's standard channel.
pub fn gateway_api_standard() -> anyhow::Result<Vec<PathBuf>> {
    let dir = module_dir(GATEWAY_API)?.join("config/crd/standard");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    if !files
        .iter()
        .any(|f| f.ends_with("gateway.networking.k8s.io_httproutes.yaml"))
    {
        bail!("no HTTPRoute CRD in {}", dir.display());
    }
    Ok(files)
}

/// The Prometheus Operator CRDs of these plurals (`servicemonitors`,
/// `prometheusrules`, ...).
pub fn prometheus_operator(plurals: &[&str]) -> anyhow::Result<Vec<PathBuf>> {
    let dir = module_dir(PROMETHEUS_OPERATOR)?.join("example/prometheus-operator-crd");
    plurals
        .iter()
        .map(|plural| {
            let file = dir.join(format!("monitoring.coreos.com_{plural}.yaml"));
            if file.is_file() {
                Ok(file)
            } else {
                bail!("{} is missing", file.display())
            }
        })
        .collect()
}
