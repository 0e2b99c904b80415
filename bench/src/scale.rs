//! Connection scale in one process (`ws-bench scale`): a storm of connectors opening 1,000,
//! 5,000 and 19,000 connections to a fresh server, then a broadcast from one of them to all the
//! others, for `examples/echo --broadcast`, raw `warp::ws`'s chat pattern and a TCP fan-out
//! floor ([`serve_tcp_fanout`], `ws-bench serve tcp-fanout`).
//!
//! - Storm: [`CONNECTORS`] connectors at a time, each connect → upgrade → `101` and
//!   `Sec-WebSocket-Accept` checked, and the connection kept open (the TCP floor: connect, then
//!   the 1-byte greeting its server writes after the accept).
//!   Handshakes per second over the storm, the time of each handshake (connect start → `101`
//!   checked), the server's CPU per handshake over the storm and its `VmRSS` growth per
//!   connection after it.
//! - Broadcast: the last connection publishes 64 B binary messages (sequence number and send
//!   time inside, as [`crate::fanout`] makes them); every other connection checks every byte of
//!   every message. A message is published once the previous one has reached every subscriber,
//!   [`GAP`] later, so that each latency is one broadcast alone, not queueing behind the
//!   previous one. Latency publish → last receiver and publish → median receiver; the server's
//!   CPU from the first publish to the last delivery per delivery.
//!
//! Every run gets a fresh server process; the servers are interleaved within a round.

use std::fmt::Write as _;
use std::io;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::client::{Conn, Target, client_frame, connect, open, upgrade};
use crate::fanout::{Shared, check, check_running, invalid, payload, quantile, thousands};
use crate::procs::{Server, cpu_ticks};
use crate::report::{cell, micros, percent, ratio, ratios, spread};
use crate::servers::Kind;
use crate::{Options, ticks_to_us, with_server};

/// The markers of the generated block.
pub(crate) const SCALE_BEGIN: &str =
    "<!-- ws-bench:scale:begin (generated, do not edit by hand) -->";
pub(crate) const SCALE_END: &str = "<!-- ws-bench:scale:end -->";

/// The servers of `ws-bench scale`, in table order.
pub(crate) const KINDS: [Kind; 3] = [Kind::OursBroadcast, Kind::WarpChat, Kind::TcpFanout];

/// Connections per run (the publisher is one of them), in table order. The largest stays under
/// the open-file hard limit of 20,000 that the client and the server each have here.
pub(crate) const CONNECTIONS: [usize; 3] = [1_000, 5_000, 19_000];

/// Connectors at a time in the storm: as many as the listen backlog the peers get (128: Rust's
/// `std::net::TcpListener::bind`, which tokio's calls; ours listens with 1,024 since this
/// storm found the limit, `Server::backlog`). With 256, a server whose accept loop fell behind
/// had its accept queue overflow: the kernel dropped SYNs and the client resent them after its
/// 1 s timeout, so p99 measured that timer (about 1,030 ms for every server) instead of the
/// server.
const CONNECTORS: usize = 128;

/// Size of every broadcast message, bytes.
const SIZE: usize = 64;

/// Deliveries (messages × subscribers) a broadcast run aims at: at a few µs of server CPU per
/// delivery, at least 0.5 s of it, 50 of the 10 ms ticks of `/proc/PID/stat` (201 measured
/// messages at 1,000 connections, 41 at 5,000, the minimum of 20 at 19,000).
const DELIVERIES: u64 = 200_000;

/// The fewest measured messages per broadcast run.
const MIN_MESSAGES: u64 = 20;

/// Messages at the start of a broadcast run, checked but left out of the latency figures.
const WARMUP_MESSAGES: u64 = 5;

/// The byte the TCP fan-out floor writes on each connection it has accepted: the floor's
/// answer to a `101`, so that its storm also waits for the server (connect alone would only
/// wait for the kernel, and overflow the listen backlog).
const GREETING: u8 = b'+';

/// Pause between the last delivery of a message and the publish of the next.
const GAP: Duration = Duration::from_millis(10);

