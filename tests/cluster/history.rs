//! Room history across nodes, over any backplane with a store: every node (the sender's too)
//! delivers a room's recorded messages in offset order, a client that comes back on another
//! node gets exactly what it missed, also while another node keeps publishing, and a wrong
//! epoch or an offset out of the window gets an honest "not recovered" with nothing replayed.
//! The hub's own failures (a node cut off, a history forgotten) are in `main.rs`; Redis' in
//! `redis.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ws::test::{Client, TestServer};
use ws::{ClientId, Cluster, Config, Endpoint, Epoch, Position, Socket, websocket};

use crate::scenarios::WAIT;

#[path = "../support/history_chat.rs"]
mod chat;

pub(crate) use chat::{Joined, history, joined, recorded};

/// Tells each client its id; then the protocol of `tests/support/history_chat.rs`.
struct Chat;

#[websocket]
impl Chat {
    fn on_open(&self, endpoint: &Endpoint, id: ClientId) {
        let _ = endpoint.send(id, id.to_string());
    }

    async fn on_data(&self, endpoint: &Endpoint, id: ClientId, text: String) {
        chat::command(endpoint, id, &text).await;
    }
}

/// One node of a cluster whose rooms keep history.
pub(crate) struct Node {
    pub(crate) endpoint: Endpoint,
    server: TestServer,
}

impl Node {
    pub(crate) async fn start(cluster: Cluster, keep: usize) -> Node {
        let config = Config::new()
            .cluster(cluster)
            .history(Some(history(keep)))
            .send_queue(100_000);
        let socket = Socket::with_config(Chat, config);
        socket.start().await;
        let server = ws::test::serve(&socket).await;
        Node {
            endpoint: socket.endpoint(),
            server,
        }
    }

    /// A new client of this node and its id.
    pub(crate) async fn enter(&self) -> (Client, ClientId) {
        let mut client = self.server.connect("/").await.expect("connected");
        let id = client.recv_text().await.unwrap().parse().expect("an id");
        (client, id)
    }

    /// A new client that joined `room` with this command; its `joined` reply.
    pub(crate) async fn enter_room(&self, command: &str) -> (Client, Joined) {
        let (mut client, _) = self.enter().await;
        client.send_text(command).await.unwrap();
        let reply = joined(&client.recv_text().await.unwrap());
        (client, reply)
    }

    pub(crate) async fn stop(self) {
        tokio::time::timeout(WAIT, self.server.shutdown())
            .await
            .expect("stopped in time");
    }
}

/// The next recorded message `client` gets.
pub(crate) async fn next(client: &mut Client) -> (Position, String) {
    recorded(&client.recv_text().await.unwrap())
}

