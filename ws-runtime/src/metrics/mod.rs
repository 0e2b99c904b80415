//! What a socket counts for its operators: the socket-wide counters and timings behind
//! [`Endpoint::stats`](crate::Endpoint::stats), and, with the feature `metrics`, the same
//! figures through the [`metrics`](https://docs.rs/metrics) facade (`export.rs`).
//!
//! The counters of data (messages and bytes) are not kept here: each client counts its own
//! ([`ClientInfo`](crate::ClientInfo)), without sharing a cache line with the others, and a
//! snapshot adds them up with what the closed clients counted. Everything else is an event
//! rare enough for one shared atomic.

#[cfg(feature = "metrics")]
mod export;
#[cfg(not(feature = "metrics"))]
mod off;

#[cfg(feature = "metrics")]
pub(crate) use export::Exported;
#[cfg(not(feature = "metrics"))]
pub(crate) use off::Exported;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Why a handshake was refused: the `reason` of `ws_handshakes_refused_total` and of the
/// `handshake refused` log event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum RefusalReason {
    /// Refused by `on_handshake` (its [`Reject`](crate::Reject), whatever the status).
    Rejected,
    /// The `Origin` is not allowed ([`Config::origins`](crate::Config::origins)): 403.
    Origin,
    /// Not a valid WebSocket handshake (method, `Upgrade`, `Sec-WebSocket-Key`, version):
    /// 400, 405 or 426.
    Protocol,
    /// A connection limit ([`Config::max_connections`](crate::Config::max_connections), per
    /// IP): 503 or 429.
    Limit,
    /// The server is shutting down: 503.
    Shutdown,
    /// `on_handshake` panicked, or the connection cannot be upgraded: 500.
    Error,
}

impl RefusalReason {
    /// Every reason, in label order.
    pub const ALL: [RefusalReason; 6] = [
        RefusalReason::Rejected,
        RefusalReason::Origin,
        RefusalReason::Protocol,
        RefusalReason::Limit,
        RefusalReason::Shutdown,
        RefusalReason::Error,
    ];

    /// The label value: `rejected`, `origin`, `protocol`, `limit`, `shutdown`, `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalReason::Rejected => "rejected",
            RefusalReason::Origin => "origin",
            RefusalReason::Protocol => "protocol",
            RefusalReason::Limit => "limit",
            RefusalReason::Shutdown => "shutdown",
            RefusalReason::Error => "error",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How a backplane operation failed: the `kind` of `ws_backplane_failures_total`.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Failure {
    /// Not published: the link was down, or its queue full.
    Unsent,
    /// Published by another node to this one, never arrived (a gap in its sequence).
    Missed,
    /// Arrived, and could not be read.
    Unreadable,
}

/// The `code` label values, by slot: RFC 6455's codes 1000 to 1015 as themselves, then
/// `application` (3000 to 4999) and `other`.
const CODES: [&str; 18] = [
    "1000",
    "1001",
    "1002",
    "1003",
    "1004",
    "1005",
    "1006",
    "1007",
    "1008",
    "1009",
    "1010",
    "1011",
    "1012",
    "1013",
    "1014",
    "1015",
    "application",
    "other",
];

/// The slot of a close code in [`CODES`].
fn code_slot(code: u16) -> usize {
    match code {
        1000..=1015 => usize::from(code - 1000),
        3000..=4999 => 16,
        _ => 17,
    }
}

/// The `code` label of a close code: RFC 6455's codes (1000 to 1015) as themselves, 3000 to
/// 4999 as `application`, anything else as `other`. A bounded set, whatever peers send.
pub fn code_label(code: u16) -> &'static str {
    CODES[code_slot(code)]
}

