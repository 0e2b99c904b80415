//! `ws-bench`: measures `ws` (`examples/echo`) against raw `warp::ws`, tokio-tungstenite (default
//! and 4 KiB read buffer), tokio-websockets, fastwebsockets and a raw TCP echo floor.
//!
//! Every server runs as a child process pinned to CPU 0 (this binary re-executes itself as
//! `ws-bench serve KIND`, or runs `target/release/examples/echo`); the load generator is this
//! process, pinned to CPU 1. The primary figure is the server's CPU time per message, read from
//! `/proc/PID/stat`, as a ratio to raw `warp::ws` and to the floor within the same round.
//!
//! ```text
//! cargo build --release --example echo -p warpsocket
//! cargo run --release -p ws-bench -- all --markdown BENCHMARKS.md
//! cargo run --release -p ws-bench -- latency --markdown BENCHMARKS.md   # broadcast, open loop
//! cargo run --release -p ws-bench -- deflate --markdown BENCHMARKS.md   # permessage-deflate
//! cargo run --release -p ws-bench -- history --markdown BENCHMARKS.md   # room history
//! cargo run --release -p ws-bench -- metrics --markdown BENCHMARKS.md   # feature `metrics`
//! cargo run --release -p ws-bench -- scale --markdown BENCHMARKS.md     # 19,000 connections
//! cargo run --release -p ws-bench -- smoke
//! cargo run --release -p ws-bench -- soak --markdown reports/soak.md  # leaks, panics (soak.rs)
//! ```
//!
//! It is not a test: nothing here asserts a timing. `smoke` only checks that every server
//! echoes every byte correctly.

mod client;
mod cluster;
mod deflate;
mod fanout;
mod history;
mod metrics;
mod procs;
mod report;
mod scale;
mod servers;
mod soak;
mod tclient;

use std::io;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::client::{Conn, Payload, connect, connect_with};
use crate::deflate::{VARIANTS, Variant};
use crate::fanout::FANOUTS;
use crate::procs::Server;
use crate::report::{
    BroadcastSample, DeflateMemorySample, DeflateSample, EchoSample, HandshakeSample, MemorySample,
    OpenLoopSample, Results,
};
use crate::servers::Kind;

/// One closed-loop echo workload.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Workload {
    pub(crate) name: &'static str,
    pub(crate) conns: usize,
    pub(crate) size: usize,
    pub(crate) text: bool,
    /// Messages in flight per connection.
    pub(crate) depth: usize,
    /// Pipelined bursts: write `depth` messages back to back, then read all their echoes,
    /// instead of sending one more for each echo.
    pub(crate) burst: bool,
}

impl Workload {
    /// The label of its table rows.
    pub(crate) fn label(&self) -> String {
        if self.burst {
            format!(
                "{} ({} written back to back, then all {} read)",
                self.name,
                fanout::thousands(self.depth),
                fanout::thousands(self.depth)
            )
        } else {
            format!("{} ({} in flight each)", self.name, self.depth)
        }
    }
}

/// The echo workloads, in table order.
pub(crate) const WORKLOADS: [Workload; 10] = [
    Workload {
        name: "100 conns × 20 B binary",
        conns: 100,
        size: 20,
        text: false,
        depth: 4,
        burst: false,
    },
    Workload {
        name: "10 conns × 1 KiB text (non-ASCII)",
        conns: 10,
        size: 1024,
        text: true,
        depth: 8,
        burst: false,
    },
    Workload {
        name: "200 conns × 16 KiB binary",
        conns: 200,
        size: 16 * 1024,
        text: false,
        depth: 2,
        burst: false,
    },
    Workload {
        name: "10 conns × 64 KiB binary",
        conns: 10,
        size: 64 * 1024,
        text: false,
        depth: 2,
        burst: false,
    },
    Workload {
        name: "10 conns × 64 B binary, pipelined bursts",
        conns: 10,
        size: 64,
        text: false,
        depth: 1000,
        burst: true,
    },
    Workload {
        name: "1 conn × 64 B binary",
        conns: 1,
        size: 64,
        text: false,
        depth: 1,
        burst: false,
    },
    Workload {
        name: "1,000 conns × 64 B binary",
        conns: 1000,
        size: 64,
        text: false,
        depth: 1,
        burst: false,
    },
    Workload {
        name: "1 conn × 16 KiB binary",
        conns: 1,
        size: 16 * 1024,
        text: false,
        depth: 1,
        burst: false,
    },
    Workload {
        name: "10 conns × 16 KiB binary",
        conns: 10,
        size: 16 * 1024,
        text: false,
        depth: 2,
        burst: false,
    },
    Workload {
        name: "1 conn × 64 KiB binary",
        conns: 1,
        size: 64 * 1024,
        text: false,
        depth: 1,
        burst: false,
    },
];

/// The echo workloads (indexes into [`WORKLOADS`]) in table order, by message size: the
/// indexes keep the order they were added in, so that commands written down stay valid.
pub(crate) const TABLE_ORDER: [usize; WORKLOADS.len()] = [5, 0, 6, 1, 7, 8, 2, 9, 3, 4];

/// Concurrent connectors in the handshake run.
pub(crate) const CONNECTORS: u64 = 32;
/// Bound on the echoes one connection sends in a timed run; the window ends it long before.
const ECHO_LIMIT: u64 = 100_000_000;
/// Messages per connection in `smoke`.
const SMOKE_MESSAGES: u64 = 25;
/// Connections per workload in `smoke`.
const SMOKE_CONNS: usize = 4;
/// Subscribers and messages of each broadcast check in `smoke`.
const SMOKE_SUBSCRIBERS: usize = 20;
const SMOKE_BROADCASTS: u64 = 20;

/// `x` rounded up to a whole count: 0 for negative or NaN, saturating at `u64::MAX`.
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "clamped to the range of u64 first"
)]
pub(crate) fn ceil_count(x: f64) -> u64 {
    if x.is_nan() {
        return 0;
    }
    x.ceil().clamp(0.0, u64::MAX as f64) as u64
}

/// Which measurements to run.
#[derive(Clone, Copy, Debug)]
#[allow(
    clippy::struct_excessive_bools,
    reason = "independent switches, one per measurement"
)]
pub(crate) struct Parts {
    pub(crate) echo: bool,
    pub(crate) memory: bool,
    pub(crate) handshakes: bool,
    /// Broadcast fan-out (in the second generated block of the markdown).
    pub(crate) broadcast: bool,
    /// Fixed-rate open-loop echo (in the second generated block too).
    pub(crate) open_loop: bool,
    /// permessage-deflate: the JSON chat echo and memory with deflate (in a third block).
    pub(crate) deflate: bool,
}

