//! `sse-bench`: times server-sent events as they arrive, for the benchmarks (`bench/run.sh`).
//!
//! Load generators time whole responses; this client timestamps every SSE event of a
//! Messages API stream the moment its last byte arrives, so that the time to first byte
//! and the gaps between events can be compared across a direct connection, nginx and the
//! proxy. `--streams K` tasks each run `--rounds R` streams one after another and print one
//! JSON object with percentiles (microseconds) on stdout.
//!
//! With `--rss-pids`, once all K streams have received their first event (so that all are
//! open at once), it waits `--settle-ms`, sums `VmRSS` of those processes and reports it as
//! `rss_kib_open`: the memory of a server holding K open streams.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::StreamExt;
use serde_json::json;
use tokio::sync::Notify;

#[derive(Debug, Parser)]
#[command(
    name = "sse-bench",
    about = "Times SSE events of concurrent Messages API streams"
)]
struct Args {
    /// Base URL of the server (direct stand-in, nginx or the proxy).
    #[arg(long)]
    url: String,
    /// Path of the request.
    #[arg(long, default_value = "/v1/messages")]
    path: String,
    /// Concurrent streams.
    #[arg(long, default_value_t = 10)]
    streams: usize,
    /// Streams each concurrent task runs one after another.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Content deltas the stand-in sends (`x-test-events`); a stream has 5 more events.
    #[arg(long, default_value_t = 195)]
    deltas: usize,
    /// Gap between events the stand-in keeps (`x-test-gap-ms`).
    #[arg(long, default_value_t = 10)]
    gap_ms: u64,
    /// Client key sent as `x-api-key`.
    #[arg(long, default_value = "cr_bench_key_000001")]
    api_key: String,
    /// Spread the start of the K streams over this many milliseconds.
    #[arg(long, default_value_t = 0)]
    ramp_ms: u64,
    /// Comma-separated pids whose VmRSS is summed while all streams are open.
    #[arg(long, value_delimiter = ',')]
    rss_pids: Vec<u32>,
    /// Wait this long after all streams are open before reading RSS.
    #[arg(long, default_value_t = 1000)]
    settle_ms: u64,
    /// Give up on a stream after this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout_s: u64,
}

/// What one stream saw.
#[derive(Debug, Default)]
struct StreamTiming {
    /// From sending the request to the first complete event.
    ttfb_us: u64,
    /// Between consecutive complete events.
    gaps_us: Vec<u64>,
    /// From the stand-in handing each event to its connection to its arrival here
    /// (wall clock, same machine): the path's own delay, without the stand-in's
    /// timer jitter that the gaps carry.
    delivery_us: Vec<u64>,
    events: usize,
}

/// Splits complete SSE events (ended by a blank line) off the front of `buffer`, returning
/// how many were complete; what remains is the start of the next event.
fn take_events(buffer: &mut Vec<u8>) -> Vec<Option<u64>> {
    let mut stamps = Vec::new();
    while let Some(end) = find_event_end(buffer) {
        stamps.push(sent_stamp(&buffer[..end]));
        buffer.drain(..end);
    }
    stamps
}

/// The stand-in's `: sent <µs since the epoch>` comment in one event, if any
/// (it writes one when asked with `x-test-stamp: 1`).
fn sent_stamp(event: &[u8]) -> Option<u64> {
    event
        .split(|b| *b == b'\n')
        .find_map(|line| line.strip_prefix(b": sent "))
        .and_then(|digits| std::str::from_utf8(digits).ok())
        .and_then(|digits| digits.trim().parse().ok())
}

fn now_since_epoch_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// The index just past the first `\n\n` (or `\r\n\r\n`) in `bytes`.
fn find_event_end(bytes: &[u8]) -> Option<usize> {
    let lf = bytes.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    let crlf = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4);
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Nearest-rank percentile of sorted values; 0 when there are none.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn summary(mut values: Vec<u64>) -> serde_json::Value {
    values.sort_unstable();
    json!({
        "count": values.len(),
        "p50": percentile(&values, 50.0),
        "p90": percentile(&values, 90.0),
        "p99": percentile(&values, 99.0),
        "max": values.last().copied().unwrap_or(0),
    })
}

/// Sum of `VmRSS` (KiB) of these processes, from /proc.
fn rss_kib(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .filter_map(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<u64>().ok())
        })
        .sum()
}

/// Counts streams that have seen their first event and wakes the RSS reader when all have.
struct OpenGate {
    open: AtomicUsize,
    want: usize,
    all_open: Notify,
}

impl OpenGate {
    fn opened(&self) {
        if self.open.fetch_add(1, Ordering::SeqCst) + 1 == self.want {
            self.all_open.notify_one();
        }
    }
}

