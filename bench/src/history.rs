//! Room history (`ws-bench history`): what it costs a room to keep its history, and how long a
//! client that comes back takes to get what it missed. `examples/echo --room` (every client in
//! the room `all`, each message delivered to its other members) against `--room --history N`
//! (the room keeps its last N messages, each delivered behind its position), on one node and
//! on nodes of a cluster over a `redis-server` of the run's own (as `ws-bench cluster`).
//!
//! - History cost: the cross-node fan-out shape of `ws-bench cluster` (300 subscribers, one
//!   publisher, 64 B at 100 msg/s: 30,000 deliveries/s) through the plain room and through the
//!   room with history, on 1 node and on 3 nodes; CPU per delivery, latency to the last
//!   receiver; every subscriber checks every byte, the order and (with history) each offset.
//! - Recovery: a client drops its connection, 100 messages are published to the room, the
//!   client connects again (to the other node in a cluster) and sends `#since OFFSET EPOCH`;
//!   the time from that write to the 100 replayed messages and the `#joined` reply, each
//!   checked.
//!
//! Every server (nodes and Redis) is pinned to the server CPU, the load generator to the other.

use std::fmt::Write as _;
use std::io;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::Options;
use crate::client::{Conn, Target, client_frame, connect};
use crate::cluster::{FanSample, SIZE, Setup, fan_out, ms, setup_name, with_setup};
use crate::fanout::{Relay, invalid, payload, positioned, quantile, thousands};
use crate::report::{cell, micros, percent, ratio, spread};

/// The markers of the generated block.
pub(crate) const HISTORY_BEGIN: &str =
    "<!-- ws-bench:history:begin (generated, do not edit by hand) -->";
pub(crate) const HISTORY_END: &str = "<!-- ws-bench:history:end -->";

/// The fan-out shape: subscribers in all, publishes per second (30,000 deliveries/s).
const SUBSCRIBERS: usize = 300;
const RATE: u32 = 100;
/// Messages the room keeps (`echo --history KEEP`).
const KEEP: &str = "1000";
/// [`KEEP`] as the prose writes it.
const KEEP_PROSE: &str = "1,000";
/// Nodes of the cost rows' cluster, and of the recovery's.
const COST_NODES: usize = 3;
const RECOVERY_NODES: usize = 2;
/// Messages a client misses before it comes back.
const MISSED: u64 = 100;

/// The echo flags of a room with history (`true`) or without.
fn flags(history: bool) -> &'static [&'static str] {
    if history {
        &["--room", "--history", KEEP]
    } else {
        &["--room"]
    }
}

/// One history-cost run: a fan-out through the room, with history or without.
#[derive(Clone, Debug)]
struct CostSample {
    round: usize,
    history: bool,
    fan: FanSample,
}

/// One setup's recovery trials in one round.
#[derive(Clone, Debug, Default)]
struct RecoverySample {
    round: usize,
    cluster: bool,
    trials: usize,
    /// From the `#since` write to the `#joined` reply, µs: p50, p90, p99.
    p50_us: f64,
    p90_us: f64,
    p99_us: f64,
}

/// Everything `ws-bench history` measured.
#[derive(Debug, Default)]
struct Results {
    cost: Vec<CostSample>,
    recovery: Vec<RecoverySample>,
    failures: Vec<String>,
    elapsed: Duration,
    /// Why the cluster rows were not run, if they were not.
    no_cluster: Option<&'static str>,
}

impl Results {
    fn fail(&mut self, round: usize, what: &str, err: &io::Error) {
        let line = format!("round {} {what}: {err}", round + 1);
        eprintln!("FAILED {line}");
        self.failures.push(line);
    }
}

/// A client of the room that keeps history: its connection and the position of the last
/// message it got.
struct Member {
    conn: Conn,
    offset: u64,
    epoch: String,
}

/// Reads `count` recorded messages, which must be the published messages `first..` at
/// offsets `after + 1..` in `epoch` (learnt from the first if `None`), each checked byte for
/// byte; returns the epoch.
async fn read_recorded(
    conn: &mut Conn,
    count: u64,
    (first, after): (u64, u64),
    epoch: Option<&str>,
) -> io::Result<String> {
    let mut known = epoch.map(str::to_owned);
    let mut n = 0;
    conn.read_messages(count, |msg| {
        let (offset, this, body) = positioned(msg)?;
        let this = std::str::from_utf8(this).map_err(|_| invalid("an epoch is not ASCII"))?;
        if offset != after + 1 + n {
            return Err(invalid(format!(
                "offset {offset} where {} was due",
                after + 1 + n
            )));
        }
        match &known {
            Some(known) if known != this => {
                return Err(invalid(format!("epoch {this} where {known} was due")));
            }
            Some(_) => {}
            None => known = Some(this.to_owned()),
        }
        if body != payload(first + n, 0, SIZE) {
            return Err(invalid(format!("message {} differs", first + n)));
        }
        n += 1;
        Ok(())
    })
    .await?;
    known.ok_or_else(|| invalid("no message"))
}

