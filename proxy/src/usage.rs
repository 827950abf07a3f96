//! Token usage read from Anthropic's answers as they stream past, for the
//! per-account usage and prompt-cache metrics. Pure: it sees the bytes the
//! client is sent and never holds them back.
//!
//! Only two SSE events carry usage: `message_start` (`message.usage`: input,
//! cache read, cache creation) and `message_delta` (`usage.output_tokens`, the
//! running total). Every other event, the great majority (`content_block_delta`),
//! is skipped line by line without being parsed or copied. A JSON answer's
//! `usage` object is found by its key and parsed alone.

mod json;

use std::sync::LazyLock;

use memchr::memmem::Finder;
use serde::Deserialize;

/// Tokens of one answer, as Anthropic counts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub cache_read_input_tokens: u64,
    #[serde(default)]
    pub cache_creation_input_tokens: u64,
}

impl Usage {
    /// Adds what a later event says: `message_delta` repeats the input
    /// figures (or leaves them out) and gives the output total so far.
    fn merge(&mut self, later: Usage) {
        self.input_tokens = self.input_tokens.max(later.input_tokens);
        self.output_tokens = self.output_tokens.max(later.output_tokens);
        self.cache_read_input_tokens = self
            .cache_read_input_tokens
            .max(later.cache_read_input_tokens);
        self.cache_creation_input_tokens = self
            .cache_creation_input_tokens
            .max(later.cache_creation_input_tokens);
    }

    pub fn is_empty(&self) -> bool {
        *self == Usage::default()
    }
}

/// The longest line or `usage` object kept while looking for usage; longer
/// ones are not usage and are skipped.
const MAX_KEPT: usize = 16 * 1024;

/// Watches an SSE stream chunk by chunk.
#[derive(Debug, Default)]
pub struct SseUsage {
    usage: Usage,
    /// The start of a line split across chunks, kept only while it may still
    /// be an `event:` line or the `data:` line of an event with usage.
    partial: Vec<u8>,
    /// The current line is being skipped to its end.
    skipping: bool,
    /// The current event is one that carries usage.
    wanted: bool,
    /// The previous chunk ended with `\r`: a `\n` starting this one ends the
    /// same line.
    after_cr: bool,
}

impl SseUsage {
    pub fn feed(&mut self, chunk: &[u8]) {
        let mut rest = chunk;
        if std::mem::take(&mut self.after_cr) {
            rest = rest.strip_prefix(b"\n").unwrap_or(rest);
        }
        while !rest.is_empty() {
            let (line, complete) = match memchr::memchr2(b'\n', b'\r', rest) {
                // `\r\n` is one line end, `\r` or `\n` alone too.
                Some(end) if rest[end] == b'\r' => match rest.get(end + 1) {
                    Some(b'\n') => (&rest[..end], Some(end + 2)),
                    Some(_) => (&rest[..end], Some(end + 1)),
                    None => {
                        self.after_cr = true;
                        (&rest[..end], Some(end + 1))
                    }
                },
                Some(end) => (&rest[..end], Some(end + 1)),
                None => (rest, None),
            };
            match complete {
                Some(next) => {
                    if !self.skipping {
                        if self.partial.is_empty() {
                            self.on_line(line);
                        } else {
                            let mut whole = std::mem::take(&mut self.partial);
                            whole.extend_from_slice(line);
                            self.on_line(&whole);
                        }
                    }
                    self.skipping = false;
                    rest = &rest[next..];
                }
                None => {
                    if !self.skipping {
                        self.partial.extend_from_slice(line);
                        if !may_matter(self.wanted, &self.partial) {
                            self.partial.clear();
                            self.skipping = true;
                        }
                    }
                    rest = &[];
                }
            }
        }
    }

    pub fn usage(&self) -> Usage {
        self.usage
    }

    fn on_line(&mut self, line: &[u8]) {
        if line.is_empty() {
            // A blank line ends the event.
            self.wanted = false;
        } else if let Some(name) = line.strip_prefix(b"event:") {
            let name = name.strip_prefix(b" ").unwrap_or(name);
            self.wanted = name == b"message_start" || name == b"message_delta";
        } else if self.wanted
            && let Some(data) = line.strip_prefix(b"data:")
        {
            self.on_data(data);
        }
    }

    fn on_data(&mut self, data: &[u8]) {
        let found = json::event_usage(data).unwrap_or_else(|| serde_event_usage(data));
        if let Some(usage) = found {
            self.usage.merge(usage);
        }
    }
}

