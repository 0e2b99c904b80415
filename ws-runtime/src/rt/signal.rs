//! A wake-up for one waiting task, without a lock: a flag and a waker. It behaves like
//! [`tokio::sync::Notify`] with one waiter (a signal given while nobody waits is kept for the
//! next wait), but polling it takes no lock; a connection's writer polls its signal on every
//! pass, and `Notify` locked its waiter list each time.

use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;

use futures_util::task::AtomicWaker;

#[derive(Debug, Default)]
pub(crate) struct Signal {
    given: AtomicBool,
    waiter: AtomicWaker,
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

#[cfg(test)]
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
