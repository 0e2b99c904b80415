//! The heartbeat: a ping after a whole interval without input, and the end of a peer that
//! leaves too many unanswered; and how long a write may stall before the peer counts as not
//! reading at all.

use std::pin::Pin;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::Config;
use crate::endpoint::Client;

/// What the heartbeat asks for at a tick.
pub(super) enum Beat {
    /// There was input (or our own backpressure) since the last tick.
    Quiet,
    /// A whole interval without input: ping.
    Ping,
    /// Too many pings went unanswered.
    Dead,
}

/// How long a write may stall before the peer counts as not reading at all.
pub(super) fn stall(config: &Config) -> Duration {
    config.heartbeat.unwrap_or(Duration::from_secs(10)) * config.heartbeat_misses.max(1)
}

/// Pings a peer that has been silent for a whole interval; gives up after the configured
/// number of unanswered pings. The interval and the misses allowed are read from the config.
pub(super) struct Heartbeat {
    missed: u32,
    /// The input stamp at the last tick.
    seen: u64,
}

impl Heartbeat {
    pub(super) fn new(client: &Client) -> Self {
        Heartbeat {
            missed: 0,
            seen: client.input_stamp(),
        }
    }

    /// When the next tick is due: an interval from now, or in a year without a heartbeat.
    pub(super) fn next(config: &Config) -> Instant {
        Instant::now()
            + config
                .heartbeat
                .unwrap_or(Duration::from_secs(86_400 * 365))
    }

    /// Decides what this tick does, and sets the timer for the next one.
    pub(super) fn tick(
        &mut self,
        client: &Client,
        config: &Config,
        timer: Pin<&mut tokio::time::Sleep>,
    ) -> Beat {
        timer.reset(Heartbeat::next(config));
        let stamp = client.input_stamp();
        if stamp != self.seen || client.reading_held_back() {
            self.seen = stamp;
            self.missed = 0;
            Beat::Quiet
        } else if self.missed >= config.heartbeat_misses {
            Beat::Dead
        } else {
            self.missed += 1;
            Beat::Ping
        }
    }
}
