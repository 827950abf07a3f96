//! claude-middleware: a streaming proxy in front of claude-relay-service that
//! spreads Anthropic API calls over the relay's healthy accounts, fails over
//! when one is rate limited or broken, checks client keys, and streams answers
//! back without buffering.
//!
//! Request path: [`app::route`] → [`auth`] → [`forward`] (pick an account via
//! [`routing`] from the [`accounts`] pool, rewrite headers, send, classify the
//! outcome, retry or stream back). Pure logic (configuration, selection,
//! classification, header rewriting) is unit-tested without I/O.

pub mod accounts;
pub mod app;
pub mod auth;
pub mod config;
pub mod errors;
pub mod forward;
pub mod keys_file;
pub mod logging;
pub mod metrics;
pub mod refresh;
pub mod routing;
pub mod run;
pub mod server;
pub mod sessions;
pub mod shared;
pub mod usage;
