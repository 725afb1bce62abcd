//! Invariant: a request and an upstream response (101 or another status), both near-valid with fuzz-chosen mutations, open a tunnel exactly when an independent model of RFC 9110 §7.8 / RFC 6455 §4 says so (HTTP/1.1 request with `Upgrade` offering a protocol other than `h2c` and `Connection: upgrade`; a 101 with `Connection: upgrade` naming exactly one offered protocol, versions matching when given; for WebSocket, the accept of the single key; the request body complete), else a refused 101 gets 502 and the upstream is dropped; a request offering WebSocket without exactly one key of 16 bytes in base64, or whose `Upgrade` lists anything but protocols (`token ["/" token]`), or with a body, gets 400, and one offering WebSocket with a valid key but a `Sec-WebSocket-Version` other than 13 gets 426 naming `websocket` and 13, and nothing goes upstream; bytes the client sent after the request are never forwarded before the tunnel opens, then forwarded exactly once, in order, and after another final response are only ever forwarded as a parsed (rewritten) next request.
//!
//! Input: a description of a request, a response, the client's bytes after the request
//! and a schedule, read by [`Case::read`] (zeros everywhere give a valid WebSocket
//! handshake, so each nonzero byte is a mutation). A run ([`run`]) drives
//! `proxy_core::sim::Sim`: the client sends the head, part of the body and maybe some
//! of the bytes after it; the upstream connects and sends its response in up to four
//! pieces; the rest of the client's bytes arrive before any piece or after the last.
//!
//! The model ([`decide`]) reads both heads with httparse and applies the rules itself
//! (its own list parsing, its own SHA-1/base64 accept). One case is left open: a 101
//! naming `websocket/<version>` with the right accept may open a tunnel or be refused
//! (RFC 6455 clients only know `websocket`), but never opens without the right accept.

use base64::Engine as _;
use proxy_core::sim::Sim;
use proxy_core::Config;

use crate::http::{
    chunked_model, is_tchar, parse_request, parse_response, ChunkEnd, Head, Parsed,
};
use crate::input::{show, Reader};
use crate::tunnel::check_relay;

/// Keys a request may carry (the first is RFC 6455 §1.3's example).
pub const KEYS: [&str; 4] = [
    "dGhlIHNhbXBsZSBub25jZQ==",
    "x3JJHMbDL1EzLkh9GBhXDw==",
    "AQIDBAUGBwgJCgsMDQ4PEA==",
    "not a base64 key",
];

/// Protocols a request may offer (index 0 is the default).
pub const PROTOCOLS: [&str; 8] = [
    "websocket",
    "WebSocket",
    "websocket/13",
    "h2c",
    "foo/1",
    "foo/2",
    "FOO",
    "irc/6.9",
];

/// `Connection` field lines, by variant (index 0 is the default).
pub const CONNECTIONS: [&[&str]; 12] = [
    &["Upgrade"],
    &["keep-alive, Upgrade"],
    &[],
    &["keep-alive"],
    &["UPGRADE"],
    &["keep-alive", "upgrade"],
    &["upgrades"],
    &[" , upgrade ,\t"],
    &["close, Upgrade"],
    &["Upgrade, HTTP2-Settings"],
    &["up grade"],
    &["Upgrade;q=1"],
];

/// Names an extra request field may have.
pub const EXTRA_REQUEST_FIELDS: [&str; 4] =
    ["Connection", "Upgrade", "Sec-WebSocket-Key", "X-Note"];

/// Names an extra response field may have.
pub const EXTRA_RESPONSE_FIELDS: [&str; 4] = [
    "Connection",
    "Upgrade",
    "Sec-WebSocket-Accept",
    "Sec-WebSocket-Extensions",
];

/// Subprotocols and extensions the request may offer (see [`Knobs::negotiation`]).
pub const OFFERS: [&str; 8] = [
    "",
    "Sec-WebSocket-Protocol: chat, superchat\r\n",
    "Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: v2.mqtt\r\n",
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n",
    "Sec-WebSocket-Extensions: x-foo, PerMessage-Deflate\r\n",
    "Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Extensions: permessage-deflate\r\n",
    "Sec-WebSocket-Protocol: Chat\r\n",
    "Sec-WebSocket-Protocol: , chat ,\r\n",
];

/// Subprotocols and extensions a response may choose (see [`Knobs::negotiation`]).
pub const CHOICES: [&str; 8] = [
    "",
    "Sec-WebSocket-Protocol: chat\r\n",
    "Sec-WebSocket-Protocol: superchat\r\n",
    "Sec-WebSocket-Protocol: v2.mqtt\r\n",
    "Sec-WebSocket-Protocol: chat, superchat\r\n",
    "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n",
    "Sec-WebSocket-Extensions: x-foo\r\n",
    "Sec-WebSocket-Protocol: Chat\r\nSec-WebSocket-Extensions: x-bar\r\n",
];

/// The GUID RFC 6455 §1.3 appends to the key.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The client's address as the sim reports it (in `X-Forwarded-For`).
const CLIENT_IP: &str = "192.0.2.1";

