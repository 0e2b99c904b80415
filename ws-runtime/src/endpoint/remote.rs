//! The endpoint's side of a cluster: the part of each operation that reaches other nodes
//! (encoded once, published once, on one topic), what arrives from them applied to this node's
//! clients, and who is in the cluster (heartbeats, expiry, cluster-wide queries).
//!
//! Ordering: one node publishes everything through one backplane, which keeps its publish
//! order towards each receiving node, and one task here applies what arrives, in arrival
//! order, to the clients' FIFO queues. So what one node does to a client of another (send,
//! deliveries, close, in any mix) reaches that client in the order it was done.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{Delivery, Endpoint, SendError, Target, WeakEndpoint};
use crate::cluster::wire::{self, Body, Heartbeat};
use crate::cluster::{Backplane, ClientId, Cluster, Event, NodeId, Room, Topic, Unavailable, User};
use crate::message::Message;
use crate::metrics::{Exported, Failure, Meter, Timer, Timing};

/// A departed node is remembered this long, so that sends to its clients fail at once.
const DEPARTED: Duration = Duration::from_secs(600);

/// What became of the part of a delivery meant for other nodes ([`Delivery::remote`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Remote {
    /// Nothing was for other nodes: a standalone socket, or only this node's clients named.
    #[default]
    NotNeeded,
    /// Published once for the other nodes, which deliver it to their clients. A node applies
    /// it to its own clients' queues as [`deliver`](Endpoint::deliver) does here; its
    /// outcome there is not reported back.
    Published,
    /// Not published: the link to the cluster is down (or its queue is full). The other
    /// nodes' clients do not get it; this node's do.
    Unsent,
}

/// One node of the cluster, as this node last heard of it ([`Endpoint::nodes`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeInfo {
    /// The node.
    pub id: NodeId,
    /// Its open clients, as of its last heartbeat (this node's: now).
    pub clients: usize,
    /// When it started.
    pub started_at: SystemTime,
    /// How long ago its last heartbeat arrived (zero for this node).
    pub heard: Duration,
}

/// A cluster-wide answer that may lack some nodes' part ([`Endpoint::cluster_len`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Partial<T> {
    /// The answer from this node and every node that answered.
    pub value: T,
    /// Live nodes that did not answer within the query timeout; empty when complete.
    pub missing: Vec<NodeId>,
}

impl<T> Partial<T> {
    /// Whether every live node answered.
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty()
    }
}

/// Counters of this node's link to its cluster ([`Endpoint::cluster_stats`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterStats {
    /// Whether the link is up now (always `false` for a standalone socket).
    pub up: bool,
    /// Envelopes published.
    pub published: u64,
    /// Operations whose remote part was not published: the link was down or its queue full.
    pub unsent: u64,
    /// Envelopes received from other nodes.
    pub received: u64,
    /// Envelopes other nodes published to this node (or to all) that never arrived: gaps in
    /// their sequence numbers, as after an outage.
    pub missed: u64,
    /// Envelopes that could not be read: another envelope version, or malformed.
    pub unreadable: u64,
    /// Times the link went down.
    pub outages: u64,
    /// The time from publishing a heartbeat to receiving it back through the backplane, once
    /// a heartbeat (each second by default): the lag every envelope meets on its way.
    pub lag: Timing,
}

/// A node's link to its cluster, kept in the registry.
pub(super) struct Link {
    backplane: Arc<dyn Backplane>,
    node: NodeId,
    heartbeat: Duration,
    expiry: Duration,
    query_timeout: Duration,
    started_at: SystemTime,
    /// Sequence numbers of what this node published last, per topic, assigned under this lock
    /// with the publish itself so that their order is the publish order.
    seqs: Mutex<Seqs>,
    peers: Mutex<Peers>,
    queries: Mutex<Queries>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    started: OnceLock<()>,
    up: AtomicBool,
    published: AtomicU64,
    unsent: AtomicU64,
    received: AtomicU64,
    missed: AtomicU64,
    unreadable: AtomicU64,
    outages: AtomicU64,
    /// The last heartbeat this node published to all, by sequence number, and when: its
    /// return through the backplane is the lag.
    probe: Mutex<Option<(u32, Instant)>>,
    lag: Timer,
    /// The socket's figures (feature `metrics`: the backplane's are exported from here).
    meter: Arc<Meter>,
}

