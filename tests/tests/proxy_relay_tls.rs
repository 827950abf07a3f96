//! The proxy's client to an https relay: a relay behind TLS whose certificate
//! a private CA issued (made here with rcgen, as cert-manager would in a
//! cluster), trusted through `TARGET_CA_FILE`. Real binary, real
//! redis-server, a hand-written relay on loopback. With the CA, answers pass
//! intact and the TLS connection is reused; without it, the certificate is
//! refused and the client gets the proxy's 502; a CA file that cannot be
//! used stops the proxy at start.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cmw_tests::client::{post_and_read, sse_events};
use cmw_tests::proxy::ProxyProcess;
use cmw_tests::raw_relay::{RawRelay, Reply, json_answer, short_sse_events};
use cmw_tests::redis::RedisServer;
use cmw_tests::stack::{assert_anthropic_error, get_json, start_proxy, wait_ready};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::Value;

/// A JSON message the relay answers with, recognisable in the client's body.
const MESSAGE: &str = r#"{"id":"msg_tls","type":"message","role":"assistant","model":"claude-tls","content":[{"type":"text","text":"over TLS"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":5,"output_tokens":3}}"#;

/// A private CA and the relay's certificate for `localhost` and 127.0.0.1,
/// issued by it: new for every test.
struct PrivatePki {
    ca_pem: String,
    relay: Arc<rustls::ServerConfig>,
}

fn private_pki() -> PrivatePki {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "claude-middleware test relay CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_pem = ca.self_signed(&ca_key).expect("CA certificate").pem();
    let issuer = Issuer::new(ca, ca_key);

    let relay_key = KeyPair::generate().expect("relay key");
    let mut relay = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .expect("relay params");
    relay
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let relay_cert = relay
        .signed_by(&relay_key, &issuer)
        .expect("relay certificate");

    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(relay_key.serialize_der()));
    let chain: Vec<CertificateDer<'static>> = vec![relay_cert.der().clone()];
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .expect("relay TLS config");
    PrivatePki {
        ca_pem,
        relay: Arc::new(config),
    }
}

/// A proxy in front of a TLS [`RawRelay`] at `https://localhost:PORT`, with
/// its Redis; `trust_ca` writes the CA to a file and names it in `TARGET_CA_FILE`.
struct TlsWire {
    relay: RawRelay,
    proxy: ProxyProcess,
    _redis: RedisServer,
    _ca_dir: tempfile::TempDir,
}

impl TlsWire {
    async fn start(trust_ca: bool) -> TlsWire {
        let pki = private_pki();
        let ca_dir = tempfile::tempdir().expect("temp dir for the CA file");
        let ca_file = ca_dir.path().join("relay-ca.crt");
        std::fs::write(&ca_file, &pki.ca_pem).expect("write the CA file");
        let redis = RedisServer::start_with_fixtures();
        let relay = RawRelay::start_tls(pki.relay)
            .await
            .expect("start the TLS relay");
        let target = format!("https://localhost:{}", relay.port());
        let ca_file = ca_file.to_str().expect("a UTF-8 temp path");
        let extra: &[(&str, &str)] = if trust_ca {
            &[("TARGET_CA_FILE", ca_file)]
        } else {
            &[]
        };
        let proxy = start_proxy(&redis.url(), &target, extra);
        wait_ready(&proxy.url()).await;
        TlsWire {
            relay,
            proxy,
            _redis: redis,
            _ca_dir: ca_dir,
        }
    }

    fn url(&self) -> String {
        self.proxy.url()
    }
}

