//! The `Endpoint`: sending, broadcasting and closing from anywhere, through the registry of
//! open clients (`registry.rs`) and each client's bounded send queue (`client.rs`).

mod client;
mod feed;
mod histories;
mod presence;
mod recover;
mod registry;
mod remote;
mod rooms;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

pub(crate) use client::{Client, Direct, Identity, Outgoing};
pub use histories::{HistoryStats, JoinError, PublishError};
pub use recover::JoinSince;
use registry::{CURRENT, Registry};
pub use remote::{ClusterStats, NodeInfo, Partial, Remote};

use crate::cluster::wire::Body;
use crate::cluster::{ClientId, NodeId, Room, User};
use crate::config::Config;
use crate::message::{Close, Message, truncate_reason};
use crate::proto::OutFrame;

/// Why a send did not queue its message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// No open client has this id (it never existed or has already closed).
    #[error("no open client with id {0}")]
    UnknownClient(ClientId),
    /// The client is closing; nothing more is sent to it.
    #[error("client {0} is closing")]
    Closing(ClientId),
    /// The client's send queue was full: it is a slow consumer. Under the default
    /// [`SlowConsumer::Close`](crate::SlowConsumer::Close) policy it is being closed with
    /// 1008; otherwise the message was dropped for it.
    #[error("send queue of client {0} is full")]
    QueueFull(ClientId),
    /// The close code cannot be sent in a close frame (see [`Close::is_sendable`]).
    #[error("close code {0} cannot be sent")]
    InvalidCloseCode(u16),
    /// The client is on another node of the cluster, and this node's link to the cluster is
    /// down (or its outgoing queue is full): nothing was sent. Operations on this node's own
    /// clients go on regardless.
    #[error("client {0} is on another node, and the link to the cluster is down")]
    Unavailable(ClientId),
}

/// The outcome of a delivery ([`Endpoint::deliver`], [`Endpoint::broadcast`]).
///
/// In a cluster, `queued` and `failed` count this node's clients (and the named ids of nodes
/// known to be gone, or of any node when the remote part was not sent); what became of the
/// part for the other nodes is [`remote`](Delivery::remote).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Delivery {
    /// How many clients had the message queued.
    pub queued: usize,
    /// Clients that did not get it: slow consumers (now closing with 1008), clients already
    /// closing, and named ids that are not open.
    pub failed: Vec<ClientId>,
    /// The part for the other nodes of the cluster: published once, not needed, or not sent
    /// because the link is down.
    pub remote: Remote,
    /// The message's position when it was recorded in one room that keeps history
    /// ([`Config::history`](crate::Config::history)); `None` otherwise. A message to several
    /// such rooms has one position in each: [`Endpoint::publish`] gives them one by one.
    pub position: Option<crate::cluster::Position>,
}

impl Delivery {
    fn count(&mut self, id: ClientId, queued: bool) {
        if queued {
            self.queued += 1;
        } else {
            self.failed.push(id);
        }
    }
}

/// A snapshot of one client's connection and counters, from [`Endpoint::info`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientInfo {
    /// The client's id.
    pub id: ClientId,
    /// The peer's address.
    pub remote_addr: SocketAddr,
    /// When the connection was opened.
    pub connected_at: SystemTime,
    /// The negotiated subprotocol, if any.
    pub protocol: Option<String>,
    /// The user `on_handshake` said this client is ([`Accept::user`](crate::Accept::user)).
    pub user: Option<crate::cluster::User>,
    /// Bytes read from the socket, frame headers included.
    pub bytes_read: u64,
    /// Frames read, control frames included.
    pub frames_read: u64,
    /// Complete data messages read.
    pub messages_read: u64,
    /// Bytes written to the socket, frame headers included.
    pub bytes_sent: u64,
    /// Frames written, control frames included.
    pub frames_sent: u64,
    /// Data messages written.
    pub messages_sent: u64,
    /// When data was last read, if ever.
    pub last_read: Option<SystemTime>,
    /// When data was last written, if ever.
    pub last_sent: Option<SystemTime>,
    /// Messages waiting in the send queue.
    pub queued: usize,
    /// Payload bytes waiting in the send queue.
    pub queued_bytes: usize,
}

