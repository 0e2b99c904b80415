//! Presence across nodes, over any backplane with a store: a room's members on every node
//! with their users, join and leave events that cross nodes, and the members of a node that
//! stops being heard dropping out of every list.

use ws::test::{Client, TestServer};
use ws::{
    Accept, ClientId, Cluster, Config, Endpoint, Message, Presence, PresenceChange, Request,
    Socket, websocket,
};

use crate::scenarios::WAIT;

/// `?user=NAME` names the connection's user. Tells each client its id; then commands: `join
/// ROOM`, `leave ROOM`, `who ROOM` (answered `members ROOM N USER,USER`, the users sorted
/// and unique). Members are told `join ROOM USER` / `leave ROOM USER`.
struct Chat;

#[websocket]
impl Chat {
    fn on_handshake(&self, request: &Request, accept: &mut Accept) {
        if let Some(user) = request.query("user") {
            accept.user(user);
        }
    }

    fn on_open(&self, endpoint: &Endpoint, id: ClientId) {
        let _ = endpoint.send(id, id.to_string());
    }

    async fn on_data(&self, endpoint: &Endpoint, id: ClientId, text: String) {
        match text.split_once(' ') {
            Some(("join", room)) => endpoint.join(id, room).expect("open"),
            Some(("leave", room)) => {
                endpoint.leave(id, room);
            }
            Some(("who", room)) => {
                let members = endpoint.presence(room).await;
                let users: Vec<String> = members
                    .value
                    .users()
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                let reply = format!("members {room} {} {}", members.value.len(), users.join(","));
                let _ = endpoint.send(id, reply);
            }
            _ => panic!("unknown command {text:?}"),
        }
    }
}

pub(crate) fn presence() -> Presence {
    Presence::new().events(|room, event| {
        let user = event.user.as_ref().map_or("-", |user| user.as_str());
        let change = match event.change {
            PresenceChange::Join => "join",
            _ => "leave",
        };
        Some(Message::text(format!("{change} {room} {user}")))
    })
}

pub(crate) struct Node {
    pub(crate) endpoint: Endpoint,
    server: TestServer,
}

impl Node {
    pub(crate) async fn start(cluster: Cluster) -> Node {
        let config = Config::new().cluster(cluster).presence(Some(presence()));
        let socket = Socket::with_config(Chat, config);
        socket.start().await;
        let server = ws::test::serve(&socket).await;
        Node {
            endpoint: socket.endpoint(),
            server,
        }
    }

    /// A connection of `user` that joined `room`, once its join is applied.
    pub(crate) async fn member(&self, user: &str, room: &str) -> (Client, ClientId) {
        let mut client = self
            .server
            .connect(&format!("/?user={user}"))
            .await
            .expect("connected");
        let id = client.recv_text().await.unwrap().parse().expect("an id");
        client.send_text(format!("join {room}")).await.unwrap();
        // Commands are handled in order: the answer to `who` comes after the join.
        client.send_text(format!("who {room}")).await.unwrap();
        let reply = client.recv_text().await.unwrap();
        assert!(reply.starts_with(&format!("members {room}")), "{reply}");
        (client, id)
    }

    pub(crate) async fn stop(self) {
        tokio::time::timeout(WAIT, self.server.shutdown())
            .await
            .expect("stopped in time");
    }
}

/// Asks `client`'s node who is in `room`: its answer (what came before it is skipped).
pub(crate) async fn who(client: &mut Client, room: &str) -> String {
    client.send_text(format!("who {room}")).await.unwrap();
    loop {
        let text = client.recv_text().await.unwrap();
        if text.starts_with("members") {
            return text;
        }
    }
}

/// Asks `client`'s node who is in `room`, until the answer is `expected` (each node's copy in
/// the store lands after its join, and an expiry takes its time), at most [`WAIT`].
pub(crate) async fn eventually_who(client: &mut Client, room: &str, expected: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let reply = who(client, room).await;
        if reply == format!("members {room} {expected}") {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still {reply:?}, not {expected:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Two nodes: the members of both, each user once; events to the other members on both
/// nodes; a leave and a close are events too and leave the lists.
pub(crate) async fn across_nodes(cluster: impl Fn() -> Cluster) {
    let a = Node::start(cluster()).await;
    let b = Node::start(cluster()).await;
    let (mut ada, _) = a.member("ada", "lobby").await;
    let (mut bob, _) = b.member("bob", "lobby").await;
    assert_eq!(
        ada.recv_text().await.unwrap(),
        "join lobby bob",
        "across nodes"
    );
    // A second connection of ada's, on the other node: two connections, two users.
    let (mut ada2, _) = b.member("ada", "lobby").await;
    assert_eq!(ada.recv_text().await.unwrap(), "join lobby ada");
    assert_eq!(bob.recv_text().await.unwrap(), "join lobby ada");
    // A node writes a member's entry before it sends the event: whoever got the event finds
    // the member in the list, at once.
    assert_eq!(who(&mut ada, "lobby").await, "members lobby 3 ada,bob");
    eventually_who(&mut bob, "lobby", "3 ada,bob").await;

    bob.send_text("leave lobby").await.unwrap();
    assert_eq!(ada.recv_text().await.unwrap(), "leave lobby bob");
    assert_eq!(ada2.recv_text().await.unwrap(), "leave lobby bob");
    assert_eq!(who(&mut ada, "lobby").await, "members lobby 2 ada");
    ada2.close(1000, "").await.unwrap();
    assert_eq!(ada.recv_text().await.unwrap(), "leave lobby ada");
    assert_eq!(who(&mut ada, "lobby").await, "members lobby 1 ada");
    eventually_who(&mut bob, "lobby", "1 ada").await;
    a.stop().await;
    b.stop().await;
}
