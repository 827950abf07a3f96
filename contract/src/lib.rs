//! The contract between the proxy and the operator, defined once: the proxy's
//! settings (environment variable names and defaults), the duration syntax
//! they use (parser and the pattern the CRD schema checks), and the path
//! prefixes the proxy forwards. The proxy reads its configuration through
//! [`settings`]; the operator renders the same names and checks the same
//! syntax, so a new setting is added here once and cannot be misspelt.

pub mod duration;
pub mod routes;
pub mod settings;

pub use duration::{DURATION_PATTERN, DurationError, SettingDuration, parse_duration};
pub use routes::PROXIED_PREFIXES;
pub use settings::Setting;
