//! The `Store`: where a cluster keeps its rooms' histories, beside the [`Backplane`] that
//! carries envelopes (ADR 0003). Recording a message and publishing it to the room's nodes are
//! one atomic step of the store, so that a room's offsets and the order its messages reach
//! every node agree.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;

use super::id::{ClientId, NodeId, Room, User};
use super::position::Position;
use crate::message::Message;

/// A boxed future, as the store's calls return.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A message on its way into a room's history and out to the nodes with members there.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Append {
    /// The room.
    pub room: Room,
    /// The message as it is kept (text or binary, and its payload).
    pub message: Message,
    /// The envelope before the position: the store publishes `head`, the position (an offset
    /// as a LEB128 varint, the epoch as a length byte and its ASCII), then `tail`, on the
    /// room's topic.
    pub head: Bytes,
    /// The envelope after the position.
    pub tail: Bytes,
    /// How many messages the room keeps (at least 1).
    pub keep: usize,
    /// How long a message is kept.
    pub ttl: Duration,
}

impl Append {
    /// A message for `room`'s history, published as `head`, its position, then `tail`; the
    /// room keeps its last `keep` messages (at least 1), each for `ttl`.
    pub fn new(
        room: Room,
        message: Message,
        head: Bytes,
        tail: Bytes,
        keep: usize,
        ttl: Duration,
    ) -> Self {
        Append {
            room,
            message,
            head,
            tail,
            keep,
            ttl,
        }
    }
}

/// What a store read of a room gives: its last position, and the messages kept after the
/// offset asked for, oldest first, none older than the TTL asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Read {
    /// The room's epoch and last offset (0 before its first message). A room the store has no
    /// history for gets a new epoch, as its next append would.
    pub top: Position,
    /// The kept messages after the offset, with their offsets, ascending.
    pub entries: Vec<(u64, Message)>,
}

impl Read {
    /// A read's answer.
    pub fn new(top: Position, entries: Vec<(u64, Message)>) -> Self {
        Read { top, entries }
    }
}

/// Why a store call has no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store cannot be reached (the link is down, or it did not answer in time), or it
    /// refused the call: nothing was recorded.
    #[error("the history store is unavailable: {0}")]
    Unavailable(String),
    /// The call was sent but its outcome is unknown (the connection broke before the reply):
    /// the message may or may not have been recorded and published.
    #[error("the outcome of the history store call is unknown: {0}")]
    Uncertain(String),
    /// The store answered something this node cannot read.
    #[error("the history store's answer is invalid: {0}")]
    Invalid(String),
}

/// Where a cluster keeps its rooms' histories: implemented by the in-process
/// [`Hub`](super::Hub)'s backplane and by Redis, and reached through
/// [`Backplane::store`](super::Backplane::store).
///
/// The promises the endpoint builds on:
///
/// - **One step**: `append` gives the message the room's next offset, keeps it (the last
///   `keep`, none older than `ttl`), and publishes its envelope on the room's topic, as one
///   atomic step; so every node receives a room's recorded messages in offset order.
/// - **In order with the backplane**: `append` never waits, and what it publishes is
///   ordered with what the node publishes through the backplane before and after it.
/// - **An epoch per history**: a room's epoch changes whenever its history is lost, and a
///   read creates the room's epoch if it has none, so a read and a later append agree.
pub trait Store: Send + Sync {
    /// Records a message and publishes it (see the trait's promises); the future gives its
    /// position once the store has answered.
    ///
    /// # Errors
    ///
    /// [`Unavailable`] at once if the store cannot take it now (nothing was recorded).
    fn append(&self, append: Append) -> Result<StoreFuture<'static, Position>, Unavailable>;

    /// The room's last position and at most `limit` of the messages kept after offset
    /// `after`, none older than `ttl`.
    fn read(&self, room: &Room, after: u64, limit: usize, ttl: Duration) -> StoreFuture<'_, Read>;

    /// Records that client `id` (of this node) is in `room`, as `user`: queued in order with
    /// the node's publishes, never waits. Kept for [`PRESENCE_KEEP`] unless refreshed by
    /// [`alive`](Store::alive).
    ///
    /// # Errors
    ///
    /// [`Unavailable`] if the store cannot take it now.
    fn enter(&self, room: &Room, id: ClientId, user: Option<&User>) -> Result<(), Unavailable>;

    /// Records that client `id` left `room` (or closed).
    ///
    /// # Errors
    ///
    /// [`Unavailable`] if the store cannot take it now.
    fn exit(&self, room: &Room, id: ClientId) -> Result<(), Unavailable>;

    /// Marks `node` alive for `ttl` (each heartbeat): its members count in
    /// [`members`](Store::members) until then, so a killed node's members leave every read
    /// within `ttl` of its last heartbeat. The entries of `refresh` (rooms with members on
    /// this node) are kept another [`PRESENCE_KEEP`].
    ///
    /// # Errors
    ///
    /// [`Unavailable`] if the store cannot take it now.
    fn alive(&self, node: NodeId, ttl: Duration, refresh: &[Room]) -> Result<(), Unavailable>;

    /// The members of `room` on every node marked alive, in no order.
    fn members(&self, room: &Room) -> StoreFuture<'_, Vec<(ClientId, Option<User>)>>;
}

/// How long a store keeps a node's presence entries in a room without a refresh: a node
/// refreshes its rooms' entries every third of this, and a killed node's are then dropped.
pub const PRESENCE_KEEP: Duration = Duration::from_secs(10 * 60);

/// Why a [`Backplane`](super::Backplane) did not take an envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Unavailable {
    /// The link is down (or not started, or stopped).
    #[error("the cluster link is down")]
    Down,
    /// The outgoing queue is full: the link is up but slower than the node publishes.
    #[error("the cluster link's outgoing queue is full")]
    Full,
}
