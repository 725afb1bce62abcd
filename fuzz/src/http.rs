//! Independent readings of the wire format, used to judge what the core emits:
//! a reference chunked decoder and field-level checks on heads parsed by httparse.

use crate::input::show;

/// Longest chunk extension (per size line) and largest trailer section the core
/// accepts, in bytes (its documented bound).
pub const MAX_METADATA: usize = 16 * 1024;

/// One step of a chunked body, as the reference model sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChunkEvent {
    /// A data chunk of this size starts.
    Start(u64),
    /// Chunk data (consecutive pieces joined).
    Data(Vec<u8>),
    /// The chunk's data and its CRLF were read.
    End,
    /// The last chunk and the trailer section were read.
    Last,
}

/// Where the reference model stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkEnd {
    /// The body is complete after this many bytes.
    Done { consumed: usize },
    /// The byte at this index breaks the grammar.
    Error { at: usize },
    /// Valid so far; more bytes are needed.
    Incomplete,
}

/// What the reference model made of some bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkModel {
    /// Steps, with adjacent data joined.
    pub events: Vec<ChunkEvent>,
    /// How it ended.
    pub end: ChunkEnd,
}

/// Appends an event, joining adjacent data.
pub fn push_event(events: &mut Vec<ChunkEvent>, event: ChunkEvent) {
    match (events.last_mut(), event) {
        (_, ChunkEvent::Data(d)) if d.is_empty() => {}
        (Some(ChunkEvent::Data(prev)), ChunkEvent::Data(d)) => prev.extend_from_slice(&d),
        (_, event) => events.push(event),
    }
}

fn is_metadata_byte(b: u8) -> bool {
    b == b'\t' || (b >= 0x20 && b != 0x7f)
}

fn hex_value(b: u8) -> Option<u64> {
    match b {
        b'0'..=b'9' => Some(u64::from(b - b'0')),
        b'a'..=b'f' => Some(u64::from(b - b'a' + 10)),
        b'A'..=b'F' => Some(u64::from(b - b'A' + 10)),
        _ => None,
    }
}