/// Bound on the wait for one message to reach every subscriber.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// One storm of connectors.
#[derive(Clone, Copy, Debug)]
struct StormSample {
    round: usize,
    kind: Kind,
    conns: usize,
    /// Handshakes per second over the storm.
    rate: f64,
    /// Handshake time (connect start → `101` checked), ms.
    p50_ms: f64,
    p99_ms: f64,
    /// Server CPU per handshake over the storm, µs.
    server_us: f64,
    /// Server `VmRSS` growth per connection after the storm, KiB.
    kib: f64,
    /// The host's `ListenOverflows` counter over the storm: SYNs dropped because an accept
    /// queue was full (any listener on the host, so another process can add to it).
    overflows: u64,
    server_busy: f64,
    client_busy: f64,
}

/// One broadcast to every connection.
#[derive(Clone, Copy, Debug)]
struct CastSample {
    round: usize,
    kind: Kind,
    conns: usize,
    /// Measured messages (after the warm-up).
    messages: u64,
    /// Publish → last receiver, ms.
    last_p50_ms: f64,
    last_p99_ms: f64,
    /// Publish → median receiver, ms.
    median_p50_ms: f64,
    /// Server CPU per delivery, µs.
    server_us: f64,
    /// Client CPU per delivery, µs.
    client_us: f64,
    server_busy: f64,
    client_busy: f64,
}

#[derive(Default)]
struct Results {
    storm: Vec<StormSample>,
    cast: Vec<CastSample>,
    /// The servers run, in table order.
    kinds: Vec<Kind>,
    failures: Vec<String>,
    elapsed: Duration,
}

/// `ws-bench scale`: every round, every connection count, every server (rotated each round).
pub(crate) async fn main(options: &Options) -> ExitCode {
    let largest = CONNECTIONS.iter().copied().max().unwrap_or(0);
    let needed = largest as u64 + 64;
    if options.nofile < needed {
        eprintln!(
            "ws-bench: open-file limit {} < {needed} for {} connections in one load generator",
            options.nofile,
            thousands(largest)
        );
        return ExitCode::FAILURE;
    }
    let started = Instant::now();
    let mut results = Results {
        kinds: KINDS
            .into_iter()
            .filter(|&kind| {
                options.kinds.contains(&kind)
                    || (kind == Kind::OursBroadcast && options.kinds.contains(&Kind::Ours))
            })
            .collect(),
        ..Results::default()
    };
    if results.kinds.is_empty() {
        eprintln!(
            "ws-bench: `scale` runs ours-broadcast, warp-chat and tcp-fanout; --only named none"
        );
        return ExitCode::FAILURE;
    }
    for round in 0..options.rounds {
        let mut kinds = results.kinds.clone();
        let shift = round % kinds.len();
        kinds.rotate_left(shift);
        for conns in CONNECTIONS {
            for &kind in &kinds {
                let outcome = with_server(options, kind, async |server| {
                    run(options, server, conns).await
                })
                .await;
                match outcome {
                    Ok((mut storm, mut cast)) => {
                        eprintln!(
                            "[{:>4.0}s] round {} {:>6} conns {:<15} storm {:>6.0}/s p99 {:>6.1} ms ({} SYNs dropped) {:>5.1} µs/handshake {:>5.1} KiB/conn; broadcast last p50 {:>6.1} ms p99 {:>6.1} ms median p50 {:>6.1} ms {:>5.2} µs/delivery",
                            started.elapsed().as_secs_f64(),
                            round + 1,
                            conns,
                            kind.name(),
                            storm.rate,
                            storm.p99_ms,
                            storm.overflows,
                            storm.server_us,
                            storm.kib,
                            cast.last_p50_ms,
                            cast.last_p99_ms,
                            cast.median_p50_ms,
                            cast.server_us,
                        );
                        (storm.round, storm.kind, cast.round, cast.kind) =
                            (round, kind, round, kind);
                        results.storm.push(storm);
                        results.cast.push(cast);
                    }
                    Err(err) => {
                        let line = format!(
                            "round {} {} connections {}: {err}",
                            round + 1,
                            thousands(conns),
                            kind.name()
                        );
                        eprintln!("FAILED {line}");
                        results.failures.push(line);
                    }
                }
            }
        }
    }
    results.elapsed = started.elapsed();
    let markdown = render(options, &results);
    crate::report::publish(
        options.markdown.as_deref(),
        &markdown,
        results.failures.is_empty(),
    )
}