/// Publishes the messages `first..first + count` (send time 0) in one write.
async fn publish(publisher: &mut Conn, first: u64, count: u64) -> io::Result<()> {
    let mut frames = Vec::new();
    for seq in first..first + count {
        frames.extend_from_slice(&client_frame(0x2, &payload(seq, 0, SIZE)));
    }
    publisher.write_all(&frames).await
}

/// Recovery, `trials` times: the member drops its connection, [`MISSED`] messages are
/// published, and a witness on every node (members that stay in the room) gets them all
/// first: so all are recorded, and every node has delivered them all (a node of a cluster
/// delivers a room's messages as Redis publishes them to it, each node at its own pace; a
/// member that joined a node still delivering them would get the rest live, before its
/// `#since`). The member connects again (in a cluster, to the next node: another one than
/// before) and sends `#since OFFSET EPOCH`. The figure is the time from that write to the
/// `#joined` reply, after exactly the missed messages, in order, each checked.
async fn recovery(setup: &Setup, trials: usize) -> io::Result<Vec<f64>> {
    let nodes: Vec<&Target> = setup.nodes.iter().map(|node| &node.target).collect();
    let first_node = nodes[0];
    let mut publisher = connect(first_node).await?;
    let mut witnesses = Vec::new();
    for node in &nodes {
        witnesses.push(connect(node).await?);
    }
    let mut conn = connect(first_node).await?;
    if let Some(redis) = &setup.redis {
        redis.wait_subscribed(nodes.len(), 4).await?;
    }
    // Each connection joins the room in its `on_open`; let every node register them.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let bounded =
        async |what: &str, read: &mut Conn, count: u64, at: (u64, u64), epoch: Option<&str>| {
            tokio::time::timeout(
                Duration::from_secs(10),
                read_recorded(read, count, at, epoch),
            )
            .await
            .map_err(|_| invalid(format!("{what}: not every message within 10 s")))?
        };
    // A first message gives the member a position.
    publish(&mut publisher, 0, 1).await?;
    let epoch = bounded("first message", &mut conn, 1, (0, 0), None).await?;
    for witness in &mut witnesses {
        bounded("witness", witness, 1, (0, 0), Some(&epoch)).await?;
    }
    let mut member = Member {
        conn,
        offset: 1,
        epoch,
    };
    let mut seq = 1;
    let mut times = Vec::with_capacity(trials);
    for trial in 0..trials {
        let Member {
            conn,
            offset,
            epoch,
        } = member;
        drop(conn);
        publish(&mut publisher, seq, MISSED).await?;
        for witness in &mut witnesses {
            bounded("witness", witness, MISSED, (seq, offset), Some(&epoch)).await?;
        }
        let mut conn = connect(nodes[(trial + 1) % nodes.len()]).await?;
        let since = client_frame(0x1, format!("#since {offset} {epoch}").as_bytes());
        let sent = Instant::now();
        conn.write_all(&since).await?;
        bounded("replay", &mut conn, MISSED, (seq, offset), Some(&epoch))
            .await
            .map_err(|err| invalid(format!("trial {}: {err}", trial + 1)))?;
        let mut reply = String::new();
        let joined = conn.read_messages(1, |msg| {
            reply = String::from_utf8_lossy(msg).into_owned();
            Ok(())
        });
        tokio::time::timeout(Duration::from_secs(10), joined)
            .await
            .map_err(|_| invalid("no #joined within 10 s"))??;
        times.push(sent.elapsed().as_secs_f64() * 1e6);
        let want = format!("#joined {} {epoch} true {MISSED}", offset + MISSED);
        if reply != want {
            return Err(invalid(format!(
                "trial {}: {reply:?} where {want:?} was due",
                trial + 1
            )));
        }
        member = Member {
            conn,
            offset: offset + MISSED,
            epoch,
        };
        seq += MISSED;
    }
    Ok(times)
}

