//! Header names that come on nearly every request and answer, made once.
//!
//! `HeaderName::from_bytes` knows the standard names; any other name it
//! copies into an allocation of its own, every time. Anthropic's names
//! (`x-api-key`, `anthropic-version`, `request-id`, the rate-limit headers)
//! are on every exchange, so both HTTP/1 parsers (the client's request
//! head, the relay's answer head) look here first: a clone of a static
//! name costs no allocation.

use http::header::{HeaderName, InvalidHeaderName};

/// The name in `bytes` (any case), shared when it is a well-known one.
pub fn header_name(bytes: &[u8]) -> Result<HeaderName, InvalidHeaderName> {
    // Every known name starts with `a`, `r` or `x`; most standard ones
    // (`content-type`, `host`, `user-agent`) do not.
    if !matches!(bytes.first().map(|b| b | 0x20), Some(b'a' | b'r' | b'x')) {
        return HeaderName::from_bytes(bytes);
    }
    let known = &KNOWN[of_length(bytes.len())];
    match known
        .iter()
        .find(|name| name.as_str().as_bytes().eq_ignore_ascii_case(bytes))
    {
        Some(name) => Ok(name.clone()),
        None => HeaderName::from_bytes(bytes),
    }
}

/// Sorted by length, then name; [`of_length`] indexes it.
static KNOWN: [HeaderName; 29] = [
    HeaderName::from_static("x-app"),
    HeaderName::from_static("x-api-key"),
    HeaderName::from_static("request-id"),
    HeaderName::from_static("anthropic-beta"),
    HeaderName::from_static("x-stainless-os"),
    HeaderName::from_static("x-stainless-arch"),
    HeaderName::from_static("x-stainless-lang"),
    HeaderName::from_static("anthropic-version"),
    HeaderName::from_static("x-stainless-runtime"),
    HeaderName::from_static("x-stainless-timeout"),
    HeaderName::from_static("x-stainless-retry-count"),
    HeaderName::from_static("anthropic-organization-id"),
    HeaderName::from_static("x-stainless-package-version"),
    HeaderName::from_static("x-stainless-runtime-version"),
    HeaderName::from_static("anthropic-ratelimit-tokens-limit"),
    HeaderName::from_static("anthropic-ratelimit-tokens-reset"),
    HeaderName::from_static("anthropic-ratelimit-unified-reset"),
    HeaderName::from_static("anthropic-ratelimit-requests-limit"),
    HeaderName::from_static("anthropic-ratelimit-requests-reset"),
    HeaderName::from_static("anthropic-ratelimit-unified-status"),
    HeaderName::from_static("anthropic-ratelimit-tokens-remaining"),
    HeaderName::from_static("anthropic-ratelimit-input-tokens-limit"),
    HeaderName::from_static("anthropic-ratelimit-input-tokens-reset"),
    HeaderName::from_static("anthropic-ratelimit-requests-remaining"),
    HeaderName::from_static("anthropic-ratelimit-output-tokens-limit"),
    HeaderName::from_static("anthropic-ratelimit-output-tokens-reset"),
    HeaderName::from_static("anthropic-dangerous-direct-browser-access"),
    HeaderName::from_static("anthropic-ratelimit-input-tokens-remaining"),
    HeaderName::from_static("anthropic-ratelimit-output-tokens-remaining"),
];

/// Where the names of each length are in [`KNOWN`].
fn of_length(len: usize) -> std::ops::Range<usize> {
    match len {
        5 => 0..1,
        9 => 1..2,
        10 => 2..3,
        14 => 3..5,
        16 => 5..7,
        17 => 7..8,
        19 => 8..10,
        23 => 10..11,
        25 => 11..12,
        27 => 12..14,
        32 => 14..16,
        33 => 16..17,
        34 => 17..20,
        36 => 20..21,
        38 => 21..24,
        39 => 24..26,
        41 => 26..27,
        42 => 27..28,
        43 => 28..29,
        _ => 0..0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_name_is_found_by_its_length() {
        for (at, name) in KNOWN.iter().enumerate() {
            assert!(
                matches!(name.as_str().as_bytes()[0], b'a' | b'r' | b'x'),
                "{name}"
            );
            assert!(of_length(name.as_str().len()).contains(&at), "{name}");
        }
        let counted: usize = (0..64).map(|len| of_length(len).len()).sum();
        assert_eq!(counted, KNOWN.len());
    }

    #[test]
    fn names_are_found_in_any_case_and_others_made_as_usual() {
        assert_eq!(header_name(b"X-Api-Key").unwrap(), "x-api-key");
        assert_eq!(
            header_name(b"anthropic-version").unwrap(),
            "anthropic-version"
        );
        assert_eq!(
            header_name(b"Content-Type").unwrap(),
            http::header::CONTENT_TYPE
        );
        assert_eq!(header_name(b"x-other").unwrap(), "x-other");
        assert!(header_name(b"x api key").is_err());
        assert!(header_name(b"").is_err());
    }
}
