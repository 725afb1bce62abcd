//! One side of a session: its stream, the bytes queued for it, and how far its
//! shutdown has got. No protocol here, only socket bookkeeping.

use crate::pipe::Pipe;
use crate::runtime::Transport;
use bytes::{Buf, Bytes};
use smallvec::SmallVec;
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::task::{ready, Context, Poll};

/// Most queued buffers handed to one vectored write.
const MAX_IOVECS: usize = 8;

/// Queued buffers this small in all are copied into one and written with a single
/// `send`: an HTTP response's head and short body (two buffers) cost the kernel less
/// that way than as a `writev`.
const JOIN_UP_TO: usize = 2048;

/// A stream and the bookkeeping for it.
pub(crate) struct Peer<T> {
    pub(crate) io: T,
    pub(crate) state: State,
}

/// Everything about a side that does not depend on the kind of stream.
#[derive(Default)]
pub(crate) struct State {
    queue: VecDeque<Bytes>,
    /// A pipe holding bytes moved from the other side's socket for this side
    /// ([`filled`](Self::filled)), and how many: written before anything queued.
    /// Held only while it has some.
    piped: Option<(Pipe, u32)>,
    /// Bytes written off the front buffer that its allocation still holds. (Both
    /// counts are `u32`, to keep every session's task small; each stays within a
    /// buffer, far below 4 GiB.)
    front_written: u32,
    /// The stream may hold written bytes until flushed (TLS); see `dirty`.
    buffers_writes: bool,
    /// Bytes were written since the last flush.
    dirty: bool,
    shutdown: Shutdown,
    /// Read returned 0: never read again (its readiness would fire forever).
    pub(crate) eof: bool,
    /// A read or write failed: the stream is dead both ways.
    failed: bool,
}

#[derive(Default, PartialEq, Eq)]
enum Shutdown {
    #[default]
    No,
    /// Asked for; happens once the queue is written.
    Pending,
    Done,
}

/// What one step of writing achieved.
pub(crate) enum Wrote {
    /// This many bytes of the queue were taken.
    Bytes(usize),
    /// A flush or shutdown finished; nothing to report to the session.
    Nothing,
}

impl State {
    /// Whether reading this side could still produce anything.
    pub(crate) fn readable(&self) -> bool {
        !self.eof && !self.failed
    }

    pub(crate) fn send(&mut self, bytes: Bytes) {
        if !self.failed && !bytes.is_empty() {
            self.queue.push_back(bytes);
        }
    }

    pub(crate) fn shutdown_after_queue(&mut self) {
        if self.shutdown == Shutdown::No {
            self.shutdown = Shutdown::Pending;
        }
    }

    /// Prepares the stream to be dropped once its queue is written. A stream that
    /// buffers writes (TLS) still shuts down, which sends its close_notify; a plain
    /// socket needs no `shutdown` call, not even one the session asked for just
    /// before closing, since closing it sends the FIN anyway.
    pub(crate) fn finish_before_drop(&mut self) {
        if self.buffers_writes {
            self.shutdown_after_queue();
        } else if self.shutdown == Shutdown::Pending {
            self.shutdown = Shutdown::No;
        }
    }

    /// Whether there is writing, flushing or a shutdown still to do.
    pub(crate) fn busy(&self) -> bool {
        !self.failed
            && (self.piped.is_some()
                || !self.queue.is_empty()
                || self.dirty
                || self.shutdown == Shutdown::Pending)
    }

    /// Whether bytes may be moved into a pipe for this side now: nothing else is
    /// waiting to be written to it, so they cannot overtake anything.
    pub(crate) fn can_take_piped(&self) -> bool {
        !self.failed && self.piped.is_none() && self.queue.is_empty()
    }

    /// `pipe` now holds `n` bytes for this side (the session was told they passed).
    pub(crate) fn filled(&mut self, pipe: Pipe, n: usize) {
        if n > 0 {
            self.piped = Some((pipe, u32::try_from(n).unwrap_or(u32::MAX))); // n <= MAX_READ
        }
    }

    /// Memory the queue holds beyond its unwritten bytes: the written part of a buffer
    /// a write took only in part, which stays allocated until the rest is written. The
    /// session's flow control counts only unwritten bytes, so the reads towards this
    /// side are cut by this much: otherwise a peer that stops reading mid-buffer would
    /// hold up to twice `buffer_size` in the proxy.
    pub(crate) fn written_but_held(&self) -> usize {
        self.front_written as usize
    }

