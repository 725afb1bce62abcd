//! Just enough RFC 6455 for the benchmark: the opening handshake and frame headers.
//! Payloads are streamed, never buffered whole, so neither side pays for a copy it does
//! not need.

use base64::Engine;

/// RFC 6455 §1.3: appended to the key before hashing.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` (RFC 6455 §4.2.2).
pub fn accept_key(key: &str) -> String {
    let mut sha = sha1_smol::Sha1::new();
    sha.update(key.as_bytes());
    sha.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.digest().bytes())
}

/// A fresh `Sec-WebSocket-Key` (16 bytes, base64): unique, not secret.
pub fn new_key(rng: &mut Rng) -> String {
    let mut raw = [0u8; 16];
    raw[..8].copy_from_slice(&rng.next().to_le_bytes());
    raw[8..].copy_from_slice(&rng.next().to_le_bytes());
    base64::engine::general_purpose::STANDARD.encode(raw)
}

/// The client's opening handshake.
pub fn client_request(host: &str, key: &str) -> String {
    format!(
        "GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub fin: bool,
    pub opcode: u8,
    pub mask: Option<[u8; 4]>,
    pub len: u64,
}

/// Parses a frame header at the start of `buf`; `None` if more bytes are needed.
/// Returns the header and its length in bytes.
pub fn parse_header(buf: &[u8]) -> Option<(Header, usize)> {
    if buf.len() < 2 {
        return None;
    }
    let fin = buf[0] & 0x80 != 0;
    let opcode = buf[0] & 0x0F;
    let masked = buf[1] & 0x80 != 0;
    let (len, mut at) = match buf[1] & 0x7F {
        126 => (
            u64::from(u16::from_be_bytes(buf.get(2..4)?.try_into().ok()?)),
            4,
        ),
        127 => (u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?), 10),
        n => (u64::from(n), 2),
    };
    let mask = if masked {
        let key: [u8; 4] = buf.get(at..at + 4)?.try_into().ok()?;
        at += 4;
        Some(key)
    } else {
        None
    };
    Some((
        Header {
            fin,
            opcode,
            mask,
            len,
        },
        at,
    ))
}

/// Appends a frame header (FIN set unless `fin` is false) to `out`.
pub fn write_header(out: &mut Vec<u8>, fin: bool, opcode: u8, len: u64, mask: Option<[u8; 4]>) {
    out.push(if fin { 0x80 } else { 0 } | (opcode & 0x0F));
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    if len < 126 {
        out.push(mask_bit | len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        out.push(mask_bit | 126);
        out.extend_from_slice(&len.to_be_bytes());
    } else {
        out.push(mask_bit | 127);
        out.extend_from_slice(&len.to_be_bytes());
    }
    if let Some(key) = mask {
        out.extend_from_slice(&key);
    }
}

/// XORs `data` with `key`, where `data` starts `offset` bytes into the payload.
/// A zero key is the identity and costs nothing (the bulk test uses one so that the
/// load generator's core is not spent on masking).
pub fn apply_mask(data: &mut [u8], key: [u8; 4], offset: usize) {
    if key == [0; 4] {
        return;
    }
    let mut rotated = [0u8; 4];
    for (i, byte) in rotated.iter_mut().enumerate() {
        *byte = key[(offset + i) % 4];
    }
    let wide = u64::from_ne_bytes([
        rotated[0], rotated[1], rotated[2], rotated[3], rotated[0], rotated[1], rotated[2],
        rotated[3],
    ]);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let word = u64::from_ne_bytes((&*chunk).try_into().expect("8 bytes")) ^ wide;
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= rotated[i % 4];
    }
}

/// A tiny xorshift generator: keys and mask keys need to differ, not to be secret.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn from_time(salt: u64) -> Rng {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9E37_79B9_7F4A_7C15);
        Rng::new(nanos ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_matches_rfc_6455_example() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn headers_round_trip_at_every_length_class() {
        for len in [0u64, 125, 126, 65535, 65536, 1 << 40] {
            for mask in [None, Some([1, 2, 3, 4])] {
                let mut out = Vec::new();
                write_header(&mut out, true, OP_BINARY, len, mask);
                let (header, n) = parse_header(&out).unwrap();
                assert_eq!(n, out.len());
                assert_eq!(
                    header,
                    Header {
                        fin: true,
                        opcode: OP_BINARY,
                        mask,
                        len
                    }
                );
                assert!(parse_header(&out[..n - 1]).is_none());
            }
        }
    }

    #[test]
    fn masking_in_pieces_equals_masking_at_once() {
        let key = [0xA1, 0x02, 0xF3, 0x44];
        let data: Vec<u8> = (0..100u8).collect();
        let mut whole = data.clone();
        apply_mask(&mut whole, key, 0);
        let mut pieces = data.clone();
        let (a, b) = pieces.split_at_mut(13);
        apply_mask(a, key, 0);
        apply_mask(b, key, 13);
        assert_eq!(whole, pieces);
        for (i, (&m, &d)) in whole.iter().zip(&data).enumerate() {
            assert_eq!(m, d ^ key[i % 4]);
        }
    }
}
