//! Invariant: `proxy_protocol::parse` reaches its verdict on a PROXY header exactly when
//! the header's last byte arrives and never changes it as more bytes come (so a runtime
//! peeking at a connection never needs a byte past the header, nor reads one), its
//! lengths stay within the versions' bounds, and a header generated from any address
//! and port parses back to exactly that client.
//!
//! Input: a header byte. `header & 1` = 0: the rest is the connection's first bytes
//! (arbitrary; `header & 6` picks a prefix, none, `PROXY `, `PROXY TCP4 ` or the v2
//! signature, to reach deeper). `header & 1` = 1: the rest drives a generator of valid
//! headers (`header & 2`: v2, else v1; `header & 4`: IPv6, else IPv4) followed by
//! arbitrary bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proxy_core::proxy_protocol::{parse, Parsed, Source, V1_MAX, V2_MAX};

use crate::input::{show, Reader};

const V2_SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";

/// Runs the checks on one fuzz input.
pub fn check(data: &[u8]) {
    let mut reader = Reader::new(data);
    let header = reader.u8();
    if header & 1 == 0 {
        let prefix: &[u8] = match (header >> 1) & 3 {
            0 => b"",
            1 => b"PROXY ",
            2 => b"PROXY TCP4 ",
            _ => V2_SIGNATURE,
        };
        check_verdicts(&[prefix, reader.rest()].concat(), None);
        return;
    }
    let v6 = header & 4 != 0;
    let ip: IpAddr = match v6 {
        true => Ipv6Addr::from(u128::from_le_bytes(array(reader.bytes(16)))).into(),
        false => Ipv4Addr::from(u32::from_le_bytes(array(reader.bytes(4)))).into(),
    };
    let client = SocketAddr::new(ip, reader.u16());
    let encoded = match header & 2 != 0 {
        true => v2(
            client,
            reader.bytes(usize::from(reader.clone().u8() % 64) + 1),
        ),
        false => v1(client),
    };
    let input = [&encoded[..], reader.rest()].concat();
    check_verdicts(&input, Some((encoded.len(), client)));
}

/// Parses every prefix of `input`: partial until a verdict, then the same verdict to
/// the end; a header's verdict comes at exactly its length. With `expected`, the
/// input starts with a header of that length naming that client.
fn check_verdicts(input: &[u8], expected: Option<(usize, SocketAddr)>) {
    let mut verdict = None;
    for end in 0..=input.len() {
        let now = parse(&input[..end]);
        match (&verdict, now) {
            (None, Ok(Parsed::Partial)) => {}
            (None, Ok(Parsed::Header { len, .. })) if len != end => panic!(
                "a header of {len} bytes found only once {end} had come: {}",
                show(input)
            ),
            (None, v) => verdict = Some(v),
            (Some(first), v) if *first != v => panic!(
                "verdict {first:?} became {v:?} at {end} bytes: {}",
                show(input)
            ),
            (Some(_), _) => {}
        }
    }
    if let Some(Ok(Parsed::Header { len, .. })) = verdict {
        let bound = if input.first() == Some(&b'P') {
            V1_MAX
        } else {
            V2_MAX
        };
        assert!(len <= bound, "a header of {len} bytes: {}", show(input));
    }
    if let Some((len, client)) = expected {
        let source = Source::Client(client);
        assert_eq!(
            verdict,
            Some(Ok(Parsed::Header { len, source })),
            "a generated header for {client}: {}",
            show(input)
        );
    }
}

/// The v1 line for a TCP client of `client` to port 443.
fn v1(client: SocketAddr) -> Vec<u8> {
    let (family, dst) = match client {
        SocketAddr::V4(_) => ("TCP4", "10.0.0.1"),
        SocketAddr::V6(_) => ("TCP6", "2001:db8::1"),
    };
    format!(
        "PROXY {family} {} {dst} {} 443\r\n",
        client.ip(),
        client.port()
    )
    .into_bytes()
}

/// The v2 header for a `PROXY` of `client` (stream), with `tlvs` after the addresses.
fn v2(client: SocketAddr, tlvs: &[u8]) -> Vec<u8> {
    let (family, mut addresses) = match client.ip() {
        IpAddr::V4(ip) => (0x11, [&ip.octets()[..], &[10, 0, 0, 1]].concat()),
        IpAddr::V6(ip) => (0x21, [&ip.octets()[..], &[0; 16]].concat()),
    };
    addresses.extend(client.port().to_be_bytes());
    addresses.extend(443u16.to_be_bytes());
    addresses.extend(tlvs);
    let mut header = V2_SIGNATURE.to_vec();
    header.extend([0x21, family]);
    header.extend((addresses.len() as u16).to_be_bytes());
    header.extend(addresses);
    header
}

/// `bytes` padded with zeros to `N`.
fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0; N];
    out[..bytes.len()].copy_from_slice(bytes);
    out
}
