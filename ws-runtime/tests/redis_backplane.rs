//! The Redis backplane against a real `redis-server` of each test's own: delivery in order on
//! every kind of topic, resubscription after Redis dies and returns, the subscription killed
//! from Redis' side, the output-buffer limit, and a feed frozen while TCP stays open (the
//! probe); then the history store: offsets, reads, `keep`, the script's envelope bytes, lost
//! keys, `SCRIPT FLUSH`, lost answers, the TTL, and Redis down; then presence: two nodes'
//! members read from either, exits, a lapsed node, refreshes, expired hashes, the order with
//! appends, a refused write, and Redis down. Every wait is on an event or a bounded poll, never
//! a sleep (the TTL tests wait on the clock, as they must).

#[path = "../../tests/support/redis_server.rs"]
mod redis_server;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use redis_server::RedisServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use ws::cluster::{
    Append, Backplane, ClientId, Event, Inbound, NodeId, Read, Redis, Store, StoreError, Topic,
    Unavailable, User,
};
use ws::{Message, Position, Room};

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

// ---- The history store (ADR 0003, "Storage") ----

/// A long TTL, for tests that are not about age.
const LONG: Duration = Duration::from_secs(600);

/// `n` as LEB128, written here again so that the script's bytes are checked against an
/// independent encoding.
fn varint(mut n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while n >= 0x80 {
        out.push(u8::try_from(n & 0x7f).unwrap() | 0x80);
        n >>= 7;
    }
    out.push(u8::try_from(n).unwrap());
    out
}

/// A message for `room`'s history whose envelope parts look like the endpoint's (kind 0x07,
/// a sender, seq 0, the room; then no except ids and the payload), with bytes a text protocol
/// would mangle (NUL, CR LF, 0xff) in both parts.
fn append(room: &str, message: Message, keep: usize, ttl: Duration) -> Append {
    let mut head = vec![0x01, 0x07, u8::from(message.is_binary())];
    head.extend_from_slice(&[0x00, 0xff, b'\r', b'\n', 0, 0, 0, 0]);
    head.push(u8::try_from(room.len()).unwrap());
    head.extend_from_slice(room.as_bytes());
    let mut tail = vec![0x00];
    tail.extend_from_slice(message.as_bytes());
    Append::new(
        Room::from(room),
        message,
        Bytes::from(head),
        Bytes::from(tail),
        keep,
        ttl,
    )
}

/// The envelope the store must publish: head, the offset as LEB128, the epoch's length and
/// the epoch, tail.
fn envelope_of(append: &Append, at: &Position) -> Vec<u8> {
    let mut out = append.head.to_vec();
    out.extend(varint(at.offset));
    out.push(u8::try_from(at.epoch.as_str().len()).unwrap());
    out.extend_from_slice(at.epoch.as_str().as_bytes());
    out.extend_from_slice(&append.tail);
    out
}

/// Appends and waits for the store's answer (bounded).
async fn appended(redis: &Redis, append: Append) -> Result<Position, StoreError> {
    let answer = Store::append(redis, append).expect("taken while up");
    tokio::time::timeout(WAIT, answer)
        .await
        .expect("an answer within 10 s")
}

async fn read(redis: &Redis, room: &str, after: u64, limit: usize, ttl: Duration) -> Read {
    redis
        .read(&Room::from(room), after, limit, ttl)
        .await
        .expect("a read while up")
}

