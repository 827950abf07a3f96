//! Real parts shared by the integration tests, the demo and the benchmarks.
//!
//! - [`redis`]: a private `redis-server` on a free port, loaded with the relay fixtures.
//! - [`backend`]: the stand-in claude-relay-service backend, scriptable per account.
//! - [`proxy`]: the real `claude-middleware` binary as a child process.
//! - [`poll`]: waiting for a condition instead of sleeping.
//! - [`controlplane`]: the local kube-apiserver/etcd/controller-manager, one per test run.

pub mod backend;
pub mod client;
pub mod cluster;
pub mod controlplane;
pub mod fixture_accounts;
pub mod metrics;
pub mod poll;
pub mod ports;
pub mod proxy;
pub mod redis;
pub mod stack;