/// The generated blocks of the markdown, each written by its own command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Block {
    /// Echo, memory, handshakes (`all`).
    Main,
    /// Broadcast fan-out and the open loop (`latency`).
    Latency,
    /// permessage-deflate (`deflate`).
    Deflate,
    /// Clusters over Redis (`cluster`).
    Cluster,
    /// Clusters at scale (`cluster --scale`).
    ClusterScale,
    /// Room history (`history`).
    History,
    /// The cost of the feature `metrics` (`metrics`).
    Metrics,
    /// Connection scale in one process (`scale`).
    Scale,
}

impl Parts {
    /// The generated block this run writes.
    pub(crate) fn block(self) -> Block {
        if self.echo || self.memory || self.handshakes {
            Block::Main
        } else if self.broadcast || self.open_loop {
            Block::Latency
        } else {
            Block::Deflate
        }
    }
}

/// Connections and message size of the open loop.
pub(crate) const OPEN_LOOP_CONNS: usize = 100;
pub(crate) const OPEN_LOOP_SIZE: usize = 64;

/// What to run and how long.
#[derive(Clone, Debug)]
#[allow(
    clippy::struct_excessive_bools,
    reason = "independent switches: smoke, pinning, and the commands with a module of their own"
)]
pub(crate) struct Options {
    pub(crate) parts: Parts,
    pub(crate) smoke: bool,
    pub(crate) rounds: usize,
    pub(crate) secs: f64,
    pub(crate) warmup: f64,
    pub(crate) idle: usize,
    pub(crate) handshake_count: u64,
    pub(crate) kinds: Vec<Kind>,
    pub(crate) workloads: Vec<usize>,
    pub(crate) fanouts: Vec<usize>,
    /// Messages per second offered in the open loop, over all connections.
    pub(crate) open_loop_rate: u32,
    pub(crate) markdown: Option<PathBuf>,
    pub(crate) ours: PathBuf,
    /// When our echo binary was built (its modification time), for the report.
    pub(crate) ours_built: Option<String>,
    /// Our echo binary built with the feature `metrics` (`--ours-metrics`).
    pub(crate) ours_metrics: PathBuf,
    /// When that one was built.
    pub(crate) ours_metrics_built: Option<String>,
    /// Another build of our echo (`--baseline`), the server of `ours-baseline`.
    pub(crate) baseline: PathBuf,
    /// `--client tungstenite`: the closed-loop echo's WebSocket connections are
    /// tokio-tungstenite clients ([`tclient`]) instead of the hand-written one.
    pub(crate) tungstenite_client: bool,
    /// `metrics`: the cost of the feature `metrics` and of a Prometheus recorder.
    pub(crate) metrics: bool,
    pub(crate) pin: bool,
    pub(crate) ticks_per_sec: u64,
    /// `cluster`: which of its runs.
    pub(crate) cluster: Option<cluster::Mode>,
    /// Subscribers in all of `cluster --scale`.
    pub(crate) subscribers: usize,
    /// `history`: the room-history rows.
    pub(crate) history: bool,
    /// `scale`: the storm of connectors and the broadcast to all, at up to 19,000 connections.
    pub(crate) scale: bool,
    /// Recovery trials per setup and round of `history`.
    pub(crate) trials: usize,
    /// The soft limit on open files in force (raised to the hard limit).
    pub(crate) nofile: u64,
}

const USAGE: &str = "\
usage: ws-bench COMMAND [OPTIONS]

commands:
  all          echo workloads, memory per idle connection and handshakes
  echo         only the closed-loop echo workloads
  memory       only memory per idle connection
  handshakes   only handshakes per second
  latency      broadcast fan-out and the fixed-rate open loop, written to their own
               generated block (it does not replace the tables of `all`)
  broadcast    only broadcast fan-out (ours-broadcast vs warp-chat)
  open-loop    only the fixed-rate open-loop echo (ours vs warp-ws by default)
  deflate      permessage-deflate: JSON chat echo (ours --deflate, ours, warp-ws) and memory
               per idle connection with deflate, written to their own generated block
  cluster      clusters over Redis (echo built with --features redis, redis-server
               installed): cross-node fan-out over 3 nodes, point-to-point between 2 nodes,
               Redis' return, each against one node; its own generated block
  cluster --scale
               --subscribers N (default 19000) over 4 nodes against one node; its own block
  history      room history (echo --room / --history N): CPU per delivery with history on
               and off on 1 node and on 3 nodes over Redis, and the time to recover 100
               missed messages on 1 node and across 2 nodes; its own block (the cluster
               rows need echo built with --features redis and redis-server)
  metrics      the feature `metrics`: the echo workloads and two broadcast workloads (paced,
               in bursts) with our echo built without the feature (--ours, if it lacks it),
               built with it and no recorder, and with it and the Prometheus recorder
               (--ours-metrics, run with --metrics 127.0.0.1:0, /metrics scraped once per
               run), against raw warp::ws; its own generated block
  scale        connection scale in one process: a storm of 1,000, 5,000 and 19,000
               connections (128 connectors at a time), then a broadcast from one of them to
               all the others, for ours-broadcast, warp-chat and tcp-fanout (a raw TCP
               fan-out floor); its own generated block
  smoke        a few hundred messages per server (deflate too), checks every echo; exit 1 on
               any error; a small cluster check when echo has the feature redis
               (also: --smoke)
  soak         a mixed run against secure_chat (built with --features metrics), then checks
               that its memory, descriptors and tasks are back to the baseline and that
               nothing panicked; exit 1 if not (its own options: ws-bench soak --help)

