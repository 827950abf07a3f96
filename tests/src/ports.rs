//! Free loopback ports for the services the tests start.
//!
//! Ports are picked below the kernel's ephemeral range (32768–60999 by default) because a
//! service the tests stop and start again on the same port (Redis killed mid-run) must get
//! it back: a port in the ephemeral range can meanwhile become the local end of some
//! outgoing connection, or even of a client reconnecting to that very port (a TCP
//! self-connect), and the restart would fail with "address in use".

use std::collections::HashSet;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::TcpListener;
use std::sync::Mutex;

/// The range ports are picked from: below the ephemeral range, above the well-known ones.
const RANGE: std::ops::Range<u16> = 20_000..32_000;

/// Ports this process already handed out, never handed out twice.
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A TCP port on 127.0.0.1 that is free now and was not handed out before by this process.
///
/// It is found by binding the port and releasing it again, so another process could take it
/// in between; the random pick makes that unlikely.
pub fn free_port() -> u16 {
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|p| p.into_inner());
    let handed_out = handed_out.get_or_insert_with(HashSet::new);
    for _ in 0..1000 {
        let port = RANGE.start + (random() % u64::from(RANGE.end - RANGE.start)) as u16;
        if !handed_out.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            handed_out.insert(port);
            return port;
        }
    }
    // Everything busy (unlikely): let the kernel choose.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 to find a free port");
    let port = listener
        .local_addr()
        .expect("local address of a bound listener")
        .port();
    handed_out.insert(port);
    port
}

/// A random number from std's randomly keyed hasher (no extra crate for a port pick).
fn random() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.write_u32(std::process::id());
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_free_distinct_and_outside_the_ephemeral_range() {
        let ports: Vec<u16> = (0..50).map(|_| free_port()).collect();
        let distinct: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len());
        for port in ports {
            assert!(RANGE.contains(&port), "{port}");
            assert!(TcpListener::bind(("127.0.0.1", port)).is_ok());
        }
    }
}
