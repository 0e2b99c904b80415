//! The socket's figures through the `metrics` facade (feature `metrics`): its handles in the
//! recorder installed when the socket started, and the description of every name. The table
//! of names, units and labels is in the crate guide ("Metrics"); it is this file's, in order.

use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Unit};

use super::{Failure, RefusalReason};

pub(crate) const CONNECTIONS: &str = "ws_connections";
pub(crate) const OPENED: &str = "ws_connections_opened_total";
pub(crate) const REFUSED: &str = "ws_handshakes_refused_total";
pub(crate) const CLOSED: &str = "ws_connections_closed_total";
pub(crate) const MESSAGES_RECEIVED: &str = "ws_messages_received_total";
pub(crate) const MESSAGES_SENT: &str = "ws_messages_sent_total";
pub(crate) const RECEIVED_BYTES: &str = "ws_received_bytes_total";
pub(crate) const SENT_BYTES: &str = "ws_sent_bytes_total";
pub(crate) const SLOW_CLOSES: &str = "ws_slow_consumer_closes_total";
pub(crate) const SLOW_DROPS: &str = "ws_slow_consumer_drops_total";
pub(crate) const RATE_LIMIT_PAUSES: &str = "ws_rate_limit_pauses_total";
pub(crate) const HEARTBEAT_TIMEOUTS: &str = "ws_heartbeat_timeouts_total";
pub(crate) const PING_RTT: &str = "ws_ping_rtt_seconds";
pub(crate) const FANOUT: &str = "ws_fanout_seconds";
pub(crate) const BACKPLANE_UP: &str = "ws_backplane_up";
pub(crate) const BACKPLANE_PUBLISHED: &str = "ws_backplane_published_total";
pub(crate) const BACKPLANE_RECEIVED: &str = "ws_backplane_received_total";
pub(crate) const BACKPLANE_FAILURES: &str = "ws_backplane_failures_total";
pub(crate) const BACKPLANE_OUTAGES: &str = "ws_backplane_outages_total";
pub(crate) const BACKPLANE_LAG: &str = "ws_backplane_lag_seconds";
pub(crate) const RECOVERIES: &str = "ws_history_recoveries_total";
pub(crate) const HISTORY_LOST: &str = "ws_history_lost_total";

/// The outcome of a join with a position: the `outcome` of `ws_history_recoveries_total`,
/// in the order of [`HistoryStats`](crate::HistoryStats): `recovered`, then the reasons of
/// [`NotRecovered`](crate::NotRecovered).
pub(crate) const OUTCOMES: [&str; 5] = ["recovered", "no_position", "epoch", "window", "ahead"];

