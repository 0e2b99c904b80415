//! Room history: the settings ([`History`]), what a recovery gives ([`Recovery`],
//! [`NotRecovered`]), and the rule that says whether a client's position can be recovered
//! exactly ([`decide`]). Positions and the ring of recent messages are in `cluster`, since
//! the envelope and the stores carry them.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::cluster::{Position, Room};
use crate::message::Message;

type Rule = Arc<dyn Fn(&str) -> bool + Send + Sync>;
type Format = Arc<dyn Fn(&Room, &Position, &Message) -> Message + Send + Sync>;

/// Which rooms keep a history of their messages, how much of it, and how a recorded message
/// is written to its members ([`Config::history`](crate::Config::history)).
///
/// A message delivered to a room that keeps history ([`Recipients::room`](crate::Recipients::room),
/// [`Endpoint::publish`](crate::Endpoint::publish)) gets the next [`Position`] in that room,
/// is kept (the last `keep` messages, none older than `ttl`), and goes to the members as
/// [`format`](History::format) writes it with its position. A client that comes back with
/// the position of the last message it got joins with
/// [`Endpoint::join_since`](crate::Endpoint::join_since) and gets exactly what it missed, in
/// order, before anything newer, or is told honestly that it cannot.
///
/// ```
/// use std::time::Duration;
/// use ws::{Config, History, Message};
///
/// let config = Config::new().history(Some(
///     History::new(100, Duration::from_secs(300))
///         .rooms(|room| !room.starts_with("tmp:"))
///         .format(|room, at, message| {
///             let text = message.as_text().unwrap_or_default();
///             Message::text(format!("{room} {} {} {text}", at.epoch, at.offset))
///         }),
/// ));
/// ```
///
/// A member whose send queue is full when a recorded message comes is closed with 1008
/// whatever the [`SlowConsumer`](crate::SlowConsumer) policy, since a message dropped for it
/// would be a silent hole in what it got: it comes back and recovers instead. For the same
/// reason [`deliver_wait`](crate::Endpoint::deliver_wait) does not wait for room in a
/// recorded room's members' queues.
///
/// On one node the history is in memory: a restart begins a new epoch in every room, and a
/// room silent for a day forgets its epoch (its next message begins a new one).
///
/// In a cluster the history is in the backplane's store (Redis: a stream and a hash per
/// room), which gives each message its position and publishes it to the nodes in one step:
/// every node, the sender's included, delivers a room's recorded messages in offset order,
/// one store round trip after they were sent, and nothing while the store is down
/// ([`Endpoint::publish`](crate::Endpoint::publish) says so). A node that finds a hole in a
/// room's messages (its link was down, the store lost data) fills it from the store; when the
/// store no longer has what is missing, the room's members on that node are closed with
/// 1012 "History lost", so that their clients come back and learn honestly, from
/// [`Endpoint::join_since`](crate::Endpoint::join_since), that they did not recover.
#[derive(Clone)]
pub struct History {
    keep: usize,
    ttl: Duration,
    rooms: Option<Rule>,
    format: Option<Format>,
}

impl History {
    /// Keeps the last `keep` messages of each room (at least 1), none older than `ttl`.
    /// Every room keeps history unless [`rooms`](History::rooms) says which.
    pub fn new(keep: usize, ttl: Duration) -> Self {
        History {
            keep: keep.max(1),
            ttl,
            rooms: None,
            format: None,
        }
    }

    /// Only the rooms for which `rule` returns `true` keep history. The rule is part of the
    /// application's code, so every node of a cluster agrees on it.
    #[must_use]
    pub fn rooms(mut self, rule: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        self.rooms = Some(Arc::new(rule));
        self
    }

    /// How a recorded message is written to the room's members, with its position: called
    /// once per message (not per member), and the result is what a replay sends too, so a
    /// live and a replayed message are the same bytes. Without it a message goes out as it
    /// was given, and clients cannot learn its position. It must not block; if it panics the
    /// message is neither recorded nor delivered (the panic is logged, and
    /// [`Endpoint::publish`](crate::Endpoint::publish) reports it).
    #[must_use]
    pub fn format(
        mut self,
        format: impl Fn(&Room, &Position, &Message) -> Message + Send + Sync + 'static,
    ) -> Self {
        self.format = Some(Arc::new(format));
        self
    }

    /// Whether this room keeps history.
    pub fn keeps(&self, room: &str) -> bool {
        self.rooms.as_ref().is_none_or(|rule| rule(room))
    }

    /// How many messages each room keeps.
    pub fn get_keep(&self) -> usize {
        self.keep
    }

