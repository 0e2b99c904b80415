//! Clusters over Redis (`ws-bench cluster`): several `examples/echo --redis URL` processes, each
//! one node of a cluster on a `redis-server` of this run's own (started on a free port of
//! 127.0.0.1 and stopped at the end; never a system instance), against the same clients on one
//! node without Redis.
//!
//! - Cross-node fan-out: 3 nodes `--broadcast`, subscribers spread evenly, one publisher on
//!   node 1; latency to the last receiver of each message, for the publisher's node and the
//!   others apart.
//! - Point-to-point: `echo --pair` on 2 nodes; a client of node 1 sends to one of node 2, which
//!   answers the same way; the round trip, closed loop.
//! - Redis' return: Redis killed (`SIGKILL`) under 2 nodes and restarted on its port; the time from it
//!   answering PING again to the first broadcast of node 1 reaching a client of node 2.
//! - Scale (`--scale`): `--subscribers N` (default 19,000) over 4 nodes against one node.
//!
//! Every server (nodes and Redis) is pinned to the server CPU, the load generator to the other.

use std::fmt::Write as _;
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::client::{Conn, client_frame, connect};
use crate::fanout::{
    Relay, Shared, check_running, invalid, payload, quantile, spawn_readers, thousands,
};
use crate::procs::{self, Server};
use crate::report::{cell, micros, percent, ratio, spread};
use crate::{Options, ceil_count};

/// The markers of the generated blocks: the cluster rows, and the scale run.
pub(crate) const CLUSTER_BEGIN: &str =
    "<!-- ws-bench:cluster:begin (generated, do not edit by hand) -->";
pub(crate) const CLUSTER_END: &str = "<!-- ws-bench:cluster:end -->";
pub(crate) const SCALE_BEGIN: &str =
    "<!-- ws-bench:cluster-scale:begin (generated, do not edit by hand) -->";
pub(crate) const SCALE_END: &str = "<!-- ws-bench:cluster-scale:end -->";

/// Size of every fan-out message: sequence number, send time and a checked pattern.
pub(crate) const SIZE: usize = 64;
/// Nodes of the fan-out cluster, of the scale cluster.
const FAN_NODES: usize = 3;
const SCALE_NODES: usize = 4;
/// Redis outages per round of the restart row, and how long each lasts.
const OUTAGES: usize = 2;
const DOWN: Duration = Duration::from_secs(1);
/// The publisher's period while waiting for Redis' return.
const PROBE_EVERY: Duration = Duration::from_millis(2);
/// Broadcasts of the scale run, and their period.
const SCALE_MESSAGES: u64 = 20;
const SCALE_EVERY: Duration = Duration::from_secs(2);
/// Round trips left out at the start of each pair run.
const PAIR_WARMUP: usize = 200;

/// One cross-node fan-out shape: subscribers in all, publishes per second.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shape {
    pub(crate) subscribers: usize,
    pub(crate) rate: u32,
}

/// The fan-out shapes, both at 30,000 deliveries per second.
pub(crate) const SHAPES: [Shape; 2] = [
    Shape {
        subscribers: 300,
        rate: 100,
    },
    Shape {
        subscribers: 3000,
        rate: 10,
    },
];

/// What `ws-bench cluster` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Fan-out, point-to-point and Redis' return.
    Rows,
    /// The scale run alone.
    Scale,
}

/// A `redis-server` of this run's own on a free port of 127.0.0.1 (no persistence), killed when
/// dropped.
pub(crate) struct Redis {
    port: u16,
    pin: bool,
    child: Option<Child>,
    pid: String,
}

impl Redis {
    /// Starts one on a free port; returns once it answers PING.
    pub(crate) async fn start(pin: bool) -> io::Result<Redis> {
        for _ in 0..5 {
            // Free now; if another process takes it first, redis-server exits and we retry.
            let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
                .local_addr()?
                .port();
            let mut redis = Redis {
                port,
                pin,
                child: None,
                pid: String::new(),
            };
            if redis.spawn().await? {
                return Ok(redis);
            }
        }
        Err(io::Error::other(
            "redis-server did not start on any of 5 free ports",
        ))
    }

    /// `redis://127.0.0.1:PORT/`
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// CPU ticks of the running `redis-server` so far.
    pub(crate) fn cpu_ticks(&self) -> io::Result<u64> {
        procs::cpu_ticks(&self.pid)
    }