options:
  --rounds N          rounds, implementations interleaved in each (default 3)
  --secs S            measured seconds per echo run, and publishing seconds per broadcast
                      run (default 3)
  --warmup S          seconds of load before measuring (default 0.5)
  --idle N            idle connections for the memory figures (default 10000)
  --subscribers N     subscribers of `cluster --scale` (default 19000)
  --trials N          recoveries per setup and round of `history` (default 50)
  --handshakes N      handshakes per handshake run (default 10000)
  --only K1,K2        servers: ours, warp-ws, tungstenite, tungstenite-4k, tokio-websockets,
                      fastwebsockets, tcp-floor (default all); `ours` selects ours-deflate(-15)
                      in `deflate`;
                      `metrics` runs ours, ours-feature, ours-prometheus and warp-ws (each
                      with its broadcast twin);
                      `scale` runs ours-broadcast, warp-chat and tcp-fanout (`ours` selects
                      ours-broadcast)
  --workloads I,J     echo workloads by index 0-9 (default all; 4 is the pipelined burst)
  --fanouts I,J       broadcast workloads by index 0-5 (default all, 0,4 in `metrics`; 4 and 5
                      publish in bursts of 10)
  --rate N            open-loop messages per second over all connections (default 50000)
  --ours PATH         our echo binary (default target/release/examples/echo)
  --baseline PATH     another build of it (an older commit's), run as `ours-baseline`
                      beside `ours` in every round: `--only ours,ours-baseline`
  --client C          the closed-loop echo's client: `own` (default, hand-written, cheapest)
                      or `tungstenite` (tokio-tungstenite's client, one send per echo; not
                      for the pipelined burst, which always uses `own`)
  --ours-metrics PATH our echo binary built with --features metrics, for `metrics` and
                      `smoke` (default target/release/examples/echo)
  --markdown FILE     write the tables into FILE between the generated markers
  --no-pin            do not pin server and client to CPUs 0 and 1
";

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut options = Options {
        parts: Parts {
            echo: true,
            memory: true,
            handshakes: true,
            broadcast: false,
            open_loop: false,
            deflate: false,
        },
        open_loop_rate: 50_000,
        smoke: false,
        rounds: 3,
        secs: 3.0,
        warmup: 0.5,
        idle: 10_000,
        handshake_count: 10_000,
        kinds: Kind::ALL.to_vec(),
        workloads: TABLE_ORDER.to_vec(),
        fanouts: (0..FANOUTS.len()).collect(),
        markdown: None,
        ours: default_ours(),
        ours_built: None,
        ours_metrics: default_ours(),
        baseline: PathBuf::new(),
        tungstenite_client: false,
        ours_metrics_built: None,
        metrics: false,
        pin: true,
        ticks_per_sec: 100,
        cluster: None,
        subscribers: 19_000,
        history: false,
        scale: false,
        trials: 50,
        nofile: 1024,
    };
    let command = args.next().ok_or("missing command")?;
    if command_parts(&mut options, &command)? {
        return Err(String::new());
    }
    parse_flags(&mut options, args)?;
    if options.rounds == 0
        || options.trials == 0
        || options.secs <= 0.0
        || options.warmup < 0.0
        || options.open_loop_rate == 0
    {
        return Err("--rounds, --trials and --secs must be positive".into());
    }
    Ok(options)
}

/// Applies `command` to `options`; `Ok(true)` asks for the usage text.
fn command_parts(options: &mut Options, command: &str) -> Result<bool, String> {
    match command {
        "all" => {}
        "echo" => (options.parts.memory, options.parts.handshakes) = (false, false),
        "memory" => (options.parts.echo, options.parts.handshakes) = (false, false),
        "handshakes" => (options.parts.echo, options.parts.memory) = (false, false),
        "broadcast" | "open-loop" | "latency" => {
            options.parts = Parts {
                echo: false,
                memory: false,
                handshakes: false,
                broadcast: command != "open-loop",
                open_loop: command != "broadcast",
                deflate: false,
            };
            // The open loop compares ours with raw warp::ws unless --only says otherwise.
            options.kinds = vec![Kind::Ours, Kind::Warp];
        }
        "deflate" => {
            options.parts = Parts {
                echo: false,
                memory: false,
                handshakes: false,
                broadcast: false,
                open_loop: false,
                deflate: true,
            };
        }
        "cluster" => {
            options.cluster = Some(cluster::Mode::Rows);
            options.kinds = vec![Kind::OursBroadcast];
        }
        "history" => {
            options.history = true;
            options.kinds = vec![Kind::OursBroadcast];
        }
        "scale" => {
            options.scale = true;
            options.kinds = scale::KINDS.to_vec();
        }
        "metrics" => {
            options.metrics = true;
            options.parts = Parts {
                echo: true,
                memory: false,
                handshakes: false,
                broadcast: true,
                open_loop: false,
                deflate: false,
            };
            options.kinds = metrics::KINDS.to_vec();
            options.fanouts = metrics::FANOUTS.to_vec();
        }
        "smoke" | "--smoke" => options.smoke = true,
        "help" | "--help" | "-h" => return Ok(true),
        other => return Err(format!("unknown command {other:?}")),
    }
    Ok(false)
}

/// Applies the options after the command.
fn parse_flags(
    options: &mut Options,
    mut args: impl Iterator<Item = String>,
) -> Result<(), String> {
    while let Some(flag) = args.next() {
        if flag == "--no-pin" {
            options.pin = false;
            continue;
        }
        if flag == "--smoke" {
            options.smoke = true;
            continue;
        }
        if flag == "--scale" {
            options.cluster = Some(cluster::Mode::Scale);
            continue;
        }
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--rounds" => options.rounds = value.parse().map_err(|e| bad(&e))?,
            "--secs" => options.secs = value.parse().map_err(|e| bad(&e))?,
            "--warmup" => options.warmup = value.parse().map_err(|e| bad(&e))?,
            "--idle" => options.idle = value.parse().map_err(|e| bad(&e))?,
            "--subscribers" => options.subscribers = value.parse().map_err(|e| bad(&e))?,
            "--trials" => options.trials = value.parse().map_err(|e| bad(&e))?,
            "--rate" => options.open_loop_rate = value.parse().map_err(|e| bad(&e))?,
            "--handshakes" => options.handshake_count = value.parse().map_err(|e| bad(&e))?,
            "--ours" => options.ours = PathBuf::from(&value),
            "--ours-metrics" => options.ours_metrics = PathBuf::from(&value),
            "--baseline" => options.baseline = PathBuf::from(&value),
            "--client" => {
                options.tungstenite_client = match value.as_str() {
                    "tungstenite" => true,
                    "own" => false,
                    other => {
                        return Err(format!("--client: `own` or `tungstenite`, not {other:?}"));
                    }
                }
            }
            "--markdown" => options.markdown = Some(PathBuf::from(&value)),
            "--only" => {
                options.kinds = value
                    .split(',')
                    .map(|name| Kind::parse(name).ok_or_else(|| bad(&"unknown server")))
                    .collect::<Result<_, _>>()?;
            }
            "--workloads" => {
                options.workloads = value
                    .split(',')
                    .map(|i| match i.parse::<usize>() {
                        Ok(i) if i < WORKLOADS.len() => Ok(i),
                        _ => Err(bad(&"no such workload")),
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--fanouts" => {
                options.fanouts = value
                    .split(',')
                    .map(|i| match i.parse::<usize>() {
                        Ok(i) if i < FANOUTS.len() => Ok(i),
                        _ => Err(bad(&"no such broadcast workload")),
                    })
                    .collect::<Result<_, _>>()?;
            }
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    Ok(())
}

/// `target/release/examples/echo` of this workspace (the bench lives in `bench/`).
fn default_ours() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/examples/echo")
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("serve") {
        let kind = args.nth(1).and_then(|name| Kind::parse(&name));
        let Some(kind) = kind else {
            eprintln!("usage: ws-bench serve KIND");
            return ExitCode::from(2);
        };
        return match servers::serve(kind) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("ws-bench serve {}: {err}", kind.name());
                ExitCode::FAILURE
            }
        };
    }
    if args.peek().map(String::as_str) == Some("soak") {
        return soak::main(args.skip(1));
    }
    let mut options = match parse_args(args) {
        Ok(options) => options,
        Err(err) => {
            if !err.is_empty() {
                eprintln!("ws-bench: {err}\n");
            }
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let wants_ours = options.kinds.iter().any(|kind| {
        matches!(
            kind,
            Kind::Ours | Kind::OursBroadcast | Kind::OursDeflate | Kind::OursDeflate15
        ) || kind.has_feature()
    });
    if options.kinds.contains(&Kind::OursBaseline) && !options.baseline.is_file() {
        eprintln!("ws-bench: `ours-baseline` needs --baseline PATH (an examples/echo binary)");
        return ExitCode::FAILURE;
    }
    if wants_ours && !options.ours.is_file() {
        eprintln!(
            "ws-bench: {} not found; build it first: cargo build --release --example echo -p warpsocket",
            options.ours.display()
        );
        return ExitCode::FAILURE;
    }
    // Removed (by drop) when main returns.
    let _snapshots = match snapshots(&mut options, wants_ours) {
        Ok(snapshots) => snapshots,
        Err(err) => {
            eprintln!("ws-bench: {err}");
            return ExitCode::FAILURE;
        }
    };
    // Before any thread exists, so that every thread of the client inherits the mask.
    if options.pin && !(procs::have_taskset() && procs::pin_self()) {
        eprintln!("ws-bench: taskset unavailable, running unpinned");
        options.pin = false;
    }
    let nofile = procs::raise_nofile().unwrap_or(1024);
    options.nofile = nofile;
    let needed = options.idle as u64 + 256;
    if (options.parts.memory || options.parts.deflate) && !options.smoke && nofile < needed {
        eprintln!("ws-bench: open-file limit {nofile} < {needed}; lowering --idle");
        options.idle = usize::try_from(nofile.saturating_sub(256))
            .unwrap_or(0)
            .max(1);
    }
    options.ticks_per_sec = procs::clock_ticks();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("ws-bench: {err}");
            return ExitCode::FAILURE;
        }
    };
    if options.smoke {
        return runtime.block_on(smoke(&options));
    }
    if let Some(mode) = options.cluster {
        return run_cluster(&options, mode, &runtime);
    }
    if options.history {
        return runtime.block_on(history::main(&options));
    }
    if options.metrics {
        return runtime.block_on(metrics::main(&options));
    }
    if options.scale {
        return runtime.block_on(scale::main(&options));
    }
    let results = runtime.block_on(bench(&options));
    let markdown = report::render(&options, &results);
    crate::report::publish(
        options.markdown.as_deref(),
        &markdown,
        results.failures.is_empty(),
    )
}

