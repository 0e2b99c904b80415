//! The Redis backplane (feature `redis`): envelopes as PUBLISH on one connection, a dedicated
//! RESP2 subscription connection, our own reconnects, resubscription from our own set, and a
//! probe through Redis that notices a feed that stalled while TCP looks healthy; it is also
//! the cluster's [`Store`] (`store.rs`: the histories' two Lua scripts, the appends in the
//! publish pipeline, the reads on a clone of the publish connection; `presence.rs`: the
//! presence keys, written through the publish pipeline too).

mod presence;
mod store;

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::future::try_join_all;
use redis::aio::{MultiplexedConnection, PubSubSink, PubSubStream};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;
use super::backplane::{Backplane, Event, Inbound, Topic};
use super::id::NodeId;
use super::position::Position;
use super::store::{Append, Store, StoreError, Unavailable};
use store::Scripts;

/// Envelopes waiting for the publish connection; past this `publish` answers `Full`.
const OUTBOX_CAPACITY: usize = 65_536;
/// Events waiting for the node; past this arriving envelopes are dropped (and counted).
const INBOUND_CAPACITY: usize = 65_536;
/// At most this many envelopes go in one pipeline (the rest in the next, in order).
const MAX_BATCH: usize = 1024;
/// Connecting (TCP + handshake) takes at most this long, or the attempt failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// A command's answer comes within this, or the connection is taken for dead.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);
/// How often a probe goes round (and an idle publish connection is pinged).
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// A probe that Redis took but that has not come back within this means a dead feed.
const PROBE_DEADLINE: Duration = Duration::from_secs(3);
/// How often the subscriber looks for an overdue probe: a dead feed is noticed at most this
/// long after the deadline.
const WATCH_EVERY: Duration = Duration::from_millis(250);
/// Durations go to Redis in ms, at most this many: exact in the scripts' Lua numbers, and far
/// from the end of Redis' expiry clock.
const MAX_MILLIS: u64 = 1 << 53;

/// A [`Backplane`] over Redis pub/sub: the nodes of one application, in any number of
/// processes, share deliveries through one Redis (or Valkey) server.
///
/// Topics are Redis channels: `{prefix}:all`, `{prefix}:node:{8 hex}` and
/// `{prefix}:room:{name}`, the prefix `"ws"` unless [`prefix`](Redis::prefix) says otherwise
/// (two applications on one Redis use two prefixes).
///
/// It connects when started, in the background, so a node starts and serves its own clients
/// with Redis down; it then keeps the link itself:
///
/// - one connection for PUBLISH (what `publish` queued goes out in order, in pipelines) and one
///   dedicated to the subscriptions; both connect and answer within a second, or count as down;
/// - on a lost connection it reconnects with exponential backoff and jitter (at most 2 s
///   between attempts), subscribes to every topic asked for again and only then sends
///   [`Event::Up`]: cross-node delivery resumes within about 5 s of Redis accepting
///   connections again;
/// - every second it publishes a probe to a channel of its own; a probe that Redis took but
///   that has not come back within 3 s means the feed is dead although the connection looks
///   open, and the subscription connection is restarted;
/// - while the link is down `publish` returns [`Unavailable::Down`] at once: nothing waits on
///   Redis, and what is published elsewhere meanwhile does not reach this node (no replay).
///
/// The outage is logged once when it starts (`warn`) and once when it ends (`info`, with its
/// duration and the number of refused publishes); [`stats`](Redis::stats) has the counters.
///
/// It is also the cluster's history [`Store`]: a room's messages are kept in a Redis stream
/// `{prefix}:history:{room}` (entry ids are the offsets) beside a hash
/// `{prefix}:history-meta:{room}` (the epoch and the last offset, kept 24 hours after the room's
/// last use). An append is one Lua script (loaded with `SCRIPT LOAD` on every connection of
/// the publish side, before the link is up) that records the message and publishes its
/// envelope; it goes through the same ordered pipeline as `publish`, and counts as one
/// envelope in [`stats`](Redis::stats). A script cache emptied under it (`SCRIPT FLUSH`, a
/// restarted Redis) is handled as a broken publish connection: reconnect, load again (the
/// appends Redis answered NOSCRIPT did not run: they get [`StoreError::Unavailable`]). Reads go
/// on a clone of the publish connection, and [`subscribed`](Backplane::subscribed) resolves
/// once the subscription connection has confirmed the topic.
///
/// Presence lives there too, each node writing its own members: a string
/// `{prefix}:alive:{node}` set with each [`alive`](Store::alive) (it expires with the
/// heartbeat's TTL), a set `{prefix}:presence-nodes:{room}` of the nodes with members in the
/// room, and per node and room a hash `{prefix}:presence:{node}:{room}` (client number → user),
/// both kept [`PRESENCE_KEEP`](super::PRESENCE_KEEP) after their last write or refresh. The
/// writes go through the same ordered pipeline as `publish`, refused the same way while the
/// link is down; one that Redis answers with an error is counted `uncertain` and logged, and
/// the link stays up. [`members`](Store::members) reads on a clone of the publish connection,
/// skips the nodes whose alive key has expired, and removes from the set the nodes whose hash
/// is gone.
///
/// ```
/// use ws::cluster::{Backplane, Redis};
///
/// # fn main() -> Result<(), ws::cluster::RedisError> {
/// // Only parses the URL: no connection until the node starts it.
/// let redis = Redis::new("redis://127.0.0.1:6379/")?.prefix("chat");
/// assert!(!redis.is_up());
/// assert_eq!(redis.stats().published, 0);
/// # Ok(())
/// # }
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub struct Redis {
    client: redis::Client,
    prefix: String,
    shared: Arc<Shared>,
}