    /// SIGKILL, and waits until the process is gone.
    pub(crate) async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Starts it again on the same port (after [`kill`](Self::kill)), empty; returns the
    /// moment it first answered PING.
    pub(crate) async fn restart(&mut self) -> io::Result<Instant> {
        self.kill().await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.spawn().await? {
            if Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "redis-server did not restart on port {}",
                    self.port
                )));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(Instant::now())
    }

    /// Starts the process: `true` once it answers PING, `false` if it exited (port taken).
    async fn spawn(&mut self) -> io::Result<bool> {
        let mut command = if self.pin {
            let mut command = Command::new("taskset");
            command.args(["-c", procs::SERVER_CPU, "redis-server"]);
            command
        } else {
            Command::new("redis-server")
        };
        command
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(std::env::temp_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|e| {
            io::Error::other(format!("redis-server: {e} (install Debian's redis-server)"))
        })?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if child.try_wait()?.is_some() {
                return Ok(false);
            }
            if ping(self.port).await {
                self.pid = child.id().map(|id| id.to_string()).unwrap_or_default();
                self.child = Some(child);
                return Ok(true);
            }
            if Instant::now() >= deadline {
                let _ = child.kill().await;
                return Err(io::Error::other(
                    "redis-server did not answer PING within 10 s",
                ));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// The reply to an inline command: a bulk string's text, or a simple reply's line.
    async fn query(&self, command: &str) -> io::Result<String> {
        let talk = async {
            let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).await?;
            stream
                .write_all(format!("{command}\r\n").as_bytes())
                .await?;
            let mut reply = Vec::new();
            let mut chunk = vec![0u8; 16 * 1024];
            loop {
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Err(invalid("redis closed the connection"));
                }
                reply.extend_from_slice(&chunk[..n]);
                let Some(eol) = reply.windows(2).position(|w| w == b"\r\n") else {
                    continue;
                };
                if reply[0] != b'$' {
                    return Ok(String::from_utf8_lossy(&reply[..eol]).into_owned());
                }
                let len: usize = String::from_utf8_lossy(&reply[1..eol])
                    .parse()
                    .map_err(|_| invalid("odd redis reply"))?;
                if reply.len() >= eol + 2 + len {
                    return Ok(String::from_utf8_lossy(&reply[eol + 2..eol + 2 + len]).into_owned());
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(2), talk)
            .await
            .map_err(|_| io::Error::other(format!("redis {command}: no answer in 2 s")))?
    }

    /// Waits (at most 10 s) until `nodes` nodes have subscribed (to `all`, their own topic and
    /// their probe) and published (their first heartbeat): then a broadcast or a send of any
    /// of them reaches the others.
    async fn wait_for(&self, nodes: usize) -> io::Result<()> {
        self.wait_subscribed(nodes, 3).await
    }

    /// Waits (at most 10 s) until `nodes` nodes each have at least `channels` subscriptions
    /// and have published: 3 are every node's own (`all`, its topic, its probe), and a node
    /// subscribes to a room's channel when the room's first member there joins.
    pub(crate) async fn wait_subscribed(&self, nodes: usize, channels: u32) -> io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let list = self.query("CLIENT LIST").await?;
            let subscribed = list
                .lines()
                .filter(|line| {
                    line.split_whitespace()
                        .find_map(|field| field.strip_prefix("sub="))
                        .and_then(|n| n.parse::<u32>().ok())
                        .is_some_and(|n| n >= channels)
                })
                .count();
            let publishing = list.lines().filter(|l| l.contains("cmd=publish")).count();
            if subscribed >= nodes && publishing >= nodes {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "{subscribed} of {nodes} nodes subscribed to {channels} channels, \
                     {publishing} publishing after 10 s"
                )));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.start_kill();
        }
    }
}

/// Whether a Redis on `port` answers PING.
async fn ping(port: u16) -> bool {
    let talk = async {
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await?;
        stream.write_all(b"PING\r\n").await?;
        let mut answer = [0u8; 7];
        stream.read_exact(&mut answer).await?;
        Ok::<_, io::Error>(&answer == b"+PONG\r\n")
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), talk).await,
        Ok(Ok(true))
    )
}

/// A set of nodes and, for a cluster, its Redis.
pub(crate) struct Setup {
    pub(crate) nodes: Vec<Server>,
    pub(crate) redis: Option<Redis>,
}

impl Setup {
    /// `count` nodes `echo FLAGS`, on a fresh Redis if `cluster`; returns once every node is
    /// subscribed.
    async fn start(
        options: &Options,
        count: usize,
        flags: &[&str],
        cluster: bool,
    ) -> io::Result<Setup> {
        let redis = if cluster {
            Some(Redis::start(options.pin).await?)
        } else {
            None
        };
        let mut setup = Setup {
            nodes: Vec::new(),
            redis,
        };
        let url = setup.redis.as_ref().map(Redis::url);
        for n in 0..count {
            let mut args: Vec<&str> = flags.to_vec();
            args.extend(["--addr", "127.0.0.1:0"]);
            if let Some(url) = &url {
                args.extend(["--redis", url.as_str()]);
            }
            let name = format!("node {}", n + 1);
            match Server::spawn(&name, &options.ours, &args, options.pin, true).await {
                Ok(node) => setup.nodes.push(node),
                Err(err) => {
                    setup.stop().await;
                    return Err(io::Error::other(format!(
                        "{err} (echo built without `--features redis`?)"
                    )));
                }
            }
        }
        if let Some(redis) = &setup.redis
            && let Err(err) = redis.wait_for(count).await
        {
            setup.stop().await;
            return Err(err);
        }
        Ok(setup)
    }

    /// CPU ticks of every node together, and of Redis.
    fn ticks(&self) -> io::Result<(u64, u64)> {
        let mut nodes = 0;
        for node in &self.nodes {
            nodes += node.cpu_ticks()?;
        }
        let redis = match &self.redis {
            Some(redis) => redis.cpu_ticks()?,
            None => 0,
        };
        Ok((nodes, redis))
    }

    async fn stop(self) {
        for node in self.nodes {
            node.stop().await;
        }
        if let Some(mut redis) = self.redis {
            redis.kill().await;
        }
    }
}

/// Runs `measure` against a fresh setup (bounded to `limit`), stops it.
pub(crate) async fn with_setup<T>(
    options: &Options,
    (count, flags, cluster): (usize, &[&str], bool),
    limit: Duration,
    measure: impl AsyncFnOnce(&mut Setup) -> io::Result<T>,
) -> io::Result<T> {
    let mut setup = Setup::start(options, count, flags, cluster).await?;
    let outcome = tokio::time::timeout(limit, measure(&mut setup)).await;
    setup.stop().await;
    outcome.map_err(|_| io::Error::other(format!("timed out after {} s", limit.as_secs())))?
}