async fn one_stream(
    client: &reqwest::Client,
    args: &Args,
    gate: Option<&OpenGate>,
) -> Result<StreamTiming, String> {
    let body = json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 64,
        "stream": true,
        "messages": [{"role": "user", "content": "bench"}],
    });
    let started = Instant::now();
    let response = client
        .post(format!("{}{}", args.url, args.path))
        .header("x-api-key", &args.api_key)
        .header("anthropic-version", "2023-06-01")
        .header("x-test-events", args.deltas.to_string())
        .header("x-test-gap-ms", args.gap_ms.to_string())
        .header("x-test-stamp", "1")
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("send: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("status {}", response.status()));
    }
    let mut timing = StreamTiming::default();
    let mut buffer = Vec::new();
    let mut last: Option<Instant> = None;
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| format!("body: {e}"))?;
        let now = Instant::now();
        let arrived_us = now_since_epoch_us();
        buffer.extend_from_slice(&chunk);
        for sent in take_events(&mut buffer) {
            if let Some(sent) = sent {
                timing.delivery_us.push(arrived_us.saturating_sub(sent));
            }
            match last {
                None => {
                    timing.ttfb_us = now.duration_since(started).as_micros() as u64;
                    if let Some(gate) = gate {
                        gate.opened();
                    }
                }
                Some(previous) => timing
                    .gaps_us
                    .push(now.duration_since(previous).as_micros() as u64),
            }
            last = Some(now);
            timing.events += 1;
        }
    }
    let expected = args.deltas + 5;
    if timing.events != expected {
        return Err(format!("{} events, expected {expected}", timing.events));
    }
    Ok(timing)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Arc::new(Args::parse());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(args.timeout_s))
        .pool_max_idle_per_host(args.streams)
        .tcp_nodelay(true)
        .build()?;
    let gate = Arc::new(OpenGate {
        open: AtomicUsize::new(0),
        want: args.streams,
        all_open: Notify::new(),
    });
    let measure_rss = !args.rss_pids.is_empty();
    let wall = Instant::now();
    let mut tasks = Vec::with_capacity(args.streams);
    for i in 0..args.streams {
        let (client, args, gate) = (client.clone(), args.clone(), gate.clone());
        let delay = if args.streams > 1 {
            Duration::from_millis(args.ramp_ms * i as u64 / (args.streams as u64 - 1))
        } else {
            Duration::ZERO
        };
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let mut results = Vec::with_capacity(args.rounds);
            for round in 0..args.rounds {
                let gate = (measure_rss && round == 0).then_some(&*gate);
                results.push(one_stream(&client, &args, gate).await);
            }
            results
        }));
    }
    let rss_reader = measure_rss.then(|| {
        let (args, gate) = (args.clone(), gate.clone());
        tokio::spawn(async move {
            gate.all_open.notified().await;
            tokio::time::sleep(Duration::from_millis(args.settle_ms)).await;
            rss_kib(&args.rss_pids)
        })
    });

    let (mut ttfb, mut gaps, mut errors, mut ok) = (Vec::new(), Vec::new(), Vec::new(), 0usize);
    let mut delivery = Vec::new();
    for task in tasks {
        for result in task.await? {
            match result {
                Ok(timing) => {
                    ok += 1;
                    ttfb.push(timing.ttfb_us);
                    gaps.extend(timing.gaps_us);
                    delivery.extend(timing.delivery_us);
                }
                Err(e) => errors.push(e),
            }
        }
    }
    let rss_open = match rss_reader {
        // All streams ended without all being open at once: no meaningful figure.
        Some(reader) if gate.open.load(Ordering::SeqCst) >= args.streams => Some(reader.await?),
        Some(reader) => {
            reader.abort();
            None
        }
        None => None,
    };
    errors.sort();
    errors.dedup();
    let report = json!({
        "streams": args.streams,
        "rounds": args.rounds,
        "ok": ok,
        "errors": args.streams * args.rounds - ok,
        "error_kinds": errors.into_iter().take(5).collect::<Vec<_>>(),
        "events_per_stream": args.deltas + 5,
        "gap_ms": args.gap_ms,
        "ttfb_us": summary(ttfb),
        "gap_us": summary(gaps),
        "delivery_us": summary(delivery),
        "rss_kib_open": rss_open,
        "wall_ms": wall.elapsed().as_millis() as u64,
    });
    println!("{report}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_split_on_blank_lines_and_partial_ones_kept() {
        let mut buffer =
            b": sent 1700000000123456\nevent: a\ndata: {}\n\nevent: b\ndata: {}\n\nevent: c\nda"
                .to_vec();
        assert_eq!(
            take_events(&mut buffer),
            [Some(1_700_000_000_123_456), None]
        );
        assert_eq!(buffer, b"event: c\nda");
        buffer.extend_from_slice(b"ta: {}\r\n\r\n");
        assert_eq!(take_events(&mut buffer), [None]);
        assert!(buffer.is_empty());
    }

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&values, 50.0), 50);
        assert_eq!(percentile(&values, 99.0), 99);
        assert_eq!(percentile(&values, 100.0), 100);
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
    }
}