/// Upper bounds of the timing buckets, in nanoseconds: 100 µs to 10 s, about three per
/// decade (Prometheus' habit), and above them the overflow.
const BOUNDS_NS: [u64; 16] = [
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// A histogram of durations with fixed buckets, updated with atomics.
#[derive(Debug, Default)]
pub(crate) struct Timer {
    buckets: [AtomicU64; BOUNDS_NS.len() + 1],
    sum_ns: AtomicU64,
}

impl Timer {
    pub(crate) fn record(&self, took: Duration) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let slot = BOUNDS_NS.partition_point(|&bound| bound < ns);
        self.buckets[slot].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Timing {
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(BOUNDS_NS.len());
        for (bound, count) in BOUNDS_NS.iter().zip(&self.buckets) {
            cumulative += count.load(Ordering::Relaxed);
            buckets.push((Duration::from_nanos(*bound), cumulative));
        }
        let overflow = self.buckets[BOUNDS_NS.len()].load(Ordering::Relaxed);
        Timing {
            count: cumulative + overflow,
            sum: Duration::from_nanos(self.sum_ns.load(Ordering::Relaxed)),
            buckets,
        }
    }
}

/// Durations counted in buckets, as a Prometheus histogram keeps them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Timing {
    /// How many were measured.
    pub count: u64,
    /// Their sum.
    pub sum: Duration,
    /// For each bucket's upper bound (100 µs to 10 s), how many took at most that long.
    pub buckets: Vec<(Duration, u64)>,
}

impl Timing {
    /// The upper bound of the bucket holding the `q` quantile (`0.5`, `0.99`, ...) of what
    /// was measured: an estimate from above. `None` when nothing was measured, or when the
    /// quantile is beyond the last bucket (over 10 s).
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        if self.count == 0 {
            return None;
        }
        // The rank of the quantile, counted from 1, as a float comparison on counts.
        #[allow(
            clippy::cast_precision_loss,
            reason = "counts far below 2^52; an estimate anyway"
        )]
        let rank = (q.clamp(0.0, 1.0) * self.count as f64).ceil().max(1.0);
        #[allow(clippy::cast_precision_loss, reason = "as above")]
        self.buckets
            .iter()
            .find(|(_, count)| *count as f64 >= rank)
            .map(|(bound, _)| *bound)
    }

    /// The mean, if anything was measured.
    pub fn mean(&self) -> Option<Duration> {
        let count = u32::try_from(self.count).unwrap_or(u32::MAX);
        (count > 0).then(|| self.sum / count)
    }

    /// What was measured since `earlier`, a snapshot of the same timer.
    #[must_use]
    pub fn since(&self, earlier: &Timing) -> Timing {
        Timing {
            count: self.count.saturating_sub(earlier.count),
            sum: self.sum.saturating_sub(earlier.sum),
            buckets: self
                .buckets
                .iter()
                .zip(
                    earlier
                        .buckets
                        .iter()
                        .map(|(_, n)| *n)
                        .chain(std::iter::repeat(0)),
                )
                .map(|((bound, now), then)| (*bound, now.saturating_sub(then)))
                .collect(),
        }
    }
}

/// What a socket has counted since it was created ([`Endpoint::stats`](crate::Endpoint::stats)):
/// the figures of the `metrics` feature's table, without a recorder. Counters only grow;
/// rates are the differences between two snapshots.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SocketStats {
    /// The socket's name, the `socket` label ([`Config::name`](crate::Config::name)).
    pub socket: String,
    /// Open connections now.
    pub connections: usize,
    /// Connections that completed the handshake.
    pub opened: u64,
    /// Refused handshakes by [`RefusalReason`] label, every reason listed.
    pub refused: BTreeMap<&'static str, u64>,
    /// Closed connections by [`code_label`] of the close that ended them; only codes seen.
    pub closed: BTreeMap<&'static str, u64>,
    /// Data messages received (a fragmented message counts once).
    pub messages_received: u64,
    /// Data messages sent (a broadcast counts once per receiver).
    pub messages_sent: u64,
    /// Bytes read from the connections: the WebSocket stream as on the wire (after
    /// compression, before TLS), frame headers and control frames included.
    pub received_bytes: u64,
    /// Bytes written to the connections, counted the same way.
    pub sent_bytes: u64,
    /// Clients closed with 1008 because their send queue was full ([`SlowConsumer::Close`](crate::SlowConsumer::Close)).
    pub slow_consumer_closes: u64,
    /// Messages not queued for a client whose queue was full ([`SlowConsumer::Drop`](crate::SlowConsumer::Drop)
    /// and the non-waiting sends under [`Wait`](crate::SlowConsumer::Wait)).
    pub slow_consumer_drops: u64,
    /// Times a client's reading waited for its rate limit.
    pub rate_limit_pauses: u64,
    /// Clients closed with 1008 for leaving the heartbeat's pings unanswered.
    pub heartbeat_timeouts: u64,
    /// The round trip of the heartbeat's pings (sent to connections idle for an interval).
    pub ping_rtt: Timing,
    /// The time to queue one delivery for all its receivers on this node (broadcasts and
    /// room deliveries, not sends to one client).
    pub fanout: Timing,
}