/// `ws-bench history`: runs, prints and writes the block; exit 1 on any failure.
pub(crate) async fn main(options: &Options) -> ExitCode {
    let started = Instant::now();
    let mut results = Results::default();
    if !crate::cluster::have_redis(options).await {
        results.no_cluster = Some(
            "the cluster rows were not run: they need redis-server and echo built with \
             `--features redis`",
        );
        eprintln!("ws-bench: {}", results.no_cluster.unwrap_or_default());
    }
    for round in 0..options.rounds {
        cost_round(options, round, started, &mut results).await;
        recovery_round(options, round, started, &mut results).await;
    }
    results.elapsed = started.elapsed();
    let markdown = render(options, &results);
    crate::report::publish(
        options.markdown.as_deref(),
        &markdown,
        results.failures.is_empty() && results.no_cluster.is_none(),
    )
}

/// The cost runs of one round: on 1 node, then on the cluster, the room with history and
/// without alternating (rotated each round).
async fn cost_round(options: &Options, round: usize, started: Instant, results: &mut Results) {
    let limit = Duration::from_secs(120);
    let mut order = [true, false];
    order.rotate_left(round % 2);
    let every = Duration::from_secs_f64(1.0 / f64::from(RATE));
    let messages = crate::ceil_count(f64::from(RATE) * options.secs)
        .max(crate::fanout::MIN_MESSAGES)
        + crate::fanout::WARMUP_MESSAGES;
    for cluster in [false, true] {
        if cluster && results.no_cluster.is_some() {
            continue;
        }
        let nodes = if cluster { COST_NODES } else { 1 };
        for &history in &order {
            let relay = if history { Relay::History } else { Relay::Room };
            let outcome = with_setup(
                options,
                (nodes, flags(history), cluster),
                limit,
                async |setup| fan_out(options, setup, (SUBSCRIBERS, relay), every, messages).await,
            )
            .await;
            let what = format!("{} {}", setup_name(cluster, nodes), room_name(history));
            match outcome {
                Ok(fan) => {
                    eprintln!(
                        "[{:>4.0}s] round {} {what:<34} p50 {:>6.0} µs p99 {:>6.0} µs, {:>5.2} µs nodes' CPU/delivery, Redis {:>5.2}",
                        started.elapsed().as_secs_f64(),
                        round + 1,
                        fan.all.0,
                        fan.all.1,
                        fan.nodes_us,
                        fan.redis_us.unwrap_or(0.0),
                    );
                    results.cost.push(CostSample {
                        round,
                        history,
                        fan,
                    });
                }
                Err(err) => results.fail(round, &format!("history cost, {what}"), &err),
            }
        }
    }
}

/// The recovery runs of one round: one node and the cluster, rotated.
async fn recovery_round(options: &Options, round: usize, started: Instant, results: &mut Results) {
    let limit = Duration::from_secs(120);
    let mut order = [false, true];
    order.rotate_left(round % 2);
    for &cluster in &order {
        if cluster && results.no_cluster.is_some() {
            continue;
        }
        let nodes = if cluster { RECOVERY_NODES } else { 1 };
        let outcome = with_setup(
            options,
            (nodes, flags(true), cluster),
            limit,
            async |setup| recovery(setup, options.trials).await,
        )
        .await;
        match outcome {
            Ok(mut times) => {
                times.sort_by(f64::total_cmp);
                let sample = RecoverySample {
                    round,
                    cluster,
                    trials: times.len(),
                    p50_us: quantile(&times, 0.5),
                    p90_us: quantile(&times, 0.9),
                    p99_us: quantile(&times, 0.99),
                };
                eprintln!(
                    "[{:>4.0}s] round {} recovery of {MISSED} {:<17} p50 {:>6.0} µs p90 {:>6.0} µs p99 {:>6.0} µs over {} trials",
                    started.elapsed().as_secs_f64(),
                    round + 1,
                    setup_name(cluster, nodes),
                    sample.p50_us,
                    sample.p90_us,
                    sample.p99_us,
                    sample.trials,
                );
                results.recovery.push(sample);
            }
            Err(err) => results.fail(
                round,
                &format!("recovery, {}", setup_name(cluster, nodes)),
                &err,
            ),
        }
    }
}

fn room_name(history: bool) -> &'static str {
    if history {
        "room with history"
    } else {
        "plain room"
    }
}

