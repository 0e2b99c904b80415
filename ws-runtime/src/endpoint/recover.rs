//! Room history at the delivery point: a recorded message gets its position, is kept and is
//! pushed to the room's members under its room's ring lock, so that every member gets a room's
//! messages in offset order; a join with a position reads the ring and joins under the same
//! lock, so that nothing recorded meanwhile is missed or repeated.
//!
//! Lock order: the map of rings, then one ring, then the registry.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::time::Instant;

use super::histories::{Histories, HistoryStats, JoinError, PublishError, Then, lock};
use super::{Delivery, Endpoint, SendError};
use crate::cluster::{ClientId, Position, Room, StoreError, StoreFuture};
use crate::history::{Recovery, decide};
use crate::message::Message;

/// A join with a position, from [`Endpoint::join_since`]: `.await` it, after
/// [`then_send`](JoinSince::then_send) if the client should get a reply between the replay
/// and the live messages.
#[must_use = "nothing happens until it is awaited"]
pub struct JoinSince<'a> {
    endpoint: Endpoint,
    id: ClientId,
    room: Room,
    since: Option<Position>,
    then: Option<Then<'a>>,
}

impl<'a> JoinSince<'a> {
    /// Queues the message `reply` returns (if any) for the client right after the replayed
    /// messages and before any live one: the place for an application's "joined" reply,
    /// which can then tell the client the room's position and whether it recovered.
    pub fn then_send(
        mut self,
        reply: impl FnOnce(&Recovery) -> Option<Message> + Send + 'a,
    ) -> Self {
        self.then = Some(Box::new(reply));
        self
    }
}

impl<'a> IntoFuture for JoinSince<'a> {
    type Output = Result<Recovery, JoinError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        let JoinSince {
            endpoint,
            id,
            room,
            since,
            then,
        } = self;
        Box::pin(async move {
            if endpoint
                .registry
                .history
                .as_ref()
                .is_some_and(|h| h.clustered)
            {
                endpoint.join_clustered(id, &room, since, then).await
            } else {
                endpoint.join_recovering(id, &room, since, then)
            }
        })
    }
}

