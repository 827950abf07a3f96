//! The client at the other end of a connection, as forwarding needs it.

use std::net::IpAddr;

use http::HeaderValue;

/// The peer's address and its `X-Forwarded-For` value, made once per
/// connection rather than formatted again for every request on it.
#[derive(Debug, Clone)]
pub struct Peer {
    ip: IpAddr,
    /// `None` only if the address were not a valid header value (it always is).
    forwarded_for: Option<HeaderValue>,
}

impl Peer {
    pub fn new(ip: IpAddr) -> Self {
        Self {
            ip,
            forwarded_for: HeaderValue::try_from(ip.to_string()).ok(),
        }
    }

    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    /// `X-Forwarded-For` for a request that did not carry one.
    pub fn forwarded_for(&self) -> Option<&HeaderValue> {
        self.forwarded_for.as_ref()
    }
}

impl From<IpAddr> for Peer {
    fn from(ip: IpAddr) -> Self {
        Self::new(ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_the_address() {
        let peer = Peer::new("10.1.2.3".parse().unwrap());
        assert_eq!(peer.forwarded_for().unwrap(), "10.1.2.3");
        let peer = Peer::new("::1".parse().unwrap());
        assert_eq!(peer.forwarded_for().unwrap(), "::1");
        assert_eq!(peer.ip(), "::1".parse::<IpAddr>().unwrap());
    }
}