/// One fan-out run over the nodes of a setup (cluster or one node).
#[derive(Clone, Debug, Default)]
pub(crate) struct FanSample {
    pub(crate) round: usize,
    /// Index into [`SHAPES`] (unused by the scale run).
    pub(crate) shape: usize,
    pub(crate) cluster: bool,
    pub(crate) subscribers: usize,
    pub(crate) nodes: usize,
    pub(crate) messages: u64,
    pub(crate) deliveries_per_s: f64,
    /// p50/p99 to the last receiver of each message, µs: all, the publisher's node, the others.
    pub(crate) all: (f64, f64),
    pub(crate) local: (f64, f64),
    pub(crate) remote: Option<(f64, f64)>,
    pub(crate) nodes_us: f64,
    pub(crate) redis_us: Option<f64>,
    pub(crate) nodes_busy: f64,
    pub(crate) redis_busy: f64,
    pub(crate) client_busy: f64,
    /// Per node: RSS before its clients (KiB), and growth per connection after they opened.
    pub(crate) base_kib: Vec<u64>,
    pub(crate) kib_per_conn: Vec<f64>,
}

/// Fan-out: `subscribers` spread evenly over the nodes, one publisher on node 1 sending
/// `messages` of [`SIZE`] bytes every `every`, relayed as `relay` says; every subscriber checks
/// every message in order.
pub(crate) async fn fan_out(
    options: &Options,
    setup: &Setup,
    (subscribers, relay): (usize, Relay),
    every: Duration,
    messages: u64,
) -> io::Result<FanSample> {
    let count = usize::try_from(messages).map_err(io::Error::other)?;
    let epoch = Instant::now();
    let local = Arc::new(Shared::new(epoch, count));
    let remote = Arc::new(Shared::new(epoch, count));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut base_kib = Vec::new();
    for node in &setup.nodes {
        base_kib.push(node.rss_kib()?);
    }
    let mut publisher = connect(&setup.nodes[0].target).await?;
    let (mut tasks, kib_per_conn) = subscribe(
        setup,
        (subscribers, relay),
        messages,
        (&local, &remote),
        &base_kib,
    )
    .await?;
    let nodes = setup.nodes.len();
    // Through a room, a node hears the others' messages once it has subscribed to the
    // room's channel, which its first member's join starts.
    if let Some(redis) = &setup.redis
        && relay != Relay::Broadcast
    {
        redis.wait_subscribed(nodes, 4).await?;
    }
    let (t0, (n0, r0), c0) = (Instant::now(), setup.ticks()?, procs::cpu_ticks("self")?);
    for seq in 0..messages {
        let due = t0 + every.mul_f64(seq as f64);
        tokio::time::sleep_until(due.into()).await;
        let now = local.now();
        let index = usize::try_from(seq).map_err(io::Error::other)?;
        local.sent[index].store(now, Ordering::Relaxed);
        remote.sent[index].store(now, Ordering::Relaxed);
        publisher
            .write_all(&client_frame(0x2, &payload(seq, now, SIZE)))
            .await?;
    }
    let wait = crate::fanout::all_delivered(&mut tasks, messages, Duration::from_secs(30)).await;
    let (t1, (n1, r1), c1) = (Instant::now(), setup.ticks()?, procs::cpu_ticks("self")?);
    let Ok(outcome) = wait else {
        let short = |shared: &Shared, want: usize| {
            shared
                .got
                .iter()
                .filter(|g| g.load(Ordering::Relaxed) as usize != want)
                .count()
        };
        let locals = subscribers / nodes + usize::from(!subscribers.is_multiple_of(nodes));
        return Err(io::Error::other(format!(
            "not every subscriber got every message within 30 s: {} message(s) short on the \
             publisher's node, {} on the others",
            short(&local, locals),
            short(&remote, subscribers - locals),
        )));
    };
    outcome?;
    drop(publisher);
    let skip = usize::try_from(crate::fanout::WARMUP_MESSAGES.min(messages / 2)).unwrap_or(0);
    let latency = |pick: &dyn Fn(usize) -> u64| {
        let mut v: Vec<f64> = (skip..count)
            .map(|i| pick(i).saturating_sub(local.sent[i].load(Ordering::Relaxed)) as f64 / 1e3)
            .collect();
        v.sort_by(f64::total_cmp);
        (quantile(&v, 0.5), quantile(&v, 0.99))
    };
    let last_local = |i: usize| local.last[i].load(Ordering::Relaxed);
    let last_remote = |i: usize| remote.last[i].load(Ordering::Relaxed);
    let elapsed = (t1 - t0).as_secs_f64();
    let deliveries = (messages * subscribers as u64) as f64;
    let us = |ticks: u64| ticks as f64 * 1e6 / options.ticks_per_sec as f64;
    Ok(FanSample {
        round: 0,
        shape: 0,
        cluster: setup.redis.is_some(),
        subscribers,
        nodes,
        messages,
        deliveries_per_s: deliveries / elapsed,
        all: latency(&|i| last_local(i).max(last_remote(i))),
        local: latency(&last_local),
        remote: (nodes > 1).then(|| latency(&last_remote)),
        nodes_us: us(n1 - n0) / deliveries,
        redis_us: setup.redis.as_ref().map(|_| us(r1 - r0) / deliveries),
        nodes_busy: us(n1 - n0) / 1e6 / elapsed,
        redis_busy: us(r1 - r0) / 1e6 / elapsed,
        client_busy: us(c1 - c0) / 1e6 / elapsed,
        base_kib,
        kib_per_conn,
    })
}