/// A Redis URL that could not be used (see [`Redis::new`]).
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
#[derive(Debug, thiserror::Error)]
#[error("invalid Redis URL: {0}")]
pub struct RedisError(#[source] redis::RedisError);

/// What a [`Redis`] backplane has done since it was made ([`Redis::stats`]).
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisStats {
    /// Envelopes Redis took: their PUBLISH (or an append's script, which publishes one) was
    /// answered. Presence writes are not envelopes and are not counted here.
    pub published: u64,
    /// Calls to `publish` (and to the store's `append`, `enter`, `exit` and `alive`) that
    /// returned [`Unavailable`]: link down, or the queue full.
    pub refused: u64,
    /// Envelopes (and appends, and presence writes) that were taken but may not have reached
    /// Redis: queued or in flight when the publish connection failed, still queued when
    /// `stop`'s time ran out, or answered with an error (an append's script refused, or gone:
    /// NOSCRIPT; a presence command refused). Never retried (no duplicates, no reordering).
    pub uncertain: u64,
    /// Envelopes that arrived but were dropped because the node did not keep up (its
    /// [`Inbound`] was full).
    pub dropped: u64,
    /// Times the link came back up after it was down.
    pub reconnects: u64,
}

impl Redis {
    /// A backplane on the Redis at `url` (`redis://[user:password@]host[:port][/db]`, or
    /// `redis+unix:///path`).
    ///
    /// Only parses the URL: it connects when the node starts it, and keeps trying.
    ///
    /// # Errors
    ///
    /// [`RedisError`] if `url` is not a Redis URL this build can use.
    pub fn new(url: &str) -> Result<Redis, RedisError> {
        let client = redis::Client::open(url).map_err(RedisError)?;
        Ok(Redis {
            client,
            prefix: "ws".to_owned(),
            shared: Arc::new(Shared::default()),
        })
    }

    /// Names this application's channels `{prefix}:…` (default `"ws"`): applications that
    /// share a Redis keep apart by their prefixes. Set it before the node starts.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Redis {
        self.prefix = prefix.into();
        self
    }

    /// The counters since this backplane was made.
    pub fn stats(&self) -> RedisStats {
        let counters = &self.shared.counters;
        RedisStats {
            published: counters.published.load(Ordering::Relaxed),
            refused: counters.refused.load(Ordering::Relaxed),
            uncertain: counters.uncertain.load(Ordering::Relaxed),
            dropped: counters.dropped.load(Ordering::Relaxed),
            reconnects: counters.reconnects.load(Ordering::Relaxed),
        }
    }

    fn refuse(&self, why: Unavailable) -> Result<(), Unavailable> {
        self.shared.counters.refused.fetch_add(1, Ordering::Relaxed);
        Err(why)
    }

    /// Queues one item for the publish connection without waiting, or refuses it (and counts
    /// the refusal): what `publish`, `append` and the presence writes share.
    fn enqueue(&self, item: Outgoing) -> Result<(), Unavailable> {
        if !self.shared.up.load(Ordering::Acquire) {
            return self.refuse(Unavailable::Down);
        }
        let Some(outbox) = self.shared.outbox.get() else {
            return self.refuse(Unavailable::Down);
        };
        match outbox.try_send(item) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => self.refuse(Unavailable::Full),
            Err(TrySendError::Closed(_)) => self.refuse(Unavailable::Down),
        }
    }
}

impl fmt::Debug for Redis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redis")
            .field("prefix", &self.prefix)
            .field("up", &self.is_up())
            .finish_non_exhaustive()
    }
}