/// Describes every name once per process, for the recorder's `# HELP` lines.
fn describe() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use metrics::{describe_counter, describe_gauge, describe_histogram};
        describe_gauge!(CONNECTIONS, Unit::Count, "Open WebSocket connections.");
        describe_counter!(
            OPENED,
            Unit::Count,
            "Connections that completed the handshake."
        );
        describe_counter!(REFUSED, Unit::Count, "Handshakes refused, by reason.");
        describe_counter!(CLOSED, Unit::Count, "Connections closed, by close code.");
        describe_counter!(MESSAGES_RECEIVED, Unit::Count, "Data messages received.");
        describe_counter!(
            MESSAGES_SENT,
            Unit::Count,
            "Data messages sent, one per receiver."
        );
        describe_counter!(
            RECEIVED_BYTES,
            Unit::Bytes,
            "WebSocket bytes read (after compression, headers included)."
        );
        describe_counter!(
            SENT_BYTES,
            Unit::Bytes,
            "WebSocket bytes written (after compression, headers included)."
        );
        describe_counter!(
            SLOW_CLOSES,
            Unit::Count,
            "Clients closed because their send queue was full."
        );
        describe_counter!(
            SLOW_DROPS,
            Unit::Count,
            "Messages dropped for a client whose send queue was full."
        );
        describe_counter!(
            RATE_LIMIT_PAUSES,
            Unit::Count,
            "Times reading from a client waited for its rate limit."
        );
        describe_counter!(
            HEARTBEAT_TIMEOUTS,
            Unit::Count,
            "Clients closed for not answering the heartbeat's pings."
        );
        describe_histogram!(
            PING_RTT,
            Unit::Seconds,
            "Round trip of the heartbeat's pings."
        );
        describe_histogram!(
            FANOUT,
            Unit::Seconds,
            "Time to queue a broadcast or room delivery for its receivers on this node."
        );
        describe_gauge!(
            BACKPLANE_UP,
            Unit::Count,
            "1 while the link to the cluster is up."
        );
        describe_counter!(
            BACKPLANE_PUBLISHED,
            Unit::Count,
            "Envelopes published to the cluster."
        );
        describe_counter!(
            BACKPLANE_RECEIVED,
            Unit::Count,
            "Envelopes received from other nodes."
        );
        describe_counter!(
            BACKPLANE_FAILURES,
            Unit::Count,
            "Envelopes unsent, missed or unreadable."
        );
        describe_counter!(
            BACKPLANE_OUTAGES,
            Unit::Count,
            "Times the link to the cluster went down."
        );
        describe_histogram!(
            BACKPLANE_LAG,
            Unit::Seconds,
            "Time from publishing a heartbeat to receiving it back through the backplane."
        );
        describe_counter!(
            RECOVERIES,
            Unit::Count,
            "Joins with a position, by outcome."
        );
        describe_counter!(
            HISTORY_LOST,
            Unit::Count,
            "Members closed with 1012 because their room's messages were lost."
        );
    });
}

/// One socket's handles, labelled `socket`.
#[derive(Debug)]
pub(crate) struct Exported {
    connections: Gauge,
    opened: Counter,
    refused: [Counter; RefusalReason::ALL.len()],
    messages_received: Counter,
    messages_sent: Counter,
    received_bytes: Counter,
    sent_bytes: Counter,
    slow_closes: Counter,
    slow_drops: Counter,
    rate_limit_pauses: Counter,
    heartbeat_timeouts: Counter,
    ping_rtt: Histogram,
    fanout: Histogram,
    backplane_up: Gauge,
    published: Counter,
    received: Counter,
    failures: [Counter; 3],
    outages: Counter,
    lag: Histogram,
    recoveries: [Counter; OUTCOMES.len()],
    history_lost: Counter,
}