/// One run against a fresh server: the storm of `conns` connections, then the broadcast over
/// them. Every connection is closed when it returns.
async fn run(
    options: &Options,
    server: &Server,
    conns: usize,
) -> io::Result<(StormSample, CastSample)> {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let base = server.rss_kib()?;
    let (open, storm) = storm(options, server, conns).await?;
    // Let every server finish registering the last connections before reading its memory.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let grown = server.rss_kib()?.saturating_sub(base);
    let storm = StormSample {
        kib: grown as f64 / conns as f64,
        ..storm
    };
    let cast = broadcast(options, server, open).await?;
    Ok((storm, cast))
}

/// Opens `count` connections with [`CONNECTORS`] connectors at a time and keeps them open.
async fn storm(
    options: &Options,
    server: &Server,
    count: usize,
) -> io::Result<(Vec<Conn>, StormSample)> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    let overflows = listen_overflows()?;
    let (t0, s0, c0) = (Instant::now(), server.cpu_ticks()?, cpu_ticks("self")?);
    for _ in 0..CONNECTORS {
        let (next, target) = (next.clone(), server.target.clone());
        tasks.spawn(async move {
            let (mut conns, mut times) = (Vec::new(), Vec::new());
            while next.fetch_add(1, Ordering::Relaxed) < count {
                let start = Instant::now();
                conns.push(handshake(&target).await?);
                times.push(start.elapsed().as_secs_f64() * 1e3);
            }
            Ok::<_, io::Error>((conns, times))
        });
    }
    let (mut conns, mut times) = (Vec::with_capacity(count), Vec::with_capacity(count));
    while let Some(done) = tasks.join_next().await {
        let (mine, took) = done.map_err(io::Error::other)??;
        conns.extend(mine);
        times.extend(took);
    }
    let (t1, s1, c1) = (Instant::now(), server.cpu_ticks()?, cpu_ticks("self")?);
    let overflows = listen_overflows()?.saturating_sub(overflows);
    times.sort_by(f64::total_cmp);
    let elapsed = (t1 - t0).as_secs_f64();
    let (server_us, client_us) = (ticks_to_us(options, s1 - s0), ticks_to_us(options, c1 - c0));
    let sample = StormSample {
        round: 0,
        kind: Kind::TcpFanout,
        conns: count,
        rate: count as f64 / elapsed,
        p50_ms: quantile(&times, 0.5),
        p99_ms: quantile(&times, 0.99),
        server_us: server_us / count as f64,
        kib: 0.0,
        overflows,
        server_busy: server_us / 1e6 / elapsed,
        client_busy: client_us / 1e6 / elapsed,
    };
    Ok((conns, sample))
}

/// The host's `TcpExt: ListenOverflows` from `/proc/net/netstat`.
fn listen_overflows() -> io::Result<u64> {
    let netstat = std::fs::read_to_string("/proc/net/netstat")?;
    let mut lines = netstat.lines().filter(|l| l.starts_with("TcpExt:"));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        return Err(io::Error::other("no TcpExt in /proc/net/netstat"));
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(name, _)| *name == "ListenOverflows")
        .and_then(|(_, value)| value.parse().ok())
        .ok_or_else(|| io::Error::other("no ListenOverflows in /proc/net/netstat"))
}

/// A WebSocket connection upgraded and checked, or for the TCP floor a connection whose
/// greeting has arrived.
async fn handshake(target: &Target) -> io::Result<Conn> {
    if target.websocket {
        return connect(target).await;
    }
    let mut stream = open(target.addr, None).await?;
    let mut greeting = [0u8];
    stream.read_exact(&mut greeting).await?;
    if greeting != [GREETING] {
        return Err(invalid(format!("greeting {greeting:?}")));
    }
    upgrade(stream, target, None).await
}