impl std::fmt::Debug for JoinSince<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinSince")
            .field("id", &self.id)
            .field("room", &self.room)
            .field("since", &self.since)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// The history of `room`, if it keeps one.
    fn history_of(&self, room: &str) -> Option<&Histories> {
        self.registry
            .history
            .as_ref()
            .filter(|histories| histories.settings.keeps(room))
    }

    /// Whether a delivery to these rooms records in any of them.
    pub(super) fn records(&self, rooms: &[Room]) -> bool {
        self.registry.history.as_ref().is_some_and(|histories| {
            rooms
                .iter()
                .any(|room| histories.settings.keeps(room.as_str()))
        })
    }

    /// A delivery to rooms of which some keep history: recorded once in each of those and
    /// pushed to its members (but `except`) with its position; the other rooms' members get
    /// it once, as any delivery, unless a recorded room already gave it to them.
    pub(super) fn deliver_recorded(
        &self,
        rooms: &[Room],
        except: &[ClientId],
        message: &Message,
    ) -> Delivery {
        if self.registry.history.as_ref().is_some_and(|h| h.clustered) {
            return self.deliver_clustered(rooms, except, message);
        }
        let mut delivery = Delivery::default();
        let mut reached = except.to_vec();
        let mut plain = Vec::new();
        let mut positions = Vec::new();
        for room in rooms {
            if self.history_of(room.as_str()).is_none() {
                plain.push(room.clone());
                continue;
            }
            let recorded = self.record(room, message.clone(), except, |id, result| {
                delivery.count(id, result.is_ok());
                reached.push(id);
            });
            if let Ok(position) = recorded {
                positions.push(position);
            }
        }
        if let [position] = positions[..] {
            delivery.position = Some(position);
        }
        if !plain.is_empty() {
            let frame = self.frame(message.clone());
            self.push(
                super::Target::Rooms(&plain, &reached),
                frame,
                |id, result| {
                    delivery.count(id, result.is_ok());
                },
            );
        }
        delivery
    }

    /// Records a message in a room that keeps history and pushes it, formatted with its
    /// position, to the members but `except`, all under the room's ring lock.
    fn record(
        &self,
        room: &Room,
        message: Message,
        except: &[ClientId],
        mut outcome: impl FnMut(ClientId, Result<(), SendError>),
    ) -> Result<Position, PublishError> {
        let histories = self
            .history_of(room.as_str())
            .ok_or_else(|| PublishError::NoHistory(room.clone()))?;
        let settings = &histories.settings;
        let ring = histories.ring(room);
        let mut ring = lock(&ring);
        let at = ring.next();
        let formatted = histories
            .format(room, &at, message)
            .ok_or_else(|| PublishError::Format(room.clone()))?;
        let now = Instant::now();
        ring.append(
            formatted.clone(),
            now,
            settings.get_keep(),
            settings.get_ttl(),
        );
        histories.stats.appended.fetch_add(1, Ordering::Relaxed);
        let frame = self.frame(formatted);
        let clients = self.registry.read();
        let mut members: Vec<ClientId> = clients
            .rooms
            .members(room.as_str())
            .filter(|id| !except.contains(id))
            .collect();
        members.sort_unstable();
        for id in members {
            if let Some(client) = clients.map.get(&id) {
                outcome(id, client.push_recorded(frame.clone()));
            }
        }
        Ok(at)
    }

    /// Records a message in a room that keeps history and delivers it to every member, as
    /// [`deliver`](Endpoint::deliver)`(Recipients::room(room), message)` does; the future
    /// gives the message's position. The message is recorded and queued when `publish` is
    /// called, in the order of the calls; awaiting only reads the outcome.
    ///
    /// ```
    /// # async fn demo(endpoint: ws::Endpoint) -> Result<(), ws::PublishError> {
    /// let at = endpoint.publish("lobby", "hello").await?;
    /// println!("hello is message {} of the lobby (epoch {})", at.offset, at.epoch);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// In a cluster the message goes to the cluster's store, which gives it its position and
    /// publishes it to every node with members in the room, this one included: the future
    /// resolves once the store has answered, and the members here get it from the feed like
    /// the others (one round trip later than a plain delivery).
    ///
    /// # Errors
    ///
    /// [`PublishError::NoHistory`] if the room keeps no history (nothing was delivered then),
    /// [`PublishError::Format`] if [`History::format`](crate::History::format) panicked; in a cluster,
    /// [`PublishError::Unavailable`] if the store could not take it (nothing was recorded)
    /// and [`PublishError::Uncertain`] if the link broke before the store answered.
    pub fn publish(
        &self,
        room: impl Into<Room>,
        message: impl Into<Message>,
    ) -> impl Future<Output = Result<Position, PublishError>> + Send + 'static {
        /// A position known at once, or the store's answer to come.
        enum Pending {
            Done(Position),
            Store(StoreFuture<'static, Position>),
        }
        let room = room.into();
        let message = message.into();
        let pending = if self.registry.history.as_ref().is_some_and(|h| h.clustered) {
            self.append(&room, message, &[]).map(Pending::Store)
        } else {
            self.record(&room, message, &[], |_, _| {})
                .map(Pending::Done)
        };
        async move {
            match pending? {
                Pending::Done(position) => Ok(position),
                Pending::Store(answer) => answer.await.map_err(|error| match error {
                    StoreError::Unavailable(_) => PublishError::Unavailable(room),
                    _ => PublishError::Uncertain(room),
                }),
            }
        }
    }

    /// Adds an open client to a room that keeps history, first giving it the messages it
    /// missed since `since` (the position of the last message it got from this room, as
    /// the application's client handed it back), exactly and in order, then the live ones:
    /// no message is missed or repeated, even while others publish to the room meanwhile.
    /// When that cannot be guaranteed (no position, another epoch, messages no longer kept,
    /// a position ahead of the room), nothing is replayed and the [`Recovery`] says why; the
    /// client has joined either way.
    ///
    /// ```
    /// # async fn demo(endpoint: ws::Endpoint, id: ws::ClientId, since: Option<ws::Position>) {
    /// let joined = endpoint
    ///     .join_since(id, "lobby", since)
    ///     .then_send(|r| Some(format!("joined at {} recovered={}", r.position, r.recovered).into()))
    ///     .await;
    /// match joined {
    ///     Ok(recovery) if !recovery.recovered => { /* the client reloads the room its own way */ }
    ///     Ok(_) => {}
    ///     Err(e) => eprintln!("{e}"),
    /// }
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`JoinError::NoHistory`] if the room keeps no history; [`JoinError::Client`] if the
    /// client is not open or closing, or if its send queue could not take the replay (it is
    /// closed with 1008 then).
    pub fn join_since(
        &self,
        id: ClientId,
        room: impl Into<Room>,
        since: Option<Position>,
    ) -> JoinSince<'static> {
        JoinSince {
            endpoint: self.clone(),
            id,
            room: room.into(),
            since,
            then: None,
        }
    }

    fn join_recovering(
        &self,
        id: ClientId,
        room: &Room,
        since: Option<Position>,
        then: Option<Then<'_>>,
    ) -> Result<Recovery, JoinError> {
        let histories = self
            .history_of(room.as_str())
            .ok_or_else(|| JoinError::NoHistory(room.clone()))?;
        let settings = &histories.settings;
        let ring = histories.ring(room);
        let mut ring = lock(&ring);
        let top = ring.top();
        // Read only what a recovery could replay.
        let after = since
            .filter(|since| since.epoch == top.epoch && since.offset < top.offset)
            .map(|since| since.offset);
        let entries = match after {
            Some(after) => ring.after(after, Instant::now(), settings.get_ttl()),
            None => &[],
        };
        let kept = entries
            .first()
            .zip(entries.last())
            .map(|(first, last)| (first.offset, last.offset));
        let decision = decide(since.as_ref(), &top, kept);
        let replay = if decision.is_ok() { entries } else { &[] };
        let recovery = Recovery {
            position: top,
            recovered: decision.is_ok(),
            replayed: replay.len(),
            reason: decision.err(),
        };
        let mut clients = self.registry.write();
        let client = clients
            .map
            .get(&id)
            .filter(|_| id.node() == self.registry.node)
            .ok_or(SendError::UnknownClient(id))?
            .clone();
        if client.is_closing() {
            return Err(SendError::Closing(id).into());
        }
        let joined = self.join_locked(&mut clients, id, room);
        drop(clients);
        // Still under the ring's lock: no message of the room is pushed to anyone before
        // these, and the client is a member for the next one.
        for entry in replay {
            client.push_recorded(self.frame(entry.message.clone()))?;
        }
        if let Some(reply) = then.and_then(|then| then(&recovery)) {
            client.push_recorded(self.frame(reply))?;
        }
        drop(ring);
        histories.count_recovery(&recovery, &self.registry.meter);
        if joined {
            self.entered(room, id);
        }
        Ok(recovery)
    }

    /// What the histories have done, and what they keep now; `None` when no room keeps
    /// history ([`Config::history`](crate::Config::history)).
    pub fn history_stats(&self) -> Option<HistoryStats> {
        let histories = self.registry.history.as_ref()?;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let stats = &histories.stats;
        let rings = lock(&histories.rings);
        Some(HistoryStats {
            rooms: rings.len(),
            kept: rings.values().map(|ring| lock(ring).len()).sum(),
            appended: load(&stats.appended),
            replayed: load(&stats.replayed),
            recovered: load(&stats.recovered),
            not_recovered: stats.not_recovered.each_ref().map(load),
            healed: load(&stats.healed),
            lost: load(&stats.lost),
        })
    }
}
