//! A private `prometheus` (the Debian package) scraping the tests' processes.
//!
//! [`PrometheusServer::start`] writes its own configuration (1 s scrape and
//! rule evaluation intervals, the given targets and rule file) into a temp
//! dir, starts the server on a free loopback port and waits until it is
//! ready. The query helpers use its HTTP API, as Grafana and Alertmanager do.
//! Killed on drop.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::ports::free_port;

/// How long [`PrometheusServer::start`] waits for `/-/ready`.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A job to scrape: its name and `host:port` targets (metrics on `/metrics`).
pub struct ScrapeJob<'a> {
    pub job: &'a str,
    pub targets: Vec<String>,
}

pub struct PrometheusServer {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl PrometheusServer {
    /// Starts `prometheus` scraping `jobs` every second and evaluating the
    /// rule file `rules` (Prometheus rule-file YAML) every second.
    pub async fn start(jobs: &[ScrapeJob<'_>], rules: &str) -> anyhow::Result<PrometheusServer> {
        let dir = tempfile::Builder::new()
            .prefix("cmw-prometheus-")
            .tempdir()
            .context("temp dir for prometheus")?;
        std::fs::write(dir.path().join("rules.yaml"), rules)?;
        std::fs::write(dir.path().join("prometheus.yml"), config(jobs))?;
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log"))?;
        let child = Command::new("prometheus")
            .current_dir(dir.path())
            .arg("--config.file=prometheus.yml")
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("start prometheus (Debian package `prometheus`; `make test` installs it)")?;
        let mut server = PrometheusServer { child, port, dir };
        server.wait_ready().await?;
        Ok(server)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What the server logged so far (warnings and errors).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// The result of an instant query (`data.result`); an error for a query
    /// Prometheus refuses (bad PromQL) or a failed request.
    pub async fn query(&self, expr: &str) -> anyhow::Result<Vec<Value>> {
        let body = self.api("/api/v1/query", &[("query", expr)]).await?;
        Ok(body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// The alerts that are pending or firing (`/api/v1/alerts`).
    pub async fn alerts(&self) -> anyhow::Result<Vec<Value>> {
        let body = self.api("/api/v1/alerts", &[]).await?;
        Ok(body["data"]["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// The scrape targets and their health (`/api/v1/targets`, active ones).
    pub async fn targets(&self) -> anyhow::Result<Vec<Value>> {
        let body = self.api("/api/v1/targets", &[]).await?;
        Ok(body["data"]["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    async fn api(&self, path: &str, params: &[(&str, &str)]) -> anyhow::Result<Value> {
        let url = reqwest::Url::parse_with_params(&format!("{}{path}", self.url()), params)?;
        let response = crate::client::http()
            .get(url)
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        let status = response.status();
        let body: Value = response.json().await.context("a JSON answer")?;
        if !status.is_success() || body["status"] != "success" {
            bail!("{path} {params:?}: {status} {body}");
        }
        Ok(body)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        let ready = format!("{}/-/ready", self.url());
        loop {
            let answer = crate::client::http().get(&ready).send().await;
            if answer.is_ok_and(|r| r.status() == 200) {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                bail!("prometheus exited ({status}):\n{}", self.log());
            }
            if Instant::now() > deadline {
                bail!(
                    "prometheus not ready within {START_TIMEOUT:?}:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(jobs: &[ScrapeJob<'_>]) -> String {
    let mut out = String::from(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         rule_files:\n  - rules.yaml\nscrape_configs:\n",
    );
    for job in jobs {
        let targets: Vec<String> = job.targets.iter().map(|t| format!("'{t}'")).collect();
        out.push_str(&format!(
            "  - job_name: '{}'\n    static_configs:\n      - targets: [{}]\n",
            job.job,
            targets.join(", ")
        ));
    }
    out
}

/// The rule groups of a `PrometheusRule` (its `spec.groups`) as a Prometheus
/// rule file.
pub fn rule_file_of(prometheus_rule_yaml: &str) -> anyhow::Result<String> {
    let rule: Value =
        serde_norway::from_str(prometheus_rule_yaml).context("PrometheusRule YAML")?;
    let groups = rule["spec"]["groups"].clone();
    if !groups.is_array() {
        bail!("the PrometheusRule has no spec.groups");
    }
    Ok(serde_norway::to_string(
        &serde_json::json!({ "groups": groups }),
    )?)
}