/// Copies our echo binaries (`--ours`, and `--ours-metrics` when a run or `smoke` uses it and
/// it is there) so that one build serves the whole run, and points `options` at the copies.
fn snapshots(options: &mut Options, wants_ours: bool) -> Result<Vec<procs::Snapshot>, String> {
    let mut snapshots = Vec::new();
    if wants_ours {
        options.ours_built = procs::modified_utc(&options.ours);
        let snapshot = procs::Snapshot::take(&options.ours, "")
            .map_err(|err| format!("copying {}: {err}", options.ours.display()))?;
        snapshot.path().clone_into(&mut options.ours);
        snapshots.push(snapshot);
    }
    if options.kinds.contains(&Kind::OursBaseline) {
        let snapshot = procs::Snapshot::take(&options.baseline, "baseline")
            .map_err(|err| format!("copying {}: {err}", options.baseline.display()))?;
        snapshot.path().clone_into(&mut options.baseline);
        snapshots.push(snapshot);
    }
    let wants_feature = options.kinds.iter().any(|kind| kind.has_feature())
        || (options.smoke && options.kinds.contains(&Kind::Ours));
    if wants_feature {
        if !options.ours_metrics.is_file() {
            if options.smoke {
                // `smoke` skips the rows of the feature then.
                return Ok(snapshots);
            }
            return Err(format!(
                "{} not found; build it first: cargo build --release --example echo -p warpsocket --features metrics",
                options.ours_metrics.display()
            ));
        }
        options.ours_metrics_built = procs::modified_utc(&options.ours_metrics);
        let snapshot = procs::Snapshot::take(&options.ours_metrics, "metrics")
            .map_err(|err| format!("copying {}: {err}", options.ours_metrics.display()))?;
        snapshot.path().clone_into(&mut options.ours_metrics);
        snapshots.push(snapshot);
    }
    Ok(snapshots)
}

/// `ws-bench cluster [--scale]`, after a check of the open-file limit for `--scale`.
fn run_cluster(
    options: &Options,
    mode: cluster::Mode,
    runtime: &tokio::runtime::Runtime,
) -> ExitCode {
    // The load generator holds every subscriber socket and the publisher, plus a few.
    let needed = options.subscribers as u64 + 64;
    if mode == cluster::Mode::Scale && options.nofile < needed {
        eprintln!(
            "ws-bench: open-file limit {} < {needed} for {} subscribers in one load generator; \
             lower --subscribers",
            options.nofile, options.subscribers
        );
        return ExitCode::FAILURE;
    }
    runtime.block_on(cluster::main(options, mode))
}

/// Runs every selected measurement, implementations interleaved (in a rotated order) each round.
async fn bench(options: &Options) -> Results {
    let mut results = Results::default();
    let started = Instant::now();
    for round in 0..options.rounds {
        let mut kinds = options.kinds.clone();
        let shift = round % kinds.len().max(1);
        kinds.rotate_left(shift);
        if options.parts.echo {
            for &w in &options.workloads {
                for &kind in &kinds {
                    let workload = WORKLOADS[w];
                    match with_server(options, kind, async |s| {
                        measure_echo(options, s, &workload).await
                    })
                    .await
                    {
                        Ok(sample) => {
                            eprintln!(
                                "[{:>4.0}s] round {} {:<34} {:<17} {:>10.0} msg/s {:>7.3} µs/msg server, {:>3.0}% server core, {:>3.0}% client core",
                                started.elapsed().as_secs_f64(),
                                round + 1,
                                workload.name,
                                kind.name(),
                                sample.rate,
                                sample.server_us,
                                sample.server_busy * 100.0,
                                sample.client_busy * 100.0,
                            );
                            results.echo.push(EchoSample {
                                round,
                                kind,
                                workload: w,
                                ..sample
                            });
                        }
                        Err(err) => results.fail(round, kind, workload.name, &err),
                    }
                }
            }
        }
        if options.parts.memory {
            memory_round(options, round, &kinds, started, &mut results).await;
        }
        if options.parts.handshakes {
            handshake_round(options, round, &kinds, started, &mut results).await;
        }
        if options.parts.open_loop {
            open_loop_round(options, round, &kinds, started, &mut results).await;
        }
        if options.parts.broadcast {
            broadcast_round(options, round, started, &mut results).await;
        }
        if options.parts.deflate {
            deflate_round(options, round, started, &mut results).await;
        }
    }
    results.elapsed = started.elapsed();
    results
}