/// Two masked client frames: text "hello", then Ping "p".
pub const CLIENT_FRAMES: &[u8] = &[
    0x81,
    0x85,
    1,
    2,
    3,
    4,
    b'h' ^ 1,
    b'e' ^ 2,
    b'l' ^ 3,
    b'l' ^ 4,
    b'o' ^ 1,
    0x89,
    0x81,
    9,
    9,
    9,
    9,
    b'p' ^ 9,
];

/// A pipelined request.
pub const NEXT_REQUEST: &[u8] = b"GET /next HTTP/1.1\r\nHost: example.com\r\n\r\n";

/// An unmasked server frame: text "hi".
pub const SERVER_FRAME: &[u8] = b"\x81\x02hi";

/// `Sec-WebSocket-Accept` for a key, computed here (RFC 6455 §4.2.2).
pub fn accept_for(key: &[u8]) -> String {
    let mut sha1 = sha1_smol::Sha1::new();
    sha1.update(key);
    sha1.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha1.digest().bytes())
}

/// One fuzz case: the bytes each peer sends and when.
#[derive(Clone, Debug)]
pub struct Case {
    /// The request head.
    pub head: Vec<u8>,
    /// Its body (as framed by the head).
    pub body: Vec<u8>,
    /// How many body bytes go with the head in the client's first read.
    pub body_first: usize,
    /// What the client sends after the request.
    pub after: Vec<u8>,
    /// How many of those go in the first read (only when the body is all there).
    pub after_first: usize,
    /// The upstream's bytes: interim head, final head, then `tail`.
    pub upstream: Vec<u8>,
    /// Where the final head begins and ends in `upstream`.
    pub final_head: (usize, usize),
    /// Lengths of the upstream's pieces (the last is whatever is left).
    pub cuts: Vec<usize>,
    /// The client's second read goes before this piece (or after the last).
    pub slot: usize,
}

