//! The state of a socket's room histories, shared by the two paths: kept in memory on one
//! node (`recover.rs`, with the public calls), or in the cluster's store with a feed per room
//! here (`feed.rs`); and the errors and counters of both.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use super::SendError;
use crate::cluster::ring::Ring;
use crate::cluster::{ClientId, Position, Room};
use crate::history::{History, NotRecovered, Recovery};
use crate::message::Message;
use crate::metrics::Meter;
use crate::proto::OutFrame;

/// A room silent (no message, no join with a position) for this long, with nothing kept,
/// forgets its epoch.
const SILENT: Duration = Duration::from_secs(24 * 60 * 60);

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Every room's history on this node: kept here (standalone), or in the cluster's store
/// with a feed per room here (`feed.rs`).
#[derive(Debug)]
pub(super) struct Histories {
    pub(super) settings: History,
    /// Whether the store is the cluster's: rooms have feeds here, not rings.
    pub(super) clustered: bool,
    pub(super) rings: Mutex<HashMap<Room, Arc<Mutex<Ring>>>>,
    pub(super) feeds: Mutex<HashMap<Room, Arc<Mutex<Feed>>>>,
    /// When the rings are next trimmed, and silent ones dropped.
    next_sweep: Mutex<Instant>,
    pub(super) stats: Counters,
}

#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) appended: AtomicU64,
    pub(super) replayed: AtomicU64,
    pub(super) recovered: AtomicU64,
    pub(super) not_recovered: [AtomicU64; 4],
    pub(super) healed: AtomicU64,
    pub(super) lost: AtomicU64,
}

impl Histories {
    pub(super) fn new(settings: History, clustered: bool) -> Self {
        Histories {
            settings,
            clustered,
            rings: Mutex::default(),
            feeds: Mutex::default(),
            next_sweep: Mutex::new(Instant::now()),
            stats: Counters::default(),
        }
    }

    /// The message as the room's members get it, or `None` if [`History::format`] panicked
    /// (logged: the message is dropped).
    pub(super) fn format(&self, room: &Room, at: &Position, message: Message) -> Option<Message> {
        catch_unwind(AssertUnwindSafe(|| {
            self.settings.formatted(room, at, message)
        }))
        .map_err(|_| {
            tracing::error!(%room, "History::format panicked: the message is not delivered");
        })
        .ok()
    }

    pub(super) fn count_recovery(&self, recovery: &Recovery, meter: &Meter) {
        let stats = &self.stats;
        stats
            .replayed
            .fetch_add(recovery.replayed as u64, Ordering::Relaxed);
        let outcome = match recovery.reason {
            None => {
                stats.recovered.fetch_add(1, Ordering::Relaxed);
                0
            }
            Some(reason) => {
                let index = reason_index(reason);
                stats.not_recovered[index].fetch_add(1, Ordering::Relaxed);
                index + 1
            }
        };
        if let Some(export) = meter.export() {
            export.recovery(outcome);
        }
    }