/// The memory runs of one round, servers in the round's order.
async fn memory_round(
    options: &Options,
    round: usize,
    kinds: &[Kind],
    started: Instant,
    results: &mut Results,
) {
    for &kind in kinds {
        match with_server(options, kind, async |s| {
            measure_memory(options, s, None).await
        })
        .await
        {
            Ok(sample) => {
                eprintln!(
                    "[{:>4.0}s] round {} memory {:<17} {:>7.2} KiB/conn idle, {:>7.2} KiB/conn after one echo",
                    started.elapsed().as_secs_f64(),
                    round + 1,
                    kind.name(),
                    sample.idle_kib,
                    sample.used_kib
                );
                results.memory.push(MemorySample {
                    round,
                    kind,
                    ..sample
                });
            }
            Err(err) => results.fail(round, kind, "memory", &err),
        }
    }
}

/// The handshake runs of one round, servers in the round's order.
async fn handshake_round(
    options: &Options,
    round: usize,
    kinds: &[Kind],
    started: Instant,
    results: &mut Results,
) {
    for &kind in kinds {
        match with_server(options, kind, async |s| {
            measure_handshakes(options, s).await
        })
        .await
        {
            Ok(sample) => {
                eprintln!(
                    "[{:>4.0}s] round {} handshakes {:<17} {:>8.0}/s {:>7.1} µs server CPU each",
                    started.elapsed().as_secs_f64(),
                    round + 1,
                    kind.name(),
                    sample.rate,
                    sample.server_us
                );
                results.handshakes.push(HandshakeSample {
                    round,
                    kind,
                    ..sample
                });
            }
            Err(err) => results.fail(round, kind, "handshakes", &err),
        }
    }
}

/// The open-loop runs of one round, servers in the round's order.
async fn open_loop_round(
    options: &Options,
    round: usize,
    kinds: &[Kind],
    started: Instant,
    results: &mut Results,
) {
    for &kind in kinds {
        match with_server(options, kind, async |s| measure_open_loop(options, s).await).await {
            Ok(sample) => {
                eprintln!(
                    "[{:>4.0}s] round {} open loop {:<17} {:>8.0} echoes/s p50 {:>7.0} µs p99 {:>7.0} µs, {:>5.2} µs server CPU/msg, {:>3.0}% server core, {:>3.0}% client core",
                    started.elapsed().as_secs_f64(),
                    round + 1,
                    kind.name(),
                    sample.rate,
                    sample.p50_us,
                    sample.p99_us,
                    sample.server_us,
                    sample.server_busy * 100.0,
                    sample.client_busy * 100.0,
                );
                results.open_loop.push(OpenLoopSample {
                    round,
                    kind,
                    ..sample
                });
            }
            Err(err) => results.fail(round, kind, "open loop", &err),
        }
    }
}

/// The broadcast runs of one round, servers in a rotated order.
async fn broadcast_round(options: &Options, round: usize, started: Instant, results: &mut Results) {
    let mut kinds = broadcast_kinds(options);
    let shift = round % kinds.len().max(1);
    kinds.rotate_left(shift);
    for &f in &options.fanouts {
        for &kind in &kinds {
            let fanout = FANOUTS[f];
            match with_server(options, kind, async |s| {
                measure_broadcast(options, s, f).await
            })
            .await
            {
                Ok(sample) => {
                    eprintln!(
                        "[{:>4.0}s] round {} {:<44} {:<15} p50 {:>8.0} µs p99 {:>8.0} µs, {:>6.2} µs server CPU/delivery, {:>3.0}% server core, {:>3.0}% client core",
                        started.elapsed().as_secs_f64(),
                        round + 1,
                        fanout.name(),
                        kind.name(),
                        sample.p50_us,
                        sample.p99_us,
                        sample.server_us,
                        sample.server_busy * 100.0,
                        sample.client_busy * 100.0,
                    );
                    results.broadcast.push(BroadcastSample {
                        round,
                        kind,
                        fanout: f,
                        ..sample
                    });
                }
                Err(err) => results.fail(round, kind, &fanout.name(), &err),
            }
        }
    }
}

/// The permessage-deflate runs of one round: the JSON chat echo, then memory, rows in a rotated
/// order.
async fn deflate_round(options: &Options, round: usize, started: Instant, results: &mut Results) {
    let mut variants = deflate_variants(options);
    let shift = round % variants.len().max(1);
    variants.rotate_left(shift);
    for &v in &variants {
        let variant = VARIANTS[v];
        match with_server(options, variant.kind, async |s| {
            measure_chat(options, s, &variant).await
        })
        .await
        {
            Ok(sample) => {
                eprintln!(
                    "[{:>4.0}s] round {} JSON chat {:<60} {:>8.0} msg/s {:>6.2} µs/msg server, ratio out {:.2} in {:.2}, {:>3.0}% server core, {:>3.0}% client core",
                    started.elapsed().as_secs_f64(),
                    round + 1,
                    variant.label.replace("**", ""),
                    sample.rate,
                    sample.server_us,
                    sample.plain_out / sample.wire_out,
                    sample.plain_in / sample.wire_in,
                    sample.server_busy * 100.0,
                    sample.client_busy * 100.0,
                );
                results.deflate.push(DeflateSample {
                    round,
                    variant: v,
                    ..sample
                });
            }
            Err(err) => results.fail(round, variant.kind, variant.label, &err),
        }
    }
    for &v in &variants {
        let variant = VARIANTS[v];
        if !variant.memory {
            continue;
        }
        match with_server(options, variant.kind, async |s| {
            measure_memory(options, s, Some(&variant)).await
        })
        .await
        {
            Ok(sample) => {
                eprintln!(
                    "[{:>4.0}s] round {} memory {:<60} {:>7.1} KiB/conn idle, {:>7.1} KiB/conn after one echo, {:>7.1} after {}",
                    started.elapsed().as_secs_f64(),
                    round + 1,
                    variant.label.replace("**", ""),
                    sample.idle_kib,
                    sample.used_kib,
                    sample.long_kib,
                    1 + deflate::LONG_ECHOES,
                );
                results.deflate_memory.push(DeflateMemorySample {
                    round,
                    variant: v,
                    base_kib: sample.base_kib,
                    idle_kib: sample.idle_kib,
                    used_kib: sample.used_kib,
                    long_kib: sample.long_kib,
                });
            }
            Err(err) => results.fail(round, variant.kind, variant.label, &err),
        }
    }
}

