//! The admin listener: `GET /metrics` (Prometheus text format) and `GET /healthz`,
//! answered by a tiny HTTP/1.1 responder (one request per connection) that never
//! goes through the proxy's sessions.

use crate::context::Context;
use crate::runtime::{sleep, timeout, Listener, Runtime, Transport};
use crate::signal::Registration;
use std::future::{poll_fn, Future};
use std::io::{self, IoSlice};
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tracing::debug;

/// A request head larger than this is refused.
const MAX_HEAD: usize = 8 * 1024;
/// Reading the request and writing the answer together may take this long.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);

impl<R: Runtime> Context<R> {
    /// Answers admin requests on `listener` until a drain starts: `GET /metrics` is
    /// [`Context::metrics_text`], `GET /healthz` is `ok`; anything else is 404 (405
    /// for another method).
    pub async fn serve_admin<L: Listener<R>>(self: &Arc<Self>, listener: L) {
        let mut drain = Registration::default();
        loop {
            let mut accept = pin!(listener.accept());
            let next = poll_fn(|cx| {
                if self.poll_drain(&mut drain, cx).is_ready() {
                    return Poll::Ready(None);
                }
                accept.as_mut().poll(cx).map(Some)
            });
            match next.await {
                None => return,
                Some(Ok((mut stream, _))) => {
                    let ctx = self.clone();
                    self.runtime().spawn(async move {
                        let rt = ctx.runtime().clone();
                        let deadline = rt.now() + ADMIN_TIMEOUT;
                        let answered = timeout(&rt, deadline, answer(&ctx, &mut stream));
                        if answered.await.is_none() {
                            debug!("admin request not done in time; closed");
                        }
                    });
                }
                Some(Err(e)) => {
                    debug!(error = %e, "admin accept failed");
                    sleep(self.runtime(), Duration::from_millis(100)).await;
                }
            }
        }
    }
}

/// (`&mut`: the future stays `Send` without asking the stream to be `Sync`.)
async fn answer<R: Runtime>(ctx: &Context<R>, stream: &mut R::Tcp) {
    let mut head = Vec::new();
    let complete = loop {
        match {
            let s = &mut *stream;
            poll_fn(move |cx| Transport::<R>::poll_read(&*s, cx, MAX_HEAD))
        }
        .await
        {
            Ok(bytes) if bytes.is_empty() => break false,
            Ok(bytes) => head.extend_from_slice(&bytes),
            Err(_) => return,
        }
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            break true;
        }
        if head.len() > MAX_HEAD {
            break false;
        }
    };
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let mut words = line.split(|&b| b == b' ');
    let (method, path) = (
        words.next().unwrap_or_default(),
        words.next().unwrap_or_default(),
    );
    let path = path.split(|&b| b == b'?').next().unwrap_or_default();
    let (status, content_type, body) = match (complete, method, path) {
        (false, ..) => ("400 Bad Request", "text/plain", "bad request\n".to_string()),
        (true, b"GET", b"/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            ctx.metrics_text(),
        ),
        (true, b"GET", b"/healthz") => ("200 OK", "text/plain", "ok\n".to_string()),
        (true, b"GET", _) => ("404 Not Found", "text/plain", "not found\n".to_string()),
        (true, ..) => (
            "405 Method Not Allowed",
            "text/plain",
            "only GET\n".to_string(),
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    if write_all::<R>(stream, response.as_bytes()).await.is_ok() {
        let s = &mut *stream;
        let _ = poll_fn(move |cx| Transport::<R>::poll_shutdown(&*s, cx)).await;
    }
}

async fn write_all<R: Runtime>(stream: &mut R::Tcp, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        let s = &mut *stream;
        let n =
            poll_fn(move |cx| Transport::<R>::poll_write(&*s, cx, &[IoSlice::new(bytes)])).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        bytes = &bytes[n..];
    }
    poll_fn(move |cx| Transport::<R>::poll_flush(&*stream, cx)).await
}
