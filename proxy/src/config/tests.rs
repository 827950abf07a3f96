//! The rules of [`Config::from_raw`], one variable at a time.

use super::*;

fn raw() -> RawSettings {
    RawSettings::default()
}

#[test]
fn defaults_match_the_go_middleware() {
    let config = Config::from_raw(&raw()).unwrap();
    assert_eq!(config.port, 8080);
    assert!(config.debug_logs);
    assert_eq!(config.redis.url, "redis://localhost:6379/0");
    assert_eq!(config.target, "http://localhost:3001");
    assert_eq!(config.proxy_timeout, Duration::from_secs(300));
    assert!(!config.auth.enabled);
    assert_eq!(config.auth.prefix, "cr_");
    assert_eq!(config.account_refresh_interval, Duration::from_secs(30));
    assert_eq!(config.cooldowns.rate_limit, Duration::from_secs(3600));
    assert_eq!(config.cooldowns.auth, Duration::from_secs(1800));
    assert_eq!(config.cooldowns.server_error, Duration::from_secs(600));
    assert_eq!(config.cooldowns.overloaded, Duration::from_secs(15));
    assert_eq!(config.target_v1_path, "/api/v1");
    assert_eq!(config.target_ca_file, None);
    assert_eq!(config.sticky_session_ttl, Duration::from_secs(3600));
    assert_eq!(config.max_body_bytes, 33_554_432);
    assert_eq!(config.retry_attempts, 2);
    assert!(config.shared_health);
    assert_eq!(config.health_key_prefix, "claude-middleware:");
    assert_eq!(config.drain_timeout, Duration::from_secs(30));
    assert_eq!(config.client_idle_timeout, Duration::from_secs(30));
    assert_eq!(config.shutdown_delay, Duration::from_secs(5));
    assert_eq!(config.log_format, LogFormat::Text);
    assert_eq!(config.worker_threads, 0);
}

#[test]
fn serving_threads_are_the_cpus_unless_set() {
    let auto = Config::from_raw(&raw()).unwrap();
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    assert_eq!(auto.serving_threads(), cpus);
    let one = Config::from_raw(&RawSettings {
        worker_threads: Some("1".into()),
        ..raw()
    })
    .unwrap();
    assert_eq!(one.serving_threads(), 1);
}

#[test]
fn gin_mode_production_is_release_not_a_crash() {
    let config = Config::from_raw(&RawSettings {
        gin_mode: Some("production".into()),
        ..raw()
    })
    .unwrap();
    assert!(!config.debug_logs);
}

#[test]
fn empty_values_mean_default() {
    let config = Config::from_raw(&RawSettings {
        port: Some("".into()),
        target_url: Some(" ".into()),
        ..raw()
    })
    .unwrap();
    assert_eq!(config.port, 8080);
    assert_eq!(config.target, "http://localhost:3001");
}

#[test]
fn each_error_names_its_variable() {
    let cases: Vec<(RawSettings, &str)> = vec![
        (
            RawSettings {
                port: Some("abc".into()),
                ..raw()
            },
            "PORT",
        ),
        (
            RawSettings {
                port: Some("70000".into()),
                ..raw()
            },
            "PORT",
        ),
        (
            RawSettings {
                gin_mode: Some("loud".into()),
                ..raw()
            },
            "GIN_MODE",
        ),
        (
            RawSettings {
                redis_port: Some("x".into()),
                ..raw()
            },
            "REDIS_PORT",
        ),
        (
            RawSettings {
                redis_db: Some("-1".into()),
                ..raw()
            },
            "REDIS_DB",
        ),
        (
            RawSettings {
                redis_url: Some("http://x".into()),
                ..raw()
            },
            "REDIS_URL",
        ),
        (
            RawSettings {
                target_url: Some("localhost:3001".into()),
                ..raw()
            },
            "TARGET_URL",
        ),
        (
            RawSettings {
                target_url: Some("ftp://relay".into()),
                ..raw()
            },
            "TARGET_URL",
        ),
        (
            RawSettings {
                proxy_timeout: Some("soon".into()),
                ..raw()
            },
            "PROXY_TIMEOUT",
        ),
        (
            RawSettings {
                proxy_timeout: Some("0".into()),
                ..raw()
            },
            "PROXY_TIMEOUT",
        ),
        (
            RawSettings {
                middleware_auth_enabled: Some("maybe".into()),
                ..raw()
            },
            "MIDDLEWARE_AUTH_ENABLED",
        ),
        (
            RawSettings {
                max_body_bytes: Some("big".into()),
                ..raw()
            },
            "MAX_BODY_BYTES",
        ),
        (
            RawSettings {
                retry_attempts: Some("-1".into()),
                ..raw()
            },
            "RETRY_ATTEMPTS",
        ),
        (
            RawSettings {
                log_format: Some("xml".into()),
                ..raw()
            },
            "LOG_FORMAT",
        ),
        (
            RawSettings {
                drain_timeout: Some("1 fortnight".into()),
                ..raw()
            },
            "DRAIN_TIMEOUT",
        ),
        (
            RawSettings {
                client_idle_timeout: Some("500ms".into()),
                ..raw()
            },
            "CLIENT_IDLE_TIMEOUT",
        ),
        (
            RawSettings {
                worker_threads: Some("-1".into()),
                ..raw()
            },
            "WORKER_THREADS",
        ),
        (
            RawSettings {
                worker_threads: Some("4096".into()),
                ..raw()
            },
            "WORKER_THREADS",
        ),
        (
            RawSettings {
                shutdown_delay: Some("a moment".into()),
                ..raw()
            },
            "SHUTDOWN_DELAY",
        ),
        (
            RawSettings {
                shared_health: Some("perhaps".into()),
                ..raw()
            },
            "SHARED_HEALTH",
        ),
        (
            RawSettings {
                health_key_prefix: Some("claude:mine:".into()),
                ..raw()
            },
            "HEALTH_KEY_PREFIX",
        ),
        (
            RawSettings {
                target_ca_file: Some("/etc/relay-ca/ca.crt".into()),
                ..raw()
            },
            "TARGET_CA_FILE",
        ),
    ];
    for (settings, variable) in cases {
        let error = Config::from_raw(&settings).unwrap_err();
        assert_eq!(error.variable, variable, "{error}");
        assert!(error.to_string().contains(variable));
        assert!(!error.to_string().contains('\n'));
    }
}