/// The broadcast over `conns` (the last one publishes), each message once the previous one has
/// reached every subscriber, [`GAP`] later.
async fn broadcast(
    options: &Options,
    server: &Server,
    mut conns: Vec<Conn>,
) -> io::Result<CastSample> {
    let total = conns.len();
    let mut publisher = conns
        .pop()
        .ok_or_else(|| io::Error::other("no connection"))?;
    let subscribers = conns.len();
    let websocket = server.target.websocket;
    let measured = DELIVERIES
        .div_ceil(subscribers.max(1) as u64)
        .max(MIN_MESSAGES);
    let messages = measured + WARMUP_MESSAGES;
    let count = usize::try_from(messages).map_err(io::Error::other)?;
    let shared = Arc::new(Shared::new(Instant::now(), count));
    // Receive time of message k at subscriber i: `received[i * count + k]`, ns since the epoch.
    let received: Arc<Vec<AtomicU64>> = Arc::new(
        (0..subscribers * count)
            .map(|_| AtomicU64::new(0))
            .collect(),
    );
    let mut tasks = subscribe(conns, &shared, &received, websocket);
    // Let every server register every connection before the first publish.
    tokio::time::sleep(Duration::from_millis(500)).await;
    check_running(&mut tasks)?;

    let (t0, s0, c0) = (Instant::now(), server.cpu_ticks()?, cpu_ticks("self")?);
    for seq in 0..messages {
        let index = usize::try_from(seq).map_err(io::Error::other)?;
        if let Some(previous) = index.checked_sub(1) {
            delivered(&shared, previous, subscribers, &mut tasks).await?;
            tokio::time::sleep(GAP).await;
        }
        let now = shared.now();
        shared.sent[index].store(now, Ordering::Relaxed);
        let body = payload(seq, now, SIZE);
        if websocket {
            publisher.write_all(&client_frame(0x2, &body)).await?;
        } else {
            publisher.write_all(&body).await?;
        }
    }
    let wait = crate::fanout::all_delivered(&mut tasks, messages, DELIVERY_TIMEOUT).await;
    let (t1, s1, c1) = (Instant::now(), server.cpu_ticks()?, cpu_ticks("self")?);
    wait.map_err(|_| io::Error::other("the last message did not reach every subscriber in 30 s"))??;
    drop(publisher);

    let skip = usize::try_from(WARMUP_MESSAGES).unwrap_or(0);
    let mut last = Vec::with_capacity(count - skip);
    let mut median = Vec::with_capacity(count - skip);
    let mut times = Vec::with_capacity(subscribers);
    for k in skip..count {
        let sent = shared.sent[k].load(Ordering::Relaxed);
        let ms = |at: u64| at.saturating_sub(sent) as f64 / 1e6;
        last.push(ms(shared.last[k].load(Ordering::Relaxed)));
        times.clear();
        times.extend((0..subscribers).map(|i| received[i * count + k].load(Ordering::Relaxed)));
        let mid = times.len() / 2;
        median.push(ms(*times.select_nth_unstable(mid).1));
    }
    last.sort_by(f64::total_cmp);
    median.sort_by(f64::total_cmp);
    let elapsed = (t1 - t0).as_secs_f64();
    let deliveries = (messages * subscribers as u64) as f64;
    let (server_us, client_us) = (ticks_to_us(options, s1 - s0), ticks_to_us(options, c1 - c0));
    Ok(CastSample {
        round: 0,
        kind: Kind::TcpFanout,
        conns: total,
        messages: measured,
        last_p50_ms: quantile(&last, 0.5),
        last_p99_ms: quantile(&last, 0.99),
        median_p50_ms: quantile(&median, 0.5),
        server_us: server_us / deliveries,
        client_us: client_us / deliveries,
        server_busy: server_us / 1e6 / elapsed,
        client_busy: client_us / 1e6 / elapsed,
    })
}

/// One reader per subscriber, each checking every one of the `shared` messages (all of
/// [`SIZE`] bytes), in order, and recording when it got each in `received` (subscriber `i`'s
/// time of message `k` at `i × messages + k`); a task ends with the count it read.
fn subscribe(
    conns: Vec<Conn>,
    shared: &Arc<Shared>,
    received: &Arc<Vec<AtomicU64>>,
    websocket: bool,
) -> JoinSet<io::Result<u64>> {
    let count = shared.sent.len();
    let messages = u64::try_from(count).unwrap_or(u64::MAX);
    let mut tasks = JoinSet::new();
    for (i, conn) in conns.into_iter().enumerate() {
        let (shared, received) = (shared.clone(), received.clone());
        tasks.spawn(async move {
            let mut expected = 0;
            let on_message = |msg: &[u8]| {
                check(&shared, expected, SIZE, msg)?;
                let k = usize::try_from(expected).unwrap_or(usize::MAX);
                received[i * count + k].store(shared.now(), Ordering::Relaxed);
                expected += 1;
                Ok(())
            };
            if websocket {
                let mut conn = conn;
                conn.read_messages(messages, on_message).await
            } else {
                read_raw(conn, messages, on_message).await
            }
        });
    }
    tasks
}

