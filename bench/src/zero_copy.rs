//! Payload the load generator's core never copies, for the bulk measure.
//!
//! The backend and the load generator share one core, and in the bulk echo each
//! payload byte crosses it four times (the client's send, the backend's receive and
//! send, the client's receive), five with the backend's own copy. With a proxy between
//! them, that core ran out first: Switchyard's core was 0.88 busy when the load
//! generator's was full, so the measure showed the load generator, not the proxy.
//! Here the client sends its message from a memfd (`sendfile`), the backend echoes
//! payload through a pipe (`splice`), and the client drops what comes back into
//! `/dev/null` through a pipe: the pages move, the bytes are not copied. Frame headers
//! still go through user space, so every message is still checked.
//!
//! Linux only, like the rest of the bench (it reads `/proc`).

use rustix::fs::{memfd_create, sendfile, MemfdFlags};
use rustix::pipe::{fcntl_setpipe_size, pipe_with, splice, PipeFlags, SpliceFlags};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use tokio::io::Interest;
use tokio::net::TcpStream;

/// How much a pipe holds: one 64 KiB message and its header in one move.
const PIPE_SIZE: usize = 1 << 20;

/// A pipe to move bytes through without copying them.
pub struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl Pipe {
    pub fn new() -> io::Result<Pipe> {
        let (read, write) = pipe_with(PipeFlags::NONBLOCK | PipeFlags::CLOEXEC)?;
        // A larger pipe needs fewer moves; the default (64 KiB) still works.
        let _ = fcntl_setpipe_size(&write, PIPE_SIZE);
        Ok(Pipe { read, write })
    }

    /// Moves at most `max` bytes from `stream` into the pipe; 0 at EOF.
    async fn fill(&self, stream: &TcpStream, max: usize) -> io::Result<usize> {
        let flags = SpliceFlags::NONBLOCK | SpliceFlags::MOVE;
        loop {
            stream.readable().await?;
            let moved = stream.try_io(Interest::READABLE, || {
                Ok(splice(stream, None, &self.write, None, max, flags)?)
            });
            match moved {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return other,
            }
        }
    }

    /// Sends `len` bytes held in the pipe into `stream`.
    async fn drain_into(&self, stream: &TcpStream, mut len: usize) -> io::Result<()> {
        let flags = SpliceFlags::NONBLOCK | SpliceFlags::MOVE;
        while len > 0 {
            stream.writable().await?;
            let moved = stream.try_io(Interest::WRITABLE, || {
                Ok(splice(&self.read, None, stream, None, len, flags)?)
            });
            match moved {
                Ok(n) => len -= n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Sends the next `len` bytes `stream` receives back into it (the backend's echo).
    pub async fn echo(&self, stream: &TcpStream, mut len: u64) -> io::Result<()> {
        while len > 0 {
            let n = self.fill(stream, clamp(len)).await?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.drain_into(stream, n).await?;
            len -= n as u64;
        }
        Ok(())
    }

    /// Receives the next `len` bytes from `stream` and drops them into `sink`.
    pub async fn discard(&self, stream: &TcpStream, sink: &File, mut len: u64) -> io::Result<()> {
        while len > 0 {
            let n = self.fill(stream, clamp(len)).await?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let mut left = n;
            while left > 0 {
                // `/dev/null` is always ready; the pipe holds `left` bytes.
                left -= splice(&self.read, None, sink, None, left, SpliceFlags::MOVE)?;
            }
            len -= n as u64;
        }
        Ok(())
    }
}

fn clamp(len: u64) -> usize {
    usize::try_from(len).unwrap_or(usize::MAX).min(PIPE_SIZE)
}

/// `/dev/null`, to drop bytes into.
pub fn sink() -> io::Result<File> {
    File::options().write(true).open("/dev/null")
}

/// Bytes sent again and again from memory the kernel can hand to the socket as is.
pub struct Message {
    file: OwnedFd,
    len: u64,
}

impl Message {
    pub fn new(bytes: &[u8]) -> io::Result<Message> {
        let file = memfd_create("bench-message", MemfdFlags::CLOEXEC)?;
        let mut writer = File::from(file);
        writer.write_all(bytes)?;
        Ok(Message {
            file: writer.into(),
            len: bytes.len() as u64,
        })
    }

    /// Sends the whole message.
    pub async fn send(&self, stream: &TcpStream) -> io::Result<()> {
        let mut offset = 0u64;
        while offset < self.len {
            stream.writable().await?;
            let left = clamp(self.len - offset);
            let sent = stream.try_io(Interest::WRITABLE, || {
                Ok(sendfile(
                    stream,
                    self.file.as_fd(),
                    Some(&mut offset),
                    left,
                )?)
            });
            match sent {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        (client.unwrap(), accepted.unwrap().0)
    }

    #[tokio::test]
    async fn a_message_sent_twice_comes_back_whole_through_the_echo() {
        let (client, server) = pair().await;
        let bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let message = Message::new(&bytes).unwrap();
        let echo = tokio::spawn(async move {
            let pipe = Pipe::new().unwrap();
            pipe.echo(&server, 2 * 300_000).await.unwrap();
            server
        });
        let (mut reader, writer) = client.into_split();
        let sending = tokio::spawn(async move {
            message.send(writer.as_ref()).await.unwrap();
            message.send(writer.as_ref()).await.unwrap();
            writer
        });
        let mut back = vec![0; 2 * 300_000];
        reader.read_exact(&mut back).await.unwrap();
        assert_eq!(back, [&bytes[..], &bytes[..]].concat());
        let _ = (echo.await.unwrap(), sending.await.unwrap());
    }

    #[tokio::test]
    async fn discard_drops_exactly_the_bytes_asked() {
        let (client, mut server) = pair().await;
        server.write_all(&vec![7u8; 200_000]).await.unwrap();
        server.write_all(b"END").await.unwrap();
        let pipe = Pipe::new().unwrap();
        pipe.discard(&client, &sink().unwrap(), 200_000)
            .await
            .unwrap();
        let mut rest = [0u8; 3];
        let mut client = client;
        client.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"END");
    }
}