    /// Whether the connection can carry another request: all written, nothing
    /// broken, open both ways.
    pub(crate) fn reusable(&self) -> bool {
        self.piped.is_none()
            && self.queue.is_empty()
            && !self.failed
            && !self.eof
            && self.shutdown == Shutdown::No
    }

    /// Records what [`Peer::poll_write_step`] achieved.
    pub(crate) fn wrote(&mut self, wrote: &Wrote) {
        match *wrote {
            Wrote::Bytes(n) if self.piped.is_some() => {
                if let Some((pipe, left)) = self.piped.take() {
                    match left.saturating_sub(u32::try_from(n).unwrap_or(u32::MAX)) {
                        0 => pipe.give_back(),
                        left => self.piped = Some((pipe, left)),
                    }
                }
            }
            Wrote::Bytes(mut n) => {
                self.dirty = self.buffers_writes;
                while let (true, Some(front)) = (n > 0, self.queue.front_mut()) {
                    let taken = n.min(front.len());
                    front.advance(taken);
                    n -= taken;
                    let taken_u32 = u32::try_from(taken).unwrap_or(u32::MAX);
                    self.front_written = self.front_written.saturating_add(taken_u32);
                    if front.is_empty() {
                        self.queue.pop_front();
                        self.front_written = 0;
                    }
                }
                if self.queue.is_empty() {
                    self.queue = VecDeque::new(); // an idle side keeps no queue allocation
                }
            }
            Wrote::Nothing if self.dirty => self.dirty = false,
            Wrote::Nothing => self.shutdown = Shutdown::Done,
        }
    }

    /// Marks the stream dead: nothing more is read from it or written to it.
    pub(crate) fn fail(&mut self) {
        self.failed = true;
        self.piped = None; // closed: it may hold bytes nobody will take
        self.queue.clear();
        self.front_written = 0;
    }
}

/// What a write of queued or piped bytes achieved; taking none is an error.
fn took(written: io::Result<usize>) -> io::Result<Wrote> {
    match written {
        Ok(0) => Err(io::ErrorKind::WriteZero.into()),
        Ok(n) => Ok(Wrote::Bytes(n)),
        Err(e) => Err(e),
    }
}

/// Whether these buffers fit in one of [`JOIN_UP_TO`] bytes.
fn fits(slices: &[IoSlice<'_>]) -> bool {
    slices.iter().map(|s| s.len()).sum::<usize>() <= JOIN_UP_TO
}

/// Room on the stack for buffers that [`fit`](fits), left uninitialised: zeroing all
/// [`JOIN_UP_TO`] bytes would cost more than the copy. Filled in place by [`join`]
/// (returned by value, it would be copied whole).
type Joined = SmallVec<[u8; JOIN_UP_TO]>;

/// Copies buffers that [`fit`](fits) into `joined`; what they fill of it.
fn join<'a>(slices: &[IoSlice<'_>], joined: &'a mut Joined) -> &'a [u8] {
    for slice in slices {
        joined.extend_from_slice(slice);
    }
    joined
}

impl<T> Peer<T> {
    pub(crate) fn new<R>(io: T) -> Self
    where
        T: Transport<R>,
    {
        let state = State {
            buffers_writes: io.buffers_writes(),
            ..State::default()
        };
        Peer { io, state }
    }

    /// Does the next piece of [`State::busy`] work. The state changes only in
    /// [`State::wrote`], after this returns.
    pub(crate) fn poll_write_step<R>(&self, cx: &mut Context<'_>) -> Poll<io::Result<Wrote>>
    where
        T: Transport<R>,
    {
        let state = &self.state;
        if let Some((pipe, left)) = &state.piped {
            let written = ready!(self.io.poll_splice_out(cx, pipe, *left as usize));
            return Poll::Ready(took(written));
        }
        if !state.queue.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let count = slices
                .iter_mut()
                .zip(&state.queue)
                .map(|(slice, bytes)| *slice = IoSlice::new(bytes))
                .count();
            // The last bytes before a shutdown may go out with the FIN.
            let last = state.shutdown == Shutdown::Pending && count == state.queue.len();
            let mut write = |bufs: &[IoSlice<'_>]| match last {
                true => self.io.poll_write_before_shutdown(cx, bufs),
                false => self.io.poll_write(cx, bufs),
            };
            let written = match count > 1 && fits(&slices[..count]) {
                true => {
                    let mut joined = Joined::new();
                    let one = IoSlice::new(join(&slices[..count], &mut joined));
                    ready!(write(&[one]))
                }
                false => ready!(write(&slices[..count])),
            };
            return Poll::Ready(took(written));
        }
        match state.dirty {
            true => ready!(self.io.poll_flush(cx))?,
            false => ready!(self.io.poll_shutdown(cx))?,
        }
        Poll::Ready(Ok(Wrote::Nothing))
    }

