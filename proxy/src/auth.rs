//! Client authentication: which header carries the key, the prefix and length
//! rules, and a constant-time comparison against every allowed key.
//!
//! The allowed set lives behind an [`ArcSwap`] so that a reload (the keys file)
//! swaps it without a lock on the request path and without touching requests
//! already admitted.

use std::sync::Arc;

use arc_swap::ArcSwap;
use subtle::ConstantTimeEq;

use crate::client_head::ClientHeaders;

/// Shortest and longest key accepted, as the Go middleware did.
pub const MIN_KEY_LEN: usize = 10;
pub const MAX_KEY_LEN: usize = 512;

/// The headers a client may put its key in, in order of precedence.
pub const KEY_HEADERS: [&str; 3] = ["x-api-key", "authorization", "api-key"];

/// Where `name` (any case) is in [`KEY_HEADERS`].
fn key_header_index(name: &[u8]) -> Option<usize> {
    KEY_HEADERS
        .iter()
        .position(|key| key.as_bytes().eq_ignore_ascii_case(name))
}

/// The first value of each of [`KEY_HEADERS`], found in one scan;
/// `Ambiguous` when one of them comes twice (in any case).
fn key_header_values(headers: &ClientHeaders) -> Result<[Option<&[u8]>; 3], AuthError> {
    let mut first = [None; KEY_HEADERS.len()];
    for (name, value) in headers.iter() {
        if let Some(index) = key_header_index(name)
            && first[index].replace(value).is_some()
        {
            return Err(AuthError::Ambiguous);
        }
    }
    Ok(first)
}

/// Why a request was refused. Messages never contain the presented key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing API key: send it in x-api-key, Authorization: Bearer or api-key")]
    Missing,
    #[error("malformed API key: wrong prefix or length")]
    Malformed,
    #[error("invalid API key")]
    Invalid,
    #[error("more than one API key header value: send exactly one key")]
    Ambiguous,
}

/// Splits `MIDDLEWARE_API_KEYS` or a keys file: commas or newlines, blanks and
/// `#` comment lines ignored.
pub fn parse_key_list(text: &str) -> Vec<String> {
    // Any line break (a Secret may carry \r\n or a lone \r) separates keys.
    text.split(['\n', '\r'])
        .filter(|line| !line.trim_start().starts_with('#'))
        .flat_map(|line| line.split(','))
        .map(str::trim)
        .filter(|key| !key.is_empty())
        .map(str::to_string)
        .collect()
}

/// The key a client presented: `x-api-key`, else `Authorization: Bearer …`,
/// else `api-key`. Bytes, not text: a key need not be ASCII to be compared.
/// With more than one value of a key header, the first is taken (the check
/// refuses such a request).
pub fn presented_key(headers: &ClientHeaders) -> Option<&[u8]> {
    presented_key_of(KEY_HEADERS.map(|name| headers.get(name)))
}

/// [`presented_key`] from the first value of each of [`KEY_HEADERS`].
fn presented_key_of([api_key, authorization, other]: [Option<&[u8]>; 3]) -> Option<&[u8]> {
    if let Some(key) = header_bytes(api_key) {
        return Some(key);
    }
    if let Some(value) = header_bytes(authorization) {
        let space = value.iter().position(|b| *b == b' ')?;
        let (scheme, token) = (&value[..space], value[space + 1..].trim_ascii());
        return (scheme.eq_ignore_ascii_case(b"bearer") && !token.is_empty()).then_some(token);
    }
    header_bytes(other)
}

fn header_bytes(value: Option<&[u8]>) -> Option<&[u8]> {
    value.map(<[u8]>::trim_ascii).filter(|v| !v.is_empty())
}

/// An immutable set of allowed keys.
#[derive(Default)]
pub struct KeySet {
    keys: Vec<Box<[u8]>>,
}

