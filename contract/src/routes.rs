//! The paths the proxy forwards to the relay.

/// The route prefixes the Go middleware proxied, all methods. The proxy's
/// route table, the stand-in relay and the tests all read this list.
pub const PROXIED_PREFIXES: [&str; 6] = [
    "/v1/",
    "/api/v1/",
    "/claude/v1/",
    "/gemini/",
    "/openai/claude/v1/",
    "/openai/gemini/v1/",
];