/// The rows of [`VARIANTS`] whose server `--only` selects (`ours` selects `ours-deflate` too).
pub(crate) fn deflate_variants(options: &Options) -> Vec<usize> {
    (0..VARIANTS.len())
        .filter(|&v| {
            let kind = VARIANTS[v].kind;
            options.kinds.contains(&kind)
                || (Kind::DEFLATE.contains(&kind) && options.kinds.contains(&Kind::Ours))
        })
        .collect()
}

/// The JSON chat echo of one row for `options.secs` after `options.warmup`.
async fn measure_chat(
    options: &Options,
    server: &Server,
    variant: &Variant,
) -> io::Result<DeflateSample> {
    let run = deflate::run_chat(
        server,
        variant,
        deflate::CHAT_CONNS,
        options.warmup,
        options.secs,
    )
    .await?;
    let elapsed = run.elapsed.as_secs_f64();
    let counts = run.counts;
    let messages = counts.echoes.max(1) as f64;
    let sent = counts.sent.max(1) as f64;
    // `examples/echo --deflate` compresses every message (threshold 0) that shrinks; one that
    // would not shrink goes back uncompressed, as RFC 7692 allows.
    if variant.deflate && counts.compressed_in == 0 {
        return Err(io::Error::other(format!(
            "{} of {} echoes came back compressed",
            counts.compressed_in, counts.echoes
        )));
    }
    let (server_us, client_us) = (
        ticks_to_us(options, run.server_ticks),
        ticks_to_us(options, run.client_ticks),
    );
    Ok(DeflateSample {
        round: 0,
        variant: 0,
        agreed: run.agreed,
        rate: messages / elapsed,
        server_us: server_us / messages,
        client_us: client_us / messages,
        server_busy: server_us / 1e6 / elapsed,
        client_busy: client_us / 1e6 / elapsed,
        plain_out: counts.plain_out as f64 / sent,
        wire_out: counts.wire_out as f64 / sent,
        plain_in: counts.plain_in as f64 / messages,
        wire_in: counts.wire_in as f64 / messages,
    })
}

/// The broadcast servers selected by `--only` (`ours` and `warp-ws` select their broadcast
/// counterparts).
pub(crate) fn broadcast_kinds(options: &Options) -> Vec<Kind> {
    Kind::BROADCAST
        .into_iter()
        .filter(|&kind| {
            let twin = match kind {
                Kind::OursBroadcast => Kind::Ours,
                _ => Kind::Warp,
            };
            options.kinds.contains(&kind) || options.kinds.contains(&twin)
        })
        .collect()
}

/// One broadcast run of `FANOUTS[f]` for `options.secs` of publishing.
pub(crate) async fn measure_broadcast(
    options: &Options,
    server: &Server,
    f: usize,
) -> io::Result<BroadcastSample> {
    let fanout = FANOUTS[f];
    let messages = ceil_count(f64::from(fanout.rate) * options.secs).max(fanout::MIN_MESSAGES)
        + fanout::WARMUP_MESSAGES;
    let run = fanout::run(
        server,
        fanout.subscribers,
        fanout.size,
        (fanout.rate, fanout.burst),
        messages,
    )
    .await?;
    let deliveries = (run.messages * fanout.subscribers as u64) as f64;
    let elapsed = run.elapsed.as_secs_f64();
    let (server_us, client_us) = (
        ticks_to_us(options, run.server_ticks),
        ticks_to_us(options, run.client_ticks),
    );
    Ok(BroadcastSample {
        round: 0,
        kind: Kind::Tcp,
        fanout: f,
        p50_us: fanout::quantile(&run.latencies_us, 0.5),
        p99_us: fanout::quantile(&run.latencies_us, 0.99),
        server_us: server_us / deliveries,
        client_us: client_us / deliveries,
        server_busy: server_us / 1e6 / elapsed,
        client_busy: client_us / 1e6 / elapsed,
    })
}

/// The fixed-rate open loop: [`OPEN_LOOP_CONNS`] connections share `options.open_loop_rate`,
/// each on its own schedule (staggered), for `options.warmup + options.secs`; the latencies of
/// messages scheduled in the warm-up are left out.
async fn measure_open_loop(options: &Options, server: &Server) -> io::Result<OpenLoopSample> {
    let conns = open_many(server, OPEN_LOOP_CONNS).await?;
    let per_conn = f64::from(options.open_loop_rate) / OPEN_LOOP_CONNS as f64;
    let interval = Duration::from_secs_f64(1.0 / per_conn);
    let count = ceil_count(per_conn * (options.warmup + options.secs));
    let skip = usize::try_from(ceil_count(per_conn * options.warmup)).unwrap_or(usize::MAX);
    let payload = Arc::new(Payload::new(false, OPEN_LOOP_SIZE, 1));
    let websocket = server.target.websocket;
    let start = Instant::now() + Duration::from_millis(50);
    let (s0, c0) = (server.cpu_ticks()?, procs::cpu_ticks("self")?);
    let mut tasks = JoinSet::new();
    for (c, conn) in conns.into_iter().enumerate() {
        let first = start + interval.mul_f64(c as f64 / OPEN_LOOP_CONNS as f64);
        let payload = payload.clone();
        tasks.spawn(async move {
            conn.open_loop(websocket, &payload, first, interval, count)
                .await
        });
    }
    let mut latencies = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let mine = done.map_err(io::Error::other)??;
        latencies.extend_from_slice(mine.get(skip..).unwrap_or_default());
    }
    let (t1, s1, c1) = (
        Instant::now(),
        server.cpu_ticks()?,
        procs::cpu_ticks("self")?,
    );
    latencies.sort_by(f64::total_cmp);
    let elapsed = (t1 - start).as_secs_f64();
    let messages = (count * OPEN_LOOP_CONNS as u64) as f64;
    let (server_us, client_us) = (ticks_to_us(options, s1 - s0), ticks_to_us(options, c1 - c0));
    Ok(OpenLoopSample {
        round: 0,
        kind: Kind::Tcp,
        rate: messages / elapsed,
        p50_us: fanout::quantile(&latencies, 0.5),
        p99_us: fanout::quantile(&latencies, 0.99),
        server_us: server_us / messages,
        server_busy: server_us / 1e6 / elapsed,
        client_busy: client_us / 1e6 / elapsed,
    })
}

/// Starts a fresh server of `kind`, runs `measure` against it (bounded to 120 s), stops it.
pub(crate) async fn with_server<T>(
    options: &Options,
    kind: Kind,
    measure: impl AsyncFnOnce(&Server) -> io::Result<T>,
) -> io::Result<T> {
    let server = Server::start(
        kind,
        (&options.ours, &options.ours_metrics, &options.baseline),
        options.pin,
    )
    .await?;
    let outcome = tokio::time::timeout(Duration::from_secs(120), measure(&server)).await;
    server.stop().await;
    outcome.map_err(|_| io::Error::other("timed out after 120 s"))?
}

