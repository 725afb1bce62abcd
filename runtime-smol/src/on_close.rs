//! [`OnClose`]: a stream whose close does one more thing, for streams whose own
//! `poll_close` does not end the write half.

use smol::io::{AsyncRead, AsyncWrite};
use std::io::{self, IoSlice, IoSliceMut};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

/// Wraps a stream so that closing it (`poll_close`, which is how the drive loop shuts
/// a side's write half down) also runs `on_close` once the stream's own close is done.
///
/// [`serve_connection`](crate::serve_connection) needs a close that ends the write
/// half, so the peer reads EOF while it can still send: that is what a half-closed
/// tunnel or a lingering close after an error response rely on. async-net's
/// `TcpStream` does that, and so do TLS streams over it. async-std's `TcpStream` (1.13)
/// only flushes on close; give it its shutdown:
///
/// ```
/// use runtime_smol::OnClose;
/// use std::net::Shutdown;
///
/// fn with_half_close(stream: async_std::net::TcpStream) -> impl smol::io::AsyncWrite {
///     OnClose::new(stream, |s: &mut async_std::net::TcpStream| s.shutdown(Shutdown::Write))
/// }
/// ```
#[derive(Debug)]
pub struct OnClose<S, F> {
    stream: S,
    on_close: F,
}

impl<S, F: FnMut(&mut S) -> io::Result<()>> OnClose<S, F> {
    /// `stream`, with `on_close` run after its own close.
    pub fn new(stream: S, on_close: F) -> Self {
        OnClose { stream, on_close }
    }

    /// The stream inside.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }
}

impl<S: AsyncRead + Unpin, F: Unpin> AsyncRead for OnClose<S, F> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }

    fn poll_read_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_read_vectored(cx, bufs)
    }
}

impl<S: AsyncWrite + Unpin, F: FnMut(&mut S) -> io::Result<()> + Unpin> AsyncWrite
    for OnClose<S, F>
{
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(Pin::new(&mut self.stream).poll_close(cx))?;
        let this = &mut *self;
        Poll::Ready((this.on_close)(&mut this.stream))
    }
}