/// Opens `subscribers` spread evenly over the nodes, each reading and checking `messages` (the
/// first node's into `local`, the others' into `remote`); returns their tasks and, per node,
/// the growth of its RSS per connection (node 1 counting the publisher) once they are idle.
async fn subscribe(
    setup: &Setup,
    (subscribers, relay): (usize, Relay),
    messages: u64,
    (local, remote): (&Arc<Shared>, &Arc<Shared>),
    base_kib: &[u64],
) -> io::Result<(JoinSet<io::Result<u64>>, Vec<f64>)> {
    let mut tasks: JoinSet<io::Result<u64>> = JoinSet::new();
    let nodes = setup.nodes.len();
    let mut conns_per_node = Vec::new();
    for (n, node) in setup.nodes.iter().enumerate() {
        let share = subscribers / nodes + usize::from(n < subscribers % nodes);
        conns_per_node.push(share + usize::from(n == 0));
        let conns = crate::open_to(&node.target, share, None).await?;
        let shared = if n == 0 { local } else { remote };
        spawn_readers(&mut tasks, conns, shared, (messages, SIZE), relay);
    }
    // Let every node register every connection, then read the memory of the idle ones.
    tokio::time::sleep(Duration::from_millis(500)).await;
    check_running(&mut tasks)?;
    let mut kib_per_conn = Vec::new();
    for (node, (base, conns)) in setup.nodes.iter().zip(base_kib.iter().zip(&conns_per_node)) {
        kib_per_conn.push(node.rss_kib()?.saturating_sub(*base) as f64 / *conns as f64);
    }
    Ok((tasks, kib_per_conn))
}

/// One point-to-point run.
#[derive(Clone, Debug, Default)]
pub(crate) struct PairSample {
    pub(crate) round: usize,
    pub(crate) cluster: bool,
    pub(crate) round_trips_per_s: f64,
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
    /// Server CPU per message relayed (two per round trip): the nodes', Redis'.
    pub(crate) nodes_us: f64,
    pub(crate) redis_us: Option<f64>,
}

/// The first message of a connection to `echo --pair`: its id.
async fn read_id(conn: &mut Conn) -> io::Result<String> {
    let mut id = String::new();
    conn.read_messages(1, |msg| {
        id = String::from_utf8(msg.to_vec()).map_err(|_| invalid("id is not UTF-8"))?;
        Ok(())
    })
    .await?;
    Ok(id)
}

/// Point-to-point: a client of the first node sends `@B m…` (64 B after the prefix) to a
/// client of the last node, which sends each back as `@A m…`; one in flight, for
/// `options.secs` after [`PAIR_WARMUP`] round trips (or `limit` round trips if given).
async fn pair(options: &Options, setup: &Setup, limit: Option<usize>) -> io::Result<PairSample> {
    let mut a = connect(&setup.nodes[0].target).await?;
    let id_a = read_id(&mut a).await?;
    let last = setup
        .nodes
        .last()
        .ok_or_else(|| io::Error::other("no node"))?;
    let mut b = connect(&last.target).await?;
    let id_b = read_id(&mut b).await?;
    let back = format!("@{id_a} ");
    let responder: tokio::task::JoinHandle<io::Result<()>> = tokio::spawn(async move {
        loop {
            let mut text = back.clone().into_bytes();
            b.read_messages(1, |msg| {
                text.extend_from_slice(msg);
                Ok(())
            })
            .await?;
            b.write_all(&client_frame(0x1, &text)).await?;
        }
    });
    let to = format!("@{id_b} ");
    let mut rtts = Vec::new();
    let mut window = None;
    let started = Instant::now();
    let outcome = async {
        for n in 0.. {
            if n == PAIR_WARMUP {
                window = Some((Instant::now(), setup.ticks()?));
            }
            let done = match (limit, window) {
                (Some(limit), _) => n >= limit,
                (None, Some((t0, _))) => t0.elapsed().as_secs_f64() >= options.secs,
                (None, None) => false,
            };
            if done {
                break;
            }
            let body = format!("m{n:015}{}", "-".repeat(48));
            let mut frame = to.clone().into_bytes();
            frame.extend_from_slice(body.as_bytes());
            let sent = Instant::now();
            a.write_all(&client_frame(0x1, &frame)).await?;
            let answered = a.read_messages(1, |msg| {
                if msg == body.as_bytes() {
                    Ok(())
                } else {
                    Err(invalid(format!(
                        "round trip {n}: got {:?}",
                        String::from_utf8_lossy(msg)
                    )))
                }
            });
            tokio::time::timeout(Duration::from_secs(5), answered)
                .await
                .map_err(|_| invalid(format!("round trip {n} not answered within 5 s")))??;
            if window.is_some() {
                rtts.push(sent.elapsed().as_secs_f64() * 1e6);
            }
        }
        Ok::<_, io::Error>(())
    }
    .await;
    responder.abort();
    outcome?;
    let (t1, (n1, r1)) = (Instant::now(), setup.ticks()?);
    let (t0, (n0, r0)) = window.unwrap_or((started, (n1, r1)));
    rtts.sort_by(f64::total_cmp);
    let messages = (2 * rtts.len()).max(1) as f64;
    let us = |ticks: u64| ticks as f64 * 1e6 / options.ticks_per_sec as f64;
    Ok(PairSample {
        round: 0,
        cluster: setup.redis.is_some(),
        round_trips_per_s: rtts.len() as f64 / (t1 - t0).as_secs_f64(),
        p50_us: quantile(&rtts, 0.5),
        p99_us: quantile(&rtts, 0.99),
        nodes_us: us(n1 - n0) / messages,
        redis_us: setup.redis.as_ref().map(|_| us(r1 - r0) / messages),
    })
}

