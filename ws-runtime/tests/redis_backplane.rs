//! The Redis backplane against a real `redis-server` of each test's own: delivery in order on
//! every kind of topic, resubscription after Redis dies and returns, the subscription killed
//! from Redis' side, the output-buffer limit, and a feed frozen while TCP stays open (the
//! probe). Every wait is on an event or a bounded poll, never a sleep.

#[path = "../../tests/support/redis_server.rs"]
mod redis_server;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use redis_server::RedisServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use ws::Room;
use ws::cluster::{Backplane, Event, Inbound, NodeId, Redis, Topic, Unavailable};

/// Bound on any single wait in these tests.
const WAIT: Duration = Duration::from_secs(10);

fn node(n: u32) -> NodeId {
    format!("{n:08x}").parse().expect("8 hex digits")
}

/// A backplane on `url` for node `n`, subscribed to `topics` before it starts.
fn start(url: &str, n: u32, topics: &[Topic]) -> (Redis, Inbound) {
    let redis = Redis::new(url).expect("a valid URL");
    for topic in topics {
        redis.subscribe(topic);
    }
    let inbound = redis.start(node(n));
    (redis, inbound)
}

async fn next(inbound: &mut Inbound) -> Event {
    tokio::time::timeout(WAIT, inbound.recv())
        .await
        .expect("an event within 10 s")
        .expect("the inbound stream is still open")
}

/// Skips envelopes until a link event comes; panics on the other link event.
async fn until_up(inbound: &mut Inbound) {
    loop {
        match next(inbound).await {
            Event::Up => return,
            Event::Down(reason) => panic!("Down while waiting for Up: {reason}"),
            _ => {}
        }
    }
}

/// Skips envelopes until Down comes, and returns its reason.
async fn until_down(inbound: &mut Inbound) -> String {
    loop {
        match next(inbound).await {
            Event::Down(reason) => return reason,
            Event::Up => panic!("Up while waiting for Down"),
            _ => {}
        }
    }
}

/// The next envelope; a link event instead is a failure.
async fn envelope(inbound: &mut Inbound) -> Bytes {
    match next(inbound).await {
        Event::Envelope(bytes) => bytes,
        other => panic!("expected an envelope, got {other:?}"),
    }
}