impl Backplane for Redis {
    fn start(&self, node: NodeId) -> Inbound {
        let (events, inbound) = Inbound::channel(INBOUND_CAPACITY);
        let mut running = lock(&self.shared.running);
        if running.is_some() || self.shared.stopped.load(Ordering::Acquire) {
            tracing::warn!(%node, "the Redis backplane was started twice; the second start gets nothing");
            return inbound;
        }
        let (outbox, outgoing) = mpsc::channel(OUTBOX_CAPACITY);
        if self.shared.outbox.set(outbox.clone()).is_err() {
            return inbound;
        }
        let cancel = CancellationToken::new();
        let link = Arc::new(Link {
            shared: Arc::clone(&self.shared),
            client: self.client.clone(),
            node,
            prefix: self.prefix.clone(),
            probe_channel: format!("{}:probe:{node}", self.prefix),
            state: tokio::sync::Mutex::new(LinkState {
                publish: false,
                subscription: false,
                up: false,
                history: History::NeverUp,
                down_since: Instant::now(),
                refused_at_down: 0,
            }),
            events,
            outbox,
            cancel: cancel.clone(),
            check_publish: Notify::new(),
            probes: Mutex::new(Probes::default()),
            dropping: AtomicBool::new(false),
            presence_refused: AtomicBool::new(false),
        });
        let tasks = vec![
            tokio::spawn(publisher(Arc::clone(&link), outgoing)),
            tokio::spawn(subscriber(link)),
        ];
        *running = Some(Running { cancel, tasks });
        inbound
    }

    fn publish(&self, topic: &Topic, envelope: Bytes) -> Result<(), Unavailable> {
        self.enqueue(Outgoing::Envelope(topic.clone(), envelope))
    }

    fn subscribe(&self, topic: &Topic) {
        if lock(&self.shared.wanted).insert(topic.clone()) {
            self.shared.wake_subscriber.notify_one();
        }
    }

    fn unsubscribe(&self, topic: &Topic) {
        if lock(&self.shared.wanted).remove(topic) {
            self.shared.wake_subscriber.notify_one();
        }
    }

    fn is_up(&self) -> bool {
        self.shared.up.load(Ordering::Acquire)
    }

    fn store(&self) -> Option<&dyn Store> {
        Some(self)
    }

    /// Resolves once the link is up and the subscription connection has confirmed `topic`
    /// (at once if it has); `false` if that does not happen within the response timeout (1 s)
    /// or the backplane stops.
    fn subscribed(&self, topic: &Topic) -> Pin<Box<dyn Future<Output = bool> + Send + '_>> {
        let topic = topic.clone();
        let mut confirmed = self.shared.confirmed.subscribe();
        Box::pin(async move {
            // A link on its way up (a node just started) is waited for too, within the
            // timeout: the first joins of a new node need not fail.
            let settled = confirmed.wait_for(|now| now.up && now.topics.contains(&topic));
            // Timed out, or the backplane is gone: not subscribed.
            matches!(
                tokio::time::timeout(RESPONSE_TIMEOUT, settled).await,
                Ok(Ok(_))
            )
        })
    }

    fn stop(&self, within: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            self.shared.stopped.store(true, Ordering::Release);
            self.shared.up.store(false, Ordering::Release);
            self.shared.confirmed.send_modify(|now| now.up = false);
            let running = lock(&self.shared.running).take();
            let Some(Running { cancel, tasks }) = running else {
                return;
            };
            #[allow(
                clippy::cast_possible_truncation,
                reason = "a flush longer than 584 years is not asked for"
            )]
            let within_nanos = within.as_nanos() as u64;
            self.shared
                .flush_within_nanos
                .store(within_nanos, Ordering::Release);
            cancel.cancel();
            // The publisher flushes for at most `within`; the subscriber ends at once.
            let deadline = tokio::time::Instant::now() + within + RESPONSE_TIMEOUT;
            for mut task in tasks {
                if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                    task.abort();
                }
            }
        })
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        // Dropped without `stop`: the tasks end (nothing is flushed), and so does `Inbound`.
        if let Some(running) = lock(&self.shared.running).take() {
            running.cancel.cancel();
        }
    }
}

/// What the `Redis` handle and its tasks share.
#[derive(Default)]
struct Shared {
    /// The link is up: the publish connection works and every wanted topic is subscribed.
    up: AtomicBool,
    stopped: AtomicBool,
    /// The topics this node wants, which outlive connections.
    wanted: Mutex<HashSet<Topic>>,
    /// `wanted` changed: the subscriber reconciles.
    wake_subscriber: Notify,
    outbox: OnceLock<mpsc::Sender<Outgoing>>,
    running: Mutex<Option<Running>>,
    flush_within_nanos: AtomicU64,
    counters: Counters,
    /// What reads use: a clone of the working publish connection and the read script's
    /// SHA1; `None` while the publish connection is down.
    reader: Mutex<Option<store::Reader>>,
    /// The topics the live subscription connection has confirmed, and whether the link is
    /// up: what `subscribed` waits on.
    confirmed: watch::Sender<Confirmed>,
}

/// What `subscribed` watches.
#[derive(Default)]
struct Confirmed {
    /// The link is up (as `Shared::up`).
    up: bool,
    /// Subscribed on the live subscription connection (empty while there is none).
    topics: HashSet<Topic>,
}

