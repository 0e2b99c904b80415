//! The `Backplane` trait: how the nodes of a cluster reach each other, whatever carries it
//! (the in-process [`Hub`](super::Hub), Redis, or an engine of the user's).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::id::{NodeId, Room};
use super::store::{Store, Unavailable};

/// What carries envelopes between the nodes of a cluster: publish to a topic, subscribe to
/// topics, and a stream of what arrives.
///
/// An [`Endpoint`](crate::Endpoint) holds its backplane as `Arc<dyn Backplane>` and calls it
/// from every operation that reaches another node, so nothing in it waits: `publish`,
/// `subscribe` and `unsubscribe` only hand their work to the implementation's own task(s) and
/// may be called under the endpoint's locks. The connection code never sees a backplane: a new
/// engine is one more implementation of this trait.
///
/// Every implementation keeps these promises, which the endpoint's ordering guarantee is
/// built on:
///
/// - **Order**: what one node publishes, on any topics, reaches each subscribed node in the
///   order it was published, at most once (a publisher's own node included, when subscribed:
///   the endpoint ignores its own envelopes).
/// - **Subscriptions outlive connections**: the set of topics asked for with `subscribe` is
///   the implementation's to keep; after a reconnect it subscribes to the whole set again
///   before it sends [`Event::Up`].
/// - **Never blocks**: `publish` returns [`Unavailable`] at once when it cannot take the
///   envelope (link down, queue full) instead of waiting.
pub trait Backplane: Send + Sync + 'static {
    /// Starts the implementation's tasks for `node` (called once, inside a Tokio runtime);
    /// what arrives on the subscribed topics, and the link's changes, come out of the
    /// returned [`Inbound`].
    fn start(&self, node: NodeId) -> Inbound;

    /// Hands one encoded envelope over for `topic`, without waiting.
    ///
    /// # Errors
    ///
    /// [`Unavailable`] if it was not taken: the link is down or the outgoing queue is full.
    fn publish(&self, topic: &Topic, envelope: Bytes) -> Result<(), Unavailable>;

    /// Adds a topic to the set this node receives.
    fn subscribe(&self, topic: &Topic);

    /// Removes a topic from the set this node receives.
    fn unsubscribe(&self, topic: &Topic);

    /// Whether the link is up now (one atomic load in the implementations here).
    fn is_up(&self) -> bool;

    /// Sends what is queued (for at most `within`), then disconnects and ends [`Inbound`].
    fn stop(&self, within: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;

    /// Where this backplane keeps rooms' histories, if it does: without one, a cluster's rooms
    /// keep no history ([`Config::history`](crate::Config::history)).
    fn store(&self) -> Option<&dyn Store> {
        None
    }

    /// Resolves once `topic` is subscribed on the live link (at once if it already is), to
    /// `false` if the link is down: a join that recovers a room's history reads it only
    /// after this, so that nothing recorded between the read and the subscription is missed.
    /// Backplanes whose `subscribe` takes effect at once need not implement it.
    fn subscribed(&self, topic: &Topic) -> Pin<Box<dyn Future<Output = bool> + Send + '_>> {
        let _ = topic;
        Box::pin(std::future::ready(self.is_up()))
    }
}

/// Where an envelope goes. Each [`Backplane`] names topics in its own way (the Redis backplane:
/// `{prefix}:all`, `{prefix}:node:{8 hex}`, `{prefix}:room:{name}`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Topic {
    /// Every node: deliveries to everyone, to several rooms, heartbeats, cluster queries.
    All,
    /// One node: operations on its clients, answers to its queries.
    Node(NodeId),
    /// The nodes with members in this room: deliveries to that room.
    Room(Room),
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Topic::All => f.write_str("all"),
            Topic::Node(node) => write!(f, "node:{node}"),
            Topic::Room(room) => write!(f, "room:{room}"),
        }
    }
}

/// What comes out of a [`Backplane`]'s [`Inbound`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// An envelope published on a subscribed topic, as it was published.
    Envelope(Bytes),
    /// The link is up and every subscribed topic is subscribed again.
    Up,
    /// The link is down, for this reason; cross-node traffic is lost until [`Event::Up`].
    Down(String),
}

/// The stream of [`Event`]s from a started [`Backplane`]; it ends when the backplane stops.
#[derive(Debug)]
pub struct Inbound(mpsc::Receiver<Event>);

impl Inbound {
    /// A bounded channel: the implementation keeps the sender, [`Backplane::start`] returns
    /// this. A full channel means the node is not keeping up; the implementation then drops
    /// the envelope (and counts it), as Redis drops a subscriber that reads too slowly.
    pub fn channel(capacity: usize) -> (mpsc::Sender<Event>, Inbound) {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        (sender, Inbound(receiver))
    }

    /// The next event; `None` once the backplane has stopped.
    pub async fn recv(&mut self) -> Option<Event> {
        self.0.recv().await
    }

    /// The next event if one is waiting.
    #[cfg(test)]
    pub(crate) fn try_recv(&mut self) -> Option<Event> {
        self.0.try_recv().ok()
    }
}