fn offsets(read: &Read) -> Vec<u64> {
    read.entries.iter().map(|(offset, _)| *offset).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_get_consecutive_offsets_reads_honour_after_limit_and_keep() {
    let server = RedisServer::start();
    let chat = Topic::Room(Room::from("chat"));
    let (a, mut a_in) = start(&server.url(), 1, &[]);
    let (b, mut b_in) = start(&server.url(), 2, std::slice::from_ref(&chat));
    until_up(&mut a_in).await;
    until_up(&mut b_in).await;
    assert!(a.store().is_some());
    assert!(b.subscribed(&chat).await, "b's subscription is confirmed");

    let messages: Vec<Message> = (1..=5_u8)
        .map(|n| {
            if n % 2 == 0 {
                Message::binary(vec![n, 0x00, 0xff])
            } else {
                Message::text(format!("message {n} é"))
            }
        })
        .collect();
    let mut epoch = None;
    for (n, message) in (1..).zip(&messages) {
        let append = append("chat", message.clone(), 3, LONG);
        let at = appended(&a, append.clone()).await.expect("recorded");
        assert_eq!(at.offset, n);
        assert_eq!(*epoch.get_or_insert(at.epoch), at.epoch, "one epoch");
        assert_eq!(envelope(&mut b_in).await, envelope_of(&append, &at));
    }
    let epoch = epoch.unwrap();
    assert_eq!(epoch.as_str().len(), 8);

    let all = read(&a, "chat", 0, 10, LONG).await;
    assert_eq!(all.top, Position::new(5, epoch));
    // `keep` 3: the first two were trimmed.
    let kept: Vec<(u64, Message)> = (3..=5).zip(messages[2..].iter().cloned()).collect();
    assert_eq!(all.entries, kept);
    assert_eq!(
        offsets(&read(&b, "chat", 3, 10, LONG).await),
        [4, 5],
        "after is exclusive"
    );
    assert_eq!(
        offsets(&read(&a, "chat", 0, 2, LONG).await),
        [3, 4],
        "limit"
    );
    assert_eq!(offsets(&read(&a, "chat", 3, 1, LONG).await), [4]);
    assert!(read(&a, "chat", 4, 0, LONG).await.entries.is_empty());
    assert!(read(&a, "chat", 5, 10, LONG).await.entries.is_empty());
    let behind = read(&a, "chat", 1, 10, LONG).await;
    assert_eq!(
        offsets(&behind),
        [3, 4, 5],
        "what was trimmed is just not there"
    );
    assert_eq!(
        server.cli(&["XLEN", "ws:history:chat"]),
        "3",
        "MAXLEN keeps the stream itself at 3"
    );

    // A room never written gets its epoch from the read, and the first append keeps it.
    let fresh = read(&a, "new", 0, 10, LONG).await;
    assert_eq!(fresh.top.offset, 0);
    assert_ne!(fresh.top.epoch, epoch);
    let first = appended(&a, append("new", Message::text("1"), 3, LONG)).await;
    assert_eq!(first, Ok(Position::new(1, fresh.top.epoch)));

    let stats = a.stats();
    assert_eq!((stats.published, stats.uncertain, stats.refused), (6, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scripts_envelope_is_head_position_tail_at_every_varint_length() {
    let server = RedisServer::start();
    let room = Topic::Room(Room::from("big"));
    let (a, mut a_in) = start(&server.url(), 1, &[]);
    let (_b, mut b_in) = start(&server.url(), 2, std::slice::from_ref(&room));
    until_up(&mut a_in).await;
    until_up(&mut b_in).await;

    let mut epoch = None;
    for offset in [1, 127, 128, 16_383, 16_384, 1 << 32, (1 << 53) - 1] {
        if offset > 1 {
            // The meta exists (offset 1 made it): jump its top just below `offset`.
            let before = (offset - 1).to_string();
            server.cli(&["HSET", "ws:history-meta:big", "o", &before]);
        }
        let message = Message::binary(vec![0x00, b'\r', b'\n', 0xff]);
        let append = append("big", message.clone(), 10, LONG);
        let at = appended(&a, append.clone()).await.expect("recorded");
        assert_eq!(at.offset, offset);
        assert_eq!(*epoch.get_or_insert(at.epoch), at.epoch);
        assert_eq!(
            envelope(&mut b_in).await,
            envelope_of(&append, &at),
            "offset {offset}"
        );
        let last = read(&a, "big", offset - 1, 10, LONG).await;
        assert_eq!(last.entries, [(offset, message)]);
    }
    // Past 2^53 - 1 the script's Lua numbers would not be exact: refused, nothing written.
    let refused = appended(&a, append("big", Message::text("no"), 10, LONG)).await;
    match refused {
        Err(StoreError::Unavailable(reason)) => assert!(reason.contains("2^53"), "{reason}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(read(&a, "big", 0, 10, LONG).await.top.offset, (1 << 53) - 1);
    assert!(a.is_up(), "a refused append does not break the link");
    a.publish(&room, Bytes::from_static(b"next")).unwrap();
    assert_eq!(envelope(&mut b_in).await, "next");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_meta_is_a_new_epoch_and_a_lost_stream_keeps_it() {
    let server = RedisServer::start();
    let (a, mut a_in) = start(&server.url(), 1, &[]);
    until_up(&mut a_in).await;

    for n in 1..=2 {
        let at = appended(&a, append("r", Message::text("x"), 10, LONG)).await;
        assert_eq!(at.map(|at| at.offset), Ok(n));
    }
    let old = read(&a, "r", 0, 10, LONG).await.top.epoch;

    // The meta lost (evicted, deleted): a new history, whose offsets start again at 1.
    assert_eq!(server.cli(&["DEL", "ws:history-meta:r"]), "1");
    let lost = read(&a, "r", 0, 10, LONG).await;
    assert_ne!(lost.top.epoch, old);
    assert_eq!(lost.top.offset, 0);
    assert!(
        lost.entries.is_empty(),
        "the old stream went with its epoch"
    );
    let new = lost.top.epoch;
    let at = appended(&a, append("r", Message::text("y"), 10, LONG)).await;
    assert_eq!(at, Ok(Position::new(1, new)));

    // An append alone sees the loss too (no read in between).
    assert_eq!(server.cli(&["DEL", "ws:history-meta:r"]), "1");
    let at = appended(&a, append("r", Message::text("z"), 10, LONG))
        .await
        .expect("recorded");
    assert_eq!(at.offset, 1);
    assert_ne!(at.epoch, new);
    let newer = at.epoch;
    assert_eq!(
        read(&a, "r", 0, 10, LONG).await.entries,
        [(1, Message::text("z"))]
    );

    // The stream alone lost: the same history, its entries gone, the offsets go on.
    assert_eq!(server.cli(&["DEL", "ws:history:r"]), "1");
    let emptied = read(&a, "r", 0, 10, LONG).await;
    assert_eq!(emptied.top, Position::new(1, newer));
    assert!(emptied.entries.is_empty());
    let at = appended(&a, append("r", Message::text("w"), 10, LONG)).await;
    assert_eq!(at, Ok(Position::new(2, newer)));
    assert_eq!(offsets(&read(&a, "r", 0, 10, LONG).await), [2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_flush_reconnects_reloads_and_offsets_stay_consecutive() {
    let server = RedisServer::start();
    let room = Topic::Room(Room::from("f"));
    let (a, mut a_in) = start(&server.url(), 1, &[]);
    let (_b, mut b_in) = start(&server.url(), 2, std::slice::from_ref(&room));
    until_up(&mut a_in).await;
    until_up(&mut b_in).await;
    let one = appended(&a, append("f", Message::text("1"), 10, LONG)).await;
    let epoch = one.expect("recorded").epoch;
    envelope(&mut b_in).await;

    assert_eq!(server.cli(&["SCRIPT", "FLUSH"]), "OK");
    // A read loads its script again by itself.
    assert_eq!(offsets(&read(&a, "f", 0, 10, LONG).await), [1]);
    // The append that meets NOSCRIPT did not run: answered Unavailable (not recorded, not
    // published), not Uncertain; the publish connection is made again and the scripts
    // loaded again.
    let flushed = appended(&a, append("f", Message::text("lost"), 10, LONG)).await;
    match flushed {
        Err(StoreError::Unavailable(reason)) => assert!(reason.contains("NOSCRIPT"), "{reason}"),
        other => panic!("expected NOSCRIPT → Unavailable, got {other:?}"),
    }
    until_down(&mut a_in).await;
    until_up(&mut a_in).await;
    for n in 2..=3 {
        let at = appended(&a, append("f", Message::text(n.to_string()), 10, LONG)).await;
        assert_eq!(at, Ok(Position::new(n, epoch)));
    }
    let all = read(&a, "f", 0, 10, LONG).await;
    assert_eq!(
        offsets(&all),
        [1, 2, 3],
        "consecutive: the flushed one took no offset"
    );
    assert_eq!(all.entries[1].1, Message::text("2"));
    // b got 2 then 3, nothing for the flushed one.
    for n in 2..=3_u64 {
        let got = envelope(&mut b_in).await;
        let at = Position::new(n, epoch);
        let sent = append("f", Message::text(n.to_string()), 10, LONG);
        assert_eq!(got, envelope_of(&sent, &at));
    }
    let stats = a.stats();
    assert_eq!((stats.published, stats.uncertain), (3, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_connection_without_answers_makes_the_append_uncertain() {
    let server = RedisServer::start();
    let proxy = Proxy::start(server.port()).await;
    let room = Topic::Room(Room::from("u"));
    let (a, mut a_in) = start(&proxy.url(), 1, &[]);
    let (_b, mut b_in) = start(&server.url(), 2, std::slice::from_ref(&room));
    until_up(&mut a_in).await;
    until_up(&mut b_in).await;

    // If a probe or a ping is in flight when the answers stop, the append queued behind it is
    // never sent (Unavailable): then again, on the next connection (bounded).
    let mut attempts = 0;
    let sent = loop {
        attempts += 1;
        assert!(attempts <= 5, "no append was in flight in 5 attempts");
        proxy.freeze_publishers();
        let sent = append("u", Message::text("maybe"), 10, LONG);
        match appended(&a, sent.clone()).await {
            Err(StoreError::Uncertain(_)) => break sent,
            Err(StoreError::Unavailable(reason)) => eprintln!("not sent, again: {reason}"),
            other => panic!("expected Uncertain, got {other:?}"),
        }
        until_down(&mut a_in).await;
        until_up(&mut a_in).await;
    };
    // Uncertain indeed: Redis ran the script, only its answer was lost.
    let got = envelope(&mut b_in).await;
    let top = read_direct(&server, "u");
    assert_eq!(top.offset, 1, "the unsent ones took no offset");
    assert_eq!(got, envelope_of(&sent, &top));
    until_down(&mut a_in).await;
    until_up(&mut a_in).await;
    let next = appended(&a, append("u", Message::text("sure"), 10, LONG)).await;
    assert_eq!(next, Ok(Position::new(2, top.epoch)));
    assert_eq!(a.stats().uncertain, attempts, "each attempt counted once");
}

/// A room's top position, read with `redis-cli`.
fn read_direct(server: &RedisServer, room: &str) -> Position {
    let key = format!("ws:history-meta:{room}");
    let offset = server.cli(&["HGET", &key, "o"]).parse().unwrap();
    let epoch = server.cli(&["HGET", &key, "e"]).parse().unwrap();
    Position::new(offset, epoch)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_older_than_the_ttl_are_not_read() {
    const TTL: Duration = Duration::from_millis(200);
    let server = RedisServer::start();
    let (a, mut a_in) = start(&server.url(), 1, &[]);
    until_up(&mut a_in).await;

    let first = Instant::now();
    appended(&a, append("t", Message::text("1"), 10, TTL))
        .await
        .unwrap();
    assert_eq!(offsets(&read(&a, "t", 0, 10, TTL).await), [1]);
    tokio::time::sleep_until((first + TTL / 2).into()).await;
    let second = Instant::now();
    appended(&a, append("t", Message::text("2"), 10, TTL))
        .await
        .unwrap();

    assert_eq!(offsets(&read(&a, "t", 0, 10, TTL).await), [1, 2]);

    // Polled on the real clock (Redis' TIME), 10 ms apart, bounded; `limit` 1 counts live
    // entries only: once the first expired, the second is the one read.
    let deadline = Instant::now() + WAIT;
    let mut seen = vec![vec![1]];
    loop {
        let now = read(&a, "t", 0, 1, TTL).await;
        assert_eq!(now.top.offset, 2, "the top outlives its entries");
        let live = offsets(&now);
        if seen.last() != Some(&live) {
            let expired = match live.as_slice() {
                [2] => first,
                [] => second,
                other => panic!("{other:?} after {seen:?}"),
            };
            assert!(
                expired.elapsed() >= TTL,
                "{live:?} after {:?}",
                expired.elapsed()
            );
            seen.push(live);
        }
        if seen.last().is_some_and(Vec::is_empty) {
            break;
        }
        assert!(Instant::now() < deadline, "{seen:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(seen, [vec![1], vec![2], vec![]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_redis_is_down_appends_are_refused_at_once_and_nothing_is_subscribed() {
    let mut server = RedisServer::start();
    let lobby = Topic::Room(Room::from("lobby"));
    let (a, mut a_in) = start(&server.url(), 1, std::slice::from_ref(&lobby));
    until_up(&mut a_in).await;
    assert!(a.subscribed(&lobby).await, "subscribed before it started");
    let late = Topic::Room(Room::from("late"));
    a.subscribe(&late);
    assert!(
        a.subscribed(&late).await,
        "subscribed once Redis confirmed it"
    );
    until_subscribers(&server, "ws:room:late", 1);

    server.kill();
    until_down(&mut a_in).await;
    let mut slowest = Duration::ZERO;
    for _ in 0..100 {
        let call = Instant::now();
        let refused = Store::append(&a, append("lobby", Message::text("x"), 10, LONG));
        assert!(matches!(refused, Err(Unavailable::Down)));
        slowest = slowest.max(call.elapsed());
    }
    assert!(slowest < Duration::from_millis(20), "{slowest:?}");
    assert_eq!(a.stats().refused, 100);
    // Waited for within the backplane's 1 s response timeout, in case the link comes back.
    let call = Instant::now();
    assert!(
        !a.subscribed(&lobby).await,
        "nothing is subscribed while down"
    );
    assert!(
        call.elapsed() < Duration::from_millis(1500),
        "{:?}",
        call.elapsed()
    );
    let unread = a.read(&Room::from("lobby"), 0, 10, LONG).await;
    assert!(
        matches!(unread, Err(StoreError::Unavailable(_))),
        "{unread:?}"
    );

    server.restart();
    until_up(&mut a_in).await;
    assert!(a.subscribed(&late).await, "subscribed again before Up");
    let at = appended(&a, append("lobby", Message::text("back"), 10, LONG)).await;
    assert_eq!(at.map(|at| at.offset), Ok(1), "Redis restarted empty");
}

// ---- Presence (ADR 0003, "Presence: each node owns its members, Redis holds a copy") ----

fn client(n: u32, number: u64) -> ClientId {
    format!("{n:08x}-{number}").parse().expect("NODE-NUMBER")
}

/// Returns once everything `redis` queued before the call has been carried out by Redis:
/// an append queued behind it is answered (one ordered queue, pipelines in order).
async fn flushed(redis: &Redis) {
    appended(redis, append("flushed", Message::text("."), 1, LONG))
        .await
        .expect("recorded");
}

/// `room`'s members, read through `redis`, sorted.
async fn members(redis: &Redis, room: &str) -> Vec<(ClientId, Option<User>)> {
    let read = tokio::time::timeout(WAIT, redis.members(&Room::from(room)))
        .await
        .expect("an answer within 10 s");
    let mut members = read.expect("a read while up");
    members.sort();
    members
}

/// A key's remaining time to live in ms, from `redis-cli PTTL`.
fn pttl(server: &RedisServer, key: &str) -> i64 {
    server.cli(&["PTTL", key]).parse().expect("a number")
}

/// Polls `redis-cli args` (10 ms steps, bounded) until it answers `expected`.
fn until_cli(server: &RedisServer, args: &[&str], expected: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let answer = server.cli(args);
        if answer == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{args:?}: {answer:?}, expected {expected:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_members_are_read_from_either_with_their_users_and_exit_removes() {
    let server = RedisServer::start();
    let (a, mut a_in) = start(&server.url(), 1, &[]);
    let (b, mut b_in) = start(&server.url(), 2, &[]);
    until_up(&mut a_in).await;
    until_up(&mut b_in).await;

    // A room whose name has a `:`, beside one whose name is its start.
    let room = Room::from("lobby:1");
    a.enter(&room, client(1, 1), Some(&User::from("ada")))
        .unwrap();
    a.enter(&room, client(1, 2), None).unwrap();
    b.enter(&room, client(2, 1), Some(&User::from(""))).unwrap();
    b.enter(&room, client(2, 7), Some(&User::from("é:x")))
        .unwrap();
    b.enter(&Room::from("lobby"), client(2, 3), Some(&User::from("bob")))
        .unwrap();
    flushed(&a).await;
    flushed(&b).await;
    assert!(
        members(&a, "lobby:1").await.is_empty(),
        "no node has said it is alive yet"
    );

    a.alive(node(1), LONG, &[]).unwrap();
    b.alive(node(2), LONG, &[]).unwrap();
    flushed(&a).await;
    flushed(&b).await;
    let everyone = vec![
        (client(1, 1), Some(User::from("ada"))),
        (client(1, 2), None),
        (client(2, 1), Some(User::from(""))),
        (client(2, 7), Some(User::from("é:x"))),
    ];
    assert_eq!(members(&a, "lobby:1").await, everyone);
    assert_eq!(members(&b, "lobby:1").await, everyone);
    assert_eq!(
        members(&a, "lobby").await,
        [(client(2, 3), Some(User::from("bob")))]
    );
    assert!(members(&b, "nobody").await.is_empty());

    // The keys as the ADR lays them out.
    let hash_a = "ws:presence:00000001:lobby:1";
    let hash_b = "ws:presence:00000002:lobby:1";
    let nodes = "ws:presence-nodes:lobby:1";
    assert_eq!(server.cli(&["HGET", hash_a, "1"]), "uada");
    assert_eq!(server.cli(&["HSTRLEN", hash_a, "2"]), "0", "no user");
    assert_eq!(server.cli(&["HGET", hash_b, "1"]), "u", "an empty key");
    let mut listed: Vec<String> = server
        .cli(&["SMEMBERS", nodes])
        .lines()
        .map(str::to_owned)
        .collect();
    listed.sort();
    assert_eq!(listed, ["00000001", "00000002"]);
    for key in [hash_a, hash_b, nodes] {
        let ttl = pttl(&server, key);
        assert!((590_000..=600_000).contains(&ttl), "{key}: {ttl}");
    }
    let ttl = pttl(&server, "ws:alive:00000002");
    assert!((590_000..=600_000).contains(&ttl), "alive: {ttl}");

    a.exit(&room, client(1, 2)).unwrap();
    b.exit(&room, client(2, 1)).unwrap();
    b.exit(&room, client(2, 7)).unwrap();
    flushed(&a).await;
    flushed(&b).await;
    assert_eq!(
        members(&b, "lobby:1").await,
        [(client(1, 1), Some(User::from("ada")))]
    );
    // b's hash went with its last member; that read removed b from the room's set (without
    // waiting for it: polled).
    assert_eq!(server.cli(&["EXISTS", hash_b]), "0");
    until_cli(&server, &["SMEMBERS", nodes], "00000001");

    // A new first member puts b back.
    b.enter(&room, client(2, 8), None).unwrap();
    flushed(&b).await;
    assert_eq!(
        members(&a, "lobby:1").await,
        [
            (client(1, 1), Some(User::from("ada"))),
            (client(2, 8), None)
        ]
    );
    for redis in [&a, &b] {
        let stats = redis.stats();
        assert_eq!((stats.uncertain, stats.refused), (0, 0));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lapsed_node_drops_out_until_its_next_alive_and_refresh_and_expiry_act_on_keys() {
    const TTL: Duration = Duration::from_millis(300);
    let server = RedisServer::start();
    let (a, mut a_in) = start(&server.url(), 1, &[]);
    let (b, mut b_in) = start(&server.url(), 2, &[]);
    until_up(&mut a_in).await;
    until_up(&mut b_in).await;

    let room = Room::from("r");
    let other = Room::from("other");
    a.enter(&room, client(1, 1), Some(&User::from("ada")))
        .unwrap();
    a.enter(&other, client(1, 2), None).unwrap();
    b.enter(&room, client(2, 1), None).unwrap();
    a.alive(node(1), LONG, &[]).unwrap();
    let sent = Instant::now();
    b.alive(node(2), TTL, &[]).unwrap();
    flushed(&a).await;
    flushed(&b).await;
    let both = vec![
        (client(1, 1), Some(User::from("ada"))),
        (client(2, 1), None),
    ];
    let only_a = vec![(client(1, 1), Some(User::from("ada")))];
    let first = members(&a, "r").await;
    // b's alive key was set after `sent`: before `sent + TTL`, it is still there.
    if sent.elapsed() < TTL {
        assert_eq!(first, both);
    }

    // Polled on the real clock (Redis' expiry), 10 ms apart, bounded.
    let deadline = Instant::now() + WAIT;
    loop {
        let now = members(&a, "r").await;
        if now == only_a {
            break;
        }
        assert_eq!(now, both);
        assert!(Instant::now() < deadline, "b never lapsed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(sent.elapsed() >= TTL, "{:?}", sent.elapsed());
    eprintln!(
        "b's alive (ttl {TTL:?}) lapsed in reads after {:?}",
        sent.elapsed()
    );
    // Its members are kept (for its next heartbeat), only not counted.
    assert_eq!(server.cli(&["HLEN", "ws:presence:00000002:r"]), "1");
    b.alive(node(2), LONG, &[]).unwrap();
    flushed(&b).await;
    assert_eq!(members(&a, "r").await, both);

    // A refresh renews the named rooms' keys, and only theirs.
    let hash = "ws:presence:00000001:r";
    let nodes = "ws:presence-nodes:r";
    let other_hash = "ws:presence:00000001:other";
    for key in [hash, nodes, other_hash] {
        assert_eq!(server.cli(&["PEXPIRE", key, "60000"]), "1");
    }
    a.alive(node(1), LONG, std::slice::from_ref(&room)).unwrap();
    flushed(&a).await;
    for key in [hash, nodes] {
        let ttl = pttl(&server, key);
        assert!((590_000..=600_000).contains(&ttl), "{key}: {ttl}");
    }
    let ttl = pttl(&server, other_hash);
    assert!((0..=60_000).contains(&ttl), "not refreshed: {ttl}");

    // b's hash expires, as it would 10 minutes after b's last refresh (shortened here):
    // b is alive but has no members there, and a read removes it from the room's set.
    let hash_b = "ws:presence:00000002:r";
    assert_eq!(server.cli(&["PEXPIRE", hash_b, "20"]), "1");
    until_cli(&server, &["EXISTS", hash_b], "0");
    assert_eq!(members(&b, "r").await, only_a);
    until_cli(&server, &["SMEMBERS", nodes], "00000001");
    assert_eq!(members(&b, "r").await, only_a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_writes_queue_behind_appends_a_refused_one_keeps_the_link_and_down_refuses() {
    let mut server = RedisServer::start();
    let topic = Topic::Room(Room::from("o"));
    let (a, mut a_in) = start(&server.url(), 1, &[]);
    let (b, mut b_in) = start(&server.url(), 2, std::slice::from_ref(&topic));
    until_up(&mut a_in).await;
    until_up(&mut b_in).await;
    assert!(b.subscribed(&topic).await);

    // Queued right behind an append, before its answer: one ordered queue, both land.
    let sent = append("o", Message::text("first"), 10, LONG);
    let answer = Store::append(&a, sent.clone()).expect("taken while up");
    a.enter(&Room::from("o"), client(1, 1), Some(&User::from("ada")))
        .unwrap();
    a.alive(node(1), LONG, &[]).unwrap();
    let at = tokio::time::timeout(WAIT, answer)
        .await
        .expect("an answer within 10 s")
        .expect("recorded");
    assert_eq!(at.offset, 1);
    assert_eq!(envelope(&mut b_in).await, envelope_of(&sent, &at));
    flushed(&a).await;
    assert_eq!(
        members(&b, "o").await,
        [(client(1, 1), Some(User::from("ada")))]
    );

    // A presence write Redis refuses (the hash's key holds a string) is counted uncertain;
    // the link stays up, and what follows goes through.
    assert_eq!(server.cli(&["SET", "ws:presence:00000001:bad", "x"]), "OK");
    a.enter(&Room::from("bad"), client(1, 2), None).unwrap();
    flushed(&a).await;
    assert!(a.is_up());
    a.publish(&topic, Bytes::from_static(b"after")).unwrap();
    assert_eq!(envelope(&mut b_in).await, "after");
    let stats = a.stats();
    assert_eq!((stats.uncertain, stats.refused), (1, 0));
    // Reading it is refused by Redis (WRONGTYPE): unavailable, not an empty room.
    let refused = a.members(&Room::from("bad")).await;
    assert!(
        matches!(refused, Err(StoreError::Unavailable(_))),
        "{refused:?}"
    );
    // Something in a room's set that is not a node: invalid.
    assert_eq!(server.cli(&["SADD", "ws:presence-nodes:o", "nobody"]), "1");
    let invalid = a.members(&Room::from("o")).await;
    assert!(
        matches!(invalid, Err(StoreError::Invalid(_))),
        "{invalid:?}"
    );

    // Redis down: refused at once, never waiting on Redis; reads unavailable.
    server.kill();
    until_down(&mut a_in).await;
    let room = Room::from("o");
    let mut slowest = Duration::ZERO;
    for _ in 0..100 {
        let call = Instant::now();
        assert_eq!(a.enter(&room, client(1, 3), None), Err(Unavailable::Down));
        assert_eq!(a.exit(&room, client(1, 1)), Err(Unavailable::Down));
        assert_eq!(
            a.alive(node(1), LONG, std::slice::from_ref(&room)),
            Err(Unavailable::Down)
        );
        slowest = slowest.max(call.elapsed());
    }
    assert!(slowest < Duration::from_millis(20), "{slowest:?}");
    assert_eq!(a.stats().refused, 300);
    let call = Instant::now();
    let unread = a.members(&room).await;
    assert!(
        matches!(unread, Err(StoreError::Unavailable(_))),
        "{unread:?}"
    );
    assert!(
        call.elapsed() < Duration::from_millis(20),
        "{:?}",
        call.elapsed()
    );
}

/// A TCP proxy in front of Redis that can stop forwarding Redis → node bytes on the
/// subscription connections, or on the publish connections, it has seen so far, keeping their
/// sockets open.
struct Proxy {
    port: u16,
    subscriptions: Arc<Mutex<Vec<Arc<AtomicBool>>>>,
    publishers: Arc<Mutex<Vec<Arc<AtomicBool>>>>,
}

impl Proxy {
    async fn start(redis_port: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let subscriptions = Arc::new(Mutex::new(Vec::new()));
        let publishers = Arc::new(Mutex::new(Vec::new()));
        let registry = Arc::clone(&subscriptions);
        let publishing = Arc::clone(&publishers);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(upstream) = TcpStream::connect(("127.0.0.1", redis_port)).await else {
                    continue;
                };
                let frozen = Arc::new(AtomicBool::new(false));
                let (mut client_read, mut client_write) = client.into_split();
                let (mut upstream_read, mut upstream_write) = upstream.into_split();
                let registry = Arc::clone(&registry);
                let publishing = Arc::clone(&publishing);
                let flag = Arc::clone(&frozen);
                tokio::spawn(async move {
                    let mut buffer = vec![0; 16 * 1024];
                    let mut registered = false;
                    while let Ok(n @ 1..) = client_read.read(&mut buffer).await {
                        // The publish connection loads the scripts first thing.
                        let sent = &buffer[..n];
                        if !registered && sent.windows(9).any(|w| w == b"SUBSCRIBE") {
                            registry.lock().unwrap().push(Arc::clone(&flag));
                            registered = true;
                        } else if !registered && sent.windows(6).any(|w| w == b"SCRIPT") {
                            publishing.lock().unwrap().push(Arc::clone(&flag));
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
            publishers,
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

    /// Redis' answers on the publish connections seen so far stop coming; what they send
    /// still reaches Redis.
    fn freeze_publishers(&self) {
        let publishers = self.publishers.lock().unwrap();
        assert!(!publishers.is_empty(), "a publish connection went through");
        for frozen in publishers.iter() {
            frozen.store(true, Ordering::Relaxed);
        }
    }
}
