//! Presence at the endpoint: a room's members on every node, and join/leave events. Each
//! node owns its members (its registry); in a cluster it also keeps a copy in the backplane's
//! store for the others, marked alive with each heartbeat.

use std::sync::Mutex;
use std::time::Instant;

use super::{Endpoint, Partial, Target};
use crate::cluster::wire::Body;
use crate::cluster::{ClientId, PRESENCE_KEEP, Room, Topic, User};
use crate::presence::{Member, Members, Presence, PresenceChange, PresenceEvent};

/// The presence settings of a socket, and when its entries in the store were last refreshed.
#[derive(Debug)]
pub(super) struct Presences {
    pub(super) settings: Presence,
    refreshed: Mutex<Instant>,
}

impl Presences {
    pub(super) fn new(settings: Presence) -> Self {
        Presences {
            settings,
            refreshed: Mutex::new(Instant::now()),
        }
    }

    /// Whether the store's entries are due for a refresh (every third of their keep).
    fn refresh_due(&self) -> bool {
        let mut refreshed = self
            .refreshed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if refreshed.elapsed() < PRESENCE_KEEP / 3 {
            return false;
        }
        *refreshed = Instant::now();
        true
    }
}

impl Endpoint {
    /// The presence settings, if `room` tracks its members.
    fn presence_in(&self, room: &str) -> Option<&Presence> {
        self.registry
            .presence
            .as_ref()
            .map(|presences| &presences.settings)
            .filter(|settings| settings.keeps(room))
    }

    /// A client of this node joined a room (it was not in it): the store's copy, and the
    /// event to the other members. Called outside the registry's lock.
    pub(super) fn entered(&self, room: &Room, id: ClientId) {
        if self.presence_in(room.as_str()).is_none() {
            return;
        }
        let user = self.user(id);
        if let Some(store) = self.link().and_then(super::remote::Link::store) {
            // While the link is down this is lost, and rewritten when it comes back.
            let _ = store.enter(room, id, user.as_ref());
        }
        self.announce(room, &PresenceEvent::new(PresenceChange::Join, id, user));
    }

    /// A client of this node left a room (or closed). Called outside the registry's lock.
    pub(super) fn exited(&self, room: &Room, id: ClientId, user: Option<User>) {
        if self.presence_in(room.as_str()).is_none() {
            return;
        }
        if let Some(store) = self.link().and_then(super::remote::Link::store) {
            let _ = store.exit(room, id);
        }
        self.announce(room, &PresenceEvent::new(PresenceChange::Leave, id, user));
    }

    /// Tells the room's other members here, and the other nodes, of a change.
    fn announce(&self, room: &Room, event: &PresenceEvent) {
        let Some(settings) = self.presence_in(room.as_str()) else {
            return;
        };
        if !settings.has_events() {
            return;
        }
        if let Some(link) = self.link() {
            let body = Body::Presence {
                room: room.clone(),
                join: event.change == PresenceChange::Join,
                id: event.id,
                user: event.user.clone(),
            };
            let _ = link.publish(&Topic::Room(room.clone()), &body);
        }
        self.tell_members(settings, room, event);
    }

    /// Pushes an event's message to the room's members here, but its subject.
    fn tell_members(&self, settings: &Presence, room: &Room, event: &PresenceEvent) {
        if let Some(message) = settings.event(room, event) {
            let frame = self.frame(message);
            let rooms = std::slice::from_ref(room);
            self.push(Target::Rooms(rooms, &[event.id]), frame, |_, _| {});
        }
    }

    /// A recorded message or a presence change, from the cluster.
    pub(super) fn receive_room(&self, body: Body) {
        match body {
            Body::Recorded {
                room,
                position,
                except,
                message,
            } => self.receive_recorded(&room, position, &except, message),
            Body::Presence {
                room,
                join,
                id,
                user,
            } => self.receive_presence(&room, join, id, user),
            _ => {}
        }
    }

    /// A change on another node, from the cluster.
    fn receive_presence(&self, room: &Room, join: bool, id: ClientId, user: Option<User>) {
        if let Some(settings) = self.presence_in(room.as_str()) {
            let change = if join {
                PresenceChange::Join
            } else {
                PresenceChange::Leave
            };
            self.tell_members(settings, room, &PresenceEvent::new(change, id, user));
        }
    }

