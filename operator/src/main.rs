//! Placeholder until the operator lands (issue: operator CRD and reconciler).
fn main() -> anyhow::Result<()> {
    anyhow::bail!("claude-middleware-operator is not built yet")
}
