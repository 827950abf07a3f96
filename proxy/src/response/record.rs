//! One log line and one metric sample per proxied request, written when the
//! response has ended: completed, broken, or abandoned by the client.

use std::sync::Arc;
use std::time::Instant;

use http::Method;

use crate::accounts::short_id;
use crate::metrics::{Metrics, RequestLabels, RequestOutcome};
use crate::usage::{ModelFamily, UsageTap};

pub struct RequestRecord {
    pub metrics: Arc<Metrics>,
    pub started: Instant,
    pub method: Method,
    /// The path, copied: a slice of the request would keep the connection's
    /// whole read buffer alive for as long as the answer streams. The query
    /// is never logged: it may carry secrets.
    pub path: Box<str>,
    pub route: &'static str,
    pub status: u16,
    pub account: Option<Arc<str>>,
    pub attempts: u32,
    pub first_byte: Option<Instant>,
    pub bytes: u64,
    /// What a body that ends cleanly counts as: `Completed`, or the relay's
    /// own refusal passed on.
    pub completed_as: RequestOutcome,
    /// The requested model's family (`sonnet`), for the usage metrics.
    pub model_family: Option<ModelFamily>,
    /// Reads token usage from the body as it passes, on successful answers.
    pub usage: Option<UsageTap>,
}

impl RequestRecord {
    pub fn new(metrics: Arc<Metrics>, method: Method, path: &str, route: &'static str) -> Self {
        Self {
            metrics,
            started: Instant::now(),
            method,
            path: path.into(),
            route,
            status: 0,
            account: None,
            attempts: 0,
            first_byte: None,
            bytes: 0,
            completed_as: RequestOutcome::Completed,
            model_family: None,
            usage: None,
        }
    }

    /// Counts a body chunk on its way to the client.
    pub fn on_chunk(&mut self, chunk: &[u8]) {
        let len = chunk.len();
        if let Some(tap) = self.usage.as_mut() {
            tap.feed(chunk);
        }
        if self.first_byte.is_none() {
            let now = Instant::now();
            self.first_byte = Some(now);
            self.metrics.observe_ttfb(now - self.started);
        }
        self.bytes += len as u64;
    }

    pub fn finish(self, outcome: RequestOutcome, detail: Option<&str>) {
        // What was read counts even when the client left early: those tokens were spent.
        if let (Some(tap), Some(account)) = (&self.usage, &self.account) {
            let family = self.model_family.unwrap_or(ModelFamily::Other);
            self.metrics
                .record_usage(short_id(account), family, &tap.usage());
        }
        self.metrics.record_request(RequestLabels {
            route: self.route,
            status: self.status,
            outcome,
        });
        let path = &*self.path;
        let account = self.account.as_deref().map(short_id).unwrap_or("-");
        let outcome = outcome.as_str();
        // The times are worked out inside the macros, which evaluate their
        // fields only when the line is logged: with request lines off, no
        // clock is read here.
        if self.status >= 500 || detail.is_some() {
            tracing::warn!(
                method = %self.method, path, status = self.status, account, attempts = self.attempts,
                duration_ms = self.duration_ms(), ttfb_ms = self.ttfb_ms(), bytes = self.bytes,
                outcome, detail,
                "request"
            );
        } else {
            tracing::info!(
                method = %self.method, path, status = self.status, account, attempts = self.attempts,
                duration_ms = self.duration_ms(), ttfb_ms = self.ttfb_ms(), bytes = self.bytes,
                outcome,
                "request"
            );
        }
    }

    fn duration_ms(&self) -> f64 {
        self.started.elapsed().as_secs_f64() * 1000.0
    }

    fn ttfb_ms(&self) -> Option<f64> {
        self.first_byte
            .map(|t| (t - self.started).as_secs_f64() * 1000.0)
    }
}
