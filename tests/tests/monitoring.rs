//! deploy/monitoring/ against a real Prometheus: a private `prometheus`
//! scrapes the real proxy (with a real redis-server and the stand-in relay)
//! and the operator's real admin server (the controller running in-process
//! against the real kube-apiserver), evaluates the PrometheusRule's groups,
//! and answers the dashboard's queries.

mod operator_support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use cmw_operator::admin::{self, AdminState};
use cmw_operator::readiness::Readiness;
use cmw_tests::backend::{Behaviour, Times};
use cmw_tests::client::{http, post_messages};
use cmw_tests::controlplane::test_namespace;
use cmw_tests::fixture_accounts::{A3, SCHEDULABLE_IN_ORDER};
use cmw_tests::ports::free_port;
use cmw_tests::prometheus::{PrometheusServer, ScrapeJob, rule_file_of};
use cmw_tests::stack::{Stack, served_by, wait_until};
use operator_support::{Operator, apply_cr, install_crd};
use serde_json::Value;

const RULE: &str = include_str!("../../deploy/monitoring/prometheus-rule.yaml");
const DASHBOARD: &str = include_str!("../../deploy/monitoring/grafana-dashboard.json");

/// Its Redis password Secret does not exist: every reconcile fails with
/// `secret_missing` and is retried with backoff.
const CR_MISSING_SECRET: &str = r#"
apiVersion: middleware.claude-relay.io/v1alpha1
kind: ClaudeMiddleware
metadata: {name: relay, namespace: ai}
spec:
  target: {url: "http://claude-relay:3001"}
  redis: {host: redis, passwordSecretRef: {name: no-such-secret, key: password}}
"#;

