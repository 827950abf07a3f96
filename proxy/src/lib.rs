//! claude-middleware: a streaming proxy in front of claude-relay-service that
//! spreads Anthropic API calls over the relay's healthy accounts, fails over
//! when one is rate limited or broken, checks client keys, and streams answers
//! back without buffering.
//!
//! Request path: [`routes::route`] → [`auth`] → [`forward`] (pick an account
//! via [`selection`] from the [`accounts`] pool, rewrite headers, send,
//! classify the outcome, retry or stream back as a [`response`]). Pure logic
//! (configuration, selection, classification, header rewriting) is unit-tested
//! without I/O. [`upstream`] holds the pooled connections to the backend.

pub mod accounts;
pub mod auth;
pub mod client_head;
pub mod config;
pub mod forward;
pub mod header_lines;
pub mod header_names;
pub mod keys_file;
pub mod logging;
pub mod metrics;
pub mod refresh;
pub mod response;
pub mod routes;
pub mod run;
pub mod selection;
pub mod server;
pub mod sessions;
pub mod shared_health;
pub mod state;
pub mod target_ca;
pub mod upstream;
pub mod usage;
