//! The delay between reconnection attempts: exponential, capped, with "equal jitter" (half
//! the step fixed, half random) so that nodes cut off together do not come back in step.

use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

/// The first step; each failed attempt doubles it.
const BASE: Duration = Duration::from_millis(100);
/// No step is longer: a returning Redis is found within this (plus the connect).
const CAP: Duration = Duration::from_secs(2);

/// Delays between attempts: step `d = min(CAP, BASE · 2ⁿ)` after the `n`th failure in a row,
/// sleep `d/2 + random(0..=d/2)`; [`reset`](Backoff::reset) after a success.
pub(crate) struct Backoff {
    failures: u32,
    random: Box<dyn FnMut() -> u64 + Send>,
}

impl Backoff {
    /// Random from `RandomState` (seeded by the OS, stepped per instance), as `NodeId`s are:
    /// jitter needs no cryptographic quality, only a different draw on every node.
    pub(crate) fn new() -> Backoff {
        let state = RandomState::new();
        let mut counter = 0_u64;
        Backoff::with_random(move || {
            counter = counter.wrapping_add(1);
            state.hash_one(counter)
        })
    }

    /// With a given source of random numbers (tests use a fixed sequence).
    pub(crate) fn with_random(random: impl FnMut() -> u64 + Send + 'static) -> Backoff {
        Backoff {
            failures: 0,
            random: Box::new(random),
        }
    }

    /// The delay before the next attempt, counting one more failure.
    pub(crate) fn next_delay(&mut self) -> Duration {
        // 2⁵ · 100 ms is past the cap already; stop counting there (no overflow).
        let step = BASE.saturating_mul(1 << self.failures.min(5)).min(CAP);
        self.failures = self.failures.saturating_add(1);
        let half = step / 2;
        #[allow(
            clippy::cast_possible_truncation,
            reason = "at most one second in nanoseconds"
        )]
        let half_nanos = half.as_nanos() as u64;
        half + Duration::from_nanos((self.random)() % (half_nanos + 1))
    }

    /// After a successful connection: the next failure starts again from the first step.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed, reproducible sequence (an LCG): the delays below are exact.
    fn seeded(mut seed: u64) -> impl FnMut() -> u64 + Send + 'static {
        move || {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            seed
        }
    }

    #[test]
    fn steps_double_up_to_the_cap_with_equal_jitter() {
        let mut backoff = Backoff::with_random(seeded(42));
        let steps_ms = [100, 200, 400, 800, 1600, 2000, 2000, 2000];
        for (n, step) in steps_ms.into_iter().enumerate() {
            let delay = backoff.next_delay();
            let half = Duration::from_millis(step / 2);
            assert!(
                delay >= half && delay <= half * 2,
                "attempt {n}: {delay:?} outside [{half:?}, {:?}]",
                half * 2
            );
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_delays_and_reset_starts_over() {
        let mut a = Backoff::with_random(seeded(7));
        let mut b = Backoff::with_random(seeded(7));
        let first: Vec<Duration> = (0..10).map(|_| a.next_delay()).collect();
        let second: Vec<Duration> = (0..10).map(|_| b.next_delay()).collect();
        assert_eq!(first, second);
        assert!(
            first.windows(2).any(|w| w[0] != w[1]),
            "jittered: {first:?}"
        );

        a.reset();
        let again = a.next_delay();
        assert!(again <= Duration::from_millis(100), "{again:?}");
        assert!(again >= Duration::from_millis(50), "{again:?}");
    }

    #[test]
    fn the_random_part_spans_the_whole_half() {
        // The extremes of the random source give the extremes of the range.
        let mut low = Backoff::with_random(|| 0);
        assert_eq!(low.next_delay(), Duration::from_millis(50));
        let mut high = Backoff::with_random(|| u64::MAX);
        let delay = high.next_delay();
        assert!(delay > Duration::from_millis(50) && delay <= Duration::from_millis(100));
        for _ in 0..10 {
            high.next_delay();
        }
        assert!(high.next_delay() <= CAP);
        let mut unseeded = Backoff::new();
        let delay = unseeded.next_delay();
        assert!(delay >= Duration::from_millis(50) && delay <= Duration::from_millis(100));
    }
}
