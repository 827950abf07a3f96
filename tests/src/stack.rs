//! A proxy under test with its real parts, and small helpers for asserting
//! what a client sees.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::backend::Backend;
use crate::client::http;
use crate::fixture_accounts::name_of;
use crate::poll::poll;
pub use crate::poll::wait_until;
use crate::proxy::ProxyProcess;
use crate::redis::RedisServer;

/// A client key the tests configure when auth is on.
pub const CLIENT_KEY: &str = "cr_test_client_key_0001";

/// A proxy with its real parts: a private redis-server with the relay
/// fixtures and a recording stand-in backend.
pub struct Stack {
    pub redis: RedisServer,
    pub backend: Backend,
    pub proxy: ProxyProcess,
}

impl Stack {
    /// Starts all three; `extra` is added to the proxy's environment.
    pub async fn start(extra: &[(&str, &str)]) -> Stack {
        let redis = RedisServer::start_with_fixtures();
        let backend = Backend::start().await;
        let proxy = start_proxy(&redis.url(), &backend.url(), extra);
        wait_ready(&proxy.url()).await;
        Stack {
            redis,
            backend,
            proxy,
        }
    }

    pub fn url(&self) -> String {
        self.proxy.url()
    }

    /// Another proxy on the same Redis and backend, with its own memory
    /// (`SHARED_HEALTH=false`), ready, and the backend's scripts and records
    /// cleared: a clean slate for one case of a table-driven test.
    pub async fn fresh_proxy(&self, extra: &[(&str, &str)]) -> ProxyProcess {
        let mut env = vec![("SHARED_HEALTH", "false")];
        env.extend_from_slice(extra);
        let proxy = start_proxy(&self.redis.url(), &self.backend.url(), &env);
        wait_ready(&proxy.url()).await;
        self.backend.clear_scripts();
        self.backend.reset_records();
        proxy
    }

    /// Which accounts the backend saw, by fixture name, in order.
    pub fn accounts_seen(&self) -> Vec<&'static str> {
        self.backend
            .keys_seen()
            .iter()
            .map(|k| name_of(k))
            .collect()
    }
}

/// Starts the real proxy on these, refreshing accounts every second.
pub fn start_proxy(redis_url: &str, target: &str, extra: &[(&str, &str)]) -> ProxyProcess {
    let mut env: Vec<(&str, &str)> = vec![
        ("REDIS_URL", redis_url),
        ("TARGET_URL", target),
        ("ACCOUNT_REFRESH_INTERVAL", "1s"),
        ("GIN_MODE", "release"),
    ];
    env.extend_from_slice(extra);
    ProxyProcess::start(&env)
}

/// GET, with the status and the body as JSON (`Null` when not JSON).
pub async fn get_json(url: &str) -> (u16, Value) {
    let response = http().get(url).send().await.expect("GET");
    let status = response.status().as_u16();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

/// Waits up to 20 s for `/ready` to say `ready`.
pub async fn wait_ready(base: &str) {
    let mut last = (0, Value::Null);
    let ready = poll(
        Duration::from_secs(20),
        Duration::from_millis(100),
        async || {
            last = get_json(&format!("{base}/ready")).await;
            (last.0 == 200 && last.1["status"] == "ready").then_some(())
        },
    )
    .await;
    assert!(ready.is_some(), "proxy not ready: {} {}", last.0, last.1);
}

/// The status and the fixture name of the account that served (from the
/// stand-in's `x-stand-in-account` header); reads the body to the end.
pub async fn served_by(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let account = response
        .headers()
        .get("x-stand-in-account")
        .and_then(|v| v.to_str().ok())
        .map(|k| name_of(k).to_string())
        .unwrap_or_default();
    let _ = response.bytes().await;
    (status, account)
}

/// Sends bytes as they are and reads the answer until the server closes.
pub async fn raw_request(port: u16, request: &str) -> String {
    read_until_closed(port, request.as_bytes()).await.0
}

/// Sends `request` on a new connection and reads until the server closes it
/// (at most 10 s): what came back, and how long after the request the close
/// came (`None`: still open after 10 s).
pub async fn read_until_closed(port: u16, request: &[u8]) -> (String, Option<Duration>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream.write_all(request).await.unwrap();
    let sent = Instant::now();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    let closed_after = read.is_ok().then(|| sent.elapsed());
    (String::from_utf8_lossy(&answer).into_owned(), closed_after)
}

/// Asserts Anthropic's error shape with this error type.
pub fn assert_anthropic_error(body: &Value, error_type: &str) {
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], error_type, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}
