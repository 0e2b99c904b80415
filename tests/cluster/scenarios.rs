//! Scenarios run over any backplane: nodes served on their own ports, clients that learn their
//! id from `on_open`, and checks that wait for events (a bounded poll where the event is a
//! change of a node's view of the cluster).

use std::time::Duration;

use ws::test::{Client, TestServer};
use ws::{ClientId, Cluster, Config, Endpoint, Recipients, Remote, Socket, websocket};

/// How long any expected event may take before the test fails.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// The cluster timings of a test.
pub(crate) struct Timings {
    pub(crate) heartbeat: Duration,
    pub(crate) expiry: Duration,
    pub(crate) query_timeout: Duration,
}

impl Timings {
    /// Heartbeats every 50 ms; a silent node is gone after 800 ms; queries wait 500 ms. Short,
    /// yet long enough that a node starved of CPU for a moment on a busy test machine is not
    /// taken for dead, nor its answer for missing.
    pub(crate) const FAST: Timings = Timings {
        heartbeat: Duration::from_millis(50),
        expiry: Duration::from_millis(800),
        query_timeout: Duration::from_millis(500),
    };

    pub(crate) fn apply(&self, cluster: Cluster) -> Cluster {
        cluster
            .heartbeat(self.heartbeat)
            .expiry(self.expiry)
            .query_timeout(self.query_timeout)
    }
}

/// Tells each client its id, then stays quiet. `?user=NAME` says which user it is.
struct Member;

#[websocket]
impl Member {
    fn on_handshake(&self, request: &ws::Request, accept: &mut ws::Accept) {
        if let Some(user) = request.query("user") {
            accept.user(user);
        }
    }

    fn on_open(&self, endpoint: &Endpoint, id: ClientId) {
        let _ = endpoint.send(id, id.to_string());
    }
}

/// One node: a socket on its own port.
pub(crate) struct Node {
    pub(crate) endpoint: Endpoint,
    server: TestServer,
}

impl Node {
    pub(crate) async fn start(cluster: Cluster) -> Node {
        let socket = Socket::with_config(Member, Config::new().cluster(cluster));
        // Joined before the first client: `serve` would start it on its own task.
        socket.start().await;
        let server = ws::test::serve(&socket).await;
        Node {
            endpoint: socket.endpoint(),
            server,
        }
    }

    pub(crate) async fn three(cluster: impl Fn() -> Cluster) -> [Node; 3] {
        [
            Node::start(cluster()).await,
            Node::start(cluster()).await,
            Node::start(cluster()).await,
        ]
    }

    /// A new client of this node and its id.
    pub(crate) async fn enter(&self) -> (Client, ClientId) {
        self.enter_at("/").await
    }

    /// A new connection of `user` on this node and its id.
    pub(crate) async fn enter_as(&self, user: &str) -> (Client, ClientId) {
        self.enter_at(&format!("/?user={user}")).await
    }

    async fn enter_at(&self, path: &str) -> (Client, ClientId) {
        let mut client = self.server.connect(path).await.expect("connected");
        let id = client.recv_text().await.unwrap().parse().expect("an id");
        (client, id)
    }

    /// Stops gracefully (the node tells the others it leaves).
    pub(crate) async fn stop(self) {
        tokio::time::timeout(WAIT, self.server.shutdown())
            .await
            .expect("stopped in time");
    }
}

/// Waits until `done` holds, checking every 5 ms, for at most [`WAIT`].
pub(crate) async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until every node sees `count` live nodes.
pub(crate) async fn all_see(nodes: &[&Node], count: usize) {
    for node in nodes {
        eventually("every node sees the others", || {
            node.endpoint.nodes().len() == count
        })
        .await;
    }
}

/// An id of a node that does not exist.
pub(crate) fn foreign_id(endpoint: &Endpoint) -> ClientId {
    let node = endpoint.node().to_string();
    let other = if node.starts_with('0') { "f" } else { "0" };
    format!("{other}{}-1", &node[1..]).parse().unwrap()
}

/// Asserts that nothing was queued for `client` before a marker sent to it now.
async fn marker(endpoint: &Endpoint, client: &mut Client, id: ClientId) {
    endpoint.send(id, "marker").unwrap();
    assert_eq!(client.recv_text().await.unwrap(), "marker");
}

/// Waits until exactly `nodes` nodes receive a room's deliveries: a node subscribes to a room's
/// topic while it has members there (over Redis the SUBSCRIBE completes after the join that
/// made it, the crate guide's "Order"; the UNSUBSCRIBE after the last leave).
pub(crate) type RoomReady<'a> = &'a dyn Fn(&str, usize);

