//! One room's history in memory: the last messages, bounded by count and age, with the
//! room's epoch and top offset.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use super::position::{Epoch, Position};
use crate::message::Message;

/// A recorded message: its offset, when it was recorded, and the frame's message as every
/// member got it (formatted), so that a replay sends the same bytes.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) offset: u64,
    at: Instant,
    pub(crate) message: Message,
}

/// One room's history. The epoch is drawn when the ring is created, so a ring lost with its
/// process (or dropped after a long silence) comes back as a new history.
#[derive(Debug)]
pub(crate) struct Ring {
    epoch: Epoch,
    top: u64,
    entries: VecDeque<Entry>,
    /// The last append or read: a ring silent for long is dropped.
    pub(crate) touched: Instant,
}

impl Ring {
    pub(crate) fn new(now: Instant) -> Self {
        Ring {
            epoch: Epoch::random(),
            top: 0,
            entries: VecDeque::new(),
            touched: now,
        }
    }

    /// The position of the last message recorded (offset 0 before the first).
    pub(crate) fn top(&self) -> Position {
        Position::new(self.top, self.epoch)
    }

    /// The position the next message will have.
    pub(crate) fn next(&self) -> Position {
        Position::new(self.top + 1, self.epoch)
    }

    /// Records the message at [`next`](Ring::next), keeping at most `keep` entries.
    pub(crate) fn append(&mut self, message: Message, now: Instant, keep: usize, ttl: Duration) {
        self.top += 1;
        self.entries.push_back(Entry {
            offset: self.top,
            at: now,
            message,
        });
        while self.entries.len() > keep {
            self.entries.pop_front();
        }
        self.trim(now, ttl);
        self.touched = now;
    }

    /// Drops the entries older than `ttl`.
    pub(crate) fn trim(&mut self, now: Instant, ttl: Duration) {
        while self
            .entries
            .front()
            .is_some_and(|entry| now.saturating_duration_since(entry.at) > ttl)
        {
            self.entries.pop_front();
        }
    }

    /// The entries after `offset`, oldest first, once those older than `ttl` are dropped.
    pub(crate) fn after(&mut self, offset: u64, now: Instant, ttl: Duration) -> &[Entry] {
        self.trim(now, ttl);
        self.touched = now;
        let entries = self.entries.make_contiguous();
        let start = entries.partition_point(|entry| entry.offset <= offset);
        &entries[start..]
    }

    /// How many entries are kept.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(60);

    fn offsets(entries: &[Entry]) -> Vec<u64> {
        entries.iter().map(|entry| entry.offset).collect()
    }

    #[test]
    fn offsets_are_consecutive_and_the_count_is_bounded() {
        let now = Instant::now();
        let mut ring = Ring::new(now);
        assert_eq!(ring.top().offset, 0);
        for n in 1..=5 {
            assert_eq!(ring.next().offset, n);
            ring.append(Message::text(n.to_string()), now, 3, TTL);
        }
        assert_eq!(ring.top().offset, 5);
        assert_eq!(offsets(ring.after(0, now, TTL)), [3, 4, 5]);
        assert_eq!(offsets(ring.after(3, now, TTL)), [4, 5]);
        assert!(ring.after(5, now, TTL).is_empty());
        assert_eq!(ring.after(4, now, TTL)[0].message.as_text(), Some("5"));
    }

    #[tokio::test(start_paused = true)]
    async fn entries_older_than_the_ttl_are_dropped_and_the_top_stays() {
        let mut ring = Ring::new(Instant::now());
        ring.append("old".into(), Instant::now(), 10, TTL);
        tokio::time::advance(Duration::from_secs(40)).await;
        ring.append("new".into(), Instant::now(), 10, TTL);
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(offsets(ring.after(0, Instant::now(), TTL)), [2]);
        tokio::time::advance(Duration::from_secs(40)).await;
        assert!(ring.after(0, Instant::now(), TTL).is_empty());
        assert_eq!(ring.top().offset, 2, "the top outlives its entries");
        assert_eq!(ring.len(), 0);
    }
}
