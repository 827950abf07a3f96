//! claude-middleware: see main.rs.
