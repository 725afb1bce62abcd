//! Zero-copy tunnels and bodies: bytes the session lets pass unseen
//! ([`Session::passthrough_room`](proxy_core::Session::passthrough_room): tunnel bytes,
//! and HTTP bodies that go on as they came) go from one socket into a pipe and from the
//! pipe into the other socket with `splice(2)`, so they never cross into user space.
//! A 64 KiB WebSocket message then costs the proxy two page moves per chunk instead of
//! two copies.
//!
//! A pipe is held only while bytes are in it: an idle tunnel holds none (pipes cost
//! two file descriptors each). Emptied pipes wait in a small per-thread pool for the
//! next chunk, since making one is a system call and dropping one is two more.
//!
//! A short send that the passed bytes follow (a WebSocket frame's header) is put into
//! the pipe ahead of them, so header and payload leave in one `splice`: one TCP
//! segment, where sending the header alone would cost the kernel a packet of its own.
//!
//! Linux only; elsewhere [`Pipe::take`] finds none and every byte is read as usual.

#[cfg(target_os = "linux")]
pub use linux::Pipe;
#[cfg(not(target_os = "linux"))]
pub use other::Pipe;

#[cfg(target_os = "linux")]
mod linux {
    use rustix::pipe::{pipe_with, splice, PipeFlags, SpliceFlags};
    use std::cell::RefCell;
    use std::io::{self, IoSlice};
    use std::os::fd::{AsFd, OwnedFd};

    /// Emptied pipes a thread keeps for reuse (two file descriptors each, so few).
    const POOL: usize = 8;

    thread_local! {
        static PIPES: RefCell<Vec<Pipe>> = const { RefCell::new(Vec::new()) };
    }

    /// A non-blocking pipe: the kernel-side buffer between two sockets.
    #[derive(Debug)]
    pub struct Pipe {
        read: OwnedFd,
        write: OwnedFd,
    }

    impl Pipe {
        /// An empty pipe from this thread's pool, or a new one; `None` if none can be
        /// made (out of file descriptors): the bytes are then read as usual.
        pub fn take() -> Option<Pipe> {
            let pooled = PIPES.with(|pool| pool.try_borrow_mut().ok()?.pop());
            pooled.or_else(|| {
                let (read, write) = pipe_with(PipeFlags::NONBLOCK | PipeFlags::CLOEXEC).ok()?;
                Some(Pipe { read, write })
            })
        }

        /// Gives back a pipe that is empty, to be reused; closes it if the pool is full.
        pub fn give_back(self) {
            PIPES.with(|pool| {
                if let Ok(mut pool) = pool.try_borrow_mut() {
                    if pool.len() < POOL {
                        pool.push(self);
                    }
                }
            });
        }

        /// Writes `bufs` into the pipe: all of them if the pipe is empty and they
        /// come to at most `PIPE_BUF` (4096) bytes, which a pipe takes in one piece.
        pub fn put(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            Ok(rustix::io::writev(&self.write, bufs)?)
        }

        /// Moves at most `max` bytes from `socket` into the pipe. `WouldBlock` when the
        /// socket has nothing (the pipe holds at most a short [`put`](Self::put) when
        /// this is called, and `max` is at most its capacity, or the move is
        /// partial). 0 is EOF.
        pub fn fill_from(&self, socket: impl AsFd, max: usize) -> io::Result<usize> {
            let flags = SpliceFlags::NONBLOCK | SpliceFlags::MOVE;
            Ok(splice(socket, None, &self.write, None, max, flags)?)
        }

        /// Moves at most `len` bytes from the pipe into `socket`; `WouldBlock` when the
        /// socket is full.
        pub fn drain_into(&self, socket: impl AsFd, len: usize) -> io::Result<usize> {
            let flags = SpliceFlags::NONBLOCK | SpliceFlags::MOVE;
            Ok(splice(&self.read, None, socket, None, len, flags)?)
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod other {
    /// No pipes off Linux: [`Pipe::take`] finds none.
    #[derive(Debug)]
    pub enum Pipe {}

    impl Pipe {
        /// Always `None` here.
        pub fn take() -> Option<Pipe> {
            None
        }

        /// Never called: no pipe exists.
        pub fn give_back(self) {}

        /// Never called: no pipe exists.
        pub fn put(&self, _: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
            match *self {}
        }

        /// Never called: no pipe exists.
        pub fn fill_from<S>(&self, _: S, _: usize) -> std::io::Result<usize> {
            match *self {}
        }

        /// Never called: no pipe exists.
        pub fn drain_into<S>(&self, _: S, _: usize) -> std::io::Result<usize> {
            match *self {}
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::Pipe;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    #[test]
    fn bytes_go_through_unchanged_and_an_empty_socket_would_block() {
        let (mut a, b) = UnixStream::pair().unwrap();
        let (c, mut d) = UnixStream::pair().unwrap();
        b.set_nonblocking(true).unwrap();
        c.set_nonblocking(true).unwrap();
        let pipe = Pipe::take().expect("a pipe");
        let err = pipe.fill_from(&b, 100).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
        a.write_all(b"hello, pipe").unwrap();
        assert_eq!(pipe.fill_from(&b, 5).unwrap(), 5);
        assert_eq!(pipe.drain_into(&c, 5).unwrap(), 5);
        let mut got = [0u8; 5];
        d.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hello");
        drop(a);
        assert_eq!(pipe.fill_from(&b, 100).unwrap(), 6);
        assert_eq!(pipe.fill_from(&b, 100).unwrap(), 0, "EOF");
        assert_eq!(pipe.drain_into(&c, 100).unwrap(), 6);
        let mut rest = [0u8; 6];
        d.read_exact(&mut rest).unwrap();
        assert_eq!(&rest, b", pipe");
    }

    #[test]
    fn given_back_pipes_are_reused() {
        let pipe = Pipe::take().unwrap();
        let fds = format!("{pipe:?}");
        pipe.give_back();
        assert_eq!(format!("{:?}", Pipe::take().unwrap()), fds);
    }
}
