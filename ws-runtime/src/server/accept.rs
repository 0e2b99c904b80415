//! Accept errors: out of file descriptors (or kernel memory), the accept loop pauses, longer
//! each time up to a cap, and logs once per interval with a count, instead of spinning and
//! logging each failure; a peer that reset before its accept is skipped without a pause.

use std::io;
use std::time::Duration;

use tokio::time::Instant;

/// The first pause after a failed accept, doubled at each failure in a row up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(5);

/// The longest pause: descriptors freed are used again within this.
const MAX_PAUSE: Duration = Duration::from_millis(100);

/// At most one log line per this interval while accepts keep failing.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// The accept loop's record of failures: the pause after the last one, and what was logged.
#[derive(Debug, Default)]
pub(super) struct AcceptErrors {
    pause: Duration,
    /// Failures since the last log line.
    unlogged: u64,
    /// Failures in a row, since the last accept.
    in_a_row: u64,
    /// When a line was last logged.
    logged_at: Option<Instant>,
    /// Whether this series of failures was logged: its end is logged then, not otherwise.
    series_logged: bool,
}

impl AcceptErrors {
    /// An accept failed with `err`: how long to pause before the next one (zero for a peer's
    /// own failure). A line is logged at most once per [`LOG_EVERY`], with the failures since
    /// the last one; so the first failure of a series is logged at once, unless another series
    /// was logged less than that ago (as when freed descriptors are taken again at once).
    pub(super) fn failed(&mut self, err: &io::Error) -> Duration {
        if matches!(
            err.kind(),
            io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
        ) {
            tracing::debug!("accept failed: {err}");
            return Duration::ZERO;
        }
        let now = Instant::now();
        let due = self
            .logged_at
            .is_none_or(|at| now.duration_since(at) >= LOG_EVERY);
        if due && self.unlogged == 0 {
            tracing::warn!(
                "accept failed: {err}; retrying in pauses of up to {MAX_PAUSE:?}, open connections are still served (logged again at most every {LOG_EVERY:?})"
            );
        } else if due {
            tracing::warn!(
                "accept failed {} times since the last report: {err}",
                self.unlogged + 1
            );
        }
        if due {
            self.logged_at = Some(now);
            self.unlogged = 0;
            self.series_logged = true;
        } else {
            self.unlogged += 1;
        }
        self.in_a_row += 1;
        self.pause = if self.pause.is_zero() {
            FIRST_PAUSE
        } else {
            (self.pause * 2).min(MAX_PAUSE)
        };
        self.pause
    }

    /// An accept succeeded: the series of failures, if any, is over (and said to be, if it was
    /// logged).
    pub(super) fn accepted(&mut self) {
        if self.in_a_row == 0 {
            return;
        }
        if self.series_logged {
            tracing::info!("accepting again, after {} failed accepts", self.in_a_row);
        }
        self.in_a_row = 0;
        self.pause = Duration::ZERO;
        self.series_logged = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn pauses_grow_to_a_cap_and_reset_after_an_accept() {
        let mut errors = AcceptErrors::default();
        let full = io::Error::from_raw_os_error(24); // EMFILE
        let pauses: Vec<Duration> = (0..7).map(|_| errors.failed(&full)).collect();
        let ms = |n| Duration::from_millis(n);
        assert_eq!(
            pauses,
            [ms(5), ms(10), ms(20), ms(40), ms(80), ms(100), ms(100)]
        );
        assert_eq!(errors.unlogged, 6, "logged once, for the first");
        tokio::time::advance(LOG_EVERY).await;
        errors.failed(&full);
        assert_eq!(errors.unlogged, 0, "and again once the interval is over");
        errors.accepted();
        assert_eq!(
            errors.failed(&full),
            ms(5),
            "a new series starts from the first pause"
        );
        assert!(
            !errors.series_logged,
            "within the interval: counted, not logged"
        );
        assert_eq!(errors.unlogged, 1);
        let reset = io::Error::from(io::ErrorKind::ConnectionAborted);
        assert_eq!(
            errors.failed(&reset),
            Duration::ZERO,
            "a peer's failure: no pause"
        );
    }
}