#[derive(Default)]
struct Counters {
    published: AtomicU64,
    refused: AtomicU64,
    uncertain: AtomicU64,
    dropped: AtomicU64,
    reconnects: AtomicU64,
}

struct Running {
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

/// One item of the publish queue.
enum Outgoing {
    Envelope(Topic, Bytes),
    /// A probe of the subscription `generation`, number `seq` (internal, never delivered).
    Probe {
        generation: u64,
        seq: u64,
    },
    /// A message for a room's history: the `append` script, which also publishes it; its
    /// position (or why there is none) goes back on `reply`.
    Append {
        append: Append,
        reply: oneshot::Sender<Result<Position, StoreError>>,
    },
    /// Plain commands that go in the pipeline one after the other, each answered on its own
    /// (the presence writes: `enter`, `exit`, `alive`); nobody waits for their answers.
    Commands(Vec<redis::Cmd>),
}

impl Outgoing {
    /// An envelope of the node's (an append publishes one) or a presence write, not an
    /// internal probe: what the counters count.
    fn counts(&self) -> bool {
        !matches!(self, Outgoing::Probe { .. })
    }

    /// How many commands (and so answers) the item is in a pipeline.
    fn commands(&self) -> usize {
        match self {
            Outgoing::Commands(commands) => commands.len(),
            _ => 1,
        }
    }
}

/// How an item left the queue without Redis' answer.
#[derive(Clone, Copy)]
enum Lost {
    /// Never sent: nothing of it reached Redis.
    Unsent,
    /// Sent, but the answer did not come: it may or may not have been carried out.
    InFlight,
}

/// The running link of a started backplane: what its two tasks share.
struct Link {
    shared: Arc<Shared>,
    client: redis::Client,
    node: NodeId,
    prefix: String,
    probe_channel: String,
    state: tokio::sync::Mutex<LinkState>,
    events: mpsc::Sender<Event>,
    outbox: mpsc::Sender<Outgoing>,
    cancel: CancellationToken,
    /// The subscription failed: the publisher checks its own connection at once rather than
    /// at its next use.
    check_publish: Notify,
    probes: Mutex<Probes>,
    /// Envelopes are being dropped because `Inbound` is full (warned once per episode).
    dropping: AtomicBool,
    /// Redis answers presence writes with errors (warned once per episode).
    presence_refused: AtomicBool,
}

/// Whether each connection works, and the link's state made of the two; changed (and the
/// event sent) under one lock, so `Up` and `Down` alternate.
struct LinkState {
    publish: bool,
    subscription: bool,
    up: bool,
    history: History,
    down_since: Instant,
    refused_at_down: u64,
}

/// Whether the link was ever up: before, the first failure is said once and no `Down` is
/// sent (the node starts down); after, every outage is reported.
#[derive(Clone, Copy, PartialEq, Eq)]
enum History {
    NeverUp,
    NeverUpReported,
    BeenUp,
}

#[derive(Clone, Copy)]
enum Side {
    Publish,
    Subscription,
}

/// The watchdog's memory: the oldest probe Redis took that has not come back.
#[derive(Default)]
struct Probes {
    /// Counts subscription connections; a probe of an older one is ignored.
    generation: u64,
    /// (seq, when its PUBLISH was answered)
    pending: Option<(u64, Instant)>,
}

impl Link {
    fn channel(&self, topic: &Topic) -> String {
        format!("{}:{topic}", self.prefix)
    }

    /// Records that one connection works (`Ok`) or failed (`Err(reason)`), and reports the
    /// link's change, if any: one event, one log line.
    async fn set(&self, side: Side, result: Result<(), String>) {
        let mut state = self.state.lock().await;
        let works = result.is_ok();
        match side {
            Side::Publish => state.publish = works,
            Side::Subscription => state.subscription = works,
        }
        let up = state.publish && state.subscription;
        let refused = self.shared.counters.refused.load(Ordering::Relaxed);
        let event = match (state.up, up, result) {
            (false, true, _) => {
                let outage = state.down_since.elapsed();
                let refused = refused - state.refused_at_down;
                if state.history == History::BeenUp {
                    self.shared
                        .counters
                        .reconnects
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::info!(node = %self.node, ?outage, refused, "Redis backplane up again");
                } else {
                    tracing::info!(node = %self.node, "Redis backplane up");
                }
                state.history = History::BeenUp;
                Event::Up
            }
            (true, false, Err(reason)) => {
                tracing::warn!(node = %self.node, %reason, "Redis backplane down: cross-node delivery stops until it is back");
                state.down_since = Instant::now();
                state.refused_at_down = refused;
                Event::Down(reason)
            }
            (false, false, Err(reason)) if state.history == History::NeverUp => {
                // Never up yet: said once, then quiet until it connects.
                tracing::warn!(node = %self.node, %reason, "Redis backplane not connected yet; retrying");
                state.history = History::NeverUpReported;
                return;
            }
            _ => return,
        };
        state.up = up;
        self.shared.up.store(up, Ordering::Release);
        self.shared.confirmed.send_modify(|now| now.up = up);
        // Up and Down are never dropped: wait for room (the node reads its `Inbound`).
        tokio::select! {
            _ = self.events.send(event) => {}
            () = self.cancel.cancelled() => {}
        }
    }