/// Polls `PUBSUB NUMSUB channel` (10 ms steps, bounded) until it says `count`.
fn until_subscribers(server: &RedisServer, channel: &str, count: usize) {
    let deadline = Instant::now() + WAIT;
    loop {
        let answer = server.cli(&["PUBSUB", "NUMSUB", channel]);
        if answer.lines().nth(1) == Some(count.to_string().as_str()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{channel}: {answer:?}, expected {count} subscribers"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_topic_kind_arrives_in_publish_order_and_unsubscribe_stops_delivery() {
    let server = RedisServer::start();
    let lobby = Topic::Room(Room::from("lobby"));
    let topics = [Topic::All, Topic::Node(node(2)), lobby.clone()];
    let (a, mut a_in) = start(&server.url(), 1, &[]);
    let (b, mut b_in) = start(&server.url(), 2, &topics);
    until_up(&mut a_in).await;
    until_up(&mut b_in).await;
    assert!(a.is_up() && b.is_up());

    for i in 0..1000_u32 {
        let topic = &topics[i as usize % 3];
        a.publish(topic, Bytes::copy_from_slice(&i.to_be_bytes()))
            .expect("taken while up");
    }
    for i in 0..1000_u32 {
        assert_eq!(
            envelope(&mut b_in).await,
            &i.to_be_bytes()[..],
            "envelope {i}"
        );
    }

    b.unsubscribe(&lobby);
    until_subscribers(&server, "ws:room:lobby", 0);
    a.publish(&lobby, Bytes::from_static(b"to nobody")).unwrap();
    a.publish(&Topic::All, Bytes::from_static(b"marker"))
        .unwrap();
    // In publish order: had the room message arrived, it would come first.
    assert_eq!(envelope(&mut b_in).await, "marker");
    // A node gets what it publishes only on topics it subscribed to (here: none).
    assert!(a_in.recv_now_is_empty());
}

/// `Inbound` has no `try_recv`: an empty stream is one whose next event is not ready.
trait RecvNow {
    fn recv_now_is_empty(&mut self) -> bool;
}

impl RecvNow for Inbound {
    fn recv_now_is_empty(&mut self) -> bool {
        use std::future::Future;
        use std::task::{Context, Poll, Waker};
        let mut next = std::pin::pin!(self.recv());
        matches!(
            next.as_mut().poll(&mut Context::from_waker(Waker::noop())),
            Poll::Pending
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_flushes_what_is_queued_and_ends_inbound() {
    let server = RedisServer::start();
    let (a, mut a_in) = start(&server.url(), 1, &[]);
    let (_b, mut b_in) = start(&server.url(), 2, &[Topic::All]);
    until_up(&mut a_in).await;
    until_up(&mut b_in).await;

    for i in 0..200_u32 {
        a.publish(&Topic::All, Bytes::copy_from_slice(&i.to_be_bytes()))
            .unwrap();
    }
    a.stop(Duration::from_secs(2)).await;
    assert_eq!(a.publish(&Topic::All, Bytes::new()), Err(Unavailable::Down));
    for i in 0..200_u32 {
        assert_eq!(envelope(&mut b_in).await, &i.to_be_bytes()[..]);
    }
    let stats = a.stats();
    assert_eq!(
        (stats.published, stats.uncertain, stats.refused),
        (200, 0, 1)
    );
    let ended = tokio::time::timeout(WAIT, async {
        while let Some(event) = a_in.recv().await {
            assert!(!matches!(event, Event::Envelope(_)), "{event:?}");
        }
    });
    ended.await.expect("the stopped node's Inbound ends");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_then_restarted_on_its_port_resumes_with_the_subscriptions() {
    let mut server = RedisServer::start();
    let (a, mut a_in) = start(&server.url(), 1, &[]);
    let (b, mut b_in) = start(&server.url(), 2, &[Topic::All]);
    until_up(&mut a_in).await;
    until_up(&mut b_in).await;

    let killed = Instant::now();
    server.kill();
    let a_reason = until_down(&mut a_in).await;
    let b_reason = until_down(&mut b_in).await;
    eprintln!(
        "SIGKILL → Down on both: {:?} (a: {a_reason}; b: {b_reason})",
        killed.elapsed()
    );
    assert!(!a.is_up() && !b.is_up());

    // Refused at once, never waiting on Redis.
    let mut slowest = Duration::ZERO;
    for _ in 0..1000 {
        let call = Instant::now();
        assert_eq!(
            a.publish(&Topic::All, Bytes::from_static(b"lost")),
            Err(Unavailable::Down)
        );
        slowest = slowest.max(call.elapsed());
    }
    eprintln!("slowest of 1000 refused publishes: {slowest:?}");
    assert!(slowest < Duration::from_millis(20), "{slowest:?}");
    assert_eq!(a.stats().refused, 1000);

    // Asked for while down: subscribed on the way back up, before Up.
    let late = Topic::Room(Room::from("late"));
    b.subscribe(&late);

    server.restart();
    let back = Instant::now();
    until_up(&mut a_in).await;
    until_up(&mut b_in).await;
    let resumed = back.elapsed();
    eprintln!("Redis accepting again → Up on both: {resumed:?}");
    assert!(resumed < Duration::from_secs(5), "{resumed:?}");

    a.publish(&late, Bytes::from_static(b"room")).unwrap();
    a.publish(&Topic::All, Bytes::from_static(b"all")).unwrap();
    assert_eq!(envelope(&mut b_in).await, "room");
    assert_eq!(envelope(&mut b_in).await, "all");
    assert_eq!(b.stats().reconnects, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_kill_type_pubsub_is_down_then_up_and_delivery_resumes() {
    let server = RedisServer::start();
    let (a, mut a_in) = start(&server.url(), 1, &[]);
    let (_b, mut b_in) = start(&server.url(), 2, &[Topic::Node(node(2))]);
    until_up(&mut a_in).await;
    until_up(&mut b_in).await;

    assert_eq!(server.cli(&["CLIENT", "KILL", "TYPE", "pubsub"]), "2");
    until_down(&mut a_in).await;
    until_down(&mut b_in).await;
    until_up(&mut a_in).await;
    until_up(&mut b_in).await;

    a.publish(&Topic::Node(node(2)), Bytes::from_static(b"again"))
        .unwrap();
    assert_eq!(envelope(&mut b_in).await, "again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_dropped_at_its_output_buffer_limit_recovers() {
    let server = RedisServer::start();
    let to_b = Topic::Node(node(2));
    let (a, mut a_in) = start(&server.url(), 1, &[]);
    let (b, mut b_in) = start(&server.url(), 2, std::slice::from_ref(&to_b));
    until_up(&mut a_in).await;
    until_up(&mut b_in).await;

    assert_eq!(
        server.cli(&[
            "CONFIG",
            "SET",
            "client-output-buffer-limit",
            "pubsub 1kb 1kb 0"
        ]),
        "OK"
    );
    let big = Bytes::from(vec![b'x'; 4096]);
    for _ in 0..64 {
        a.publish(&to_b, big.clone()).unwrap();
    }
    let reason = until_down(&mut b_in).await;
    eprintln!("dropped at the output-buffer limit: {reason}");
    until_up(&mut b_in).await;

    // Still under the limit: one small envelope at a time gets through.
    for i in 0..10_u8 {
        a.publish(&to_b, Bytes::copy_from_slice(&[i])).unwrap();
        loop {
            let got = envelope(&mut b_in).await;
            if got != big {
                assert_eq!(got, &[i][..]);
                break;
            }
        }
    }
    assert!(a.is_up(), "the publishing node was not affected");
    assert_eq!(b.stats().reconnects, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_feed_is_noticed_by_the_probe_and_restarted() {
    let server = RedisServer::start();
    let proxy = Proxy::start(server.port()).await;
    let (a, mut a_in) = start(&server.url(), 1, &[]);
    let (b, mut b_in) = start(&proxy.url(), 2, &[Topic::All]);
    until_up(&mut a_in).await;
    until_up(&mut b_in).await;
    a.publish(&Topic::All, Bytes::from_static(b"before"))
        .unwrap();
    assert_eq!(envelope(&mut b_in).await, "before");

    // Redis → node bytes of the subscription connection stop; both sockets stay open.
    proxy.freeze_subscriptions();
    let frozen = Instant::now();
    let reason = until_down(&mut b_in).await;
    let noticed = frozen.elapsed();
    eprintln!("frozen feed noticed after {noticed:?}: {reason}");
    assert!(reason.contains("probe"), "{reason}");
    assert!(noticed < Duration::from_millis(5500), "{noticed:?}");
    until_up(&mut b_in).await;
    eprintln!("frozen feed → Up again: {:?}", frozen.elapsed());

    a.publish(&Topic::All, Bytes::from_static(b"after"))
        .unwrap();
    assert_eq!(envelope(&mut b_in).await, "after");
    assert!(a.is_up() && b.is_up());
}

/// A TCP proxy in front of Redis that can stop forwarding Redis → node bytes on the
/// subscription connections it has seen so far, keeping their sockets open.
struct Proxy {
    port: u16,
    subscriptions: Arc<Mutex<Vec<Arc<AtomicBool>>>>,
}

impl Proxy {
    async fn start(redis_port: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let subscriptions = Arc::new(Mutex::new(Vec::new()));
        let registry = Arc::clone(&subscriptions);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(upstream) = TcpStream::connect(("127.0.0.1", redis_port)).await else {
                    continue;
                };
                let frozen = Arc::new(AtomicBool::new(false));
                let (mut client_read, mut client_write) = client.into_split();
                let (mut upstream_read, mut upstream_write) = upstream.into_split();
                let registry = Arc::clone(&registry);
                let flag = Arc::clone(&frozen);
                tokio::spawn(async move {
                    let mut buffer = vec![0; 16 * 1024];
                    let mut registered = false;
                    while let Ok(n @ 1..) = client_read.read(&mut buffer).await {
                        if !registered && buffer[..n].windows(9).any(|w| w == b"SUBSCRIBE") {
                            registry.lock().unwrap().push(Arc::clone(&flag));
                            registered = true;
                        }
                        if upstream_write.write_all(&buffer[..n]).await.is_err() {
                            break;
                        }
                    }
                });
                tokio::spawn(async move {
                    let mut buffer = vec![0; 16 * 1024];
                    while let Ok(n @ 1..) = upstream_read.read(&mut buffer).await {
                        // Frozen: read and discard, so Redis sees a healthy reader.
                        if !frozen.load(Ordering::Relaxed)
                            && client_write.write_all(&buffer[..n]).await.is_err()
                        {
                            break;
                        }
                    }
                    // Keep the node's socket open even if Redis closes its side.
                    std::future::pending::<()>().await;
                });
            }
        });
        Proxy {
            port,
            subscriptions,
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn freeze_subscriptions(&self) {
        let subscriptions = self.subscriptions.lock().unwrap();
        assert!(!subscriptions.is_empty(), "a subscription went through");
        for frozen in subscriptions.iter() {
            frozen.store(true, Ordering::Relaxed);
        }
    }
}
