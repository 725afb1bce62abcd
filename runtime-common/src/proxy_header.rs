//! Reading the PROXY protocol header off a fresh connection, for a listener with
//! `proxy_protocol` (the format and its checks are the core's: `proxy_core::proxy_protocol`).
//!
//! Nothing past the header may be taken: what follows is the client's (a request, or
//! a TLS handshake that rustls must see whole). So it peeks, and consumes only bytes
//! the core says are header: all it saw while the header is partial (then the next
//! peek waits for new bytes rather than returning the same ones), and exactly the
//! header's length once it is whole.

use crate::runtime::{Runtime, Transport};
use proxy_core::proxy_protocol::{self, Parsed, Source};
use std::future::poll_fn;
use std::io;

/// How much one peek looks at: a whole version 1 header (107 bytes) and the usual
/// version 2 ones; longer ones take several.
const PEEK: usize = 512;

/// Reads the header at the start of `tcp`, leaving the bytes after it unread. (`&mut`
/// only so that the future is `Send` without the stream being `Sync`.)
pub(crate) async fn read<R: Runtime>(tcp: &mut R::Tcp) -> io::Result<Source> {
    let mut seen = Vec::new();
    let mut peeked = vec![0; PEEK];
    loop {
        let peek = R::peek(tcp, &mut peeked);
        let n = peek.await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        seen.extend_from_slice(&peeked[..n]);
        let consumed = seen.len() - n;
        match proxy_protocol::parse(&seen) {
            Ok(Parsed::Header { len, source }) => {
                consume::<R>(tcp, len.saturating_sub(consumed)).await?;
                return Ok(source);
            }
            Ok(Parsed::Partial) => consume::<R>(tcp, n).await?,
            Err(invalid) => return Err(io::Error::new(io::ErrorKind::InvalidData, invalid)),
        }
    }
}

/// Reads and drops exactly `n` bytes (already peeked, so they are there).
async fn consume<R: Runtime>(tcp: &mut R::Tcp, mut n: usize) -> io::Result<()> {
    while n > 0 {
        let tcp = &mut *tcp;
        let read = poll_fn(move |cx| tcp.poll_read(cx, n)).await?;
        if read.is_empty() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        n -= read.len().min(n);
    }
    Ok(())
}
