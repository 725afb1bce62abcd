//! Writes the seed corpora (`fuzz/corpus/`) and the session regression input, so that
//! their binary formats (split headers, session operations) stay readable as code.
//! Run by hand when a format changes:
//! `cargo run --no-default-features --example write_seeds` (in `fuzz/`).

use std::fs;
use std::path::PathBuf;

use switchyard_fuzz::session::{encode, Op};
use switchyard_fuzz::upgrade::Knobs;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn main() {
    write_seeds();
    write_upgrade_seeds();
    write_websocket_frames_seeds();
    write_proxy_protocol_seeds();
    write_session_regression();
    write_upgrade_regression();
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = root().join("corpus").join(target);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(name), bytes).unwrap();
}

fn with_header(header: u8, lengths: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = vec![header];
    out.extend_from_slice(lengths);
    out.extend_from_slice(payload);
    out
}

const BROWSER_GET: &[u8] =
    b"GET /articles/2024/sans-io?ref=home HTTP/1.1\r\nHost: www.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
Accept-Language: en-GB,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br, zstd\r\n\
Cookie: session=8f14e45fceea167a5a36dedd4bea2543; theme=dark\r\nConnection: keep-alive\r\n\r\n";

const WS_REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

fn write_seeds() {
    // request_head: header byte (split count | 0x10 small limits), split lengths, bytes.
    let rh = |name: &str, header: u8, lengths: &[u8], bytes: &[u8]| {
        write("request_head", name, &with_header(header, lengths, bytes))
    };
    rh("browser_get", 0, &[], BROWSER_GET);
    rh("browser_get_split", 4, &[3, 1, 40, 200], BROWSER_GET);
    rh("websocket_handshake", 2, &[17, 60], WS_REQUEST);
    rh(
        "websocket_with_early_frame",
        0,
        &[],
        &[WS_REQUEST, b"\x81\x85\x01\x02\x03\x04ignjn"].concat(),
    );
    rh(
        "smuggle_cl_te",
        1,
        &[30],
        b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    rh(
        "smuggle_te_bad_size",
        0,
        &[],
        b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n",
    );
    rh(
        "smuggle_te_hex_prefix",
        0,
        &[],
        b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n",
    );
    rh(
        "smuggle_te_obfuscated",
        0,
        &[],
        b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
    );
    rh(
        "smuggle_te_space_colon",
        0,
        &[],
        b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    );
    rh(
        "smuggle_te_underscore",
        0,
        &[],
        b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer_Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
    );
    rh(
        "spoof_xff_underscore",
        0,
        &[],
        b"GET /a HTTP/1.1\r\nHost: a\r\nX-Forwarded_For: 10.0.0.1\r\nX_Request_Id: 1\r\n\r\n",
    );
    rh(
        "smuggle_double_cl",
        0,
        &[],
        b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    );
    rh(
        "obs_fold",
        0,
        &[],
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\n\r\n",
    );
    rh("bare_lf", 0, &[], b"GET / HTTP/1.1\nHost: a\n\n");
    rh(
        "chunked_body_then_pipelined",
        3,
        &[70, 5, 9],
        b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\nGET /next HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    rh(
        "connection_listed_fields",
        0,
        &[],
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Secret, Host\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Connection: x\r\nUpgrade: websocket\r\n\r\n",
    );
    rh(
        "absolute_form",
        0,
        &[],
        b"GET http://example.com:8080/p?q=1 HTTP/1.1\r\nHost: other\r\n\r\n",
    );
    rh(
        "http10_no_host",
        0,
        &[],
        b"GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    );
    rh("leading_crlf_split", 2, &[1, 1], b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: https\r\n\r\n");
    rh(
        "small_limits_long_target",
        0x11,
        &[8],
        &[
            b"GET /".as_slice(),
            &[b'a'; 200],
            b" HTTP/1.1\r\nHost: a\r\n\r\n",
        ]
        .concat(),
    );
    rh(
        "post_content_length",
        0,
        &[],
        b"POST /form HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world",
    );

    // response_head: header byte (request | split count << 2), split lengths, upstream bytes.
    let rs = |name: &str, request: u8, lengths: &[u8], bytes: &[u8]| {
        write(
            "response_head",
            name,
            &with_header(request | (lengths.len() as u8) << 2, lengths, bytes),
        )
    };
    rs(
        "ok_length",
        0,
        &[],
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, world!",
    );
    rs("ok_chunked_split", 0, &[20, 30, 3], b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\nT: 1\r\n\r\n");
    rs(
        "close_delimited",
        0,
        &[],
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end",
    );
    rs(
        "continue_then_ok",
        0,
        &[25],
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    );
    rs(
        "websocket_101",
        2,
        &[40],
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81\x02hi",
    );
    rs(
        "unsolicited_101",
        0,
        &[],
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x02hi",
    );
    rs(
        "cl_and_te",
        0,
        &[],
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    );
    rs(
        "not_modified_with_length",
        0,
        &[],
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
    );
    rs(
        "head_with_length",
        1,
        &[],
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n",
    );
    rs(
        "chunked_to_http10",
        3,
        &[9],
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    );
    rs(
        "obs_fold",
        0,
        &[],
        b"HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\nContent-Length: 0\r\n\r\n",
    );
    rs(
        "bad_chunk_size",
        0,
        &[],
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    );
    rs("hop_by_hop", 0, &[], b"HTTP/1.1 200 OK\r\nConnection: X-Internal\r\nX-Internal: 1\r\nKeep-Alive: timeout=5\r\nContent-Length: 0\r\n\r\n");

    // chunked: header byte (mode | split count << 1), split lengths, payload.
    let ch = |name: &str, mode: u8, lengths: &[u8], bytes: &[u8]| {
        write(
            "chunked",
            name,
            &with_header(mode | (lengths.len() as u8) << 1, lengths, bytes),
        )
    };
    ch("simple", 0, &[2, 5], b"5\r\nhello\r\n0\r\n\r\n");
    ch(
        "extensions_trailers",
        0,
        &[],
        b"5;a=1;b\r\nhello\r\n00A\r\n0123456789\r\n0;last\r\nX-T: 1\r\nX-U: 2\r\n\r\nNEXT",
    );
    ch("size_with_space", 0, &[], b"5 \r\nhello\r\n0\r\n\r\n");
    ch("size_hex_prefix", 0, &[], b"0x5\r\nhello\r\n0\r\n\r\n");
    ch("size_overflow", 0, &[], b"10000000000000000\r\n");
    ch("bare_lf", 0, &[], b"5\nhello\n0\n\n");
    ch("missing_data_crlf", 0, &[], b"5\r\nhelloX\r\n0\r\n\r\n");
    ch(
        "generated_a",
        1,
        &[9, 1, 33],
        b"\x03\x05\x00\x07\x02\x41\x42\x43\x44\x45\x46\x47\x30\x00\x10\x02\x05\x61\x62",
    );
    ch(
        "generated_b",
        1,
        &[],
        b"\x07\x90\x01\x03\x08;ext\x20abc\xff\x00\x01\x02\x03\x04",
    );

    // session: encoded operations.
    use switchyard_fuzz::session::Op::*;
    let ss = |name: &str, ops: &[Op]| write("session", name, &encode(ops));
    let (c, u) = (proxy_core::Side::Client, proxy_core::Side::Upstream);
    ss(
        "get_keepalive",
        &[
            ClientFragment(0),
            Connected { reused: false },
            UpstreamFragment(0),
            WrittenAll(c),
            WrittenAll(u),
            ClientFragment(4),
            Connected { reused: true },
            UpstreamFragment(12),
            Eof(c),
        ],
    );
    ss(
        "websocket_tunnel",
        &[
            ClientFragment(1),
            ClientFragment(10),
            Connected { reused: false },
            UpstreamFragment(1),
            UpstreamFragment(8),
            ClientFragment(10),
            Written(u, 7),
            WrittenAll(c),
            Advance(30_000),
            Eof(c),
            UpstreamData(b"bye".to_vec()),
            Eof(u),
        ],
    );
    // A binary frame of 1,000 bytes whose header and first 4 payload bytes are read;
    // the rest passes unseen in two moves, then a frame of the proxy's own may follow.
    let mut big_frame_start = vec![0x82, 0xFE, 0x03, 0xE8, 1, 2, 3, 4];
    big_frame_start.extend_from_slice(b"abcd");
    ss(
        "websocket_passthrough",
        &[
            ClientFragment(1),
            Connected { reused: false },
            UpstreamFragment(1),
            WrittenAll(c),
            WrittenAll(u),
            ClientData(big_frame_start),
            WrittenAll(u),
            Pass(c, 600),
            Advance(20_000),
            WrittenAll(u),
            Pass(c, 396),
            Pass(u, 50),
            WrittenAll(u),
            ClientFragment(10),
            Eof(c),
        ],
    );
    // The client closes (a masked Close 1000), the upstream answers and then breaks
    // RFC 6455 with a text frame after its Close: the client's write half is shut at
    // once and the late frame dropped.
    ss(
        "websocket_close_handshake",
        &[
            ClientFragment(1),
            Connected { reused: false },
            UpstreamFragment(1),
            WrittenAll(c),
            WrittenAll(u),
            ClientData(vec![0x88, 0x82, 1, 2, 3, 4, 0x02, 0xEA]),
            WrittenAll(u),
            UpstreamData(vec![0x88, 0x02, 0x03, 0xE8, 0x81, 0x03, b'l', b'a', b't']),
            WrittenAll(c),
            Pass(u, 10),
            Eof(c),
            WrittenAll(u),
        ],
    );
    // A masked text, then an unmasked one (RFC 6455 §5.1): the upstream gets the text
    // and Close 1001, its echo still reaches the client, then the client's Close 1002
    // and FIN; the client's later bytes are dropped unread.
    ss(
        "websocket_protocol_error",
        &[
            ClientFragment(1),
            Connected { reused: false },
            UpstreamFragment(1),
            WrittenAll(c),
            WrittenAll(u),
            ClientData(vec![
                0x81,
                0x82,
                1,
                2,
                3,
                4,
                b'h' ^ 1,
                b'i' ^ 2,
                0x81,
                0x02,
                b'n',
                b'o',
            ]),
            WrittenAll(u),
            UpstreamData(vec![0x81, 0x02, b'h', b'i', 0x88, 0x02, 0x03, 0xE9]),
            WrittenAll(c),
            ClientData(vec![0x88, 0x80, 1, 2, 3, 4]),
            Eof(c),
            WrittenAll(u),
        ],
    );
    // An upload of 3,000 bytes with a GET pipelined behind it, then a 2,000-byte
    // response and a close-delimited one: past each head, the body passes in pieces,
    // to its last byte and no further (the moves after each body find no room), with
    // the clock moving between moves (a move is progress for the body's timer).
    ss(
        "body_passthrough",
        &[
            ClientData(b"POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 3000\r\n\r\nabc".to_vec()),
            Connected { reused: false },
            WrittenAll(u),
            Lag(5_000),
            Pass(c, 1000),
            WrittenAll(u),
            Lag(5_000),
            Pass(c, 1000),
            Written(u, 500),
            WrittenAll(u),
            Pass(c, 997),
            WrittenAll(u),
            Pass(c, 1),
            ClientFragment(0),
            UpstreamData(b"HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\nxy".to_vec()),
            WrittenAll(c),
            Lag(5_000),
            Pass(u, 1024),
            WrittenAll(c),
            Pass(u, 974),
            WrittenAll(c),
            Pass(u, 1),
            WrittenAll(c),
            WrittenAll(u),
            Connected { reused: true },
            UpstreamFragment(3),
            WrittenAll(c),
            Pass(u, 700),
            WrittenAll(c),
            Pass(u, 300),
            Eof(u),
            WrittenAll(c),
        ],
    );
    // Bodies that must never pass: the response to HEAD and a 304, each with a
    // Content-Length, then a chunked upload.
    ss(
        "bodiless_responses",
        &[
            ClientData(b"HEAD /h HTTP/1.1\r\nHost: a\r\n\r\n".to_vec()),
            Connected { reused: false },
            WrittenAll(u),
            UpstreamData(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n".to_vec()),
            WrittenAll(c),
            Pass(u, 100),
            ClientFragment(0),
            WrittenAll(u),
            UpstreamFragment(15),
            WrittenAll(c),
            Pass(u, 10),
            ClientFragment(3),
            WrittenAll(u),
            Pass(c, 100),
            UpstreamFragment(0),
            WrittenAll(c),
            Eof(c),
        ],
    );
    // Chunked bodies both ways, each part way through a chunk when a move is tried:
    // a chunk's data is read, never passed, so that its framing is always followed.
    ss(
        "chunked_bodies_in_flight",
        &[
            ClientData(
                b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n40\r\nab"
                    .to_vec(),
            ),
            Connected { reused: false },
            WrittenAll(u),
            Pass(c, 62),
            ClientData([b"x".repeat(62), b"\r\n0\r\n\r\n".to_vec()].concat()),
            WrittenAll(u),
            UpstreamData(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nxy".to_vec(),
            ),
            WrittenAll(c),
            Pass(u, 14),
            UpstreamData(b"0123456789abcd\r\n0\r\n\r\n".to_vec()),
            WrittenAll(c),
            Eof(c),
        ],
    );
    ss(
        "raw_tunnel_passthrough",
        &[
            ClientFragment(13),
            Connected { reused: false },
            UpstreamFragment(7),
            WrittenAll(c),
            WrittenAll(u),
            Pass(u, 900),
            Pass(c, 300),
            WrittenAll(c),
            Pass(u, 5),
            Eof(u),
            Pass(u, 5),
            WrittenAll(u),
            Eof(c),
        ],
    );
    ss(
        "websocket_idle",
        &[
            ClientFragment(1),
            Connected { reused: false },
            UpstreamFragment(1),
            WrittenAll(c),
            WrittenAll(u),
            NextDeadline,
        ],
    );
    ss(
        "websocket_bad_accept",
        &[
            ClientFragment(1),
            Connected { reused: false },
            UpstreamFragment(6),
            Eof(c),
        ],
    );
    ss(
        "chunked_post_continue",
        &[
            ClientFragment(11),
            Connected { reused: false },
            UpstreamFragment(4),
            ClientFragment(12),
            UpstreamFragment(2),
            WrittenAll(c),
            Eof(c),
        ],
    );
    ss(
        "pipelined",
        &[
            ClientFragment(0),
            ClientFragment(2),
            ClientFragment(3),
            Connected { reused: true },
            Eof(u),
            Connected { reused: false },
            UpstreamFragment(9),
            UpstreamFragment(10),
        ],
    );
    ss(
        "connect_fails",
        &[
            ClientFragment(8),
            ClientFragment(9),
            ConnectFailed,
            Advance(1000),
        ],
    );
    ss(
        "upstream_silent",
        &[
            ClientFragment(0),
            Connected { reused: false },
            Advance(61_000),
        ],
    );
    ss(
        "drain_tunnel",
        &[
            ClientFragment(1),
            Connected { reused: false },
            UpstreamFragment(1),
            Drain(5),
            ClientFragment(10),
            Lag(6000),
            Timeout,
        ],
    );
    ss(
        "close_delimited",
        &[
            ClientFragment(5),
            Connected { reused: false },
            UpstreamFragment(3),
            UpstreamData(vec![b'x'; 200]),
            Eof(u),
            Reset(c),
        ],
    );
    ss(
        "smuggle",
        &[
            ClientFragment(6),
            ClientFragment(0),
            Connected { reused: false },
            UpstreamFragment(0),
        ],
    );
    ss(
        "raw_garbage",
        &[
            ClientData(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec()),
            Advance(10),
        ],
    );

    ss(
        "raw_garbage_then_get",
        &[ClientData(b"\x00".to_vec()), ClientFragment(0)],
    );
}

/// The session regression: a WebSocket tunnel (pings on); the upstream
/// starts a 54-byte binary frame; the ping timers fire (the client's Ping waits for the
/// frame's end); the client breaks RFC 6455 (RSV bits), so the proxy closes with 1002
/// and stops relaying; the upstream finishes its frame: the queued Ping goes to the
/// client inside the frame whose payload was never sent.
fn write_session_regression() {
    use switchyard_fuzz::session::Op::*;
    let (c, u) = (proxy_core::Side::Client, proxy_core::Side::Upstream);
    let ops = [
        ClientFragment(1),
        Connected { reused: false },
        UpstreamFragment(1),
        UpstreamData(b"\x02\x36".to_vec()),
        WrittenAll(c),
        WrittenAll(u),
        Advance(20_000),
        ClientData(b"\xf1\x80\x00\x00\x00\x00".to_vec()),
        UpstreamData(vec![b'x'; 54]),
    ];
    let dir = root().join("regressions").join("session");
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("ping_injected_mid_frame_after_close"),
        encode(&ops),
    )
    .unwrap();
}

/// upgrade: named knobs (see `Knobs`); all zero is a valid WebSocket handshake.
fn write_upgrade_seeds() {
    let up = |name: &str, knobs: Knobs| write("upgrade", name, &knobs.encode());
    let d = Knobs::default;
    up("websocket_accepted", d());
    up(
        "websocket_held_split",
        Knobs {
            after: 5 << 2, // 5 of the frames' bytes with the request, the rest later
            cuts: vec![30, 40, 1],
            slot: 1,
            response: 1 << 5, // a server frame after the 101
            ..d()
        },
    );
    up("wrong_accept", Knobs { accept: 1, ..d() });
    up("no_accept", Knobs { accept: 2, ..d() });
    up("accept_with_spaces", Knobs { accept: 5, ..d() });
    up("accept_twice", Knobs { accept: 3, ..d() });
    up(
        "two_keys",
        Knobs {
            request: 0x80,
            ..d()
        },
    );
    up(
        "no_key",
        Knobs {
            request: 0x40,
            ..d()
        },
    );
    up(
        "same_key_twice",
        Knobs {
            request: 0xc0,
            ..d()
        },
    );
    up("key_not_base64", Knobs { keys: 3, ..d() });
    up(
        "no_key_other_protocol",
        Knobs {
            request: 0x40,
            protocols: vec![4],
            ..d()
        },
    );
    up("http10", Knobs { request: 1, ..d() });
    up(
        "request_without_connection_upgrade",
        Knobs {
            connection: 2,
            ..d()
        },
    );
    up(
        "response_without_connection_upgrade",
        Knobs {
            response_connection: 3,
            ..d()
        },
    );
    up(
        "two_protocols_chosen",
        Knobs {
            protocols: vec![0, 3],
            upgrade: 5,
            ..d()
        },
    );
    up(
        "h2c_plain_tunnel",
        Knobs {
            protocols: vec![3, 0],
            connection: 9,
            after: 2,
            raw_after: b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
            ..d()
        },
    );
    up(
        "version_mismatch",
        Knobs {
            protocols: vec![4],
            upgrade: 3,
            ..d()
        },
    );
    up(
        "versioned_websocket",
        Knobs {
            protocols: vec![2],
            ..d()
        },
    );
    up(
        "body_incomplete_at_101",
        Knobs {
            request: 2 | 8,
            body_cut: 4,
            cuts: vec![20],
            slot: 2,
            ..d()
        },
    );
    up(
        "chunked_body_then_frames",
        Knobs {
            request: 4,
            cuts: vec![60],
            ..d()
        },
    );
    up(
        "ok_then_pipelined_request",
        Knobs {
            response: 5,
            after: 1,
            ..d()
        },
    );
    up(
        "upgrade_required_then_frames",
        Knobs {
            response: 6,
            cuts: vec![10],
            slot: 1,
            ..d()
        },
    );
    up(
        "continue_then_101",
        Knobs {
            response: 8,
            cuts: vec![25],
            ..d()
        },
    );
    // The client's bytes after the request are not frames: the proxy closes with 1002
    // while the upstream's frame to the client is cut, so that stream stops mid-frame.
    let broken = Knobs {
        request: 2,
        response: 1 << 5,
        after: 1,
        slot: 1,
        ..d()
    };
    let upstream_len = switchyard_fuzz::upgrade::Case::read(&broken.encode())
        .upstream
        .len();
    up(
        "client_breaks_rfc6455_mid_server_frame",
        Knobs {
            cuts: vec![(upstream_len - 1) as u8],
            ..broken
        },
    );
    up(
        "extra_fields",
        Knobs {
            extra_request: Some((0, b"keep-alive, Upgrade".to_vec())),
            extra_response: Some((1, b"h2c".to_vec())),
            ..d()
        },
    );
    // Offered `chat, superchat`, chosen `superchat`: a tunnel. Chosen `v2.mqtt`, never
    // offered, or a compression extension with none offered: 502.
    up(
        "subprotocol_offered_and_chosen",
        Knobs {
            negotiation: 1 | 2 << 3,
            ..d()
        },
    );
    up(
        "subprotocol_not_offered",
        Knobs {
            negotiation: 1 | 3 << 3,
            ..d()
        },
    );
    up(
        "extension_not_offered",
        Knobs {
            negotiation: 5 << 3,
            ..d()
        },
    );
}

/// websocket_frames: header byte (1 masked, 2 extensions, 4 generated, split count
/// << 3, 0x80 also bytewise), piece lengths, then the stream or the generator's bytes.
fn write_websocket_frames_seeds() {
    let ws = |name: &str, flags: u8, lengths: &[u8], bytes: &[u8]| {
        write(
            "websocket_frames",
            name,
            &with_header(flags | (lengths.len() as u8) << 3, lengths, bytes),
        )
    };
    const MASKED: u8 = 1;
    const EXTENSIONS: u8 = 2;
    const GENERATED: u8 = 4;
    const BYTEWISE: u8 = 0x80;
    // Masked text "hello", masked Ping "hi", masked first fragment, Pong, last fragment.
    let client = [
        &[
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
        ][..],
        &[0x89, 0x82, 7, 7, 7, 7, b'h' ^ 7, b'i' ^ 7],
        &[0x02, 0x82, 0, 0, 0, 0, 1, 2],
        &[0x8A, 0x80, 5, 6, 7, 8],
        &[0x80, 0x81, 0, 0, 0, 0, 3],
    ]
    .concat();
    ws("client_stream", MASKED, &[3, 9, 1, 2], &client);
    ws("client_stream_bytewise", MASKED | BYTEWISE, &[], &client);
    // Unmasked fragments with a Ping between them, a 16-bit length, a Close.
    let mut server = vec![0x01, 0x02, b'a', b'b', 0x89, 0x00, 0x80, 0x7E, 0x01, 0x00];
    server.extend_from_slice(&[b'x'; 256]);
    server.extend_from_slice(&[0x88, 0x02, 0x03, 0xE8]);
    ws("server_stream", 0, &[5, 2, 100], &server);
    ws(
        "server_64bit_length_partial",
        0,
        &[6],
        &[0x82, 0x7F, 0, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3],
    );
    ws("rsv_with_extension", EXTENSIONS, &[], &[0xC1, 0x01, b'x']);
    // One per rule.
    ws("reserved_opcode", 0, &[1], &[0x81, 0x00, 0x83, 0x00]);
    ws("rsv_without_extension", 0, &[], &[0xC1, 0x01, b'x']);
    ws("control_too_long", 0, &[2], &[0x89, 0x7E, 0x00, 0x7E]);
    ws("control_not_final", 0, &[], &[0x09, 0x00]);
    ws("unmasked_client_frame", MASKED, &[], &[0x81, 0x00]);
    ws("masked_server_frame", 0, &[], &[0x81, 0x80, 1, 2, 3, 4]);
    ws(
        "length_msb",
        0,
        &[5],
        &[0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0],
    );
    ws("continuation_first", 0, &[], &[0x80, 0x00]);
    ws("text_inside_message", 0, &[], &[0x01, 0x00, 0x81, 0x00]);
    ws("control_held_partial", 0, &[3], &[0x89, 0x05, b'a', b'b']);
    // Generator: kind, size, mutation per frame.
    ws(
        "generated_client",
        GENERATED | MASKED,
        &[7, 50],
        &[0, 5, 0, 3, 2, 0, 6, 0x80, 0, 4, 1, 0, 7, 3, 0, 5, 2, 0],
    );
    ws(
        "generated_server_mutations",
        GENERATED,
        &[20],
        &[1, 0xC0, 0, 6, 10, 0, 3, 1, 240, 0, 0, 246],
    );
    // The last byte sets the message limit (× 8): 80 bytes, and the message's second
    // 63-byte fragment takes it past; 96 bytes, and the masked message of 60 + 62
    // bytes crosses it, with a Ping between its fragments.
    ws(
        "generated_message_over_the_limit",
        GENERATED,
        &[],
        &[6, 63, 0, 7, 63, 0, 2, 63, 10],
    );
    ws(
        "generated_masked_message_over_the_limit_split",
        GENERATED | MASKED | BYTEWISE,
        &[5, 7],
        &[6, 60, 0, 3, 4, 0, 2, 62, 0, 1, 40, 12],
    );
}

/// The upgrade regression: the request offers `websocket/13` (no key), the 101 names
/// `websocket/13` with no `Sec-WebSocket-Accept`, and the proxy opens a tunnel.
fn write_upgrade_regression() {
    let knobs = Knobs {
        request: 0x40,      // no Sec-WebSocket-Key
        protocols: vec![2], // websocket/13
        accept: 2,          // no Sec-WebSocket-Accept
        ..Knobs::default()
    };
    let dir = root().join("regressions").join("upgrade");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("versioned_websocket_skips_accept"), knobs.encode()).unwrap();
}

fn write_proxy_protocol_seeds() {
    // proxy_protocol: header byte (bit 0: generate; bit 1: v2; bit 2: IPv6), then bytes.
    let pp = |name: &str, bytes: &[u8]| write("proxy_protocol", name, bytes);
    pp(
        "v1_tcp4",
        b"\x00PROXY TCP4 192.0.2.7 10.0.0.1 56324 443\r\nGET / HTTP/1.1\r\n",
    );
    pp(
        "v1_tcp6",
        b"\x00PROXY TCP6 2001:db8::7 2001:db8::1 4000 443\r\n\x16\x03\x01",
    );
    pp("v1_unknown", b"\x00PROXY UNKNOWN\r\n");
    pp(
        "v1_bare_lf",
        b"\x00PROXY TCP4 192.0.2.7 10.0.0.1 56324 443\nGET",
    );
    pp(
        "v2_inet_tlv",
        b"\x06\x21\x11\x00\x11\xc0\x00\x02\x07\x0a\x00\x00\x01\xdc\x04\x01\xbb\x04\x00\x02ab",
    );
    pp("v2_local", b"\x06\x20\x00\x00\x00GET / HTTP/1.1\r\n");
    pp("generated_v1_v4", b"\x01\xc0\x00\x02\x07\x50\x00rest");
    pp(
        "generated_v2_v6",
        b"\x07\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x07\xa0\x0f\x05\x01\x02\x03",
    );
    pp("plain_request", b"\x00GET / HTTP/1.1\r\nHost: a\r\n\r\n");
}
