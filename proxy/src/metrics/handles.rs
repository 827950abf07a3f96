//! Counter handles kept once resolved, so that a request does not hash its
//! label set (and allocate its account label) in a `Family` every time. A
//! handle is a clone of the family's own counter (they share one value), and
//! it is taken from the family on first use only: `/metrics` shows no series
//! before it has counted something, exactly as without the handles.

use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use super::{RequestLabels, RequestOutcome, TokenLabels};
use crate::usage::{ModelFamily, Usage};
use cmw_contract::PROXIED_PREFIXES;

/// The `kind` label of each of [`Usage`]'s counts, in [`by_kind`]'s order.
const TOKEN_KINDS: [&str; 4] = ["input", "output", "cache_read", "cache_creation"];

/// One answer's tokens in [`TOKEN_KINDS`] order.
fn by_kind(usage: &Usage) -> [u64; TOKEN_KINDS.len()] {
    [
        usage.input_tokens,
        usage.output_tokens,
        usage.cache_read_input_tokens,
        usage.cache_creation_input_tokens,
    ]
}

/// One account's token counters, by model family and kind.
type AccountTokens = [[OnceLock<Counter>; TOKEN_KINDS.len()]; ModelFamily::ALL.len()];

/// The token counters of each account (by its 8-character label) seen so
/// far. Accounts are few and long-lived, like the family's own series; their
/// ids come from Redis, not from clients, so foldhash rather than SipHash.
#[derive(Default)]
pub struct TokenCounters {
    by_account: RwLock<HashMap<Box<str>, AccountTokens, foldhash::fast::RandomState>>,
}

impl TokenCounters {
    /// Adds one answer's tokens to `tokens`, by kind; kinds with none are
    /// left out (no zero series).
    pub fn add(
        &self,
        tokens: &Family<TokenLabels, Counter>,
        account: &str,
        family: ModelFamily,
        usage: &Usage,
    ) {
        let counts = by_kind(usage);
        if counts.iter().all(|n| *n == 0) {
            return;
        }
        let add_to = |slots: &AccountTokens| {
            let by_kind = &slots[family as usize];
            for ((slot, kind), n) in by_kind.iter().zip(TOKEN_KINDS).zip(counts) {
                if n > 0 {
                    let labels = || TokenLabels {
                        account: account.to_string(),
                        model_family: family.as_str(),
                        kind,
                    };
                    let counter = slot.get_or_init(|| tokens.get_or_create(&labels()).clone());
                    counter.inc_by(n);
                }
            }
        };
        let known = self.by_account.read().unwrap_or_else(|p| p.into_inner());
        if let Some(slots) = known.get(account) {
            return add_to(slots);
        }
        drop(known);
        let mut known = self.by_account.write().unwrap_or_else(|p| p.into_inner());
        add_to(known.entry(Box::from(account)).or_default());
    }
}

/// Request counters of status 200 (nearly every request), by route and
/// outcome; other statuses are counted through the family.
#[derive(Default)]
pub struct RequestCounters {
    ok: [[OnceLock<Counter>; RequestOutcome::ALL.len()]; PROXIED_PREFIXES.len()],
}

impl RequestCounters {
    pub fn inc(&self, requests: &Family<RequestLabels, Counter>, labels: RequestLabels) {
        let route = PROXIED_PREFIXES.iter().position(|p| *p == labels.route);
        match route {
            Some(route) if labels.status == 200 => {
                let slot = &self.ok[route][labels.outcome as usize];
                slot.get_or_init(|| requests.get_or_create(&labels).clone())
                    .inc();
            }
            _ => {
                requests.get_or_create(&labels).inc();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;
    use prometheus_client::registry::Registry;

    fn text(registry: &Registry) -> String {
        let mut out = String::new();
        encode(&mut out, registry).unwrap();
        out
    }

    #[test]
    fn outcomes_index_their_slots() {
        for (at, outcome) in RequestOutcome::ALL.into_iter().enumerate() {
            assert_eq!(outcome as usize, at);
        }
    }

    #[test]
    fn tokens_count_like_the_family_and_show_no_zero_series() {
        let tokens = Family::<TokenLabels, Counter>::default();
        let mut registry = Registry::default();
        registry.register("tokens", "t", tokens.clone());
        let counters = TokenCounters::default();
        let usage = Usage {
            input_tokens: 5,
            output_tokens: 7,
            cache_read_input_tokens: 0,
            cache_creation_input_tokens: 0,
        };
        counters.add(&tokens, "acct0001", ModelFamily::Sonnet, &usage);
        counters.add(&tokens, "acct0001", ModelFamily::Sonnet, &usage);
        counters.add(&tokens, "acct0002", ModelFamily::Other, &Usage::default());
        let out = text(&registry);
        assert!(
            out.contains(
                r#"tokens_total{account="acct0001",model_family="sonnet",kind="input"} 10"#
            )
        );
        assert!(out.contains(
            r#"tokens_total{account="acct0001",model_family="sonnet",kind="output"} 14"#
        ));
        assert!(!out.contains("cache_read"), "{out}");
        assert!(!out.contains("acct0002"), "{out}");
        // The family's own handle sees the same value.
        let labels = TokenLabels {
            account: "acct0001".into(),
            model_family: "sonnet",
            kind: "input",
        };
        assert_eq!(tokens.get_or_create(&labels).get(), 10);
    }

    #[test]
    fn requests_count_like_the_family() {
        let requests = Family::<RequestLabels, Counter>::default();
        let mut registry = Registry::default();
        registry.register("requests", "r", requests.clone());
        let counters = RequestCounters::default();
        let labels = |route, status, outcome| RequestLabels {
            route,
            status,
            outcome,
        };
        counters.inc(&requests, labels("/v1/", 200, RequestOutcome::Completed));
        counters.inc(&requests, labels("/v1/", 200, RequestOutcome::Completed));
        counters.inc(&requests, labels("/v1/", 200, RequestOutcome::ClientClosed));
        counters.inc(&requests, labels("/v1/", 429, RequestOutcome::Completed));
        counters.inc(
            &requests,
            labels("/elsewhere", 200, RequestOutcome::Completed),
        );
        let out = text(&registry);
        for line in [
            r#"requests_total{route="/v1/",status="200",outcome="completed"} 2"#,
            r#"requests_total{route="/v1/",status="200",outcome="client_closed"} 1"#,
            r#"requests_total{route="/v1/",status="429",outcome="completed"} 1"#,
            r#"requests_total{route="/elsewhere",status="200",outcome="completed"} 1"#,
        ] {
            assert!(out.contains(line), "{line} in {out}");
        }
        assert_eq!(out.matches("requests_total{").count(), 4, "{out}");
    }
}