/// An event's usage by serde, for what [`json`] is not sure of.
fn serde_event_usage(data: &[u8]) -> Option<Usage> {
    #[derive(Deserialize)]
    struct Event {
        #[serde(default)]
        usage: Option<Usage>,
        #[serde(default)]
        message: Option<Message>,
    }
    #[derive(Deserialize)]
    struct Message {
        #[serde(default)]
        usage: Option<Usage>,
    }
    let event = serde_json::from_slice::<Event>(data).ok()?;
    event.usage.or(event.message.and_then(|m| m.usage))
}

/// Whether an unfinished line may still name an event, or carry the data of
/// an event with usage (`wanted`).
fn may_matter(wanted: bool, start: &[u8]) -> bool {
    if start.len() > MAX_KEPT {
        return false;
    }
    let could_be = |prefix: &[u8]| {
        let n = start.len().min(prefix.len());
        start[..n] == prefix[..n]
    };
    could_be(b"event:") || (wanted && could_be(b"data:"))
}

/// Watches a JSON answer chunk by chunk for its `"usage":{…}` object.
#[derive(Debug, Default)]
pub struct JsonUsage {
    usage: Usage,
    /// The last bytes of the previous chunk, in case the key is split
    /// (at most one byte fewer than the key).
    tail: [u8; USAGE_KEY.len() - 1],
    tail_len: usize,
    /// The object, from its `{`, while it is incomplete.
    object: Option<Vec<u8>>,
    done: bool,
}

const USAGE_KEY: &[u8] = b"\"usage\":";
/// Built once: building a searcher costs more than searching a small answer.
static USAGE_FINDER: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(USAGE_KEY));

impl JsonUsage {
    pub fn feed(&mut self, chunk: &[u8]) {
        if self.done {
            return;
        }
        if let Some(object) = self.object.as_mut() {
            object.extend_from_slice(chunk);
            let read = read_object(object);
            return self.settle(read);
        }
        // The key split across chunks: look at the seam first, then the chunk.
        let found = if self.tail_len > 0 {
            let mut seam = [0u8; 2 * (USAGE_KEY.len() - 1)];
            let head = chunk.len().min(USAGE_KEY.len() - 1);
            seam[..self.tail_len].copy_from_slice(&self.tail[..self.tail_len]);
            seam[self.tail_len..self.tail_len + head].copy_from_slice(&chunk[..head]);
            USAGE_FINDER
                .find(&seam[..self.tail_len + head])
                .map(|at| at + USAGE_KEY.len() - self.tail_len)
        } else {
            None
        }
        .or_else(|| USAGE_FINDER.find(chunk).map(|at| at + USAGE_KEY.len()));
        match found {
            Some(after_key) => {
                let after = &chunk[after_key..];
                let start = after.iter().position(|b| !b.is_ascii_whitespace());
                let object = &after[start.unwrap_or(after.len())..];
                // Read where it is; kept (copied) only when it goes on in
                // the next chunk.
                match read_object(object) {
                    ObjectRead::Incomplete => self.object = Some(object.to_vec()),
                    read => self.settle(read),
                }
            }
            None => {
                let keep = chunk.len().min(USAGE_KEY.len() - 1);
                if keep == USAGE_KEY.len() - 1 || self.tail_len == 0 {
                    self.tail[..keep].copy_from_slice(&chunk[chunk.len() - keep..]);
                    self.tail_len = keep;
                } else {
                    // A chunk shorter than the key: append, keep the last bytes.
                    let mut joined = [0u8; 2 * (USAGE_KEY.len() - 1)];
                    joined[..self.tail_len].copy_from_slice(&self.tail[..self.tail_len]);
                    joined[self.tail_len..self.tail_len + keep].copy_from_slice(chunk);
                    let total = self.tail_len + keep;
                    let kept = total.min(USAGE_KEY.len() - 1);
                    self.tail[..kept].copy_from_slice(&joined[total - kept..total]);
                    self.tail_len = kept;
                }
            }
        }
    }

    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// Takes a complete reading; an incomplete one waits for more bytes.
    fn settle(&mut self, read: ObjectRead) {
        match read {
            ObjectRead::Incomplete => return,
            ObjectRead::Usage(usage) => self.usage = usage,
            ObjectRead::Invalid => {}
        }
        self.object = None;
        self.done = true;
    }
}

/// What the bytes of a `usage` object, from its `{`, say so far.
#[derive(Debug, PartialEq, Eq)]
enum ObjectRead {
    Usage(Usage),
    /// Nothing but whitespace yet, or an object still arriving.
    Incomplete,
    /// Not a usage object, or too long to be one: no usage.
    Invalid,
}

