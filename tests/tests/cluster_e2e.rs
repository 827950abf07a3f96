//! End to end on a real one-node cluster (`tests/cluster/up.sh`: a real kubelet,
//! kube-proxy, containerd and runc): the operator installed with `kubectl apply -k
//! deploy/` runs as a pod, a ClaudeMiddleware CR becomes proxy pods behind a Service,
//! and requests through the Service's ClusterIP reach the stand-in relay. Rollouts,
//! Secret changes, scaling and a kubelet restart happen under steady load, and every
//! failed request counts.
//!
//! Skipped, with the reason printed, when `CLAUDE_MIDDLEWARE_CLUSTER` names no cluster
//! (scripts/test.sh starts one when the machine can run it).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use cmw_tests::backend::{Backend, Behaviour, Times};
use cmw_tests::client::messages_body;
use cmw_tests::cluster::{Cluster, Forwarder, Load, LoadReport, cluster, skip_reason};
use cmw_tests::controlplane::{TestNamespace, eventually, test_namespace_in};
use cmw_tests::fixture_accounts::{A3, A7};
use cmw_tests::redis::RedisServer;
use serde_json::Value;

const CR: &str = "relay";
const KEY_ONE: &str = "cr_e2e_first_key_0123456789";
const KEY_TWO: &str = "cr_e2e_second_key_0123456789";
const REDIS_PASSWORD: &str = "first-redis-password";
/// The Services of the relay and Redis in each test namespace (not named like the CR,
/// whose Service the operator owns).
const RELAY_SERVICE: &str = "claude-relay";
const REDIS_SERVICE: &str = "relay-redis";
const RELAY_PORT: u16 = 3001;
const REDIS_PORT: u16 = 6379;
const ROLLOUT_TIMEOUT: Duration = Duration::from_secs(240);

/// One test at a time: they share a node with two cores.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The cluster, or `None` after printing why the test is skipped.
fn cluster_or_skip(test: &str) -> Option<&'static Cluster> {
    let found = cluster();
    if found.is_none() {
        println!("skipped {test}: {}", skip_reason());
    }
    found
}

/// `kubectl apply --server-side -k deploy/`, unmodified, once; then the operator pod is
/// Available.
fn install_operator(cluster: &Cluster) -> anyhow::Result<()> {
    static INSTALLED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            let deploy = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy");
            let k = |args: &[&str]| {
                cluster
                    .control_plane
                    .kubectl_ok(args)
                    .map_err(|e| format!("{e:#}"))
            };
            k(&["apply", "--server-side", "-k", deploy])?;
            k(&[
                "-n",
                "claude-middleware-system",
                "rollout",
                "status",
                "deployment/claude-middleware-operator",
                "--timeout=240s",
            ])?;
            Ok(())
        })
        .clone()
        .map_err(|e| anyhow::anyhow!(e))
}

/// Everything one test runs against: a namespace with the Secrets and the CR, the
/// stand-in relay and a redis-server with the fixture accounts (a password set),
/// both reachable from pods on the node's address.
struct Env {
    cluster: &'static Cluster,
    ns: TestNamespace,
    backend: Backend,
    redis: RedisServer,
    relay_forward: Forwarder,
    redis_forward: Forwarder,
}