/// Sends, deliveries to all, all-but, ids, rooms (one and several, each member once), remote
/// join and leave, and a remote close, from node a to clients of b and c.
pub(crate) async fn every_operation(cluster: impl Fn() -> Cluster, room_ready: RoomReady<'_>) {
    let [a, b, c] = Node::three(cluster).await;
    all_see(&[&a, &b, &c], 3).await;
    let (mut a1, a1_id) = a.enter().await;
    let (mut b1, b1_id) = b.enter().await;
    let (mut c1, c1_id) = c.enter().await;
    let (ea, eb, ec) = (&a.endpoint, &b.endpoint, &c.endpoint);

    // Everyone: a's own client now, the others through the cluster, published once.
    let delivery = ea.broadcast("to all");
    assert_eq!(
        (delivery.queued, delivery.remote),
        (1, Remote::Published),
        "{delivery:?}"
    );
    for client in [&mut a1, &mut b1, &mut c1] {
        assert_eq!(client.recv_text().await.unwrap(), "to all");
    }
    // Everyone but a client of another node.
    ea.deliver(Recipients::except([b1_id]), "not b1");
    assert_eq!(a1.recv_text().await.unwrap(), "not b1");
    assert_eq!(c1.recv_text().await.unwrap(), "not b1");
    marker(eb, &mut b1, b1_id).await;
    // One remote client; clients on two other nodes.
    ea.send(c1_id, "to c1").unwrap();
    assert_eq!(c1.recv_text().await.unwrap(), "to c1");
    let delivery = ea.deliver([a1_id, b1_id, c1_id], "to three");
    assert_eq!(
        (delivery.queued, delivery.remote),
        (1, Remote::Published),
        "{delivery:?}"
    );
    for client in [&mut a1, &mut b1, &mut c1] {
        assert_eq!(client.recv_text().await.unwrap(), "to three");
    }

    // Rooms: remote joins go to the client's node, which keeps the membership.
    ea.join(b1_id, "red").unwrap();
    ea.join(c1_id, "red").unwrap();
    ea.join(c1_id, "blue").unwrap();
    ea.join(a1_id, "blue").unwrap();
    eventually("b1 in red", || eb.members("red") == [b1_id]).await;
    eventually("c1 in red and blue", || ec.rooms(c1_id).len() == 2).await;
    room_ready("red", 2);
    assert!(
        ea.members("red").is_empty(),
        "membership stays with the client's node"
    );
    // One room: its members on every node.
    let delivery = ea.deliver(Recipients::room("red"), "red");
    assert_eq!(
        (delivery.queued, delivery.remote),
        (0, Remote::Published),
        "{delivery:?}"
    );
    assert_eq!(b1.recv_text().await.unwrap(), "red");
    assert_eq!(c1.recv_text().await.unwrap(), "red");
    marker(ea, &mut a1, a1_id).await;
    // Several rooms: c1 is in both and gets it once; with an exception on another node.
    ea.deliver(Recipients::rooms(["red", "blue"]), "red or blue");
    for client in [&mut a1, &mut b1, &mut c1] {
        assert_eq!(client.recv_text().await.unwrap(), "red or blue");
    }
    for (client, id, endpoint) in [
        (&mut a1, a1_id, ea),
        (&mut b1, b1_id, eb),
        (&mut c1, c1_id, ec),
    ] {
        marker(endpoint, client, id).await;
    }
    eb.deliver(Recipients::room("red").excluding([c1_id]), "red but c1");
    assert_eq!(b1.recv_text().await.unwrap(), "red but c1");
    marker(ec, &mut c1, c1_id).await;
    // A remote leave: then the room no longer reaches it.
    assert!(ea.leave(b1_id, "red"), "sent to b1's node");
    eventually("b1 left red", || eb.room_len("red") == 0).await;
    // b had no other member there: it no longer receives the room's deliveries.
    room_ready("red", 1);
    ea.deliver(Recipients::room("red"), "red again");
    assert_eq!(c1.recv_text().await.unwrap(), "red again");
    marker(eb, &mut b1, b1_id).await;

    // Closing a remote client, with its code and reason.
    ea.close(c1_id, 4001, "bye from a").unwrap();
    let close = c1.expect_close().await.unwrap();
    assert_eq!((close.code, close.reason.as_str()), (4001, "bye from a"));
    eventually("c1 gone", || !ec.contains(c1_id)).await;
    assert_eq!(
        ea.close(c1_id, 1005, ""),
        Err(ws::SendError::InvalidCloseCode(1005))
    );

    for node in [a, b, c] {
        node.stop().await;
    }
}

/// A thousand operations of every kind from one node reach a client of another in the order
/// they were made, then its close.
pub(crate) async fn in_order(cluster: impl Fn() -> Cluster, room_ready: RoomReady<'_>) {
    let [a, b, _c] = Node::three(cluster).await;
    all_see(&[&a, &b], 3).await;
    let (mut b1, b1_id) = b.enter().await;
    b.endpoint.join(b1_id, "room").unwrap();
    room_ready("room", 1);
    let ea = &a.endpoint;
    for n in 0..1000 {
        let text = n.to_string();
        match n % 5 {
            0 => ea.send(b1_id, text).unwrap(),
            1 => assert_eq!(ea.broadcast(text).remote, Remote::Published),
            2 => assert_eq!(
                ea.deliver(Recipients::room("room"), text).remote,
                Remote::Published
            ),
            3 => {
                let to = Recipients::rooms(["room", "other"]);
                assert_eq!(ea.deliver(to, text).remote, Remote::Published);
            }
            _ => assert_eq!(ea.deliver([b1_id], text).remote, Remote::Published),
        }
    }
    ea.close(b1_id, 4000, "done").unwrap();
    for n in 0..1000 {
        assert_eq!(b1.recv_text().await.unwrap(), n.to_string());
    }
    assert_eq!(b1.expect_close().await.unwrap().code, 4000);
    assert_eq!(b.endpoint.cluster_stats().missed, 0);
    // Its last member closed: b stops receiving the room's deliveries.
    eventually("b1 unregistered", || !b.endpoint.contains(b1_id)).await;
    room_ready("room", 0);
    a.stop().await;
    b.stop().await;
}