fn read_object(object: &[u8]) -> ObjectRead {
    if object.len() > MAX_KEPT {
        return ObjectRead::Invalid;
    }
    if let Some(usage) = json::usage_object(object) {
        return ObjectRead::Usage(usage);
    }
    // Not sure (or not complete yet): serde decides. The object ends at
    // its first `}`: usage holds numbers only (and, in newer answers,
    // small nested objects, parsed as a prefix below).
    let mut stream = serde_json::Deserializer::from_slice(object).into_iter::<Usage>();
    match stream.next() {
        Some(Ok(usage)) => ObjectRead::Usage(usage),
        None => ObjectRead::Incomplete,
        Some(Err(e)) if e.is_eof() => ObjectRead::Incomplete,
        Some(Err(_)) => ObjectRead::Invalid,
    }
}

/// What a response's body is read with, chosen by its content type.
#[derive(Debug)]
pub enum UsageTap {
    Sse(SseUsage),
    Json(JsonUsage),
}

impl UsageTap {
    /// For a successful answer of this content type; `None` for any other
    /// kind of body (no usage to read).
    pub fn for_content_type(content_type: &[u8]) -> Option<UsageTap> {
        if content_type.starts_with(b"text/event-stream") {
            Some(UsageTap::Sse(SseUsage::default()))
        } else if content_type.starts_with(b"application/json") {
            Some(UsageTap::Json(JsonUsage::default()))
        } else {
            None
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        match self {
            UsageTap::Sse(reader) => reader.feed(chunk),
            UsageTap::Json(reader) => reader.feed(chunk),
        }
    }

    pub fn usage(&self) -> Usage {
        match self {
            UsageTap::Sse(reader) => reader.usage(),
            UsageTap::Json(reader) => reader.usage(),
        }
    }
}

/// The family of a model id, a metric label of few values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelFamily {
    Opus,
    Sonnet,
    Haiku,
    Other,
}

impl ModelFamily {
    /// Every family, each at its own discriminant.
    pub const ALL: [ModelFamily; 4] = [Self::Opus, Self::Sonnet, Self::Haiku, Self::Other];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Opus => "opus",
            Self::Sonnet => "sonnet",
            Self::Haiku => "haiku",
            Self::Other => "other",
        }
    }
}

/// The family of a model id: `claude-sonnet-4-5-20250929` → `Sonnet`.
pub fn model_family(model: &str) -> ModelFamily {
    use ModelFamily::{Haiku, Opus, Sonnet};
    [Opus, Sonnet, Haiku]
        .into_iter()
        .find(|family| contains(model.as_bytes(), family.as_str().as_bytes()))
        .unwrap_or(ModelFamily::Other)
}

/// Whether `needle` is in `haystack`: for a model id of a few dozen bytes, a
/// look at each place the needle's first byte occurs is cheaper than
/// preparing a searcher (`str::contains`, memmem's Finder).
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    let Some((&first, rest)) = needle.split_first() else {
        return true;
    };
    haystack
        .iter()
        .enumerate()
        .any(|(at, &byte)| byte == first && haystack[at + 1..].starts_with(rest))
}

/// The `model` of a Messages request body, found by its key without parsing
/// the whole body (it may be megabytes of conversation).
pub fn request_model(body: &[u8]) -> Option<&str> {
    const KEY: &[u8] = b"\"model\"";
    static KEY_FINDER: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(KEY));
    // `find` from each place on: `find_iter` copies the searcher's state
    // into its iterator on every call.
    let mut from = 0;
    while let Some(found) = KEY_FINDER.find(&body[from..]) {
        from += found + KEY.len();
        let rest = &body[from..];
        let rest = trim_start(rest).strip_prefix(b":")?;
        let rest = trim_start(rest).strip_prefix(b"\"")?;
        let end = memchr::memchr2(b'"', b'\\', rest)?;
        if rest[end] == b'"' {
            return std::str::from_utf8(&rest[..end]).ok();
        }
    }
    None
}