const SETTLE: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_fire_and_every_dashboard_query_has_data() -> anyhow::Result<()> {
    let stack = Stack::start(&[]).await;

    let (client, ns) = test_namespace("monitoring").await;
    install_crd(&ns).await?;
    let operator = Operator::start(client.clone(), &ns.name);
    let admin_addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    tokio::spawn(admin::serve(
        admin_addr,
        AdminState {
            metrics: operator.metrics.clone(),
            readiness: Readiness::default(),
        },
        std::future::pending(),
    ));
    apply_cr(&ns, CR_MISSING_SECRET)?;

    let prometheus = PrometheusServer::start(
        &[
            ScrapeJob {
                job: "claude-middleware",
                targets: vec![format!("127.0.0.1:{}", stack.proxy.port())],
            },
            ScrapeJob {
                job: "claude-middleware-operator",
                targets: vec![admin_addr.to_string()],
            },
        ],
        &rule_file_of(RULE)?,
    )
    .await?;
    wait_until("both targets scraped and up", SETTLE, async || {
        let targets = prometheus.targets().await.unwrap_or_default();
        targets.len() == 2 && targets.iter().all(|t| t["health"] == "up")
    })
    .await;

    // Traffic of every kind the dashboard shows: JSON and SSE answers, a
    // retry after a 429 (which benches a3), and a stream cut mid-way.
    for stream in [false, true] {
        let (status, _) = served_by(post_messages(&stack.url(), stream, &[]).await).await;
        assert_eq!(status, 200);
    }
    stack.backend.script(
        A3,
        Behaviour::RateLimited {
            reset_in: Duration::from_secs(600),
        },
        Times::Once,
    );
    let (status, account) = served_by(post_messages(&stack.url(), false, &[]).await).await;
    assert_eq!(status, 200);
    assert_ne!(account, "a3", "retried on another account");
    stack
        .backend
        .script_any(Behaviour::ResetAfter { events: 2 }, Times::Once);
    let _ = served_by(post_messages(&stack.url(), true, &[]).await).await;

    // Every dashboard query parses and returns data from the real targets.
    let queries = dashboard_queries();
    assert!(queries.len() > 20, "the dashboard has its queries");
    for (title, expr) in &queries {
        let mut last = String::new();
        let found = tokio::time::timeout(SETTLE, async {
            loop {
                match prometheus.query(expr).await {
                    Ok(result) if !result.is_empty() => return,
                    Ok(_) => last = "no data".into(),
                    Err(error) => last = error.to_string(),
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
        .await;
        assert!(found.is_ok(), "panel {title:?}: {expr}: {last}");
    }

    // ...and names only metrics that the proxy and the operator export.
    let mut exported = exported_names(&stack.url()).await?;
    exported.extend(exported_names(&format!("http://{admin_addr}")).await?);
    let mut named: BTreeSet<String> = queries.iter().flat_map(|(_, e)| metric_names(e)).collect();
    named.extend(metric_names(RULE));
    let unknown: Vec<_> = named.difference(&exported).collect();
    assert!(
        unknown.is_empty(),
        "the dashboard or the rules name metrics nobody exports: {unknown:?}"
    );

    // The operator keeps failing on the missing Secret.
    wait_for_alert(
        &prometheus,
        "ClaudeMiddlewareOperatorReconcileErrors",
        &[("error", "secret_missing")],
    )
    .await?;

    // Every account answers 429: all of them cool down.
    for id in SCHEDULABLE_IN_ORDER {
        stack.backend.script(
            id,
            Behaviour::RateLimited {
                reset_in: Duration::from_secs(600),
            },
            Times::Always,
        );
    }
    wait_until("every account cooling", SETTLE, async || {
        let _ = served_by(post_messages(&stack.url(), false, &[]).await).await;
        let body = http()
            .get(format!("{}/metrics", stack.url()))
            .send()
            .await
            .ok();
        let text = match body {
            Some(r) => r.text().await.unwrap_or_default(),
            None => String::new(),
        };
        text.contains("claude_middleware_cooling_accounts 4")
    })
    .await;
    wait_for_alert(&prometheus, "ClaudeMiddlewareAllAccountsCooling", &[]).await?;

    // The relay disables every account: the pool is empty.
    for id in SCHEDULABLE_IN_ORDER {
        stack
            .redis
            .cli(&["HSET", &format!("claude:account:{id}"), "isActive", "false"]);
    }
    let pool_empty = wait_for_alert(&prometheus, "ClaudeMiddlewarePoolEmpty", &[]).await?;
    assert_eq!(pool_empty["labels"]["job"], "claude-middleware");
    assert_eq!(pool_empty["labels"]["severity"], "critical");
    // An empty pool is not "all accounts cooling": that alert goes away.
    wait_until("AllAccountsCooling to clear", SETTLE, async || {
        let alerts = prometheus.alerts().await.unwrap_or_default();
        !alerts
            .iter()
            .any(|a| a["labels"]["alertname"] == "ClaudeMiddlewareAllAccountsCooling")
    })
    .await;

    operator.stop().await;
    Ok(())
}

/// Waits until the alert is pending or firing with these labels; returns it.
async fn wait_for_alert(
    prometheus: &PrometheusServer,
    name: &str,
    labels: &[(&str, &str)],
) -> anyhow::Result<Value> {
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let alerts = prometheus.alerts().await?;
        let found = alerts.into_iter().find(|a| {
            a["labels"]["alertname"] == name
                && labels.iter().all(|(k, v)| a["labels"][*k] == *v)
                && (a["state"] == "pending" || a["state"] == "firing")
        });
        if let Some(alert) = found {
            return Ok(alert);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "{name} {labels:?} did not go pending within {SETTLE:?}; log:\n{}",
            prometheus.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Every panel's queries, with Grafana's variables replaced by what Grafana
/// sends when "All" is selected.
fn dashboard_queries() -> Vec<(String, String)> {
    let dashboard: Value = serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("a PromQL expr");
            let expr = expr
                .replace("$namespace", ".*")
                .replace("$job", ".*")
                .replace("$__rate_interval", "1m");
            assert!(!expr.contains('$'), "an unknown variable in {expr}");
            out.push((panel["title"].as_str().unwrap_or("").to_string(), expr));
        }
    }
    out
}

/// The names of the metric families and samples a `/metrics` endpoint serves.
async fn exported_names(base: &str) -> anyhow::Result<BTreeSet<String>> {
    let text = http()
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    Ok(text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .collect())
}

/// The claude_middleware_* names in PromQL (or in a file of it).
fn metric_names(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("claude_middleware_"))
        .map(str::to_string)
        .collect()
}
