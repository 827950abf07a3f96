//! The backend's address, and the URI of each forwarded request on it.

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Uri};

#[derive(Debug, Clone)]
pub struct Target {
    scheme: Scheme,
    authority: Authority,
    /// A path prefix of TARGET_URL without its trailing slash ("" for none).
    base_path: String,
    host_header: HeaderValue,
}

impl Target {
    /// `uri` is a validated TARGET_URL (scheme and host present).
    pub fn new(uri: &Uri) -> Result<Self, String> {
        let scheme = uri.scheme().cloned().ok_or("TARGET_URL has no scheme")?;
        let authority = uri.authority().cloned().ok_or("TARGET_URL has no host")?;
        let host_header = HeaderValue::from_str(authority.as_str())
            .map_err(|_| "TARGET_URL host is not a valid Host header".to_string())?;
        Ok(Self {
            scheme,
            authority,
            base_path: uri.path().trim_end_matches('/').to_string(),
            host_header,
        })
    }

    pub fn host_header(&self) -> &HeaderValue {
        &self.host_header
    }

    /// The client's path and query on the backend (under TARGET_URL's path).
    pub fn uri_for(&self, client_uri: &Uri) -> Result<Uri, http::Error> {
        let path_and_query = match client_uri.path_and_query() {
            Some(pq) if self.base_path.is_empty() => pq.clone(),
            Some(pq) => PathAndQuery::try_from(format!("{}{}", self.base_path, pq))?,
            None => PathAndQuery::from_static("/"),
        };
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path_and_query)
            .build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_paths() {
        let t = Target::new(&"http://relay:3001".parse().unwrap()).unwrap();
        assert_eq!(
            t.uri_for(&"/v1/messages?beta=true".parse().unwrap())
                .unwrap(),
            "http://relay:3001/v1/messages?beta=true"
        );
        assert_eq!(t.host_header(), "relay:3001");
        let t = Target::new(&"https://relay.example/base/".parse().unwrap()).unwrap();
        assert_eq!(
            t.uri_for(&"/v1/messages".parse().unwrap()).unwrap(),
            "https://relay.example/base/v1/messages"
        );
    }
}