    /// This node's members of every room that tracks them, for the store.
    fn local_members(&self) -> Vec<(Room, ClientId, Option<User>)> {
        let clients = self.registry.read();
        let mut all = Vec::new();
        for room in clients.rooms.names() {
            if self.presence_in(room.as_str()).is_none() {
                continue;
            }
            for id in clients.rooms.members(room.as_str()) {
                let user = clients
                    .map
                    .get(&id)
                    .and_then(|client| client.user().cloned());
                all.push((room.clone(), id, user));
            }
        }
        all
    }

    /// Rewrites this node's entries in the store: when the link comes (back) up, since what
    /// was written meanwhile was lost, and the store itself may have lost everything.
    pub(super) fn reenter_all(&self) {
        let Some(store) = self.link().and_then(super::remote::Link::store) else {
            return;
        };
        if self.registry.presence.is_none() {
            return;
        }
        for (room, id, user) in self.local_members() {
            let _ = store.enter(&room, id, user.as_ref());
        }
    }

    /// Marks this node alive in the store for `ttl` (each heartbeat), refreshing its rooms'
    /// entries when due.
    pub(super) fn mark_alive(&self, ttl: std::time::Duration) {
        let (Some(presences), Some(link)) = (self.registry.presence.as_ref(), self.link()) else {
            return;
        };
        let Some(store) = link.store() else { return };
        let refresh: Vec<Room> = if presences.refresh_due() {
            let mut rooms: Vec<Room> = self
                .local_members()
                .into_iter()
                .map(|(room, _, _)| room)
                .collect();
            rooms.dedup();
            rooms
        } else {
            Vec::new()
        };
        let _ = store.alive(link.node(), ttl, &refresh);
    }

    /// The members of a room on every node, each with its user ([`Accept::user`]): this
    /// node's from its rooms, the others' from the cluster's store, where a node's entries
    /// count while its heartbeats mark it alive (a node killed without a word drops out
    /// within [`Cluster::expiry`](crate::Cluster::expiry), 4 s at most by default). When the
    /// store cannot be read, the answer is this node's members, and the live nodes are named
    /// in [`missing`](Partial::missing).
    ///
    /// Rooms that do not track their members ([`Config::presence`](crate::Config::presence))
    /// answer with this node's members only.
    ///
    /// ```
    /// # async fn demo(endpoint: ws::Endpoint) {
    /// let lobby = endpoint.presence("lobby").await;
    /// let names: Vec<String> = lobby.value.users().iter().map(ToString::to_string).collect();
    /// println!("{} connections of {} users: {names:?}", lobby.value.len(), names.len());
    /// # }
    /// ```
    ///
    /// [`Accept::user`]: crate::Accept::user
    pub fn presence(
        &self,
        room: impl Into<Room>,
    ) -> impl std::future::Future<Output = Partial<Members>> + Send + 'static {
        let room = room.into();
        let local: Vec<Member> = {
            let clients = self.registry.read();
            clients
                .rooms
                .members(room.as_str())
                .map(|id| {
                    let user = clients
                        .map
                        .get(&id)
                        .and_then(|client| client.user().cloned());
                    Member::new(id, user)
                })
                .collect()
        };
        let endpoint = self.clone();
        async move {
            let tracked = endpoint.presence_in(room.as_str()).is_some();
            let link = endpoint.link().filter(|_| tracked);
            let Some((link, store)) = link.and_then(|link| Some((link, link.store()?))) else {
                return Partial {
                    value: Members::new(local),
                    missing: Vec::new(),
                };
            };
            match store.members(&room).await {
                Ok(all) => {
                    let node = link.node();
                    let mut members = local;
                    members.extend(
                        all.into_iter()
                            .filter(|(id, _)| id.node() != node)
                            .map(|(id, user)| Member::new(id, user)),
                    );
                    Partial {
                        value: Members::new(members),
                        missing: Vec::new(),
                    }
                }
                Err(error) => {
                    tracing::debug!(%room, %error, "the cluster's presence could not be read");
                    Partial {
                        value: Members::new(local),
                        missing: link.live_peers(),
                    }
                }
            }
        }
    }
}
