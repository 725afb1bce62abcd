//! The PROXY protocol header, versions 1 and 2 (HAProxy's `proxy-protocol.txt`): the
//! client it names, its exact length (the runtime must not read a byte past it), and
//! refusal of anything else.

use proptest::prelude::*;
use proxy_core::proxy_protocol::{encode, parse, Invalid, Parsed, Source, Version, V1_MAX};
use std::net::SocketAddr;

const V2_SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";

fn client(addr: &str) -> Source {
    Source::Client(addr.parse::<SocketAddr>().unwrap())
}

/// A version 2 header: `command` (0 LOCAL, 1 PROXY), family byte, address block + TLVs.
fn v2(command: u8, family: u8, rest: &[u8]) -> Vec<u8> {
    let mut header = V2_SIGNATURE.to_vec();
    header.push(0x20 | command);
    header.push(family);
    header.extend((rest.len() as u16).to_be_bytes());
    header.extend(rest);
    header
}

fn v2_inet(src: [u8; 4], sport: u16, tlvs: &[u8]) -> Vec<u8> {
    let mut rest = src.to_vec();
    rest.extend([10, 0, 0, 1]);
    rest.extend(sport.to_be_bytes());
    rest.extend(443u16.to_be_bytes());
    rest.extend(tlvs);
    v2(1, 0x11, &rest)
}

