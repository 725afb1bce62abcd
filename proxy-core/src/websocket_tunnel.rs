//! A tunnel that knows it carries WebSocket frames (RFC 6455), so the proxy can keep it
//! alive with its own Pings and end it with a real Close frame instead of a bare TCP
//! close (which browsers report as 1006, with no reason).
//!
//! Rules, each enforced here:
//! - Frames are relayed untouched; the proxy inserts its own frames only at a frame
//!   boundary of the stream it inserts into, masked towards the upstream (the proxy is
//!   its client) and unmasked towards the client.
//! - `ping_interval`: a peer silent that long gets a Ping; the Pong answering it is
//!   consumed, any other Pong is forwarded. No answer within `pong_timeout`: the peer is
//!   dead, the other side gets Close 1011 (upstream dead) or 1001 (client gone).
//! - When the proxy ends the tunnel (idle timeout 1001, drain 1001, upstream vanished
//!   without a Close 1014, client vanished 1001), it sends Close to every live side it
//!   can reach at a boundary, stops relaying, and closes the connections when each has
//!   answered with its Close or at `fin`.
//! - A side that breaks RFC 6455 (a bad frame header, a Close with a code no peer may
//!   send or a reason that is not UTF-8), or a client whose message would pass
//!   `websocket.max_message_size`, has its connection failed (§7.1.7). What it
//!   sends from then on is dropped unread: it can no longer be read as frames. The
//!   other side gets Close 1001 (client gone) or 1014 (the upstream sent what no server
//!   may: the registry's "bad gateway"), and what it sent before its Close reply still
//!   reaches the failed side, as it would with no proxy in between (an echo of the
//!   last valid message, say). Then the failed side gets Close 1002 (1007 for the
//!   reason, 1009 for the message too big) and a FIN at once, and the tunnel ends at
//!   its EOF or at `fin`.
//! - A Close sent by a peer is forwarded untouched and the peers finish the handshake
//!   themselves; their EOFs then pass through as half-closes. Once both have sent
//!   Close, the proxy shuts the client's write half at once: towards the client it is
//!   the server, which closes TCP first (RFC 6455 §7.1.1), so the client's close does
//!   not wait on the upstream's. What a peer sends after its own Close is dropped
//!   (§5.5.1: nothing may follow it).

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;

use crate::io::{Output, Side, TunnelEnd};
use crate::outputs::Outputs;
use crate::timer::Timer;
use crate::websocket::{self, FrameRelay, Step};
use crate::Config;

/// Where the tunnel's sends go: straight into the session's output queue (so relaying
/// allocates nothing), counted per destination for flow control.
pub(crate) struct Sends<'a> {
    outputs: &'a mut Outputs,
    /// Bytes sent towards each side (by `Side::index`).
    pub(crate) bytes: [usize; 2],
}

impl<'a> Sends<'a> {
    pub(crate) fn new(outputs: &'a mut Outputs) -> Self {
        Sends {
            outputs,
            bytes: [0; 2],
        }
    }

    fn push(&mut self, to: Side, bytes: Bytes) {
        self.bytes[to.index()] += bytes.len();
        self.outputs.push_back(Output::Send(to, bytes));
    }
}

/// The proxy is ending the tunnel and waits for the peers' Close replies.
#[derive(Clone, Copy, Debug)]
struct Closing {
    /// Sides whose Close reply (or EOF) is still awaited.
    awaiting: [bool; 2],
    since: Instant,
    end: TunnelEnd,
}

/// WebSocket state of a tunnel; arrays are indexed by `Side::index`.
#[derive(Debug)]
pub(crate) struct WebSocketTunnel {
    /// Frame tracking of the bytes each side sends.
    relay: [FrameRelay; 2],
    /// The proxy's frames waiting for a boundary in the stream towards a side, in
    /// order. One deque for both sides, freed once sent: an idle tunnel holds none.
    inject: VecDeque<(Side, Bytes)>,
    /// The payload of the proxy's unanswered Ping to each side, and when it was sent.
    ping: [Option<([u8; 8], Option<Instant>)>; 2],
    /// When each side last sent anything.
    heard_at: [Instant; 2],
    /// Each side's read half ended.
    eof: [bool; 2],
    /// Each side sent a Close frame.
    close_seen: [bool; 2],
    /// A peer's Close was forwarded towards each side: nothing may follow it there.
    close_forwarded: [bool; 2],
    /// Each side broke RFC 6455: what it sends is no longer read as frames.
    failed: [bool; 2],
    /// The Close (its code) owed to a failed side, sent when the other side's stream
    /// towards it has ended: at that side's Close or EOF.
    owed: Option<(Side, u16)>,
    closing: Option<Closing>,
    /// xorshift state for Ping payloads and mask keys. These frames carry no
    /// attacker-chosen bytes, so predictable masks cannot be abused (RFC 6455 §10.3).
    rng: u64,
}