/// A cheap, cloneable handle to send to the clients of one [`Socket`](crate::Socket) from anywhere:
/// hooks, spawned tasks, other warp routes.
///
/// Messages go into each client's bounded send queue and are written by that client's own task; the
/// payload of a message for many clients is encoded once and shared. Messages to one client are
/// written in the order they were queued, whatever call queued them. A client whose queue is full
/// is a slow consumer: under the default [`SlowConsumer::Close`](crate::SlowConsumer::Close) policy
/// it is closed with 1008 and the send reports it, so one slow reader never grows the server's
/// memory or delays the others.
///
/// There is one way to name who gets a message, [`Recipients`], and one pair of calls that take it:
/// [`deliver`](Endpoint::deliver) never waits, and [`deliver_wait`](Endpoint::deliver_wait)
/// waits for room under [`SlowConsumer::Wait`](crate::SlowConsumer::Wait).
/// [`send`](Endpoint::send) and [`send_wait`](Endpoint::send_wait) (one client, with the
/// reason of a failure) and [`broadcast`](Endpoint::broadcast) (everyone) are their short forms.
/// Any message goes: text, binary, or JSON through `Message::json` (feature `json`).
///
/// In a cluster ([`Config::cluster`](crate::Config::cluster)) the same calls reach the clients
/// of every node: an id names its node, and what is for other nodes is published once (see
/// the crate guide's "Clusters" for the order kept and what an outage loses). The queries
/// ([`clients`](Endpoint::clients), [`len`](Endpoint::len), [`members`](Endpoint::members), ...)
/// answer for this node; [`cluster_len`](Endpoint::cluster_len) and
/// [`cluster_clients`](Endpoint::cluster_clients) ask every node.
///
/// ```
/// use ws::Recipients;
///
/// # async fn demo(endpoint: ws::Endpoint, id: ws::ClientId, friend: ws::ClientId) {
/// endpoint.send(id, "just for you").ok();
/// let delivery = endpoint.broadcast("hello, everyone");
/// println!("{} clients got it; {:?} did not", delivery.queued, delivery.failed);
/// endpoint.deliver(Recipients::except([id]), "someone joined");
/// endpoint.deliver([id, friend], "just the two of you");
/// for id in endpoint.clients() {
///     if let Some(info) = endpoint.info(id) {
///         println!("{id} from {} sent {} messages", info.remote_addr, info.messages_read);
///     }
/// }
/// endpoint.close(id, 4000, "bye").ok();
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Endpoint {
    registry: Arc<Registry>,
}

/// Who gets a message sent with [`Endpoint::deliver`] or [`Endpoint::deliver_wait`].
///
/// A [`ClientId`], an array or a `Vec` of them converts into [`Recipients::Clients`]:
///
/// ```
/// use ws::Recipients;
///
/// # fn demo(endpoint: ws::Endpoint, a: ws::ClientId, b: ws::ClientId) {
/// endpoint.deliver(a, "to one client");
/// endpoint.deliver([a, b], "to two");
/// endpoint.deliver(Recipients::All, "to everyone");
/// endpoint.deliver(Recipients::except([a]), "to everyone but a");
/// endpoint.deliver(Recipients::room("lobby"), "to the lobby");
/// endpoint.deliver(Recipients::room("lobby").excluding([a]), "to the lobby but a");
/// endpoint.deliver(Recipients::rooms(["red", "blue"]), "once to each member of either");
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Recipients {
    /// Every open client.
    All,
    /// Every open client except these.
    AllExcept(Vec<ClientId>),
    /// These clients, each once; ids that are not open are reported as failed.
    Clients(Vec<ClientId>),
    /// The members of these rooms, each once however many of the rooms it is in, except
    /// these clients.
    Rooms {
        /// The rooms.
        rooms: Vec<Room>,
        /// Members left out.
        except: Vec<ClientId>,
    },
    /// Every connection of these users ([`Accept::user`](crate::Accept::user)), on every
    /// node, each once, except these clients.
    Users {
        /// The users.
        users: Vec<User>,
        /// Connections left out.
        except: Vec<ClientId>,
    },
}

impl Recipients {
    /// Every open client except these.
    pub fn except(ids: impl IntoIterator<Item = ClientId>) -> Self {
        Recipients::AllExcept(ids.into_iter().collect())
    }

    /// These clients.
    pub fn clients(ids: impl IntoIterator<Item = ClientId>) -> Self {
        Recipients::Clients(ids.into_iter().collect())
    }

    /// The members of a room ([`Endpoint::join`]).
    pub fn room(room: impl Into<Room>) -> Self {
        Recipients::Rooms {
            rooms: vec![room.into()],
            except: Vec::new(),
        }
    }

    /// The members of any of these rooms, each once.
    pub fn rooms<R: Into<Room>>(rooms: impl IntoIterator<Item = R>) -> Self {
        Recipients::Rooms {
            rooms: rooms.into_iter().map(Into::into).collect(),
            except: Vec::new(),
        }
    }

    /// Every connection of a user ([`Accept::user`](crate::Accept::user)), on every node.
    pub fn user(user: impl Into<User>) -> Self {
        Recipients::Users {
            users: vec![user.into()],
            except: Vec::new(),
        }
    }

    /// Every connection of any of these users, each once.
    pub fn users<U: Into<User>>(users: impl IntoIterator<Item = U>) -> Self {
        Recipients::Users {
            users: users.into_iter().map(Into::into).collect(),
            except: Vec::new(),
        }
    }

