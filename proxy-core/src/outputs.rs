//! The session's queue of outputs.

use std::collections::VecDeque;

use crate::io::Output;

/// Outputs in the order they were pushed. The two oldest live inline, in a ring:
/// most inputs give one or two outputs (a relayed chunk is one `Send`), so a relayed
/// chunk allocates nothing, an idle tunnel holds no queue allocation, and popping
/// moves one output, not the queue. Longer bursts (a response with its log line, a
/// pipelined batch) spill into a deque; it keeps room for a few (so an exchange does
/// not allocate each time) and is freed once empty if a burst grew it past that.
#[derive(Debug, Default)]
pub(crate) struct Outputs {
    /// The oldest outputs, from `inline[head]` on. An output goes here only while
    /// `spill` is empty, so everything inline is older than anything spilled.
    inline: [Option<Output>; 2],
    head: usize,
    spill: VecDeque<Output>,
}

/// Room a spilled burst may keep: an HTTP exchange ends with a burst of about four
/// outputs, which then allocates nothing per request.
const SPILL_KEPT: usize = 4;

impl Outputs {
    pub(crate) fn push_back(&mut self, output: Output) {
        if self.spill.is_empty() {
            for i in [self.head, self.head ^ 1] {
                if let slot @ None = &mut self.inline[i] {
                    *slot = Some(output);
                    return;
                }
            }
        }
        self.spill.push_back(output);
    }

    pub(crate) fn pop_front(&mut self) -> Option<Output> {
        if let Some(first) = self.inline[self.head].take() {
            self.head ^= 1;
            return Some(first);
        }
        // Inline is empty (its newer slot is filled only after its older one).
        let first = self.spill.pop_front()?;
        if self.spill.is_empty() && self.spill.capacity() > SPILL_KEPT {
            self.spill = VecDeque::new(); // a long burst is over
        }
        Some(first)
    }

    pub(crate) fn extend(&mut self, outputs: impl IntoIterator<Item = Output>) {
        for output in outputs {
            self.push_back(output);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::Side;
    use bytes::Bytes;

    fn send(n: u8) -> Output {
        Output::Send(Side::Client, Bytes::from(vec![n]))
    }

    fn popped(q: &mut Outputs) -> Vec<u8> {
        std::iter::from_fn(|| q.pop_front())
            .map(|o| match o {
                Output::Send(_, bytes) => bytes[0],
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    #[test]
    fn order_is_kept_across_inline_slots_and_spill() {
        for n in 0..8u8 {
            let mut q = Outputs::default();
            q.extend((0..n).map(send));
            assert_eq!(popped(&mut q), (0..n).collect::<Vec<_>>(), "{n} outputs");
            assert!(q.pop_front().is_none());
        }
    }

    #[test]
    fn pushes_between_pops_keep_the_order() {
        let mut q = Outputs::default();
        q.extend((0..5).map(send));
        let first = q.pop_front();
        assert!(matches!(first, Some(Output::Send(_, b)) if b[0] == 0));
        q.push_back(send(5));
        q.push_back(send(6));
        assert_eq!(popped(&mut q), [1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn two_outputs_allocate_nothing_and_a_burst_gives_its_memory_back() {
        let mut q = Outputs::default();
        q.extend((0..2).map(send));
        assert_eq!(q.spill.capacity(), 0);
        q.extend((2..10).map(send));
        assert!(q.spill.capacity() > 0);
        assert_eq!(popped(&mut q).len(), 10);
        assert_eq!(q.spill.capacity(), 0);
    }
}