fn trim_start(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    &bytes[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = concat!(
        "event: message_start\n",
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"claude-sonnet-4-5\",",
        "\"usage\":{\"input_tokens\":12,\"cache_creation_input_tokens\":300,",
        "\"cache_read_input_tokens\":4000,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: ping\ndata: {\"type\": \"ping\"}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"usage: 999\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: message_delta\n",
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":57}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );

    const EXPECTED: Usage = Usage {
        input_tokens: 12,
        output_tokens: 57,
        cache_read_input_tokens: 4000,
        cache_creation_input_tokens: 300,
    };

    #[test]
    fn a_whole_stream() {
        let mut scanner = SseUsage::default();
        scanner.feed(STREAM.as_bytes());
        assert_eq!(scanner.usage(), EXPECTED);
    }

    #[test]
    fn split_anywhere_gives_the_same_usage() {
        let bytes = STREAM.as_bytes();
        for size in [1, 2, 3, 7, 64] {
            let mut scanner = SseUsage::default();
            for chunk in bytes.chunks(size) {
                scanner.feed(chunk);
            }
            assert_eq!(scanner.usage(), EXPECTED, "chunks of {size}");
        }
        for cut in 0..bytes.len() {
            let mut scanner = SseUsage::default();
            scanner.feed(&bytes[..cut]);
            scanner.feed(&bytes[cut..]);
            assert_eq!(scanner.usage(), EXPECTED, "cut at {cut}");
        }
    }

    #[test]
    fn other_events_are_not_kept() {
        let mut scanner = SseUsage::default();
        let long = format!(
            "event: content_block_delta\ndata: {{\"text\":\"{}",
            "x".repeat(100_000)
        );
        scanner.feed(long.as_bytes());
        assert!(scanner.partial.is_empty());
        scanner.feed(b"\"}\n\n");
        assert!(scanner.usage().is_empty());
    }

    #[test]
    fn crlf_and_garbage() {
        let crlf = STREAM.replace('\n', "\r\n");
        for cut in 0..crlf.len() {
            let mut scanner = SseUsage::default();
            scanner.feed(&crlf.as_bytes()[..cut]);
            scanner.feed(&crlf.as_bytes()[cut..]);
            assert_eq!(scanner.usage(), EXPECTED, "cut at {cut}");
        }
        let mut scanner = SseUsage::default();
        scanner.feed(b"event: message_start\ndata: {not json\n\n\xff\xfe\n");
        assert!(scanner.usage().is_empty());
    }

    #[test]
    fn a_json_answer() {
        let json = r#"{"id":"m","type":"message","content":[{"type":"text","text":"say \"usage\": 3"}],"model":"claude-opus-4-1","stop_reason":"end_turn","usage":{"input_tokens":5,"cache_creation_input_tokens":0,"cache_read_input_tokens":100,"output_tokens":9,"service_tier":"standard"}}"#;
        let expected = Usage {
            input_tokens: 5,
            output_tokens: 9,
            cache_read_input_tokens: 100,
            cache_creation_input_tokens: 0,
        };
        for size in [1, 5, 13, json.len()] {
            let mut scanner = JsonUsage::default();
            for chunk in json.as_bytes().chunks(size) {
                scanner.feed(chunk);
            }
            assert_eq!(scanner.usage(), expected, "chunks of {size}");
        }
    }

    #[test]
    fn a_json_answer_cut_anywhere() {
        let json = "{\"usage\": \n {\"input_tokens\":7, \"output_tokens\": 2}, \"x\": 1}";
        let expected = Usage {
            input_tokens: 7,
            output_tokens: 2,
            ..Usage::default()
        };
        for cut in 0..json.len() {
            let mut scanner = JsonUsage::default();
            scanner.feed(&json.as_bytes()[..cut]);
            scanner.feed(&json.as_bytes()[cut..]);
            assert_eq!(scanner.usage(), expected, "cut at {cut}");
        }
        let mut scanner = JsonUsage::default();
        scanner.feed(br#"{"usage":"none","more":{"input_tokens":1}}"#);
        assert!(scanner.usage().is_empty());
    }

    #[test]
    fn model_families_and_request_models() {
        assert_eq!(
            model_family("claude-sonnet-4-5-20250929"),
            ModelFamily::Sonnet
        );
        assert_eq!(model_family("claude-3-5-haiku-latest").as_str(), "haiku");
        assert_eq!(model_family("claude-opus-4-1").as_str(), "opus");
        assert_eq!(model_family("gpt-4").as_str(), "other");
        assert_eq!(model_family("opu").as_str(), "other");
        assert_eq!(model_family("x-haiku").as_str(), "haiku");
        assert_eq!(model_family("sonnetopus").as_str(), "opus");
        assert!(contains(b"abc", b""));
        assert!(!contains(b"", b"a"));
        assert!(contains(b"aab", b"ab"));
        for (at, family) in ModelFamily::ALL.into_iter().enumerate() {
            assert_eq!(family as usize, at);
        }
        assert_eq!(
            request_model(br#"{"max_tokens":1, "model" : "claude-opus-4-1","messages":[]}"#),
            Some("claude-opus-4-1")
        );
        assert_eq!(request_model(br#"{"messages":[]}"#), None);
        assert_eq!(request_model(br#"{"model":"a\"b"}"#), None);
    }
}