    /// The same recipients without these clients: `Recipients::room("lobby").excluding([id])`
    /// is the lobby but `id`, `Recipients::All.excluding(ids)` is
    /// [`Recipients::except(ids)`](Recipients::except).
    #[must_use]
    pub fn excluding(self, ids: impl IntoIterator<Item = ClientId>) -> Self {
        let ids = ids.into_iter();
        match self {
            Recipients::All => Recipients::AllExcept(ids.collect()),
            Recipients::AllExcept(mut except) => {
                except.extend(ids);
                Recipients::AllExcept(except)
            }
            Recipients::Clients(mut clients) => {
                let ids: Vec<ClientId> = ids.collect();
                clients.retain(|id| !ids.contains(id));
                Recipients::Clients(clients)
            }
            Recipients::Rooms { rooms, mut except } => {
                except.extend(ids);
                Recipients::Rooms { rooms, except }
            }
            Recipients::Users { users, mut except } => {
                except.extend(ids);
                Recipients::Users { users, except }
            }
        }
    }
}

impl From<ClientId> for Recipients {
    fn from(id: ClientId) -> Self {
        Recipients::Clients(vec![id])
    }
}

impl<const N: usize> From<[ClientId; N]> for Recipients {
    fn from(ids: [ClientId; N]) -> Self {
        Recipients::Clients(ids.to_vec())
    }
}

impl From<Vec<ClientId>> for Recipients {
    fn from(ids: Vec<ClientId>) -> Self {
        Recipients::Clients(ids)
    }
}

impl From<&[ClientId]> for Recipients {
    fn from(ids: &[ClientId]) -> Self {
        Recipients::Clients(ids.to_vec())
    }
}

/// Recipients as the delivery point reads them: borrowed, and one client without a `Vec`.
#[derive(Clone, Copy)]
enum Target<'a> {
    One(ClientId),
    All,
    AllExcept(&'a [ClientId]),
    Clients(&'a [ClientId]),
    Rooms(&'a [Room], &'a [ClientId]),
    Users(&'a [User], &'a [ClientId]),
}

impl<'a> From<&'a Recipients> for Target<'a> {
    fn from(recipients: &'a Recipients) -> Self {
        match recipients {
            Recipients::All => Target::All,
            Recipients::AllExcept(ids) => Target::AllExcept(ids),
            Recipients::Clients(ids) => Target::Clients(ids),
            Recipients::Rooms { rooms, except } => Target::Rooms(rooms, except),
            Recipients::Users { users, except } => Target::Users(users, except),
        }
    }
}

/// An [`Endpoint`] that does not keep its clients' registry alive: the cluster's tasks hold
/// one, so that a socket dropped without a shutdown does not live on in them.
struct WeakEndpoint(std::sync::Weak<Registry>);

impl WeakEndpoint {
    fn upgrade(&self) -> Option<Endpoint> {
        self.0.upgrade().map(|registry| Endpoint { registry })
    }
}

impl Endpoint {
    pub(crate) fn new(config: &Config) -> Self {
        Endpoint {
            registry: Arc::new(Registry::new(config)),
        }
    }

    fn downgrade(&self) -> WeakEndpoint {
        WeakEndpoint(Arc::downgrade(&self.registry))
    }

    /// A data frame of this message, encoded once for all its receivers.
    fn frame(&self, message: Message) -> OutFrame {
        OutFrame::message(message, self.registry.share_from)
    }

    /// Queues a message for one client: the short form of [`deliver`](Endpoint::deliver) for
    /// one id, with its reason when it fails.
    ///
    /// # Errors
    ///
    /// [`SendError::UnknownClient`] if no open client has this id, [`SendError::Closing`] if
    /// it is closing, [`SendError::QueueFull`] if its queue is full (it is then closed with
    /// 1008 under the default policy). For another node's client: `Ok` once sent to its node
    /// (which then queues it, or not, as here), [`SendError::Unavailable`] if the link to the
    /// cluster is down, [`SendError::UnknownClient`] if its node is known to be gone.
    pub fn send(&self, id: ClientId, message: impl Into<Message>) -> Result<(), SendError> {
        if id.node() != self.registry.node {
            return self.send_remote(id, message.into());
        }
        self.push_one(id, self.frame(message.into()))
    }

    /// Sends to another node's client through the cluster.
    fn send_remote(&self, id: ClientId, message: Message) -> Result<(), SendError> {
        self.to_owner(id, || Body::ToIds {
            ids: vec![id],
            message,
        })
    }

    /// Queues a message for every open client: the short form of
    /// [`deliver`](Endpoint::deliver)`(Recipients::All, message)`.
    pub fn broadcast(&self, message: impl Into<Message>) -> Delivery {
        self.deliver(Recipients::All, message)
    }

