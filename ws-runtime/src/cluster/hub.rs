//! The in-process backplane: several nodes in one process, joined by a [`Hub`].

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::backplane::{Backplane, Event, Inbound, Topic};
use super::id::{ClientId, NodeId, Room, User};
use super::position::Position;
use super::ring::Ring;
use super::store::{Append, Read, Store, StoreError, StoreFuture, Unavailable};
use super::wire;

/// Envelopes a node may have waiting before the hub drops what it publishes to that node
/// (as Redis drops a subscriber that reads too slowly).
const INBOUND: usize = 65_536;

/// Joins the nodes of a cluster inside one process: each [`Socket`](crate::Socket) configured
/// with [`Cluster::in_process(&hub)`](crate::Cluster::in_process) is one node, and they reach
/// each other as nodes on Redis would, in order and without a network. For tests of a cluster
/// in one process, and for several sockets that should act as one.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// # struct Chat;
/// # #[ws::websocket]
/// # impl Chat {}
/// let hub = ws::cluster::Hub::new();
/// let a = ws::Socket::with_config(Chat, ws::Config::new().cluster(ws::Cluster::in_process(&hub)));
/// let b = ws::Socket::with_config(Chat, ws::Config::new().cluster(ws::Cluster::in_process(&hub)));
/// // A broadcast from either endpoint reaches the clients of both.
/// # drop((a, b));
/// # }
/// ```
///
/// [`cut`](Hub::cut) and [`restore`](Hub::restore) take one node's link down and up again,
/// for tests of what a node does while it cannot reach the others.
///
/// The hub is also its nodes' history [`Store`]: rooms' histories live in it, as they would
/// in Redis, and [`forget`](Hub::forget) loses one as Redis losing its keys would.
#[derive(Clone, Default)]
pub struct Hub {
    nodes: Arc<Mutex<HashMap<NodeId, Member>>>,
    /// Rooms' histories; locked after `nodes` when both are.
    histories: Arc<Mutex<HashMap<Room, Ring>>>,
    /// Rooms' members on every node, and until when each node counts as alive; locked after
    /// `nodes` when both are.
    presence: Arc<Mutex<Presence>>,
}

#[derive(Default)]
struct Presence {
    rooms: HashMap<Room, HashMap<ClientId, Option<User>>>,
    alive: HashMap<NodeId, tokio::time::Instant>,
}

/// One started node on the hub.
struct Member {
    sender: mpsc::Sender<Event>,
    /// Shared with the node's [`InProcess`], which changes it without the hub's lock.
    topics: Arc<Mutex<HashSet<Topic>>>,
    cut: bool,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("nodes", &lock(&self.nodes).len())
            .field("histories", &lock(&self.histories).len())
            .field("presence", &lock(&self.presence).rooms.len())
            .finish()
    }
}

impl Hub {
    /// A hub with no node yet.
    pub fn new() -> Hub {
        Hub::default()
    }

    /// A backplane for one more node on this hub.
    pub fn backplane(&self) -> InProcess {
        InProcess {
            hub: self.clone(),
            node: OnceLock::new(),
            topics: Arc::default(),
        }
    }

    /// Takes `node`'s link down: what it publishes is refused ([`Unavailable::Down`]), nothing
    /// reaches it, and it gets [`Event::Down`]; the others stop hearing from it.
    pub fn cut(&self, node: NodeId) {
        self.set_cut(node, true);
    }

    /// Brings a [`cut`](Hub::cut) node's link back up ([`Event::Up`]).
    pub fn restore(&self, node: NodeId) {
        self.set_cut(node, false);
    }

    /// How many started nodes receive `topic` now: in tests, whether a node subscribes to a
    /// room's topic exactly while it has members there.
    pub fn subscribers(&self, topic: &Topic) -> usize {
        lock(&self.nodes)
            .values()
            .filter(|member| lock(&member.topics).contains(topic))
            .count()
    }

    /// Loses a room's history, as a store that loses its data would: the room's next
    /// message begins a new epoch, and positions from before are not recovered.
    pub fn forget(&self, room: &str) {
        lock(&self.histories).remove(room);
    }