/// The counters and timings of one socket that no client keeps, and (feature `metrics`) its
/// handles in the installed recorder.
#[derive(Debug)]
pub(crate) struct Meter {
    name: Arc<str>,
    opened: AtomicU64,
    refused: [AtomicU64; RefusalReason::ALL.len()],
    closed: [AtomicU64; CODES.len()],
    /// What the closed clients counted (a close is rare: a lock is cheap enough).
    gone: Mutex<Traffic>,
    slow_closes: AtomicU64,
    slow_drops: AtomicU64,
    rate_limit_pauses: AtomicU64,
    heartbeat_timeouts: AtomicU64,
    ping_rtt: Timer,
    fanout: Timer,
    #[cfg(feature = "metrics")]
    export: std::sync::OnceLock<Exported>,
}

/// What a client counted, as [`Meter::gone`] and the snapshot add it up.
#[derive(Clone, Debug, Default)]
pub(crate) struct Traffic {
    pub(crate) messages_received: u64,
    pub(crate) messages_sent: u64,
    pub(crate) received_bytes: u64,
    pub(crate) sent_bytes: u64,
}

impl Traffic {
    pub(crate) fn add(&mut self, other: &Traffic) {
        self.messages_received += other.messages_received;
        self.messages_sent += other.messages_sent;
        self.received_bytes += other.received_bytes;
        self.sent_bytes += other.sent_bytes;
    }
}

impl Meter {
    pub(crate) fn new(name: &str) -> Self {
        Meter {
            name: name.into(),
            opened: AtomicU64::new(0),
            refused: Default::default(),
            closed: Default::default(),
            gone: Mutex::default(),
            slow_closes: AtomicU64::new(0),
            slow_drops: AtomicU64::new(0),
            rate_limit_pauses: AtomicU64::new(0),
            heartbeat_timeouts: AtomicU64::new(0),
            ping_rtt: Timer::default(),
            fanout: Timer::default(),
            #[cfg(feature = "metrics")]
            export: std::sync::OnceLock::new(),
        }
    }

    /// Registers this socket's metrics with the recorder installed now (feature `metrics`),
    /// once: when the socket starts. The backplane's only if it is `clustered`, history's only
    /// if it keeps `history`.
    #[cfg_attr(not(feature = "metrics"), allow(clippy::unused_self))]
    pub(crate) fn start(&self, clustered: bool, history: bool) {
        #[cfg(feature = "metrics")]
        self.export
            .get_or_init(|| Exported::new(&self.name, clustered, history));
        #[cfg(not(feature = "metrics"))]
        let _ = (clustered, history);
    }