impl Env {
    async fn start(prefix: &str, replicas: u32, proxy_extra: &str) -> anyhow::Result<Self> {
        let cluster = cluster().context("no cluster")?;
        install_operator(cluster)?;
        let (_client, ns) = test_namespace_in(&cluster.control_plane, prefix).await;
        let backend = Backend::start().await;
        let redis = RedisServer::start_with_fixtures();
        redis.cli(&["CONFIG", "SET", "requirepass", REDIS_PASSWORD]);
        let relay_forward = Forwarder::start(cluster.node_ip, backend.addr()).await?;
        let redis_forward = Forwarder::start(
            cluster.node_ip,
            SocketAddr::from(([127, 0, 0, 1], redis.port())),
        )
        .await?;
        let env = Self {
            cluster,
            ns,
            backend,
            redis,
            relay_forward,
            redis_forward,
        };
        // The relay and Redis as Services of the namespace, their endpoint the
        // node's address: the CR names them as in production and the pods find
        // them through the cluster DNS.
        for (name, port, target) in [
            (RELAY_SERVICE, RELAY_PORT, env.relay_forward.addr.port()),
            (REDIS_SERVICE, REDIS_PORT, env.redis_forward.addr.port()),
        ] {
            env.apply(&format!(
                "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\n\
                 spec: {{ports: [{{name: tcp, port: {port}, targetPort: {target}}}]}}\n---\n\
                 apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
                 metadata: {{name: {name}-host, labels: {{kubernetes.io/service-name: {name}}}}}\n\
                 addressType: IPv4\nports: [{{name: tcp, port: {target}, protocol: TCP}}]\n\
                 endpoints: [{{addresses: [\"{node}\"]}}]\n",
                node = cluster.node_ip
            ))?;
        }
        env.apply(&format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: client-keys}}\nstringData: {{keys: \"{KEY_ONE}\"}}\n---\n\
             apiVersion: v1\nkind: Secret\nmetadata: {{name: redis-auth}}\nstringData: {{password: \"{REDIS_PASSWORD}\"}}\n"
        ))?;
        env.apply(&env.cr_yaml(replicas, proxy_extra, ""))?;
        env.wait_settled(replicas).await?;
        env.wait_service_answers().await?;
        Ok(env)
    }

    /// Waits until the Service answers. Pods that are Ready are not enough:
    /// kube-proxy programs the Service's rules a moment after the endpoints
    /// change, and until then a connection to its IP is refused.
    async fn wait_service_answers(&self) -> anyhow::Result<()> {
        let health = format!("{}/health", self.service_url()?);
        eventually("the Service to answer", Duration::from_secs(30), || async {
            let response = reqwest::Client::new()
                .get(&health)
                .timeout(Duration::from_secs(2))
                .send()
                .await?;
            if response.status() != 200 {
                bail!("{health}: {}", response.status());
            }
            Ok(())
        })
        .await
    }

    fn cr_yaml(&self, replicas: u32, proxy_extra: &str, pod_annotation: &str) -> String {
        format!(
            "apiVersion: middleware.claude-relay.io/v1alpha1
kind: ClaudeMiddleware
metadata: {{name: {CR}}}
spec:
  replicas: {replicas}
  target: {{url: \"http://{RELAY_SERVICE}:{RELAY_PORT}\"}}
  redis:
    host: {REDIS_SERVICE}
    port: {REDIS_PORT}
    passwordSecretRef: {{name: redis-auth, key: password}}
  auth:
    enabled: true
    apiKeysSecretRef: {{name: client-keys, key: keys}}
  proxy:
    logLevel: info
    accountRefreshInterval: 2s
{proxy_extra}
  pod:
    annotations: {{e2e/round: \"{pod_annotation}\"}}
"
        )
    }

    fn apply(&self, yaml: &str) -> anyhow::Result<String> {
        self.cluster.kubectl_stdin(
            &[
                "-n",
                &self.ns.name,
                "apply",
                "--server-side",
                "--field-manager=e2e",
                "-f",
                "-",
            ],
            yaml,
        )
    }

    fn kubectl(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut all = vec!["-n", self.ns.name.as_str()];
        all.extend_from_slice(args);
        self.cluster.control_plane.kubectl_ok(&all)
    }

    fn json(&self, args: &[&str]) -> anyhow::Result<Value> {
        let mut all = args.to_vec();
        all.extend_from_slice(&["-o", "json"]);
        Ok(serde_json::from_str(&self.kubectl(&all)?)?)
    }

    /// The proxy pods of the CR, terminating ones included.
    fn pods(&self) -> anyhow::Result<Vec<Value>> {
        let list = self.json(&[
            "get",
            "pods",
            "-l",
            &format!("app.kubernetes.io/instance={CR}"),
        ])?;
        Ok(list["items"].as_array().cloned().unwrap_or_default())
    }

    /// The CR is Ready for its generation, the Deployment rolled out, and exactly
    /// `replicas` pods exist (none still terminating), all Ready.
    async fn wait_settled(&self, replicas: u32) -> anyhow::Result<()> {
        eventually(
            "the CR, its rollout and its pods to settle",
            ROLLOUT_TIMEOUT,
            || async {
                let cr = self.json(&["get", "cmw", CR])?;
                let ready = cr["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True");
                if !ready || cr["status"]["observedGeneration"] != cr["metadata"]["generation"] {
                    bail!("CR not Ready for its generation: {}", cr["status"]);
                }
                let deployment = self.json(&["get", "deployment", CR])?;
                let status = &deployment["status"];
                if status["observedGeneration"] != deployment["metadata"]["generation"]
                    || status["updatedReplicas"] != replicas
                    || status["readyReplicas"] != replicas
                    || status["replicas"] != replicas
                {
                    bail!("deployment not rolled out: {status}");
                }
                let pods = self.pods()?;
                let all_ready = pods.iter().all(|p| {
                    p["metadata"]["deletionTimestamp"].is_null()
                        && p["status"]["conditions"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                });
                if pods.len() != replicas as usize || !all_ready {
                    bail!("{} pods, all ready: {all_ready}", pods.len());
                }
                Ok(())
            },
        )
        .await
    }

    /// The Redis-password hash the operator put on the pod template.
    fn password_hash(&self) -> anyhow::Result<String> {
        self.kubectl(&[
            "get",
            "deployment",
            CR,
            "-o",
            r"jsonpath={.spec.template.metadata.annotations.middleware\.claude-relay\.io/redis-password-hash}",
        ])
    }

    /// `http://<ClusterIP>:<port>` of the CR's Service.
    fn service_url(&self) -> anyhow::Result<String> {
        let svc = self.json(&["get", "service", CR])?;
        let ip = svc["spec"]["clusterIP"].as_str().context("no clusterIP")?;
        let port = svc["spec"]["ports"][0]["port"]
            .as_u64()
            .context("no port")?;
        Ok(format!("http://{ip}:{port}"))
    }

    /// Applies `change`, then keeps the load on until the rollout is over and no
    /// old pod is left terminating (a pod still draining could still fail requests).
    async fn under_load(
        &self,
        what: &str,
        replicas_after: u32,
        change: impl AsyncFnOnce() -> anyhow::Result<()>,
    ) -> anyhow::Result<LoadReport> {
        let load = Load::start(&self.service_url()?, KEY_ONE, 2, Duration::from_millis(150));
        // A steady state first.
        let warm = load.sent() + 10;
        eventually("the load to warm up", Duration::from_secs(30), || async {
            if load.sent() >= warm {
                Ok(())
            } else {
                bail!("{} sent", load.sent())
            }
        })
        .await?;
        change().await?;
        // The change must have started something before "settled" means anything.
        tokio::time::sleep(Duration::from_secs(2)).await;
        self.wait_settled(replicas_after).await?;
        let report = load.stop().await;
        println!(
            "observed: {what}: {} requests through the Service, {} failed {:?}",
            report.sent, report.failed, report.failures
        );
        Ok(report)
    }
}

async fn stream_through(url: &str, key: &str) -> anyhow::Result<(u16, String, String)> {
    let response = reqwest::Client::new()
        .post(format!("{url}/v1/messages"))
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .json(&messages_body(true))
        .timeout(Duration::from_secs(20))
        .send()
        .await?;
    let status = response.status().as_u16();
    let account = response
        .headers()
        .get("x-stand-in-account")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    Ok((status, account, response.text().await?))
}

/// uid and read-only root of every proxy container process, read on the node from
/// /proc (the image has no shell to ask from inside).
fn container_processes(pod_uid: &str) -> Vec<(u32, bool)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let cmdline = std::fs::read(path.join("cmdline")).unwrap_or_default();
        if !cmdline.starts_with(b"/usr/local/bin/claude-middleware\0") {
            continue;
        }
        let cgroup = std::fs::read_to_string(path.join("cgroup")).unwrap_or_default();
        if !cgroup.contains(&format!("pod{pod_uid}")) {
            continue;
        }
        let status = std::fs::read_to_string(path.join("status")).unwrap_or_default();
        let uid = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(u32::MAX);
        let mountinfo = std::fs::read_to_string(path.join("mountinfo")).unwrap_or_default();
        let root_read_only = mountinfo.lines().any(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            fields.get(4) == Some(&"/")
                && fields
                    .get(5)
                    .is_some_and(|o| o.split(',').any(|x| x == "ro"))
        });
        found.push((uid, root_read_only));
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_pod_turns_a_cr_into_pods_that_serve_fail_over_and_reload_keys()
-> anyhow::Result<()> {
    let Some(cluster) =
        cluster_or_skip("operator_pod_turns_a_cr_into_pods_that_serve_fail_over_and_reload_keys")
    else {
        return Ok(());
    };
    let _one = ONE_AT_A_TIME.lock().await;
    let env = Env::start("e2e-serve", 2, "").await?;

    // The operator is a pod of deploy/, and holds the leader Lease.
    let operator = cluster.control_plane.kubectl_ok(&[
        "-n",
        "claude-middleware-system",
        "get",
        "pods",
        "-l",
        "app.kubernetes.io/name=claude-middleware-operator",
        "-o",
        "jsonpath={.items[0].metadata.name} {.items[0].status.phase} {.items[0].spec.containers[0].image}",
    ])?;
    let lease = cluster.control_plane.kubectl_ok(&[
        "-n",
        "claude-middleware-system",
        "get",
        "lease",
        "claude-middleware-operator",
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ])?;
    assert!(operator.contains("Running"), "{operator}");
    assert!(
        operator.starts_with(&lease),
        "lease held by {lease}, operator pod {operator}"
    );
    assert!(
        operator.ends_with(cluster.env("OPERATOR_IMAGE").unwrap_or("?")),
        "{operator}"
    );

    // The pods run the operator's default proxy image, as uid 65532 on a read-only root.
    let pods = env.pods()?;
    for pod in &pods {
        assert_eq!(
            pod["spec"]["containers"][0]["image"],
            cluster.env("PROXY_IMAGE").unwrap_or("?")
        );
        // cgroupfs names the pod's cgroup pod<uid>.
        let uid = pod["metadata"]["uid"].as_str().unwrap_or_default();
        let processes = container_processes(uid);
        assert!(
            !processes.is_empty(),
            "no proxy process found for pod {uid}"
        );
        for (uid, read_only) in processes {
            assert_eq!(uid, 65532, "the proxy runs as uid {uid}");
            assert!(read_only, "the proxy's root filesystem is writable");
        }
    }

    // A streamed request through the Service reaches the relay with an account id.
    let url = env.service_url()?;
    let (status, account, body) = stream_through(&url, KEY_ONE).await?;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("message_stop"), "{body}");
    assert_eq!(account, A3, "the first account by priority");
    let seen = env
        .backend
        .last_request()
        .context("the relay saw nothing")?;
    assert_eq!(
        seen.headers.get("x-api-key").and_then(|v| v.to_str().ok()),
        Some(A3)
    );

    // A 429 on that account: the same request is served by the next one.
    env.backend.script(
        A3,
        Behaviour::RateLimited {
            reset_in: Duration::from_secs(600),
        },
        Times::Once,
    );
    let (status, account, body) = stream_through(&url, KEY_ONE).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(account, A7, "failed over from the rate-limited account");
    println!("observed: stream through {url} served by {A3}, then after a 429 by {account}");

    // The client key rotated in the Secret: the new key works and the old one is
    // refused in every pod, with no restart.
    let before: Vec<(String, i64)> = pods
        .iter()
        .map(|p| {
            (
                p["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                p["status"]["containerStatuses"][0]["restartCount"]
                    .as_i64()
                    .unwrap_or(-1),
            )
        })
        .collect();
    env.apply(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: client-keys}}\nstringData: {{keys: \"{KEY_TWO}\"}}\n"
    ))?;
    let pod_ips: Vec<String> = pods
        .iter()
        .filter_map(|p| {
            p["status"]["podIP"]
                .as_str()
                .map(|ip| format!("http://{ip}:8080"))
        })
        .collect();
    for pod in &pod_ips {
        eventually(
            "the rotated key in every pod",
            Duration::from_secs(120),
            || async {
                let (new, _, _) = stream_through(pod, KEY_TWO).await?;
                let (old, _, _) = stream_through(pod, KEY_ONE).await?;
                if new == 200 && old == 401 {
                    Ok(())
                } else {
                    bail!("new key {new}, old key {old}")
                }
            },
        )
        .await?;
    }
    let after: Vec<(String, i64)> = env
        .pods()?
        .iter()
        .map(|p| {
            (
                p["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                p["status"]["containerStatuses"][0]["restartCount"]
                    .as_i64()
                    .unwrap_or(-1),
            )
        })
        .collect();
    assert_eq!(before, after, "the pods were restarted or replaced");

    // The Service keeps serving through a kubelet restart.
    let load = Load::start(&url, KEY_TWO, 2, Duration::from_millis(150));
    tokio::time::sleep(Duration::from_secs(2)).await;
    tokio::task::block_in_place(|| cluster.restart_kubelet())?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let report = load.stop().await;
    println!(
        "observed: kubelet restart: {} requests through the Service, {} failed {:?}",
        report.sent, report.failed, report.failures
    );
    assert!(report.sent > 20, "{report:?}");
    assert_eq!(report.failed, 0, "{report:?}");
    env.wait_settled(2).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollouts_secret_changes_and_scaling_drop_no_request_under_load() -> anyhow::Result<()> {
    let Some(_) = cluster_or_skip("rollouts_secret_changes_and_scaling_drop_no_request_under_load")
    else {
        return Ok(());
    };
    let _one = ONE_AT_A_TIME.lock().await;
    // Main's behaviour first: no lame duck, the listener closes on SIGTERM.
    let env = Env::start("e2e-rollout", 2, "    shutdownDelay: \"0\"").await?;
    let before = env
        .under_load(
            "rolling update, SHUTDOWN_DELAY=0 (before the fix)",
            2,
            async || {
                env.apply(&env.cr_yaml(2, "    shutdownDelay: \"0\"", "1"))
                    .map(drop)
            },
        )
        .await?;

    // The fix: the proxy's default lame duck. (This rollout replaces the 0 s pods.)
    env.apply(&env.cr_yaml(2, "", "1"))?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    env.wait_settled(2).await?;
    let after = env
        .under_load(
            "rolling update, default SHUTDOWN_DELAY (after the fix)",
            2,
            async || env.apply(&env.cr_yaml(2, "", "2")).map(drop),
        )
        .await?;
    println!(
        "observed: rolling update before the fix {}/{} failed, after {}/{} failed",
        before.failed, before.sent, after.failed, after.sent
    );
    assert!(after.sent > 20, "{after:?}");
    assert_eq!(
        after.failed, 0,
        "failed requests during the rolling update: {after:?}"
    );

    // The Redis password changes (in Redis, then in its Secret): the operator rolls
    // the pods, old ones keep serving from their pool, new ones log in with it.
    let password = "second-redis-password";
    let hash_before = env.password_hash()?;
    let report = env
        .under_load("Redis password Secret change", 2, async || {
            std::process::Command::new("redis-cli")
                .args(["-p", &env.redis.port().to_string(), "CONFIG", "SET", "requirepass", password])
                .env("REDISCLI_AUTH", REDIS_PASSWORD)
                .output()
                .context("redis-cli")?;
            env.apply(&format!(
                "apiVersion: v1\nkind: Secret\nmetadata: {{name: redis-auth}}\nstringData: {{password: \"{password}\"}}\n"
            ))
            .map(drop)
        })
        .await?;
    assert_eq!(
        report.failed, 0,
        "failed requests during the password rollout: {report:?}"
    );
    let hash_after = env.password_hash()?;
    assert_ne!(hash_before, hash_after, "the pod template did not change");

    // kubectl scale on the CR: three Ready pods, all serving.
    let report = env
        .under_load("kubectl scale cmw --replicas=3", 3, async || {
            env.kubectl(&["scale", &format!("cmw/{CR}"), "--replicas=3"])
                .map(drop)
        })
        .await?;
    assert_eq!(report.failed, 0, "{report:?}");
    let url = env.service_url()?;
    let endpoints = env.kubectl(&[
        "get",
        "endpointslices",
        "-l",
        &format!("kubernetes.io/service-name={CR}"),
        "-o",
        "jsonpath={range .items[*].endpoints[*]}{.conditions.ready} {end}",
    ])?;
    assert_eq!(endpoints.matches("true").count(), 3, "{endpoints}");
    for pod in env.pods()? {
        let ip = pod["status"]["podIP"].as_str().unwrap_or_default();
        let (status, _, body) = stream_through(&format!("http://{ip}:8080"), KEY_ONE).await?;
        assert_eq!(status, 200, "pod {ip}: {body}");
    }
    let (status, _, _) = stream_through(&url, KEY_ONE).await?;
    assert_eq!(status, 200);

    // And back down to one under load.
    let report = env
        .under_load("kubectl scale cmw --replicas=1", 1, async || {
            env.kubectl(&["scale", &format!("cmw/{CR}"), "--replicas=1"])
                .map(drop)
        })
        .await?;
    assert_eq!(report.failed, 0, "{report:?}");
    Ok(())
}

/// The runtime stage of a Dockerfile: USER, ENTRYPOINT, CMD and EXPOSE as the image
/// config spells them.
fn dockerfile_promises(path: &str) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path)?;
    let runtime = text
        .rsplit_once("\nFROM ")
        .map(|(_, stage)| stage)
        .context("no FROM")?;
    let mut config = serde_json::json!({"ExposedPorts": {}});
    for line in runtime.lines().map(str::trim) {
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        match word {
            "USER" => config["User"] = rest.into(),
            "ENTRYPOINT" => config["Entrypoint"] = serde_json::from_str(rest)?,
            "CMD" => config["Cmd"] = serde_json::from_str(rest)?,
            "EXPOSE" => {
                for port in rest.split_whitespace() {
                    config["ExposedPorts"][format!("{port}/tcp")] = serde_json::json!({});
                }
            }
            _ => {}
        }
    }
    Ok(config)
}

/// The config of an image in the node's containerd, read through `ctr`.
fn image_config(cluster: &Cluster, image: &str) -> anyhow::Result<Value> {
    let sock = cluster
        .env("CONTAINERD_SOCK")
        .context("no CONTAINERD_SOCK")?;
    let ctr = |args: &[&str]| -> anyhow::Result<String> {
        let output = std::process::Command::new("ctr")
            .args(["--address", sock, "-n", "k8s.io"])
            .args(args)
            .output()?;
        if !output.status.success() {
            bail!("ctr {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    };
    let listed = ctr(&["images", "ls", &format!("name=={image}")])?;
    let manifest_digest = listed
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().find(|w| w.starts_with("sha256:")))
        .with_context(|| format!("{image} is not in containerd: {listed}"))?
        .to_string();
    let manifest: Value = serde_json::from_str(&ctr(&["content", "get", &manifest_digest])?)?;
    let config_digest = manifest["config"]["digest"].as_str().context("no config")?;
    let config: Value = serde_json::from_str(&ctr(&["content", "get", config_digest])?)?;
    Ok(config["config"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_images_keep_the_dockerfiles_promises() -> anyhow::Result<()> {
    let Some(cluster) = cluster_or_skip("the_images_keep_the_dockerfiles_promises") else {
        return Ok(());
    };
    let _one = ONE_AT_A_TIME.lock().await;
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    for (dockerfile, image) in [
        ("Dockerfile.proxy", "PROXY_IMAGE"),
        ("Dockerfile.operator", "OPERATOR_IMAGE"),
    ] {
        let promised = dockerfile_promises(&format!("{root}/{dockerfile}"))?;
        let image = cluster.env(image).context("image name")?;
        let config = image_config(cluster, image)?;
        for field in ["User", "Entrypoint", "Cmd", "ExposedPorts"] {
            assert_eq!(
                config[field], promised[field],
                "{image}: {field} differs from {dockerfile}"
            );
        }
        assert_eq!(config["User"], "65532:65532");
    }
    // No shell in the image: exec of /bin/sh in the operator's pod fails.
    install_operator(cluster)?;
    let shell = cluster.control_plane.kubectl(&[
        "-n",
        "claude-middleware-system",
        "exec",
        "deploy/claude-middleware-operator",
        "--",
        "/bin/sh",
        "-c",
        "true",
    ]);
    assert!(!shell.status.success(), "the operator image has a shell");
    let said = String::from_utf8_lossy(&shell.stderr).to_lowercase();
    assert!(said.contains("no such file"), "{said}");
    Ok(())
}
