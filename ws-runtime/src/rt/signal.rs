//! A wake-up for one waiting task, without a lock: a flag and a waker. It behaves like
//! [`tokio::sync::Notify`] with one waiter (a signal given while nobody waits is kept for the
//! next wait), but polling it takes no lock; a connection's writer polls its signal on every
//! pass, and `Notify` locked its waiter list each time.

use std::future::poll_fn;
use std::task::Poll;

// Under `--cfg ws_loom` (scripts/test), loom's atomics and waker: a model test explores every
// interleaving of a notify with a wait.
#[cfg(ws_loom)]
use loom::sync::atomic::{AtomicBool, Ordering};
#[cfg(not(ws_loom))]
use {
    futures_util::task::AtomicWaker,
    std::sync::atomic::{AtomicBool, Ordering},
};

/// loom's waker slot, with the signature of `futures`' (a reference to register).
#[cfg(ws_loom)]
#[derive(Debug)]
struct AtomicWaker(loom::future::AtomicWaker);

#[cfg(ws_loom)]
impl AtomicWaker {
    fn new() -> Self {
        AtomicWaker(loom::future::AtomicWaker::new())
    }

    fn register(&self, waker: &std::task::Waker) {
        self.0.register_by_ref(waker);
    }

    fn wake(&self) {
        self.0.wake();
    }
}

#[derive(Debug)]
pub(crate) struct Signal {
    given: AtomicBool,
    waiter: AtomicWaker,
}

impl Default for Signal {
    fn default() -> Self {
        Signal {
            given: AtomicBool::new(false),
            waiter: AtomicWaker::new(),
        }
    }
}

impl Signal {
    /// Wakes the waiter, or the next one to wait.
    pub(crate) fn notify(&self) {
        self.given.store(true, Ordering::Release);
        self.waiter.wake();
    }

    /// Takes the signal if it was given; whether it was. A plain load when it was not (the
    /// reader takes its phase signal before every read).
    pub(crate) fn take(&self) -> bool {
        self.given.load(Ordering::Acquire) && self.given.swap(false, Ordering::AcqRel)
    }

    /// Waits until the signal is given (at once if it was given since the last wait), and
    /// takes it. Cancel-safe: a signal is only taken by a wait that completes.
    pub(crate) async fn wait(&self) {
        poll_fn(|cx| {
            if self.take() {
                return Poll::Ready(());
            }
            self.waiter.register(cx.waker());
            // Given between the check and the registration: its wake may have missed us.
            if self.take() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    }
}

/// Model tests under loom: `RUSTFLAGS="--cfg ws_loom" cargo test -p ws-runtime --lib
/// rt::signal::loom_model` (scripts/test runs it).
#[cfg(all(test, ws_loom))]
mod loom_model {
    use super::*;
    use loom::sync::Arc;

    /// A notify from another thread, before, during or after the wait's registration, ends
    /// the wait (loom reports a wait that is never woken as a deadlock).
    #[test]
    fn a_notify_from_another_thread_ends_the_wait() {
        loom::model(|| {
            let signal = Arc::new(Signal::default());
            let notifier = {
                let signal = signal.clone();
                loom::thread::spawn(move || signal.notify())
            };
            loom::future::block_on(signal.wait());
            notifier.join().unwrap();
            assert!(!signal.take(), "taken by the wait");
        });
    }

    /// Two notifies before a wait are one signal.
    #[test]
    fn notifies_are_kept_until_one_wait_takes_them() {
        loom::model(|| {
            let signal = Arc::new(Signal::default());
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let signal = signal.clone();
                    loom::thread::spawn(move || signal.notify())
                })
                .collect();
            for thread in threads {
                thread.join().unwrap();
            }
            loom::future::block_on(signal.wait());
            assert!(!signal.take());
        });
    }
}

#[cfg(all(test, not(ws_loom)))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_signal_is_kept_until_taken_once() {
        let signal = Signal::default();
        signal.notify();
        signal.notify();
        signal.wait().await;
        // Taken: the next wait needs a new signal.
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(20), signal.wait());
        assert!(waiting.await.is_err());
        let ((), ()) = tokio::join!(
            async {
                tokio::task::yield_now().await;
                signal.notify();
            },
            signal.wait()
        );
    }
}