    /// The handles in the recorder, once the socket started (never without the feature
    /// `metrics`).
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(clippy::unused_self))]
    pub(crate) fn export(&self) -> Option<&Exported> {
        #[cfg(feature = "metrics")]
        return self.export.get();
        #[cfg(not(feature = "metrics"))]
        None
    }

    /// A connection opened; `open` are open now.
    pub(crate) fn opened(&self, open: usize) {
        self.opened.fetch_add(1, Ordering::Relaxed);
        if let Some(export) = self.export() {
            export.opened(open);
        }
    }

    /// A connection ended with `code`, having counted `traffic`; `open` are open now.
    pub(crate) fn closed(&self, code: u16, traffic: &Traffic, open: usize) {
        self.closed[code_slot(code)].fetch_add(1, Ordering::Relaxed);
        self.gone
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .add(traffic);
        if let Some(export) = self.export() {
            export.closed(&self.name, code_label(code), open);
        }
    }

    pub(crate) fn refused(&self, why: RefusalReason) {
        self.refused[why.index()].fetch_add(1, Ordering::Relaxed);
        if let Some(export) = self.export() {
            export.refused(why);
        }
    }

    pub(crate) fn slow_close(&self) {
        self.slow_closes.fetch_add(1, Ordering::Relaxed);
        if let Some(export) = self.export() {
            export.slow_close();
        }
    }

    pub(crate) fn slow_drop(&self) {
        self.slow_drops.fetch_add(1, Ordering::Relaxed);
        if let Some(export) = self.export() {
            export.slow_drop();
        }
    }

    pub(crate) fn rate_limit_pause(&self) {
        self.rate_limit_pauses.fetch_add(1, Ordering::Relaxed);
        if let Some(export) = self.export() {
            export.rate_limit_pause();
        }
    }

    pub(crate) fn heartbeat_timeout(&self) {
        self.heartbeat_timeouts.fetch_add(1, Ordering::Relaxed);
        if let Some(export) = self.export() {
            export.heartbeat_timeout();
        }
    }

    pub(crate) fn ping_rtt(&self, took: Duration) {
        self.ping_rtt.record(took);
        if let Some(export) = self.export() {
            export.ping_rtt(took);
        }
    }

    pub(crate) fn fanout(&self, took: Duration) {
        self.fanout.record(took);
        if let Some(export) = self.export() {
            export.fanout(took);
        }
    }

    /// Data read from a connection (feature `metrics`: the snapshot reads the clients' own
    /// counters instead).
    #[inline]
    pub(crate) fn read(&self, messages: u64, bytes: u64) {
        if let Some(export) = self.export() {
            export.read(messages, bytes);
        }
    }

    /// Data written to a connection, likewise.
    #[inline]
    pub(crate) fn wrote(&self, messages: u64, bytes: u64) {
        if let Some(export) = self.export() {
            export.wrote(messages, bytes);
        }
    }

    /// A snapshot, with the open clients' figures: their number and what they counted.
    pub(crate) fn snapshot(&self, connections: usize, open: &Traffic) -> SocketStats {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let mut all = open.clone();
        all.add(&self.gone.lock().unwrap_or_else(PoisonError::into_inner));
        SocketStats {
            socket: self.name.to_string(),
            connections,
            opened: load(&self.opened),
            refused: RefusalReason::ALL
                .iter()
                .map(|why| (why.as_str(), load(&self.refused[why.index()])))
                .collect(),
            closed: CODES
                .iter()
                .zip(&self.closed)
                .map(|(code, count)| (*code, load(count)))
                .filter(|(_, count)| *count > 0)
                .collect(),
            messages_received: all.messages_received,
            messages_sent: all.messages_sent,
            received_bytes: all.received_bytes,
            sent_bytes: all.sent_bytes,
            slow_consumer_closes: load(&self.slow_closes),
            slow_consumer_drops: load(&self.slow_drops),
            rate_limit_pauses: load(&self.rate_limit_pauses),
            heartbeat_timeouts: load(&self.heartbeat_timeouts),
            ping_rtt: self.ping_rtt.snapshot(),
            fanout: self.fanout.snapshot(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_codes_are_a_bounded_set_of_labels() {
        assert_eq!(code_label(1000), "1000");
        assert_eq!(code_label(1015), "1015");
        assert_eq!(code_label(3000), "application");
        assert_eq!(code_label(4999), "application");
        for other in [0, 999, 1016, 2999, 5000, u16::MAX] {
            assert_eq!(code_label(other), "other", "{other}");
        }
    }

    #[test]
    fn timings_fall_in_their_buckets_and_give_quantiles_from_above() {
        let timer = Timer::default();
        for ms in [1, 1, 1, 20, 20_000] {
            timer.record(Duration::from_millis(ms));
        }
        let timing = timer.snapshot();
        assert_eq!(timing.count, 5);
        assert_eq!(timing.sum, Duration::from_millis(20_023));
        assert_eq!(timing.quantile(0.5), Some(Duration::from_millis(1)));
        assert_eq!(timing.quantile(0.8), Some(Duration::from_millis(25)));
        assert_eq!(timing.quantile(1.0), None, "beyond the last bucket");
        let later = {
            timer.record(Duration::from_micros(50));
            timer.snapshot()
        };
        let delta = later.since(&timing);
        assert_eq!(delta.count, 1);
        assert_eq!(delta.quantile(0.99), Some(Duration::from_micros(100)));
        assert_eq!(Timing::default().quantile(0.5), None);
    }
}
