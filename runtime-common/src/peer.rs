//! One side of a session: its stream, the bytes queued for it, and how far its
//! shutdown has got. No protocol here, only socket bookkeeping.

use crate::pipe::Pipe;
use crate::runtime::Transport;
use crate::write_queue::WriteQueue;
use bytes::{Buf, Bytes};
use smallvec::SmallVec;
use std::io::{self, IoSlice};
use std::task::{ready, Context, Poll};

/// Most queued buffers handed to one vectored write.
const MAX_IOVECS: usize = 8;

/// Queued buffers this small in all are copied into one and written with a single
/// `send`: an HTTP response's head and short body (two buffers) cost the kernel less
/// that way than as a `writev`. A short buffer sent behind a single short one is
/// joined to it at once (see [`WriteQueue`]).
const JOIN_UP_TO: usize = 2048;

/// A stream and the bookkeeping for it.
pub(crate) struct Peer<T> {
    pub(crate) io: T,
    pub(crate) state: State,
}

/// Everything about a side that does not depend on the kind of stream.
#[derive(Default)]
pub(crate) struct State {
    queue: WriteQueue,
    /// A pipe holding bytes for this side, written before anything queued. Held only
    /// while it has some.
    piped: Option<Piped>,
    /// Of the piped bytes, the prefix at the front that was moved from the queue and
    /// already reported written ([`queue_into_pipe`](Self::queue_into_pipe)). While it
    /// is all the pipe holds, the pipe is open: the bytes passed next go in behind it.
    /// (Here rather than in [`Piped`], where it would cost every session 16 bytes.)
    piped_reported: u8,
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
    /// The peer was sent an acknowledgement at once, which a listener that defers
    /// them does once per client connection (see `acks.rs`). Here rather than in the
    /// drive loop's own state, where it would cost every session 8 bytes.
    pub(crate) acknowledged_at_once: bool,
}

/// Most queued bytes [`State::queue_into_pipe`] moves: a WebSocket frame header's
/// worth. Expecting a large frame, the session reads no more than a header (14 bytes)
/// at a time, so a header and the payload bytes read with it fit; a longer queue is
/// not a header waiting for its payload, and checking for it would only cost every
/// small message.
pub(crate) const PIPE_PREFIX_MAX: usize = 16;

/// Bytes held in a pipe for a side: moved from the other side's socket
/// ([`State::filled`]), behind a short prefix of the queue, if any
/// ([`State::queue_into_pipe`]).
pub(crate) struct Piped {
    pipe: Pipe,
    /// Bytes in it, still to be written.
    left: u32,
}

impl Piped {
    pub(crate) fn pipe(&self) -> &Pipe {
        &self.pipe
    }

    /// Whether it holds no bytes (a pipe just taken for a pass).
    pub(crate) fn is_empty(&self) -> bool {
        self.left == 0
    }
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
            // A buffer written in part is not joined to: `front_written` counts the
            // part of its allocation it still holds.
            let join_up_to = match self.front_written {
                0 => JOIN_UP_TO,
                _ => 0,
            };
            self.queue.push_back(bytes, join_up_to);
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

    /// A pipe to move bytes into for this side, if they could overtake nothing: the
    /// queue is empty, and there is no pipe or only an open one (holding a prefix of
    /// the queue). Given back with [`filled`](Self::filled).
    pub(crate) fn take_pipe(&mut self) -> Option<Piped> {
        if self.failed || !self.queue.is_empty() {
            return None;
        }
        match self.has_open_pipe() {
            true => self.piped.take(),
            false if self.piped.is_some() => None,
            false => Pipe::take().map(|pipe| Piped { pipe, left: 0 }),
        }
    }

    /// The pipe from [`take_pipe`](Self::take_pipe) now holds `n` more bytes for this
    /// side (the session was told they passed). Kept while it holds any.
    pub(crate) fn filled(&mut self, mut piped: Piped, n: usize) {
        piped.left = piped
            .left
            .saturating_add(u32::try_from(n).unwrap_or(u32::MAX)); // n <= MAX_READ
        match piped.left {
            0 => piped.pipe.give_back(),
            _ => self.piped = Some(piped),
        }
    }

    /// Moves a short queue (at most [`PIPE_PREFIX_MAX`] bytes in two buffers: a header,
    /// and payload read with it) into a new, open pipe,
    /// for bytes about to pass to go in behind it
    /// ([`Session::passes_once_sent`](proxy_core::Session::passes_once_sent)); how
    /// many bytes it moved, which the session may now take as written. `None` if the
    /// queue is empty or longer, a pipe is held already, or none can be had.
    pub(crate) fn queue_into_pipe(&mut self) -> Option<usize> {
        if !self.can_lead_a_pass() {
            return None;
        }
        let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
        let count = self.queue_slices(&mut slices);
        let slices = &slices[..count];
        let len: usize = slices.iter().map(|s| s.len()).sum();
        let pipe = Pipe::take()?;
        if pipe.put(slices).ok()? != len {
            return None; // never, into an empty pipe; the pipe is closed, not reused
        }
        let len_u8 = u8::try_from(len).unwrap_or(u8::MAX); // len <= PIPE_PREFIX_MAX
        self.piped = Some(Piped {
            pipe,
            left: u32::from(len_u8),
        });
        self.piped_reported = len_u8;
        self.queue.clear();
        self.front_written = 0;
        Some(len)
    }

