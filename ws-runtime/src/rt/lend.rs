//! Scratch buffers lent by the worker thread for one burst of work: the batches moved between
//! a connection's reader, handler and writer, the writer's staging buffer, and the reader's
//! buffer while it waits for input (the pools are declared with [`lend!`] beside the types they
//! hold). A connection takes one when a burst needs it and gives it back when the burst is
//! done, so a busy server reuses a few buffers per thread instead of allocating and freeing
//! them per batch, and an idle connection holds none.
//!
//! Allocating them per batch cost more than their size suggests: in a burst of small messages,
//! glibc keeps the freed payloads in its fast bins, and every allocation of a kilobyte or more
//! first merges all of them (`malloc_consolidate`); `BENCHMARKS.md` and the changelog have the
//! measurements.
//!
//! # Memory held
//!
//! Each worker thread keeps at most [`KEPT`] buffers of each kind, each of at most
//! [`KEPT_BYTES`]; a larger one is freed when given back. There are five kinds (the writer's
//! staging bytes, the reader's batch, the handler's take, the writer's take, and read buffers),
//! so a thread holds at most 2.5 MiB, whatever the number of connections. In practice far less:
//! read buffers are pooled only at the configured read size (`Config::read_buffer_size`, 4 ×
//! 4 KiB by default), the batches and takes hold at most a few dozen entries, and the staging
//! buffer is written out once it holds 64 KiB (its capacity stays under 128 KiB); about
//! 0.6 MiB per thread at most. It is memory of the
//! process, not of a connection: `ws-bench memory` (RSS growth per connection over 10,000
//! connections) counts it, spread over all of them.

use std::cell::RefCell;
use std::thread::LocalKey;

/// Buffers of one kind kept per thread.
pub(crate) const KEPT: usize = 4;

/// A buffer whose capacity takes more bytes than this is freed, not kept.
pub(crate) const KEPT_BYTES: usize = 128 << 10;

/// A buffer that can be lent: emptied when given back.
pub(crate) trait Lend: Default + Sized + 'static {
    /// This kind's buffers kept by the current thread.
    fn kept() -> &'static LocalKey<RefCell<Vec<Self>>>;

    /// Bytes its capacity takes.
    fn capacity_bytes(&self) -> usize;

    /// Empties it, keeping its capacity.
    fn clear(&mut self);

    /// A kept buffer of this kind, or a new empty one.
    fn take() -> Self {
        Self::kept()
            .try_with(|kept| kept.borrow_mut().pop())
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    /// Gives a buffer back for later bursts on this thread (or frees it: too large, or enough
    /// are kept). Leaves an empty one without memory in its place.
    fn give_back(buffer: &mut Self) {
        let mut buffer = std::mem::take(buffer);
        let bytes = buffer.capacity_bytes();
        if bytes == 0 || bytes > KEPT_BYTES {
            return;
        }
        buffer.clear();
        // During the thread's teardown the buffer is simply freed.
        let _ = Self::kept().try_with(|kept| {
            let mut kept = kept.borrow_mut();
            if kept.len() < KEPT {
                kept.push(buffer);
            }
        });
    }
}

/// Implements [`Lend`] for a buffer type: `lend!(Vec<T>)` or `lend!(VecDeque<T>)` for a
/// container, or `lend!(Type, |b| capacity_bytes, |b| clear)`. Each type gets a pool of its
/// own per thread.
macro_rules! lend {
    ($container:ident < $item:ty >) => {
        $crate::rt::lend::lend!(
            $container<$item>,
            |buffer| buffer.capacity() * size_of::<$item>(),
            |buffer| { $container::clear(buffer) }
        );
    };
    ($kind:ty, |$c:ident| $capacity:expr, |$b:ident| $clear:expr) => {
        impl $crate::rt::lend::Lend for $kind {
            fn kept() -> &'static ::std::thread::LocalKey<::std::cell::RefCell<Vec<Self>>> {
                ::std::thread_local! {
                    static KEPT_HERE: ::std::cell::RefCell<Vec<$kind>> =
                        const { ::std::cell::RefCell::new(Vec::new()) };
                }
                &KEPT_HERE
            }

            fn capacity_bytes(&self) -> usize {
                let $c = self;
                $capacity
            }

            fn clear(&mut self) {
                let $b = self;
                $clear;
            }
        }
    };
}

pub(crate) use lend;

lend!(Vec<u8>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_given_back_is_lent_again_empty() {
        let mut buffer = Vec::<u8>::take();
        buffer.extend_from_slice(&[1; 100]);
        let capacity = buffer.capacity();
        Lend::give_back(&mut buffer);
        assert_eq!(buffer.capacity(), 0, "nothing left in its place");
        let again = Vec::<u8>::take();
        assert!(again.is_empty());
        assert_eq!(again.capacity(), capacity, "the same allocation");
    }

    #[test]
    fn large_or_surplus_buffers_are_freed() {
        let mut large = Vec::<u8>::with_capacity(KEPT_BYTES + 1);
        Lend::give_back(&mut large);
        assert_eq!(Vec::<u8>::take().capacity(), 0, "too large to keep");
        for _ in 0..KEPT + 2 {
            let mut buffer = Vec::<u8>::with_capacity(64);
            Lend::give_back(&mut buffer);
        }
        let kept = <Vec<u8> as Lend>::kept().with(|kept| kept.borrow().len());
        assert_eq!(kept, KEPT);
    }
}
