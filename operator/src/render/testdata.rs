//! The minimal and full CRs of the golden tests (operator/tests/golden/*.cr.yaml).

use crate::crd::ClaudeMiddleware;
use crate::render::RenderInput;

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

pub fn input(cr: &ClaudeMiddleware, hash: Option<String>) -> RenderInput<'_> {
    RenderInput::new(cr, TEST_IMAGE, hash).expect("fixture CR validates")
}
