//! The buffers waiting to be written to one side, oldest first.
//!
//! Nearly always there is one: a message or response just read from the other side,
//! written at once. It is held inline, so forwarding it allocates nothing; only a
//! second buffer behind it takes a `VecDeque`, which goes again when the queue
//! empties, so an idle side holds no allocation. (A `VecDeque` released whenever it
//! emptied cost an allocation and a free on each side for every WebSocket message
//! forwarded: callgrind counted 8,579 instructions per echoed message with it and
//! 8,460 with this queue.)
//!
//! A short buffer behind a short one is copied in with it instead (`join_up_to`): an
//! HTTP response's head and small body become one buffer, where they took a
//! `VecDeque` (two allocations) and were joined on the way out anyway.

use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;

/// No buffer or one is held inline; an empty `Bytes` is none (empty sends are not
/// queued).
pub(crate) enum WriteQueue {
    One(Bytes),
    /// Two or more, or what is left of them: it stays a `VecDeque` until it empties.
    /// Boxed, so that the queue takes no more room in every session than one buffer
    /// (the `VecDeque` itself would make it 8 bytes larger, and every session task with
    /// it: see `an_idle_session_task_fits_the_896_byte_size_class`).
    #[allow(clippy::box_collection)]
    Many(Box<VecDeque<Bytes>>),
}

impl Default for WriteQueue {
    fn default() -> Self {
        WriteQueue::One(Bytes::new())
    }
}

/// The room a queue takes when a second buffer joins the first: a response's head
/// and body, and a frame or two behind them.
const MANY: usize = 4;

impl WriteQueue {
    /// Queues `bytes` last. Behind a single buffer, and together with it no longer
    /// than `join_up_to`, it is copied into one buffer with that one.
    pub(crate) fn push_back(&mut self, bytes: Bytes, join_up_to: usize) {
        match self {
            WriteQueue::One(one) if one.is_empty() => *one = bytes,
            WriteQueue::One(one) if one.len() + bytes.len() <= join_up_to => {
                let mut joined = BytesMut::with_capacity(one.len() + bytes.len());
                joined.extend_from_slice(one);
                joined.extend_from_slice(&bytes);
                *one = joined.freeze();
            }
            WriteQueue::One(one) => {
                let mut many = VecDeque::with_capacity(MANY);
                many.push_back(std::mem::take(one));
                many.push_back(bytes);
                *self = WriteQueue::Many(Box::new(many));
            }
            WriteQueue::Many(many) => many.push_back(bytes),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            WriteQueue::One(one) => usize::from(!one.is_empty()),
            WriteQueue::Many(many) => many.len(),
        }
    }

    pub(crate) fn get(&self, index: usize) -> Option<&Bytes> {
        match self {
            WriteQueue::One(one) => (index < self.len()).then_some(one),
            WriteQueue::Many(many) => many.get(index),
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Bytes> {
        let (one, many) = match self {
            WriteQueue::One(one) => ((!one.is_empty()).then_some(one), None),
            WriteQueue::Many(many) => (None, Some(many.iter())),
        };
        one.into_iter().chain(many.into_iter().flatten())
    }

    pub(crate) fn front_mut(&mut self) -> Option<&mut Bytes> {
        match self {
            WriteQueue::One(one) => (!one.is_empty()).then_some(one),
            WriteQueue::Many(many) => many.front_mut(),
        }
    }

    /// Drops the oldest buffer; the queue's allocation goes with the last.
    pub(crate) fn pop_front(&mut self) {
        match self {
            WriteQueue::Many(many) if many.len() > 1 => {
                many.pop_front();
            }
            _ => self.clear(),
        }
    }

    /// Drops every buffer and the allocation.
    pub(crate) fn clear(&mut self) {
        *self = WriteQueue::default();
    }

    /// Whether the queue holds an allocation of its own.
    #[cfg(test)]
    pub(crate) fn is_allocated(&self) -> bool {
        matches!(self, WriteQueue::Many(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contents(queue: &WriteQueue) -> Vec<&[u8]> {
        queue.iter().map(|b| &b[..]).collect()
    }

    #[test]
    fn buffers_come_out_in_order_and_only_a_second_one_allocates() {
        let mut q = WriteQueue::default();
        assert!(q.is_empty() && q.get(0).is_none() && q.front_mut().is_none());
        q.push_back(Bytes::from_static(b"a"), 0);
        assert!(!q.is_allocated(), "one buffer is held inline");
        assert_eq!((q.len(), contents(&q)), (1, vec![&b"a"[..]]));
        q.push_back(Bytes::from_static(b"b"), 0);
        q.push_back(Bytes::from_static(b"c"), 0);
        assert!(q.is_allocated());
        assert_eq!(contents(&q), [&b"a"[..], b"b", b"c"]);
        assert_eq!(q.get(2).map(|b| &b[..]), Some(&b"c"[..]));
        assert!(q.get(3).is_none());
        q.pop_front();
        assert_eq!(contents(&q), [&b"b"[..], b"c"]);
        q.pop_front();
        assert_eq!(contents(&q), [&b"c"[..]]);
        q.pop_front();
        assert!(
            q.is_empty() && !q.is_allocated(),
            "the last one takes the allocation"
        );
        q.pop_front();
        assert!(q.is_empty(), "popping nothing is harmless");
    }

    #[test]
    fn a_short_buffer_behind_a_single_short_one_is_joined_to_it() {
        let mut q = WriteQueue::default();
        q.push_back(Bytes::from_static(b"head"), 8);
        q.push_back(Bytes::from_static(b"body"), 8);
        assert!(!q.is_allocated(), "joined, not queued behind");
        assert_eq!(contents(&q), [&b"headbody"[..]]);
        q.push_back(Bytes::from_static(b"x"), 8);
        assert!(q.is_allocated(), "over the limit: queued behind");
        assert_eq!(contents(&q), [&b"headbody"[..], b"x"]);
        q.push_back(Bytes::from_static(b"y"), 8);
        assert_eq!(
            contents(&q),
            [&b"headbody"[..], b"x", b"y"],
            "only a single buffer is joined to"
        );
    }

    #[test]
    fn the_queue_takes_no_more_room_than_one_buffer() {
        assert_eq!(
            std::mem::size_of::<WriteQueue>(),
            std::mem::size_of::<Bytes>()
        );
    }

    #[test]
    fn the_front_buffer_is_changed_in_place_and_clear_drops_everything() {
        let mut q = WriteQueue::default();
        q.push_back(Bytes::from_static(b"abc"), 0);
        bytes::Buf::advance(q.front_mut().unwrap(), 1);
        assert_eq!(contents(&q), [&b"bc"[..]]);
        q.push_back(Bytes::from_static(b"d"), 0);
        bytes::Buf::advance(q.front_mut().unwrap(), 1);
        assert_eq!(contents(&q), [&b"c"[..], b"d"]);
        q.clear();
        assert!(q.is_empty() && !q.is_allocated());
    }
}