/// The chunked coding of RFC 9112 §7.1 with the core's documented strictness:
///
/// ```text
/// body       = *chunk last-chunk trailers CRLF
/// chunk      = size [ ext ] CRLF data CRLF            ; size = 1*HEXDIG, > 0, fits u64
/// last-chunk = 1*"0" [ ext ] CRLF
/// ext        = 1*( ";" BWS token [ BWS "=" BWS ( token / quoted-string ) ] )
/// trailers   = *( token ":" *metabyte CRLF )          ; checked bytewise, then dropped
/// metabyte   = HTAB / %x20-7E / %x80-FF               ; also qdtext and quoted-pair
/// ```
/// Extensions are bounded per size line and the trailer section as a whole, both
/// by [`MAX_METADATA`]. No whitespace between the size and `;` or CRLF, no bare LF.
pub fn chunked_model(input: &[u8]) -> ChunkModel {
    let mut events = Vec::new();
    let mut i = 0usize;
    macro_rules! byte {
        () => {
            match input.get(i) {
                Some(&b) => b,
                None => {
                    return ChunkModel {
                        events,
                        end: ChunkEnd::Incomplete,
                    }
                }
            }
        };
    }
    macro_rules! fail {
        () => {
            return ChunkModel {
                events,
                end: ChunkEnd::Error { at: i },
            }
        };
    }
    macro_rules! expect {
        ($want:expr) => {{
            if byte!() != $want {
                fail!();
            }
            i += 1;
        }};
    }
    loop {
        let mut size = 0u64;
        let mut digits = 0usize;
        let mut b = byte!();
        while let Some(d) = hex_value(b) {
            // Past 2^63 - 1 the proxy refuses a size (a server reading it as signed
            // would frame differently).
            size = match (size.checked_mul(16).and_then(|v| v.checked_add(d)))
                .filter(|&v| v <= i64::MAX as u64)
            {
                Some(v) => v,
                None => fail!(),
            };
            digits += 1;
            i += 1;
            b = byte!();
        }
        if digits == 0 {
            fail!();
        }
        // Extensions: `*( ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] BWS? )`
        // where the BWS after a name or value must be followed by `=` or `;`.
        let start = i;
        macro_rules! meta {
            () => {{
                let b = byte!();
                if i - start > MAX_METADATA && b != b'\r' {
                    fail!();
                }
                b
            }};
        }
        macro_rules! blanks {
            () => {{
                let mut any = false;
                while matches!(meta!(), b' ' | b'\t') {
                    i += 1;
                    any = true;
                }
                any
            }};
        }
        macro_rules! token {
            () => {{
                if !is_tchar(meta!()) {
                    fail!();
                }
                while is_tchar(meta!()) {
                    i += 1;
                }
            }};
        }
        if b == b';' {
            loop {
                // At a `;`.
                i += 1;
                blanks!();
                token!();
                let mut spaced = blanks!();
                if meta!() == b'=' {
                    i += 1;
                    blanks!();
                    if meta!() == b'"' {
                        i += 1;
                        loop {
                            match meta!() {
                                b'"' => break,
                                b'\\' => {
                                    i += 1;
                                    if !is_metadata_byte(meta!()) {
                                        fail!();
                                    }
                                }
                                b if is_metadata_byte(b) => {}
                                _ => fail!(),
                            }
                            i += 1;
                        }
                        i += 1;
                    } else {
                        token!();
                    }
                    spaced = blanks!();
                }
                match meta!() {
                    b';' => continue,
                    b'\r' if !spaced => break,
                    _ => fail!(),
                }
            }
        }
        expect!(b'\r');
        expect!(b'\n');
        if size == 0 {
            break;
        }
        events.push(ChunkEvent::Start(size));
        let available = (input.len() - i) as u64;
        let take = size.min(available) as usize;
        push_event(&mut events, ChunkEvent::Data(input[i..i + take].to_vec()));
        i += take;
        if (take as u64) < size {
            return ChunkModel {
                events,
                end: ChunkEnd::Incomplete,
            };
        }
        expect!(b'\r');
        expect!(b'\n');
        events.push(ChunkEvent::End);
    }
    let mut metadata = 0usize;
    loop {
        if byte!() == b'\r' {
            i += 1;
            expect!(b'\n');
            events.push(ChunkEvent::Last);
            return ChunkModel {
                events,
                end: ChunkEnd::Done { consumed: i },
            };
        }
        // A trailer line is a field line: a token, a colon, then the value.
        let mut in_name = true;
        loop {
            let b = byte!();
            if b == b'\r' && !in_name {
                break;
            }
            metadata += 1;
            let allowed = if in_name {
                is_tchar(b) || (b == b':' && !at_line_start(input, i))
            } else {
                is_metadata_byte(b)
            };
            if !allowed || metadata > MAX_METADATA {
                fail!();
            }
            if b == b':' {
                in_name = false;
            }
            i += 1;
        }
        i += 1;
        expect!(b'\n');
    }
}

/// Whether `input[i]` starts a line (the byte before it is the LF ending the last).
fn at_line_start(input: &[u8], i: usize) -> bool {
    i == 0 || input[i - 1] == b'\n'
}

/// `tchar` (RFC 9110 §5.6.2).
pub fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The body bytes of a chunked model's events.
pub fn body_of(events: &[ChunkEvent]) -> Vec<u8> {
    events
        .iter()
        .filter_map(|e| match e {
            ChunkEvent::Data(d) => Some(d.as_slice()),
            _ => None,
        })
        .flatten()
        .copied()
        .collect()
}

/// A parsed head: start-line facts plus fields (names as sent).
#[derive(Clone, Debug)]
pub struct Head {
    /// Length of the head in bytes, up to and including the empty line.
    pub len: usize,
    /// Request method, for requests.
    pub method: Option<String>,
    /// Request-target, for requests.
    pub target: Option<String>,
    /// Status code, for responses.
    pub status: Option<u16>,
    /// Minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    /// Fields in order.
    pub fields: Vec<(String, Vec<u8>)>,
}

impl Head {
    /// Values of every field with this name, case-insensitively.
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.fields
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// How many fields have this name.
    pub fn count(&self, name: &str) -> usize {
        self.values(name).count()
    }

    /// Comma-separated elements of every field with this name, trimmed, lowercased.
    pub fn list(&self, name: &str) -> Vec<String> {
        let mut list = self.list_as_sent(name);
        list.iter_mut().for_each(|e| e.make_ascii_lowercase());
        list
    }