    fn set_cut(&self, node: NodeId, cut: bool) {
        let mut nodes = lock(&self.nodes);
        if let Some(member) = nodes.get_mut(&node) {
            if member.cut != cut {
                member.cut = cut;
                let event = if cut {
                    Event::Down("cut off from the hub".into())
                } else {
                    Event::Up
                };
                // A node too far behind to take the event sees the change in `is_up`.
                let _ = member.sender.try_send(event);
            }
        }
    }
}

/// One node's link to a [`Hub`] (from [`Hub::backplane`]).
pub struct InProcess {
    hub: Hub,
    node: OnceLock<NodeId>,
    topics: Arc<Mutex<HashSet<Topic>>>,
}

impl std::fmt::Debug for InProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcess")
            .field("node", &self.node.get())
            .finish_non_exhaustive()
    }
}

impl Backplane for InProcess {
    fn start(&self, node: NodeId) -> Inbound {
        let (sender, inbound) = Inbound::channel(INBOUND);
        if self.node.set(node).is_ok() {
            let _ = sender.try_send(Event::Up);
            lock(&self.hub.nodes).insert(
                node,
                Member {
                    sender,
                    topics: self.topics.clone(),
                    cut: false,
                },
            );
        }
        inbound
    }

    fn publish(&self, topic: &Topic, envelope: Bytes) -> Result<(), Unavailable> {
        let nodes = self.connected()?;
        publish_to(&nodes, topic, &envelope);
        Ok(())
    }

    fn subscribe(&self, topic: &Topic) {
        lock(&self.topics).insert(topic.clone());
    }

    fn unsubscribe(&self, topic: &Topic) {
        lock(&self.topics).remove(topic);
    }

    fn store(&self) -> Option<&dyn Store> {
        Some(self)
    }

    fn is_up(&self) -> bool {
        self.node
            .get()
            .is_some_and(|node| lock(&self.hub.nodes).get(node).is_some_and(|m| !m.cut))
    }

    fn stop(&self, _within: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        if let Some(node) = self.node.get() {
            lock(&self.hub.nodes).remove(node);
        }
        Box::pin(std::future::ready(()))
    }
}

impl InProcess {
    /// The hub's nodes, locked, if this node is started and not cut.
    fn connected(&self) -> Result<MutexGuard<'_, HashMap<NodeId, Member>>, Unavailable> {
        let node = self.node.get().ok_or(Unavailable::Down)?;
        let nodes = lock(&self.hub.nodes);
        match nodes.get(node) {
            Some(member) if !member.cut => Ok(nodes),
            _ => Err(Unavailable::Down),
        }
    }
}

/// Under the hub's lock: every node gets what everyone publishes in one order.
fn publish_to(nodes: &HashMap<NodeId, Member>, topic: &Topic, envelope: &Bytes) {
    for member in nodes.values() {
        if !member.cut && lock(&member.topics).contains(topic) {
            let _ = member.sender.try_send(Event::Envelope(envelope.clone()));
        }
    }
}

