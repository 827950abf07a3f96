//! A fast reader of the JSON that usage comes in (an SSE event's data, a
//! `usage` object), for the common case only: keys and strings of plain
//! printable ASCII without escapes, integers without sign, fraction or
//! exponent, each known key at most once. Whatever lies outside that subset,
//! or ends early, is `None`: "not sure", and the caller asks serde, so the
//! result is always what serde's reading of the same bytes gives. Inside the
//! subset that is easy to be sure of, and several times cheaper than
//! serde_json's general parser with derived visitors.

use super::Usage;

/// Deeper nesting in a value that is skipped is left to serde.
const MAX_DEPTH: usize = 32;

/// The usage of an SSE event's data, as serde reads it into
/// `{usage: Option<Usage>, message: Option<{usage: Option<Usage>}>}`: the
/// event's own `usage`, else its message's. `Some(None)`: the event has none.
pub fn event_usage(data: &[u8]) -> Option<Option<Usage>> {
    let mut reader = Reader { bytes: data, at: 0 };
    reader.whitespace();
    let (mut usage, mut message) = (None, None);
    reader.members(0, |reader, key| match key {
        b"usage" => set_once(&mut usage, reader.optional(|r| r.usage(1))?),
        b"message" => set_once(&mut message, reader.optional(|r| r.message_usage(1))?),
        _ => skip_member(reader, key, 1),
    })?;
    reader.whitespace();
    if reader.at != data.len() {
        return None;
    }
    Some(usage.flatten().or(message.flatten().flatten()))
}

/// A `usage` object at the start of `bytes` (what follows it is not read),
/// as serde reads a [`Usage`].
pub fn usage_object(bytes: &[u8]) -> Option<Usage> {
    Reader { bytes, at: 0 }.usage(0)
}

/// Printable ASCII: what serde reads as the same text, byte for byte.
fn is_plain(text: &[u8]) -> bool {
    text.iter().all(|b| (0x20..0x7f).contains(b))
}

/// A value passed over under `key`, which must then be plain.
fn skip_member(reader: &mut Reader<'_>, key: &[u8], depth: usize) -> Option<()> {
    if !is_plain(key) {
        return None;
    }
    reader.skip_value(depth)
}