#[test]
fn auth_enabled_without_keys_fails_closed() {
    let error = Config::from_raw(&RawSettings {
        middleware_auth_enabled: Some("true".into()),
        ..raw()
    })
    .unwrap_err();
    assert_eq!(error.variable, "MIDDLEWARE_API_KEYS");
    let ok = Config::from_raw(&RawSettings {
        middleware_auth_enabled: Some("true".into()),
        middleware_api_keys: Some("cr_one_1234567, cr_two_1234567".into()),
        ..raw()
    })
    .unwrap();
    assert_eq!(
        ok.auth.inline_keys,
        vec!["cr_one_1234567", "cr_two_1234567"]
    );
}

#[test]
fn durations_accept_units() {
    let config = Config::from_raw(&RawSettings {
        account_refresh_interval: Some("5s".into()),
        cooldown_rate_limit: Some("2m".into()),
        proxy_timeout: Some("600".into()),
        sticky_session_ttl: Some("0".into()),
        ..raw()
    })
    .unwrap();
    assert_eq!(config.account_refresh_interval, Duration::from_secs(5));
    assert_eq!(config.cooldowns.rate_limit, Duration::from_secs(120));
    assert_eq!(config.proxy_timeout, Duration::from_secs(600));
    assert_eq!(config.sticky_session_ttl, Duration::ZERO);
}

#[test]
fn v1_path_is_a_plain_absolute_path() {
    let with = |path: &str| {
        Config::from_raw(&RawSettings {
            target_v1_path: Some(path.into()),
            ..raw()
        })
    };
    assert_eq!(with("/v1").unwrap().target_v1_path, "/v1");
    assert_eq!(with("/claude/v1/").unwrap().target_v1_path, "/claude/v1");
    for bad in [
        "api/v1",
        "/api/../admin",
        "/api//v1",
        "/api?x=1",
        "/",
        "/a b",
    ] {
        let error = with(bad).unwrap_err().to_string();
        assert!(error.contains("TARGET_V1_PATH"), "{bad}: {error}");
    }
}

#[test]
fn target_ca_file_is_taken_only_with_an_https_target() {
    let with = |target: &str, ca_file: &str| {
        Config::from_raw(&RawSettings {
            target_url: Some(target.into()),
            target_ca_file: Some(ca_file.into()),
            ..raw()
        })
    };
    assert_eq!(
        with("https://relay.svc:3001", "/etc/relay-ca/ca.crt")
            .unwrap()
            .target_ca_file,
        Some(PathBuf::from("/etc/relay-ca/ca.crt"))
    );
    assert_eq!(
        with("http://relay.svc:3001", " ").unwrap().target_ca_file,
        None,
        "empty means unset"
    );
    let error = with("http://relay.svc:3001", "/etc/relay-ca/ca.crt").unwrap_err();
    assert_eq!(error.variable, "TARGET_CA_FILE");
    let text = error.to_string();
    assert!(text.contains("/etc/relay-ca/ca.crt"), "{text}");
    assert!(text.contains("TARGET_URL is not https://"), "{text}");
}