    /// Points `slices` at the front of the queue; how many it filled.
    fn queue_slices<'a>(&'a self, slices: &mut [IoSlice<'a>; MAX_IOVECS]) -> usize {
        (slices.iter_mut().zip(self.queue.iter()))
            .map(|(slice, bytes)| *slice = IoSlice::new(bytes))
            .count()
    }

    /// Whether [`queue_into_pipe`](Self::queue_into_pipe) would move the queue: it is
    /// short, and no pipe is held.
    pub(crate) fn can_lead_a_pass(&self) -> bool {
        let len = |i| self.queue.get(i).map_or(0, Bytes::len);
        !self.failed
            && self.piped.is_none()
            && matches!(self.queue.len(), 1 | 2)
            && len(0) + len(1) <= PIPE_PREFIX_MAX
    }

    /// Whether this side holds an open pipe (see [`queue_into_pipe`](Self::queue_into_pipe)).
    pub(crate) fn has_open_pipe(&self) -> bool {
        (self.piped.as_ref()).is_some_and(|p| p.left == u32::from(self.piped_reported))
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

    /// Records what [`Peer::poll_write_step`] achieved; how many of the bytes written
    /// the session has yet to hear of (a pipe's prefix was reported when it was moved).
    pub(crate) fn wrote(&mut self, wrote: &Wrote) -> usize {
        match *wrote {
            Wrote::Bytes(n) if self.piped.is_some() => {
                let Some(mut piped) = self.piped.take() else {
                    return 0;
                };
                let n = u32::try_from(n).unwrap_or(u32::MAX);
                let known = n.min(u32::from(self.piped_reported));
                self.piped_reported -= known as u8; // known <= piped_reported
                piped.left = piped.left.saturating_sub(n);
                match piped.left {
                    0 => piped.pipe.give_back(),
                    _ => self.piped = Some(piped),
                }
                (n - known) as usize
            }
            Wrote::Bytes(written) => {
                self.dirty = self.buffers_writes;
                let mut n = written;
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
                written
            }
            Wrote::Nothing if self.dirty => {
                self.dirty = false;
                0
            }
            Wrote::Nothing => {
                self.shutdown = Shutdown::Done;
                0
            }
        }
    }

    /// Marks the stream dead: nothing more is read from it or written to it.
    pub(crate) fn fail(&mut self) {
        self.failed = true;
        self.piped = None; // closed: it may hold bytes nobody will take
        self.piped_reported = 0;
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
        if let Some(piped) = &state.piped {
            let written = ready!(self
                .io
                .poll_splice_out(cx, &piped.pipe, piped.left as usize));
            return Poll::Ready(took(written));
        }
        if !state.queue.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let count = state.queue_slices(&mut slices);
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
                Ok(wrote) => {
                    self.state.wrote(&wrote);
                }
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
        let piped = s.take_pipe().expect("a pipe");
        s.filled(piped, 1000);
        assert!(s.busy() && !s.reusable() && s.take_pipe().is_none());
        // Frames the session sends meanwhile queue behind the piped bytes.
        s.send(Bytes::from_static(b"ping"));
        assert_eq!(s.wrote(&Wrote::Bytes(600)), 600);
        assert_eq!(s.piped.as_ref().map(|p| p.left), Some(400));
        assert_eq!(queued(&s), [&b"ping"[..]]);
        assert_eq!(s.wrote(&Wrote::Bytes(400)), 400);
        assert!(s.piped.is_none(), "the emptied pipe went back to the pool");
        assert_eq!(queued(&s), [&b"ping"[..]], "the queue waited for the pipe");
        assert!(
            s.take_pipe().is_none(),
            "passed bytes would overtake the queue"
        );
        assert_eq!(s.wrote(&Wrote::Bytes(4)), 4);
        assert!(!s.busy() && s.reusable() && s.take_pipe().is_some());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_failed_side_drops_its_pipe() {
        let mut s = state(false);
        let piped = s.take_pipe().unwrap();
        s.filled(piped, 10);
        s.fail();
        assert!(s.piped.is_none() && !s.busy() && s.take_pipe().is_none());
    }

    /// A short queue goes into the pipe ahead of the bytes passed behind it, and the
    /// session hears of its writing once, when it was moved.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_short_queue_leads_the_passed_bytes_in_one_pipe_and_is_reported_once() {
        use std::io::{Read, Write};
        use std::os::unix::net::UnixStream;
        let (mut from_peer, from) = UnixStream::pair().unwrap();
        let (to, mut to_peer) = UnixStream::pair().unwrap();
        from.set_nonblocking(true).unwrap();
        let mut s = state(false);
        s.send(Bytes::from_static(b"\x82\x7e"));
        s.send(Bytes::from_static(b"\x00\x64"));
        assert_eq!(
            s.queue_into_pipe(),
            Some(4),
            "moved, to be reported written"
        );
        assert!(s.busy() && s.has_open_pipe() && queued(&s).is_empty());
        let payload = [7u8; 100];
        from_peer.write_all(&payload).unwrap();
        let piped = s.take_pipe().expect("the open pipe");
        assert_eq!(piped.pipe().fill_from(&from, 100).unwrap(), 100);
        s.filled(piped, 100);
        assert!(
            !s.has_open_pipe() && s.take_pipe().is_none(),
            "closed once passed into"
        );
        let pipe = &s.piped.as_ref().unwrap().pipe;
        assert_eq!(pipe.drain_into(&to, 60).unwrap(), 60);
        assert_eq!(
            s.wrote(&Wrote::Bytes(60)),
            56,
            "less the 4 already reported"
        );
        let pipe = &s.piped.as_ref().unwrap().pipe;
        assert_eq!(pipe.drain_into(&to, 44).unwrap(), 44);
        assert_eq!(s.wrote(&Wrote::Bytes(44)), 44);
        assert!(!s.busy());
        let mut got = [0u8; 104];
        to_peer.read_exact(&mut got).unwrap();
        assert_eq!(got[..4], *b"\x82\x7e\x00\x64");
        assert_eq!(got[4..], payload);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_prefix_that_nothing_followed_goes_out_alone_and_is_not_reported_again() {
        let mut s = state(false);
        s.send(Bytes::from_static(b"head"));
        assert_eq!(s.queue_into_pipe(), Some(4));
        let piped = s.take_pipe().unwrap();
        s.filled(piped, 0); // the pass found nothing
        assert!(s.has_open_pipe() && s.busy());
        assert_eq!(s.wrote(&Wrote::Bytes(3)), 0);
        assert_eq!(s.wrote(&Wrote::Bytes(1)), 0);
        assert!(s.piped.is_none() && !s.busy());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn only_a_short_queue_moves_into_a_pipe_and_only_into_a_new_one() {
        let mut s = state(false);
        assert_eq!(s.queue_into_pipe(), None, "nothing queued");
        s.send(Bytes::from(vec![1u8; PIPE_PREFIX_MAX + 1]));
        assert_eq!(
            s.queue_into_pipe(),
            None,
            "longer than a pipe takes at once"
        );
        assert_eq!(queued(&s)[0].len(), PIPE_PREFIX_MAX + 1, "left queued");
        let mut s = state(false);
        let piped = s.take_pipe().unwrap();
        s.filled(piped, 10);
        s.send(Bytes::from_static(b"ping"));
        assert_eq!(
            s.queue_into_pipe(),
            None,
            "it would overtake the piped bytes"
        );
        assert_eq!(queued(&s), [&b"ping"[..]]);
    }

    #[test]
    fn an_idle_side_keeps_no_queue_allocation() {
        let mut s = state(false);
        for _ in 0..100 {
            s.send(Bytes::from(vec![b'x'; JOIN_UP_TO]));
        }
        assert!(s.queue.is_allocated());
        s.wrote(&Wrote::Bytes(100 * JOIN_UP_TO));
        assert!(s.queue.is_empty() && !s.queue.is_allocated());
    }

    #[test]
    fn the_written_part_of_a_buffer_is_held_until_the_rest_is_written() {
        let mut s = state(false);
        s.send(Bytes::from(vec![7u8; 1000]));
        s.send(Bytes::from(vec![8u8; JOIN_UP_TO]));
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
        s.wrote(&Wrote::Bytes(JOIN_UP_TO - 100));
        assert_eq!(s.written_but_held(), 0);
        assert!(!s.busy());
    }

    #[test]
    fn a_short_send_joins_a_single_short_buffer_unless_it_is_written_in_part() {
        let mut s = state(false);
        s.send(Bytes::from_static(b"HTTP/1.1 200 OK\r\n\r\n"));
        s.send(Bytes::from_static(b"hello"));
        assert_eq!(queued(&s), [&b"HTTP/1.1 200 OK\r\n\r\nhello"[..]]);
        assert!(!s.queue.is_allocated());
        s.wrote(&Wrote::Bytes(4));
        assert_eq!(s.written_but_held(), 4);
        s.send(Bytes::from_static(b"next"));
        assert_eq!(
            queued(&s),
            [&b"/1.1 200 OK\r\n\r\nhello"[..], b"next"],
            "queued behind, so that the held part stays counted until written"
        );
        assert_eq!(s.written_but_held(), 4);
        s.wrote(&Wrote::Bytes(24));
        assert!(!s.busy() && s.written_but_held() == 0);
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