/// Nodes find each other, count and list the cluster's clients, and drop a node that stops
/// gracefully at once.
pub(crate) async fn membership(cluster: impl Fn() -> Cluster) {
    let [a, b, c] = Node::three(cluster).await;
    all_see(&[&a, &b, &c], 3).await;
    let (_a1, a1_id) = a.enter().await;
    let (_b1, b1_id) = b.enter().await;
    let (_b2, b2_id) = b.enter().await;
    let nodes = a.endpoint.nodes();
    assert_eq!(nodes[0].id, a.endpoint.node(), "this node first");
    let mut ids: Vec<_> = nodes.iter().map(|node| node.id).collect();
    ids.sort_unstable();
    let mut expected = vec![a.endpoint.node(), b.endpoint.node(), c.endpoint.node()];
    expected.sort_unstable();
    assert_eq!(ids, expected);

    let count = c.endpoint.cluster_len().await;
    assert!(count.is_complete(), "{count:?}");
    assert_eq!(count.value, 3);
    let mut all = vec![a1_id, b1_id, b2_id];
    all.sort_unstable();
    assert_eq!(c.endpoint.cluster_clients().await.value, all);

    let b_node = b.endpoint.node();
    b.stop().await;
    // Its leaving heartbeat removes it at once, long before it would expire.
    let started = tokio::time::Instant::now();
    eventually("b left a's view", || {
        a.endpoint.nodes().iter().all(|node| node.id != b_node)
    })
    .await;
    assert!(
        started.elapsed() < Timings::FAST.expiry,
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        a.endpoint.send(b1_id, "x"),
        Err(ws::SendError::UnknownClient(b1_id))
    );
    let count = a.endpoint.cluster_len().await;
    assert_eq!((count.value, count.is_complete()), (1, true));
    a.stop().await;
    c.stop().await;
}

/// Every connection of a user, on every node: a delivery reaches each once, a close closes
/// each; the others are untouched.
pub(crate) async fn users(cluster: impl Fn() -> Cluster) {
    let [a, b, _c] = Node::three(cluster).await;
    all_see(&[&a, &b], 3).await;
    let (mut ada1, ada1_id) = a.enter_as("ada").await;
    let (mut ada2, ada2_id) = b.enter_as("ada").await;
    let (mut ada3, ada3_id) = b.enter_as("ada").await;
    let (mut bob, bob_id) = b.enter_as("bob").await;
    assert_eq!(b.endpoint.user(ada2_id), Some(ws::User::from("ada")));
    assert_eq!(b.endpoint.connections("ada"), [ada2_id, ada3_id]);
    assert_eq!(
        a.endpoint.connections("ada"),
        [ada1_id],
        "each node knows its own"
    );
    assert_eq!(
        a.endpoint.info(ada1_id).unwrap().user.unwrap().as_str(),
        "ada"
    );

    let delivery = a.endpoint.deliver(Recipients::user("ada"), "for ada");
    assert_eq!((delivery.queued, delivery.remote), (1, Remote::Published));
    for client in [&mut ada1, &mut ada2, &mut ada3] {
        assert_eq!(client.recv_text().await.unwrap(), "for ada");
    }
    a.endpoint.deliver(
        Recipients::users(["ada", "bob"]).excluding([ada3_id]),
        "all but ada3",
    );
    for client in [&mut ada1, &mut ada2, &mut bob] {
        assert_eq!(client.recv_text().await.unwrap(), "all but ada3");
    }
    marker(&b.endpoint, &mut ada3, ada3_id).await;

    let closed = a.endpoint.close_user("ada", 4002, "signed out").unwrap();
    assert_eq!((closed.queued, closed.remote), (1, Remote::Published));
    for client in [&mut ada1, &mut ada2, &mut ada3] {
        let close = client.expect_close().await.unwrap();
        assert_eq!((close.code, close.reason.as_str()), (4002, "signed out"));
    }
    eventually("ada's connections gone", || {
        b.endpoint.connections("ada").is_empty() && a.endpoint.connections("ada").is_empty()
    })
    .await;
    marker(&b.endpoint, &mut bob, bob_id).await;
    assert_eq!(
        a.endpoint.close_user("ada", 1005, ""),
        Err(ws::SendError::InvalidCloseCode(1005))
    );
    a.stop().await;
    b.stop().await;
}