/// Waits (polling every millisecond, at most [`DELIVERY_TIMEOUT`]) until message `index` has
/// reached all `subscribers`; fails if a subscriber stops first.
async fn delivered(
    shared: &Shared,
    index: usize,
    subscribers: usize,
    tasks: &mut JoinSet<io::Result<u64>>,
) -> io::Result<()> {
    let deadline = Instant::now() + DELIVERY_TIMEOUT;
    while (shared.got[index].load(Ordering::Relaxed) as usize) < subscribers {
        check_running(tasks)?;
        if Instant::now() > deadline {
            return Err(io::Error::other(format!(
                "message {index} did not reach every subscriber in 30 s"
            )));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}

/// Reads `count` messages of [`SIZE`] bytes from a plain TCP connection (no framing: every
/// message has the same size, so the stream is cut every [`SIZE`] bytes), giving each to
/// `on_message`. Returns the count read.
async fn read_raw(
    conn: Conn,
    count: u64,
    mut on_message: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<u64> {
    let (mut stream, mut buf) = conn.into_parts();
    let mut received = 0;
    loop {
        let whole = buf.len() / SIZE * SIZE;
        for msg in buf[..whole].chunks_exact(SIZE) {
            if received == count {
                return Err(invalid("more bytes than the messages sent"));
            }
            on_message(msg)?;
            received += 1;
        }
        buf.drain(..whole);
        if received == count {
            return Ok(received);
        }
        buf.reserve(4096);
        if stream.read_buf(&mut buf).await? == 0 {
            return Err(invalid("server closed the connection"));
        }
    }
}

/// What the relay task of [`serve_tcp_fanout`] hears about.
enum Event {
    /// A new connection: its id and its write half.
    Join(u64, OwnedWriteHalf),
    /// Bytes read from connection `id`.
    Data(u64, Vec<u8>),
    /// Connection `id` closed (or failed).
    Leave(u64),
}

/// The TCP fan-out floor (`ws-bench serve tcp-fanout`): every connection is a subscriber, and
/// whatever is read from one is written, as read, to every other one by a single relay task:
/// one `write` per receiver, no framing, no queue per connection. `TCP_NODELAY` on. Each
/// connection's task first writes [`GREETING`], then registers the connection with the relay.
pub(crate) async fn serve_tcp_fanout() -> io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    crate::servers::announce(Kind::TcpFanout, listener.local_addr()?, "");
    let (events, inbox) = mpsc::unbounded_channel();
    tokio::spawn(relay(inbox));
    let mut next_id = 0;
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                next_id += 1;
                let (events, id) = (events.clone(), next_id);
                tokio::spawn(async move {
                    let mut stream = stream;
                    if stream.write_all(&[GREETING]).await.is_err() {
                        return;
                    }
                    let (mut read, write) = stream.into_split();
                    let _ = events.send(Event::Join(id, write));
                    // The buffer comes with the first byte: idle subscribers hold none.
                    if read.readable().await.is_ok() {
                        let mut buf = vec![0u8; 64 * 1024];
                        while let Ok(n @ 1..) = read.read(&mut buf).await {
                            let _ = events.send(Event::Data(id, buf[..n].to_vec()));
                        }
                    }
                    let _ = events.send(Event::Leave(id));
                });
            }
            // Out of descriptors: back off instead of spinning.
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// The relay of [`serve_tcp_fanout`]: writes each read to every other connection. A write that
/// the socket does not take at once (never with 64 B to an idle reader) is finished before the
/// next, holding up the rest: a floor, not a server.
async fn relay(mut inbox: mpsc::UnboundedReceiver<Event>) {
    let mut conns: Vec<(u64, OwnedWriteHalf)> = Vec::new();
    while let Some(event) = inbox.recv().await {
        match event {
            Event::Join(id, write) => conns.push((id, write)),
            Event::Leave(id) => conns.retain(|(other, _)| *other != id),
            Event::Data(from, bytes) => {
                let mut failed = Vec::new();
                for (id, write) in &mut conns {
                    if *id == from {
                        continue;
                    }
                    let done = match write.try_write(&bytes) {
                        Ok(n) if n == bytes.len() => Ok(()),
                        Ok(n) => write.write_all(&bytes[n..]).await,
                        Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                            write.write_all(&bytes).await
                        }
                        Err(err) => Err(err),
                    };
                    if done.is_err() {
                        failed.push(*id);
                    }
                }
                conns.retain(|(id, _)| !failed.contains(id));
            }
        }
    }
}

/// The generated block.
fn render(options: &Options, results: &Results) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{SCALE_BEGIN}");
    crate::report::measured_line(
        &mut out,
        options,
        results.elapsed,
        "connection counts in turn, servers interleaved in a rotated order each round",
    );
    crate::report::ours_and_machine(&mut out, options);
    let _ = writeln!(
        out,
        "Cells are `median (min–max)` over the rounds; ratios are taken within a round (same \
         connection count), then summarised. Server CPU is user + system time of the whole \
         server process from `/proc/PID/stat` (10 ms ticks). Open-file limit of the client and \
         the servers: {}.\n",
        thousands(usize::try_from(options.nofile).unwrap_or(0))
    );
    render_storm(&mut out, options, results);
    render_cast(&mut out, options, results);
    crate::report::failed_runs(&mut out, &results.failures);
    let _ = writeln!(out, "{SCALE_END}");
    out
}

