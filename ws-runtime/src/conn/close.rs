//! The close handshake (RFC 6455 §7) of one connection, as one state machine shared by its
//! reader and writer: where it stands ([`Phase`]), the close that ended the connection, and
//! every transition between them. The reader and the writer only report what happened
//! ("the peer's close arrived", "our close went out", "the peer reads nothing"); the rules
//! are here.
//!
//! | phase | entered when | the reader | the writer |
//! | --- | --- | --- | --- |
//! | `Open` | the connection opens | reads; a close wanted (by a hook, the endpoint, a protocol error, the peer's close) is queued for the writer | writes; sends a wanted close ([`CloseHandshake::sent`]) |
//! | `CloseSent(at)` | our close frame went out first | reads until the peer's close, or until `at` + close timeout | stops |
//! | `ReaderDone` | the reader ended: the peer's close read (and answered), end of stream, error, or no reply in time | has stopped | sends a close still wanted, then stops |
//! | `Abort` | the writer gave up on a peer that reads nothing, or could not write a control frame | stops at once | has stopped |
//!
//! A connection never goes back to `Open`. The close handed to `on_close` is the first one
//! recorded (sent or received), 1006 when none was.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::endpoint::Client;
use crate::message::Close;
use crate::rt::signal::Signal;

/// Where the close handshake stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Data flows both ways.
    Open,
    /// Our close frame went out at this instant; the reader waits for the reply until the
    /// close timeout.
    CloseSent(Instant),
    /// The reader has finished: the writer sends a pending close, if any, and stops.
    ReaderDone,
    /// The writer gave up on a peer that does not read: the reader stops too.
    Abort,
}

/// The writer gave up on the connection: the reader stops.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Aborted;

/// The phase and the outcome behind one lock.
#[derive(Debug)]
struct State {
    phase: Phase,
    /// The close that ended the connection: the first one sent or received wins.
    outcome: Option<Close>,
}

/// One connection's close handshake, shared by its reader and writer, with a wake-up for the
/// reader (the writer learns of the reader's end through the client's urgent signal). Lighter
/// than a `watch` channel, which allocated shared state per connection and kept a waiter node
/// in the reader's state while it waited.
#[derive(Debug)]
pub(super) struct CloseHandshake {
    state: Mutex<State>,
    /// Whether the phase is still `Open`, readable without the lock (the reader looks before
    /// every read).
    open: AtomicBool,
    /// Given on every change of phase; only the reader waits for it.
    changed: Signal,
}