    pub(super) fn count_appended(&self) {
        self.stats.appended.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn count_healed(&self) {
        self.stats.healed.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn count_lost(&self, members: usize, meter: &Meter) {
        self.stats.lost.fetch_add(members as u64, Ordering::Relaxed);
        if let Some(export) = meter.export() {
            export.history_lost(members as u64);
        }
    }

    /// This room's ring, created (a new epoch) if it has none.
    pub(super) fn ring(&self, room: &Room) -> Arc<Mutex<Ring>> {
        let now = Instant::now();
        self.sweep_if_due(now);
        lock(&self.rings)
            .entry(room.clone())
            .or_insert_with(|| Arc::new(Mutex::new(Ring::new(now))))
            .clone()
    }

    /// Trims every ring by age and drops the silent empty ones, every quarter of the TTL at
    /// most (so memory follows the TTL without a task of its own).
    fn sweep_if_due(&self, now: Instant) {
        let ttl = self.settings.get_ttl();
        {
            let mut next = lock(&self.next_sweep);
            if now < *next {
                return;
            }
            *next = now + (ttl / 4).max(Duration::from_secs(1));
        }
        lock(&self.rings).retain(|_, ring| {
            let mut ring = lock(ring);
            ring.trim(now, ttl);
            ring.len() > 0 || now.saturating_duration_since(ring.touched) < SILENT
        });
    }
}

/// Why [`Endpoint::publish`](crate::Endpoint::publish) did not record a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The room keeps no history: no [`Config::history`](crate::Config::history), or its
    /// [`rooms`](History::rooms) rule leaves this room out.
    #[error("room {0} keeps no history")]
    NoHistory(Room),
    /// [`History::format`] panicked on the message: it was neither recorded nor delivered.
    #[error("formatting a message of room {0} panicked")]
    Format(Room),
    /// In a cluster: the store could not take the message (its link is down or its queue
    /// full); it was neither recorded nor delivered, here or anywhere.
    #[error("the history store is unavailable; the message to room {0} was not recorded")]
    Unavailable(Room),
    /// In a cluster: the message was handed to the store, but the link broke before its
    /// answer; it may or may not have been recorded and delivered.
    #[error("the outcome of recording a message to room {0} is unknown")]
    Uncertain(Room),
}

/// Why [`Endpoint::join_since`](crate::Endpoint::join_since) did not join.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// The room keeps no history.
    #[error("room {0} keeps no history")]
    NoHistory(Room),
    /// The client is not open, is closing, or its send queue could not take the replay (it
    /// is then closed with 1008, and comes back to recover with a smaller gap).
    #[error(transparent)]
    Client(#[from] SendError),
    /// In a cluster: the room's subscription or the history store could not be reached in
    /// time; the client did not join.
    #[error("the history of room {0} could not be reached; the client did not join")]
    Unavailable(Room),
}

/// What the histories of a socket have done, from
/// [`Endpoint::history_stats`](crate::Endpoint::history_stats).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HistoryStats {
    /// Rooms with a history now.
    pub rooms: usize,
    /// Messages kept now, in all rooms.
    pub kept: usize,
    /// Messages recorded.
    pub appended: u64,
    /// Messages replayed to clients that came back.
    pub replayed: u64,
    /// Joins with a position that got every missed message.
    pub recovered: u64,
    /// Joins that were not recovered, by reason: [`NotRecovered::NoPosition`],
    /// [`Epoch`](NotRecovered::Epoch), [`Window`](NotRecovered::Window),
    /// [`Ahead`](NotRecovered::Ahead), in that order.
    pub not_recovered: [u64; 4],
    /// In a cluster: gaps in a room's feed on this node filled from the store (with at least
    /// one message read back).
    pub healed: u64,
    /// In a cluster: members closed with 1012 because messages of their room were lost
    /// before this node could deliver them (see [`History`]).
    pub lost: u64,
}

pub(super) fn reason_index(reason: NotRecovered) -> usize {
    match reason {
        NotRecovered::NoPosition => 0,
        NotRecovered::Epoch => 1,
        NotRecovered::Window => 2,
        NotRecovered::Ahead => 3,
    }
}

pub(super) type Then<'a> = Box<dyn FnOnce(&Recovery) -> Option<Message> + Send + 'a>;

/// A recorded message as it came from the feed.
#[derive(Debug)]
pub(super) struct Frame {
    pub(super) position: Position,
    pub(super) except: Vec<ClientId>,
    pub(super) message: Message,
}

/// One room's feed on this node.
#[derive(Debug, Default)]
pub(super) struct Feed {
    /// The last position delivered here; `None` until the first since the room had members.
    pub(super) cursor: Option<Position>,
    /// The link's outage count when the cursor moved.
    pub(super) outages_at: u64,
    /// Frames that came after a gap, held while it is healed.
    pub(super) held: Vec<Frame>,
    pub(super) healing: bool,
    /// Clients joining with a position: the frames delivered to them meanwhile.
    pub(super) recovering: HashMap<ClientId, Vec<(u64, OutFrame)>>,
    /// Clients that recovered past the cursor: frames up to this offset are not theirs again.
    pub(super) floors: HashMap<ClientId, u64>,
}

/// Where a frame stands against the cursor.
pub(super) enum Place {
    Next,
    Old,
    Gap,
}

impl Feed {
    pub(super) fn place(&self, at: &Position, outages: u64) -> Place {
        let Some(cursor) = self.cursor else {
            return Place::Next;
        };
        if at.epoch == cursor.epoch {
            if at.offset == cursor.offset + 1 {
                Place::Next
            } else if at.offset <= cursor.offset {
                Place::Old
            } else {
                Place::Gap
            }
        } else if at.offset == 1 && outages == self.outages_at {
            // A new history that begins at 1, and no outage since the last message: nothing
            // can be missing.
            Place::Next
        } else {
            Place::Gap
        }
    }
}

impl Histories {
    /// This room's feed, created empty if it has none.
    pub(super) fn feed(&self, room: &Room) -> Arc<Mutex<Feed>> {
        lock(&self.feeds).entry(room.clone()).or_default().clone()
    }
}