impl Exported {
    /// The handles of `socket`: those of the backplane only if it is `clustered`, those of
    /// history only if it keeps `history` (the others are no-ops, and no series is shown).
    pub(crate) fn new(socket: &str, clustered: bool, history: bool) -> Self {
        describe();
        let label = || [("socket", socket.to_owned())];
        let counter = |name: &'static str| metrics::counter!(name, &label());
        let with = |name: &'static str, key: &'static str, value: &'static str| {
            metrics::counter!(
                name,
                &[("socket", socket.to_owned()), (key, value.to_owned())]
            )
        };
        let cluster_counter = |name| {
            if clustered {
                counter(name)
            } else {
                Counter::noop()
            }
        };
        Exported {
            connections: metrics::gauge!(CONNECTIONS, &label()),
            opened: counter(OPENED),
            refused: RefusalReason::ALL.map(|why| with(REFUSED, "reason", why.as_str())),
            messages_received: counter(MESSAGES_RECEIVED),
            messages_sent: counter(MESSAGES_SENT),
            received_bytes: counter(RECEIVED_BYTES),
            sent_bytes: counter(SENT_BYTES),
            slow_closes: counter(SLOW_CLOSES),
            slow_drops: counter(SLOW_DROPS),
            rate_limit_pauses: counter(RATE_LIMIT_PAUSES),
            heartbeat_timeouts: counter(HEARTBEAT_TIMEOUTS),
            ping_rtt: metrics::histogram!(PING_RTT, &label()),
            fanout: metrics::histogram!(FANOUT, &label()),
            backplane_up: if clustered {
                metrics::gauge!(BACKPLANE_UP, &label())
            } else {
                Gauge::noop()
            },
            published: cluster_counter(BACKPLANE_PUBLISHED),
            received: cluster_counter(BACKPLANE_RECEIVED),
            failures: ["unsent", "missed", "unreadable"].map(|kind| {
                if clustered {
                    with(BACKPLANE_FAILURES, "kind", kind)
                } else {
                    Counter::noop()
                }
            }),
            outages: cluster_counter(BACKPLANE_OUTAGES),
            lag: if clustered {
                metrics::histogram!(BACKPLANE_LAG, &label())
            } else {
                Histogram::noop()
            },
            recoveries: OUTCOMES.map(|outcome| {
                if history {
                    with(RECOVERIES, "outcome", outcome)
                } else {
                    Counter::noop()
                }
            }),
            history_lost: if history && clustered {
                counter(HISTORY_LOST)
            } else {
                Counter::noop()
            },
        }
    }

    /// A connection opened; `open` are open now.
    pub(crate) fn opened(&self, open: usize) {
        self.opened.increment(1);
        self.connections(open);
    }

    /// Open connections now (set, not counted up and down: a recorder installed late, or one
    /// that resets its gauges, still shows the truth at the next change).
    #[allow(
        clippy::cast_precision_loss,
        reason = "connection counts are far below 2^52"
    )]
    fn connections(&self, open: usize) {
        self.connections.set(open as f64);
    }

    /// The `code` counter is registered at each close: the codes seen are few, and a close is
    /// not on a hot path.
    pub(crate) fn closed(&self, socket: &str, code: &'static str, open: usize) {
        self.connections(open);
        metrics::counter!(CLOSED, "socket" => socket.to_owned(), "code" => code).increment(1);
    }

    pub(crate) fn refused(&self, why: RefusalReason) {
        self.refused[why.index()].increment(1);
    }

    pub(crate) fn slow_close(&self) {
        self.slow_closes.increment(1);
    }

    pub(crate) fn slow_drop(&self) {
        self.slow_drops.increment(1);
    }

    pub(crate) fn rate_limit_pause(&self) {
        self.rate_limit_pauses.increment(1);
    }

    pub(crate) fn heartbeat_timeout(&self) {
        self.heartbeat_timeouts.increment(1);
    }

    pub(crate) fn ping_rtt(&self, took: Duration) {
        self.ping_rtt.record(took);
    }

    pub(crate) fn fanout(&self, took: Duration) {
        self.fanout.record(took);
    }

    pub(crate) fn read(&self, messages: u64, bytes: u64) {
        if messages > 0 {
            self.messages_received.increment(messages);
        }
        if bytes > 0 {
            self.received_bytes.increment(bytes);
        }
    }

    pub(crate) fn wrote(&self, messages: u64, bytes: u64) {
        if messages > 0 {
            self.messages_sent.increment(messages);
        }
        if bytes > 0 {
            self.sent_bytes.increment(bytes);
        }
    }

    pub(crate) fn backplane_up(&self, up: bool) {
        self.backplane_up.set(if up { 1.0 } else { 0.0 });
    }

    pub(crate) fn published(&self) {
        self.published.increment(1);
    }

    pub(crate) fn received(&self) {
        self.received.increment(1);
    }

    pub(crate) fn failed(&self, failure: Failure, count: u64) {
        self.failures[failure as usize].increment(count);
    }

    pub(crate) fn outage(&self) {
        self.outages.increment(1);
    }

    pub(crate) fn lag(&self, took: Duration) {
        self.lag.record(took);
    }

    /// A join with a position: `outcome` indexes [`OUTCOMES`].
    pub(crate) fn recovery(&self, outcome: usize) {
        if let Some(counter) = self.recoveries.get(outcome) {
            counter.increment(1);
        }
    }

    pub(crate) fn history_lost(&self, members: u64) {
        self.history_lost.increment(members);
    }
}
