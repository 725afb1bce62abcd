//! The PROXY protocol header (HAProxy's `proxy-protocol.txt`, versions 1 and 2): what
//! a load balancer in front (AWS NLB, HAProxy `send-proxy`, ...) sends first on each
//! connection to say whose it is. A listener that expects it reads it before anything
//! else, TLS included, and the client is then the address it names: in
//! `X-Forwarded-For`, the access log and the per-IP limits.
//!
//! The runtime must not read past the header (the bytes after it are the client's,
//! possibly a TLS handshake), so [`parse`] also says how many of the bytes seen so far
//! are certainly header: the runtime peeks, consumes that many, and peeks again, never
//! taking a byte that is not the header's. A connection whose first bytes are not a
//! valid header is refused: the specification forbids guessing, as a client that could
//! skip the header could name any address it liked.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Version 2's 12-byte signature.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Version 1's longest header, `CRLF` included (the specification's 107 bytes).
pub const V1_MAX: usize = 107;
/// Longest version 2 header accepted: the fixed 16 bytes and 2 KiB of addresses and
/// TLVs (AWS and Google put some tens of bytes there).
pub const V2_MAX: usize = 16 + 2048;

/// What a header said about the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// It was proxied for this client.
    Client(SocketAddr),
    /// No client to name: the sender's own connection (v2 `LOCAL`, a health check),
    /// `UNKNOWN`, or an address family other than IPv4 and IPv6. The connection's
    /// own peer address stands.
    Unnamed,
}

/// How far [`parse`] got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A whole header.
    Header {
        /// Its length: the client's own bytes start right after.
        len: usize,
        /// Whose connection it is.
        source: Source,
    },
    /// Valid so far but not whole: every byte given is header, and may be consumed.
    Partial,
}

/// Why a connection's first bytes are not a PROXY header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invalid {
    /// Neither version's signature.
    NotAHeader,
    /// A version 1 line that breaks its grammar, or runs past 107 bytes.
    MalformedV1,
    /// A version 2 header with an unknown version or command, an address block
    /// shorter than its family needs, or longer than [`V2_MAX`].
    MalformedV2,
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Invalid::NotAHeader => "no PROXY protocol header",
            Invalid::MalformedV1 => "malformed PROXY protocol v1 header",
            Invalid::MalformedV2 => "malformed PROXY protocol v2 header",
        })
    }
}

impl std::error::Error for Invalid {}

/// Reads a PROXY header from the start of `bytes` (all bytes the connection has sent
/// so far, or a prefix of them).
pub fn parse(bytes: &[u8]) -> Result<Parsed, Invalid> {
    let common = bytes.len().min(V2_SIGNATURE.len());
    if bytes[..common] == V2_SIGNATURE[..common] && !bytes.is_empty() {
        return parse_v2(bytes);
    }
    let common = bytes.len().min(6);
    if bytes[..common] == b"PROXY "[..common] {
        return parse_v1(bytes);
    }
    Err(Invalid::NotAHeader)
}

fn parse_v1(bytes: &[u8]) -> Result<Parsed, Invalid> {
    let Some(cr) = bytes
        .iter()
        .take(V1_MAX)
        .position(|&b| b == b'\r' || b == b'\n')
    else {
        return match bytes.len() < V1_MAX {
            true => Ok(Parsed::Partial),
            false => Err(Invalid::MalformedV1),
        };
    };
    match bytes.get(cr..cr + 2) {
        Some(b"\r\n") if cr + 2 <= V1_MAX => {}
        Some(_) => return Err(Invalid::MalformedV1), // a bare CR or LF
        None if bytes[cr] == b'\r' && cr + 2 <= V1_MAX => return Ok(Parsed::Partial),
        None => return Err(Invalid::MalformedV1),
    }
    let line = std::str::from_utf8(&bytes[6..cr]).map_err(|_| Invalid::MalformedV1)?;
    let source = v1_source(line).ok_or(Invalid::MalformedV1)?;
    Ok(Parsed::Header {
        len: cr + 2,
        source,
    })
}

