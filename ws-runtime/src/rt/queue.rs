//! A bounded queue with one consumer: a mutex around a `VecDeque`, the consumer's waker, and a
//! [`Notify`] for producers waiting for room. It is bounded by items and by their weight (the
//! bytes they hold), both checked under the one lock. Unlike tokio's mpsc channel, which allocates a
//! block of 32 slots when created, it allocates nothing until used and gives its memory back
//! once emptied after a burst: an idle connection's two queues cost a few dozen bytes.
//!
//! The consumer may also lend the queue a sink (`S`: for a connection's send queue, its
//! socket) through which a producer delivers an item itself, under the lock, while the
//! consumer is idle: nothing queued, nothing taken and not yet finished with
//! ([`Queue::with_idle`]). The consumer marks what it takes as in hand until it
//! [`settle`](Queue::settle)s, and [`hold`](Queue::hold)s the sink's use around work of its
//! own; the sink goes when the queue closes.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;
use tokio::sync::Notify;

/// An emptied queue keeps its buffer up to this many slots unless told otherwise
/// ([`Queue::keeping`]).
pub(crate) const KEEP: usize = 16;

/// What an item weighs against the queue's weight limit.
pub(crate) trait Weighted {
    fn weight(&self) -> usize;
}

/// Why an item was not queued; the item comes back.
#[derive(Debug)]
pub(crate) enum PushError<T> {
    /// The queue holds its capacity.
    Full(T),
    /// The consumer is gone.
    Closed(T),
}

#[derive(Debug)]
pub(crate) struct Queue<T, S = ()> {
    state: Mutex<State<T, S>>,
    capacity: usize,
    max_weight: usize,
    /// Slots an emptied queue keeps.
    keep: usize,
    consumer: AtomicWaker,
    /// Producers waiting for room, and how many there are (so that a pop wakes only when
    /// someone waits).
    room: Notify,
    waiting: AtomicUsize,
    /// The number of items and whether the queue is closed, kept beside the lock so that the
    /// consumer sees an empty queue without taking it.
    len: AtomicUsize,
    closed: AtomicBool,
    /// The consumer has taken items and not finished with them, or is doing work of its own
    /// that a producer's use of the sink must not come between. Set under the lock (where
    /// producers read it); cleared without it, once the consumer is done: a settle costs no
    /// lock.
    busy: AtomicBool,
}

/// One producer waiting for room, counted while it lives (so that pops wake producers only
/// when one waits), and uncounted however its wait ends.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn count(waiting: &'a AtomicUsize) -> Self {
        waiting.fetch_add(1, Ordering::SeqCst);
        Waiting(waiting)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Debug)]
struct State<T, S> {
    items: VecDeque<T>,
    weight: usize,
    /// What the consumer lends producers while it is idle, until the queue closes.
    sink: Option<S>,
}

impl<T: Weighted, S> Queue<T, S> {
    /// A queue of at most `capacity` items weighing at most `max_weight` together; an item
    /// heavier than that gets in when the queue is empty.
    pub(crate) fn new(capacity: usize, max_weight: usize) -> Self {
        Queue {
            state: Mutex::new(State {
                items: VecDeque::new(),
                weight: 0,
                sink: None,
            }),
            capacity: capacity.max(1),
            max_weight,
            keep: KEEP,
            consumer: AtomicWaker::new(),
            room: Notify::new(),
            waiting: AtomicUsize::new(0),
            len: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            busy: AtomicBool::new(false),
        }
    }

    /// Keeps up to `slots` when emptied, so that a connection busy with bursts does not grow
    /// its buffer again for each (a visible cost of a pipelined burst); its owner then calls
    /// [`release`](Queue::release) once idle.
    pub(crate) fn keeping(mut self, slots: usize) -> Self {
        self.keep = slots;
        self
    }

    fn lock(&self) -> MutexGuard<'_, State<T, S>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues an item if there is room.
    pub(crate) fn try_push(&self, item: T) -> Result<(), PushError<T>> {
        let mut state = self.lock();
        // Set under the lock by `close`, so that nothing is queued after it.
        if self.closed.load(Ordering::Acquire) {
            return Err(PushError::Closed(item));
        }
        let weight = item.weight();
        let heavy = !state.items.is_empty() && state.weight + weight > self.max_weight;
        if state.items.len() >= self.capacity || heavy {
            return Err(PushError::Full(item));
        }
        let was_empty = state.items.is_empty();
        state.weight += weight;
        state.items.push_back(item);
        self.len.store(state.items.len(), Ordering::Release);
        drop(state);
        // The consumer waits only after it saw the queue empty; onto a queue that was not
        // empty, the push that made it non-empty has already woken it.
        if was_empty {
            self.consumer.wake();
        }
        Ok(())
    }