    /// How long a message is kept.
    pub fn get_ttl(&self) -> Duration {
        self.ttl
    }

    /// The message as the room's members get it.
    pub(crate) fn formatted(&self, room: &Room, at: &Position, message: Message) -> Message {
        match &self.format {
            Some(format) => format(room, at, &message),
            None => message,
        }
    }
}

impl fmt::Debug for History {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("History")
            .field("keep", &self.keep)
            .field("ttl", &self.ttl)
            .field("rooms", &self.rooms.as_ref().map(|_| "rule"))
            .field("format", &self.format.as_ref().map(|_| "fn"))
            .finish()
    }
}

/// Why a client's missed messages could not be given back exactly. Nothing is replayed then:
/// the application reloads the room's state its own way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum NotRecovered {
    /// The client gave no position (a first join).
    #[error("no position was given")]
    NoPosition,
    /// The position is from another epoch: the history it belonged to was lost.
    #[error("the position is from another epoch")]
    Epoch,
    /// Some of the messages after the position are no longer kept (too many, or too old).
    #[error("messages after the position are no longer kept")]
    Window,
    /// The position is ahead of the room's last message.
    #[error("the position is ahead of the room's last message")]
    Ahead,
}

impl NotRecovered {
    /// A short name for logs and metrics: `no_position`, `epoch`, `window` or `ahead`.
    pub fn as_str(self) -> &'static str {
        match self {
            NotRecovered::NoPosition => "no_position",
            NotRecovered::Epoch => "epoch",
            NotRecovered::Window => "window",
            NotRecovered::Ahead => "ahead",
        }
    }
}

/// What a join with a position gave the client
/// ([`Endpoint::join_since`](crate::Endpoint::join_since)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Recovery {
    /// The room's last position when the client joined: every message it gets from the room
    /// after the replay has a higher offset in this epoch.
    pub position: Position,
    /// Whether the client got exactly every message after its position.
    pub recovered: bool,
    /// How many messages were replayed (none unless `recovered`).
    pub replayed: usize,
    /// Why not, when not recovered.
    pub reason: Option<NotRecovered>,
}

/// Whether the messages after `since` can be given back exactly, given the room's `top` and
/// the first and last offsets kept after `since` (`None` if none is). A pure rule, so that
/// every store decides alike: recovered iff the epoch is the same and the kept entries are
/// exactly `since + 1 ..= top`.
pub(crate) fn decide(
    since: Option<&Position>,
    top: &Position,
    kept: Option<(u64, u64)>,
) -> Result<(), NotRecovered> {
    let since = since.ok_or(NotRecovered::NoPosition)?;
    if since.epoch != top.epoch {
        return Err(NotRecovered::Epoch);
    }
    if since.offset > top.offset {
        return Err(NotRecovered::Ahead);
    }
    if since.offset == top.offset {
        return Ok(());
    }
    match kept {
        Some((first, last)) if first == since.offset + 1 && last == top.offset => Ok(()),
        _ => Err(NotRecovered::Window),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::Epoch;

    #[test]
    fn the_decision() {
        let epoch = Epoch::random();
        let other = Epoch::random();
        let top = Position::new(10, epoch);
        let at = |offset| Position::new(offset, epoch);
        assert_eq!(decide(None, &top, None), Err(NotRecovered::NoPosition));
        let stale = Position::new(10, other);
        assert_eq!(decide(Some(&stale), &top, None), Err(NotRecovered::Epoch));
        assert_eq!(decide(Some(&at(11)), &top, None), Err(NotRecovered::Ahead));
        assert_eq!(decide(Some(&at(10)), &top, None), Ok(()));
        assert_eq!(decide(Some(&at(7)), &top, Some((8, 10))), Ok(()));
        assert_eq!(decide(Some(&at(0)), &top, Some((1, 10))), Ok(()));
        for kept in [None, Some((9, 10)), Some((8, 9))] {
            assert_eq!(
                decide(Some(&at(7)), &top, kept),
                Err(NotRecovered::Window),
                "{kept:?}"
            );
        }
        let empty = Position::new(0, epoch);
        assert_eq!(decide(Some(&empty), &empty, None), Ok(()));
    }

    #[test]
    fn every_room_keeps_history_unless_a_rule_says() {
        let all = History::new(0, Duration::from_secs(1));
        assert_eq!(all.get_keep(), 1, "at least one");
        assert!(all.keeps("anything"));
        let some = all.rooms(|room| room != "tmp");
        assert!(some.keeps("lobby") && !some.keeps("tmp"));
    }
}
