//! The sockets under the shared drive loop: [`Transport`] for tokio's streams.
//!
//! The loop polls a read and a write of the same stream at once, so every method
//! takes `&self`. A plain [`TcpStream`] has that natively (readiness, then `try_*`).
//! Any other stream (TLS, a Unix socket, an in-memory duplex) goes through
//! [`Shared`], which locks it only for the length of one `poll_*` call.
//!
//! Both keep the rule that an idle connection holds no read buffer: reads land in
//! this thread's scratch buffer (see [`read_via_scratch`]) and are handed on as
//! [`Bytes`].

use crate::runtime::Tokio;
use bytes::buf::Limit;
use bytes::{BufMut, Bytes, BytesMut};
use runtime_common::{send_before_fin, Pipe, Transport};
use std::cell::RefCell;
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
            // A short read emptied the socket: the closure reports `WouldBlock` after
            // keeping the bytes, so tokio clears the readiness now (as its own
            // `poll_read` does) and the next read waits for the reactor instead of
            // costing a `recvfrom` that fails with EAGAIN. (Readiness that came in
            // meanwhile is kept: tokio clears only the event it read under.)
            let mut short = None;
            let result = self.try_io(Interest::READABLE, || {
                let read = read_via_scratch(max, |buf| Poll::Ready(self.try_read_buf(buf)));
                let Poll::Ready(bytes) = read else {
                    return Err(io::ErrorKind::WouldBlock.into()); // never: `try_read` is not pending
                };
                let bytes = bytes?;
                if !bytes.is_empty() && bytes.len() < max {
                    short = Some(bytes);
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                Ok(bytes)
            });
            match (result, short) {
                (Ok(bytes), _) | (Err(_), Some(bytes)) => return Poll::Ready(Ok(bytes)),
                (Err(e), None) if e.kind() == io::ErrorKind::WouldBlock => continue, // re-arms the waker
                (Err(e), None) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn poll_write(&self, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
        // One buffer (the common case: a relayed chunk) goes out with `send`, which
        // costs the kernel less than `writev`.
        when_ready(self, cx, TcpStream::poll_write_ready, || match bufs {
            [one] => self.try_write(one),
            _ => self.try_write_vectored(bufs),
        })
    }

    fn poll_write_before_shutdown(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        when_ready(self, cx, TcpStream::poll_write_ready, || {
            self.try_io(Interest::WRITABLE, || send_before_fin(self, bufs))
        })
    }

    fn poll_flush(&self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(&self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(socket2::SockRef::from(self).shutdown(std::net::Shutdown::Write))
    }

    fn acknowledge_now(&self) {
        runtime_common::acknowledge_now(self)
    }

    fn can_splice(&self) -> bool {
        cfg!(target_os = "linux")
    }

    /// Unlike `poll_read`, a short move does not clear the readiness: it may have been
    /// cut by the pipe's capacity with bytes still waiting in the socket.
    fn poll_splice_in(
        &self,
        cx: &mut Context<'_>,
        pipe: &Pipe,
        max: usize,
    ) -> Poll<io::Result<usize>> {
        when_ready(self, cx, TcpStream::poll_read_ready, || {
            self.try_io(Interest::READABLE, || pipe.fill_from(self, max))
        })
    }

    fn poll_splice_out(
        &self,
        cx: &mut Context<'_>,
        pipe: &Pipe,
        len: usize,
    ) -> Poll<io::Result<usize>> {
        when_ready(self, cx, TcpStream::poll_write_ready, || {
            self.try_io(Interest::WRITABLE, || pipe.drain_into(self, len))
        })
    }
}

/// Waits for `ready` (the socket's read or write readiness), then runs `op`, a
/// non-blocking attempt that clears the readiness when it would block; again until
/// `op` does not block.
fn when_ready<T>(
    stream: &TcpStream,
    cx: &mut Context<'_>,
    ready: fn(&TcpStream, &mut Context<'_>) -> Poll<io::Result<()>>,
    mut op: impl FnMut() -> io::Result<T>,
) -> Poll<io::Result<T>> {
    loop {
        ready!(ready(stream, cx))?;
        match op() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            result => return Poll::Ready(result),
        }
    }
}

/// Any `AsyncRead + AsyncWrite` stream (a TLS stream, a Unix socket, an in-memory
/// duplex), shareable between a pending read and a pending write. The lock is held
/// only inside one `poll_*` call, never across an await, so the two never wait for
/// each other.
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

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Transport<Tokio> for Shared<S> {
    const BUFFERS_WRITES: bool = true;

    fn poll_read(&self, cx: &mut Context<'_>, max: usize) -> Poll<io::Result<Bytes>> {
        let mut stream = self.lock();
        read_via_scratch(max, |buf| pin!(stream.read_buf(buf)).poll(cx))
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

    fn acknowledge_now(&self) {
        (self.acknowledge)(&self.lock())
    }
}

thread_local! {
    /// Where this thread's reads land. One per thread, not per connection: an idle
    /// connection holds no read buffer, and a small read allocates only its size.
    static SCRATCH: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// Runs `read` on at most `max` bytes of this thread's scratch buffer (uninitialised
/// spare capacity: nothing is zeroed) and hands on what it read. A read of less than
/// three quarters of the scratch is copied out at its exact size and the scratch is
/// kept; a larger one is handed on without a copy, and the scratch is replaced by the
/// next read that needs the room. Either way what is handed on holds at most 4/3 of
/// its size, so memory follows the bytes in flight, which the session bounds.
fn read_via_scratch(
    max: usize,
    read: impl FnOnce(&mut Limit<&mut BytesMut>) -> Poll<io::Result<usize>>,
) -> Poll<io::Result<Bytes>> {
    SCRATCH.with(|cell| {
        let mut own = BytesMut::new();
        let mut shared = cell.try_borrow_mut();
        // Only a read inside a read could find it borrowed; it gets a buffer of its own.
        let scratch = shared.as_deref_mut().unwrap_or(&mut own);
        if scratch.capacity() < max {
            *scratch = BytesMut::with_capacity(max);
        }
        let n = ready!(read(&mut (&mut *scratch).limit(max)))?;
        let bytes = match n * 4 < scratch.capacity() * 3 {
            true => Bytes::copy_from_slice(&scratch[..n]),
            false => scratch.split_to(n).freeze(),
        };
        scratch.clear();
        Poll::Ready(Ok(bytes))
    })
}
