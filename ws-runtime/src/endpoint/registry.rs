//! The registry of open clients: ids, registration, shutdown, and the current client of the
//! hooks being polled (the fast path of a reply).

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::hash::BuildHasherDefault;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::task::Poll;

use super::rooms::Rooms;
use super::{Client, Endpoint, Identity};
use crate::cluster::{ClientId, IdHasher, NodeId, User};
use crate::config::SlowConsumer;
use crate::message::Close;
use crate::metrics::{Meter, SocketStats, Traffic};
use crate::rt::queue::Queue;

/// The client whose hooks this thread is running (see [`Endpoint::as_current`]), and the
/// registry it belongs to.
pub(super) struct Current {
    pub(super) registry: Arc<Registry>,
    pub(super) client: Arc<Client>,
}

thread_local! {
    pub(super) static CURRENT: RefCell<Option<Current>> = const { RefCell::new(None) };
}

#[derive(Debug, Default)]
pub(super) struct Clients {
    pub(super) map: HashMap<ClientId, Arc<Client>, BuildHasherDefault<IdHasher>>,
    /// Who is in which room; a client leaves them all as it unregisters.
    pub(super) rooms: Rooms,
    /// Each user's open connections, in the order they opened.
    pub(super) users: HashMap<User, Vec<ClientId>>,
    shutting_down: bool,
}

impl Clients {
    /// Closes these open clients for another node, if the code may be sent.
    pub(super) fn close_each<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a ClientId>,
        code: u16,
        reason: &str,
    ) {
        if !Close::is_sendable(code) {
            return;
        }
        for id in ids {
            if let Some(client) = self.map.get(id) {
                client.close(Close::new(code, crate::message::truncate_reason(reason)));
            }
        }
    }
}

#[derive(Debug)]
pub(crate) struct Registry {
    clients: RwLock<Clients>,
    /// This endpoint's node, in every id.
    pub(super) node: NodeId,
    next_id: AtomicU64,
    queue_messages: usize,
    queue_bytes: u32,
    /// Slots an emptied send queue keeps (see `Config::queue_keep`).
    queue_keep: usize,
    policy: SlowConsumer,
    /// Frames at least this large carry a cell to share their compressed bytes: the socket's
    /// deflate threshold, `usize::MAX` without deflate (see `OutFrame::message`).
    pub(super) share_from: usize,
    /// The link to the other nodes; `None` for a standalone socket.
    pub(super) link: Option<super::remote::Link>,
    /// The rooms' histories, if any room keeps one.
    pub(super) history: Option<super::histories::Histories>,
    /// Which rooms track their members, if any.
    pub(super) presence: Option<super::presence::Presences>,
    /// The socket's counters and timings beyond each client's own.
    pub(super) meter: Arc<Meter>,
}

impl Registry {
    pub(super) fn new(config: &crate::config::Config) -> Self {
        let node = NodeId::random();
        let meter = Arc::new(Meter::new(config.name.as_deref().unwrap_or("socket")));
        let link = super::remote::Link::new(&config.cluster, node, meter.clone());
        let clustered = link.is_some();
        let stored = link.as_ref().is_none_or(|link| link.store().is_some());
        if !stored && config.presence.is_some() {
            tracing::error!(
                "Config::presence needs a backplane that keeps presence (Backplane::store): this socket's does not, so no room tracks its members across nodes"
            );
        }
        if !stored && config.history.is_some() {
            tracing::error!(
                "Config::history needs a backplane that keeps histories (Backplane::store): this socket's does not, so no room keeps history"
            );
        }
        Registry {
            clients: RwLock::default(),
            node,
            history: config
                .history
                .clone()
                .filter(|_| stored)
                .map(|history| super::histories::Histories::new(history, clustered)),
            presence: config
                .presence
                .clone()
                .filter(|_| stored)
                .map(super::presence::Presences::new),
            link,
            meter,
            next_id: AtomicU64::new(0),
            queue_messages: config.send_queue.max(1),
            queue_bytes: u32::try_from(config.send_queue_bytes)
                .unwrap_or(u32::MAX)
                .max(1),
            queue_keep: config.queue_keep(),
            policy: config.slow_consumer,
            share_from: config
                .deflate
                .as_ref()
                .map_or(usize::MAX, |deflate| deflate.get_threshold().max(1)),
        }
    }

