//! The backend's address, and the URI of each forwarded request on it.

use http::uri::{self, Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Uri};

#[derive(Debug, Clone)]
pub struct Target {
    scheme: Scheme,
    authority: Authority,
    /// A path prefix of TARGET_URL without its trailing slash ("" for none).
    base_path: String,
    /// What replaces a client path's leading `/v1`: the base path and
    /// TARGET_V1_PATH joined once here, not on every request; `None` when
    /// TARGET_V1_PATH is `/v1` itself (nothing to map).
    v1_prefix: Option<String>,
    host_header: HeaderValue,
}

impl Target {
    /// `uri` is a validated TARGET_URL (scheme and host present); `v1_path`
    /// a validated TARGET_V1_PATH.
    pub fn new(uri: &Uri, v1_path: &str) -> Result<Self, String> {
        let scheme = uri.scheme().cloned().ok_or("TARGET_URL has no scheme")?;
        let authority = uri.authority().cloned().ok_or("TARGET_URL has no host")?;
        let host_header = HeaderValue::from_str(authority.as_str())
            .map_err(|_| "TARGET_URL host is not a valid Host header".to_string())?;
        let base_path = uri.path().trim_end_matches('/').to_string();
        let v1_prefix = (v1_path != "/v1").then(|| format!("{base_path}{v1_path}"));
        Ok(Self {
            scheme,
            authority,
            base_path,
            v1_prefix,
            host_header,
        })
    }

    pub fn host_header(&self) -> &HeaderValue {
        &self.host_header
    }

    /// The client's path and query on the backend, in origin form (what an
    /// HTTP/1.1 request line carries): under TARGET_URL's path, with a leading
    /// `/v1` replaced by TARGET_V1_PATH. In two pieces, written one after the
    /// other into the request head: nothing is joined or parsed again per
    /// request, as both are valid already (the client's from hyper's parser,
    /// the prefix from the configuration's checks).
    pub fn path_for<'a>(&'a self, client_uri: &'a Uri) -> [&'a str; 2] {
        match client_uri.path_and_query() {
            Some(pq) => match self.v1_rest(pq.as_str()) {
                Some((prefix, rest)) => [prefix, rest],
                None => [&self.base_path, pq.as_str()],
            },
            None => [&self.base_path, "/"],
        }
    }

    /// The backend's scheme and authority, for the connector.
    pub fn origin(&self) -> Uri {
        let mut parts = uri::Parts::default();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(self.authority.clone());
        parts.path_and_query = Some(PathAndQuery::from_static("/"));
        Uri::from_parts(parts).unwrap_or_default()
    }
}

impl Target {
    /// The prefix that replaces `/v1` and what follows `/v1` in a client path
    /// that must be mapped ("/messages?x"), or `None` when the path is not
    /// under `/v1` or the mapping is `/v1` itself.
    fn v1_rest<'a>(&'a self, path_and_query: &'a str) -> Option<(&'a str, &'a str)> {
        let prefix = self.v1_prefix.as_deref()?;
        let rest = path_and_query.strip_prefix("/v1")?;
        (rest.is_empty() || rest.starts_with(['/', '?'])).then_some((prefix, rest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the request line carries, checked to be a valid path.
    fn path(target: &Target, client_path: &str) -> String {
        let joined = target.path_for(&client_path.parse().unwrap()).concat();
        PathAndQuery::try_from(joined.as_str()).expect("a valid path");
        joined
    }

    #[test]
    fn joins_paths() {
        let t = Target::new(&"http://relay:3001".parse().unwrap(), "/v1").unwrap();
        assert_eq!(path(&t, "/v1/messages?beta=true"), "/v1/messages?beta=true");
        assert_eq!(t.host_header(), "relay:3001");
        assert_eq!(t.origin(), "http://relay:3001/");
        let t = Target::new(&"https://relay.example/base/".parse().unwrap(), "/v1").unwrap();
        assert_eq!(path(&t, "/v1/messages"), "/base/v1/messages");
    }

    #[test]
    fn maps_v1_onto_the_relays_prefix() {
        let t = Target::new(&"http://relay:3001".parse().unwrap(), "/api/v1").unwrap();
        let mapped = |client_path: &str| path(&t, client_path);
        assert_eq!(
            mapped("/v1/messages?beta=true"),
            "/api/v1/messages?beta=true"
        );
        assert_eq!(mapped("/v1"), "/api/v1");
        // Only a whole /v1 segment, and only at the start.
        assert_eq!(mapped("/v1beta/x"), "/v1beta/x");
        assert_eq!(mapped("/api/v1/messages"), "/api/v1/messages");
        assert_eq!(mapped("/claude/v1/messages"), "/claude/v1/messages");
        let t = Target::new(&"http://relay:3001/base".parse().unwrap(), "/api/v1").unwrap();
        assert_eq!(path(&t, "/v1/messages"), "/base/api/v1/messages");
    }
}
