//! `serve_connection` over a stream that is not a socket (the path TLS streams take),
//! and `Context::drain` for embedders with their own accept loop.

use runtime_tokio::proxy_core::{ClientInfo, Config};
use runtime_tokio::{serve_connection, Context};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// An upstream that answers every request on a connection with a fixed response.
async fn upstream() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    if stream.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                        return;
                    }
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        let response = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
                        stream.write_all(response.as_bytes()).await.unwrap();
                    }
                }
            });
        }
    });
    addr
}

async fn read_response(stream: &mut (impl AsyncReadExt + Unpin)) -> String {
    let mut buf = Vec::new();
    while !buf.ends_with(b"hello") {
        assert_ne!(
            stream.read_buf(&mut buf).await.unwrap(),
            0,
            "closed early: {buf:?}"
        );
    }
    String::from_utf8(buf).unwrap()
}

#[tokio::test]
async fn requests_over_an_in_memory_stream_are_proxied_and_drain_ends_the_session() {
    let config = Config {
        upstream: upstream().await,
        ..Config::default()
    };
    let ctx = Arc::new(Context::new(Arc::new(config)));
    let (mut client, proxy_end) = tokio::io::duplex(64 * 1024);
    let session = tokio::spawn({
        let ctx = ctx.clone();
        async move { serve_connection(proxy_end, ClientInfo::default(), &ctx).await }
    });

    for _ in 0..2 {
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: example\r\n\r\n")
            .await
            .unwrap();
        let response = read_response(&mut client).await;
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    }
    assert_eq!(ctx.live_connections(), 1);

    // Idle between requests: draining closes it at once.
    tokio::time::timeout(Duration::from_secs(2), ctx.drain())
        .await
        .expect("drain returned");
    session.await.unwrap().unwrap();
    assert_eq!(ctx.live_connections(), 0);
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty(), "nothing after the last response: {rest:?}");
}

/// A stream that keeps written bytes until flushed, as TLS does with records.
#[tokio::test]
async fn responses_are_flushed_through_a_buffering_stream() {
    let config = Config {
        upstream: upstream().await,
        ..Config::default()
    };
    let ctx = Context::new(Arc::new(config));
    let (mut client, proxy_end) = tokio::io::duplex(64 * 1024);
    let buffering = tokio::io::BufWriter::with_capacity(64 * 1024, proxy_end);
    let session = serve_connection(buffering, ClientInfo::default(), &ctx);
    let talk = async {
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: example\r\n\r\n")
            .await
            .unwrap();
        read_response(&mut client).await
    };
    tokio::select! {
        response = talk => assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}"),
        _ = session => panic!("the session ended early"),
        _ = tokio::time::sleep(Duration::from_secs(2)) => panic!("the response was never flushed"),
    }
}

#[tokio::test]
async fn a_session_started_after_drain_began_is_drained_too() {
    let config = Config {
        upstream: upstream().await,
        ..Config::default()
    };
    let ctx = Arc::new(Context::new(Arc::new(config)));
    tokio::time::timeout(Duration::from_secs(2), ctx.drain())
        .await
        .expect("drain returned");

    let (mut client, proxy_end) = tokio::io::duplex(64 * 1024);
    let served = tokio::time::timeout(
        Duration::from_secs(2),
        serve_connection(proxy_end, ClientInfo::default(), &ctx),
    );
    served.await.expect("the session ended at once").unwrap();
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());
}