    /// Queues items from the front of `items` while there is room for them, under one lock;
    /// what did not fit stays in `items`. `Err` (and nothing queued) once the consumer is gone.
    pub(crate) fn try_push_many(&self, items: &mut Vec<T>) -> Result<(), ()> {
        let mut state = self.lock();
        if self.closed.load(Ordering::Acquire) {
            return Err(());
        }
        let was_empty = state.items.is_empty();
        let (mut count, mut weight) = (state.items.len(), state.weight);
        let mut fit = 0;
        for item in items.iter() {
            let w = item.weight();
            if count >= self.capacity || (count > 0 && weight + w > self.max_weight) {
                break;
            }
            count += 1;
            weight += w;
            fit += 1;
        }
        state.items.extend(items.drain(..fit));
        state.weight = weight;
        self.len.store(count, Ordering::Release);
        drop(state);
        if was_empty && fit > 0 {
            self.consumer.wake();
        }
        Ok(())
    }

    /// Queues an item, waiting for room; gives it back if the consumer is gone. Cancel-safe:
    /// dropped while it waits (in a `select!`, under a timeout), it no longer counts as a
    /// waiting producer, and the item is dropped with it.
    pub(crate) async fn push(&self, mut item: T) -> Result<(), T> {
        loop {
            let notified = self.room.notified();
            let mut notified = std::pin::pin!(notified);
            // Registered before the check, so that a pop between the two is not missed.
            notified.as_mut().enable();
            let _waiting = Waiting::count(&self.waiting);
            match self.try_push(item) {
                Ok(()) => return Ok(()),
                Err(PushError::Closed(back)) => return Err(back),
                Err(PushError::Full(back)) => item = back,
            }
            notified.await;
        }
    }