impl WebSocketTunnel {
    pub(crate) fn new(extensions: bool, now: Instant, seed: u64) -> Self {
        WebSocketTunnel {
            relay: [
                FrameRelay::new(true, extensions),
                FrameRelay::new(false, extensions),
            ],
            inject: VecDeque::new(),
            ping: [None, None],
            heard_at: [now; 2],
            eof: [false; 2],
            close_seen: [false; 2],
            close_forwarded: [false; 2],
            failed: [false; 2],
            owed: None,
            closing: None,
            rng: seed | 1,
        }
    }

    /// Relays bytes `from` one side; a protocol error, or a client's message over
    /// `websocket.max_message_size`, fails `from`'s connection.
    pub(crate) fn relay(
        &mut self,
        from: Side,
        mut input: Bytes,
        config: &Config,
        now: Instant,
        out: &mut Sends<'_>,
    ) {
        let to = from.peer();
        if self.failed[from.index()] {
            return;
        }
        if !input.is_empty() {
            self.heard_at[from.index()] = now;
        }
        // Only clients are held to it: the upstream is the application the proxy
        // protects, and a browser takes messages of any size.
        let max_message = match (from, config.websocket.max_message_size) {
            (Side::Client, limit) if limit > 0 => limit,
            _ => websocket::NO_MESSAGE_LIMIT,
        };
        loop {
            match self.relay[from.index()].next(&mut input, max_message) {
                Ok(None) => break,
                Ok(Some(Step::Forward(bytes))) => {
                    if self.relaying(from) && !bytes.is_empty() {
                        out.push(to, bytes);
                    }
                }
                Ok(Some(Step::Control(frame))) => {
                    let i = from.index();
                    let is_close = frame.opcode == websocket::OP_CLOSE;
                    // A Close while the proxy closes is a reply to the proxy's.
                    let relaying = self.relaying(from) && !(is_close && self.closing.is_some());
                    let invalid_close = is_close
                        .then(|| websocket::close_payload_error(&frame.payload))
                        .flatten();
                    if let Some(code) = invalid_close {
                        self.fail(from, code, now, out);
                        break;
                    }
                    if is_close {
                        self.close_seen[i] = true;
                        if let Some(closing) = &mut self.closing {
                            closing.awaiting[i] = false;
                        }
                        self.pay_owed_close(to, now, out);
                    }
                    let answers_our_ping = frame.opcode == websocket::OP_PONG
                        && self.ping[i].is_some_and(|(payload, _)| frame.payload == payload);
                    if answers_our_ping {
                        self.ping[i] = None;
                    } else if relaying {
                        self.close_forwarded[to.index()] |= is_close;
                        out.push(to, frame.raw);
                    }
                }
                Err(error) => {
                    self.fail(from, error.close_code(), now, out);
                    break;
                }
            }
            self.flush(to, now, out);
        }
        self.flush(to, now, out);
    }

    /// Whether what `from` sends still goes to the other side: not once the proxy is
    /// closing the tunnel (unless a Close is owed to the other side, which gets
    /// everything up to `from`'s Close reply first), nor after `from`'s own Close.
    fn relaying(&self, from: Side) -> bool {
        let owed_to_peer = self.owed.is_some_and(|(to, _)| to == from.peer());
        (self.closing.is_none() || owed_to_peer) && !self.close_seen[from.index()]
    }

    /// How many of the next bytes from `from` may reach the other side unseen: the
    /// rest of the data frame in flight, if what `from` sends is still relayed (the
    /// rest is read and dropped). (After `from`'s EOF the session reads nothing from it
    /// at all.)
    pub(crate) fn opaque_ahead(&self, from: Side) -> u64 {
        match self.relaying(from) {
            true => self.relay[from.index()].opaque_ahead(),
            false => 0,
        }
    }