    /// Sleeps the next backoff step; `false` if the backplane stopped meanwhile.
    async fn pause(&self, backoff: &mut Backoff) -> bool {
        tokio::select! {
            () = tokio::time::sleep(backoff.next_delay()) => true,
            () = self.cancel.cancelled() => false,
        }
    }

    /// Counts items that did not get Redis' answer as uncertain, and answers the appends
    /// among them.
    fn lost(&self, items: impl IntoIterator<Item = Outgoing>, how: Lost, reason: &str) {
        for item in items {
            // Counted before an append is answered, so that its caller sees it counted.
            if item.counts() {
                self.shared
                    .counters
                    .uncertain
                    .fetch_add(1, Ordering::Relaxed);
            }
            if let Outgoing::Append { reply, .. } = item {
                let error = match how {
                    Lost::Unsent => StoreError::Unavailable(format!("not sent to Redis: {reason}")),
                    Lost::InFlight => StoreError::Uncertain(format!(
                        "sent to Redis, but no answer came: {reason}"
                    )),
                };
                // The caller may have stopped waiting.
                let _ = reply.send(Err(error));
            }
        }
    }

    /// Empties the queue: nothing in it was sent.
    fn drain(&self, outgoing: &mut mpsc::Receiver<Outgoing>, reason: &str) {
        self.lost(
            std::iter::from_fn(|| outgoing.try_recv().ok()),
            Lost::Unsent,
            reason,
        );
    }

    /// The live subscription connection has confirmed exactly `topics` (none: there is no
    /// live one): wakes whoever waits in `subscribed`.
    fn confirm(&self, topics: &HashSet<Topic>) {
        self.shared.confirmed.send_if_modified(|now| {
            if now.topics == *topics {
                return false;
            }
            now.topics.clone_from(topics);
            true
        });
    }

    /// Passes an arriving message on to the node (or to the watchdog, for a probe).
    fn deliver(&self, message: &redis::Msg) {
        let payload = message.get_payload_bytes();
        if message.get_channel_name() == self.probe_channel {
            if let (Some(generation), Some(seq)) = (
                payload.get(..8).and_then(|b| b.try_into().ok()),
                payload.get(8..16).and_then(|b| b.try_into().ok()),
            ) {
                self.probe_returned(u64::from_be_bytes(generation), u64::from_be_bytes(seq));
            }
            return;
        }
        let event = Event::Envelope(Bytes::copy_from_slice(payload));
        match self.events.try_send(event) {
            Ok(()) => {
                if self.dropping.swap(false, Ordering::Relaxed) {
                    tracing::info!(node = %self.node, "the node keeps up with the Redis backplane again");
                }
            }
            Err(TrySendError::Full(_)) => {
                self.shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
                if !self.dropping.swap(true, Ordering::Relaxed) {
                    tracing::warn!(node = %self.node, "the node does not keep up with the Redis backplane: dropping envelopes");
                }
            }
            Err(TrySendError::Closed(_)) => {}
        }
    }

    /// Records how Redis answered one presence write: all its commands done (`None`), or the
    /// first error. A refused write is uncertain (its other commands may have run), and is
    /// logged once per episode; it leaves the link as it is.
    fn presence_answered(&self, refused: Option<redis::ServerError>) {
        match refused {
            None => {
                if self.presence_refused.swap(false, Ordering::Relaxed) {
                    tracing::info!(node = %self.node, "Redis takes presence writes again");
                }
            }
            Some(error) => {
                self.shared
                    .counters
                    .uncertain
                    .fetch_add(1, Ordering::Relaxed);
                if !self.presence_refused.swap(true, Ordering::Relaxed) {
                    tracing::warn!(node = %self.node, %error, "Redis refused a presence write: this node's members may be missing from presence reads");
                }
            }
        }
    }

    fn probe_published(&self, generation: u64, seq: u64) {
        let mut probes = lock(&self.probes);
        if probes.generation == generation && probes.pending.is_none() {
            probes.pending = Some((seq, Instant::now()));
        }
    }

    fn probe_returned(&self, generation: u64, seq: u64) {
        let mut probes = lock(&self.probes);
        if probes.generation == generation
            && probes.pending.is_some_and(|(pending, _)| pending <= seq)
        {
            probes.pending = None;
        }
    }

    /// A new subscription connection: earlier probes no longer count.
    fn new_probe_generation(&self) -> u64 {
        let mut probes = lock(&self.probes);
        probes.generation += 1;
        probes.pending = None;
        probes.generation
    }

