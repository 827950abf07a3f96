//! Real parts shared by the integration tests, the demo and the benchmarks.
//!
//! - [`redis`]: a private `redis-server` on a free port, loaded with the relay fixtures.
//! - [`backend`]: the stand-in claude-relay-service backend, scriptable per account.
//! - [`proxy`]: the real `claude-middleware` binary as a child process.
//! - [`raw_relay`]: a relay writing hand-made HTTP/1.1 bytes (plain or over TLS), recording each request's connection.
//! - [`prometheus`]: a private `prometheus` scraping them, for the alerts and the dashboard.
//! - [`poll`]: waiting for a condition instead of sleeping.
//! - [`controlplane`]: the local kube-apiserver/etcd/controller-manager, one per test run.
//! - [`third_party_crds`]: the Gateway API and Prometheus Operator CRDs, from their Go modules.

pub mod backend;
pub mod client;
pub mod cluster;
pub mod controlplane;
pub mod fixture_accounts;
pub mod metrics;
pub mod poll;
pub mod ports;
pub mod prometheus;
pub mod proxy;
pub mod raw_relay;
pub mod redis;
pub mod stack;
pub mod third_party_crds;
