//! The sockets under the shared drive loop: [`Transport`] for tokio's streams.
//!
//! The loop polls a read and a write of the same stream at once, so every method
//! takes `&self`. A plain [`TcpStream`] has that natively (readiness, then `try_*`).
//! Any other stream (TLS, a Unix socket, an in-memory duplex) goes through
//! [`Shared`], which locks it only for the length of one `poll_*` call.
//!
//! Both keep the rule that an idle connection holds no read buffer: the buffer is
//! taken only once bytes are there, and handed on as [`Bytes`].

use crate::runtime::Tokio;
use bytes::{Bytes, BytesMut};
use runtime_common::Transport;
use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::{pin, Pin};
use std::sync::Mutex;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, Interest};
use tokio::net::TcpStream;

/// Readiness first, then `try_*`: nothing is allocated until bytes are there.
impl Transport<Tokio> for TcpStream {
    const BUFFERS_WRITES: bool = false;

    fn poll_read(&self, cx: &mut Context<'_>, max: usize) -> Poll<io::Result<Bytes>> {
        loop {
            ready!(self.poll_read_ready(cx))?;
            let mut buf = BytesMut::with_capacity(max);
            // A short read emptied the socket: the closure reports `WouldBlock` after
            // keeping the bytes, so tokio clears the readiness now (as its own
            // `poll_read` does) and the next read waits for the reactor instead of
            // costing a `recvfrom` that fails with EAGAIN. (Readiness that came in
            // meanwhile is kept: tokio clears only the event it read under.)
            let mut short = false;
            let result = self.try_io(Interest::READABLE, || {
                let n = self.try_read_buf(&mut buf)?;
                if n > 0 && n < max {
                    short = true;
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                Ok(n)
            });
            match result {
                Ok(_) => return Poll::Ready(Ok(compact(buf))),
                Err(_) if short => return Poll::Ready(Ok(compact(buf))),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue, // re-arms the waker
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn poll_write(&self, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.poll_write_ready(cx))?;
            match self.try_write_vectored(bufs) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                result => return Poll::Ready(result),
            }
        }
    }

    fn poll_flush(&self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(&self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(socket2::SockRef::from(self).shutdown(std::net::Shutdown::Write))
    }
}

/// Any `AsyncRead + AsyncWrite` stream (a TLS stream, a Unix socket, an in-memory
/// duplex), shareable between a pending read and a pending write. The lock is held
/// only inside one `poll_*` call, never across an await, so the two never wait for
/// each other.
pub struct Shared<S>(Mutex<S>);

impl<S> Shared<S> {
    pub(crate) fn new(stream: S) -> Self {
        Shared(Mutex::new(stream))
    }

    /// Runs `f` on the stream.
    pub fn with<T>(&self, f: impl FnOnce(&mut S) -> T) -> T {
        f(&mut self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, S> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Transport<Tokio> for Shared<S> {
    const BUFFERS_WRITES: bool = true;

    fn poll_read(&self, cx: &mut Context<'_>, max: usize) -> Poll<io::Result<Bytes>> {
        // Taken per poll and dropped again if nothing is there: an idle stream holds
        // no buffer. (`read_buf` fills the spare capacity without zeroing it.)
        let mut buf = BytesMut::with_capacity(max);
        let mut stream = self.lock();
        ready!(pin!(stream.read_buf(&mut buf)).poll(cx))?;
        Poll::Ready(Ok(compact(buf)))
    }

    fn poll_write(&self, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.lock()).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.lock()).poll_flush(cx)
    }

    fn poll_shutdown(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.lock()).poll_shutdown(cx)
    }
}

/// Hands on what was read without pinning a mostly empty buffer: a short read is
/// copied into an exact-size one, so memory follows bytes in flight, not reads.
fn compact(buf: BytesMut) -> Bytes {
    if buf.len() * 2 < buf.capacity() {
        Bytes::copy_from_slice(&buf)
    } else {
        buf.freeze()
    }
}