    fn probe_overdue(&self) -> bool {
        lock(&self.probes)
            .pending
            .is_some_and(|(_, since)| since.elapsed() > PROBE_DEADLINE)
    }
}

/// The publish connection's task: connects, loads the scripts, sends what is queued in
/// pipelines (in order), pings when idle, reconnects with backoff; at stop, flushes for the
/// time it was given.
async fn publisher(link: Arc<Link>, mut outgoing: mpsc::Receiver<Outgoing>) {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT));
    let mut backoff = Backoff::new();
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        let connecting = tokio::time::timeout(
            CONNECT_TIMEOUT,
            link.client
                .get_multiplexed_async_connection_with_config(&config),
        );
        let connected = tokio::select! {
            result = connecting => flatten(result),
            () = link.cancel.cancelled() => break,
        };
        // The link is not up before the scripts are loaded: an append needs them.
        let loaded = match connected {
            Ok(mut connection) => match Scripts::load(&mut connection).await {
                Ok(scripts) => Ok((connection, scripts)),
                Err(reason) => Err(format!("cannot load the history scripts: {reason}")),
            },
            Err(reason) => Err(format!("cannot connect: {reason}")),
        };
        let (mut connection, scripts) = match loaded {
            Ok(loaded) => loaded,
            Err(reason) => {
                link.set(Side::Publish, Err(reason.clone())).await;
                link.drain(&mut outgoing, &reason);
                if link.pause(&mut backoff).await {
                    continue;
                }
                break;
            }
        };
        *lock(&link.shared.reader) = Some(scripts.reader(&connection));
        backoff.reset();
        link.set(Side::Publish, Ok(())).await;
        let failure = loop {
            let first = tokio::select! {
                () = link.cancel.cancelled() => {
                    flush(&link, &mut connection, &scripts, &mut outgoing).await;
                    *lock(&link.shared.reader) = None;
                    return;
                }
                item = outgoing.recv() => match item {
                    Some(item) => Some(item),
                    None => return,
                },
                () = tokio::time::sleep(PROBE_EVERY) => None,
                () = link.check_publish.notified() => None,
            };
            let result = match first {
                None => ping(&mut connection).await,
                Some(item) => {
                    batch.push(item);
                    while batch.len() < MAX_BATCH {
                        match outgoing.try_recv() {
                            Ok(item) => batch.push(item),
                            Err(_) => break,
                        }
                    }
                    send(&link, &mut connection, &scripts, &mut batch).await
                }
            };
            if let Err(reason) = result {
                break reason;
            }
        };
        *lock(&link.shared.reader) = None;
        let reason = format!("publish connection: {failure}");
        link.set(Side::Publish, Err(reason.clone())).await;
        link.drain(&mut outgoing, &reason);
        if !link.pause(&mut backoff).await {
            break;
        }
    }
    outgoing.close();
    link.drain(&mut outgoing, "the backplane stopped");
}