/// `events` as a chunked SSE answer, one chunk per event.
fn chunked_sse(events: &[String]) -> String {
    let mut answer = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                      cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
        .to_string();
    for event in events {
        answer.push_str(&format!("{:x}\r\n{event}\r\n", event.len()));
    }
    answer.push_str("0\r\n\r\n");
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_private_ca_answers_pass_intact_over_one_reused_tls_connection() {
    let wire = TlsWire::start(true).await;
    let events = short_sse_events("encrypted");
    wire.relay.reply(Reply::new(json_answer("", MESSAGE)));
    // One byte per TLS record: the proxy must put the stream back together
    // across record boundaries.
    wire.relay.reply(Reply::byte_by_byte(
        chunked_sse(&events),
        Duration::from_millis(1),
    ));
    let (json_status, json) = post_and_read(&wire.url(), false).await;
    let (sse_status, sse) = post_and_read(&wire.url(), true).await;
    let (last, _) = post_and_read(&wire.url(), false).await;
    let connections = wire.relay.connection_of_each_request();
    let handshakes_failed = wire.relay.handshake_errors();
    println!(
        "tried: https://localhost relay with a private CA in TARGET_CA_FILE; a JSON answer, \
         a chunked SSE answer written one byte per TLS record, then another request; \
         observed: {json_status} {:?} (error {:?}), {sse_status} events {:?} (error {:?}), \
         then {last}, on relay connections {connections:?}, failed handshakes {handshakes_failed:?}",
        json.text(),
        json.error,
        sse_events(&sse.text()),
        sse.error
    );
    assert_eq!(json_status, 200, "{}", wire.proxy.logs());
    assert_eq!(json.error, None);
    assert_eq!(json.text(), MESSAGE);
    assert_eq!(sse_status, 200);
    assert_eq!(sse.error, None);
    assert_eq!(
        sse.text(),
        events.concat(),
        "the events were not passed on exactly"
    );
    assert_eq!(last, 200);
    assert_eq!(connections, [0, 0, 0], "the TLS connection was not reused");
    assert_eq!(handshakes_failed, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_ca_the_certificate_is_refused_with_a_502_and_the_proxy_keeps_serving() {
    let mut wire = TlsWire::start(false).await;
    let base = wire.url();
    let (status, body) = post_and_read(&base, false).await;
    let (again, _) = post_and_read(&base, false).await;
    let (health, _) = get_json(&format!("{base}/health")).await;
    let error: Value = serde_json::from_str(&body.text()).unwrap_or(Value::Null);
    let logs = wire.proxy.logs();
    let why = logs
        .lines()
        .find(|line| line.contains("invalid peer certificate"))
        .unwrap_or("")
        .to_string();
    let requests = wire.relay.requests();
    let handshakes_failed = wire.relay.handshake_errors();
    println!(
        "tried: https://localhost relay with a certificate from a private CA, no TARGET_CA_FILE; \
         observed: {status} {error}, then {again}, /health {health}, relay requests {requests:?}, \
         relay handshake errors {handshakes_failed:?}, proxy log {why:?}"
    );
    assert_eq!(status, 502, "{}", body.text());
    assert_anthropic_error(&error, "api_error");
    assert_eq!(again, 502);
    assert_eq!(health, 200, "the proxy stopped answering");
    assert!(wire.proxy.is_running(), "{logs}");
    assert!(
        why.contains("UnknownIssuer"),
        "the proxy's log does not say the issuer is unknown:\n{logs}"
    );
    assert!(
        requests.is_empty(),
        "a request went over an unverified connection"
    );
    assert!(!handshakes_failed.is_empty(), "the relay saw no handshake");
}

/// The proxy with an https target and this `TARGET_CA_FILE`, expected to stop.
fn refused_at_start(ca_file: &Path) -> (Option<i32>, String) {
    let ca_file = ca_file.to_str().expect("a UTF-8 temp path");
    let (status, stderr) = ProxyProcess::spawn_expect_exit(&[
        ("REDIS_URL", "redis://127.0.0.1:1/0"),
        ("TARGET_URL", "https://localhost:3443"),
        ("TARGET_CA_FILE", ca_file),
        ("GIN_MODE", "release"),
    ]);
    (status.code(), stderr)
}

#[test]
fn a_ca_file_that_is_missing_or_holds_no_certificate_stops_the_proxy() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("missing-ca.crt");
    let no_certificate = dir.path().join("key-only.pem");
    let key = KeyPair::generate().expect("a key").serialize_pem();
    std::fs::write(&no_certificate, key).expect("write the key-only file");
    for (case, file, why) in [
        ("a file that does not exist", &missing, "cannot read"),
        (
            "a file holding only a private key",
            &no_certificate,
            "holds no PEM certificate",
        ),
    ] {
        let (code, stderr) = refused_at_start(file);
        println!("tried: TARGET_CA_FILE {case}; observed: exit {code:?}, stderr {stderr:?}");
        assert_eq!(code, Some(2), "{case}: {stderr}");
        assert!(stderr.contains("TARGET_CA_FILE"), "{case}: {stderr}");
        assert!(
            stderr.contains(&file.display().to_string()),
            "{case}: the file is not named: {stderr}"
        );
        assert!(stderr.contains(why), "{case}: {stderr}");
    }
}