    /// Queues a message for these recipients, without waiting: a full queue applies the socket's
    /// [`SlowConsumer`](crate::SlowConsumer) policy (under
    /// [`SlowConsumer::Wait`](crate::SlowConsumer::Wait), the message is dropped for that client;
    /// [`deliver_wait`](Endpoint::deliver_wait) waits instead).
    ///
    /// From a hook handling the last message its connection has read, a message of up to
    /// 2 KiB is written to each receiver's socket at once where that connection has nothing
    /// queued and is not writing (plain TCP without compression), instead of waking its task:
    /// the order of everything a client receives is the same either way.
    pub fn deliver(&self, to: impl Into<Recipients>, message: impl Into<Message>) -> Delivery {
        let to = to.into();
        let message = message.into();
        if let Recipients::Rooms { rooms, except } = &to {
            if self.records(rooms) {
                return self.deliver_recorded(rooms, except, &message);
            }
        }
        let mut delivery = Delivery::default();
        // This node's recipients first, then the rest of the cluster, once.
        let remote = self.registry.link.as_ref().map(|_| message.clone());
        self.push(Target::from(&to), self.frame(message), |id, result| {
            delivery.count(id, result.is_ok());
        });
        if let Some(message) = remote {
            self.publish_remote(Target::from(&to), &message, &mut delivery);
        }
        delivery
    }

    /// Queues a message for these recipients; under the
    /// [`SlowConsumer::Wait`](crate::SlowConsumer::Wait) policy it waits for room in each one's
    /// queue in turn (so the slowest paces the sender) and returns once the message is queued for
    /// every one or they are gone. Under the other policies it is the same as
    /// [`deliver`](Endpoint::deliver), and so it is to rooms of which one keeps history (see
    /// [`History`](crate::History)): their messages go out in offset order, and never wait.
    pub async fn deliver_wait(
        &self,
        to: impl Into<Recipients>,
        message: impl Into<Message>,
    ) -> Delivery {
        let to = to.into();
        let message = message.into();
        if let Recipients::Rooms { rooms, except } = &to {
            if self.records(rooms) {
                return self.deliver_recorded(rooms, except, &message);
            }
        }
        let mut delivery = Delivery::default();
        // The rest of the cluster first: it does not wait for this node's slow readers.
        self.publish_remote(Target::from(&to), &message, &mut delivery);
        let frame = self.frame(message);
        self.push_wait(Target::from(&to), frame, |id, result| {
            delivery.count(id, result.is_ok());
        })
        .await;
        delivery
    }

    /// Queues a message for one client, waiting for room under the
    /// [`SlowConsumer::Wait`](crate::SlowConsumer::Wait) policy: the short form of
    /// [`deliver_wait`](Endpoint::deliver_wait) for one id, with its reason when it fails. It
    /// returns once the message is queued or the client is gone.
    ///
    /// # Errors
    ///
    /// As [`send`](Endpoint::send).
    pub async fn send_wait(
        &self,
        id: ClientId,
        message: impl Into<Message>,
    ) -> Result<(), SendError> {
        if id.node() != self.registry.node {
            return self.send_remote(id, message.into());
        }
        let mut sent = Err(SendError::UnknownClient(id));
        let frame = self.frame(message.into());
        self.push_wait(Target::One(id), frame, |_, result| sent = result)
            .await;
        sent
    }

    /// The one delivery point: every send, broadcast and delivery queues its frame here (or in
    /// [`push_wait`](Endpoint::push_wait), its waiting form), for each recipient in turn, and
    /// reports each one's outcome. Both find their recipients through
    /// [`resolve`](Endpoint::resolve).
    fn push(
        &self,
        to: Target<'_>,
        frame: OutFrame,
        mut outcome: impl FnMut(ClientId, Result<(), SendError>),
    ) {
        if let Target::One(id) = to {
            return outcome(id, self.push_one(id, frame));
        }
        let started = std::time::Instant::now();
        let direct = self.writes_at_once();
        self.resolve(to, |id, client| match client {
            Some(client) if direct => outcome(id, client.push_direct(frame.clone(), started)),
            Some(client) => outcome(id, client.push(frame.clone())),
            None => outcome(id, Err(SendError::UnknownClient(id))),
        });
        self.registry.meter.fanout(started.elapsed());
    }

    /// Runs `f` with the client whose hooks this thread is polling ([`Endpoint::as_current`]),
    /// if it is one of this endpoint's.
    fn with_current<R>(&self, f: impl FnOnce(&Arc<Client>) -> R) -> Option<R> {
        CURRENT
            .try_with(|current| {
                let current = current.borrow();
                let current = current.as_ref()?;
                Arc::ptr_eq(&current.registry, &self.registry).then(|| f(&current.client))
            })
            .ok()
            .flatten()
    }

    /// Whether this thread is polling a hook of one of this endpoint's clients that handles
    /// its connection's last message read so far: its deliveries are then written at once
    /// where the receiver's writer is idle ([`Client::push_direct`]), instead of waking it.
    /// Another task polled on this thread while the hook waits is not the hook: the flag is
    /// read from the client the thread is polling hooks of.
    fn writes_at_once(&self) -> bool {
        self.with_current(|current| current.handles_last())
            .unwrap_or(false)
    }