/// Sends one pipeline (PUBLISH commands, an EVALSHA of the `append` script for each append,
/// and the presence writes' commands), answers the appends and records what Redis took; the
/// batch is empty afterwards.
///
/// `Err` means the connection is no longer usable: it broke (what was in flight is
/// uncertain), or Redis answered NOSCRIPT (its script cache was emptied: the connection is
/// made again, and the scripts loaded again). A presence write that Redis refuses is counted
/// and logged, but does not make the connection unusable.
async fn send(
    link: &Link,
    connection: &mut MultiplexedConnection,
    scripts: &Scripts,
    batch: &mut Vec<Outgoing>,
) -> Result<(), String> {
    let mut pipeline = redis::pipe();
    // Each command's answer on its own (an append's error is that append's), not the first
    // error for the whole pipeline.
    pipeline.ignore_errors();
    for item in batch.iter() {
        match item {
            Outgoing::Envelope(topic, envelope) => {
                pipeline
                    .cmd("PUBLISH")
                    .arg(link.channel(topic))
                    .arg(&envelope[..]);
            }
            Outgoing::Probe { generation, seq } => {
                let mut probe = [0; 16];
                probe[..8].copy_from_slice(&generation.to_be_bytes());
                probe[8..].copy_from_slice(&seq.to_be_bytes());
                pipeline
                    .cmd("PUBLISH")
                    .arg(&link.probe_channel)
                    .arg(&probe[..]);
            }
            Outgoing::Append { append, .. } => {
                pipeline.add_command(scripts.append(link, append));
            }
            Outgoing::Commands(commands) => {
                for command in commands {
                    pipeline.add_command(command.clone());
                }
            }
        }
    }
    let expected: usize = batch.iter().map(Outgoing::commands).sum();
    let answered = tokio::time::timeout(
        RESPONSE_TIMEOUT,
        pipeline.query_async::<Vec<redis::Value>>(connection),
    )
    .await;
    let answers = match flatten(answered) {
        Ok(answers) if answers.len() == expected => answers,
        Ok(answers) => {
            let reason = format!(
                "{} answers to a pipeline of {expected} commands",
                answers.len(),
            );
            link.lost(batch.drain(..), Lost::InFlight, &reason);
            return Err(reason);
        }
        Err(reason) => {
            link.lost(batch.drain(..), Lost::InFlight, &reason);
            return Err(reason);
        }
    };
    let mut failure = None;
    let counters = &link.shared.counters;
    // Counted before an append is answered, so that its caller sees it counted.
    let count = |counter: &AtomicU64| counter.fetch_add(1, Ordering::Relaxed);
    let mut answers = answers.into_iter();
    for item in batch.drain(..) {
        // The item's answers (as many as its commands, checked above): the first error, or
        // the last value.
        let mut answer = Ok(redis::Value::Nil);
        for value in answers.by_ref().take(item.commands()) {
            if answer.is_ok() {
                answer = match value {
                    redis::Value::ServerError(error) => Err(error),
                    value => Ok(value),
                };
            }
        }
        match (item, answer) {
            (Outgoing::Envelope(..), Ok(_)) => {
                count(&counters.published);
            }
            (Outgoing::Probe { generation, seq }, Ok(_)) => link.probe_published(generation, seq),
            (Outgoing::Append { reply, .. }, Ok(value)) => {
                count(&counters.published);
                let _ = reply.send(store::appended(&value));
            }
            (Outgoing::Append { reply, .. }, Err(error)) => {
                count(&counters.uncertain);
                let error = if error.kind() == Some(redis::ServerErrorKind::NoScript) {
                    // The script did not run: nothing was recorded or published.
                    failure = Some(format!("NOSCRIPT: the history scripts are gone ({error})"));
                    StoreError::Unavailable(format!(
                        "NOSCRIPT: Redis no longer has the history scripts ({error}), so the \
                         message was not recorded; they are loaded again"
                    ))
                } else {
                    StoreError::Unavailable(format!("Redis refused the message: {error}"))
                };
                let _ = reply.send(Err(error));
            }
            (Outgoing::Commands(_), answer) => link.presence_answered(answer.err()),
            (item, Err(error)) => {
                if item.counts() {
                    count(&counters.uncertain);
                }
                failure = Some(format!("Redis refused a PUBLISH: {error}"));
            }
        }
    }
    failure.map_or(Ok(()), Err)
}

async fn ping(connection: &mut MultiplexedConnection) -> Result<(), String> {
    let answered = tokio::time::timeout(
        RESPONSE_TIMEOUT,
        redis::cmd("PING").query_async::<String>(connection),
    )
    .await;
    flatten(answered).map(drop)
}

/// At stop: what is queued goes out for at most the time `stop` was given.
async fn flush(
    link: &Link,
    connection: &mut MultiplexedConnection,
    scripts: &Scripts,
    outgoing: &mut mpsc::Receiver<Outgoing>,
) {
    outgoing.close();
    let within = Duration::from_nanos(link.shared.flush_within_nanos.load(Ordering::Acquire));
    let deadline = tokio::time::Instant::now() + within;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        while batch.len() < MAX_BATCH {
            match outgoing.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            return;
        }
        let sent = tokio::time::timeout_at(deadline, send(link, connection, scripts, &mut batch));
        match sent.await {
            Ok(Ok(())) => {}
            Ok(Err(reason)) => {
                link.drain(outgoing, &reason);
                return;
            }
            Err(_) => {
                let reason = "the time given to stop ran out";
                link.lost(batch.drain(..), Lost::InFlight, reason);
                link.drain(outgoing, reason);
                return;
            }
        }
    }
}

/// The subscription connection's task: connects, subscribes to the wanted set and the probe
/// channel, passes messages on, reconciles when the set changes, probes; reconnects when the
/// stream ends or the probe does not come back.
async fn subscriber(link: Arc<Link>) {
    let mut backoff = Backoff::new();
    loop {
        let connected = tokio::select! {
            result = connect_and_subscribe(&link) => result,
            () = link.cancel.cancelled() => return,
        };
        let reason = match connected {
            Err(reason) => format!("cannot subscribe: {reason}"),
            Ok((sink, stream, subscribed)) => {
                backoff.reset();
                link.confirm(&subscribed);
                link.set(Side::Subscription, Ok(())).await;
                let served = serve(&link, sink, stream, subscribed).await;
                link.confirm(&HashSet::new());
                match served {
                    Some(reason) => reason,
                    None => return,
                }
            }
        };
        link.set(Side::Subscription, Err(reason)).await;
        link.check_publish.notify_one();
        if !link.pause(&mut backoff).await {
            return;
        }
    }
}