    /// The next item, if one is queued.
    pub(crate) fn try_pop(&self) -> Option<T> {
        let mut state = self.lock();
        let item = state.items.pop_front()?;
        self.busy.store(true, Ordering::Relaxed);
        self.len.store(state.items.len(), Ordering::Release);
        state.weight -= item.weight();
        if state.items.is_empty() && state.items.capacity() > self.keep {
            state.items = VecDeque::new();
        }
        drop(state);
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.room.notify_one();
        }
        Some(item)
    }

    /// Moves queued items into `out` under one lock while they stay within `max_items` and
    /// `max_weight` together; with `at_least_one`, the first comes whatever it weighs.
    pub(crate) fn try_pop_many(
        &self,
        out: &mut VecDeque<T>,
        max_items: usize,
        max_weight: usize,
        at_least_one: bool,
    ) {
        if self.len.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut state = self.lock();
        let all = state.items.len();
        let (count, taken) =
            if all <= max_items && (state.weight <= max_weight || (at_least_one && all == 1)) {
                // Everything fits, the usual case: no item needs to be looked at.
                (all, state.weight)
            } else {
                let (mut count, mut taken) = (0, 0);
                for item in state.items.iter().take(max_items) {
                    let weight = item.weight();
                    if (count > 0 || !at_least_one) && taken + weight > max_weight {
                        break;
                    }
                    count += 1;
                    taken += weight;
                }
                (count, taken)
            };
        // Moved in bulk (slice copies), not popped and pushed one by one: that was about 70
        // instructions per item in callgrind, on a burst of small messages.
        if count == all {
            out.append(&mut state.items);
        } else {
            out.extend(state.items.drain(..count));
        }
        state.weight -= taken;
        if count > 0 {
            self.busy.store(true, Ordering::Relaxed);
        }
        self.len.store(state.items.len(), Ordering::Release);
        if state.items.is_empty() && state.items.capacity() > self.keep {
            state.items = VecDeque::new();
        }
        drop(state);
        // One waiting producer per item taken, as `try_pop` would.
        for _ in 0..count.min(self.waiting.load(Ordering::SeqCst)) {
            self.room.notify_one();
        }
    }

    fn poll_pop(&self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        if self.len.load(Ordering::Acquire) > 0 {
            if let Some(item) = self.try_pop() {
                return Poll::Ready(Some(item));
            }
        }
        self.consumer.register(cx.waker());
        // A push between the check and the registration has stored its length before waking.
        if self.len.load(Ordering::Acquire) > 0 {
            if let Some(item) = self.try_pop() {
                return Poll::Ready(Some(item));
            }
        }
        if self.closed.load(Ordering::Acquire) {
            // What is left, then `None`.
            return Poll::Ready(self.try_pop());
        }
        Poll::Pending
    }

    /// The next item, waiting for one; `None` once the queue is closed and empty.
    pub(crate) async fn pop(&self) -> Option<T> {
        poll_fn(|cx| self.poll_pop(cx)).await
    }

    /// Refuses further items; the consumer still gets what is queued, then `None`. The sink
    /// goes now (dropped outside the lock).
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        self.closed.store(true, Ordering::Release);
        let sink = state.sink.take();
        drop(state);
        drop(sink);
        self.consumer.wake();
        self.room.notify_waiters();
    }

    /// Lends producers a sink for [`with_idle`](Queue::with_idle), until the queue closes
    /// (not at all if it is closed).
    pub(crate) fn lend_sink(&self, sink: S) {
        let mut state = self.lock();
        if !self.closed.load(Ordering::Acquire) {
            state.sink = Some(sink);
        }
    }

    /// The consumer has finished with everything it took, and with its own work: producers
    /// may use the sink again while nothing is queued.
    pub(crate) fn settle(&self) {
        // Release: what the consumer wrote comes before a producer's use of the sink.
        self.busy.store(false, Ordering::Release);
    }

    /// The consumer is about to do work of its own (for a send queue, write a control
    /// frame): no producer uses the sink until it [`settle`](Queue::settle)s. An item at the
    /// front that `first` picks comes back, to be handled before that work: for a send queue,
    /// the rest of a frame a producer wrote in part, which nothing may come before.
    pub(crate) fn hold(&self, first: impl FnOnce(&T) -> bool) -> Option<T> {
        let mut state = self.lock();
        self.busy.store(true, Ordering::Relaxed);
        if !state.items.front().is_some_and(first) {
            return None;
        }
        let item = state.items.pop_front()?;
        state.weight -= item.weight();
        self.len.store(state.items.len(), Ordering::Release);
        Some(item)
    }

    /// Runs `deliver` with the sink, under the lock, when the consumer is idle: a sink lent,
    /// nothing queued, nothing in the consumer's hands, and the queue open. What `deliver`
    /// gives back besides its result is queued for the consumer, whatever the bounds (the
    /// queue was empty): for a send queue, the rest of a partial write. `None`, and nothing
    /// run, when the consumer is not idle.
    pub(crate) fn with_idle<R>(&self, deliver: impl FnOnce(&S) -> (R, Option<T>)) -> Option<R> {
        let mut state = self.lock();
        let busy = self.busy.load(Ordering::Acquire);
        if busy || !state.items.is_empty() || self.closed.load(Ordering::Acquire) {
            return None;
        }
        let (result, rest) = deliver(state.sink.as_ref()?);
        let Some(rest) = rest else {
            return Some(result);
        };
        state.weight += rest.weight();
        state.items.push_back(rest);
        self.len.store(state.items.len(), Ordering::Release);
        drop(state);
        self.consumer.wake();
        Some(result)
    }

    /// Gives back the buffer of an empty queue (a connection gone idle).
    pub(crate) fn release(&self) {
        let mut state = self.lock();
        if state.items.is_empty() {
            state.items = VecDeque::new();
        }
    }

    #[cfg(test)]
    fn slots(&self) -> usize {
        self.lock().items.capacity()
    }

    /// Items queued (stored after every change, read without the lock).
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// Their weight.
    pub(crate) fn weight(&self) -> usize {
        self.lock().weight
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Weighted for u32 {
        fn weight(&self) -> usize {
            *self as usize
        }
    }

    /// A push dropped while it waits for room (a `select!`, a timeout around a send) is no
    /// longer counted as waiting: otherwise every later pop would wake producers for nothing.
    #[test]
    fn a_cancelled_push_stops_counting_as_waiting() {
        use futures_util::FutureExt;
        let queue = Queue::<u32>::new(1, usize::MAX);
        assert!(queue.try_push(1).is_ok());
        assert!(queue.push(2).now_or_never().is_none(), "the queue is full");
        assert_eq!(queue.waiting.load(Ordering::SeqCst), 0);
        assert_eq!(queue.try_pop(), Some(1));
        assert_eq!(queue.try_pop(), None, "the cancelled item was not queued");
    }

    #[test]
    fn bounded_by_weight_too() {
        let queue = Queue::<u32>::new(10, 5);
        assert!(queue.try_push(4).is_ok());
        assert!(matches!(queue.try_push(2), Err(PushError::Full(2))));
        assert!(queue.try_push(1).is_ok());
        assert_eq!((queue.len(), queue.weight()), (2, 5));
        assert_eq!(queue.try_pop(), Some(4));
        assert_eq!(queue.try_pop(), Some(1));
        // Heavier than the limit: in only when the queue is empty.
        assert!(queue.try_push(9).is_ok());
        assert!(matches!(queue.try_push(1), Err(PushError::Full(1))));
    }

    /// An emptied queue keeps what it is told to keep, and gives it back when released.
    #[test]
    fn emptied_queues_keep_their_slots_until_released() {
        for (keep, kept) in [(KEEP, false), (1024, true)] {
            let queue = Queue::<u32>::new(1024, usize::MAX).keeping(keep);
            let mut items: Vec<u32> = (0..500).collect();
            assert!(queue.try_push_many(&mut items).is_ok());
            let mut out = VecDeque::new();
            queue.try_pop_many(&mut out, 1024, usize::MAX, true);
            assert_eq!(out.len(), 500);
            assert_eq!(queue.slots() >= 500, kept, "keep {keep}");
            queue.release();
            assert_eq!(queue.slots(), 0);
        }
        // Not while it holds items.
        let queue = Queue::<u32>::new(10, 100).keeping(1024);
        assert!(queue.try_push(1).is_ok());
        queue.release();
        assert!(queue.slots() > 0);
    }

    #[test]
    fn push_many_queues_what_fits_in_order() {
        let queue = Queue::<u32>::new(4, 10);
        let mut items = vec![2, 3, 4, 5, 6];
        assert!(queue.try_push_many(&mut items).is_ok());
        // 2 + 3 + 4 = 9; 5 more would pass 10.
        assert_eq!(items, [5, 6]);
        assert_eq!((queue.len(), queue.weight()), (3, 9));
        assert_eq!(queue.try_pop(), Some(2));
        assert_eq!(queue.try_pop(), Some(3));
        assert_eq!(queue.try_pop(), Some(4));
        // An empty queue takes one however heavy; the count limit holds too.
        let mut heavy = vec![50, 1];
        assert!(queue.try_push_many(&mut heavy).is_ok());
        assert_eq!(heavy, [1]);
        queue.close();
        assert!(queue.try_push_many(&mut heavy).is_err());
        assert_eq!(heavy, [1]);
    }

    #[test]
    fn pop_many_takes_in_order_within_both_limits() {
        let queue = Queue::<u32>::new(10, 100);
        for item in [3, 4, 5, 60, 1] {
            assert!(queue.try_push(item).is_ok());
        }
        let mut out = VecDeque::new();
        queue.try_pop_many(&mut out, 2, 100, true);
        assert_eq!(out, [3, 4]);
        // Weight: 5 fits, 60 would pass 10.
        queue.try_pop_many(&mut out, 10, 10, true);
        assert_eq!(out, [3, 4, 5]);
        // Strict: nothing over the weight, not even a first item.
        queue.try_pop_many(&mut out, 10, 10, false);
        assert_eq!(out, [3, 4, 5]);
        // Otherwise one item always comes, however heavy.
        queue.try_pop_many(&mut out, 10, 10, true);
        assert_eq!(out, [3, 4, 5, 60]);
        queue.try_pop_many(&mut out, 10, 10, false);
        assert_eq!(out, [3, 4, 5, 60, 1]);
        assert_eq!((queue.len(), queue.weight()), (0, 0));
        queue.try_pop_many(&mut out, 10, 10, true);
        assert_eq!(out.len(), 5);
    }

    /// Everything fits: taken at once, in order, also when the queue's ring has wrapped
    /// around and `out` already holds items.
    #[test]
    fn pop_many_takes_all_that_fits_in_order() {
        let queue = Queue::<u32>::new(8, 10_000);
        let mut out = VecDeque::new();
        for round in 0..5u32 {
            for item in 0..6 {
                assert!(queue.try_push(round * 10 + item).is_ok());
            }
            // Leaves the ring's start elsewhere for the next round.
            let first = queue.try_pop();
            assert_eq!(first, Some(round * 10));
            queue.try_pop_many(&mut out, 8, 1000, true);
            assert_eq!((queue.len(), queue.weight()), (0, 0));
        }
        let expected: Vec<u32> = (0..5u32)
            .flat_map(|round| (1..6).map(move |item| round * 10 + item))
            .collect();
        assert_eq!(out, expected);
    }

    /// A producer uses the sink only while the consumer is idle: a sink lent, nothing
    /// queued, nothing taken and unsettled, no hold, the queue open. What it gives back is
    /// queued and wakes the consumer; a hold takes it back first. The sink goes with the
    /// close.
    #[tokio::test]
    async fn the_sink_is_used_only_while_the_consumer_is_idle() {
        use futures_util::FutureExt;
        use std::sync::Arc;
        let sink = Arc::new(());
        let queue: Queue<u32, Arc<()>> = Queue::new(4, 100);
        let deliver = |rest: Option<u32>| move |_: &Arc<()>| ((), rest);
        assert!(queue.with_idle(deliver(None)).is_none(), "no sink lent yet");
        queue.lend_sink(sink.clone());
        assert!(queue.with_idle(deliver(None)).is_some());

        // Queued items come first.
        assert!(queue.try_push(1).is_ok());
        assert!(queue.with_idle(deliver(None)).is_none());
        // Taken, they are in the consumer's hands until it settles.
        assert_eq!(queue.try_pop(), Some(1));
        assert!(queue.with_idle(deliver(None)).is_none());
        queue.settle();
        assert!(queue.with_idle(deliver(None)).is_some());
        assert!(queue.try_push(2).is_ok());
        let mut out = VecDeque::new();
        queue.try_pop_many(&mut out, 8, 100, true);
        assert!(queue.with_idle(deliver(None)).is_none());
        queue.settle();

        // What comes back is queued, and wakes a waiting consumer.
        let mut popping = Box::pin(queue.pop());
        assert!((&mut popping).now_or_never().is_none());
        assert!(queue.with_idle(deliver(Some(7))).is_some());
        assert_eq!(popping.await, Some(7));
        queue.settle();
        // A hold takes such an item back from the front, and stops producers.
        assert!(queue.with_idle(deliver(Some(8))).is_some());
        assert_eq!(queue.hold(|item| *item == 8), Some(8));
        assert_eq!(queue.len(), 0);
        assert!(queue.with_idle(deliver(None)).is_none(), "held");
        assert!(queue.try_push(9).is_ok());
        assert_eq!(queue.hold(|item| *item == 8), None, "not what it picks");
        assert_eq!(queue.try_pop(), Some(9));
        queue.settle();
        assert!(queue.with_idle(deliver(None)).is_some());

        queue.close();
        assert!(queue.with_idle(deliver(None)).is_none());
        assert_eq!(Arc::strong_count(&sink), 1, "the sink went with the close");
        queue.lend_sink(sink.clone());
        assert_eq!(Arc::strong_count(&sink), 1, "not lent to a closed queue");
    }

    #[tokio::test]
    async fn bounded_ordered_and_closable() {
        let queue = Queue::<u32>::new(2, 100);
        assert!(queue.try_push(1).is_ok());
        assert!(queue.try_push(2).is_ok());
        assert!(matches!(queue.try_push(3), Err(PushError::Full(3))));
        assert_eq!(queue.len(), 2);
        // A waiting producer gets in once there is room.
        let waiting = async { queue.push(3).await };
        let popping = async {
            tokio::task::yield_now().await;
            queue.try_pop()
        };
        let (pushed, popped) = tokio::join!(waiting, popping);
        assert_eq!((pushed, popped), (Ok(()), Some(1)));
        assert_eq!(queue.pop().await, Some(2));
        queue.close();
        assert!(matches!(queue.try_push(4), Err(PushError::Closed(4))));
        assert_eq!(queue.pop().await, Some(3));
        assert_eq!(queue.pop().await, None);
    }
}
