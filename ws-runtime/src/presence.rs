//! Presence: who is in a room, on every node, with the user each connection is
//! ([`Accept::user`](crate::Accept::user)), and join/leave events to a room's members.

use std::fmt;
use std::sync::Arc;

use crate::cluster::{ClientId, Room, User};
use crate::message::Message;

type Rule = Arc<dyn Fn(&str) -> bool + Send + Sync>;
type Events = Arc<dyn Fn(&Room, &PresenceEvent) -> Option<Message> + Send + Sync>;

/// Which rooms track their members across the cluster, and what their members are told
/// when someone joins or leaves ([`Config::presence`](crate::Config::presence)).
///
/// [`Endpoint::presence`](crate::Endpoint::presence) then lists a room's members on every
/// node, each with its user. On one node it is read from the node's rooms; in a cluster each
/// node also keeps a copy of its members in the backplane's store (Redis: a hash per node and
/// room), marked alive by each heartbeat, so that the members of a node killed without a word
/// leave every list within the cluster's expiry (3 s by default, 4 s at most with the sweep).
///
/// ```
/// use ws::{Config, Message, Presence, PresenceChange};
///
/// let config = Config::new().presence(Some(
///     Presence::new()
///         .rooms(|room| room != "lobby")
///         .events(|room, event| {
///             let user = event.user.as_ref()?;
///             let what = match event.change {
///                 PresenceChange::Join => "joined",
///                 _ => "left",
///             };
///             Some(Message::text(format!("{user} {what} {room}")))
///         }),
/// ));
/// ```
///
/// Events are per connection (a user with two tabs joins twice), go to the room's other
/// members on every node, and are opt-in: on a mass reconnect they cost one message per
/// member per join. The members of a node killed without a word leave the lists without a
/// leave event.
#[derive(Clone, Default)]
pub struct Presence {
    rooms: Option<Rule>,
    events: Option<Events>,
}

impl Presence {
    /// Every room tracks its members; no events.
    pub fn new() -> Self {
        Presence::default()
    }

    /// Only the rooms for which `rule` returns `true` track their members. The rule is part
    /// of the application's code, so every node agrees on it.
    #[must_use]
    pub fn rooms(mut self, rule: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        self.rooms = Some(Arc::new(rule));
        self
    }

    /// Tells a room's other members when a connection joins or leaves it, with the message
    /// `event` makes (none when it returns `None`). It is called once per event on each node
    /// with members in the room, and must not block.
    #[must_use]
    pub fn events(
        mut self,
        event: impl Fn(&Room, &PresenceEvent) -> Option<Message> + Send + Sync + 'static,
    ) -> Self {
        self.events = Some(Arc::new(event));
        self
    }

    /// Whether this room tracks its members.
    pub fn keeps(&self, room: &str) -> bool {
        self.rooms.as_ref().is_none_or(|rule| rule(room))
    }

    /// Whether members are told of joins and leaves.
    pub fn has_events(&self) -> bool {
        self.events.is_some()
    }

    /// The message for an event, if any (a panic in the application's function is logged,
    /// and no message is sent).
    pub(crate) fn event(&self, room: &Room, event: &PresenceEvent) -> Option<Message> {
        let events = self.events.as_ref()?;
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| events(room, event)))
            .map_err(|_| tracing::error!(%room, "Presence::events panicked: no event sent"))
            .ok()
            .flatten()
    }
}

impl fmt::Debug for Presence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Presence")
            .field("rooms", &self.rooms.as_ref().map(|_| "rule"))
            .field("events", &self.events.as_ref().map(|_| "fn"))
            .finish()
    }
}

/// A connection joined or left a room ([`Presence::events`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PresenceEvent {
    /// Joined or left.
    pub change: PresenceChange,
    /// The connection.
    pub id: ClientId,
    /// Its user, if `on_handshake` gave one.
    pub user: Option<User>,
}

impl PresenceEvent {
    /// An event.
    pub fn new(change: PresenceChange, id: ClientId, user: Option<User>) -> Self {
        PresenceEvent { change, id, user }
    }
}

/// What a [`PresenceEvent`] says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PresenceChange {
    /// The connection joined the room.
    Join,
    /// The connection left the room (or closed).
    Leave,
}

/// One member of a room: a connection and its user.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub struct Member {
    /// The connection.
    pub id: ClientId,
    /// Its user, if `on_handshake` gave one.
    pub user: Option<User>,
}

impl Member {
    /// A member.
    pub fn new(id: ClientId, user: Option<User>) -> Self {
        Member { id, user }
    }
}

/// A room's members on every node ([`Endpoint::presence`](crate::Endpoint::presence)), in
/// id order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Members {
    /// Every member, in id order.
    pub members: Vec<Member>,
}

impl Members {
    /// These members, put in id order.
    pub fn new(mut members: Vec<Member>) -> Self {
        members.sort();
        members.dedup();
        Members { members }
    }

    /// The users among the members, each once, sorted by key.
    pub fn users(&self) -> Vec<User> {
        let mut users: Vec<User> = self
            .members
            .iter()
            .filter_map(|member| member.user.clone())
            .collect();
        users.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
        users.dedup();
        users
    }

    /// How many connections are members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the room has no member.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// How many users are members.
    pub fn users_len(&self) -> usize {
        self.users().len()
    }
}