    pub(super) fn read(&self) -> RwLockReadGuard<'_, Clients> {
        self.clients
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn write(&self) -> RwLockWriteGuard<'_, Clients> {
        self.clients
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The side of the [`Endpoint`] that connections and the server use.
impl Endpoint {
    /// Registers a new connection; `None` once shutdown has begun.
    pub(crate) fn register(
        &self,
        remote_addr: SocketAddr,
        identity: Option<Box<Identity>>,
    ) -> Option<Arc<Client>> {
        let registry = &self.registry;
        let mut clients = registry.write();
        if clients.shutting_down {
            return None;
        }
        let number = registry.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let id = ClientId::new(registry.node, number);
        let queue = Queue::new(registry.queue_messages, registry.queue_bytes as usize)
            .keeping(registry.queue_keep);
        let client = Arc::new(Client::new(
            id,
            remote_addr,
            identity,
            registry.policy,
            queue,
            registry.meter.clone(),
        ));
        if let Some(user) = client.user() {
            clients.users.entry(user.clone()).or_default().push(id);
        }
        clients.map.insert(id, client.clone());
        // Under the lock, like the close: the gauge is set in the order of the changes.
        registry.meter.opened(clients.map.len());
        drop(clients);
        Some(client)
    }

    /// A connection is over, ended by a close with `code`.
    pub(crate) fn unregister(&self, id: ClientId, code: u16) {
        let mut clients = self.registry.write();
        let rooms = if self.registry.presence.is_some() {
            clients.rooms.of(id).to_vec()
        } else {
            Vec::new()
        };
        let client = clients.map.remove(&id);
        if let Some(client) = &client {
            // Under the lock: a snapshot counts the client either open or gone, never both.
            self.registry
                .meter
                .closed(code, &client.traffic(), clients.map.len());
        }
        if let Some(user) = client.as_deref().and_then(Client::user) {
            if let Some(ids) = clients.users.get_mut(user) {
                ids.retain(|other| *other != id);
                if ids.is_empty() {
                    clients.users.remove(user);
                }
            }
        }
        clients.rooms.leave_all(id, |room| self.room_emptied(room));
        drop(clients);
        if rooms.is_empty() {
            return;
        }
        let user = client.as_deref().and_then(Client::user).cloned();
        for room in rooms {
            self.exited(&room, id, user.clone());
        }
    }

    /// The socket's meter, for the server and the connections.
    pub(crate) fn meter(&self) -> &Meter {
        &self.registry.meter
    }

    /// Registers the socket's metrics with the recorder installed now (feature `metrics`).
    pub(crate) fn start_meter(&self) {
        let registry = &self.registry;
        registry
            .meter
            .start(registry.link.is_some(), registry.history.is_some());
    }

    /// What this socket has counted since it was created: connections, refusals and closes
    /// by reason, messages and bytes, slow consumers, rate-limit pauses, heartbeat timeouts,
    /// ping round trips, fan-out times. The same figures as the feature `metrics` exports
    /// (the crate guide's "Metrics" names them), without a recorder; this node's only.
    ///
    /// ```
    /// # fn demo(endpoint: ws::Endpoint) {
    /// let stats = endpoint.stats();
    /// println!(
    ///     "{}: {} open, {} messages in, {} refused by origin",
    ///     stats.socket, stats.connections, stats.messages_received, stats.refused["origin"]
    /// );
    /// # }
    /// ```
    pub fn stats(&self) -> SocketStats {
        let clients = self.registry.read();
        let mut open = Traffic::default();
        for client in clients.map.values() {
            open.add(&client.traffic());
        }
        self.registry.meter.snapshot(clients.map.len(), &open)
    }

    /// Refuses new clients and closes every open one with 1001, behind what is queued.
    pub(crate) fn begin_shutdown(&self) {
        let mut clients = self.registry.write();
        clients.shutting_down = true;
        for client in clients.map.values() {
            client.close(Close::new(Close::GOING_AWAY, "Server shutting down"));
        }
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.registry.read().shutting_down
    }

    /// Runs `hooks` with `client` as this thread's current client during each of its polls,
    /// so that [`send`](Endpoint::send) to it from its own hooks finds it without the
    /// registry's lock (a read lock and a lookup were a visible cost of echoing a burst of
    /// small messages). The client is moved in and out of the thread-local slot, not
    /// cloned, per poll; the slot's previous content is put back after each poll, even if the
    /// poll panics. The hooks' future is pinned by the caller: taken by value, it would be
    /// held twice in the connection's task.
    pub(crate) async fn as_current<F: Future>(
        &self,
        client: Arc<Client>,
        mut hooks: Pin<&mut F>,
    ) -> F::Output {
        /// Puts the previous current client back.
        struct Restore<'a> {
            ours: &'a mut Option<Current>,
            previous: Option<Current>,
        }
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                let previous = self.previous.take();
                if let Ok(ours) = CURRENT.try_with(|current| current.replace(previous)) {
                    *self.ours = ours;
                }
            }
        }
        let mut ours = Some(Current {
            registry: self.registry.clone(),
            client,
        });
        std::future::poll_fn(|cx| {
            let mut restore = Restore {
                previous: None,
                ours: &mut ours,
            };
            if let Ok(previous) = CURRENT.try_with(|current| current.replace(restore.ours.take())) {
                restore.previous = previous;
            }
            let poll: Poll<F::Output> = hooks.as_mut().poll(cx);
            drop(restore);
            poll
        })
        .await
    }
}