/// The history rows of `ws-bench smoke`, printed: one node, then (when echo has the feature
/// `redis` and `redis-server` is installed) 2 nodes on a fresh Redis; each a fan-out of 20
/// messages to 10 subscribers through the room with history (and on one node through the
/// plain room), and 5 recoveries of [`MISSED`] messages. Returns the runs and the failures.
pub(crate) async fn smoke_rows(options: &Options) -> (usize, usize) {
    if !options.ours.is_file() {
        return (0, 0);
    }
    let limit = Duration::from_secs(30);
    let every = Duration::from_millis(5);
    let mut runs = 0;
    let mut failed = 0;
    for cluster in [false, true] {
        let nodes = if cluster { 2 } else { 1 };
        let name = if cluster {
            "smoke history, cluster"
        } else {
            "smoke history, 1 node"
        };
        if cluster && !crate::cluster::have_redis(options).await {
            eprintln!(
                "{name:<23} skipped: needs redis-server and echo built with `--features redis`"
            );
            continue;
        }
        runs += 1;
        let outcome = async {
            if !cluster {
                with_setup(options, (1, flags(false), false), limit, async |setup| {
                    fan_out(options, setup, (10, Relay::Room), every, 20).await
                })
                .await?;
            }
            with_setup(
                options,
                (nodes, flags(true), cluster),
                limit,
                async |setup| {
                    fan_out(options, setup, (10, Relay::History), every, 20).await?;
                    Ok(())
                },
            )
            .await?;
            with_setup(
                options,
                (nodes, flags(true), cluster),
                limit,
                async |setup| recovery(setup, 5).await,
            )
            .await
        }
        .await;
        match outcome {
            Ok(_) => eprintln!(
                "{name:<23} ok: {}20 messages to 10 subscribers through the room with history, every byte, the order and the offsets checked; 5 recoveries of {MISSED} missed messages{}, each exactly the missed ones in order, then #joined",
                if cluster {
                    ""
                } else {
                    "20 messages to 10 subscribers through a plain room and "
                },
                if cluster {
                    ", reconnecting to the other node"
                } else {
                    ""
                },
            ),
            Err(err) => {
                failed += 1;
                eprintln!("{name:<23} FAILED: {err}");
            }
        }
    }
    (runs, failed)
}

/// The generated block.
fn render(options: &Options, results: &Results) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{HISTORY_BEGIN}");
    let command = std::iter::once("ws-bench".to_owned())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    crate::report::cluster_header(
        &mut out,
        options,
        results.elapsed,
        (
            options.rounds,
            "the room with history and the plain room alternating (rotated each round), one \
             node first, then the cluster; then the recoveries",
        ),
        Some(&command),
    );
    if let Some(why) = results.no_cluster {
        let _ = writeln!(out, "**Not complete:** {why}.\n");
    }
    render_cost(&mut out, options, results);
    render_recovery(&mut out, options, results);
    crate::report::failed_runs(&mut out, &results.failures);
    let _ = writeln!(out, "{HISTORY_END}");
    out
}

fn render_cost(out: &mut String, options: &Options, results: &Results) {
    let rounds = options.rounds;
    let _ = writeln!(
        out,
        "### The cost of history: fan-out through a room with history and without\n\n\
         {} subscribers and one publisher, all members of the room `all` (`echo --room`, or \
         `echo --room --history {KEEP}`: the room keeps its last {KEEP_PROSE} messages), on 1 node \
         and spread evenly over {COST_NODES} nodes on one Redis. The publisher (on node 1) \
         sends {SIZE} B binary messages (sequence number and send time inside) at {RATE} \
         msg/s ({} deliveries/s) for {:.1} s, at least {} messages, plus {} warm-up messages \
         left out of the latency figures; each is delivered to the room's other members. \
         With history each arrives behind its position (offset, 8 bytes; epoch length, 1; \
         epoch, 8), {} B in all. Every subscriber checks every byte, the order, and with \
         history that message k has offset k + 1 and one epoch throughout. Latency is publish \
         → the last receiver; `publisher's node` and `other nodes` split it by where the \
         receivers are. CPU per delivery = CPU from the first publish to the last delivery / \
         (messages × subscribers). Ratios to the plain room are taken within a round, on the \
         same nodes; the CPU ratio counts nodes + Redis.\n",
        thousands(SUBSCRIBERS),
        thousands(SUBSCRIBERS * RATE as usize),
        options.secs,
        crate::fanout::MIN_MESSAGES,
        crate::fanout::WARMUP_MESSAGES,
        SIZE + 17,
    );
    let _ = writeln!(
        out,
        "| setup | room | deliveries/s | p50 (ms) | p99 (ms) | p99 publisher's node (ms) | p99 other nodes (ms) | nodes' CPU µs/delivery | Redis CPU µs/delivery | × plain room (CPU) | × plain room (p99) | nodes' core | Redis core | client core |\n\
         | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for cluster in [false, true] {
        for history in [true, false] {
            let mine: Vec<&CostSample> = results
                .cost
                .iter()
                .filter(|c| c.fan.cluster == cluster && c.history == history)
                .collect();
            if mine.is_empty() {
                continue;
            }
            let col = |f: &dyn Fn(&FanSample) -> f64, fmt: &dyn Fn(f64) -> String| {
                cell(spread(mine.iter().map(|s| f(&s.fan))), fmt, rounds)
            };
            let base = |m: &CostSample| {
                results
                    .cost
                    .iter()
                    .find(|b| b.fan.cluster == cluster && !b.history && b.round == m.round)
            };
            let total = |f: &FanSample| f.nodes_us + f.redis_us.unwrap_or(0.0);
            let cpu = mine
                .iter()
                .filter_map(|m| base(m).map(|b| total(&m.fan) / total(&b.fan)));
            let p99 = mine
                .iter()
                .filter_map(|m| base(m).map(|b| m.fan.all.1 / b.fan.all.1));
            let nodes = if cluster { COST_NODES } else { 1 };
            let dash = || "–".to_owned();
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                setup_name(cluster, nodes),
                if history {
                    format!("**with history** (`--history {KEEP}`)")
                } else {
                    "plain".to_owned()
                },
                col(&|s| s.deliveries_per_s, &crate::report::rate),
                col(&|s| s.all.0, &ms),
                col(&|s| s.all.1, &ms),
                col(&|s| s.local.1, &ms),
                if cluster {
                    col(&|s| s.remote.map_or(f64::NAN, |r| r.1), &ms)
                } else {
                    dash()
                },
                col(&|s| s.nodes_us, &micros),
                if cluster {
                    col(&|s| s.redis_us.unwrap_or(f64::NAN), &micros)
                } else {
                    dash()
                },
                cell(spread(cpu), ratio, rounds),
                cell(spread(p99), ratio, rounds),
                col(&|s| s.nodes_busy, &percent),
                if cluster {
                    col(&|s| s.redis_busy, &percent)
                } else {
                    dash()
                },
                col(&|s| s.client_busy, &percent),
            );
        }
    }
    out.push('\n');
}