fn field(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// A field value from fuzz bytes: printable ASCII, space and tab only.
fn value_bytes(reader: &mut Reader<'_>) -> Vec<u8> {
    let len = usize::from(reader.u8() % 24);
    reader
        .bytes(len)
        .iter()
        .copied()
        .filter(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
        .collect()
}

fn flip_case(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_lowercase() {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

impl Case {
    /// Reads a case from fuzz bytes (see the module docs).
    pub fn read(data: &[u8]) -> Case {
        let mut r = Reader::new(data);

        // The request.
        let rq = r.u8();
        let http10 = rq & 1 != 0;
        let body_kind = (rq >> 1) & 3; // 0, 3: none; 1: Content-Length; 2: chunked
        let body_split = rq & 8 != 0;
        let upgrade_shape = (rq >> 4) & 3; // one line, two lines, absent, empty
        let key_shape = rq >> 6; // one key, none, two different, the same twice
        let count = 1 + usize::from(r.u8() % 4);
        let offered: Vec<&str> = (0..count)
            .map(|_| PROTOCOLS[usize::from(r.u8()) % PROTOCOLS.len()])
            .collect();
        let connection = CONNECTIONS[usize::from(r.u8()) % CONNECTIONS.len()];
        let keys = r.u8();
        let key = KEYS[usize::from(keys % 4)];
        let other_key = KEYS[usize::from(1 + (keys >> 2) % 3 + keys % 4) % 4];
        let extra = r.u8();
        let extra_request = (extra != 0).then(|| {
            let name = EXTRA_REQUEST_FIELDS[usize::from(extra) % EXTRA_REQUEST_FIELDS.len()];
            (name, value_bytes(&mut r))
        });
        let body_cut = r.u8();

        let (method, version) = if http10 {
            ("POST", "HTTP/1.0")
        } else {
            ("GET", "HTTP/1.1")
        };
        let mut head = format!("{method} /chat {version}\r\nHost: example.com\r\n").into_bytes();
        match upgrade_shape {
            0 => field(&mut head, "Upgrade", offered.join(", ").as_bytes()),
            1 => {
                let (a, b) = offered.split_at(offered.len().div_ceil(2));
                field(&mut head, "Upgrade", a.join(", ").as_bytes());
                field(&mut head, "Upgrade", b.join(",").as_bytes());
            }
            2 => {}
            _ => field(&mut head, "Upgrade", b""),
        }
        for line in connection {
            field(&mut head, "Connection", line.as_bytes());
        }
        match key_shape {
            0 => field(&mut head, "Sec-WebSocket-Key", key.as_bytes()),
            1 => {}
            2 => {
                field(&mut head, "Sec-WebSocket-Key", key.as_bytes());
                field(&mut head, "Sec-WebSocket-Key", other_key.as_bytes());
            }
            _ => {
                field(&mut head, "Sec-WebSocket-Key", key.as_bytes());
                field(&mut head, "Sec-WebSocket-Key", key.as_bytes());
            }
        }
        match (keys >> 4) & 3 {
            2 => {}
            3 => field(&mut head, "Sec-WebSocket-Version", b"8"),
            _ => field(&mut head, "Sec-WebSocket-Version", b"13"),
        }
        if let Some((name, value)) = &extra_request {
            field(&mut head, name, value);
        }
        // Chunked is not allowed in HTTP/1.0: those get a Content-Length body.
        let body: Vec<u8> = match body_kind {
            1 => b"hello world".to_vec(),
            2 if http10 => b"hello world".to_vec(),
            2 => b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n".to_vec(),
            _ => Vec::new(),
        };
        if body_kind == 2 && !http10 {
            field(&mut head, "Transfer-Encoding", b"chunked");
        } else if !body.is_empty() {
            field(
                &mut head,
                "Content-Length",
                body.len().to_string().as_bytes(),
            );
        }
        head.extend_from_slice(b"\r\n");
        let body_first = if body_split {
            usize::from(body_cut) % (body.len() + 1)
        } else {
            body.len()
        };

        // The response.
        let rs = r.u8();
        let status = match rs & 7 {
            0..=4 => 101,
            5 => 200,
            6 => 426,
            _ => 400,
        };
        let interim = rs & 8 != 0;
        let extensions = rs & 16 != 0;
        let tail_kind = (rs >> 5) & 3;
        let response_connection = CONNECTIONS[usize::from(r.u8()) % CONNECTIONS.len()];
        let upgrade_variant = r.u8();
        let pick = usize::from(r.u8());
        let accept_variant = r.u8();
        let extra = r.u8();
        let extra_response = (extra != 0).then(|| {
            let name = EXTRA_RESPONSE_FIELDS[usize::from(extra) % EXTRA_RESPONSE_FIELDS.len()];
            (name, value_bytes(&mut r))
        });

        let first = offered[0];
        let upgrade_lines: Vec<String> = match upgrade_variant % 12 {
            0 => vec![first.to_owned()],
            1 => vec![offered[pick % offered.len()].to_owned()],
            2 => vec![flip_case(first)],
            3 => vec![match first.split_once('/') {
                Some((name, _)) => format!("{name}/x"),
                None => format!("{first}/2"),
            }],
            4 => vec![first.split('/').next().unwrap_or_default().to_owned()],
            5 => vec![format!("{first}, {}", offered[pick % offered.len()])],
            6 => vec![],
            7 => vec!["irc/6.9".to_owned()],
            8 => vec![first.to_owned(), first.to_owned()],
            9 => vec![String::new()],
            10 => vec!["websocket".to_owned()],
            _ => vec![PROTOCOLS[pick % PROTOCOLS.len()].to_owned()],
        };
        let good = accept_for(key.as_bytes());
        let accept_lines: Vec<String> = match accept_variant % 8 {
            0 => vec![good.clone()],
            1 => vec![accept_for(other_key.as_bytes())],
            2 => vec![],
            3 => vec![good.clone(), good.clone()],
            4 => vec![good.to_ascii_lowercase()],
            5 => vec![format!("  {good}\t")],
            6 => vec![accept_for(other_key.as_bytes()), good.clone()],
            _ => vec![format!("{good}, {good}")],
        };
        let mut upstream = Vec::new();
        if interim {
            upstream.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        let final_start = upstream.len();
        let reason = match status {
            101 => "Switching Protocols",
            200 => "OK",
            426 => "Upgrade Required",
            _ => "Bad Request",
        };
        upstream.extend_from_slice(format!("HTTP/1.1 {status} {reason}\r\n").as_bytes());
        for line in &upgrade_lines {
            field(&mut upstream, "Upgrade", line.as_bytes());
        }
        for line in response_connection {
            field(&mut upstream, "Connection", line.as_bytes());
        }
        for line in &accept_lines {
            field(&mut upstream, "Sec-WebSocket-Accept", line.as_bytes());
        }
        if extensions {
            field(
                &mut upstream,
                "Sec-WebSocket-Extensions",
                b"permessage-deflate",
            );
        }
        if let Some((name, value)) = &extra_response {
            field(&mut upstream, name, value);
        }
        if status != 101 {
            field(&mut upstream, "Content-Length", b"2");
        }
        upstream.extend_from_slice(b"\r\n");
        let final_end = upstream.len();
        if status != 101 {
            upstream.extend_from_slice(b"no");
        } else if tail_kind == 1 {
            upstream.extend_from_slice(SERVER_FRAME);
        }

        // The client's bytes after the request, and the schedule.
        let held = r.u8();
        let after: Vec<u8> = match held & 3 {
            0 => CLIENT_FRAMES.to_vec(),
            1 => NEXT_REQUEST.to_vec(),
            2 => {
                let len = usize::from(r.u8() % 48);
                r.bytes(len).to_vec()
            }
            _ => Vec::new(),
        };
        let after_first = if body_first == body.len() {
            usize::from(held >> 2) % (after.len() + 1)
        } else {
            0
        };
        let schedule = r.u8();
        let cuts: Vec<usize> = (0..schedule % 4).map(|_| usize::from(r.u8())).collect();
        let slot = usize::from(schedule >> 2) % (cuts.len() + 2);

        // Read last, so that inputs written before it read as they did.
        let negotiation = r.u8();
        let offer = OFFERS[usize::from(negotiation & 7)];
        let blank_line = head.len() - 2;
        head.splice(blank_line..blank_line, offer.bytes());
        let choice = CHOICES[usize::from((negotiation >> 3) & 7)];
        let blank_line = final_end - 2;
        upstream.splice(blank_line..blank_line, choice.bytes());
        let final_end = final_end + choice.len();
        Case {
            head,
            body,
            body_first,
            after,
            after_first,
            upstream,
            final_head: (final_start, final_end),
            cuts,
            slot,
        }
    }

    /// The upstream's bytes in pieces.
    pub fn pieces(&self) -> Vec<&[u8]> {
        crate::input::split(&self.upstream, &self.cuts)
    }

    /// The client's first read.
    pub fn first_read(&self) -> Vec<u8> {
        [
            &self.head[..],
            &self.body[..self.body_first],
            &self.after[..self.after_first],
        ]
        .concat()
    }

    /// The client's second read.
    pub fn second_read(&self) -> Vec<u8> {
        [
            &self.body[self.body_first..],
            &self.after[self.after_first..],
        ]
        .concat()
    }

    /// Whether the request body was complete when the final head was read: the
    /// client's second read came before the piece that ends the final head.
    pub fn body_complete_at_final_head(&self) -> bool {
        if self.body_first == self.body.len() {
            return true;
        }
        let last_head_byte = self.final_head.1 - 1;
        let mut start = 0;
        for (i, piece) in self.pieces().iter().enumerate() {
            if last_head_byte < start + piece.len() {
                return self.slot <= i;
            }
            start += piece.len();
        }
        unreachable!("the final head lies within the upstream's bytes")
    }
}

/// The bytes [`Case::read`] reads, by name, so that seeds can be written as code.
/// Each field is one input byte unless said otherwise; all zero is a valid WebSocket
/// handshake with an accepted 101 and two masked frames after the request.
#[derive(Clone, Debug, Default)]
pub struct Knobs {
    /// Bit 0: HTTP/1.0 (a POST); bits 1–2: body (1 Content-Length, 2 chunked);
    /// bit 3: only `body_cut` bytes of the body in the first read; bits 4–5:
    /// `Upgrade` on one line, on two, absent, empty; bits 6–7: one
    /// `Sec-WebSocket-Key`, none, two different, the same one twice.
    pub request: u8,
    /// Offered protocols, indices into [`PROTOCOLS`] (one to four; none means one,
    /// index 0).
    pub protocols: Vec<u8>,
    /// Index into [`CONNECTIONS`] for the request.
    pub connection: u8,
    /// Bits 0–1: the key (index into [`KEYS`]); bits 2–3: which other key; bits 4–5:
    /// `Sec-WebSocket-Version` 13 (0, 1), none (2), 8 (3).
    pub keys: u8,
    /// An extra request field: index into [`EXTRA_REQUEST_FIELDS`] and its value
    /// (under 24 bytes; only printable ASCII, SP and HTAB are kept).
    pub extra_request: Option<(u8, Vec<u8>)>,
    /// Body bytes in the first read (mod the body's length + 1), with bit 3 above.
    pub body_cut: u8,
    /// Bits 0–2: status (0–4: 101, 5: 200, 6: 426, 7: 400); bit 3: a 100 first; bit
    /// 4: `Sec-WebSocket-Extensions`; bits 5–6: 1 = a server frame after the 101.
    pub response: u8,
    /// Index into [`CONNECTIONS`] for the response.
    pub response_connection: u8,
    /// The response's `Upgrade` (mod 12): 0 the first offered protocol, 1 the
    /// `pick`th, 2 the first with its case flipped, 3 with its version changed, 4
    /// without version, 5 two protocols, 6 none, 7 one not offered, 8 the first on
    /// two lines, 9 empty, 10 `websocket`, 11 [`PROTOCOLS`]`[pick]`.
    pub upgrade: u8,
    /// See `upgrade`.
    pub pick: u8,
    /// The accept (mod 8): 0 right, 1 for the other key, 2 none, 3 right twice, 4
    /// lowercased, 5 right with spaces around, 6 the other key's then the right one,
    /// 7 right twice in one field.
    pub accept: u8,
    /// An extra response field: index into [`EXTRA_RESPONSE_FIELDS`] and its value.
    pub extra_response: Option<(u8, Vec<u8>)>,
    /// Bits 0–1: after the request the client sends [`CLIENT_FRAMES`],
    /// [`NEXT_REQUEST`], `raw_after`, or nothing; bits 2–7: how many of those bytes
    /// go in the first read (mod their length + 1; only with the whole body).
    pub after: u8,
    /// Bytes after the request when `after & 3 == 2` (under 48).
    pub raw_after: Vec<u8>,
    /// Up to three upstream piece lengths.
    pub cuts: Vec<u8>,
    /// The client's second read goes before this upstream piece (mod pieces + 1).
    pub slot: u8,
    /// Bits 0–2: the subprotocols and extensions offered ([`OFFERS`]); bits 3–5:
    /// those the response chooses ([`CHOICES`]). Last in the input (0 when absent).
    pub negotiation: u8,
}

impl Knobs {
    /// The fuzz input for these knobs.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.request];
        let protocols = if self.protocols.is_empty() {
            &[0][..]
        } else {
            &self.protocols[..self.protocols.len().min(4)]
        };
        out.push(protocols.len() as u8 - 1);
        out.extend_from_slice(protocols);
        out.extend_from_slice(&[self.connection, self.keys]);
        let extra = |out: &mut Vec<u8>, extra: &Option<(u8, Vec<u8>)>| match extra {
            None => out.push(0),
            Some((name, value)) => {
                out.push(if name % 4 == 0 { 4 } else { name % 4 });
                out.push(value.len().min(23) as u8);
                out.extend_from_slice(&value[..value.len().min(23)]);
            }
        };
        extra(&mut out, &self.extra_request);
        out.push(self.body_cut);
        out.extend_from_slice(&[
            self.response,
            self.response_connection,
            self.upgrade,
            self.pick,
            self.accept,
        ]);
        extra(&mut out, &self.extra_response);
        out.push(self.after);
        if self.after & 3 == 2 {
            out.push(self.raw_after.len().min(47) as u8);
            out.extend_from_slice(&self.raw_after[..self.raw_after.len().min(47)]);
        }
        let cuts = &self.cuts[..self.cuts.len().min(3)];
        out.push(cuts.len() as u8 | self.slot << 2);
        out.extend_from_slice(cuts);
        if self.negotiation != 0 {
            out.push(self.negotiation);
        }
        out
    }
}

/// What the model expects of a 101.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The tunnel opens.
    Tunnel,
    /// 502, the upstream dropped.
    Refuse,
    /// Either is right (a versioned `websocket` with the right accept).
    Either,
}

/// Elements of a comma-separated list field (RFC 9110 §5.6.1), each trimmed of
/// spaces and tabs, lowercased, empty ones dropped.
fn elements(head: &Head, name: &str) -> Vec<String> {
    head.list(name)
}

/// An extension element's name: what precedes its parameters.
fn extension_name(element: &str) -> String {
    let name = element.split(';').next().unwrap_or_default();
    name.trim_matches([' ', '\t']).to_owned()
}

/// A field's only value, trimmed of spaces and tabs; `None` unless it occurs once.
fn only_value(head: &Head, name: &str) -> Option<Vec<u8>> {
    let mut values = head.values(name);
    match (values.next(), values.next()) {
        (Some(v), None) => {
            let start = v.iter().position(|&b| b != b' ' && b != b'\t');
            let end = v.iter().rposition(|&b| b != b' ' && b != b'\t');
            Some(match (start, end) {
                (Some(s), Some(e)) => v[s..=e].to_vec(),
                _ => Vec::new(),
            })
        }
        _ => None,
    }
}

/// `name[/version]`, lowercased.
fn protocol_parts(p: &str) -> (&str, Option<&str>) {
    match p.split_once('/') {
        Some((name, version)) => (name, Some(version)),
        None => (p, None),
    }
}

/// `name` or `name/version`, both tokens (RFC 9110 §5.6.2, §7.8).
fn is_protocol(element: &str) -> bool {
    let token = |s: &str| !s.is_empty() && s.bytes().all(is_tchar);
    let (name, version) = protocol_parts(element);
    token(name) && version.is_none_or(token)
}

/// The protocols an upgrade attempt offers upstream, or why `request` is none.
fn offered_protocols(request: &Head) -> Result<Vec<String>, &'static str> {
    if request.version != 1 {
        return Err("an HTTP/1.0 request cannot upgrade");
    }
    if !elements(request, "connection")
        .iter()
        .any(|c| c == "upgrade")
    {
        return Err("the request's Connection does not list upgrade");
    }
    // `h2c` is never offered upstream (RFC 9113 §3.1 deprecates it; "h2c smuggling").
    let offered: Vec<String> = elements(request, "upgrade")
        .into_iter()
        .filter(|o| protocol_parts(o).0 != "h2c")
        .collect();
    match offered.is_empty() {
        true => Err("the request offers no protocol"),
        false => Ok(offered),
    }
}

/// The model of the request alone: the status it is refused with before anything goes
/// upstream, if it is. An upgrade attempt that offers WebSocket without exactly one
/// `Sec-WebSocket-Key` of 16 bytes in base64 (RFC 6455 §4.1, §11.3.1) is the client's
/// fault: 400; with one, but a `Sec-WebSocket-Version` other than a single 13, it gets
/// 426 (RFC 6455 §4.2.2).
pub fn refuses_request(request: &Head) -> Option<u16> {
    // So is one whose Upgrade lists anything but protocols, `token ["/" token]` (RFC
    // 9110 §7.8): a looser reader could find one the proxy did not see.
    let attempt = request.version == 1
        && elements(request, "connection").iter().any(|c| c == "upgrade")
        && request.values("upgrade").next().is_some();
    if attempt && !elements(request, "upgrade").iter().all(|o| is_protocol(o)) {
        return Some(400);
    }
    let offered = offered_protocols(request).ok()?;
    if offered.iter().any(|o| protocol_parts(o).0 == "websocket") {
        let is_key = |key: &Vec<u8>| {
            key.len() == 24
                && base64::engine::general_purpose::STANDARD
                    .decode(key)
                    .is_ok_and(|bytes| bytes.len() == 16)
        };
        if !only_value(request, "sec-websocket-key").is_some_and(|key| is_key(&key)) {
            return Some(400);
        }
        if only_value(request, "sec-websocket-version").as_deref() != Some(b"13") {
            return Some(426);
        }
    }
    // And so is an attempt with a body: RFC 9110 §7.8 switches after it, llhttp after
    // the head, so a server that declined could read the body as the next request.
    let has_body = request.values("transfer-encoding").next().is_some()
        || request
            .values("content-length")
            .any(|v| v.iter().any(|&b| b.is_ascii_digit() && b != b'0'));
    has_body.then_some(400)
}

/// The model: whether a 101 with head `response`, answering `request`, opens a
/// tunnel (`body_complete`: the request body was all read when the 101 came).
pub fn decide(request: &Head, response: &Head, body_complete: bool) -> (Decision, &'static str) {
    use Decision::*;
    let offered = match offered_protocols(request) {
        Ok(offered) => offered,
        Err(why) => return (Refuse, why),
    };
    if !body_complete {
        return (Refuse, "the request body was not complete");
    }
    if !elements(response, "connection")
        .iter()
        .any(|c| c == "upgrade")
    {
        return (Refuse, "the 101's Connection does not list upgrade");
    }
    let chosen = elements(response, "upgrade");
    let [chosen] = chosen.as_slice() else {
        return (Refuse, "the 101 does not name exactly one protocol");
    };
    let (name, version) = protocol_parts(chosen);
    let was_offered = offered.iter().any(|o| {
        let (offered_name, offered_version) = protocol_parts(o);
        offered_name == name && (version.is_none() || version == offered_version)
    });
    if !was_offered {
        return (Refuse, "the 101 names a protocol that was not offered");
    }
    if name == "websocket" {
        let Some(key) = only_value(request, "sec-websocket-key") else {
            return (Refuse, "no single Sec-WebSocket-Key");
        };
        let Some(accept) = only_value(response, "sec-websocket-accept") else {
            return (Refuse, "no single Sec-WebSocket-Accept");
        };
        if accept != accept_for(&key).as_bytes() {
            return (Refuse, "wrong Sec-WebSocket-Accept");
        }
        // RFC 6455 §4.1: at most one subprotocol, one offered (exactly) and named by
        // any field of it, and only extensions offered (by name, in any case).
        let subprotocol = "sec-websocket-protocol";
        match response.list_as_sent(subprotocol).as_slice() {
            [] if response.count(subprotocol) == 0 => {}
            [one] if request.list_as_sent(subprotocol).contains(one) => {}
            _ => return (Refuse, "a subprotocol the client did not offer"),
        }
        let extension = "sec-websocket-extensions";
        let offered: Vec<String> = elements(request, extension)
            .iter()
            .map(|e| extension_name(e))
            .collect();
        if elements(response, extension)
            .iter()
            .any(|e| !offered.contains(&extension_name(e)))
        {
            return (Refuse, "an extension the client did not offer");
        }
        if version.is_some() {
            return (Either, "a versioned websocket with the right accept");
        }
    }
    (Tunnel, "every rule holds")
}

/// What a run left behind.
#[derive(Debug)]
pub struct Outcome {
    /// Bytes the client got.
    pub client: Vec<u8>,
    /// Bytes the upstream got (across connections).
    pub upstream: Vec<u8>,
    /// `ReleaseUpstream` flags.
    pub releases: Vec<bool>,
    /// Whether the sim still holds an upstream connection.
    pub upstream_held: bool,
    /// Whether the session closed.
    pub closed: bool,
}

/// Splits what the upstream received into the first request (head and body as far
/// as it went) and what followed it. Panics if it is not a request.
fn after_first_request<'a>(
    case: &Case,
    upstream: &'a [u8],
    say: &dyn Fn(&str) -> String,
) -> &'a [u8] {
    let head = match parse_request(upstream) {
        Parsed::Complete(head) => head,
        other => panic!(
            "{}",
            say(&format!("the upstream got no request head ({other:?})"))
        ),
    };
    let rest = &upstream[head.len..];
    if head.count("transfer-encoding") > 0 {
        match chunked_model(rest).end {
            ChunkEnd::Done { consumed } => &rest[consumed..],
            ChunkEnd::Incomplete => &rest[rest.len()..],
            ChunkEnd::Error { at } => {
                panic!(
                    "{}",
                    say(&format!("invalid chunked request body at byte {at}"))
                )
            }
        }
    } else {
        let n = case.body.len().min(rest.len());
        assert_eq!(
            &rest[..n],
            &case.body[..n],
            "{}",
            say("the request body was not forwarded as sent")
        );
        if n < case.body.len() {
            &rest[rest.len()..]
        } else {
            &rest[n..]
        }
    }
}

