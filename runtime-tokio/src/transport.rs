//! The sockets under the drive loop: one small trait, two implementations.
//!
//! The loop waits on a read and a write of the same stream at once, so every method
//! takes `&self`. A plain [`TcpStream`] has that natively (readiness, then `try_*`).
//! Any other stream (TLS, a Unix socket, an in-memory duplex) goes through
//! [`Shared`], which locks it only for the length of one `poll_*` call.
//!
//! Both keep the rule that an idle connection holds no read buffer: the buffer is
//! taken only once bytes are there, and handed on as [`Bytes`].

use bytes::{Bytes, BytesMut};
use std::future::{poll_fn, Future};
use std::io::{self, IoSlice};
use std::pin::{pin, Pin};
use std::sync::Mutex;
use std::task::Poll;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::TcpStream;

/// A byte stream the drive loop can read and write concurrently.
pub(crate) trait Transport: Send + Sync {
    /// Waits for bytes, then reads at most `max` of them into a buffer taken for this
    /// read only. An empty result is EOF.
    fn read(&self, max: usize) -> impl Future<Output = io::Result<Bytes>> + Send;
    /// Writes a prefix of `bufs`; returns how many bytes the stream took.
    fn write(&self, bufs: &[IoSlice<'_>]) -> impl Future<Output = io::Result<usize>> + Send;
    /// Pushes out anything the stream buffered itself (a TLS record, say).
    fn flush(&self) -> impl Future<Output = io::Result<()>> + Send;
    /// Shuts the write half down (TCP FIN; TLS close_notify).
    fn shutdown(&self) -> impl Future<Output = io::Result<()>> + Send;
}

impl Transport for TcpStream {
    async fn read(&self, max: usize) -> io::Result<Bytes> {
        loop {
            self.readable().await?;
            let mut buf = BytesMut::with_capacity(max);
            match self.try_read_buf(&mut buf) {
                Ok(_) => return Ok(compact(buf)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }

    async fn write(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        loop {
            self.writable().await?;
            match self.try_write_vectored(bufs) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                result => return result,
            }
        }
    }

    async fn flush(&self) -> io::Result<()> {
        Ok(())
    }

    async fn shutdown(&self) -> io::Result<()> {
        socket2::SockRef::from(self).shutdown(std::net::Shutdown::Write)
    }
}

/// Any `AsyncRead + AsyncWrite` stream, shareable between a pending read and a
/// pending write. The lock is held only inside one `poll_*` call, never across an
/// await, so the two never wait for each other.
pub(crate) struct Shared<S>(Mutex<S>);

impl<S> Shared<S> {
    pub(crate) fn new(stream: S) -> Self {
        Shared(Mutex::new(stream))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, S> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Transport for Shared<S> {
    fn read(&self, max: usize) -> impl Future<Output = io::Result<Bytes>> + Send {
        poll_fn(move |cx| {
            // Taken per poll and dropped again if nothing is there: an idle stream
            // holds no buffer.
            let mut buf = BytesMut::with_capacity(max);
            let mut stream = self.lock();
            match pin!(stream.read_buf(&mut buf)).poll(cx) {
                Poll::Ready(Ok(_)) => Poll::Ready(Ok(compact(buf))),
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            }
        })
    }

    fn write(&self, bufs: &[IoSlice<'_>]) -> impl Future<Output = io::Result<usize>> + Send {
        poll_fn(move |cx| Pin::new(&mut *self.lock()).poll_write_vectored(cx, bufs))
    }

    fn flush(&self) -> impl Future<Output = io::Result<()>> + Send {
        poll_fn(move |cx| Pin::new(&mut *self.lock()).poll_flush(cx))
    }

    fn shutdown(&self) -> impl Future<Output = io::Result<()>> + Send {
        poll_fn(move |cx| Pin::new(&mut *self.lock()).poll_shutdown(cx))
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