    /// Writes out what is queued (and shuts down if asked), as far as it goes; ready
    /// when nothing is left to do or the stream failed.
    pub(crate) fn poll_flush_all<R>(&mut self, cx: &mut Context<'_>) -> Poll<()>
    where
        T: Transport<R>,
    {
        while self.state.busy() {
            match ready!(self.poll_write_step(cx)) {
                Ok(wrote) => self.state.wrote(&wrote),
                Err(_) => self.state.fail(),
            }
        }
        Poll::Ready(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(buffers_writes: bool) -> State {
        State {
            buffers_writes,
            ..State::default()
        }
    }

    fn queued(state: &State) -> Vec<&[u8]> {
        state.queue.iter().map(|b| &b[..]).collect()
    }

    /// A stream that takes at most `per_write` bytes per write and records each call.
    struct Recorder {
        per_write: usize,
        calls: std::sync::Mutex<Vec<&'static str>>,
    }

    impl Recorder {
        fn take(&self, call: &'static str, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
            self.calls.lock().unwrap().push(call);
            let len: usize = bufs.iter().map(|b| b.len()).sum();
            Poll::Ready(Ok(len.min(self.per_write)))
        }
    }

    impl Transport<()> for Recorder {
        const BUFFERS_WRITES: bool = false;
        fn poll_read(&self, _: &mut Context<'_>, _: usize) -> Poll<io::Result<Bytes>> {
            Poll::Pending
        }
        fn poll_write(&self, _: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
            self.take("write", bufs)
        }
        fn poll_write_before_shutdown(
            &self,
            _: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            self.take("last", bufs)
        }
        fn poll_flush(&self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(&self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.calls.lock().unwrap().push("shutdown");
            Poll::Ready(Ok(()))
        }
    }

    /// The calls made to write `sends` (and shut down, if `shut`) `per_write` bytes
    /// at a time.
    fn calls(sends: &[&'static [u8]], shut: bool, per_write: usize) -> Vec<&'static str> {
        let recorder = Recorder {
            per_write,
            calls: Default::default(),
        };
        let mut peer = Peer::new::<()>(recorder);
        for &bytes in sends {
            peer.state.send(Bytes::from_static(bytes));
        }
        if shut {
            peer.state.shutdown_after_queue();
        }
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(peer.poll_flush_all::<()>(&mut cx).is_ready());
        peer.io.calls.into_inner().unwrap()
    }

    #[test]
    fn only_the_writes_that_empty_the_queue_before_a_shutdown_may_hold_bytes_for_the_fin() {
        assert_eq!(calls(&[b"close frame"], false, 64), ["write"]);
        assert_eq!(calls(&[b"close frame"], true, 64), ["last", "shutdown"]);
        assert_eq!(
            calls(&[b"ab", b"cd"], true, 64),
            ["last", "shutdown"],
            "joined into one"
        );
        // Taken 4 bytes at a time: every write that covers the rest of the queue.
        assert_eq!(
            calls(&[b"0123456789"], true, 4),
            ["last", "last", "last", "shutdown"]
        );
    }

    #[test]
    fn written_bytes_are_taken_from_the_front_across_buffers() {
        let mut s = state(false);
        s.send(Bytes::from_static(b"abc"));
        s.send(Bytes::from_static(b"defg"));
        s.wrote(&Wrote::Bytes(4));
        assert_eq!(queued(&s), [&b"efg"[..]]);
        assert!(s.busy() && !s.reusable());
        s.wrote(&Wrote::Bytes(3));
        assert!(!s.busy() && s.reusable());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn piped_bytes_go_before_the_queue_and_the_pipe_is_held_only_while_it_has_some() {
        let mut s = state(false);
        assert!(s.can_take_piped());
        s.filled(Pipe::take().unwrap(), 1000);
        assert!(s.busy() && !s.reusable() && !s.can_take_piped());
        // Frames the session sends meanwhile queue behind the piped bytes.
        s.send(Bytes::from_static(b"ping"));
        s.wrote(&Wrote::Bytes(600));
        assert_eq!(s.piped.as_ref().map(|(_, left)| *left), Some(400));
        assert_eq!(queued(&s), [&b"ping"[..]]);
        s.wrote(&Wrote::Bytes(400));
        assert!(s.piped.is_none(), "the emptied pipe went back to the pool");
        assert_eq!(queued(&s), [&b"ping"[..]], "the queue waited for the pipe");
        s.wrote(&Wrote::Bytes(4));
        assert!(!s.busy() && s.reusable() && s.can_take_piped());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_failed_side_drops_its_pipe() {
        let mut s = state(false);
        s.filled(Pipe::take().unwrap(), 10);
        s.fail();
        assert!(s.piped.is_none() && !s.busy() && !s.can_take_piped());
    }

    #[test]
    fn an_idle_side_keeps_no_queue_allocation() {
        let mut s = state(false);
        for _ in 0..100 {
            s.send(Bytes::from_static(b"x"));
        }
        s.wrote(&Wrote::Bytes(100));
        assert_eq!(s.queue.capacity(), 0);
    }

    #[test]
    fn the_written_part_of_a_buffer_is_held_until_the_rest_is_written() {
        let mut s = state(false);
        s.send(Bytes::from(vec![7u8; 1000]));
        s.send(Bytes::from(vec![8u8; 500]));
        s.wrote(&Wrote::Bytes(400));
        assert_eq!(s.written_but_held(), 400);
        s.wrote(&Wrote::Bytes(200));
        assert_eq!(s.written_but_held(), 600);
        s.wrote(&Wrote::Bytes(500));
        assert_eq!(
            s.written_but_held(),
            100,
            "first buffer freed, 100 of the next written"
        );
        s.wrote(&Wrote::Bytes(400));
        assert_eq!(s.written_but_held(), 0);
        assert!(!s.busy());
    }

    #[test]
    fn small_buffers_are_joined_into_one_write_large_ones_are_not() {
        let (head, body) = (b"HTTP/1.1 200 OK\r\n\r\n".as_slice(), b"hello".as_slice());
        let two = [IoSlice::new(head), IoSlice::new(body)];
        assert!(fits(&two));
        let mut joined = Joined::new();
        assert_eq!(join(&two, &mut joined), [head, body].concat());
        assert!(!joined.spilled(), "joined on the stack");
        let big = vec![0u8; JOIN_UP_TO];
        assert!(!fits(&[IoSlice::new(head), IoSlice::new(&big)]));
    }

    #[test]
    fn empty_sends_queue_nothing() {
        let mut s = state(false);
        s.send(Bytes::new());
        assert!(!s.busy());
    }

    #[test]
    fn shutdown_waits_for_the_queue_then_is_done_once() {
        let mut s = state(false);
        s.send(Bytes::from_static(b"bye"));
        s.shutdown_after_queue();
        assert!(s.busy() && !s.reusable());
        s.wrote(&Wrote::Bytes(3));
        assert!(s.busy(), "the shutdown itself is still to do");
        s.wrote(&Wrote::Nothing);
        assert!(!s.busy() && !s.reusable());
    }

    #[test]
    fn a_buffering_stream_is_flushed_after_writes() {
        let mut s = state(true);
        s.send(Bytes::from_static(b"record"));
        s.wrote(&Wrote::Bytes(6));
        assert!(
            s.busy(),
            "written bytes may sit in the stream until flushed"
        );
        s.wrote(&Wrote::Nothing);
        assert!(!s.busy() && s.reusable());
    }

    #[test]
    fn a_plain_socket_is_only_flushed_before_it_is_dropped_a_tls_one_also_shut_down() {
        let mut plain = state(false);
        plain.send(Bytes::from_static(b"last"));
        plain.shutdown_after_queue(); // asked for just before the close
        plain.finish_before_drop();
        plain.wrote(&Wrote::Bytes(4));
        assert!(!plain.busy(), "nothing left: the close sends the FIN");
        let mut tls = state(true);
        tls.finish_before_drop();
        assert!(tls.busy(), "close_notify still to send");
    }

    #[test]
    fn a_failed_side_drops_its_queue_and_takes_nothing_more() {
        let mut s = state(false);
        s.send(Bytes::from_static(b"lost"));
        s.fail();
        s.send(Bytes::from_static(b"more"));
        assert!(!s.busy() && !s.readable() && !s.reusable());
    }

    #[test]
    fn a_side_that_read_eof_is_not_reusable() {
        let mut s = state(false);
        s.eof = true;
        assert!(!s.readable() && !s.reusable());
    }
}