/// Whether the client got a final (non-1xx, or 101) response head.
fn final_response(client: &[u8]) -> Option<(Head, usize)> {
    let mut at = 0;
    loop {
        match parse_response(&client[at..]) {
            Parsed::Complete(head) => {
                let status = head.status.unwrap_or_default();
                if (100..200).contains(&status) && status != 101 {
                    at += head.len;
                    continue;
                }
                return Some((head, at));
            }
            _ => return None,
        }
    }
}

/// Drives a case through the sim, checking that nothing the client sent after the
/// request reaches the upstream while no final response has reached the client.
pub fn run(case: &Case) -> Outcome {
    // Dialled at the head, so that the upstream's answer can come at any point of
    // the body: a request that is no upgrade after all (its fields mutated) would
    // otherwise wait for its body before the upstream is dialled. An upgrade is
    // dialled at its head either way.
    let config = Config {
        request_buffering: false,
        ..Config::default()
    };
    let mut sim = Sim::new(config);
    let say = |sim: &Sim, what: &str| {
        format!(
            "{what}\n case {}\n client got {}\n upstream got {}",
            describe(case),
            show(sim.client_received()),
            show(sim.upstream_received())
        )
    };
    let check_held = |sim: &Sim| {
        if sim.upstream_received().is_empty() || final_response(sim.client_received()).is_some() {
            return;
        }
        let rest = after_first_request(case, sim.upstream_received(), &|w| say(sim, w));
        assert!(
            rest.is_empty(),
            "{}",
            say(
                sim,
                "bytes after the request reached the upstream before any final response"
            )
        );
    };
    sim.client_sends(&case.first_read());
    if matches!(parse_request(&case.head), Parsed::Complete(request) if refuses_request(&request).is_some()) {
        return outcome(&sim);
    }
    assert!(
        sim.has_pending_connect(),
        "{}",
        say(&sim, "the request was not forwarded")
    );
    sim.expect_connect();
    sim.upstream_connected();
    check_held(&sim);
    let second = case.second_read();
    let pieces = case.pieces();
    for (i, piece) in pieces.iter().enumerate() {
        if case.slot == i && !second.is_empty() {
            sim.client_sends(&second);
            check_held(&sim);
        }
        sim.upstream_sends(piece);
        check_held(&sim);
    }
    if case.slot >= pieces.len() && !second.is_empty() {
        sim.client_sends(&second);
        check_held(&sim);
    }
    // A next request (parsed from the bytes after the first) gets its connection.
    if sim.has_pending_connect() {
        sim.expect_connect();
        sim.upstream_connected();
    }
    outcome(&sim)
}