impl Store for InProcess {
    fn append(&self, append: Append) -> Result<StoreFuture<'static, Position>, Unavailable> {
        let nodes = self.connected()?;
        let mut histories = lock(&self.hub.histories);
        let now = tokio::time::Instant::now();
        let ring = histories
            .entry(append.room.clone())
            .or_insert_with(|| Ring::new(now));
        let position = ring.next();
        ring.append(append.message, now, append.keep.max(1), append.ttl);
        let parts = wire::Parts {
            head: append.head,
            tail: append.tail,
        };
        let envelope = wire::positioned(&parts, &position);
        publish_to(&nodes, &Topic::Room(append.room), &envelope);
        Ok(Box::pin(std::future::ready(Ok(position))))
    }

    fn enter(&self, room: &Room, id: ClientId, user: Option<&User>) -> Result<(), Unavailable> {
        let _nodes = self.connected()?;
        lock(&self.hub.presence)
            .rooms
            .entry(room.clone())
            .or_default()
            .insert(id, user.cloned());
        Ok(())
    }

    fn exit(&self, room: &Room, id: ClientId) -> Result<(), Unavailable> {
        let _nodes = self.connected()?;
        let mut presence = lock(&self.hub.presence);
        if let Some(members) = presence.rooms.get_mut(room) {
            members.remove(&id);
            if members.is_empty() {
                presence.rooms.remove(room);
            }
        }
        Ok(())
    }

    fn alive(&self, node: NodeId, ttl: Duration, _refresh: &[Room]) -> Result<(), Unavailable> {
        let _nodes = self.connected()?;
        let until = tokio::time::Instant::now() + ttl;
        lock(&self.hub.presence).alive.insert(node, until);
        Ok(())
    }

    fn members(&self, room: &Room) -> StoreFuture<'_, Vec<(ClientId, Option<User>)>> {
        let members = match self.connected() {
            Err(_) => Err(StoreError::Unavailable("cut off from the hub".into())),
            Ok(_nodes) => {
                let presence = lock(&self.hub.presence);
                let now = tokio::time::Instant::now();
                let alive =
                    |node: NodeId| presence.alive.get(&node).is_some_and(|until| *until > now);
                Ok(presence
                    .rooms
                    .get(room)
                    .into_iter()
                    .flatten()
                    .filter(|(id, _)| alive(id.node()))
                    .map(|(id, user)| (*id, user.clone()))
                    .collect())
            }
        };
        Box::pin(std::future::ready(members))
    }

    fn read(&self, room: &Room, after: u64, limit: usize, ttl: Duration) -> StoreFuture<'_, Read> {
        let read = match self.connected() {
            Err(_) => Err(StoreError::Unavailable("cut off from the hub".into())),
            Ok(_nodes) => {
                let mut histories = lock(&self.hub.histories);
                let now = tokio::time::Instant::now();
                let ring = histories
                    .entry(room.clone())
                    .or_insert_with(|| Ring::new(now));
                let top = ring.top();
                let entries = ring
                    .after(after, now, ttl)
                    .iter()
                    .take(limit)
                    .map(|entry| (entry.offset, entry.message.clone()))
                    .collect();
                Ok(Read::new(top, entries))
            }
        };
        Box::pin(std::future::ready(read))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(inbound: &mut Inbound) -> Option<Event> {
        inbound.try_recv()
    }

    #[test]
    fn nodes_get_what_they_subscribed_to_in_order_and_nothing_once_cut() {
        let hub = Hub::new();
        let (a, b) = (hub.backplane(), hub.backplane());
        let (na, nb) = (NodeId::random(), NodeId::random());
        let mut ia = a.start(na);
        let mut ib = b.start(nb);
        assert_eq!(envelope(&mut ia), Some(Event::Up));
        assert_eq!(envelope(&mut ib), Some(Event::Up));
        b.subscribe(&Topic::All);
        for n in 0..3u8 {
            a.publish(&Topic::All, Bytes::from(vec![n])).unwrap();
        }
        a.publish(&Topic::Node(nb), Bytes::from_static(b"x"))
            .unwrap();
        for n in 0..3u8 {
            assert_eq!(
                envelope(&mut ib),
                Some(Event::Envelope(Bytes::from(vec![n])))
            );
        }
        assert_eq!(envelope(&mut ib), None, "not subscribed to its node topic");
        assert_eq!(envelope(&mut ia), None, "a is not subscribed to all");
        hub.cut(na);
        assert!(!a.is_up());
        assert_eq!(
            envelope(&mut ia),
            Some(Event::Down("cut off from the hub".into()))
        );
        assert_eq!(a.publish(&Topic::All, Bytes::new()), Err(Unavailable::Down));
        hub.restore(na);
        assert_eq!(envelope(&mut ia), Some(Event::Up));
        b.unsubscribe(&Topic::All);
        a.publish(&Topic::All, Bytes::new()).unwrap();
        assert_eq!(envelope(&mut ib), None);
        drop(a.stop(Duration::ZERO));
        assert!(!a.is_up());
        assert_eq!(a.publish(&Topic::All, Bytes::new()), Err(Unavailable::Down));
    }
}