#[derive(Default)]
struct Seqs {
    all: u32,
    nodes: HashMap<NodeId, u32>,
}

/// The other nodes.
#[derive(Default)]
struct Peers {
    live: HashMap<NodeId, Peer>,
    departed: HashMap<NodeId, Instant>,
    /// The last sequence number received from each sender on `all` and on this node's topic.
    seqs: HashMap<NodeId, (u32, u32)>,
    /// Envelope versions already warned about.
    warned: HashSet<u8>,
}

struct Peer {
    heard: Instant,
    clients: u32,
    started_ms: u64,
}

#[derive(Default)]
struct Queries {
    next: u64,
    pending: HashMap<u64, Query>,
}

struct Query {
    waiting: HashSet<NodeId>,
    count: usize,
    ids: Option<Vec<ClientId>>,
    done: Option<oneshot::Sender<()>>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("node", &self.node)
            .field("up", &self.up.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn millis(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

impl Link {
    pub(super) fn new(cluster: &Cluster, node: NodeId, meter: Arc<Meter>) -> Option<Link> {
        Some(Link {
            backplane: cluster.backplane.clone()?,
            node,
            heartbeat: cluster.heartbeat,
            expiry: cluster.expiry,
            query_timeout: cluster.query_timeout,
            started_at: SystemTime::now(),
            seqs: Mutex::default(),
            peers: Mutex::default(),
            queries: Mutex::default(),
            tasks: Mutex::default(),
            started: OnceLock::new(),
            up: AtomicBool::new(false),
            published: AtomicU64::new(0),
            unsent: AtomicU64::new(0),
            received: AtomicU64::new(0),
            missed: AtomicU64::new(0),
            unreadable: AtomicU64::new(0),
            outages: AtomicU64::new(0),
            probe: Mutex::new(None),
            lag: Timer::default(),
            meter,
        })
    }

    /// Encodes and publishes one envelope, or counts it unsent. Nothing is encoded while the
    /// link is down.
    pub(super) fn publish(&self, topic: &Topic, body: &Body) -> Result<(), Unavailable> {
        if !self.backplane.is_up() {
            self.unsent.fetch_add(1, Ordering::Relaxed);
            self.export(|export| export.failed(Failure::Unsent, 1));
            return Err(Unavailable::Down);
        }
        let published = if let Topic::Room(_) = topic {
            self.backplane
                .publish(topic, wire::encode(self.node, 0, body))
        } else {
            let mut seqs = lock(&self.seqs);
            let seq = match topic {
                Topic::Node(node) => seqs.nodes.entry(*node).or_default(),
                _ => &mut seqs.all,
            };
            let next = seq.wrapping_add(1).max(1);
            let published = self
                .backplane
                .publish(topic, wire::encode(self.node, next, body));
            if published.is_ok() {
                *seq = next;
                if matches!(body, Body::Heartbeat(beat) if !beat.hello && !beat.leaving) {
                    *lock(&self.probe) = Some((next, Instant::now()));
                }
            }
            published
        };
        self.count_publish(published.is_ok());
        published
    }

    /// Counts one envelope published, or unsent.
    fn count_publish(&self, published: bool) {
        if published {
            self.published.fetch_add(1, Ordering::Relaxed);
            self.export(Exported::published);
        } else {
            self.unsent.fetch_add(1, Ordering::Relaxed);
            self.export(|export| export.failed(Failure::Unsent, 1));
        }
    }

    /// Passes the socket's exported metrics, if any, to `f` (feature `metrics`).
    #[inline]
    fn export(&self, f: impl FnOnce(&Exported)) {
        if let Some(export) = self.meter.export() {
            f(export);
        }
    }

    /// One of this node's own envelopes came back: if it is the last heartbeat published,
    /// the time it took is the lag.
    fn returned(&self, seq: u32) {
        let mut probe = lock(&self.probe);
        if let Some((sent, at)) = *probe {
            if sent == seq {
                *probe = None;
                drop(probe);
                let lag = at.elapsed();
                self.lag.record(lag);
                self.export(|export| export.lag(lag));
            }
        }
    }

    /// The link went up or down; whether that changed anything.
    fn set_up(&self, up: bool) -> bool {
        let was = self.up.swap(up, Ordering::Relaxed);
        if was != up {
            self.export(|export| export.backplane_up(up));
            if !up {
                self.outages.fetch_add(1, Ordering::Relaxed);
                self.export(Exported::outage);
            }
        }
        was != up
    }

    /// Where the backplane keeps rooms' histories, if it does.
    pub(super) fn store(&self) -> Option<&dyn crate::cluster::Store> {
        self.backplane.store()
    }

    /// Records a message through the store (in order with this node's publishes), counted
    /// as one envelope published or unsent.
    pub(super) fn append(
        &self,
        append: crate::cluster::Append,
    ) -> Result<crate::cluster::StoreFuture<'static, crate::cluster::Position>, Unavailable> {
        let appended = match self.store() {
            Some(store) if self.backplane.is_up() => store.append(append),
            _ => Err(Unavailable::Down),
        };
        self.count_publish(appended.is_ok());
        appended
    }

    /// Resolves once the room's topic is subscribed on the live link, `false` if it is not
    /// within the query timeout.
    pub(super) async fn subscribed(&self, topic: &Topic) -> bool {
        tokio::time::timeout(self.query_timeout, self.backplane.subscribed(topic))
            .await
            .unwrap_or(false)
    }

    /// How many times the link has gone down: a feed that saw no outage since its last
    /// message cannot have missed one to a lost link.
    pub(super) fn outages(&self) -> u64 {
        self.outages.load(Ordering::Relaxed)
    }

    /// This node.
    pub(super) fn node(&self) -> NodeId {
        self.node
    }

    /// The nodes heard from lately, in order.
    pub(super) fn live_peers(&self) -> Vec<NodeId> {
        let mut live: Vec<NodeId> = lock(&self.peers).live.keys().copied().collect();
        live.sort_unstable();
        live
    }

    /// Counts one node's answer to a query of this node's.
    fn answered(&self, sender: NodeId, request: u64, count: u32, ids: Option<Vec<ClientId>>) {
        let mut queries = lock(&self.queries);
        let Some(query) = queries.pending.get_mut(&request) else {
            return;
        };
        if query.waiting.remove(&sender) {
            query.count += count as usize;
            if let (Some(all), Some(ids)) = (&mut query.ids, ids) {
                all.extend(ids);
            }
            if query.waiting.is_empty() {
                if let Some(done) = query.done.take() {
                    let _ = done.send(());
                }
            }
        }
    }

    /// Restarts the expiry clock of every live peer: called as the link comes back, when
    /// nothing could be heard from them meanwhile.
    fn revive_peers(&self) {
        let now = Instant::now();
        for peer in lock(&self.peers).live.values_mut() {
            peer.heard = now;
        }
    }

    /// Whether `node` is known to be gone: it said so, or its heartbeats stopped.
    fn is_departed(&self, node: NodeId) -> bool {
        lock(&self.peers).departed.contains_key(&node)
    }

    fn heartbeat(&self, clients: usize, hello: bool, leaving: bool) -> Body {
        Body::Heartbeat(Heartbeat {
            hello,
            leaving,
            started_ms: millis(self.started_at),
            clients: u32::try_from(clients).unwrap_or(u32::MAX),
            reads: wire::VERSION,
        })
    }

    /// Notes a heartbeat from `node`; whether it is new to this node.
    fn heard(&self, node: NodeId, heartbeat: &Heartbeat) -> bool {
        let mut peers = lock(&self.peers);
        if heartbeat.leaving {
            peers.live.remove(&node);
            peers.seqs.remove(&node);
            peers.departed.insert(node, Instant::now());
            return false;
        }
        peers.departed.remove(&node);
        peers
            .live
            .insert(
                node,
                Peer {
                    heard: Instant::now(),
                    clients: heartbeat.clients,
                    started_ms: heartbeat.started_ms,
                },
            )
            .is_none()
    }

    /// Counts the envelopes lost before this one, from its sequence number.
    fn sequence(&self, sender: NodeId, to_node: bool, seq: u32) {
        if seq == 0 {
            return;
        }
        let mut peers = lock(&self.peers);
        let last = peers.seqs.entry(sender).or_default();
        let last = if to_node { &mut last.1 } else { &mut last.0 };
        if *last != 0 && seq > last.wrapping_add(1) {
            let missed = u64::from(seq - *last - 1);
            self.missed.fetch_add(missed, Ordering::Relaxed);
            self.export(|export| export.failed(Failure::Missed, missed));
        }
        *last = seq;
    }

    /// Drops the nodes not heard from within the expiry, unless this node's own link is down
    /// (then it is this node that cannot hear, not they that are dead).
    fn sweep(&self) {
        if !self.up.load(Ordering::Relaxed) {
            return;
        }
        let now = Instant::now();
        let mut peers = lock(&self.peers);
        let expired: Vec<NodeId> = peers
            .live
            .iter()
            .filter(|(_, peer)| now.duration_since(peer.heard) > self.expiry)
            .map(|(node, _)| *node)
            .collect();
        for node in expired {
            tracing::warn!(%node, "cluster node stopped sending heartbeats; considered gone");
            peers.live.remove(&node);
            peers.seqs.remove(&node);
            peers.departed.insert(node, now);
        }
        let mut forgotten = Vec::new();
        peers.departed.retain(|node, since| {
            let keep = now.duration_since(*since) < DEPARTED;
            if !keep {
                forgotten.push(*node);
            }
            keep
        });
        let live: Vec<NodeId> = peers.live.keys().copied().collect();
        drop(peers);
        if !forgotten.is_empty() {
            let mut seqs = lock(&self.seqs);
            for node in forgotten {
                seqs.nodes.remove(&node);
            }
        }
        // A query waits only for nodes still alive.
        let mut queries = lock(&self.queries);
        for query in queries.pending.values_mut() {
            query.waiting.retain(|node| live.contains(node));
            if query.waiting.is_empty() {
                if let Some(done) = query.done.take() {
                    let _ = done.send(());
                }
            }
        }
    }
}

impl Endpoint {
    /// Whether this socket is a node of a cluster ([`Config::cluster`](crate::Config::cluster)).
    pub fn is_clustered(&self) -> bool {
        self.link().is_some()
    }

    pub(super) fn link(&self) -> Option<&Link> {
        self.registry.link.as_ref()
    }

    /// Publishes the part of a delivery meant for other nodes, once, on one topic: a room's
    /// topic for one room, that node's topic for clients all on one other node, `all`
    /// otherwise. Named ids of nodes known to be gone, and every named id of another node
    /// when the envelope could not be sent, go to `delivery.failed`.
    pub(super) fn publish_remote(
        &self,
        to: Target<'_>,
        message: &Message,
        delivery: &mut Delivery,
    ) {
        let Some(link) = self.link() else { return };
        let mut named = Vec::new();
        let node = link.node;
        let foreign = |ids: &[ClientId]| -> Vec<ClientId> {
            ids.iter().copied().filter(|id| id.node() != node).collect()
        };
        let (topic, body) = match to {
            Target::One(id) if id.node() == node => return,
            Target::One(id) => (
                Topic::Node(id.node()),
                Body::ToIds {
                    ids: vec![id],
                    message: message.clone(),
                },
            ),
            Target::All => (
                Topic::All,
                Body::ToAll {
                    except: Vec::new(),
                    message: message.clone(),
                },
            ),
            Target::AllExcept(except) => (
                Topic::All,
                Body::ToAll {
                    except: foreign(except),
                    message: message.clone(),
                },
            ),
            Target::Clients(ids) => {
                let mut ids = foreign(ids);
                ids.sort_unstable();
                ids.dedup();
                ids.retain(|id| {
                    let gone = link.is_departed(id.node());
                    if gone {
                        delivery.failed.push(*id);
                    }
                    !gone
                });
                let Some(first) = ids.first() else { return };
                named.clone_from(&ids);
                let topic = if ids.iter().all(|id| id.node() == first.node()) {
                    Topic::Node(first.node())
                } else {
                    Topic::All
                };
                (
                    topic,
                    Body::ToIds {
                        ids,
                        message: message.clone(),
                    },
                )
            }
            Target::Users(users, except) => {
                if users.is_empty() {
                    return;
                }
                (
                    Topic::All,
                    Body::ToUsers {
                        users: users.to_vec(),
                        except: foreign(except),
                        message: message.clone(),
                    },
                )
            }
            Target::Rooms(rooms, except) => {
                let topic = match rooms {
                    [] => return,
                    [room] => Topic::Room(room.clone()),
                    _ => Topic::All,
                };
                (
                    topic,
                    Body::ToRooms {
                        rooms: rooms.to_vec(),
                        except: foreign(except),
                        message: message.clone(),
                    },
                )
            }
        };
        delivery.remote = if link.publish(&topic, &body).is_ok() {
            Remote::Published
        } else {
            delivery.failed.extend(named);
            Remote::Unsent
        };
    }

    /// Tells the other nodes to close every connection of `user` there.
    pub(super) fn close_remote_user(
        &self,
        user: User,
        code: u16,
        reason: &str,
        delivery: &mut Delivery,
    ) {
        let Some(link) = self.link() else { return };
        let body = Body::CloseUsers {
            users: vec![user],
            code,
            reason: reason.to_owned(),
        };
        delivery.remote = if link.publish(&Topic::All, &body).is_ok() {
            Remote::Published
        } else {
            Remote::Unsent
        };
    }

    /// Routes an operation on another node's client (`id`) to that node. Without a cluster,
    /// or when that node is known to be gone, the client is unknown here.
    pub(super) fn to_owner(
        &self,
        id: ClientId,
        body: impl FnOnce() -> Body,
    ) -> Result<(), SendError> {
        let link = self.link().ok_or(SendError::UnknownClient(id))?;
        if link.is_departed(id.node()) {
            return Err(SendError::UnknownClient(id));
        }
        link.publish(&Topic::Node(id.node()), &body())
            .map_err(|_| SendError::Unavailable(id))
    }

    /// Subscribes to a room's topic as this node gets its first member there.
    pub(super) fn room_created(&self, room: &Room) {
        if let Some(link) = self.link() {
            link.backplane.subscribe(&Topic::Room(room.clone()));
        }
    }

    /// Unsubscribes from a room's topic as this node's last member there leaves.
    pub(super) fn room_emptied(&self, room: &Room) {
        if let Some(link) = self.link() {
            link.backplane.unsubscribe(&Topic::Room(room.clone()));
            self.feed_emptied(room);
        }
    }

    /// Connects this node to its cluster (once): starts the backplane, subscribes to `all`
    /// and this node's topic, and starts the tasks that apply what arrives and send
    /// heartbeats. The socket calls it before `on_start`.
    pub(crate) fn start_cluster(&self) {
        let Some(link) = self.link() else { return };
        if link.started.set(()).is_err() {
            return;
        }
        let inbound = link.backplane.start(link.node);
        link.backplane.subscribe(&Topic::All);
        link.backplane.subscribe(&Topic::Node(link.node));
        let receive = tokio::spawn(receive(self.downgrade(), inbound));
        let beat = tokio::spawn(beat(self.downgrade(), link.heartbeat));
        lock(&link.tasks).extend([receive, beat]);
    }

    /// Leaves the cluster: tells the others (so they forget this node at once), then stops the
    /// backplane, flushing what is queued for up to a second. The socket calls it once its
    /// connections have closed.
    pub(crate) async fn stop_cluster(&self) {
        let Some(link) = self.link() else { return };
        if link.started.get().is_none() {
            return;
        }
        let _ = link.publish(&Topic::All, &link.heartbeat(0, false, true));
        link.backplane.stop(Duration::from_secs(1)).await;
        for task in lock(&link.tasks).drain(..) {
            task.abort();
        }
        // Stopped, not an outage.
        link.up.store(false, Ordering::Relaxed);
        link.export(|export| export.backplane_up(false));
    }

    /// Applies one envelope from another node to this node's clients.
    fn apply(&self, link: &Link, bytes: &bytes::Bytes) {
        let envelope = match wire::decode(bytes) {
            Ok(envelope) => envelope,
            Err(error) => {
                link.unreadable.fetch_add(1, Ordering::Relaxed);
                link.export(|export| export.failed(Failure::Unreadable, 1));
                let version = bytes.first().copied().unwrap_or(0);
                if lock(&link.peers).warned.insert(version) {
                    tracing::warn!(%error, "an envelope from the cluster could not be read (warned once per envelope version)");
                }
                return;
            }
        };
        // A node's own envelopes come back to it; only a recorded message is for it too
        // (its members get it from the feed, in the history's order).
        if envelope.sender == link.node {
            if let Body::Heartbeat(_) = envelope.body {
                link.returned(envelope.seq);
            }
            if !matches!(envelope.body, Body::Recorded { .. }) {
                return;
            }
        }
        link.received.fetch_add(1, Ordering::Relaxed);
        link.export(Exported::received);
        let sender = envelope.sender;
        // Which of the sender's sequences it came in: this node's topic, or `all` (room
        // topics are not sequenced: their `seq` is 0).
        let on_node = match &envelope.body {
            Body::ToIds { ids, .. } => ids.iter().all(|id| id.node() == link.node),
            Body::Close { .. }
            | Body::Join { .. }
            | Body::Leave { .. }
            | Body::CountResponse { .. } => true,
            _ => false,
        };
        link.sequence(sender, on_node, envelope.seq);
        match envelope.body {
            Body::ToAll { except, message } => {
                self.push_local(Target::AllExcept(&except), message);
            }
            Body::ToIds { ids, message } => {
                let mine: Vec<ClientId> = ids
                    .into_iter()
                    .filter(|id| id.node() == link.node)
                    .collect();
                self.push_local(Target::Clients(&mine), message);
            }
            Body::ToRooms {
                rooms,
                except,
                message,
            } => {
                self.push_local(Target::Rooms(&rooms, &except), message);
            }
            Body::ToUsers {
                users,
                except,
                message,
            } => self.push_local(Target::Users(&users, &except), message),
            body @ (Body::Recorded { .. } | Body::Presence { .. }) => self.receive_room(body),
            Body::CloseUsers {
                users,
                code,
                reason,
            } => {
                let clients = self.registry.read();
                let ids = users.iter().filter_map(|user| clients.users.get(user));
                clients.close_each(ids.flatten(), code, &reason);
            }
            Body::Close { id, code, reason } => {
                self.registry.read().close_each([&id], code, &reason);
            }
            Body::Join { id, room } => {
                let _ = self.join_local(id, &room);
            }
            Body::Leave { id, room } => {
                self.leave_local(id, room.as_str());
            }
            Body::Heartbeat(heartbeat) => {
                let new = link.heard(sender, &heartbeat);
                if new {
                    tracing::info!(node = %sender, "cluster node joined");
                }
                if heartbeat.hello {
                    // On `all`, as every heartbeat: the newcomer learns of this node at once.
                    let answer = link.heartbeat(self.len(), false, false);
                    let _ = link.publish(&Topic::All, &answer);
                }
            }
            Body::CountRequest { request, list } => {
                let ids = list.then(|| self.clients());
                let answer = Body::CountResponse {
                    request,
                    count: u32::try_from(self.len()).unwrap_or(u32::MAX),
                    ids,
                };
                let _ = link.publish(&Topic::Node(sender), &answer);
            }
            Body::CountResponse {
                request,
                count,
                ids,
            } => link.answered(sender, request, count, ids),
        }
    }

    /// Queues a message from another node for this node's recipients.
    fn push_local(&self, to: Target<'_>, message: Message) {
        self.push(to, self.frame(message), |_, _| {});
    }

    /// Every live node of the cluster with what it last said of itself, this node first.
    /// A standalone socket's cluster is itself.
    pub fn nodes(&self) -> Vec<NodeInfo> {
        let mut nodes = vec![NodeInfo {
            id: self.node(),
            clients: self.len(),
            started_at: self
                .link()
                .map_or_else(SystemTime::now, |link| link.started_at),
            heard: Duration::ZERO,
        }];
        if let Some(link) = self.link() {
            let now = Instant::now();
            let peers = lock(&link.peers);
            let mut others: Vec<NodeInfo> = peers
                .live
                .iter()
                .map(|(id, peer)| NodeInfo {
                    id: *id,
                    clients: peer.clients as usize,
                    started_at: SystemTime::UNIX_EPOCH + Duration::from_millis(peer.started_ms),
                    heard: now.duration_since(peer.heard),
                })
                .collect();
            others.sort_unstable_by_key(|node| node.id);
            nodes.extend(others);
        }
        nodes
    }

    /// How many clients are open on every node of the cluster: this node's count, and each
    /// live node's answer within the cluster's query timeout; nodes that did not answer in
    /// time (or could not be asked: the link is down) are named in
    /// [`missing`](Partial::missing) instead of the query waiting for them.
    pub async fn cluster_len(&self) -> Partial<usize> {
        let (value, _, missing) = self.query(false).await;
        Partial { value, missing }
    }

    /// The ids of the open clients on every node of the cluster, in ascending order, as
    /// [`cluster_len`](Endpoint::cluster_len) counts them.
    pub async fn cluster_clients(&self) -> Partial<Vec<ClientId>> {
        let (_, ids, missing) = self.query(true).await;
        let mut value = ids.unwrap_or_default();
        value.sort_unstable();
        Partial { value, missing }
    }

    async fn query(&self, list: bool) -> (usize, Option<Vec<ClientId>>, Vec<NodeId>) {
        let local_ids = list.then(|| self.clients());
        let local = self.len();
        let Some(link) = self.link() else {
            return (local, local_ids, Vec::new());
        };
        let live: HashSet<NodeId> = lock(&link.peers).live.keys().copied().collect();
        if live.is_empty() {
            return (local, local_ids, Vec::new());
        }
        let (done, finished) = oneshot::channel();
        let request = {
            let mut queries = lock(&link.queries);
            queries.next += 1;
            let request = queries.next;
            queries.pending.insert(
                request,
                Query {
                    waiting: live,
                    count: local,
                    ids: local_ids,
                    done: Some(done),
                },
            );
            request
        };
        if link
            .publish(&Topic::All, &Body::CountRequest { request, list })
            .is_ok()
        {
            let _ = tokio::time::timeout(link.query_timeout, finished).await;
        }
        let query = lock(&link.queries).pending.remove(&request);
        let Some(query) = query else {
            return (local, None, Vec::new());
        };
        let mut missing: Vec<NodeId> = query.waiting.into_iter().collect();
        missing.sort_unstable();
        (query.count, query.ids, missing)
    }

    /// Counters of this node's link to its cluster (all zero for a standalone socket).
    pub fn cluster_stats(&self) -> ClusterStats {
        let Some(link) = self.link() else {
            return ClusterStats::default();
        };
        ClusterStats {
            up: link.backplane.is_up(),
            published: link.published.load(Ordering::Relaxed),
            unsent: link.unsent.load(Ordering::Relaxed),
            received: link.received.load(Ordering::Relaxed),
            missed: link.missed.load(Ordering::Relaxed),
            unreadable: link.unreadable.load(Ordering::Relaxed),
            outages: link.outages.load(Ordering::Relaxed),
            lag: link.lag.snapshot(),
        }
    }
}

/// Applies what arrives from the cluster, in order, until the backplane stops or the
/// endpoint is dropped.
async fn receive(endpoint: WeakEndpoint, mut inbound: crate::cluster::Inbound) {
    while let Some(event) = inbound.recv().await {
        let Some(endpoint) = endpoint.upgrade() else {
            return;
        };
        let Some(link) = endpoint.link() else { return };
        match event {
            Event::Envelope(bytes) => endpoint.apply(link, &bytes),
            Event::Up => {
                // Blind until now: the others get a full expiry to be heard again before
                // they count as gone (else the first sweep would drop every peer at once).
                link.revive_peers();
                link.set_up(true);
                let hello = link.heartbeat(endpoint.len(), true, false);
                let _ = link.publish(&Topic::All, &hello);
                // What the rooms' feeds missed meanwhile is read back from the store, and
                // what the store may have lost of this node's members is written again,
                // marked alive at once (not at the next heartbeat): a reader skips the
                // members of a node not marked alive.
                endpoint.check_feeds();
                endpoint.reenter_all();
                endpoint.mark_alive(link.expiry);
            }
            Event::Down(reason) => {
                if link.set_up(false) {
                    tracing::debug!(%reason, "cluster link down");
                }
            }
        }
    }
}

/// Sends a heartbeat every `every` and sweeps the silent nodes four times as often, until the
/// endpoint is dropped (or the task aborted at shutdown).
async fn beat(endpoint: WeakEndpoint, every: Duration) {
    let mut tick = tokio::time::interval(every / 4);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for n in 0u64.. {
        tick.tick().await;
        let Some(endpoint) = endpoint.upgrade() else {
            return;
        };
        let Some(link) = endpoint.link() else { return };
        if n % 4 == 0 && link.up.load(Ordering::Relaxed) {
            let heartbeat = link.heartbeat(endpoint.len(), false, false);
            let _ = link.publish(&Topic::All, &heartbeat);
            endpoint.mark_alive(link.expiry);
        }
        link.sweep();
    }
}
