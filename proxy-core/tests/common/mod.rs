//! Helpers shared by the rule tests.
#![allow(dead_code)]

use proxy_core::sim::Sim;
use proxy_core::upgrade::websocket_accept;
use proxy_core::Config;

pub const GET: &[u8] = b"GET /index.html HTTP/1.1\r\nHost: example.com\r\n\r\n";
pub const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
pub const WS_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

pub fn sim() -> Sim {
    Sim::new(Config::default())
}

/// A session whose client sent `request` in one read and whose upstream is connected.
pub fn connected(request: &[u8]) -> Sim {
    connected_with(Config::default(), request)
}

/// [`connected`] with `request_buffering` off: the upstream is dialled at the head,
/// and a body that has not all come yet streams to it.
pub fn streaming(request: &[u8]) -> Sim {
    let config = Config {
        request_buffering: false,
        ..Config::default()
    };
    connected_with(config, request)
}

fn connected_with(config: Config, request: &[u8]) -> Sim {
    let mut sim = Sim::new(config);
    sim.client_sends(request);
    sim.expect_connect();
    sim.upstream_connected();
    sim
}

pub fn websocket_request() -> Vec<u8> {
    format!(
        "GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes()
}

pub fn websocket_101() -> Vec<u8> {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        websocket_accept(WS_KEY)
    )
    .into_bytes()
}

/// A session with an open tunnel of a protocol the proxy does not look into
/// (`Upgrade: raw`); both received-buffers are emptied.
pub fn tunnel(config: Config) -> Sim {
    let mut sim = Sim::new(config);
    sim.client_sends(b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: raw\r\nConnection: upgrade\r\n\r\n");
    sim.expect_connect();
    sim.upstream_connected();
    sim.upstream_sends(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: raw\r\nConnection: upgrade\r\n\r\n",
    );
    assert!(sim.client_received_str().starts_with("HTTP/1.1 101 "));
    sim.take_client_received();
    sim.take_upstream_received();
    sim
}

/// A session with an open WebSocket tunnel; both received-buffers are emptied.
pub fn websocket_tunnel(config: Config) -> Sim {
    let mut sim = Sim::new(config);
    sim.client_sends(&websocket_request());
    sim.expect_connect();
    sim.upstream_connected();
    sim.upstream_sends(&websocket_101());
    sim.take_client_received();
    sim.take_upstream_received();
    sim
}

/// What a session did with some input: bytes each peer got, and whether it closed.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    pub upstream: String,
    pub client: String,
    pub closed: bool,
}

pub fn outcome(sim: &Sim) -> Outcome {
    Outcome {
        upstream: sim.upstream_received_str(),
        client: sim.client_received_str(),
        closed: sim.is_closed(),
    }
}

/// Runs `run` with `input` cut into pieces every possible way that matters: whole,
/// one byte at a time, and split in two at every position. Asserts every run gives the
/// same outcome as the whole input, and returns it.
pub fn split_everywhere(input: &[u8], run: impl Fn(&[&[u8]]) -> Outcome) -> Outcome {
    let whole = run(&[input]);
    let bytewise: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(
        run(&bytewise),
        whole,
        "one byte at a time differs from whole"
    );
    for at in 1..input.len() {
        let (a, b) = input.split_at(at);
        assert_eq!(run(&[a, b]), whole, "split at {at} differs from whole");
    }
    whole
}

/// Client sends `request` in the given pieces to a connected upstream which answers
/// `response` after the request arrived.
pub fn client_pieces_outcome(pieces: &[&[u8]], response: &[u8]) -> Outcome {
    let mut sim = sim();
    for piece in pieces {
        sim.client_sends(piece);
        if sim.has_pending_connect() {
            sim.expect_connect();
            sim.upstream_connected();
        }
    }
    if sim.upstream_held() {
        sim.upstream_sends(response);
    }
    outcome(&sim)
}

/// A masked text frame, as a client sends it (mask key 1, 2, 3, 4).
pub fn client_frame(payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let key = [1u8, 2, 3, 4];
    let mut frame = vec![0x81, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&key);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    frame
}

/// An unmasked text frame, as a server sends it.
pub fn server_frame(payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mut frame = vec![0x81, payload.len() as u8];
    frame.extend_from_slice(payload);
    frame
}

/// A decoded WebSocket frame, for assertions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub opcode: u8,
    pub masked: bool,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The close code of a Close frame.
    pub fn close_code(&self) -> Option<u16> {
        (self.opcode == 8 && self.payload.len() >= 2)
            .then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

/// Decodes a whole stream of frames (independent of the proxy's relay); panics on
/// a truncated stream.
pub fn decode_frames(mut bytes: &[u8]) -> Vec<Frame> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        let (fin, opcode, masked) = (bytes[0] & 0x80 != 0, bytes[0] & 0x0f, bytes[1] & 0x80 != 0);
        let (len, mut at) = match bytes[1] & 0x7f {
            126 => (u16::from_be_bytes([bytes[2], bytes[3]]) as usize, 4),
            127 => (
                u64::from_be_bytes(bytes[2..10].try_into().unwrap()) as usize,
                10,
            ),
            n => (n as usize, 2),
        };
        let key = masked.then(|| {
            let k = [bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]];
            at += 4;
            k
        });
        let mut payload = bytes[at..at + len].to_vec();
        if let Some(k) = key {
            payload
                .iter_mut()
                .enumerate()
                .for_each(|(i, b)| *b ^= k[i % 4]);
        }
        frames.push(Frame {
            fin,
            opcode,
            masked,
            payload,
        });
        bytes = &bytes[at + len..];
    }
    frames
}

/// Encodes a frame (masked with key 1, 2, 3, 4 when `masked`).
pub fn encode_frame(fin: bool, opcode: u8, masked: bool, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
    let mask_bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n < 65536 => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        let key = [1u8, 2, 3, 4];
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}
