//! The sockets under the shared drive loop: [`Transport`] for futures-io streams.
//!
//! The loop polls a read and a write of the same stream at once, so every method
//! takes `&self`. A TCP socket ([`Tcp`], async-io's `Async<TcpStream>`) has that
//! natively: `&Async<TcpStream>` reads and writes. Any other stream (TLS, async-std's
//! `TcpStream`, a Unix socket, an in-memory pipe) goes through [`Shared`], which locks
//! it only for the length of one `poll_*` call.
//!
//! On Linux a TCP socket also moves tunnel bytes through a pipe with `splice(2)`
//! (see `runtime_common`'s zero-copy tunnels); other streams read as usual.
//!
//! futures-io reads into initialized memory, so both read through one scratch buffer
//! per thread and hand on an exact-size copy of what came: an idle connection holds no
//! read buffer, and a read that finds nothing allocates nothing.

use crate::runtime::{Smol, Tcp};
use bytes::Bytes;
use runtime_common::{send_before_fin, Pipe, Transport, MAX_READ};
use smol::io::{AsyncRead, AsyncWrite};
use smol::Async;
use std::cell::RefCell;
use std::io::{self, IoSlice};
use std::net::{Shutdown, TcpStream};
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{ready, Context, Poll};

impl Transport<Smol> for Tcp {
    const BUFFERS_WRITES: bool = false;

    fn poll_read(&self, cx: &mut Context<'_>, max: usize) -> Poll<io::Result<Bytes>> {
        read_via_scratch(max, |buf| Pin::new(&mut &**self).poll_read(cx, buf))
    }

    fn poll_write(&self, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
        Pin::new(&mut &**self).poll_write_vectored(cx, bufs)
    }

    fn poll_write_before_shutdown(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        when_ready(self, cx, Async::poll_writable, || {
            send_before_fin(self.get_ref(), bufs)
        })
    }

    fn poll_flush(&self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(&self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.get_ref().shutdown(Shutdown::Write))
    }

    fn acknowledge_now(&self) {
        runtime_common::acknowledge_now(self.get_ref())
    }

    fn can_splice(&self) -> bool {
        cfg!(target_os = "linux")
    }

    fn poll_splice_in(
        &self,
        cx: &mut Context<'_>,
        pipe: &Pipe,
        max: usize,
    ) -> Poll<io::Result<usize>> {
        when_ready(self, cx, Async::poll_readable, || {
            pipe.fill_from(self.get_ref(), max)
        })
    }

    fn poll_splice_out(
        &self,
        cx: &mut Context<'_>,
        pipe: &Pipe,
        len: usize,
    ) -> Poll<io::Result<usize>> {
        when_ready(self, cx, Async::poll_writable, || {
            pipe.drain_into(self.get_ref(), len)
        })
    }
}

/// Runs `op`, a non-blocking attempt on `stream`, until it does not block, waiting
/// for `ready` (the socket's read or write readiness) after each time it does: as
/// async-io's own reads and writes.
fn when_ready<T>(
    stream: &Async<TcpStream>,
    cx: &mut Context<'_>,
    ready: fn(&Async<TcpStream>, &mut Context<'_>) -> Poll<io::Result<()>>,
    mut op: impl FnMut() -> io::Result<T>,
) -> Poll<io::Result<T>> {
    loop {
        match op() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            result => return Poll::Ready(result),
        }
        ready!(ready(stream, cx))?;
    }
}

/// Any futures-io stream (a TLS stream, async-std's `TcpStream`, a Unix socket),
/// shareable between a pending read and a pending write. The lock is held only inside
/// one `poll_*` call, never across an await, so the two never wait for each other.
/// Its `poll_close` is the shutdown of the write half.
pub struct Shared<S> {
    stream: Mutex<S>,
    /// What [`Transport::acknowledge_now`] does: a stream over a TCP socket (TLS) reaches
    /// the socket under it; any other, nothing.
    acknowledge: fn(&S),
}

impl<S> Shared<S> {
    pub(crate) fn new(stream: S) -> Self {
        Shared::acknowledging(stream, |_| {})
    }

    /// A stream whose [`Transport::acknowledge_now`] is `acknowledge`: a TLS stream's
    /// reaches the TCP socket under it, where the acknowledgement is held.
    pub(crate) fn acknowledging(stream: S, acknowledge: fn(&S)) -> Self {
        Shared {
            stream: Mutex::new(stream),
            acknowledge,
        }
    }

    /// Runs `f` on the stream.
    pub fn with<T>(&self, f: impl FnOnce(&mut S) -> T) -> T {
        f(&mut self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, S> {
        self.stream
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Transport<Smol> for Shared<S> {
    const BUFFERS_WRITES: bool = true;

    fn poll_read(&self, cx: &mut Context<'_>, max: usize) -> Poll<io::Result<Bytes>> {
        let mut stream = self.lock();
        read_via_scratch(max, |buf| Pin::new(&mut *stream).poll_read(cx, buf))
    }

    fn poll_write(&self, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.lock()).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.lock()).poll_flush(cx)
    }

    fn poll_shutdown(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.lock()).poll_close(cx)
    }

    fn acknowledge_now(&self) {
        (self.acknowledge)(&self.lock())
    }
}

/// A [`Tcp`] as a futures-io stream (what futures-rustls runs over); closing it
/// shuts its write half down.
#[derive(Debug)]
pub struct TcpIo(pub Tcp);

impl AsyncRead for TcpIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut &*self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TcpIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut &*self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut &*self.0).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.0.get_ref().shutdown(Shutdown::Write))
    }
}

thread_local! {
    /// Where this thread's reads land before they are copied out.
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; MAX_READ].into_boxed_slice());
}

/// Runs `read` on at most `max` bytes of this thread's scratch buffer and returns an
/// exact-size copy of what it read (empty at EOF).
fn read_via_scratch(
    max: usize,
    read: impl FnOnce(&mut [u8]) -> Poll<io::Result<usize>>,
) -> Poll<io::Result<Bytes>> {
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut scratch) => {
            let buf = &mut scratch[..max.min(MAX_READ)];
            let n = ready!(read(buf))?;
            Poll::Ready(Ok(Bytes::copy_from_slice(&buf[..n])))
        }
        // A stream whose read reads another of ours on this thread: rare; pay for it.
        Err(_) => {
            let mut buf = vec![0; max.min(MAX_READ)];
            let n = ready!(read(&mut buf))?;
            buf.truncate(n);
            Poll::Ready(Ok(Bytes::from(buf)))
        }
    })
}
