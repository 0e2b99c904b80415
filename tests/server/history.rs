//! Room history on one node: every recorded message's position, exact replay after a
//! disconnect, replay while messages keep arriving (every offset once, in order), a wrong
//! epoch, an offset out of the window or ahead of the room, history lost with its socket,
//! rooms the rule leaves out, and a `format` that panics.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use ws::cluster::{Backplane, Inbound, Topic, Unavailable};
use ws::{
    ClientId, Config, Endpoint, Epoch, History, JoinError, Position, PublishError, Recipients,
    Socket, websocket,
};

use crate::support::*;

#[path = "../support/history_chat.rs"]
mod chat;

use chat::{history, joined, recorded};

/// The protocol of `tests/support/history_chat.rs`.
struct Chat;

#[websocket]
impl Chat {
    async fn on_data(&self, endpoint: &Endpoint, id: ClientId, text: String) {
        chat::command(endpoint, id, &text).await;
    }
}

fn socket(keep: usize) -> Socket<Chat> {
    Socket::with_config(Chat, Config::new().history(Some(history(keep))))
}

async fn join_room(client: &mut ws::test::Client, command: &str) -> chat::Joined {
    client.send_text(command).await.unwrap();
    joined(&client.recv_text().await.unwrap())
}

#[tokio::test]
async fn a_client_that_comes_back_gets_exactly_what_it_missed_then_the_live_messages() {
    let socket = socket(100);
    let endpoint = socket.endpoint();
    let server = serve(&socket).await;
    let mut a = server.connect("/ws").await.unwrap();
    let mut b = server.connect("/ws").await.unwrap();
    let first = join_room(&mut a, "join lobby").await;
    assert_eq!((first.offset, first.recovered), (0, false));
    assert_eq!(first.reason, "no_position");
    assert_eq!(join_room(&mut b, "join lobby").await.epoch, first.epoch);

    for n in 1..=3 {
        a.send_text(format!("say lobby m{n}")).await.unwrap();
        let (at, text) = recorded(&b.recv_text().await.unwrap());
        assert_eq!((at, text), (Position::new(n, first.epoch), format!("m{n}")));
        assert_eq!(recorded(&a.recv_text().await.unwrap()).0.offset, n);
    }
    b.close(1000, "").await.unwrap();
    // What b misses, with a position from outside the hooks too.
    a.send_text("say lobby m4").await.unwrap();
    assert_eq!(recorded(&a.recv_text().await.unwrap()).0.offset, 4);
    let at = endpoint.publish("lobby", "m5").await.unwrap();
    assert_eq!(at, Position::new(5, first.epoch));
    assert_eq!(recorded(&a.recv_text().await.unwrap()).0.offset, 5);

    let mut b = server.connect("/ws").await.unwrap();
    b.send_text(format!("join lobby 3 {}", first.epoch))
        .await
        .unwrap();
    for n in 4..=5 {
        let (at, text) = recorded(&b.recv_text().await.unwrap());
        assert_eq!((at.offset, text), (n, format!("m{n}")));
    }
    let back = joined(&b.recv_text().await.unwrap());
    assert_eq!((back.epoch, back.offset), (first.epoch, 5));
    assert!(back.recovered, "{}", back.reason);
    a.send_text("say lobby m6").await.unwrap();
    assert_eq!(recorded(&b.recv_text().await.unwrap()).1, "m6");

    // From further back, the same messages, the same bytes.
    let mut c = server.connect("/ws").await.unwrap();
    c.send_text(format!("join lobby 1 {}", first.epoch))
        .await
        .unwrap();
    for n in 2..=6 {
        assert_eq!(recorded(&c.recv_text().await.unwrap()).0.offset, n);
    }
    assert!(joined(&c.recv_text().await.unwrap()).recovered);

    let stats = endpoint.history_stats().unwrap();
    assert_eq!((stats.rooms, stats.kept, stats.appended), (1, 6, 6));
    assert_eq!((stats.replayed, stats.recovered), (2 + 5, 2));
    assert_eq!(stats.not_recovered, [2, 0, 0, 0]);
    shutdown(server).await;
}