    /// See [`FrameRelay::expects_large_frame`].
    pub(crate) fn expects_large_frame(&self, from: Side) -> bool {
        self.relay[from.index()].expects_large_frame()
    }

    /// `n` bytes of [`opaque_ahead`](Self::opaque_ahead) went from `from` to the
    /// other side unseen: `from` was heard, and the frame may now have ended, which
    /// lets the proxy's queued frames go out.
    pub(crate) fn passed(&mut self, from: Side, n: u64, now: Instant, out: &mut Sends<'_>) {
        if n == 0 {
            return;
        }
        self.heard_at[from.index()] = now;
        self.relay[from.index()].skip_opaque(n);
        self.flush(from.peer(), now, out);
    }

    /// `from` shut its write half. Returns whether to pass the EOF on as a half-close
    /// (the peer closed properly, after a Close frame).
    pub(crate) fn on_eof(&mut self, from: Side, now: Instant, out: &mut Sends<'_>) -> bool {
        let i = from.index();
        if self.eof[i] {
            return false;
        }
        self.eof[i] = true;
        if let Some(closing) = &mut self.closing {
            closing.awaiting[i] = false;
            self.pay_owed_close(from.peer(), now, out);
            return false;
        }
        if self.close_seen[i] {
            return true;
        }
        self.peer_gone(from, TunnelEnd::PeerGone(from), now, out);
        false
    }

    /// `from`'s connection failed: the other side learns why.
    pub(crate) fn on_reset(&mut self, from: Side, now: Instant, out: &mut Sends<'_>) {
        self.eof[from.index()] = true;
        if let Some(closing) = &mut self.closing {
            closing.awaiting[from.index()] = false;
            self.pay_owed_close(from.peer(), now, out);
        } else {
            self.peer_gone(from, TunnelEnd::Reset(from), now, out);
        }
    }

    /// The proxy ends the tunnel: Close with `code` to both sides.
    pub(crate) fn close(
        &mut self,
        code: u16,
        reason: &str,
        end: TunnelEnd,
        now: Instant,
        out: &mut Sends<'_>,
    ) {
        self.close_both(code, reason, end, now);
        self.flush(Side::Client, now, out);
        self.flush(Side::Upstream, now, out);
    }

    /// Handles the tunnel's own timers (pings, pong timeouts).
    pub(crate) fn on_timer(&mut self, timer: Timer, now: Instant, out: &mut Sends<'_>) {
        match timer {
            Timer::Ping(side) => {
                let payload = self.random().to_be_bytes();
                let mask = self.mask_towards(side);
                let ping = websocket::encode_control(websocket::OP_PING, &payload, mask);
                self.inject.push_back((side, ping));
                self.ping[side.index()] = Some((payload, None));
                self.flush(side, now, out);
            }
            Timer::PongTimeout(dead) => {
                self.ping[dead.index()] = None;
                self.peer_gone(dead, TunnelEnd::PingTimeout(dead), now, out);
            }
            _ => {}
        }
    }

    /// Reading `side` resumes after flow control held it (its peer drained below
    /// `buffer_size`): what it sent meanwhile sat unread, a Pong among it maybe, so its
    /// silence and the wait for its Pong count from now.
    pub(crate) fn reading_resumed(&mut self, side: Side, now: Instant) {
        let i = side.index();
        self.heard_at[i] = now;
        if let Some((_, Some(sent))) = &mut self.ping[i] {
            *sent = now;
        }
    }

