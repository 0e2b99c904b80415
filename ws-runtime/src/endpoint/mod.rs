//! The `Endpoint`: sending, broadcasting and closing from anywhere, through the registry of
//! open clients (`registry.rs`) and each client's bounded send queue (`client.rs`).

mod client;
mod registry;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

pub use client::ClientId;
pub(crate) use client::{Client, Outgoing};
use registry::{CURRENT, Registry};

use crate::config::Config;
use crate::message::{Close, Message, truncate_reason};
use crate::proto::OutFrame;

/// Why a send did not queue its message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// No open client has this id (it never existed or has already closed).
    #[error("no open client with id {0}")]
    UnknownClient(ClientId),
    /// The client is closing; nothing more is sent to it.
    #[error("client {0} is closing")]
    Closing(ClientId),
    /// The client's send queue was full: it is a slow consumer. Under the default
    /// [`SlowConsumer::Close`] policy it is being closed with 1008; otherwise the message was
    /// dropped for it.
    #[error("send queue of client {0} is full")]
    QueueFull(ClientId),
    /// The close code cannot be sent in a close frame (see [`Close::is_sendable`]).
    #[error("close code {0} cannot be sent")]
    InvalidCloseCode(u16),
}

/// The outcome of a broadcast or multicast.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivery {
    /// How many clients had the message queued.
    pub queued: usize,
    /// Clients that did not get it: slow consumers (now closing with 1008), clients already
    /// closing, and, for a multicast, ids that are not open.
    pub failed: Vec<ClientId>,
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

/// A cheap, cloneable handle to send to the clients of one [`Socket`](crate::Socket) from
/// anywhere: hooks, spawned tasks, other warp routes.
///
/// Every method is synchronous and never waits: messages go into each client's bounded send
/// queue and are written by that client's own task. Messages to one client are written in the
/// order they were queued, whether they came from [`send`](Endpoint::send) or from a
/// broadcast. A client whose queue is full is a slow consumer: it is closed with 1008 and the
/// send reports it, so one slow reader never grows the server's memory or delays the others.
///
/// ```
/// # async fn demo(endpoint: ws::Endpoint, id: ws::ClientId) {
/// endpoint.send(id, "just for you").ok();
/// let delivery = endpoint.broadcast("hello, everyone");
/// println!("{} clients got it; {:?} did not", delivery.queued, delivery.failed);
/// endpoint.broadcast_except("someone joined", [id]);
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

impl Endpoint {
    pub(crate) fn new(config: &Config) -> Self {
        Endpoint {
            registry: Arc::new(Registry::new(config)),
        }
    }

    /// A data frame of this message, encoded once for all its receivers.
    fn frame(&self, message: Message) -> OutFrame {
        OutFrame::message(message, self.registry.share_from)
    }

    /// Queues a message for one client.
    ///
    /// # Errors
    ///
    /// [`SendError::UnknownClient`] if no open client has this id, [`SendError::Closing`] if
    /// it is closing, [`SendError::QueueFull`] if its queue is full (it is then closed with
    /// 1008).
    pub fn send(&self, id: ClientId, message: impl Into<Message>) -> Result<(), SendError> {
        let mut frame = Some(self.frame(message.into()));
        // The usual reply, from the client's own hooks: no lock, no lookup, one look at the
        // thread-local slot.
        let pushed = CURRENT.try_with(|current| {
            let current = current.borrow();
            let current = current.as_ref().filter(|current| {
                current.client.id == id && Arc::ptr_eq(&current.registry, &self.registry)
            })?;
            frame.take().map(|frame| current.client.push(frame))
        });
        if let Ok(Some(sent)) = pushed {
            return sent;
        }
        // Still here: it was not pushed above.
        let Some(frame) = frame else {
            return Err(SendError::UnknownClient(id));
        };
        let clients = self.registry.read();
        let client = clients.map.get(&id).ok_or(SendError::UnknownClient(id))?;
        client.push(frame)
    }
    /// Like [`send`](Endpoint::send), but under the [`SlowConsumer::Wait`] policy it waits for
    /// room in the client's queue instead of failing; it returns once the message is queued or
    /// the client is gone. Under the other policies it is the same as `send`.
    ///
    /// # Errors
    ///
    /// As [`send`](Endpoint::send).
    pub async fn send_wait(
        &self,
        id: ClientId,
        message: impl Into<Message>,
    ) -> Result<(), SendError> {
        let message = message.into();
        let client = {
            let clients = self.registry.read();
            clients
                .map
                .get(&id)
                .ok_or(SendError::UnknownClient(id))?
                .clone()
        };
        client.push_wait(self.frame(message)).await
    }