    /// [`push`](Endpoint::push) to one client, with its outcome.
    fn push_one(&self, id: ClientId, frame: OutFrame) -> Result<(), SendError> {
        // The usual reply, from the client's own hooks: no lock, no lookup, one look at the
        // thread-local slot, which also tells whether a send to another client is written
        // at once.
        let mut frame = Some(frame);
        let mut direct = false;
        let pushed = self.with_current(|current| {
            if current.id != id {
                direct = current.handles_last();
                return None;
            }
            frame.take().map(|frame| current.push(frame))
        });
        if let Some(Some(sent)) = pushed {
            return sent;
        }
        // Still here: it was not pushed above.
        let Some(frame) = frame else {
            return Err(SendError::UnknownClient(id));
        };
        let clients = self.registry.read();
        let client = clients.map.get(&id).ok_or(SendError::UnknownClient(id))?;
        if direct {
            return client.push_direct(frame, std::time::Instant::now());
        }
        client.push(frame)
    }

    /// The waiting form of [`push`](Endpoint::push): the recipients are found first, then
    /// each one's queue is waited on in turn, outside the registry's lock.
    async fn push_wait(
        &self,
        to: Target<'_>,
        frame: OutFrame,
        mut outcome: impl FnMut(ClientId, Result<(), SendError>),
    ) {
        let mut open = Vec::new();
        self.resolve(to, |id, client| match client {
            Some(client) => open.push(client.clone()),
            None => outcome(id, Err(SendError::UnknownClient(id))),
        });
        for client in open {
            outcome(client.id, client.push_wait(frame.clone()).await);
        }
    }

    /// Finds the recipients among the open clients, under the registry's read lock: each
    /// open one with its client, each named id that is not open without.
    fn resolve(&self, to: Target<'_>, mut each: impl FnMut(ClientId, Option<&Arc<Client>>)) {
        let clients = self.registry.read();
        match to {
            Target::One(id) => each(id, clients.map.get(&id)),
            Target::All => {
                for (id, client) in &clients.map {
                    each(*id, Some(client));
                }
            }
            Target::AllExcept(except) => {
                for (id, client) in &clients.map {
                    if !except.contains(id) {
                        each(*id, Some(client));
                    }
                }
            }
            Target::Clients(ids) => {
                let mut ids = ids.to_vec();
                ids.sort_unstable();
                ids.dedup();
                // In a cluster, other nodes' clients are theirs to deliver to.
                let clustered = self.registry.link.is_some();
                for id in ids {
                    if !(clustered && id.node() != self.registry.node) {
                        each(id, clients.map.get(&id));
                    }
                }
            }
            Target::Rooms(rooms, except) => {
                // Members are open clients: a client leaves its rooms as it unregisters,
                // under the same lock.
                for id in clients.rooms.union(rooms, except) {
                    each(id, clients.map.get(&id));
                }
            }
            Target::Users(users, except) => {
                // Likewise: a connection leaves its user's list as it unregisters.
                let mut ids: Vec<ClientId> = users
                    .iter()
                    .filter_map(|user| clients.users.get(user))
                    .flatten()
                    .filter(|id| !except.contains(id))
                    .copied()
                    .collect();
                ids.sort_unstable();
                ids.dedup();
                for id in ids {
                    each(id, clients.map.get(&id));
                }
            }
        }
    }

    /// Closes a client with this code and reason, after the messages already queued for it.
    /// Its `on_close` then runs with this code.
    ///
    /// # Errors
    ///
    /// [`SendError::InvalidCloseCode`] for a code that cannot be sent (see
    /// [`Close::is_sendable`]), [`SendError::UnknownClient`] if no open client has this id.
    /// Closing a client that is already closing succeeds and changes nothing. Another node's
    /// client is closed by its node, as [`send`](Endpoint::send) reaches it.
    pub fn close(&self, id: ClientId, code: u16, reason: &str) -> Result<(), SendError> {
        if !Close::is_sendable(code) {
            return Err(SendError::InvalidCloseCode(code));
        }
        if id.node() != self.registry.node {
            let reason = truncate_reason(reason).to_owned();
            return self.to_owner(id, || Body::Close { id, code, reason });
        }
        let clients = self.registry.read();
        let client = clients.map.get(&id).ok_or(SendError::UnknownClient(id))?;
        client.close(Close::new(code, truncate_reason(reason)));
        Ok(())
    }