pub(crate) fn ticks_to_us(options: &Options, ticks: u64) -> f64 {
    ticks as f64 * 1e6 / options.ticks_per_sec as f64
}

/// Closed-loop echo for `options.secs` after `options.warmup`.
pub(crate) async fn measure_echo(
    options: &Options,
    server: &Server,
    workload: &Workload,
) -> io::Result<EchoSample> {
    let payload = Arc::new(Payload::new(workload.text, workload.size, workload.depth));
    let counter = Arc::new(AtomicU64::new(0));
    let websocket = server.target.websocket;
    let mut tasks = JoinSet::new();
    let burst = workload.burst;
    for _ in 0..workload.conns {
        let (payload, counter) = (payload.clone(), counter.clone());
        if options.tungstenite_client && websocket && !burst {
            let ws = tclient::connect(&server.target).await?;
            let depth = workload.depth;
            tasks.spawn(
                async move { tclient::echo(ws, &payload, depth, ECHO_LIMIT, &counter).await },
            );
            continue;
        }
        let mut conn = connect(&server.target).await?;
        tasks.spawn(async move {
            conn.echo(websocket, &payload, ECHO_LIMIT, &counter, burst)
                .await
        });
    }
    tokio::time::sleep(Duration::from_secs_f64(options.warmup)).await;
    check_running(&mut tasks)?;
    let (t0, m0) = (Instant::now(), counter.load(Ordering::Relaxed));
    let (s0, c0) = (server.cpu_ticks()?, procs::cpu_ticks("self")?);
    tokio::time::sleep(Duration::from_secs_f64(options.secs)).await;
    let (s1, c1) = (server.cpu_ticks()?, procs::cpu_ticks("self")?);
    let (t1, m1) = (Instant::now(), counter.load(Ordering::Relaxed));
    check_running(&mut tasks)?;
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    let elapsed = (t1 - t0).as_secs_f64();
    let messages = (m1 - m0).max(1) as f64;
    let (server_us, client_us) = (ticks_to_us(options, s1 - s0), ticks_to_us(options, c1 - c0));
    Ok(EchoSample {
        round: 0,
        kind: Kind::Tcp,
        workload: 0,
        rate: messages / elapsed,
        server_us: server_us / messages,
        client_us: client_us / messages,
        server_busy: server_us / 1e6 / elapsed,
        client_busy: client_us / 1e6 / elapsed,
    })
}

/// Fails if any connection task has ended with an error.
fn check_running(tasks: &mut JoinSet<io::Result<u64>>) -> io::Result<()> {
    while let Some(done) = tasks.try_join_next() {
        done.map_err(io::Error::other)??;
    }
    Ok(())
}

/// Opens `count` connections with [`CONNECTORS`] connectors at a time.
pub(crate) async fn open_many(server: &Server, count: usize) -> io::Result<Vec<Conn>> {
    open_many_with(server, count, None).await
}

/// [`open_many`], each connection offering the extensions in `offer`.
pub(crate) async fn open_many_with(
    server: &Server,
    count: usize,
    offer: Option<&'static str>,
) -> io::Result<Vec<Conn>> {
    open_to(&server.target, count, offer).await
}

/// Opens `count` connections to `target` with [`CONNECTORS`] connectors at a time, each
/// offering the extensions in `offer`.
pub(crate) async fn open_to(
    target: &client::Target,
    count: usize,
    offer: Option<&'static str>,
) -> io::Result<Vec<Conn>> {
    let mut tasks = JoinSet::new();
    let connectors = usize::try_from(CONNECTORS).unwrap_or(32);
    for i in 0..connectors {
        let share = count / connectors + usize::from(i < count % connectors);
        let target = target.clone();
        tasks.spawn(async move {
            let mut conns = Vec::with_capacity(share);
            for _ in 0..share {
                conns.push(connect_with(&target, offer).await?);
            }
            Ok::<_, io::Error>(conns)
        });
    }
    let mut conns = Vec::with_capacity(count);
    while let Some(done) = tasks.join_next().await {
        conns.extend(done.map_err(io::Error::other)??);
    }
    Ok(conns)
}

/// RSS growth per connection: after `options.idle` upgrades, and after one 1 KiB echo on each.
/// With a `chat` row, each connection offers permessage-deflate as the row says and its echo
/// is one JSON chat message (compressed both ways if agreed).
async fn measure_memory(
    options: &Options,
    server: &Server,
    chat: Option<&Variant>,
) -> io::Result<MemorySample> {
    let count = if options.smoke { 20 } else { options.idle };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let base = server.rss_kib()?;
    let conns = open_many_with(server, count, chat.map(|v| v.offer)).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = server.rss_kib()?;
    let connectors = usize::try_from(CONNECTORS).unwrap_or(32);
    // One echo on each connection, 32 connections at a time; the connections stay open.
    let (used, long) = if let Some(variant) = chat {
        let open = deflate::echo_once(conns, variant, connectors).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let used = server.rss_kib()?;
        // Then enough more to fill every window: a long-lived chat connection.
        let open = deflate::echo_more(open).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let long = server.rss_kib()?;
        drop(open);
        (used, Some(long))
    } else {
        let open = echo_once(server, conns, connectors).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let used = server.rss_kib()?;
        drop(open);
        (used, None)
    };
    let per_conn = |after: u64| after.saturating_sub(base) as f64 / count as f64;
    Ok(MemorySample {
        round: 0,
        kind: Kind::Tcp,
        base_kib: base,
        idle_kib: per_conn(idle),
        used_kib: per_conn(used),
        long_kib: long.map_or(0.0, per_conn),
    })
}

/// One 1 KiB text echo on each connection, `connectors` connections at a time.
async fn echo_once(server: &Server, conns: Vec<Conn>, connectors: usize) -> io::Result<Vec<Conn>> {
    let payload = Arc::new(Payload::new(true, 1024, 1));
    let counter = Arc::new(AtomicU64::new(0));
    let websocket = server.target.websocket;
    let mut tasks = JoinSet::new();
    let mut chunks: Vec<Vec<Conn>> = (0..connectors.max(1)).map(|_| Vec::new()).collect();
    let count = conns.len();
    for (i, conn) in conns.into_iter().enumerate() {
        let n = chunks.len();
        chunks[i % n].push(conn);
    }
    for mut chunk in chunks {
        let (payload, counter) = (payload.clone(), counter.clone());
        tasks.spawn(async move {
            for conn in &mut chunk {
                conn.echo(websocket, &payload, 1, &counter, false).await?;
            }
            Ok::<_, io::Error>(chunk)
        });
    }
    let mut conns = Vec::with_capacity(count);
    while let Some(done) = tasks.join_next().await {
        conns.extend(done.map_err(io::Error::other)??);
    }
    Ok(conns)
}