/// A field's value, refusing a second one (serde's derive refuses it).
fn set_once<T>(field: &mut Option<T>, value: T) -> Option<()> {
    if field.is_some() {
        return None;
    }
    *field = Some(value);
    Some(())
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    fn whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// `{ "key": value, … }`, each value read by `member`.
    fn members(
        &mut self,
        depth: usize,
        mut member: impl FnMut(&mut Self, &'a [u8]) -> Option<()>,
    ) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.eat(b'{')?;
        self.whitespace();
        if self.eat(b'}').is_some() {
            return Some(());
        }
        loop {
            let key = self.raw_string()?;
            self.whitespace();
            self.eat(b':')?;
            self.whitespace();
            member(self, key)?;
            self.whitespace();
            match self.peek()? {
                b',' => {
                    self.at += 1;
                    self.whitespace();
                }
                b'}' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// A string without escapes, of printable ASCII: its bytes.
    fn string(&mut self) -> Option<&'a [u8]> {
        self.raw_string().filter(|text| is_plain(text))
    }

    /// A string without escapes: its bytes, not yet checked for
    /// [`is_plain`] (a key that matches a field's name is).
    fn raw_string(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let rest = &self.bytes[self.at..];
        let end = memchr::memchr2(b'"', b'\\', rest)?;
        if rest[end] != b'"' {
            return None;
        }
        self.at += end + 1;
        Some(&rest[..end])
    }

    /// `0` or digits without a leading zero, not followed by a fraction or
    /// an exponent, within u64.
    fn unsigned(&mut self) -> Option<u64> {
        let start = self.at;
        let mut value: u64 = 0;
        while let Some(digit @ b'0'..=b'9') = self.peek() {
            value = value
                .checked_mul(10)?
                .checked_add(u64::from(digit - b'0'))?;
            self.at += 1;
        }
        let digits = self.at - start;
        let leading_zero = digits > 1 && self.bytes[start] == b'0';
        if digits == 0 || leading_zero || matches!(self.peek()?, b'.' | b'e' | b'E') {
            return None;
        }
        Some(value)
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.at.checked_add(word.len())?;
        (self.bytes.get(self.at..end)? == word).then(|| self.at = end)
    }

    /// `null` as `None`, else the value `read` reads.
    fn optional<T>(&mut self, read: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        if self.peek()? == b'n' {
            self.literal(b"null")?;
            return Some(None);
        }
        read(self).map(Some)
    }

    /// Any value of the subset, passed over.
    fn skip_value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'{' => self.members(depth, |reader, key| skip_member(reader, key, depth + 1)),
            b'[' => self.skip_array(depth),
            b'"' => self.string().map(drop),
            b'0'..=b'9' => self.unsigned().map(drop),
            b'n' => self.literal(b"null"),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            _ => None,
        }
    }

    fn skip_array(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.eat(b'[')?;
        self.whitespace();
        if self.eat(b']').is_some() {
            return Some(());
        }
        loop {
            self.skip_value(depth + 1)?;
            self.whitespace();
            match self.peek()? {
                b',' => {
                    self.at += 1;
                    self.whitespace();
                }
                b']' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// A `Usage` object: its four counts (0 when absent), other keys passed over.
    fn usage(&mut self, depth: usize) -> Option<Usage> {
        let mut counts: [Option<u64>; 4] = [None; 4];
        self.members(depth, |reader, key| {
            let at = match key {
                b"input_tokens" => 0,
                b"output_tokens" => 1,
                b"cache_read_input_tokens" => 2,
                b"cache_creation_input_tokens" => 3,
                _ => return skip_member(reader, key, depth + 1),
            };
            set_once(&mut counts[at], reader.unsigned()?)
        })?;
        let [input, output, cache_read, cache_creation] = counts.map(Option::unwrap_or_default);
        Some(Usage {
            input_tokens: input,
            output_tokens: output,
            cache_read_input_tokens: cache_read,
            cache_creation_input_tokens: cache_creation,
        })
    }

    /// A message object's `usage` (`None` when it has none or it is null).
    fn message_usage(&mut self, depth: usize) -> Option<Option<Usage>> {
        let mut usage = None;
        self.members(depth, |reader, key| match key {
            b"usage" => set_once(&mut usage, reader.optional(|r| r.usage(depth + 1))?),
            _ => skip_member(reader, key, depth + 1),
        })?;
        Some(usage.flatten())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What serde makes of an event's data (the reading `SseUsage` falls back to).
    fn serde_event(data: &[u8]) -> Option<Usage> {
        super::super::serde_event_usage(data)
    }

    /// What serde makes of a usage object at the start of the bytes
    /// (`JsonUsage`'s reading): `None` for an error, EOF included.
    fn serde_object(bytes: &[u8]) -> Option<Usage> {
        let mut stream = serde_json::Deserializer::from_slice(bytes).into_iter::<Usage>();
        stream.next()?.ok()
    }

    const EVENTS: [&str; 5] = [
        r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":12,"cache_creation_input_tokens":300,"cache_read_input_tokens":4000,"output_tokens":1,"service_tier":"standard","cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0}}}}"#,
        r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":57}}"#,
        r#" { "type" : "message_delta" , "usage" : { "output_tokens" : 0 , "x" : [ true , false , null , [ ] , { } ] } } "#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"usage: 999"}}"#,
        r#"{"usage":null,"message":{"usage":{"input_tokens":18446744073709551615}}}"#,
    ];

    #[test]
    fn reads_what_serde_reads() {
        assert_eq!(
            event_usage(EVENTS[0].as_bytes()),
            Some(Some(Usage {
                input_tokens: 12,
                output_tokens: 1,
                cache_read_input_tokens: 4000,
                cache_creation_input_tokens: 300,
            }))
        );
        for event in EVENTS {
            assert_eq!(
                event_usage(event.as_bytes()),
                Some(serde_event(event.as_bytes())),
                "{event}"
            );
        }
    }

    #[test]
    fn unsure_outside_the_subset() {
        for data in [
            r#"{"usage":{"input_tokens":1,"input_tokens":2}}"#,
            r#"{"usage":{"input_tokens":-0}}"#,
            r#"{"usage":{"input_tokens":1.0}}"#,
            r#"{"usage":{"input_tokens":1e3}}"#,
            r#"{"usage":{"input_tokens":01}}"#,
            r#"{"usage":{"input_tokens":null}}"#,
            r#"{"usage":{"input_tokens":18446744073709551616}}"#,
            r#"{"usage":{"in\u0070ut_tokens":1}}"#,
            r#"{"usage":[1,2,3,4]}"#,
            r#"{"usage":{},"usage":{}}"#,
            r#"{"text":"caf\u00e9"}"#,
            "{\"text\":\"caf\u{e9}\"}",
            r#"{"usage":{}} x"#,
            r#"[{"output_tokens":1}]"#,
            r#"{"usage":{"output_tokens":1}"#,
        ] {
            assert_eq!(event_usage(data.as_bytes()), None, "{data}");
        }
    }

    /// Every prefix of, and every one-byte change to, the samples: when the
    /// fast reader is sure, it agrees with serde.
    #[test]
    fn never_disagrees_with_serde() {
        let mut samples: Vec<Vec<u8>> = EVENTS.iter().map(|e| e.as_bytes().to_vec()).collect();
        samples.push(br#"{"input_tokens":5,"cache_creation_input_tokens":0,"cache_read_input_tokens":100,"output_tokens":9,"service_tier":"standard"}}"#.to_vec());
        let replacements = b"{}[]\",:0 1-.e\\nux";
        let mut checked = 0;
        for sample in &samples {
            let mut variants = vec![sample.clone()];
            for at in 0..sample.len() {
                variants.push(sample[..at].to_vec());
                let mut removed = sample.clone();
                removed.remove(at);
                variants.push(removed);
                for byte in replacements {
                    let mut changed = sample.clone();
                    changed[at] = *byte;
                    variants.push(changed);
                }
            }
            for bytes in &variants {
                if let Some(fast) = event_usage(bytes) {
                    assert_eq!(
                        fast,
                        serde_event(bytes),
                        "{}",
                        String::from_utf8_lossy(bytes)
                    );
                    checked += 1;
                }
                if let Some(fast) = usage_object(bytes) {
                    assert_eq!(
                        Some(fast),
                        serde_object(bytes),
                        "{}",
                        String::from_utf8_lossy(bytes)
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 1000, "only {checked} variants were in the subset");
    }
}