    /// The ids of the open clients, in ascending order.
    pub fn clients(&self) -> Vec<ClientId> {
        let mut ids: Vec<ClientId> = self.registry.read().map.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// How many clients are open.
    pub fn len(&self) -> usize {
        self.registry.read().map.len()
    }

    /// Whether no client is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds an open client to a room; joining a room twice is joining it once. The client
    /// leaves every room when it closes.
    ///
    /// ```
    /// # fn on_open(endpoint: &ws::Endpoint, id: ws::ClientId) {
    /// // In `on_open`, say: it fails only if the client closed meanwhile.
    /// endpoint.join(id, "lobby").ok();
    /// endpoint.deliver(ws::Recipients::room("lobby").excluding([id]), format!("{id} came in"));
    /// # }
    /// ```
    ///
    /// Another node's client joins on its node, which keeps the membership (so
    /// [`members`](Endpoint::members) there lists it, not here); the call returns once the
    /// request is sent.
    ///
    /// # Errors
    ///
    /// [`SendError::UnknownClient`] if no open client has this id; for another node's
    /// client, as [`send`](Endpoint::send).
    pub fn join(&self, id: ClientId, room: impl Into<Room>) -> Result<(), SendError> {
        let room = room.into();
        if id.node() != self.registry.node {
            return self.to_owner(id, || Body::Join { id, room });
        }
        self.join_local(id, &room)
    }

    fn join_local(&self, id: ClientId, room: &Room) -> Result<(), SendError> {
        let mut clients = self.registry.write();
        if !clients.map.contains_key(&id) {
            return Err(SendError::UnknownClient(id));
        }
        let joined = self.join_locked(&mut clients, id, room);
        drop(clients);
        if joined {
            self.entered(room, id);
        }
        Ok(())
    }

    /// Adds `id` to `room` under the registry's write lock, subscribing to the room's topic
    /// for its first member here; whether it was not in the room yet.
    fn join_locked(&self, clients: &mut registry::Clients, id: ClientId, room: &Room) -> bool {
        let joined = clients.rooms.join(id, room.clone());
        if joined && clients.rooms.len(room.as_str()) == 1 {
            self.room_created(room);
        }
        joined
    }

    /// Removes a client from a room; whether it was in it. For another node's client it is
    /// whether the request was sent to its node (which then removes it, if it is there).
    pub fn leave(&self, id: ClientId, room: &str) -> bool {
        if id.node() != self.registry.node {
            let room = Room::from(room);
            return self.to_owner(id, || Body::Leave { id, room }).is_ok();
        }
        self.leave_local(id, room)
    }

    fn leave_local(&self, id: ClientId, room: &str) -> bool {
        let mut clients = self.registry.write();
        let left = clients.rooms.leave(id, room);
        if left && clients.rooms.len(room) == 0 {
            self.room_emptied(&Room::from(room));
        }
        // The user is only needed for a presence event.
        let user = (left && self.registry.presence.is_some())
            .then(|| {
                clients
                    .map
                    .get(&id)
                    .and_then(|client| client.user().cloned())
            })
            .flatten();
        drop(clients);
        if left {
            self.exited(&Room::from(room), id, user);
        }
        left
    }

    /// The rooms a client is in, in the order it joined them (none for a client that is not
    /// open).
    pub fn rooms(&self, id: ClientId) -> Vec<Room> {
        self.registry.read().rooms.of(id).to_vec()
    }

    /// The members of a room, in id order.
    pub fn members(&self, room: &str) -> Vec<ClientId> {
        let mut ids: Vec<ClientId> = self.registry.read().rooms.members(room).collect();
        ids.sort_unstable();
        ids
    }

    /// How many clients are in a room.
    pub fn room_len(&self, room: &str) -> usize {
        self.registry.read().rooms.len(room)
    }

    /// Every room with at least one member, by name.
    pub fn room_names(&self) -> Vec<Room> {
        let mut names: Vec<Room> = self.registry.read().rooms.names().cloned().collect();
        names.sort_unstable();
        names
    }

    /// The `n` rooms of this node with the most members here, most first (ties by name).
    pub fn busiest_rooms(&self, n: usize) -> Vec<(Room, usize)> {
        let clients = self.registry.read();
        let mut rooms: Vec<(Room, usize)> = clients
            .rooms
            .names()
            .map(|room| (room.clone(), clients.rooms.len(room.as_str())))
            .collect();
        drop(clients);
        rooms.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        rooms.truncate(n);
        rooms
    }

    /// The user `on_handshake` said this open client of this node is
    /// ([`Accept::user`](crate::Accept::user)).
    pub fn user(&self, id: ClientId) -> Option<User> {
        self.registry.read().map.get(&id)?.user().cloned()
    }

    /// This node's open connections of a user, in the order they opened.
    pub fn connections(&self, user: &str) -> Vec<ClientId> {
        self.registry
            .read()
            .users
            .get(user)
            .cloned()
            .unwrap_or_default()
    }

    /// Closes every connection of a user, on every node, with this code and reason, after the
    /// messages already queued for each. The [`Delivery`] counts this node's connections
    /// (`queued`: closed) and says whether the other nodes were told.
    ///
    /// # Errors
    ///
    /// [`SendError::InvalidCloseCode`] for a code that cannot be sent.
    pub fn close_user(&self, user: &str, code: u16, reason: &str) -> Result<Delivery, SendError> {
        if !Close::is_sendable(code) {
            return Err(SendError::InvalidCloseCode(code));
        }
        let reason = truncate_reason(reason);
        let mut delivery = Delivery::default();
        {
            let clients = self.registry.read();
            for id in clients.users.get(user).into_iter().flatten() {
                if let Some(client) = clients.map.get(id) {
                    client.close(Close::new(code, reason));
                    delivery.queued += 1;
                }
            }
        }
        self.close_remote_user(User::from(user), code, reason, &mut delivery);
        Ok(delivery)
    }

    /// This endpoint's node: the [`NodeId`] in the id of every client it accepts. A client is
    /// this node's when `id.node() == endpoint.node()`.
    pub fn node(&self) -> NodeId {
        self.registry.node
    }

    /// Whether this client is open.
    pub fn contains(&self, id: ClientId) -> bool {
        self.registry.read().map.contains_key(&id)
    }

    /// The connection details and counters of an open client.
    pub fn info(&self, id: ClientId) -> Option<ClientInfo> {
        Some(self.registry.read().map.get(&id)?.info())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use client::DIRECT_MAX;

    /// Each socket decides from its own deflate threshold whether a frame carries the cell
    /// that shares compressed bytes: a socket with deflate does not change another's frames.
    #[test]
    fn the_compression_cell_follows_each_sockets_own_threshold() {
        use crate::proto::deflate::Deflate;
        let plain = Endpoint::new(&Config::new());
        let small = Endpoint::new(&Config::new().deflate(Some(Deflate::default().threshold(10))));
        let large = Endpoint::new(&Config::new().deflate(Some(Deflate::default().threshold(100))));
        let message = || Message::text("x".repeat(50));
        assert!(small.frame(message()).shares_compression());
        assert!(!large.frame(message()).shares_compression());
        assert!(!plain.frame(message()).shares_compression(), "no deflate");
        assert!(
            large
                .frame(Message::text("x".repeat(100)))
                .shares_compression()
        );
    }

    #[test]
    fn registry_queues_and_refuses() {
        let endpoint = Endpoint::new(&Config::new().send_queue(2));
        let addr = SocketAddr::from(([127, 0, 0, 1], 1));
        let a = endpoint.register(addr, None).unwrap();
        let b = endpoint.register(addr, None).unwrap();
        assert_eq!(endpoint.clients(), vec![a.id, b.id]);
        assert_eq!(endpoint.broadcast("x").queued, 2);
        assert!(matches!(a.queue.try_pop(), Some(Outgoing::Message(f)) if f.payload.len() == 1));
        endpoint.send(b.id, "y").unwrap();
        assert_eq!(endpoint.send(b.id, "z"), Err(SendError::QueueFull(b.id)));
        assert!(b.is_closing());
        assert_eq!(b.take_urgent().map(|c| c.code), Some(1008));
        assert_eq!(endpoint.send(b.id, "z"), Err(SendError::Closing(b.id)));
        let delivery = endpoint.deliver([a.id, ClientId::new(endpoint.node(), 99)], "m");
        assert_eq!(delivery.queued, 1);
        assert_eq!(delivery.failed, vec![ClientId::new(endpoint.node(), 99)]);
        assert_eq!(
            endpoint.close(a.id, 1005, ""),
            Err(SendError::InvalidCloseCode(1005))
        );
        endpoint.begin_shutdown();
        assert!(endpoint.register(addr, None).is_none());
        endpoint.unregister(a.id, 1000);
        assert_eq!(endpoint.len(), 1);
    }

    /// Runs `deliver` as a hook of `client` would, handling its connection's last message
    /// read so far (`last`) or not.
    async fn from_hook(
        endpoint: &Endpoint,
        client: &Arc<Client>,
        last: bool,
        deliver: impl FnOnce(),
    ) {
        client.set_handles_last(last);
        let hook = std::pin::pin!(async { deliver() });
        endpoint.as_current(client.clone(), hook).await;
        client.set_handles_last(false);
    }

    /// An endpoint with a publisher and a receiver whose queue has the server's end of a
    /// connected pair of plain TCP sockets lent as its sink; the socket, and the peer's end.
    async fn direct_pair() -> (
        Endpoint,
        Arc<Client>,
        Arc<Client>,
        Arc<tokio::net::TcpStream>,
        tokio::net::TcpStream,
    ) {
        let endpoint = Endpoint::new(&Config::default());
        let addr = SocketAddr::from(([127, 0, 0, 1], 1));
        let publisher = endpoint.register(addr, None).unwrap();
        let receiver = endpoint.register(addr, None).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let peer = tokio::net::TcpStream::connect(listener.local_addr().unwrap());
        let (peer, accepted) = tokio::join!(peer, listener.accept());
        let server = Arc::new(accepted.unwrap().0);
        receiver
            .queue
            .lend_sink(Direct::new(server.clone(), usize::MAX));
        (endpoint, publisher, receiver, server, peer.unwrap())
    }

    /// From a hook handling its connection's last message, a small delivery to a client
    /// whose writer is idle is written to its socket at once (no writer runs in this test),
    /// and counted; from outside a hook, earlier in a pass, when something is queued, when
    /// the writer holds, or past the size for it, it is queued.
    #[tokio::test]
    async fn deliveries_from_a_hooks_last_message_are_written_at_once() {
        use tokio::io::AsyncReadExt;
        let (endpoint, publisher, receiver, server, mut peer) = direct_pair().await;
        let queued = |client: &Client| {
            let next = client.queue.try_pop();
            client.queue.settle();
            match next {
                Some(Outgoing::Message(frame)) => frame.payload,
                other => panic!("a message queued, not {other:?}"),
            }
        };

        endpoint.broadcast("a");
        assert_eq!(queued(&receiver), "a", "from outside a hook");
        assert_eq!(queued(&publisher), "a");
        from_hook(&endpoint, &publisher, false, || {
            endpoint.send(receiver.id, "b").unwrap();
        })
        .await;
        assert_eq!(queued(&receiver), "b", "earlier in a pass");

        from_hook(&endpoint, &publisher, true, || {
            endpoint.send(receiver.id, "c").unwrap();
            assert_eq!(endpoint.broadcast("d").queued, 2);
        })
        .await;
        assert_eq!(receiver.queue.len(), 0, "written, not queued");
        let mut wire = [0; 6];
        peer.read_exact(&mut wire).await.unwrap();
        assert_eq!(&wire, b"\x81\x01c\x81\x01d");
        let info = receiver.info();
        assert_eq!(
            (info.messages_sent, info.frames_sent, info.bytes_sent),
            (2, 2, 6)
        );
        assert_eq!(queued(&publisher), "d", "no socket lent: queued");

        let large = Bytes::from(vec![1; DIRECT_MAX + 1]);
        from_hook(&endpoint, &publisher, true, || {
            endpoint.send(receiver.id, "e").unwrap();
            receiver.queue.hold(|_| false);
            endpoint.send(receiver.id, "f").unwrap();
            receiver.queue.settle();
            endpoint
                .send(receiver.id, Message::Binary(large.clone()))
                .unwrap();
        })
        .await;
        assert_eq!(queued(&receiver), "f", "while the writer holds");
        assert_eq!(queued(&receiver), large, "past the size for it");
        peer.read_exact(&mut wire[..3]).await.unwrap();
        assert_eq!(&wire[..3], b"\x81\x01e");

        from_hook(&endpoint, &publisher, true, || {
            endpoint.send(receiver.id, "g").unwrap();
            endpoint.send(receiver.id, "h").unwrap();
        })
        .await;
        let _ = receiver
            .queue
            .try_push(Outgoing::Message(endpoint.frame(Message::text("i"))));
        from_hook(&endpoint, &publisher, true, || {
            endpoint.send(receiver.id, "j").unwrap();
        })
        .await;
        assert_eq!(queued(&receiver), "i");
        assert_eq!(queued(&receiver), "j", "behind what is queued");
        peer.read_exact(&mut wire).await.unwrap();
        assert_eq!(&wire, b"\x81\x01g\x81\x01h");
        endpoint.unregister(receiver.id, 1000);
        receiver.queue.close();
        assert_eq!(
            Arc::strong_count(&server),
            1,
            "the socket went with the queue's close"
        );
    }

    /// A receiver that reads nothing fills its socket: the direct write that finds too
    /// little room writes what fits and queues the rest, which the writer's hold gives first;
    /// the peer then reads every frame whole and in order.
    #[tokio::test]
    async fn a_partial_direct_write_queues_its_rest_first() {
        use tokio::io::AsyncReadExt;
        let (endpoint, publisher, receiver, server, mut peer) = direct_pair().await;
        let fill = |n: usize| u8::try_from(n % 251).unwrap();
        let frame = |n: usize| Message::Binary(Bytes::from(vec![fill(n); DIRECT_MAX]));
        let mut sent = 0;
        while receiver.queue.len() == 0 && sent < 100_000 {
            from_hook(&endpoint, &publisher, true, || {
                endpoint.send(receiver.id, frame(sent)).unwrap();
            })
            .await;
            sent += 1;
        }
        let rest = receiver
            .hold_writes()
            .expect("the rest of a partial write")
            .payload;
        assert_eq!(receiver.queue.len(), 0);
        assert!(!rest.is_empty() && rest.len() < DIRECT_MAX + 4);
        // The writer writes the rest before anything else.
        let reading = async {
            let mut wire = vec![0; sent * (DIRECT_MAX + 4)];
            peer.read_exact(&mut wire).await.unwrap();
            wire
        };
        let writing = async {
            let mut writer = crate::rt::tcp::TcpWriter(server.clone());
            tokio::io::AsyncWriteExt::write_all(&mut writer, &rest)
                .await
                .unwrap();
        };
        let (wire, ()) = tokio::join!(reading, writing);
        for (n, frame) in wire.chunks(DIRECT_MAX + 4).enumerate() {
            assert_eq!(frame[..4], [0x82, 126, 0x08, 0x00], "frame {n}'s header");
            assert!(
                frame[4..].iter().all(|&b| b == fill(n)),
                "frame {n}'s payload"
            );
        }
        assert_eq!(
            receiver.info().bytes_sent,
            (sent * (DIRECT_MAX + 4) - rest.len()) as u64
        );
    }
}