    /// Like [`broadcast`](Endpoint::broadcast), but under the [`SlowConsumer::Wait`] policy it
    /// waits for room in each client's queue in turn, so the slowest client paces the sender.
    /// Under the other policies it is the same as `broadcast`.
    pub async fn broadcast_wait(&self, message: impl Into<Message>) -> Delivery {
        let message = message.into();
        let frame = self.frame(message);
        let targets: Vec<Arc<Client>> = self.registry.read().map.values().cloned().collect();
        let mut delivery = Delivery::default();
        for client in targets {
            let id = client.id;
            match client.push_wait(frame.clone()).await {
                Ok(()) => delivery.queued += 1,
                Err(_) => delivery.failed.push(id),
            }
        }
        delivery
    }

    /// Queues a message for every open client. The payload is shared, not copied.
    pub fn broadcast(&self, message: impl Into<Message>) -> Delivery {
        self.deliver(message.into(), |_| true)
    }

    /// Queues a message for every open client except the given ones.
    pub fn broadcast_except(
        &self,
        message: impl Into<Message>,
        except: impl IntoIterator<Item = ClientId>,
    ) -> Delivery {
        let except: Vec<ClientId> = except.into_iter().collect();
        self.deliver(message.into(), |id| !except.contains(&id))
    }

    /// Queues a message for the given clients; ids that are not open are reported as failed.
    pub fn multicast(
        &self,
        message: impl Into<Message>,
        ids: impl IntoIterator<Item = ClientId>,
    ) -> Delivery {
        let message = message.into();
        let frame = self.frame(message);
        let clients = self.registry.read();
        let mut delivery = Delivery::default();
        let mut ids: Vec<ClientId> = ids.into_iter().collect();
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            match clients.map.get(&id) {
                Some(client) => match client.push(frame.clone()) {
                    Ok(()) => delivery.queued += 1,
                    Err(_) => delivery.failed.push(id),
                },
                None => delivery.failed.push(id),
            }
        }
        delivery
    }

    fn deliver(&self, message: Message, include: impl Fn(ClientId) -> bool) -> Delivery {
        let frame = self.frame(message);
        let clients = self.registry.read();
        let mut delivery = Delivery::default();
        for (id, client) in &clients.map {
            if !include(*id) {
                continue;
            }
            match client.push(frame.clone()) {
                Ok(()) => delivery.queued += 1,
                Err(_) => delivery.failed.push(*id),
            }
        }
        delivery
    }

    /// Closes a client with this code and reason, after the messages already queued for it.
    /// Its `on_close` then runs with this code.
    ///
    /// # Errors
    ///
    /// [`SendError::InvalidCloseCode`] for a code that cannot be sent (see
    /// [`Close::is_sendable`]), [`SendError::UnknownClient`] if no open client has this id.
    /// Closing a client that is already closing succeeds and changes nothing.
    pub fn close(&self, id: ClientId, code: u16, reason: &str) -> Result<(), SendError> {
        if !Close::is_sendable(code) {
            return Err(SendError::InvalidCloseCode(code));
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

    /// Whether this client is open.
    pub fn contains(&self, id: ClientId) -> bool {
        self.registry.read().map.contains_key(&id)
    }

    /// The connection details and counters of an open client.
    pub fn info(&self, id: ClientId) -> Option<ClientInfo> {
        Some(self.registry.read().map.get(&id)?.info())
    }
}

/// A close reason is at most 123 bytes (125 minus the code); cut at a character boundary.
#[cfg(test)]
mod tests {
    use super::*;

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
        let delivery = endpoint.multicast("m", [a.id, ClientId(99)]);
        assert_eq!(delivery.queued, 1);
        assert_eq!(delivery.failed, vec![ClientId(99)]);
        assert_eq!(
            endpoint.close(a.id, 1005, ""),
            Err(SendError::InvalidCloseCode(1005))
        );
        endpoint.begin_shutdown();
        assert!(endpoint.register(addr, None).is_none());
        endpoint.unregister(a.id);
        assert_eq!(endpoint.len(), 1);
    }
}