/// What `sim` shows at the end of a run.
fn outcome(sim: &Sim) -> Outcome {
    assert_eq!(sim.outputs_after_close(), 0, "outputs after Close");
    Outcome {
        client: sim.client_received().to_vec(),
        upstream: sim.upstream_received().to_vec(),
        releases: sim.releases().to_vec(),
        upstream_held: sim.upstream_held(),
        closed: sim.is_closed(),
    }
}

fn describe(case: &Case) -> String {
    format!(
        "request {} | body {} ({} first) | after {} ({} first) | upstream {} | cuts {:?} | client's second read before piece {}",
        show(&case.head),
        show(&case.body),
        case.body_first,
        show(&case.after),
        case.after_first,
        show(&case.upstream),
        case.cuts,
        case.slot
    )
}

/// The fuzz target's body.
pub fn check(data: &[u8]) {
    let case = Case::read(data);
    check_case(&case);
}

/// Runs a case and checks the outcome against the model.
pub fn check_case(case: &Case) {
    let out = run(case);
    let say = |what: &str| {
        format!(
            "{what}\n case {}\n client got {}\n upstream got {}\n releases {:?}, upstream held {}, closed {}",
            describe(case),
            show(&out.client),
            show(&out.upstream),
            out.releases,
            out.upstream_held,
            out.closed
        )
    };
    let Parsed::Complete(request) = parse_request(&case.head) else {
        panic!("{}", say("the generated request does not parse"))
    };
    if let Some(status) = refuses_request(&request) {
        let got = final_response(&out.client);
        assert!(
            got.as_ref().map(|(head, _)| head.status) == Some(Some(status))
                && out.upstream.is_empty()
                && out.releases.is_empty(),
            "{}",
            say(&format!("an upgrade attempt with a malformed Upgrade or a body, or offering WebSocket without one valid key (400) or version (426), was not refused with {status} alone"))
        );
        if status == 426 {
            let (head, _) = got.expect("checked above");
            assert!(
                only_value(&head, "sec-websocket-version").as_deref() == Some(b"13")
                    && elements(&head, "upgrade") == ["websocket"]
                    && elements(&head, "connection").iter().any(|c| c == "upgrade"),
                "{}",
                say("a 426 does not name websocket and version 13")
            );
        }
        return;
    }
    let (final_start, final_end) = case.final_head;
    let Parsed::Complete(response) = parse_response(&case.upstream[final_start..]) else {
        panic!("{}", say("the generated response does not parse"))
    };
    let status = response.status.unwrap_or_default();
    let rest = after_first_request(case, &out.upstream, &say);
    let Some((got, got_at)) = final_response(&out.client) else {
        panic!("{}", say("the client got no final response"))
    };
    let got_status = got.status.unwrap_or_default();
    let websocket_named = |head: &Head| {
        head.list("upgrade")
            .first()
            .is_some_and(|p| protocol_parts(p).0 == "websocket")
    };

    if status != 101 {
        // Another final response: forwarded; the bytes after the request are the next
        // request, parsed and rewritten, or nothing.
        assert_eq!(
            got_status,
            status,
            "{}",
            say("the final response was not forwarded")
        );
        if rest.is_empty() {
            let keep_alive = if request.version == 1 {
                !request.list("connection").iter().any(|c| c == "close")
            } else {
                request.list("connection").iter().any(|c| c == "keep-alive")
                    && !request.list("connection").iter().any(|c| c == "close")
            };
            assert!(
                !(keep_alive
                    && case.body_complete_at_final_head()
                    && case.after.starts_with(NEXT_REQUEST)),
                "{}",
                say("a kept-alive client's next request was not forwarded")
            );
            return;
        }
        let Parsed::Complete(sent) = parse_request(case.after.as_slice()) else {
            panic!(
                "{}",
                say("bytes after the request reached the upstream, and they are not a request")
            )
        };
        let Parsed::Complete(next) = parse_request(rest) else {
            panic!(
                "{}",
                say("what the upstream got after the first request is not a request head")
            )
        };
        assert!(
            next.method == sent.method
                && next.target == sent.target
                && next.count("x-forwarded-proto") == 1
                && next
                    .values("x-forwarded-for")
                    .last()
                    .is_some_and(|v| v.ends_with(CLIENT_IP.as_bytes())),
            "{}",
            say("the next request reached the upstream without being parsed and rewritten")
        );
        return;
    }

    let (decision, why) = decide(&request, &response, case.body_complete_at_final_head());
    let opened = got_status == 101;
    match (decision, opened) {
        (Decision::Tunnel, false) => panic!("{}", say(&format!("no tunnel, but {why}"))),
        (Decision::Refuse, true) => panic!("{}", say(&format!("a tunnel opened, but {why}"))),
        _ => {}
    }
    if !opened {
        assert_eq!(
            got_status,
            502,
            "{}",
            say(&format!("a refused 101 ({why}) is not a 502"))
        );
        let length = got
            .single("content-length")
            .and_then(crate::http::decimal)
            .unwrap_or(0);
        assert_eq!(
            out.client.len() as u64,
            (got_at + got.len) as u64 + length,
            "{}",
            say("the client got more than the 502")
        );
        assert!(
            !out.upstream_held && !out.releases.is_empty() && out.releases.iter().all(|r| !r),
            "{}",
            say("the upstream of a refused 101 was not dropped")
        );
        assert!(
            rest.is_empty(),
            "{}",
            say("bytes after the request reached the upstream of a refused 101")
        );
        return;
    }
    // The tunnel: the 101 byte-exact, then each side gets the other's bytes exactly
    // once, in order (WebSocket: as the frame relay rules allow).
    let head_101 = &case.upstream[final_start..final_end];
    assert!(
        out.client[got_at..].starts_with(head_101),
        "{}",
        say("the 101 was not forwarded byte-exact")
    );
    let websocket = websocket_named(&response);
    let down = check_relay(
        &case.upstream[final_end..],
        &out.client[got_at + head_101.len()..],
        websocket,
        false,
    );
    let up = check_relay(&case.after, rest, websocket, true);
    let (down, up) = match (down, up) {
        (Ok(down), Ok(up)) => (down, up),
        (Err(e), _) => panic!("{}", say(&format!("tunnel to the client: {e}"))),
        (_, Err(e)) => panic!("{}", say(&format!("tunnel to the upstream: {e}"))),
    };
    // A WebSocket tunnel the proxy is closing (its own Close in either direction, e.g.
    // after the client's bytes broke RFC 6455) stops relaying; otherwise nothing is
    // held back but an incomplete frame header or control frame.
    let closing = down.proxy_close || up.proxy_close;
    for (direction, relay) in [("to the client", down), ("to the upstream", up)] {
        assert!(
            relay.complete || closing,
            "{}",
            say(&format!("the open tunnel held bytes back {direction}"))
        );
    }
}