/// The source named by a v1 line after `PROXY `: `TCP4|TCP6 src dst sport dport`, or
/// `UNKNOWN` and anything.
fn v1_source(line: &str) -> Option<Source> {
    if line == "UNKNOWN" || line.starts_with("UNKNOWN ") {
        return Some(Source::Unnamed);
    }
    let mut fields = line.split(' ');
    let (family, src, dst, sport, dport) = (
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
    );
    if fields.next().is_some() {
        return None;
    }
    // The destination is checked, not used: the proxy knows its own address.
    let src: IpAddr = match family {
        "TCP4" => {
            dst.parse::<Ipv4Addr>().ok()?;
            src.parse::<Ipv4Addr>().ok()?.into()
        }
        "TCP6" => {
            dst.parse::<Ipv6Addr>().ok()?;
            src.parse::<Ipv6Addr>().ok()?.into()
        }
        _ => return None,
    };
    let port = |p: &str| match p.as_bytes() {
        [b'0'] => Some(0),
        [b'1'..=b'9', rest @ ..] if rest.len() < 5 && rest.iter().all(u8::is_ascii_digit) => {
            p.parse::<u16>().ok()
        }
        _ => None,
    };
    port(dport)?;
    Some(Source::Client(SocketAddr::new(src, port(sport)?)))
}

fn parse_v2(bytes: &[u8]) -> Result<Parsed, Invalid> {
    if bytes.len() < 16 {
        if let Some(&version_command) = bytes.get(12) {
            check_v2_version(version_command)?;
        }
        return Ok(Parsed::Partial);
    }
    check_v2_version(bytes[12])?;
    let len = 16 + usize::from(u16::from_be_bytes([bytes[14], bytes[15]]));
    if len > V2_MAX {
        return Err(Invalid::MalformedV2);
    }
    let local = bytes[12] & 0x0f == 0;
    let addresses_len = match bytes[13] >> 4 {
        1 => 12,
        2 => 36,
        _ => 0,
    };
    if len < 16 + addresses_len && !local {
        return Err(Invalid::MalformedV2);
    }
    if bytes.len() < len {
        return Ok(Parsed::Partial);
    }
    let a = &bytes[16..len];
    let source = match (local, addresses_len) {
        (false, 12) => Source::Client(SocketAddr::new(
            Ipv4Addr::new(a[0], a[1], a[2], a[3]).into(),
            u16::from_be_bytes([a[8], a[9]]),
        )),
        (false, 36) => {
            let mut ip = [0u8; 16];
            ip.copy_from_slice(&a[..16]);
            Source::Client(SocketAddr::new(
                Ipv6Addr::from(ip).into(),
                u16::from_be_bytes([a[32], a[33]]),
            ))
        }
        _ => Source::Unnamed,
    };
    Ok(Parsed::Header { len, source })
}

/// Version 2, command `LOCAL` (0) or `PROXY` (1).
fn check_v2_version(version_command: u8) -> Result<(), Invalid> {
    match (version_command >> 4, version_command & 0x0f) {
        (2, 0 | 1) => Ok(()),
        _ => Err(Invalid::MalformedV2),
    }
}

/// Which version of the header to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// The text line (`PROXY TCP4 ...`), which every receiver reads.
    V1,
    /// The binary header.
    V2,
}

/// The header that says a TCP connection from `source` to `destination` is relayed.
/// Both are written in one family: IPv4 when both are IPv4 (an IPv4-mapped IPv6
/// address counts as IPv4), else IPv6 (an IPv4 one mapped).
pub fn encode(version: Version, source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let (src, dst) = (source.ip().to_canonical(), destination.ip().to_canonical());
    let v4 = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => Some((s, d)),
        _ => None,
    };
    let v6 = |ip: IpAddr| match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    let (sport, dport) = (source.port(), destination.port());
    match version {
        Version::V1 => match v4 {
            Some((s, d)) => format!("PROXY TCP4 {s} {d} {sport} {dport}\r\n"),
            None => format!("PROXY TCP6 {} {} {sport} {dport}\r\n", v6(src), v6(dst)),
        }
        .into_bytes(),
        Version::V2 => {
            let mut header = V2_SIGNATURE.to_vec();
            let addresses = match v4 {
                Some((s, d)) => [&s.octets()[..], &d.octets()].concat(),
                None => [&v6(src).octets()[..], &v6(dst).octets()].concat(),
            };
            let family = if v4.is_some() { 0x11 } else { 0x21 };
            // Version 2, PROXY; TCP over the family; the length of what follows.
            header.extend([0x21, family]);
            header.extend((addresses.len() as u16 + 4).to_be_bytes());
            header.extend(addresses);
            header.extend(sport.to_be_bytes());
            header.extend(dport.to_be_bytes());
            header
        }
    }
}
