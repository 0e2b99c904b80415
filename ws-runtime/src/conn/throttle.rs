//! The rate limit on reading (GCRA over bytes, frames and inflated bytes): reading pauses
//! while a client is ahead of its rate, which is backpressure, never a close.

use std::time::Duration;

use tokio::time::Instant;

use crate::config::RateLimit;

/// Bursts up to this much of the rate pass at once.
const BURST: Duration = Duration::from_secs(1);

/// A rate limit kept as the "theoretical arrival time" of bytes, of frames and of inflated
/// bytes (GCRA): each unit read pushes its clock forward by 1/rate; reading waits while one
/// is more than `BURST` ahead. Inflated bytes (permessage-deflate) have a clock of their own
/// at the bytes' rate: a message compressed a thousandfold costs the server its inflated
/// size in work (inflating, then compressing for each receiver), not its size on the wire.
pub(super) struct Throttle {
    limit: RateLimit,
    bytes_at: Instant,
    frames_at: Instant,
    inflated_at: Instant,
}

impl Throttle {
    pub(super) fn new(limit: RateLimit) -> Self {
        let now = Instant::now();
        Throttle {
            limit,
            bytes_at: now,
            frames_at: now,
            inflated_at: now,
        }
    }

    /// When reading may go on.
    #[inline]
    pub(super) fn ready_at(&self) -> Instant {
        let ahead = self.bytes_at.max(self.frames_at).max(self.inflated_at);
        ahead.checked_sub(BURST).unwrap_or(ahead)
    }

    /// Bytes that may be read now without going past the burst (at least 1 KiB, so that
    /// reading goes on in steps once it may).
    #[inline]
    pub(super) fn allowance(&self) -> usize {
        let ahead = self.bytes_at.saturating_duration_since(Instant::now());
        let left = BURST.saturating_sub(ahead).as_secs_f64();
        let bytes = left * self.limit.bytes_per_second as f64;
        // Saturating: a fraction of the limit per second, never more than it.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let bytes = bytes as usize;
        bytes.max(1024)
    }

    /// Bytes read from the socket.
    #[inline]
    pub(super) fn read(&mut self, bytes: u64) {
        let now = Instant::now();
        self.bytes_at = self.bytes_at.max(now) + cost(bytes, self.limit.bytes_per_second);
    }

    /// Frames decoded, and bytes inflated for them; whether reading must now wait before
    /// decoding more (see [`ready_at`](Throttle::ready_at)).
    #[inline]
    pub(super) fn decoded(&mut self, frames: u64, inflated: u64) -> bool {
        let now = Instant::now();
        if frames > 0 {
            self.frames_at = self.frames_at.max(now) + cost(frames, self.limit.frames_per_second);
        }
        if inflated > 0 {
            self.inflated_at =
                self.inflated_at.max(now) + cost(inflated, self.limit.bytes_per_second);
        }
        self.ready_at() > now
    }
}

/// How long `units` take at `per_second`.
fn cost(units: u64, per_second: u64) -> Duration {
    let nanos = u128::from(units) * 1_000_000_000 / u128::from(per_second.max(1));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_allows_a_burst_then_paces() {
        let mut throttle = Throttle::new(RateLimit {
            bytes_per_second: 1000,
            frames_per_second: 10,
        });
        let mut throttle_big = Throttle::new(RateLimit {
            bytes_per_second: 100_000,
            frames_per_second: 10,
        });
        // A fresh limit allows its one-second burst, and less once some is used.
        let fresh = throttle_big.allowance();
        assert_eq!(fresh, 100_000);
        throttle_big.read(60_000);
        // 40,000, and more by the time that passes meanwhile (a loaded test machine).
        let left = throttle_big.allowance();
        assert!((40_000..100_000).contains(&left), "{left}");
        throttle_big.read(200_000);
        assert_eq!(throttle_big.allowance(), 1024, "at least a step");
        throttle.read(900);
        assert!(!throttle.decoded(5, 0), "within the one-second burst");
        throttle.read(1100);
        let wait = throttle.ready_at() - Instant::now();
        assert!(
            wait > Duration::from_millis(900) && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert_eq!(cost(3, 2), Duration::from_millis(1500));
    }

    /// Inflated bytes have a clock of their own at the bytes' rate: a client whose 100 bytes
    /// on the wire inflate to 64 KiB is paced by the 64 KiB.
    #[test]
    fn inflated_bytes_are_paced_like_bytes() {
        let mut throttle = Throttle::new(RateLimit {
            bytes_per_second: 100_000,
            frames_per_second: 1000,
        });
        throttle.read(100);
        assert!(!throttle.decoded(1, 60_000), "within the burst");
        assert!(
            throttle.decoded(1, 60_000),
            "120,000 inflated: ahead of the rate"
        );
        let wait = throttle.ready_at() - Instant::now();
        assert!(
            wait > Duration::from_millis(150) && wait <= Duration::from_millis(200),
            "{wait:?}"
        );
    }
}
