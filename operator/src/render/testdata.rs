//! The minimal and full CRs of the golden tests (operator/tests/golden/*.cr.yaml).

use crate::crd::ClaudeMiddleware;
use crate::reconcile::dereference::Dereferenced;
use crate::reconcile::validate::{ValidatedMiddleware, validate};

pub const MINIMAL_CR: &str = include_str!("../../tests/golden/minimal.cr.yaml");
pub const FULL_CR: &str = include_str!("../../tests/golden/full.cr.yaml");
pub const TEST_IMAGE: &str = "ghcr.io/claude-middleware/claude-middleware:test";

fn parse(yaml: &str) -> ClaudeMiddleware {
    let mut cr: ClaudeMiddleware = serde_norway::from_str(yaml).expect("fixture CR parses");
    // What the API server would have set; the owner reference needs it.
    cr.metadata.uid = Some("00000000-0000-4000-8000-000000000001".into());
    cr
}

pub fn minimal() -> ClaudeMiddleware {
    parse(MINIMAL_CR)
}

pub fn full() -> ClaudeMiddleware {
    parse(FULL_CR)
}

/// The fixture as the renderers see it, with `hash` as the Redis password's.
pub fn validated(cr: &ClaudeMiddleware, hash: Option<String>) -> ValidatedMiddleware {
    let dereferenced = Dereferenced {
        redis_password_hash: hash,
    };
    validate(cr, TEST_IMAGE, dereferenced).expect("fixture CR validates")
}