/// Redis' return, `outages` times on one 2-node cluster: node 1's client broadcasts a sequence
/// number every [`PROBE_EVERY`]; node 2's client checks that they arrive in order. Returns the
/// ms from Redis answering PING again to node 2's client receiving the first broadcast after.
async fn redis_return(setup: &mut Setup, outages: usize) -> io::Result<Vec<f64>> {
    let mut publisher = connect(&setup.nodes[0].target).await?;
    let mut subscriber = connect(&setup.nodes[1].target).await?;
    let (tx, mut rx) = mpsc::unbounded_channel::<Instant>();
    let reader: tokio::task::JoinHandle<io::Result<()>> = tokio::spawn(async move {
        let mut last: Option<u64> = None;
        loop {
            let mut seq = 0;
            subscriber
                .read_messages(1, |msg| {
                    let bytes: [u8; 8] = msg
                        .try_into()
                        .map_err(|_| invalid("a message of another size"))?;
                    seq = u64::from_le_bytes(bytes);
                    Ok(())
                })
                .await?;
            if last.is_some_and(|last| seq <= last) {
                return Err(invalid(format!(
                    "broadcast {seq} arrived after {}",
                    last.unwrap_or_default()
                )));
            }
            last = Some(seq);
            if tx.send(Instant::now()).is_err() {
                return Ok(());
            }
        }
    });
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = stop.clone();
    let sender: tokio::task::JoinHandle<io::Result<()>> = tokio::spawn(async move {
        let mut tick = tokio::time::interval(PROBE_EVERY);
        let mut seq = 0u64;
        while !stopping.load(Ordering::Relaxed) {
            tick.tick().await;
            publisher
                .write_all(&client_frame(0x2, &seq.to_le_bytes()))
                .await?;
            seq += 1;
        }
        Ok(())
    });
    let outcome = async {
        first(&mut rx).await?;
        let redis = setup
            .redis
            .as_mut()
            .ok_or_else(|| io::Error::other("no redis"))?;
        let mut samples = Vec::new();
        for _ in 0..outages {
            redis.kill().await;
            tokio::time::sleep(DOWN).await;
            while rx.try_recv().is_ok() {}
            let back = redis.restart().await?;
            let arrived = first(&mut rx).await?;
            samples.push(arrived.saturating_duration_since(back).as_secs_f64() * 1e3);
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        Ok::<_, io::Error>(samples)
    }
    .await;
    stop.store(true, Ordering::Relaxed);
    let _ = sender.await;
    reader.abort();
    if let Ok(Ok(Err(err))) = tokio::time::timeout(Duration::from_millis(100), reader).await {
        return Err(err);
    }
    outcome
}

/// The receive time of the next cross-node delivery (at most 20 s away).
async fn first(rx: &mut mpsc::UnboundedReceiver<Instant>) -> io::Result<Instant> {
    tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .map_err(|_| invalid("no cross-node delivery within 20 s"))?
        .ok_or_else(|| invalid("the subscriber stopped"))
}

/// Everything `ws-bench cluster` measured.
#[derive(Debug, Default)]
pub(crate) struct Results {
    pub(crate) fan: Vec<FanSample>,
    pub(crate) pair: Vec<PairSample>,
    pub(crate) restart: Vec<f64>,
    pub(crate) failures: Vec<String>,
    pub(crate) elapsed: Duration,
}

impl Results {
    fn fail(&mut self, round: usize, what: &str, err: &io::Error) {
        let line = format!("round {} {what}: {err}", round + 1);
        eprintln!("FAILED {line}");
        self.failures.push(line);
    }
}

pub(crate) fn setup_name(cluster: bool, nodes: usize) -> String {
    if cluster {
        format!("{nodes} nodes + Redis")
    } else {
        "1 node, no Redis".to_owned()
    }
}

/// `ws-bench cluster [--scale]`: runs, prints and writes the block; exit 1 on any failure.
pub(crate) async fn main(options: &Options, mode: Mode) -> ExitCode {
    let started = Instant::now();
    let mut results = Results::default();
    match mode {
        Mode::Rows => {
            for round in 0..options.rounds {
                rows_round(options, round, started, &mut results).await;
            }
        }
        Mode::Scale => scale(options, started, &mut results).await,
    }
    results.elapsed = started.elapsed();
    let markdown = render(options, mode, &results);
    crate::report::publish(
        options.markdown.as_deref(),
        &markdown,
        results.failures.is_empty(),
    )
}

/// One round of the cluster rows: the cluster and the single node alternate (rotated).
async fn rows_round(options: &Options, round: usize, started: Instant, results: &mut Results) {
    let limit = Duration::from_secs(120);
    let mut order = [true, false];
    order.rotate_left(round % 2);
    for (s, shape) in SHAPES.iter().enumerate() {
        for &cluster in &order {
            let nodes = if cluster { FAN_NODES } else { 1 };
            let every = Duration::from_secs_f64(1.0 / f64::from(shape.rate));
            let messages = ceil_count(f64::from(shape.rate) * options.secs)
                .max(crate::fanout::MIN_MESSAGES)
                + crate::fanout::WARMUP_MESSAGES;
            let outcome = with_setup(
                options,
                (nodes, &["--broadcast"], cluster),
                limit,
                async |setup| {
                    let who = (shape.subscribers, Relay::Broadcast);
                    fan_out(options, setup, who, every, messages).await
                },
            )
            .await;
            match outcome {
                Ok(sample) => {
                    eprintln!(
                        "[{:>4.0}s] round {} fan-out {:>5} subscribers {:<17} p50 {:>7.0} µs p99 {:>7.0} µs (publisher's node p99 {:>7.0}, others {:>7.0}), {:>5.2} µs nodes' CPU/delivery, Redis {:>5.2}",
                        started.elapsed().as_secs_f64(),
                        round + 1,
                        shape.subscribers,
                        setup_name(cluster, nodes),
                        sample.all.0,
                        sample.all.1,
                        sample.local.1,
                        sample.remote.map_or(f64::NAN, |r| r.1),
                        sample.nodes_us,
                        sample.redis_us.unwrap_or(0.0),
                    );
                    results.fan.push(FanSample {
                        round,
                        shape: s,
                        ..sample
                    });
                }
                Err(err) => results.fail(
                    round,
                    &format!(
                        "fan-out {} subscribers, {}",
                        shape.subscribers,
                        setup_name(cluster, nodes)
                    ),
                    &err,
                ),
            }
        }
    }
    pair_round(options, round, started, results).await;
    let outcome = with_setup(options, (2, &["--broadcast"], true), limit, async |setup| {
        redis_return(setup, OUTAGES).await
    })
    .await;
    match outcome {
        Ok(samples) => {
            eprintln!(
                "[{:>4.0}s] round {} Redis' return → first cross-node delivery: {} ms",
                started.elapsed().as_secs_f64(),
                round + 1,
                samples
                    .iter()
                    .map(|ms| format!("{ms:.0}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            results.restart.extend(samples);
        }
        Err(err) => results.fail(round, "Redis' return", &err),
    }
}

/// The point-to-point runs of one round: the cluster and the single node, rotated.
async fn pair_round(options: &Options, round: usize, started: Instant, results: &mut Results) {
    let limit = Duration::from_secs(120);
    let mut order = [true, false];
    order.rotate_left(round % 2);
    for &cluster in &order {
        let nodes = if cluster { 2 } else { 1 };
        let outcome = with_setup(
            options,
            (nodes, &["--pair"], cluster),
            limit,
            async |setup| pair(options, setup, None).await,
        )
        .await;
        match outcome {
            Ok(sample) => {
                eprintln!(
                    "[{:>4.0}s] round {} point-to-point {:<17} {:>7.0} round trips/s p50 {:>6.0} µs p99 {:>6.0} µs, {:>5.2} µs nodes' CPU/message, Redis {:>5.2}",
                    started.elapsed().as_secs_f64(),
                    round + 1,
                    setup_name(cluster, nodes),
                    sample.round_trips_per_s,
                    sample.p50_us,
                    sample.p99_us,
                    sample.nodes_us,
                    sample.redis_us.unwrap_or(0.0),
                );
                results.pair.push(PairSample { round, ..sample });
            }
            Err(err) => results.fail(
                round,
                &format!("point-to-point, {}", setup_name(cluster, nodes)),
                &err,
            ),
        }
    }
}

/// The scale run: `options.subscribers` over [`SCALE_NODES`] nodes, then on one node.
async fn scale(options: &Options, started: Instant, results: &mut Results) {
    let total = options.subscribers;
    for cluster in [true, false] {
        let nodes = if cluster { SCALE_NODES } else { 1 };
        let outcome = with_setup(
            options,
            (nodes, &["--broadcast"], cluster),
            Duration::from_secs(240),
            async |setup| {
                let who = (total, Relay::Broadcast);
                fan_out(options, setup, who, SCALE_EVERY, SCALE_MESSAGES).await
            },
        )
        .await;
        match outcome {
            Ok(sample) => {
                eprintln!(
                    "[{:>4.0}s] scale {} subscribers {:<17} p50 {:>8.0} µs p99 {:>8.0} µs, {:>5.2} µs nodes' CPU/delivery, Redis {:>5.3}, KiB/idle conn per node {:?}",
                    started.elapsed().as_secs_f64(),
                    total,
                    setup_name(cluster, nodes),
                    sample.all.0,
                    sample.all.1,
                    sample.nodes_us,
                    sample.redis_us.unwrap_or(0.0),
                    sample.kib_per_conn,
                );
                results.fan.push(sample);
            }
            Err(err) => results.fail(
                0,
                &format!(
                    "scale {} subscribers, {}",
                    thousands(total),
                    setup_name(cluster, nodes)
                ),
                &err,
            ),
        }
    }
}

/// The cluster row of `ws-bench smoke`, printed: returns the runs (0 or 1) and the failures.
pub(crate) async fn smoke_row(options: &Options) -> (usize, usize) {
    match smoke(options).await {
        None => {
            eprintln!(
                "smoke cluster           skipped: needs redis-server and echo built with \
                 `--features redis`"
            );
            (0, 0)
        }
        Some(Ok(())) => {
            eprintln!(
                "smoke cluster           ok: 2 nodes on a fresh redis-server, 20 broadcasts to 10 subscribers (5 per node), every byte and the order checked; 20 round trips between the nodes (echo --pair)"
            );
            (1, 0)
        }
        Some(Err(err)) => {
            eprintln!("smoke cluster           FAILED: {err}");
            (1, 1)
        }
    }
}

/// The `ws-bench smoke` rows: 2 nodes on a fresh Redis, 10 subscribers (5 per node) checking
/// 20 broadcasts, and 20 round trips between the nodes. Returns `None` (skipped) when
/// `redis-server` is missing or echo was built without the feature `redis`.
async fn smoke(options: &Options) -> Option<io::Result<()>> {
    if !have_redis(options).await {
        return None;
    }
    let limit = Duration::from_secs(30);
    let every = Duration::from_millis(5);
    let outcome = async {
        with_setup(options, (2, &["--broadcast"], true), limit, async |setup| {
            fan_out(options, setup, (10, Relay::Broadcast), every, 20).await
        })
        .await?;
        with_setup(options, (2, &["--pair"], true), limit, async |setup| {
            pair(options, setup, Some(20)).await
        })
        .await?;
        Ok(())
    }
    .await;
    Some(outcome)
}

/// Whether `redis-server` runs here and echo has the feature `redis` (an unparsable URL is
/// then reported as such, not as the missing feature).
pub(crate) async fn have_redis(options: &Options) -> bool {
    let server = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|status| status.success());
    let echo = Command::new(&options.ours)
        .args(["--redis", "not a url"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .await
        .is_ok_and(|out| !String::from_utf8_lossy(&out.stderr).contains("--features redis"));
    server && echo
}

/// The generated block.
fn render(options: &Options, mode: Mode, results: &Results) -> String {
    let mut out = String::new();
    let (begin, end) = match mode {
        Mode::Rows => (CLUSTER_BEGIN, CLUSTER_END),
        Mode::Scale => (SCALE_BEGIN, SCALE_END),
    };
    let _ = writeln!(out, "{begin}");
    crate::report::header(&mut out, options, results.elapsed, mode == Mode::Scale);
    match mode {
        Mode::Rows => {
            render_fan(&mut out, options, results);
            render_pair(&mut out, options, results);
            render_restart(&mut out, options, results);
        }
        Mode::Scale => render_scale(&mut out, options, results),
    }
    crate::report::failed_runs(&mut out, &results.failures);
    let _ = writeln!(out, "{end}");
    out
}

/// µs as ms with 2–3 significant digits.
pub(crate) fn ms(us: f64) -> String {
    micros(us / 1e3)
}

fn render_fan(out: &mut String, options: &Options, results: &Results) {
    let rounds = options.rounds;
    let _ = writeln!(
        out,
        "### Cross-node fan-out\n\n{FAN_NODES} nodes (`echo --broadcast --redis URL`, each its own \
         process) on one Redis, against the same clients on one node without Redis \
         (`echo --broadcast`). The subscribers are spread evenly over the nodes; one publisher \
         connection on node 1 sends {SIZE} B binary messages (sequence number and send time \
         inside) at a fixed rate for {:.1} s, at least {} messages, plus {} warm-up messages \
         left out of the latency figures. Every subscriber checks every byte and the order of \
         every message. Latency is publish → the last receiver of each message: of all, of the \
         publisher's node (`local`), of the other nodes (`remote`). CPU per delivery = CPU \
         from the first publish to the last delivery / (messages × subscribers): the nodes' \
         together, and Redis' apart. Ratios to one node are taken within a round; the CPU \
         ratio counts nodes + Redis.\n",
        options.secs,
        crate::fanout::MIN_MESSAGES,
        crate::fanout::WARMUP_MESSAGES,
    );
    let _ = writeln!(
        out,
        "| subscribers, rate | setup | deliveries/s | p50 all (ms) | p99 all (ms) | p50 local (ms) | p99 local (ms) | p50 remote (ms) | p99 remote (ms) | nodes' CPU µs/delivery | Redis CPU µs/delivery | × one node (CPU) | × one node (p99) | nodes' core | Redis core | client core |\n\
         | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for (s, shape) in SHAPES.iter().enumerate() {
        for cluster in [true, false] {
            let mine: Vec<&FanSample> = results
                .fan
                .iter()
                .filter(|f| f.shape == s && f.cluster == cluster)
                .collect();
            if mine.is_empty() {
                continue;
            }
            let col = |f: &dyn Fn(&FanSample) -> f64, fmt: &dyn Fn(f64) -> String| {
                cell(spread(mine.iter().map(|s| f(s))), fmt, rounds)
            };
            let base = |sample: &FanSample| {
                results
                    .fan
                    .iter()
                    .find(|b| b.shape == s && !b.cluster && b.round == sample.round)
            };
            let cpu_ratio = mine.iter().filter_map(|m| {
                base(m).map(|b| (m.nodes_us + m.redis_us.unwrap_or(0.0)) / b.nodes_us)
            });
            let p99_ratio = mine
                .iter()
                .filter_map(|m| base(m).map(|b| m.all.1 / b.all.1));
            let remote = |f: &dyn Fn((f64, f64)) -> f64| {
                if cluster {
                    col(&|s| s.remote.map_or(f64::NAN, f), &ms)
                } else {
                    "–".to_owned()
                }
            };
            let _ = writeln!(
                out,
                "| {} subscribers ({} per node), {} msg/s | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                thousands(shape.subscribers),
                thousands(shape.subscribers / if cluster { FAN_NODES } else { 1 }),
                shape.rate,
                if cluster {
                    format!("**{}**", setup_name(true, FAN_NODES))
                } else {
                    setup_name(false, 1)
                },
                col(&|s| s.deliveries_per_s, &crate::report::rate),
                col(&|s| s.all.0, &ms),
                col(&|s| s.all.1, &ms),
                col(&|s| s.local.0, &ms),
                col(&|s| s.local.1, &ms),
                remote(&|r| r.0),
                remote(&|r| r.1),
                col(&|s| s.nodes_us, &micros),
                if cluster {
                    col(&|s| s.redis_us.unwrap_or(f64::NAN), &micros)
                } else {
                    "–".to_owned()
                },
                cell(spread(cpu_ratio), ratio, rounds),
                cell(spread(p99_ratio), ratio, rounds),
                col(&|s| s.nodes_busy, &percent),
                if cluster {
                    col(&|s| s.redis_busy, &percent)
                } else {
                    "–".to_owned()
                },
                col(&|s| s.client_busy, &percent),
            );
        }
    }
    out.push('\n');
}

fn render_pair(out: &mut String, options: &Options, results: &Results) {
    let rounds = options.rounds;
    let _ = writeln!(
        out,
        "### Point-to-point to a remote client\n\n`echo --pair` tells each client its id and \
         sends a text message `@ID rest` to the client `ID` as `rest`. Client A of node 1 sends \
         `@B` + 64 B to client B of node 2, which sends each back as `@A` + the same 64 B; one \
         message in flight, closed loop, {:.1} s after {PAIR_WARMUP} warm-up round trips; every \
         answer checked. The baseline is the same pair on one node (`echo --pair`, no Redis). \
         CPU per message = CPU over the measured round trips / (2 × round trips): each round \
         trip is two messages relayed.\n",
        options.secs
    );
    let _ = writeln!(
        out,
        "| setup | round trips/s | round trip p50 (µs) | round trip p99 (µs) | nodes' CPU µs/message | Redis CPU µs/message | × one node (CPU) | × one node (p50) |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for cluster in [true, false] {
        let mine: Vec<&PairSample> = results
            .pair
            .iter()
            .filter(|p| p.cluster == cluster)
            .collect();
        if mine.is_empty() {
            continue;
        }
        let col = |f: &dyn Fn(&PairSample) -> f64, fmt: &dyn Fn(f64) -> String| {
            cell(spread(mine.iter().map(|s| f(s))), fmt, rounds)
        };
        let base = |m: &PairSample| {
            results
                .pair
                .iter()
                .find(|b| !b.cluster && b.round == m.round)
        };
        let cpu = mine
            .iter()
            .filter_map(|m| base(m).map(|b| (m.nodes_us + m.redis_us.unwrap_or(0.0)) / b.nodes_us));
        let p50 = mine
            .iter()
            .filter_map(|m| base(m).map(|b| m.p50_us / b.p50_us));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            if cluster {
                "**2 nodes + Redis** (A on node 1, B on node 2)".to_owned()
            } else {
                "1 node, no Redis (A and B on it)".to_owned()
            },
            col(&|s| s.round_trips_per_s, &crate::report::rate),
            col(&|s| s.p50_us, &micros),
            col(&|s| s.p99_us, &micros),
            col(&|s| s.nodes_us, &micros),
            if cluster {
                col(&|s| s.redis_us.unwrap_or(f64::NAN), &micros)
            } else {
                "–".to_owned()
            },
            cell(spread(cpu), ratio, rounds),
            cell(spread(p50), ratio, rounds),
        );
    }
    out.push('\n');
}

fn render_restart(out: &mut String, options: &Options, results: &Results) {
    let _ = writeln!(
        out,
        "### Redis' return → first cross-node delivery\n\n2 nodes (`echo --broadcast --redis \
         URL`); a client of node 1 broadcasts an 8-byte sequence number every {} ms, a client of \
         node 2 checks that they arrive in increasing order. Redis is killed with SIGKILL, left \
         down {:.0} s, and started again on the same port (empty); the figure is the time from \
         it first answering PING again to node 2's client receiving the first broadcast after \
         that: both nodes reconnect (their own jittered backoff), resubscribe, and the \
         publisher's node publishes again. {OUTAGES} outages per round, {} round(s).\n",
        PROBE_EVERY.as_millis(),
        DOWN.as_secs_f64(),
        options.rounds,
    );
    let _ = writeln!(
        out,
        "| outages | Redis answering PING → first cross-node delivery (ms) | every outage (ms) |\n| ---: | ---: | --- |"
    );
    let _ = writeln!(
        out,
        "| {} | {} | {} |\n",
        results.restart.len(),
        cell(spread(results.restart.iter().copied()), micros, 2),
        results
            .restart
            .iter()
            .map(|ms| format!("{ms:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
}

fn render_scale(out: &mut String, options: &Options, results: &Results) {
    let _ = writeln!(
        out,
        "### Scale: {} subscribers over {SCALE_NODES} nodes against one node\n\n\
         The subscribers are spread evenly over {SCALE_NODES} nodes (`echo --broadcast --redis \
         URL`) on one Redis, then all on one node (`echo --broadcast`, no Redis), in the same \
         run; one publisher on node 1 sends {SCALE_MESSAGES} broadcasts of {SIZE} B, one every \
         {:.0} s (the first {} left out of the latency figures, so p99 is the slowest of the \
         rest). Every subscriber checks every \
         byte and that each message is the next in sequence (none lost or reordered: any miss \
         fails the run). The whole load generator is one process (one core) holding every \
         socket, within the open-file limit of {}. Memory: each node's `VmRSS` once its \
         clients are open and idle, minus its own `VmRSS` before they connected (after it \
         joined the cluster), divided by its connections (node 1 counts the publisher too); \
         user space only, kernel socket buffers are not in RSS. One round.\n",
        thousands(options.subscribers),
        SCALE_EVERY.as_secs_f64(),
        crate::fanout::WARMUP_MESSAGES.min(SCALE_MESSAGES / 2),
        thousands(usize::try_from(options.nofile).unwrap_or(0)),
    );
    let _ = writeln!(
        out,
        "| setup | subscribers per node | broadcasts | p50 publish → last delivery (ms) | p99 (ms) | p99 publisher's node (ms) | p99 other nodes (ms) | nodes' CPU µs/delivery | Redis CPU µs/delivery | × one node (CPU) | × one node (p99) | KiB per idle connection, per node | RSS before clients, per node (MiB) | nodes' core | client core |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | ---: | ---: |"
    );
    let base = results.fan.iter().find(|f| !f.cluster);
    for sample in &results.fan {
        let list = |v: Vec<String>| v.join(" / ");
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            if sample.cluster {
                format!("**{}**", setup_name(true, sample.nodes))
            } else {
                setup_name(false, 1)
            },
            thousands(sample.subscribers / sample.nodes),
            sample.messages,
            ms(sample.all.0),
            ms(sample.all.1),
            ms(sample.local.1),
            sample.remote.map_or_else(|| "–".to_owned(), |r| ms(r.1)),
            micros(sample.nodes_us),
            sample
                .redis_us
                .map_or_else(|| "–".to_owned(), |us| format!("{us:.3}")),
            base.map_or_else(
                || "–".to_owned(),
                |b| ratio((sample.nodes_us + sample.redis_us.unwrap_or(0.0)) / b.nodes_us)
            ),
            base.map_or_else(|| "–".to_owned(), |b| ratio(sample.all.1 / b.all.1)),
            list(
                sample
                    .kib_per_conn
                    .iter()
                    .map(|k| format!("{k:.2}"))
                    .collect()
            ),
            list(
                sample
                    .base_kib
                    .iter()
                    .map(|k| format!("{:.1}", *k as f64 / 1024.0))
                    .collect()
            ),
            percent(sample.nodes_busy),
            percent(sample.client_busy),
        );
    }
    out.push('\n');
}