/// The label of a server in these tables.
fn label(kind: Kind) -> &'static str {
    match kind {
        Kind::TcpFanout => "TCP fan-out (floor; storm: connect + 1-byte greeting)",
        other => other.label(),
    }
}

fn render_storm(out: &mut String, options: &Options, results: &Results) {
    let rounds = options.rounds;
    let _ = writeln!(
        out,
        "### A storm of connectors\n\n\
         Each run starts a fresh server and opens N connections, {CONNECTORS} connectors at a \
         time, as fast as the client goes: connect (source addresses spread over \
         127.0.0.2–201) → upgrade → `101` and `Sec-WebSocket-Accept` checked, and the \
         connection stays open (the TCP floor: connect, then a 1-byte greeting that the \
         connection's task writes after the accept, before it registers the socket with the \
         relay). Handshakes/s = N / the storm's duration; handshake time = \
         connect start → `101` checked, so with {CONNECTORS} in flight it is mostly waiting in \
         line. Server CPU per handshake = server CPU over the storm / N; memory = growth of the \
         server's `VmRSS` from before the storm to 0.5 s after it, / N (kernel socket buffers \
         are not in it). {CONNECTORS} connectors because the peers listen with Rust's default \
         backlog of {CONNECTORS} (ours with 1,024): with more, a server whose accept loop falls \
         behind has SYNs dropped and the client resends them after 1 s; SYNs dropped counts \
         the host's `ListenOverflows` (`/proc/net/netstat`) over the storm, which should be \
         0.\n"
    );
    let _ = writeln!(
        out,
        "| connections | server | handshakes/s | handshake p50 (ms) | handshake p99 (ms) | server CPU µs/handshake | × warp chat (CPU) | × TCP floor (CPU) | server KiB/connection | × warp chat (memory) | SYNs dropped | server core | client core |\n\
         | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    let st = &results.storm;
    for conns in CONNECTIONS {
        for &kind in &results.kinds {
            let mine: Vec<&StormSample> = st
                .iter()
                .filter(|s| s.kind == kind && s.conns == conns)
                .collect();
            if mine.is_empty() {
                continue;
            }
            let col = |f: fn(&StormSample) -> f64, fmt: fn(f64) -> String| {
                cell(spread(mine.iter().map(|s| f(s))), fmt, rounds)
            };
            let vs = |base: Kind, value: fn(&StormSample) -> f64| {
                let r = ratios(
                    st,
                    |s| s.kind == kind && s.conns == conns,
                    |s, b| b.kind == base && b.conns == conns && b.round == s.round,
                    value,
                );
                cell(spread(r), ratio, rounds)
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                thousands(conns),
                label(kind),
                col(|s| s.rate, crate::report::rate),
                col(|s| s.p50_ms, micros),
                col(|s| s.p99_ms, micros),
                col(|s| s.server_us, micros),
                vs(Kind::WarpChat, |s| s.server_us),
                vs(Kind::TcpFanout, |s| s.server_us),
                col(|s| s.kib, kib),
                vs(Kind::WarpChat, |s| s.kib),
                mine.iter()
                    .map(|s| s.overflows.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                cell(spread(mine.iter().map(|s| s.server_busy)), percent, 1),
                cell(spread(mine.iter().map(|s| s.client_busy)), percent, 1),
            );
        }
    }
    out.push('\n');
}

fn kib(x: f64) -> String {
    format!("{x:.1}")
}

fn render_cast(out: &mut String, options: &Options, results: &Results) {
    let rounds = options.rounds;
    let _ = writeln!(
        out,
        "### A broadcast to every connection\n\n\
         Over the same N connections, after 0.5 s for the server to register them all: the \
         last one publishes {SIZE} B binary messages, N − 1 subscribers receive each (the TCP \
         floor: the same {SIZE} bytes, no framing; a subscriber cuts the stream every {SIZE} \
         bytes). Each payload carries its sequence number and send time; every subscriber \
         checks the length, the order, the send time and every other byte. A message is \
         published {} ms after the previous one reached its last subscriber, so each latency is \
         one broadcast alone, not queueing behind the one before; a run publishes {} warm-up \
         messages, left out of the latency figures, then max({MIN_MESSAGES}, ⌈{} / \
         subscribers⌉) measured ones (the column `messages`), so that the 10 ms CPU ticks \
         resolve a fraction of a µs per delivery at every N. Latency: publish (just before the \
         publisher's write) → the last subscriber's check, and → the median subscriber's check \
         (over subscribers, per message); all subscribers are read by one single-threaded \
         client core, so its serial work (reading N sockets) is in both, as it is in the TCP \
         floor's row. Below 100 measured messages (here from 5,000 connections up), p99 is the \
         slowest of them. \
         Server CPU per delivery = server CPU from the first publish to the last delivery / \
         (messages × subscribers), warm-up included; client core is the client's share of its \
         core over that window (µs per delivery in brackets).\n",
        GAP.as_millis(),
        WARMUP_MESSAGES,
        thousands(usize::try_from(DELIVERIES).unwrap_or(0)),
    );
    let _ = writeln!(
        out,
        "| connections | server | messages | → last p50 (ms) | → last p99 (ms) | → median p50 (ms) | server CPU µs/delivery | × warp chat (CPU) | × TCP floor (CPU) | × warp chat (p99) | server core | client core |\n\
         | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    let ca = &results.cast;
    for conns in CONNECTIONS {
        for &kind in &results.kinds {
            let mine: Vec<&CastSample> = ca
                .iter()
                .filter(|s| s.kind == kind && s.conns == conns)
                .collect();
            if mine.is_empty() {
                continue;
            }
            let col = |f: fn(&CastSample) -> f64, fmt: fn(f64) -> String| {
                cell(spread(mine.iter().map(|s| f(s))), fmt, rounds)
            };
            let vs = |base: Kind, value: fn(&CastSample) -> f64| {
                let r = ratios(
                    ca,
                    |s| s.kind == kind && s.conns == conns,
                    |s, b| b.kind == base && b.conns == conns && b.round == s.round,
                    value,
                );
                cell(spread(r), ratio, rounds)
            };
            let client = crate::report::client_cell(
                mine.iter().map(|s| s.client_busy),
                mine.iter().map(|s| s.client_us),
            );
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                thousands(conns),
                label(kind),
                mine.first().map_or(0, |s| s.messages),
                col(|s| s.last_p50_ms, micros),
                col(|s| s.last_p99_ms, micros),
                col(|s| s.median_p50_ms, micros),
                col(|s| s.server_us, micros),
                vs(Kind::WarpChat, |s| s.server_us),
                vs(Kind::TcpFanout, |s| s.server_us),
                vs(Kind::WarpChat, |s| s.last_p99_ms),
                cell(spread(mine.iter().map(|s| s.server_busy)), percent, 1),
                client,
            );
        }
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::{CONNECTIONS, DELIVERIES, MIN_MESSAGES};

    #[test]
    fn every_run_measures_enough_deliveries() {
        for conns in CONNECTIONS {
            let subscribers = conns as u64 - 1;
            let messages = DELIVERIES.div_ceil(subscribers).max(MIN_MESSAGES);
            assert!(messages * subscribers >= DELIVERIES);
            assert!(messages >= MIN_MESSAGES);
        }
    }
}