impl KeySet {
    pub fn new<I: IntoIterator<Item = String>>(keys: I) -> Self {
        let mut keys: Vec<Box<[u8]>> = keys
            .into_iter()
            .map(|k| k.into_bytes().into_boxed_slice())
            .collect();
        keys.sort();
        keys.dedup();
        Self { keys }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Compares with every allowed key without stopping at a match, so the
    /// time taken does not say which key (or how much of one) matched.
    fn contains(&self, presented: &[u8]) -> bool {
        let mut found = subtle::Choice::from(0);
        for key in &self.keys {
            found |= key.as_ref().ct_eq(presented);
        }
        found.into()
    }
}

/// The client-auth policy of a running proxy.
pub struct Authenticator {
    enabled: bool,
    prefix: String,
    keys: ArcSwap<KeySet>,
}

impl Authenticator {
    pub fn new(enabled: bool, prefix: String, keys: KeySet) -> Self {
        Self {
            enabled,
            prefix,
            keys: ArcSwap::from_pointee(keys),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Replaces the allowed keys; requests already admitted are unaffected.
    pub fn replace_keys(&self, keys: KeySet) {
        self.keys.store(Arc::new(keys));
    }

    pub fn key_count(&self) -> usize {
        self.keys.load().len()
    }

    /// Admits or refuses a request by its headers. With auth enabled and an
    /// empty key set every request is refused (fail closed).
    pub fn check(&self, headers: &ClientHeaders) -> Result<(), AuthError> {
        if !self.enabled {
            return Ok(());
        }
        // Two keys could be read differently by two parsers: refuse both.
        let key = presented_key_of(key_header_values(headers)?).ok_or(AuthError::Missing)?;
        if !(MIN_KEY_LEN..=MAX_KEY_LEN).contains(&key.len())
            || !key.starts_with(self.prefix.as_bytes())
        {
            return Err(AuthError::Malformed);
        }
        if self.keys.load().contains(key) {
            Ok(())
        } else {
            Err(AuthError::Invalid)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client_head::both_forms;

    /// Checks `pairs` in both forms, which must agree.
    fn check(auth: &Authenticator, pairs: &[(&str, &str)]) -> Result<(), AuthError> {
        let pairs: Vec<(&str, &[u8])> = pairs.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
        check_bytes(auth, &pairs)
    }

    fn check_bytes(auth: &Authenticator, pairs: &[(&str, &[u8])]) -> Result<(), AuthError> {
        let [lines, map] = both_forms(pairs);
        let result = auth.check(&lines);
        assert_eq!(result, auth.check(&map), "{pairs:?}");
        result
    }

    fn presented(pairs: &[(&str, &str)]) -> Option<Vec<u8>> {
        let pairs: Vec<(&str, &[u8])> = pairs.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
        let [lines, map] = both_forms(&pairs);
        let key = presented_key(&lines).map(<[u8]>::to_vec);
        assert_eq!(key.as_deref(), presented_key(&map), "{pairs:?}");
        key
    }

    fn auth() -> Authenticator {
        Authenticator::new(
            true,
            "cr_".into(),
            KeySet::new(parse_key_list("cr_alpha_123456,cr_beta_1234567")),
        )
    }

    #[test]
    fn key_list_splits_commas_and_lines() {
        assert_eq!(
            parse_key_list("a, b\n# comment\r\nc\n\n,d,\re"),
            vec!["a", "b", "c", "d", "e"]
        );
        assert!(parse_key_list("").is_empty());
    }

    #[test]
    fn key_header_precedence() {
        let h = presented(&[
            ("api-key", "third"),
            ("Authorization", "Bearer second"),
            ("X-Api-Key", "first"),
        ]);
        assert_eq!(h.as_deref(), Some(&b"first"[..]));
        let h = presented(&[("api-key", "third"), ("authorization", "bearer second")]);
        assert_eq!(h.as_deref(), Some(&b"second"[..]));
        let h = presented(&[("API-KEY", "third")]);
        assert_eq!(h.as_deref(), Some(&b"third"[..]));
        // Another scheme is not a key.
        assert_eq!(presented(&[("authorization", "Basic Zm9vOmJhcg==")]), None);
    }

    #[test]
    fn accepts_allowed_keys_from_each_header() {
        let a = auth();
        assert_eq!(check(&a, &[("x-api-key", "cr_alpha_123456")]), Ok(()));
        assert_eq!(
            check(&a, &[("authorization", "Bearer cr_beta_1234567")]),
            Ok(())
        );
        assert_eq!(check(&a, &[("api-key", "cr_alpha_123456")]), Ok(()));
    }

    #[test]
    fn refuses_missing_malformed_and_unknown_keys() {
        let a = auth();
        assert_eq!(check(&a, &[]), Err(AuthError::Missing));
        assert_eq!(
            check(&a, &[("x-api-key", "cr_short")]),
            Err(AuthError::Malformed)
        );
        assert_eq!(
            check(&a, &[("x-api-key", "sk_alpha_123456")]),
            Err(AuthError::Malformed)
        );
        let long = format!("cr_{}", "x".repeat(MAX_KEY_LEN));
        assert_eq!(
            check(&a, &[("x-api-key", &long)]),
            Err(AuthError::Malformed)
        );
        assert_eq!(
            check(&a, &[("x-api-key", "cr_alpha_123457")]),
            Err(AuthError::Invalid)
        );
        // A prefix of a valid key is not valid.
        assert_eq!(
            check(&a, &[("x-api-key", "cr_alpha_12345")]),
            Err(AuthError::Invalid)
        );
    }

    #[test]
    fn duplicate_key_headers_are_refused() {
        let a = auth();
        assert_eq!(
            check(
                &a,
                &[
                    ("x-api-key", "cr_alpha_123456"),
                    ("x-api-key", "cr_unknown_12345")
                ]
            ),
            Err(AuthError::Ambiguous)
        );
        assert_eq!(
            check(
                &a,
                &[
                    ("x-api-key", "cr_alpha_123456"),
                    ("x-api-key", "cr_alpha_123456")
                ]
            ),
            Err(AuthError::Ambiguous)
        );
    }

    /// Found by the key_parsing fuzz target: a configured key that is not
    /// ASCII could never match, since the presented key was read as text.
    #[test]
    fn non_ascii_keys_compare_as_bytes() {
        let key = "cr_\u{fffd}\u{fffd}\u{fffd}=";
        let a = Authenticator::new(true, "cr_".into(), KeySet::new(parse_key_list(key)));
        assert_eq!(check_bytes(&a, &[("x-api-key", key.as_bytes())]), Ok(()));
        assert_eq!(
            check_bytes(&a, &[("x-api-key", b"cr_\xff\xfe\xfd_other")]),
            Err(AuthError::Invalid)
        );
    }

    #[test]
    fn empty_key_set_fails_closed() {
        let a = Authenticator::new(true, "cr_".into(), KeySet::default());
        assert_eq!(
            check(&a, &[("x-api-key", "cr_alpha_123456")]),
            Err(AuthError::Invalid)
        );
    }

    #[test]
    fn disabled_admits_everything() {
        let a = Authenticator::new(false, "cr_".into(), KeySet::default());
        assert_eq!(check(&a, &[]), Ok(()));
    }

    #[test]
    fn replaced_keys_take_effect() {
        let a = auth();
        a.replace_keys(KeySet::new(vec!["cr_gamma_123456".to_string()]));
        assert_eq!(
            check(&a, &[("x-api-key", "cr_alpha_123456")]),
            Err(AuthError::Invalid)
        );
        assert_eq!(check(&a, &[("x-api-key", "cr_gamma_123456")]), Ok(()));
        assert_eq!(a.key_count(), 1);
    }

    #[test]
    fn error_messages_never_echo_a_key() {
        for e in [
            AuthError::Missing,
            AuthError::Malformed,
            AuthError::Invalid,
            AuthError::Ambiguous,
        ] {
            assert!(!e.to_string().contains("cr_alpha"));
        }
    }
}