impl CloseHandshake {
    pub(super) fn new() -> Self {
        CloseHandshake {
            state: Mutex::new(State {
                phase: Phase::Open,
                outcome: None,
            }),
            open: AtomicBool::new(true),
            changed: Signal::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The current phase.
    #[inline]
    pub(super) fn phase(&self) -> Phase {
        if self.open.load(Ordering::Acquire) {
            return Phase::Open;
        }
        self.lock().phase
    }

    /// Moves to `phase`, past `Open` for good, and wakes the reader.
    fn enter(&self, mut state: MutexGuard<'_, State>, phase: Phase) {
        state.phase = phase;
        self.open.store(false, Ordering::Release);
        drop(state);
        self.changed.notify();
    }

    fn record(state: &mut State, close: Close) {
        if state.outcome.is_none() {
            state.outcome = Some(close);
        }
    }

    // Transitions reported by the reader.

    /// The peer broke the protocol: this close is the connection's outcome. The reader has
    /// it sent behind the replies to what came before the failure (or at once, ahead of
    /// them, when they take longer than the close timeout), then stops.
    pub(super) fn failed(&self, close: Close) {
        Self::record(&mut self.lock(), close);
    }

    /// The peer's close frame arrived. Open, it closes first: we answer with its code and
    /// record it. After our own close, it is the reply the reader waited for.
    pub(super) fn peer_closed(&self, close: Close, client: &Client) {
        let mut state = self.lock();
        if state.phase == Phase::Open {
            Self::record(&mut state, close.clone());
            drop(state);
            client.close_urgently(close);
        }
    }

    /// The reader has ended, for whatever reason: the writer sends a close still wanted, then
    /// stops.
    pub(super) fn reader_done(&self, client: &Client) {
        self.enter(self.lock(), Phase::ReaderDone);
        client.urgent_notify.notify();
    }

    /// How long the reader may still wait for input: no limit while open; after our close,
    /// until the close timeout; [`Aborted`] once the writer gave up (stop reading). Takes the
    /// change signal, so that [`changed`](CloseHandshake::changed) wakes only for a later
    /// change.
    #[inline]
    pub(super) fn read_deadline(
        &self,
        close_timeout: Duration,
    ) -> Result<Option<Instant>, Aborted> {
        self.changed.take();
        match self.phase() {
            Phase::CloseSent(at) => Ok(Some(at + close_timeout)),
            Phase::Abort => Err(Aborted),
            Phase::Open | Phase::ReaderDone => Ok(None),
        }
    }

    /// The reader waited past the close timeout for the peer's reply.
    pub(super) fn no_reply() {
        tracing::debug!("no close reply within the close timeout; dropping the connection");
    }

    /// Waits for a change of phase since the last [`read_deadline`] or wait (the reader
    /// only).
    ///
    /// [`read_deadline`]: CloseHandshake::read_deadline
    pub(super) async fn changed(&self) {
        self.changed.wait().await;
    }

    /// Waits until the connection is past the open phase (the reader only).
    pub(super) async fn closing(&self) {
        while self.phase() == Phase::Open {
            self.changed.wait().await;
        }
    }

    // Transitions reported by the writer.

    /// Whether the reader has ended, so that the writer stops.
    #[inline]
    pub(super) fn reader_is_done(&self) -> bool {
        self.phase() == Phase::ReaderDone
    }

    /// The close the writer sends for this request: a code that cannot go on the wire
    /// becomes 1011.
    pub(super) fn sendable(close: Close) -> Close {
        if close.code != Close::NO_STATUS && !Close::is_sendable(close.code) {
            tracing::error!(code = close.code, "close code cannot be sent; using 1011");
            return Close::new(Close::INTERNAL_ERROR, "Internal error");
        }
        close
    }

    /// Our close frame went out (or its write ended): it is recorded, and, when we closed
    /// first, the reader waits for the reply from now on.
    pub(super) fn sent(&self, close: Close) {
        let mut state = self.lock();
        Self::record(&mut state, close);
        if state.phase == Phase::Open {
            self.enter(state, Phase::CloseSent(Instant::now()));
        }
    }

    /// The writer gave up (a peer that reads nothing, a control frame that could not be
    /// written): the reader stops at once. `close` is recorded if none was.
    pub(super) fn abort(&self, close: Option<Close>) {
        let mut state = self.lock();
        if let Some(close) = close {
            Self::record(&mut state, close);
        }
        self.enter(state, Phase::Abort);
    }

    /// The close that ended the connection: the first recorded, 1006 without one.
    pub(super) fn into_close(self) -> Close {
        self.state
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
            .outcome
            .unwrap_or_else(|| Close::new(Close::ABNORMAL, ""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    #[test]
    fn the_reader_is_woken_by_phase_changes_made_after_it_looked() {
        let handshake = CloseHandshake::new();
        let timeout = Duration::from_secs(3);
        assert_eq!(handshake.read_deadline(timeout), Ok(None));
        assert!(
            handshake.changed().now_or_never().is_none(),
            "no change yet"
        );
        assert!(handshake.closing().now_or_never().is_none(), "still open");
        handshake.sent(Close::new(1000, "bye"));
        let Phase::CloseSent(at) = handshake.phase() else {
            panic!("our close went out: {:?}", handshake.phase());
        };
        assert!(
            handshake.changed().now_or_never().is_some(),
            "a change after the reader looked"
        );
        assert_eq!(handshake.read_deadline(timeout), Ok(Some(at + timeout)));
        handshake.sent(Close::new(1001, "again"));
        assert_eq!(
            handshake.phase(),
            Phase::CloseSent(at),
            "the first close's instant stays"
        );
        handshake.abort(None);
        handshake.sent(Close::new(1002, "late"));
        assert_eq!(
            handshake.read_deadline(timeout),
            Err(Aborted),
            "aborted: the reader stops"
        );
        assert!(
            handshake.changed().now_or_never().is_none(),
            "a change seen already does not wake again"
        );
        assert!(handshake.closing().now_or_never().is_some());
        assert_eq!(
            handshake.into_close(),
            Close::new(1000, "bye"),
            "the first wins"
        );
    }

    #[test]
    fn without_any_close_the_connection_ended_abnormally() {
        let handshake = CloseHandshake::new();
        handshake.abort(None);
        assert_eq!(handshake.into_close().code, Close::ABNORMAL);
        let handshake = CloseHandshake::new();
        handshake.abort(Some(Close::new(1008, "Send timeout")));
        assert_eq!(handshake.into_close().code, 1008);
    }

    #[test]
    fn an_unsendable_code_becomes_1011() {
        assert_eq!(CloseHandshake::sendable(Close::new(1006, "")).code, 1011);
        assert_eq!(CloseHandshake::sendable(Close::new(1005, "")).code, 1005);
        assert_eq!(CloseHandshake::sendable(Close::new(4000, "x")).code, 4000);
    }
}
