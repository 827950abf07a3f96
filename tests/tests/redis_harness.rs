//! The private redis-server harness: starts, loads the relay fixtures, stops and restarts on
//! the same port, pauses.

use std::time::{Duration, Instant};

use cmw_tests::redis::RedisServer;

#[test]
fn fixtures_load_into_a_private_server() {
    let redis = RedisServer::start_with_fixtures();
    assert_eq!(redis.cli(&["PING"]), "PONG");
    assert_eq!(redis.cli(&["SCARD", "claude:account:index"]), "8");
    assert_eq!(redis.cli(&["TYPE", "claude:account:index:empty"]), "string");
    assert_eq!(
        redis.cli(&[
            "TYPE",
            "claude:account:3d5f7b91-8e3a-4c2d-9f4b-6b7c8d9e0f33"
        ]),
        "hash"
    );
    assert_eq!(
        redis.cli(&[
            "HGET",
            "claude:account:3d5f7b91-8e3a-4c2d-9f4b-6b7c8d9e0f33",
            "priority"
        ]),
        "10"
    );
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{}/0", redis.port()));
}

#[test]
fn stop_and_restart_keep_the_port_and_start_empty() {
    let mut redis = RedisServer::start_with_fixtures();
    let port = redis.port();
    redis.stop();
    assert!(!redis.is_running());
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());

    redis.restart();
    assert_eq!(redis.port(), port);
    assert_eq!(redis.cli(&["DBSIZE"]), "0");

    redis.restart_with_fixtures();
    assert_eq!(redis.port(), port);
    assert_eq!(redis.cli(&["SCARD", "claude:account:index"]), "8");
}

#[test]
fn pause_freezes_the_server_for_a_while() {
    let redis = RedisServer::start();
    redis.pause(Duration::from_millis(700));
    let asked = Instant::now();
    // redis-cli waits for the answer, which comes only after SIGCONT.
    assert_eq!(redis.cli(&["PING"]), "PONG");
    assert!(
        asked.elapsed() >= Duration::from_millis(500),
        "PING answered after {:?} while paused",
        asked.elapsed()
    );
}

#[test]
fn servers_are_private() {
    let a = RedisServer::start();
    let b = RedisServer::start();
    assert_ne!(a.port(), b.port());
    a.cli(&["SET", "k", "a"]);
    assert_eq!(b.cli(&["GET", "k"]), "");
}

#[test]
fn a_server_can_start_on_a_chosen_port() {
    let port = cmw_tests::ports::free_port();
    let redis = RedisServer::start_on_port_with_fixtures(port);
    assert_eq!(redis.port(), port);
    assert_eq!(redis.cli(&["SCARD", "claude:account:index"]), "8");
}

/// The repository carries its own copy of the relay fixtures (a fresh clone
/// needs nothing beside it); it must not drift from the shared ones.
#[test]
fn the_fixture_copy_matches_the_shared_fixtures() {
    let shared = cmw_tests::redis::shared_fixtures_dir().join("relay-accounts.redis");
    let Ok(shared) = std::fs::read(&shared) else {
        println!("no shared fixtures beside the repository; nothing to compare");
        return;
    };
    let copy = std::fs::read(
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/relay-accounts.redis"),
    )
    .expect("tests/fixtures/relay-accounts.redis");
    assert!(
        copy == shared,
        "tests/fixtures/relay-accounts.redis differs from shared/fixtures: copy it again"
    );
}