/// `options.handshake_count` upgrades by [`CONNECTORS`] concurrent connectors; each connection
/// is dropped as soon as its 101 has been checked.
async fn measure_handshakes(options: &Options, server: &Server) -> io::Result<HandshakeSample> {
    let total = if options.smoke {
        64
    } else {
        options.handshake_count
    };
    let next = Arc::new(AtomicU64::new(0));
    let (t0, s0) = (Instant::now(), server.cpu_ticks()?);
    let mut tasks = JoinSet::new();
    for _ in 0..CONNECTORS {
        let (next, target) = (next.clone(), server.target.clone());
        tasks.spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < total {
                drop(connect(&target).await?);
            }
            Ok::<_, io::Error>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(io::Error::other)??;
    }
    let (t1, s1) = (Instant::now(), server.cpu_ticks()?);
    let elapsed = (t1 - t0).as_secs_f64();
    Ok(HandshakeSample {
        round: 0,
        kind: Kind::Tcp,
        rate: total as f64 / elapsed,
        server_us: ticks_to_us(options, s1 - s0) / total as f64,
    })
}

/// Every server, every workload, a few messages per connection; every echo checked.
async fn smoke(options: &Options) -> ExitCode {
    let started = Instant::now();
    let mut failed = 0;
    for &kind in &options.kinds {
        let outcome = with_server(options, kind, async |server| {
            let echoed = smoke_echo(options, server).await?;
            measure_memory(options, server, None).await?;
            measure_handshakes(options, server).await?;
            Ok(echoed)
        })
        .await;
        match outcome {
            Ok(echoed) => eprintln!(
                "smoke {:<17} ok: {echoed} messages echoed and checked, 20 idle connections, 64 handshakes",
                kind.name()
            ),
            Err(err) => {
                failed += 1;
                eprintln!("smoke {:<17} FAILED: {err}", kind.name());
            }
        }
    }
    let broadcast = broadcast_kinds(options);
    for &kind in &broadcast {
        let outcome =
            with_server(options, kind, async |server| smoke_broadcast(server).await).await;
        match outcome {
            Ok(()) => eprintln!(
                "smoke {:<17} ok: 3 × {SMOKE_BROADCASTS} broadcasts (64 B, 1 KiB, 64 B in bursts of 10) to {SMOKE_SUBSCRIBERS} subscribers, every byte checked",
                kind.name()
            ),
            Err(err) => {
                failed += 1;
                eprintln!("smoke {:<17} FAILED: {err}", kind.name());
            }
        }
    }
    let (deflate_runs, deflate_failed) = smoke_deflate(options).await;
    failed += deflate_failed;
    let (cluster_runs, cluster_failed) = cluster::smoke_row(options).await;
    failed += cluster_failed;
    let (history_runs, history_failed) = history::smoke_rows(options).await;
    failed += history_failed;
    let (metrics_runs, metrics_failed) = metrics::smoke_rows(options).await;
    failed += metrics_failed;
    let passed = options.kinds.len()
        + broadcast.len()
        + deflate_runs
        + cluster_runs
        + history_runs
        + metrics_runs
        - failed;
    eprintln!("smoke finished in {:.1} s", started.elapsed().as_secs_f64());
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The echo workloads of `smoke` against `server`: a few messages per connection (two whole
/// bursts for the burst workload), every echo checked. Returns the messages echoed.
pub(crate) async fn smoke_echo(options: &Options, server: &Server) -> io::Result<u64> {
    let mut echoed = 0;
    for &w in &options.workloads {
        let workload = WORKLOADS[w];
        let payload = Arc::new(Payload::new(workload.text, workload.size, workload.depth));
        let counter = Arc::new(AtomicU64::new(0));
        let mut tasks = JoinSet::new();
        // A burst workload sends two whole bursts.
        let limit = if workload.burst {
            2 * workload.depth as u64
        } else {
            SMOKE_MESSAGES
        };
        for _ in 0..workload.conns.min(SMOKE_CONNS) {
            let mut conn = connect(&server.target).await?;
            let (payload, counter) = (payload.clone(), counter.clone());
            let websocket = server.target.websocket;
            tasks.spawn(async move {
                conn.echo(websocket, &payload, limit, &counter, workload.burst)
                    .await
            });
        }
        while let Some(done) = tasks.join_next().await {
            let got = done.map_err(io::Error::other)??;
            if got != limit {
                return Err(io::Error::other(format!(
                    "{}: {got} echoes of {limit}",
                    workload.name
                )));
            }
            echoed += got;
        }
    }
    Ok(echoed)
}

/// The broadcast checks of `smoke` against `server`: 64 B, 1 KiB, and 64 B in bursts of 10,
/// each byte checked by every subscriber.
pub(crate) async fn smoke_broadcast(server: &Server) -> io::Result<()> {
    for (size, burst) in [(64, 1), (1024, 1), (64, 10)] {
        fanout::run(
            server,
            SMOKE_SUBSCRIBERS,
            size,
            (200, burst),
            SMOKE_BROADCASTS,
        )
        .await?;
    }
    Ok(())
}

/// The permessage-deflate rows of `smoke`: a few JSON chat messages per connection, every echo
/// inflated and checked, and 20 idle connections. Returns the runs and how many failed.
async fn smoke_deflate(options: &Options) -> (usize, usize) {
    let variants = deflate_variants(options);
    let mut failed = 0;
    for &v in &variants {
        let variant = VARIANTS[v];
        let outcome = with_server(options, variant.kind, async |server| {
            let counts = deflate::smoke_chat(server, &variant, SMOKE_CONNS, SMOKE_MESSAGES).await?;
            if variant.memory {
                measure_memory(options, server, Some(&variant)).await?;
            }
            Ok(counts)
        })
        .await;
        match outcome {
            Ok(counts) => eprintln!(
                "smoke {:<17} ok: {} JSON chat messages echoed and checked ({} came back compressed; payload bytes out {} → {} on the wire, in {} → {}){}: {}",
                variant.kind.name(),
                counts.echoes,
                counts.compressed_in,
                counts.plain_out,
                counts.wire_out,
                counts.wire_in,
                counts.plain_in,
                if variant.memory {
                    ", 20 idle connections"
                } else {
                    ""
                },
                variant.label.replace("**", ""),
            ),
            Err(err) => {
                failed += 1;
                eprintln!(
                    "smoke {:<17} FAILED: {}: {err}",
                    variant.kind.name(),
                    variant.label.replace("**", "")
                );
            }
        }
    }
    (variants.len(), failed)
}