async fn connect_and_subscribe(
    link: &Link,
) -> Result<(PubSubSink, PubSubStream, HashSet<Topic>), String> {
    let connected = tokio::time::timeout(CONNECT_TIMEOUT, link.client.get_async_pubsub()).await;
    let (mut sink, stream) = flatten(connected)?.split();
    let wanted = lock(&link.shared.wanted).clone();
    let mut channels: Vec<String> = wanted.iter().map(|topic| link.channel(topic)).collect();
    channels.push(link.probe_channel.clone());
    // Only once Redis has confirmed every SUBSCRIBE does the link count as up.
    subscribe_all(&mut sink, &channels).await?;
    Ok((sink, stream, wanted))
}

/// One SUBSCRIBE per channel, all sent at once, answered in order: the connection answers a
/// command naming n channels with n replies, which would be matched to later commands.
async fn subscribe_all(sink: &mut PubSubSink, channels: &[String]) -> Result<(), String> {
    if channels.is_empty() {
        return Ok(());
    }
    let all = try_join_all(channels.iter().map(|channel| {
        let mut sink = sink.clone();
        async move { sink.subscribe(channel).await }
    }));
    flatten(tokio::time::timeout(RESPONSE_TIMEOUT, all).await).map(drop)
}

async fn unsubscribe_all(sink: &mut PubSubSink, channels: &[String]) -> Result<(), String> {
    if channels.is_empty() {
        return Ok(());
    }
    let all = try_join_all(channels.iter().map(|channel| {
        let mut sink = sink.clone();
        async move { sink.unsubscribe(channel).await }
    }));
    flatten(tokio::time::timeout(RESPONSE_TIMEOUT, all).await).map(drop)
}

/// Runs one subscription connection until it fails (`Some(reason)`) or the backplane stops
/// (`None`).
async fn serve(
    link: &Link,
    mut sink: PubSubSink,
    mut stream: PubSubStream,
    mut subscribed: HashSet<Topic>,
) -> Option<String> {
    let generation = link.new_probe_generation();
    let mut seq = 0_u64;
    let mut next_probe = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(WATCH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = link.cancel.cancelled() => return None,
            message = stream.next() => match message {
                Some(message) => link.deliver(&message),
                None => return Some("the subscription connection closed".to_owned()),
            },
            () = link.shared.wake_subscriber.notified() => {
                // Only the difference: a topic dropped and asked for again in between costs
                // no command. The topics about to be dropped stop counting as confirmed in the
                // same step as the snapshot (under the lock `subscribe` takes): a `subscribed`
                // asked after a `subscribe` that the snapshot missed then waits for the next
                // SUBSCRIBE, instead of trusting a subscription on its way out.
                let wanted = {
                    let wanted = lock(&link.shared.wanted);
                    let kept: HashSet<Topic> = subscribed.intersection(&wanted).cloned().collect();
                    link.confirm(&kept);
                    wanted.clone()
                };
                let added: Vec<String> =
                    wanted.difference(&subscribed).map(|topic| link.channel(topic)).collect();
                let removed: Vec<String> =
                    subscribed.difference(&wanted).map(|topic| link.channel(topic)).collect();
                if let Err(reason) = subscribe_all(&mut sink, &added).await {
                    return Some(format!("subscribe: {reason}"));
                }
                if let Err(reason) = unsubscribe_all(&mut sink, &removed).await {
                    return Some(format!("unsubscribe: {reason}"));
                }
                link.confirm(&wanted);
                subscribed = wanted;
            }
            _ = tick.tick() => {
                if link.probe_overdue() {
                    return Some(format!(
                        "probe not back within {PROBE_DEADLINE:?}: the subscription feed is stalled"
                    ));
                }
                let now = tokio::time::Instant::now();
                if now >= next_probe && link.shared.up.load(Ordering::Acquire) {
                    next_probe = now + PROBE_EVERY;
                    seq += 1;
                    // A full queue skips a probe; the next tick sends another.
                    let _ = link.outbox.try_send(Outgoing::Probe { generation, seq });
                }
            }
        }
    }
}

/// A timed Redis call's result, its failure as text (the reason of an `Event::Down`).
fn flatten<T>(
    result: Result<redis::RedisResult<T>, tokio::time::error::Elapsed>,
) -> Result<T, String> {
    match result {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("Redis did not answer in time".to_owned()),
    }
}

/// A duration in ms for Redis, at most [`MAX_MILLIS`].
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .min(MAX_MILLIS)
}

/// The bytes of a string reply.
fn bulk(value: &redis::Value) -> Option<&[u8]> {
    match value {
        redis::Value::BulkString(bytes) => Some(bytes),
        redis::Value::SimpleString(text) => Some(text.as_bytes()),
        _ => None,
    }
}

/// Locks a mutex; a panic elsewhere while it was held leaves data that is still consistent
/// here (sets and counters), so poisoning is ignored.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
