//! `serve_connection` over streams that are not TCP sockets (the path TLS streams
//! take), `Context::drain` for embedders with their own accept loop, and the
//! liveness check of pooled connections.
#![cfg(unix)]

use runtime_smol::proxy_core::{ClientInfo, Config};
use runtime_smol::{serve_connection, Context, Smol};
use smol::future::{self, FutureExt};
use smol::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use smol::net::unix::UnixStream;
use smol::net::{TcpListener, TcpStream};
use smol::Timer;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context as Cx, Poll};
use std::time::Duration;

/// An upstream that answers every request on a connection with a fixed response.
async fn upstream() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    smol::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            smol::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0; 4096];
                loop {
                    let n = stream.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        let response = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
                        stream.write_all(response.as_bytes()).await.unwrap();
                    }
                }
            })
            .detach();
        }
    })
    .detach();
    addr
}

async fn read_response(stream: &mut (impl AsyncReadExt + Unpin)) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0; 4096];
    while !buf.ends_with(b"hello") {
        let n = stream.read(&mut chunk).await.unwrap();
        assert_ne!(n, 0, "closed early: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8(buf).unwrap()
}

async fn within<T>(what: &str, max: Duration, f: impl std::future::Future<Output = T>) -> T {
    let timeout = async {
        Timer::after(max).await;
        panic!("{what}: not within {max:?}")
    };
    f.or(timeout).await
}

fn context(upstream: String) -> Arc<Context> {
    let config = Config {
        upstream,
        ..Config::default()
    };
    Arc::new(Context::new(Arc::new(config)))
}

#[test]
fn requests_over_a_unix_socket_are_proxied_and_drain_ends_the_session() {
    smol::block_on(async {
        let ctx = context(upstream().await);
        let (mut client, proxy_end) = UnixStream::pair().unwrap();
        let session = smol::spawn({
            let ctx = ctx.clone();
            async move { serve_connection(proxy_end, ClientInfo::default(), &ctx).await }
        });
        for _ in 0..2 {
            client
                .write_all(b"GET / HTTP/1.1\r\nHost: example\r\n\r\n")
                .await
                .unwrap();
            let response = within(
                "response",
                Duration::from_secs(2),
                read_response(&mut client),
            )
            .await;
            assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        }
        assert_eq!(ctx.live_connections(), 1);

        // Idle between requests: draining closes it at once.
        within("drain", Duration::from_secs(2), ctx.drain()).await;
        session.await.unwrap();
        assert_eq!(ctx.live_connections(), 0);
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty(), "nothing after the last response: {rest:?}");
    })
}

/// A stream that keeps written bytes until flushed, as TLS does with records.
#[test]
fn responses_are_flushed_through_a_buffering_stream() {
    smol::block_on(async {
        let ctx = context(upstream().await);
        let (mut client, proxy_end) = UnixStream::pair().unwrap();
        let buffering = Buffering {
            stream: proxy_end,
            held: Vec::new(),
        };
        let session = async {
            let _ = serve_connection(buffering, ClientInfo::default(), &ctx).await;
            panic!("the session ended early")
        };
        let talk = async {
            client
                .write_all(b"GET / HTTP/1.1\r\nHost: example\r\n\r\n")
                .await
                .unwrap();
            read_response(&mut client).await
        };
        let response = within(
            "the flushed response",
            Duration::from_secs(2),
            talk.or(session),
        )
        .await;
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    })
}

#[test]
fn a_session_started_after_drain_began_is_drained_too() {
    smol::block_on(async {
        let ctx = context(upstream().await);
        within("drain", Duration::from_secs(2), ctx.drain()).await;
        let (mut client, proxy_end) = UnixStream::pair().unwrap();
        let served = serve_connection(proxy_end, ClientInfo::default(), &ctx);
        within("the drained session", Duration::from_secs(2), served)
            .await
            .unwrap();
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
    })
}

/// Sessions and the pool's sweeper go to the executor the context was given.
#[test]
fn tasks_run_on_the_given_executor() {
    let executor = Arc::new(smol::Executor::new());
    let config = Config {
        upstream: "127.0.0.1:9".into(),
        ..Config::default()
    };
    let ctx = Arc::new(Context::with_runtime(
        Arc::new(config),
        Smol::on(executor.clone()),
    ));
    smol::block_on(executor.run(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = smol::channel::bounded::<()>(1);
        let serving = ctx.serve_all(vec![listener], async move {
            let _ = stopped.recv().await;
        });
        let talk = async {
            let mut client = TcpStream::connect(addr).await.unwrap();
            // Nothing listens on port 9: the session answers 502 by itself.
            client
                .write_all(b"GET / HTTP/1.1\r\nHost: example\r\n\r\n")
                .await
                .unwrap();
            let mut head = [0; 12];
            client.read_exact(&mut head).await.unwrap();
            assert_eq!(&head, b"HTTP/1.1 502");
            stop.send(()).await.unwrap();
        };
        within(
            "serve_all",
            Duration::from_secs(3),
            future::zip(serving, talk),
        )
        .await;
    }));
    assert_eq!(ctx.live_connections(), 0);
}

/// Holds every written byte until flushed, as a TLS stream holds a record.
struct Buffering<S> {
    stream: S,
    held: Vec<u8>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Buffering<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Cx<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Buffering<S> {
    fn poll_write(mut self: Pin<&mut Self>, _: &mut Cx<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.held.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Cx<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        while !this.held.is_empty() {
            let n = ready!(Pin::new(&mut this.stream).poll_write(cx, &this.held))?;
            this.held.drain(..n);
        }
        Pin::new(&mut this.stream).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Cx<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_flush(cx))?;
        Pin::new(&mut self.stream).poll_close(cx)
    }
}
