//! claude-middleware-operator: the `ClaudeMiddleware` CRD, pure renderers of its
//! children, and the reconciler that applies them.
//!
//! Data flows one way: CR → dereference (Secrets) → validate → render (pure) →
//! server-side apply → prune → status.

pub mod admin;
pub mod controller;
pub mod crd;
pub mod leader;
pub mod metrics;
pub mod readiness;
pub mod reconcile;
pub mod render;

pub use controller::{ControllerConfig, run_controller};