#[test]
fn version_1_names_the_client_and_ends_at_its_crlf() {
    let header = b"PROXY TCP4 192.0.2.7 10.0.0.1 56324 443\r\n";
    let mut bytes = header.to_vec();
    bytes.extend(b"GET / HTTP/1.1\r\n");
    assert_eq!(
        parse(&bytes),
        Ok(Parsed::Header {
            len: header.len(),
            source: client("192.0.2.7:56324")
        })
    );
    let header = b"PROXY TCP6 2001:db8::7 2001:db8::1 65535 443\r\n";
    assert_eq!(
        parse(&[&header[..], b"\x16\x03\x01"].concat()),
        Ok(Parsed::Header {
            len: header.len(),
            source: client("[2001:db8::7]:65535")
        })
    );
    assert_eq!(
        parse(b"PROXY UNKNOWN\r\n"),
        Ok(Parsed::Header {
            len: 15,
            source: Source::Unnamed
        })
    );
    assert_eq!(
        parse(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"),
        Ok(Parsed::Header {
            len: 35,
            source: Source::Unnamed
        })
    );
}

#[test]
fn version_1_lines_that_break_the_grammar_are_refused() {
    for bad in [
        &b"PROXY TCP4 192.0.2.7 10.0.0.1 56324 443\n"[..], // bare LF
        b"PROXY TCP4 192.0.2.7 10.0.0.1 56324 443\rX",
        b"PROXY TCP4 192.0.2.7 10.0.0.1 56324\r\n", // a field short
        b"PROXY TCP4 192.0.2.7 10.0.0.1 56324 443 1\r\n", // a field over
        b"PROXY TCP4 192.0.2.7  10.0.0.1 56324 443\r\n", // two spaces
        b"PROXY TCP4 2001:db8::7 10.0.0.1 56324 443\r\n", // family and address disagree
        b"PROXY TCP6 192.0.2.7 10.0.0.1 56324 443\r\n",
        b"PROXY TCP4 192.0.2.07 10.0.0.1 56324 443\r\n", // leading zero
        b"PROXY TCP4 192.0.2.7 10.0.0.1 056324 443\r\n",
        b"PROXY TCP4 192.0.2.7 10.0.0.1 65536 443\r\n", // port past 16 bits
        b"PROXY TCP4 192.0.2.7 10.0.0.1 -1 443\r\n",
        b"PROXY UDP4 192.0.2.7 10.0.0.1 56324 443\r\n",
        b"PROXY tcp4 192.0.2.7 10.0.0.1 56324 443\r\n",
        b"PROXY UNKNOWNX\r\n",
    ] {
        assert_eq!(
            parse(bad),
            Err(Invalid::MalformedV1),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    let long = [b"PROXY UNKNOWN ".as_slice(), &[b'x'; V1_MAX]].concat();
    assert_eq!(
        parse(&long),
        Err(Invalid::MalformedV1),
        "no CRLF in 107 bytes"
    );
    // 107 bytes with the CRLF is the longest line; one more is refused, also when its
    // CR is the 107th byte (found by the fuzz target).
    let line = |len: usize| {
        let pad = len - b"PROXY UNKNOWN \r\n".len();
        [b"PROXY UNKNOWN ".as_slice(), &vec![b'x'; pad], b"\r\n"].concat()
    };
    assert_eq!(
        parse(&line(V1_MAX)),
        Ok(Parsed::Header {
            len: V1_MAX,
            source: Source::Unnamed
        })
    );
    for prefix in [V1_MAX, V1_MAX + 1] {
        assert_eq!(
            parse(&line(V1_MAX + 1)[..prefix]),
            Err(Invalid::MalformedV1)
        );
    }
}

#[test]
fn anything_else_first_is_refused() {
    for bad in [
        &b"GET / HTTP/1.1\r\n"[..],
        b"\x16\x03\x01\x02\x00", // a TLS ClientHello
        b"PROXY\r\n",
        b"proxy TCP4 ",
        b"\r\n\r\n\0\r\nQUIT\r", // a v2 signature gone wrong
    ] {
        assert_eq!(parse(bad), Err(Invalid::NotAHeader), "{bad:?}");
    }
}

#[test]
fn version_2_names_ipv4_and_ipv6_clients_and_skips_tlvs() {
    let header = v2_inet([192, 0, 2, 7], 56324, &[0x04, 0x00, 0x02, 0xab, 0xcd]);
    let mut bytes = header.clone();
    bytes.extend(b"GET / HTTP/1.1\r\n");
    assert_eq!(
        parse(&bytes),
        Ok(Parsed::Header {
            len: header.len(),
            source: client("192.0.2.7:56324")
        })
    );
    let mut rest = vec![0x20, 0x01, 0x0d, 0xb8];
    rest.extend([0; 11]);
    rest.push(7);
    rest.extend([0; 16]);
    rest.extend(4000u16.to_be_bytes());
    rest.extend(443u16.to_be_bytes());
    let header = v2(1, 0x21, &rest);
    assert_eq!(
        parse(&header),
        Ok(Parsed::Header {
            len: 16 + 36,
            source: client("[2001:db8::7]:4000")
        })
    );
}

#[test]
fn version_2_local_and_other_families_name_no_client() {
    for header in [
        v2(0, 0x00, &[]),        // LOCAL: a health check
        v2(0, 0x11, &[1, 2, 3]), // LOCAL ignores what follows
        v2(1, 0x00, &[]),        // PROXY, UNSPEC
        v2(1, 0x31, &[0; 216]),  // PROXY, UNIX
    ] {
        assert_eq!(
            parse(&header),
            Ok(Parsed::Header {
                len: header.len(),
                source: Source::Unnamed
            })
        );
    }
}

#[test]
fn version_2_headers_that_break_the_format_are_refused() {
    let mut bad_version = v2_inet([192, 0, 2, 7], 1, &[]);
    bad_version[12] = 0x11;
    let mut bad_command = v2_inet([192, 0, 2, 7], 1, &[]);
    bad_command[12] = 0x22;
    for bad in [
        bad_version,
        bad_command,
        v2(1, 0x11, &[0; 11]), // an IPv4 block is 12 bytes
        v2(1, 0x21, &[0; 35]),
        v2(1, 0x11, &[0; 3000]), // longer than accepted
    ] {
        assert_eq!(parse(&bad), Err(Invalid::MalformedV2), "{bad:?}");
    }
}

/// Every valid header, whole or cut at any point, and with the client's bytes behind.
fn headers() -> Vec<(Vec<u8>, Source)> {
    vec![
        (
            b"PROXY TCP4 192.0.2.7 10.0.0.1 56324 443\r\n".to_vec(),
            client("192.0.2.7:56324"),
        ),
        (b"PROXY UNKNOWN\r\n".to_vec(), Source::Unnamed),
        (
            v2_inet([203, 0, 113, 9], 80, &[1, 0, 2, b'h', b'2']),
            client("203.0.113.9:80"),
        ),
        (v2(0, 0x00, &[]), Source::Unnamed),
    ]
}

#[test]
fn a_header_cut_short_is_partial_at_every_length() {
    for (header, source) in headers() {
        for cut in 0..header.len() {
            assert_eq!(
                parse(&header[..cut]),
                Ok(Parsed::Partial),
                "{header:?} cut at {cut}"
            );
        }
        assert_eq!(
            parse(&header),
            Ok(Parsed::Header {
                len: header.len(),
                source
            })
        );
    }
}

proptest! {
    /// Read the way a runtime reads it (peek what came, consume it all while partial,
    /// consume exactly `len` once whole): the header is found whatever the pieces it
    /// came in, and not a byte of what follows is consumed.
    #[test]
    fn the_header_is_found_in_any_pieces_without_reading_past_it(
        which in 0usize..4,
        after in prop::collection::vec(any::<u8>(), 0..40),
        pieces in prop::collection::vec(1usize..20, 1..40),
    ) {
        let (header, source) = headers().swap_remove(which);
        let stream = [header.clone(), after].concat();
        let (mut consumed, mut arrived) = (0, 0);
        let mut pieces = pieces.into_iter().cycle();
        let found = loop {
            arrived = (arrived + pieces.next().unwrap()).min(stream.len());
            match parse(&stream[..arrived]) {
                Ok(Parsed::Header { len, source }) => break Some((len, source)),
                Ok(Parsed::Partial) => consumed = arrived,
                Err(e) => prop_assert!(false, "{e} after {arrived} bytes"),
            }
            prop_assert!(consumed <= header.len());
            if arrived == stream.len() {
                break None;
            }
        };
        prop_assert_eq!(found, Some((header.len(), source)));
    }

    /// Arbitrary bytes: never a panic, and a header found is never longer than the
    /// bytes given or than either version allows.
    #[test]
    fn arbitrary_bytes_give_a_bounded_answer(
        prefix in prop::sample::select(vec![&b""[..], b"PROXY ", b"PROXY TCP4 ", V2_SIGNATURE]),
        bytes in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let input = [prefix, &bytes].concat();
        if let Ok(Parsed::Header { len, .. }) = parse(&input) {
            prop_assert!(len <= input.len());
            prop_assert!(len <= proxy_core::proxy_protocol::V2_MAX);
        }
    }
}

#[test]
fn encoded_headers_are_the_specifications_own_examples() {
    let (src, dst) = (
        "192.0.2.7:56324".parse().unwrap(),
        "10.0.0.1:443".parse().unwrap(),
    );
    assert_eq!(
        encode(Version::V1, src, dst),
        b"PROXY TCP4 192.0.2.7 10.0.0.1 56324 443\r\n"
    );
    let v2 = encode(Version::V2, src, dst);
    assert_eq!(v2[..16], *b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c");
    assert_eq!(
        v2[16..],
        [192, 0, 2, 7, 10, 0, 0, 1, 0xdc, 0x04, 0x01, 0xbb]
    );
    // An IPv4 client on a dual-stack listener arrives IPv4-mapped: written as IPv4.
    let mapped = "[::ffff:192.0.2.7]:56324".parse().unwrap();
    let any6 = "[::ffff:10.0.0.1]:443".parse().unwrap();
    assert_eq!(
        encode(Version::V1, mapped, any6),
        encode(Version::V1, src, dst)
    );
    // Mixed families are written as IPv6.
    let v6 = "[2001:db8::1]:443".parse().unwrap();
    assert_eq!(
        encode(Version::V1, src, v6),
        b"PROXY TCP6 ::ffff:192.0.2.7 2001:db8::1 56324 443\r\n"
    );
}

proptest! {
    /// What is encoded parses back to its source, whole and at its exact length.
    #[test]
    fn encoded_headers_parse_back_to_their_source(
        src in any::<SocketAddr>(),
        dst in any::<SocketAddr>(),
        v2 in any::<bool>(),
        after in prop::collection::vec(any::<u8>(), 0..16),
    ) {
        let version = if v2 { Version::V2 } else { Version::V1 };
        let header = encode(version, src, dst);
        let parsed = parse(&[&header[..], &after].concat());
        let expected = SocketAddr::new(src.ip().to_canonical(), src.port());
        let named = match parsed {
            Ok(Parsed::Header { len, source: Source::Client(named) }) if len == header.len() => named,
            other => return Err(TestCaseError::fail(format!("{other:?} for {header:?}"))),
        };
        // An IPv4 source with an IPv6 destination comes back IPv4-mapped.
        prop_assert_eq!(SocketAddr::new(named.ip().to_canonical(), named.port()), expected);
    }
}