    /// The next of the tunnel's own deadlines. A side in `held` (flow control does not
    /// read it) gets no Ping and no Pong deadline: its silence is the proxy's doing.
    pub(crate) fn next_timer(&self, config: &Config, held: [bool; 2]) -> Option<(Instant, Timer)> {
        let mut next: Option<(Instant, Timer)> = None;
        let mut consider = |at: Instant, timer: Timer| {
            if next.is_none_or(|(best, _)| at < best) {
                next = Some((at, timer));
            }
        };
        if let Some(closing) = &self.closing {
            consider(closing.since + config.timeouts.fin, Timer::Fin);
            return next;
        }
        // No Pings once a peer has sent Close: the peers are closing (`fin` bounds it),
        // and the client's write half may already be shut.
        let closing_handshake = self.close_seen.contains(&true);
        // The side heard from least recently among those a Ping may go to. Its Ping is
        // the earlier of the two (both wait the same interval): one deadline to work
        // out, not two, on a path run several times per message.
        let mut quietest: Option<(Instant, Side)> = None;
        for side in [Side::Client, Side::Upstream] {
            let i = side.index();
            if held[i] {
                continue;
            }
            match self.ping[i] {
                Some((_, Some(sent))) => consider(
                    sent + config.websocket.pong_timeout,
                    Timer::PongTimeout(side),
                ),
                // Queued behind a frame in flight: no answer is due yet.
                Some((_, None)) => {}
                None if self.eof[i] || closing_handshake => {}
                None => {
                    if quietest.is_none_or(|(since, _)| self.heard_at[i] < since) {
                        quietest = Some((self.heard_at[i], side));
                    }
                }
            }
        }
        if let (Some(interval), Some((since, side))) = (config.websocket.ping_interval, quietest) {
            consider(since + interval, Timer::Ping(side));
        }
        next
    }

    /// Whether `side`'s write half is to be shut now (see the module doc): the client's
    /// once the peers finished their close handshake (each sent Close) without the
    /// proxy closing; a side that broke the protocol once its Close is out.
    pub(crate) fn shut_now(&self, side: Side) -> bool {
        let handshake_done = self.handshake_done();
        let close_owed = self.owed.is_some_and(|(to, _)| to == side);
        let close_queued = self.inject.iter().any(|&(to, _)| to == side);
        (side == Side::Client && handshake_done)
            || (self.failed[side.index()] && !close_owed && !close_queued)
    }

    /// The peers finished their own close handshake: each sent Close, and the proxy
    /// was not closing the tunnel itself.
    pub(crate) fn handshake_done(&self) -> bool {
        self.close_seen == [true, true] && self.closing.is_none()
    }

    /// Whether the proxy is closing the tunnel (no more relaying), and why.
    pub(crate) fn closing(&self) -> Option<TunnelEnd> {
        self.closing.map(|c| c.end)
    }

    /// The proxy's close handshake is over: every Close sent was answered.
    pub(crate) fn finished(&self) -> Option<TunnelEnd> {
        self.closing
            .filter(|c| c.awaiting == [false, false])
            .map(|c| c.end)
    }

    /// A side is gone (EOF without Close, reset, no Pong): the other side gets a Close
    /// saying so; the gone side gets nothing more.
    fn peer_gone(&mut self, gone: Side, end: TunnelEnd, now: Instant, out: &mut Sends<'_>) {
        let other = gone.peer();
        let unresponsive = matches!(end, TunnelEnd::PingTimeout(_));
        let (code, reason) = match (gone, unresponsive) {
            (Side::Upstream, true) => (websocket::INTERNAL_ERROR, "upstream not responding"),
            (Side::Upstream, false) => (websocket::BAD_GATEWAY, "upstream went away"),
            (Side::Client, true) => (websocket::GOING_AWAY, "client not responding"),
            (Side::Client, false) => (websocket::GOING_AWAY, "client went away"),
        };
        self.start_closing(end, now);
        self.eof[gone.index()] = true;
        self.send_close(other, code, reason);
        self.flush(other, now, out);
    }

    /// `from` broke RFC 6455 (or sent a message too big): its connection is failed
    /// with `code` once the other side,
    /// told that its peer is gone, has ended its stream (see the module doc). While the
    /// proxy is closing already, `from` gets no Close of its own but is failed all the
    /// same, and a Close owed to the other side is paid now (`from`'s reply to it will
    /// never be read).
    fn fail(&mut self, from: Side, code: u16, now: Instant, out: &mut Sends<'_>) {
        self.failed[from.index()] = true;
        if self.closing.is_some() {
            self.pay_owed_close(from.peer(), now, out);
            return;
        }
        let too_big = code == websocket::MESSAGE_TOO_BIG;
        let end = match too_big {
            true => TunnelEnd::MessageTooBig(from),
            false => TunnelEnd::ProtocolError(from),
        };
        self.start_closing(end, now);
        self.owed = Some((from, code));
        let (code, reason) = match (from, too_big) {
            (Side::Client, true) => (websocket::GOING_AWAY, "client message too big"),
            (Side::Client, false) => (websocket::GOING_AWAY, "client protocol error"),
            (Side::Upstream, true) => (websocket::BAD_GATEWAY, "upstream message too big"),
            (Side::Upstream, false) => (websocket::BAD_GATEWAY, "upstream protocol error"),
        };
        self.send_close(from.peer(), code, reason);
        self.flush(from.peer(), now, out);
        let peer = from.peer().index();
        if self.eof[peer] || self.close_seen[peer] {
            // That stream has ended already.
            self.pay_owed_close(from, now, out);
        }
    }