    /// [`list`](Self::list), in the case the elements were sent in.
    pub fn list_as_sent(&self, name: &str) -> Vec<String> {
        self.values(name)
            .flat_map(|v| v.split(|&b| b == b','))
            .map(|e| String::from_utf8_lossy(e).trim_matches([' ', '\t']).to_owned())
            .filter(|e| !e.is_empty())
            .collect()
    }

    /// The value of the only field with this name.
    pub fn single<'a>(&'a self, name: &'a str) -> Option<&'a [u8]> {
        let mut values = self.values(name);
        match (values.next(), values.next()) {
            (Some(v), None) => Some(v),
            _ => None,
        }
    }
}

/// How httparse judged some bytes.
#[derive(Debug)]
pub enum Parsed {
    /// A complete head.
    Complete(Head),
    /// Not a whole head yet.
    Partial,
    /// Not a head.
    Invalid(httparse::Error),
}

fn fields_of(headers: &[httparse::Header<'_>]) -> Vec<(String, Vec<u8>)> {
    headers
        .iter()
        .map(|h| (h.name.to_string(), h.value.to_vec()))
        .collect()
}

/// Parses a request head with httparse (256 fields at most).
pub fn parse_request(bytes: &[u8]) -> Parsed {
    let mut headers = vec![httparse::EMPTY_HEADER; 256];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => Parsed::Complete(Head {
            len,
            method: request.method.map(str::to_owned),
            target: request.path.map(str::to_owned),
            status: None,
            version: request.version.unwrap_or(0),
            fields: fields_of(request.headers),
        }),
        Ok(httparse::Status::Partial) => Parsed::Partial,
        Err(e) => Parsed::Invalid(e),
    }
}

/// Parses a response head with httparse (256 fields at most).
pub fn parse_response(bytes: &[u8]) -> Parsed {
    let mut headers = vec![httparse::EMPTY_HEADER; 256];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => Parsed::Complete(Head {
            len,
            method: None,
            target: None,
            status: response.code,
            version: response.version.unwrap_or(0),
            fields: fields_of(response.headers),
        }),
        Ok(httparse::Status::Partial) => Parsed::Partial,
        Err(e) => Parsed::Invalid(e),
    }
}

/// Fields that describe one connection and never cross the proxy as sent
/// (RFC 9110 §7.6.1). `Transfer-Encoding` is allowed back when the proxy re-frames
/// a chunked body, `Upgrade`/`Connection: Upgrade` only for an upgrade attempt.
pub const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Fields a `Connection` option may not strip (Switchyard's design: routing, framing,
/// and the proxy's own `X-Forwarded-*`).
pub const PROTECTED: [&str; 4] = [
    "host",
    "content-length",
    "x-forwarded-for",
    "x-forwarded-proto",
];

/// The decimal value of a `Content-Length`, if it is one the proxy accepts (at most
/// 2^63 - 1: a server reading a larger one as signed would frame differently).
pub fn decimal(value: &[u8]) -> Option<u64> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(value).ok()?.parse().ok()?;
    (n <= i64::MAX as u64).then_some(n)
}

/// How a head the proxy wrote frames the body that follows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked.
    Chunked,
    /// Until the connection closes.
    UntilClose,
}

/// Checks `body` (everything sent after a head) against the head's framing: a length
/// body is at most that long, a chunked body is a valid prefix with nothing after its
/// end, no body means no bytes. `what` names the stream for messages.
pub fn check_body(what: &str, framing: Framing, body: &[u8]) {
    match framing {
        Framing::None => assert!(
            body.is_empty(),
            "{what}: bytes after a head that frames no body: {}",
            show(body)
        ),
        Framing::Length(n) => {
            assert!(
                body.len() as u64 <= n,
                "{what}: {} body bytes after Content-Length: {n}: {}",
                body.len(),
                show(body)
            )
        }
        Framing::Chunked => match chunked_model(body).end {
            ChunkEnd::Error { at } => {
                panic!("{what}: invalid chunked body at byte {at}: {}", show(body))
            }
            ChunkEnd::Done { consumed } => assert_eq!(
                consumed,
                body.len(),
                "{what}: bytes after the end of a chunked body: {}",
                show(&body[consumed..])
            ),
            ChunkEnd::Incomplete => {}
        },
        Framing::UntilClose => {}
    }
}