/// Two nodes: members of both get a room's messages with the same positions, in order, the
/// sender's node included; a client that comes back on the other node gets exactly what it
/// missed, then the live ones; a wrong epoch, an offset out of the window and no position get
/// nothing replayed.
pub(crate) async fn recovery_across_nodes(cluster: impl Fn() -> Cluster) {
    let a = Node::start(cluster(), 5).await;
    let b = Node::start(cluster(), 5).await;
    let (mut on_a, first) = a.enter_room("join lobby").await;
    assert_eq!((first.offset, first.recovered), (0, false));
    assert_eq!(first.reason, "no_position");
    let epoch = first.epoch;
    let (mut on_b, second) = b.enter_room("join lobby").await;
    assert_eq!(
        (second.epoch, second.offset),
        (epoch, 0),
        "one history for both"
    );
    // b's subscription is confirmed before its `joined` reply: a's messages reach it.
    for n in 1..=3 {
        on_a.send_text(format!("say lobby m{n}")).await.unwrap();
        let at = Position::new(n, epoch);
        assert_eq!(
            next(&mut on_a).await,
            (at, format!("m{n}")),
            "the sender's node"
        );
        assert_eq!(next(&mut on_b).await, (at, format!("m{n}")));
    }
    on_b.close(1000, "").await.unwrap();
    let at = a.endpoint.publish("lobby", "m4").await.unwrap();
    assert_eq!(at, Position::new(4, epoch));
    b.endpoint.publish("lobby", "m5").await.unwrap();
    for n in 4..=5 {
        assert_eq!(next(&mut on_a).await.0.offset, n);
    }

    // Back, on the other node.
    let (mut back, _) = a.enter().await;
    back.send_text(format!("join lobby 3 {epoch}"))
        .await
        .unwrap();
    for n in 4..=5 {
        assert_eq!(
            next(&mut back).await,
            (Position::new(n, epoch), format!("m{n}"))
        );
    }
    let reply = joined(&back.recv_text().await.unwrap());
    assert!(reply.recovered && reply.offset == 5, "{reply:?}");
    b.endpoint.publish("lobby", "m6").await.unwrap();
    assert_eq!(next(&mut back).await.1, "m6");
    assert_eq!(next(&mut on_a).await.1, "m6");

    // Honest answers: keep is 5, so 2..=6 are kept.
    let other: Epoch = "elsewhere".parse().unwrap();
    for (top, (command, reason)) in (6..).zip([
        (format!("join lobby 6 {other}"), "epoch"),
        (format!("join lobby 0 {epoch}"), "window"),
        (format!("join lobby 99 {epoch}"), "ahead"),
    ]) {
        let (mut client, reply) = b.enter_room(&command).await;
        assert!(!reply.recovered, "{command}");
        assert_eq!(
            (reply.reason.as_str(), reply.offset),
            (reason, top),
            "{command}"
        );
        // Nothing came before the reply: the next message is the next live one.
        a.endpoint.publish("lobby", "live").await.unwrap();
        assert_eq!(next(&mut client).await.1, "live");
        assert_eq!(next(&mut back).await.1, "live");
        assert_eq!(next(&mut on_a).await.1, "live");
    }
    let stats = b.endpoint.history_stats().unwrap();
    assert_eq!(stats.not_recovered, [1, 1, 1, 1]);
    assert_eq!(a.endpoint.history_stats().unwrap().recovered, 1);
    a.stop().await;
    b.stop().await;
}

/// A client joins from a past position on one node while another node publishes without
/// pause: it gets every offset once, in order, the replay, its reply, then the live ones.
pub(crate) async fn recovery_while_another_node_publishes(cluster: impl Fn() -> Cluster) {
    const AFTER: u64 = 300;
    let a = Node::start(cluster(), 100_000).await;
    let b = Node::start(cluster(), 100_000).await;
    // A member on b, so that b's feed is live.
    let (_watcher, first) = b.enter_room("join busy").await;
    let epoch = first.epoch;
    let joined_at = Arc::new(AtomicBool::new(false));
    let publisher = {
        let endpoint = a.endpoint.clone();
        let joined_at = joined_at.clone();
        tokio::spawn(async move {
            let mut after = 0;
            for n in 1..=200_000u64 {
                let at = endpoint.publish("busy", format!("m{n}")).await.unwrap();
                assert_eq!(at.offset, n);
                after += u64::from(joined_at.load(Ordering::Acquire));
                if after == AFTER {
                    // The last message says so: the client need not know when this task
                    // ends (its last message may arrive before).
                    endpoint.publish("busy", "end").await.unwrap();
                    return n + 1;
                }
            }
            panic!("the client never joined");
        })
    };
    crate::scenarios::eventually("50 messages published", || {
        a.endpoint.history_stats().unwrap().appended >= 50
    })
    .await;
    let (mut client, _) = b.enter().await;
    client
        .send_text(format!("join busy 20 {epoch}"))
        .await
        .unwrap();
    let mut expected = 21;
    let mut top = None;
    let last = loop {
        let frame = client.recv_text().await.unwrap();
        if frame.starts_with("joined") {
            let reply = joined(&frame);
            assert!(reply.recovered, "{reply:?}");
            assert_eq!(reply.offset, expected - 1, "the reply follows the replay");
            top = Some(reply.offset);
            joined_at.store(true, Ordering::Release);
            continue;
        }
        let (at, text) = recorded(&frame);
        assert_eq!(at, Position::new(expected, epoch), "{frame}");
        if text == "end" {
            break expected;
        }
        assert_eq!(text, format!("m{expected}"));
        expected += 1;
    };
    let top = top.expect("a joined reply");
    assert!(
        top >= 50 && top + AFTER <= last,
        "joined at {top}, last {last}"
    );
    assert_eq!(publisher.await.unwrap(), last);
    client
        .expect_no_message(Duration::from_millis(50))
        .await
        .unwrap();
    a.stop().await;
    b.stop().await;
}
