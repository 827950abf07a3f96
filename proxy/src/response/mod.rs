//! What goes back to the client: the response body (the proxy's own small
//! answers or the backend's stream), the proxy's JSON answers in Anthropic's
//! error shape, and the record written once a response has ended.

mod body;
mod json;
mod record;

pub use body::{BodyError, ProxyBody, UpstreamBody};
pub use json::{error_response, error_type_for, json_response};
pub use record::RequestRecord;