fn render_recovery(out: &mut String, options: &Options, results: &Results) {
    let rounds = options.rounds;
    let _ = writeln!(
        out,
        "### Recovery of {MISSED} missed messages\n\n\
         `echo --room --history {KEEP}` on 1 node, and on {RECOVERY_NODES} nodes over one \
         Redis. A member of the room drops its connection; a publisher (node 1) sends {MISSED} \
         messages of {SIZE} B in one write, and a witness member on every node receives them \
         all (so they are recorded, and every node has delivered them: a member that joined a \
         node still delivering them would get the rest live); the member connects again (in the cluster, to the \
         other node than the one it left: it alternates) and sends `#since OFFSET EPOCH`, the \
         position of the last message it got. The figure is the time from that write to the \
         `#joined` reply, which comes after the replay: exactly the {MISSED} missed messages, \
         in order, each checked byte for byte with its offset, then `#joined OFFSET EPOCH true \
         {MISSED}`. The connection's handshake is not in it; the reconnected client was put in \
         the room on open, and `#since` makes it leave and join again with its position \
         (`Endpoint::join_since`). {} trials per setup and round, one after the other; the \
         percentiles are over the trials of a round (nearest rank: p99 of {} trials is the \
         slowest), cells over the rounds.\n",
        options.trials, options.trials,
    );
    let _ = writeln!(
        out,
        "| setup | trials | rejoin → {MISSED} replayed + `#joined`, p50 (ms) | p90 (ms) | p99 (ms) | × one node (p50) |\n\
         | --- | ---: | ---: | ---: | ---: | ---: |"
    );
    for cluster in [false, true] {
        let mine: Vec<&RecoverySample> = results
            .recovery
            .iter()
            .filter(|r| r.cluster == cluster)
            .collect();
        if mine.is_empty() {
            continue;
        }
        let col = |f: &dyn Fn(&RecoverySample) -> f64| {
            cell(spread(mine.iter().map(|s| f(s))), ms, rounds)
        };
        let p50 = mine.iter().filter_map(|m| {
            results
                .recovery
                .iter()
                .find(|b| !b.cluster && b.round == m.round)
                .map(|b| m.p50_us / b.p50_us)
        });
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            if cluster {
                format!(
                    "{} (member back on the other node)",
                    setup_name(true, RECOVERY_NODES)
                )
            } else {
                setup_name(false, 1)
            },
            mine.iter().map(|s| s.trials).sum::<usize>(),
            col(&|s| s.p50_us),
            col(&|s| s.p90_us),
            col(&|s| s.p99_us),
            cell(spread(p50), ratio, rounds),
        );
    }
    out.push('\n');
}