#[tokio::test]
async fn a_position_that_cannot_be_recovered_gets_an_honest_no_and_nothing_replayed() {
    let socket = socket(5);
    let endpoint = socket.endpoint();
    let server = serve(&socket).await;
    let mut a = server.connect("/ws").await.unwrap();
    let epoch = join_room(&mut a, "join lobby").await.epoch;
    for n in 1..=8 {
        endpoint.publish("lobby", format!("m{n}")).await.unwrap();
        assert_eq!(recorded(&a.recv_text().await.unwrap()).0.offset, n);
    }
    let other: Epoch = "elsewhere".parse().unwrap();
    // Five offsets are kept (4..=8 at first, one more each round): 2 and before are out of
    // the window.
    for (round, (since, reason)) in [
        (format!("join lobby 8 {other}"), "epoch"),
        (format!("join lobby 2 {epoch}"), "window"),
        (format!("join lobby 0 {epoch}"), "window"),
        (format!("join lobby 99 {epoch}"), "ahead"),
        ("join lobby".to_owned(), "no_position"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut b = server.connect("/ws").await.unwrap();
        let reply = join_room(&mut b, &since).await;
        assert!(!reply.recovered, "{since}");
        assert_eq!(reply.reason, reason, "{since}");
        assert_eq!((reply.epoch, reply.offset), (epoch, 8 + round as u64));
        // Nothing came before the reply, and the next message is the next live one.
        endpoint.publish("lobby", "next").await.unwrap();
        assert_eq!(recorded(&b.recv_text().await.unwrap()).1, "next");
        assert_eq!(recorded(&a.recv_text().await.unwrap()).1, "next");
    }
    let mut b = server.connect("/ws").await.unwrap();
    b.send_text(format!("join lobby 10 {epoch}")).await.unwrap();
    for n in 11..=13 {
        assert_eq!(recorded(&b.recv_text().await.unwrap()).0.offset, n);
    }
    let reply = joined(&b.recv_text().await.unwrap());
    assert!(reply.recovered && reply.offset == 13);
    let stats = endpoint.history_stats().unwrap();
    assert_eq!(stats.not_recovered, [2, 1, 2, 1]);
    assert_eq!(stats.kept, 5);
    shutdown(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_while_messages_keep_arriving_gives_every_offset_once_in_order() {
    /// Messages published after the client has its `joined` reply.
    const AFTER: u64 = 500;
    /// A bound on the run, far above what it takes.
    const LIMIT: usize = 200_000;
    let config = Config::new()
        .history(Some(history(LIMIT)))
        .send_queue(LIMIT);
    let socket = Socket::with_config(Chat, config);
    let endpoint = socket.endpoint();
    let server = serve(&socket).await;
    let joined_at = Arc::new(AtomicBool::new(false));
    // Publishes until AFTER messages after the join, on another thread than the join's.
    let publisher = {
        let endpoint = endpoint.clone();
        let joined_at = joined_at.clone();
        tokio::spawn(async move {
            let mut after = 0;
            for n in 1..=LIMIT as u64 {
                endpoint.publish("busy", format!("m{n}")).await.unwrap();
                after += u64::from(joined_at.load(Ordering::Acquire));
                if after == AFTER {
                    // The last message says so: the client need not know when this task
                    // ends (its last message may arrive before).
                    return endpoint.publish("busy", "end").await.unwrap().offset;
                }
                if n % 16 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            panic!("the client never joined");
        })
    };
    while endpoint.history_stats().unwrap().appended < 100 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        endpoint.publish("tmp-probe", "x").await,
        Err(PublishError::NoHistory("tmp-probe".into()))
    );
    let epoch = endpoint
        .publish("busy", "from the test")
        .await
        .unwrap()
        .epoch;
    let mut client = server.connect("/ws").await.unwrap();
    client
        .send_text(format!("join busy 50 {epoch}"))
        .await
        .unwrap();
    let mut expected = 51;
    let mut top = None;
    let last = loop {
        let frame = client.recv_text().await.unwrap();
        if frame.starts_with("joined") {
            let reply = joined(&frame);
            assert!(reply.recovered);
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
        expected += 1;
    };
    let top = top.expect("a joined reply");
    assert!(
        top > 100 && top + AFTER <= last,
        "joined at {top}, last {last}"
    );
    publisher.await.unwrap();
    client
        .expect_no_message(Duration::from_millis(50))
        .await
        .unwrap();
    shutdown(server).await;
}

#[tokio::test]
async fn history_is_lost_with_its_socket_and_a_new_one_begins_a_new_epoch() {
    let first = socket(10);
    let server = serve(&first).await;
    let mut a = server.connect("/ws").await.unwrap();
    let old = join_room(&mut a, "join lobby").await.epoch;
    first.endpoint().publish("lobby", "m1").await.unwrap();
    shutdown(server).await;

    let second = socket(10);
    let server = serve(&second).await;
    let mut b = server.connect("/ws").await.unwrap();
    let reply = join_room(&mut b, &format!("join lobby 1 {old}")).await;
    assert!(!reply.recovered);
    assert_eq!(reply.reason, "epoch");
    assert_ne!(reply.epoch, old);
    assert_eq!(reply.offset, 0);
    shutdown(server).await;
}

#[tokio::test]
async fn rooms_without_history_and_a_panicking_format_record_nothing() {
    let socket = socket(10);
    let endpoint = socket.endpoint();
    let server = serve(&socket).await;
    let mut a = server.connect("/ws").await.unwrap();
    join_room(&mut a, "join lobby").await;
    let id = endpoint.clients()[0];
    endpoint.join(id, "tmp-chat").unwrap();

    // A room the rule leaves out: delivered as given, no position, nothing kept.
    let delivery = endpoint.deliver(Recipients::room("tmp-chat"), "plain");
    assert_eq!((delivery.queued, delivery.position), (1, None));
    assert_eq!(a.recv_text().await.unwrap(), "plain");
    assert_eq!(
        endpoint.join_since(id, "tmp-chat", None).await,
        Err(JoinError::NoHistory("tmp-chat".into()))
    );
    // Both: recorded in the lobby, and not twice to a member of both.
    let delivery = endpoint.deliver(Recipients::rooms(["lobby", "tmp-chat"]), "both");
    assert_eq!(delivery.queued, 1);
    let at = delivery.position.expect("recorded in the lobby");
    assert_eq!(at.offset, 1);
    assert_eq!(recorded(&a.recv_text().await.unwrap()).1, "both");
    a.expect_no_message(Duration::from_millis(50))
        .await
        .unwrap();

    // Without Config::history, no room keeps history.
    let plain = Socket::new(Chat).endpoint();
    assert_eq!(plain.history_stats(), None);
    assert_eq!(
        plain.publish("lobby", "x").await,
        Err(PublishError::NoHistory("lobby".into()))
    );

    // In a cluster whose backplane keeps no history (no `Backplane::store`), each node's
    // offsets would differ: no room keeps history there. The hub's does.
    let hub = ws::cluster::Hub::new();
    let node = |backplane| {
        let cluster = ws::Cluster::with_backplane(backplane);
        let config = Config::new().history(Some(history(10))).cluster(cluster);
        Socket::with_config(Chat, config).endpoint()
    };
    assert_eq!(node(NoStore(hub.backplane())).history_stats(), None);
    let stored = Socket::with_config(
        Chat,
        Config::new()
            .history(Some(history(10)))
            .cluster(ws::Cluster::in_process(&hub)),
    );
    assert!(stored.endpoint().history_stats().is_some());

    // A format that panics: neither recorded nor delivered.
    let panicky = Socket::with_config(
        Chat,
        Config::new().history(Some(
            History::new(10, Duration::from_secs(60)).format(|_, _, _| panic!("bad format")),
        )),
    );
    assert_eq!(
        panicky.endpoint().publish("lobby", "x").await,
        Err(PublishError::Format("lobby".into()))
    );
    assert_eq!(panicky.endpoint().history_stats().unwrap().kept, 0);
    shutdown(server).await;
}

#[tokio::test]
async fn a_member_that_cannot_take_a_recorded_message_is_closed_whatever_the_policy() {
    let config = Config::new()
        .history(Some(history(10)))
        .send_queue(1)
        .slow_consumer(ws::SlowConsumer::Wait);
    let socket = Socket::with_config(Chat, config);
    let endpoint = socket.endpoint();
    let server = serve(&socket).await;
    let mut a = server.connect("/ws").await.unwrap();
    join_room(&mut a, "join lobby").await;
    // No await in between: the connection's writer cannot drain the queue of one.
    let first = endpoint.deliver(Recipients::room("lobby"), "one");
    let second = endpoint.deliver(Recipients::room("lobby"), "two");
    assert_eq!((first.queued, second.queued), (1, 0));
    assert_eq!(second.position.map(|at| at.offset), Some(2), "recorded");
    // The close goes ahead of what is queued, as any slow consumer's.
    let close = a.expect_close().await.unwrap();
    assert_eq!(
        (close.code, close.reason.as_str()),
        (1008, "Send queue full")
    );
    shutdown(server).await;
}

/// The hub's backplane without its store.
struct NoStore(ws::cluster::InProcess);

impl Backplane for NoStore {
    fn start(&self, node: ws::NodeId) -> Inbound {
        self.0.start(node)
    }

    fn publish(&self, topic: &Topic, envelope: Bytes) -> Result<(), Unavailable> {
        self.0.publish(topic, envelope)
    }

    fn subscribe(&self, topic: &Topic) {
        self.0.subscribe(topic);
    }

    fn unsubscribe(&self, topic: &Topic) {
        self.0.unsubscribe(topic);
    }

    fn is_up(&self) -> bool {
        self.0.is_up()
    }

    fn stop(&self, within: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        self.0.stop(within)
    }
}