    /// Sends the Close owed to the failed side `to`, if there is one: the other side's
    /// stream towards it has ended.
    fn pay_owed_close(&mut self, to: Side, now: Instant, out: &mut Sends<'_>) {
        let Some((owed_to, code)) = self.owed.filter(|&(owed_to, _)| owed_to == to) else {
            return;
        };
        self.owed = None;
        let reason = match code {
            websocket::INVALID_PAYLOAD => "close reason not UTF-8",
            websocket::MESSAGE_TOO_BIG => "message too big",
            _ => "protocol error",
        };
        self.send_close(owed_to, code, reason);
        self.flush(owed_to, now, out);
    }

    fn close_both(&mut self, code: u16, reason: &str, end: TunnelEnd, now: Instant) {
        if self.closing.is_some() {
            return;
        }
        self.start_closing(end, now);
        self.send_close(Side::Client, code, reason);
        self.send_close(Side::Upstream, code, reason);
    }

    /// Stops relaying; frames the proxy had queued (pings) are dropped: a stream that
    /// stops mid-frame must never get a frame of the proxy's inserted later.
    fn start_closing(&mut self, end: TunnelEnd, now: Instant) {
        if self.closing.is_none() {
            self.inject = VecDeque::new();
        }
        self.closing.get_or_insert(Closing {
            awaiting: [false; 2],
            since: now,
            end,
        });
    }

    /// Queues a Close towards `to` if it is alive and reachable at a boundary, and
    /// then awaits its reply, unless `to` sent its own Close already: then this Close is
    /// the reply `to` waits for. Never into a stream that already carried its peer's
    /// Close: nothing may follow one (§5.5.1), and `to`'s write half may be shut.
    fn send_close(&mut self, to: Side, code: u16, reason: &str) {
        let i = to.index();
        let reachable = self.relay[to.peer().index()].at_boundary();
        let stream_closed = self.close_forwarded[i];
        if self.eof[i] || stream_closed || !reachable {
            return;
        }
        let mask = self.mask_towards(to);
        (self.inject).push_back((to, websocket::encode_close(code, reason, mask)));
        if let Some(closing) = &mut self.closing {
            closing.awaiting[i] = !self.close_seen[i];
        }
    }

    /// Sends the proxy's queued frames towards `to` if that stream is at a boundary.
    fn flush(&mut self, to: Side, now: Instant, out: &mut Sends<'_>) {
        let i = to.index();
        let queued = self.inject.iter().any(|&(side, _)| side == to);
        if queued && self.relay[to.peer().index()].at_boundary() {
            let mut others = VecDeque::new();
            for (side, frame) in std::mem::take(&mut self.inject) {
                match side == to {
                    true => out.push(to, frame),
                    false => others.push_back((side, frame)),
                }
            }
            self.inject = others;
            // A Ping's answer is due from when it was sent, not queued.
            if let Some((_, sent @ None)) = &mut self.ping[i] {
                *sent = Some(now);
            }
        }
    }

    fn mask_towards(&mut self, to: Side) -> Option<[u8; 4]> {
        match to {
            Side::Upstream => Some((self.random() as u32).to_be_bytes()),
            Side::Client => None,
        }
    }

    fn random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every WebSocket tunnel holds this boxed, idle or not: one more field would move
    /// it from jemalloc's 256-byte size class to the 320-byte one, 64 bytes more per
    /// tunnel (the idle tunnel's budget is 2 KiB in all).
    #[test]
    fn the_websocket_state_fits_the_256_byte_size_class() {
        assert!(
            std::mem::size_of::<WebSocketTunnel>() <= 256,
            "{} bytes",
            std::mem::size_of::<WebSocketTunnel>()
        );
    }
}
