//! Samples, medians and ranges, ratios within a round, and the markdown tables.

use std::fmt::Write as _;
use std::io;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use crate::deflate::{
    CHAT_CONNS, CHAT_DEPTH, CHAT_MAX, CHAT_MESSAGES, CHAT_MIN, LONG_ECHOES, OURS_PLAIN, VARIANTS,
    WARP_PLAIN,
};
use crate::fanout::{FANOUTS, thousands};
use crate::servers::Kind;
use crate::{Block, CONNECTORS, Options, WORKLOADS};

/// The markers between which `--markdown` replaces the generated tables.
const BEGIN: &str = "<!-- ws-bench:begin (generated, do not edit by hand) -->";
const END: &str = "<!-- ws-bench:end -->";
/// The markers of the second block (broadcast fan-out and the open loop), written by `ws-bench
/// latency` (or `broadcast`, `open-loop`) without touching the block above.
const LATENCY_BEGIN: &str = "<!-- ws-bench:latency:begin (generated, do not edit by hand) -->";
const LATENCY_END: &str = "<!-- ws-bench:latency:end -->";
/// The markers of the third block (permessage-deflate), written by `ws-bench deflate`.
const DEFLATE_BEGIN: &str = "<!-- ws-bench:deflate:begin (generated, do not edit by hand) -->";
const DEFLATE_END: &str = "<!-- ws-bench:deflate:end -->";

/// One closed-loop echo run.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EchoSample {
    pub(crate) round: usize,
    pub(crate) kind: Kind,
    pub(crate) workload: usize,
    /// Echoed messages per second.
    pub(crate) rate: f64,
    /// Server CPU (user + system) per echoed message, µs.
    pub(crate) server_us: f64,
    /// Client CPU per echoed message, µs.
    pub(crate) client_us: f64,
    /// Fraction of one core the server used.
    pub(crate) server_busy: f64,
    /// Fraction of one core the client used.
    pub(crate) client_busy: f64,
}

/// One memory run.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MemorySample {
    pub(crate) round: usize,
    pub(crate) kind: Kind,
    /// RSS of the fresh server before any connection.
    pub(crate) base_kib: u64,
    /// RSS growth per connection after the upgrades.
    pub(crate) idle_kib: f64,
    /// RSS growth per connection after one 1 KiB echo on each.
    pub(crate) used_kib: f64,
    /// With deflate rows only (0 otherwise): after [`LONG_ECHOES`] more chat echoes on each.
    pub(crate) long_kib: f64,
}

/// One handshake run.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HandshakeSample {
    pub(crate) round: usize,
    pub(crate) kind: Kind,
    /// Completed upgrades per second.
    pub(crate) rate: f64,
    /// Server CPU per upgrade, µs.
    pub(crate) server_us: f64,
}

/// One broadcast fan-out run.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BroadcastSample {
    pub(crate) round: usize,
    pub(crate) kind: Kind,
    /// Index into [`FANOUTS`].
    pub(crate) fanout: usize,
    /// Publish→last-receiver latency, median and 99th percentile over the messages, µs.
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
    /// Server CPU per delivery (one message to one subscriber), µs.
    pub(crate) server_us: f64,
    /// Client CPU per delivery, µs.
    pub(crate) client_us: f64,
    /// Fraction of one core the server used.
    pub(crate) server_busy: f64,
    /// Fraction of one core the client used.
    pub(crate) client_busy: f64,
}

/// One fixed-rate open-loop echo run.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OpenLoopSample {
    pub(crate) round: usize,
    pub(crate) kind: Kind,
    /// Echoes received per second (the offered rate, if the server keeps up).
    pub(crate) rate: f64,
    /// Latency from the scheduled send time, µs.
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
    /// Server CPU per echoed message, µs.
    pub(crate) server_us: f64,
    pub(crate) server_busy: f64,
    pub(crate) client_busy: f64,
}

/// One JSON chat echo run of a row of [`VARIANTS`].
#[derive(Clone, Debug)]
pub(crate) struct DeflateSample {
    pub(crate) round: usize,
    /// Index into [`VARIANTS`].
    pub(crate) variant: usize,
    /// The server's `Sec-WebSocket-Extensions` answer, `none` if it declined.
    pub(crate) agreed: String,
    pub(crate) rate: f64,
    pub(crate) server_us: f64,
    pub(crate) client_us: f64,
    pub(crate) server_busy: f64,
    pub(crate) client_busy: f64,
    /// Mean payload bytes per message: sent, before and after compression; received, on the
    /// wire and inflated.
    pub(crate) plain_out: f64,
    pub(crate) wire_out: f64,
    pub(crate) plain_in: f64,
    pub(crate) wire_in: f64,
}

/// One memory run of a row of [`VARIANTS`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct DeflateMemorySample {
    pub(crate) round: usize,
    pub(crate) variant: usize,
    pub(crate) base_kib: u64,
    pub(crate) idle_kib: f64,
    pub(crate) used_kib: f64,
    pub(crate) long_kib: f64,
}

/// Everything one `ws-bench` run measured.
#[derive(Debug, Default)]
pub(crate) struct Results {
    pub(crate) echo: Vec<EchoSample>,
    pub(crate) memory: Vec<MemorySample>,
    pub(crate) handshakes: Vec<HandshakeSample>,
    pub(crate) broadcast: Vec<BroadcastSample>,
    pub(crate) open_loop: Vec<OpenLoopSample>,
    pub(crate) deflate: Vec<DeflateSample>,
    pub(crate) deflate_memory: Vec<DeflateMemorySample>,
    pub(crate) failures: Vec<String>,
    pub(crate) elapsed: Duration,
}

impl Results {
    /// Records (and prints) a failed run.
    pub(crate) fn fail(&mut self, round: usize, kind: Kind, what: &str, err: &io::Error) {
        let line = format!("round {} {what} {}: {err}", round + 1, kind.name());
        eprintln!("FAILED {line}");
        self.failures.push(line);
    }
}

/// Median and range of a set of figures.
pub(crate) struct Spread {
    median: f64,
    min: f64,
    max: f64,
}

pub(crate) fn spread(values: impl IntoIterator<Item = f64>) -> Option<Spread> {
    let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    let median = if v.len() % 2 == 1 {
        v[mid]
    } else {
        f64::midpoint(v[mid - 1], v[mid])
    };
    Some(Spread {
        median,
        min: v[0],
        max: v[v.len() - 1],
    })
}

/// The client core column of a broadcast table: its busy share, and its µs per delivery in
/// brackets, each the median (min–max) over the rounds.
pub(crate) fn client_cell(
    busy: impl IntoIterator<Item = f64>,
    us: impl IntoIterator<Item = f64>,
) -> String {
    format!(
        "{} ({} µs/delivery)",
        cell(spread(busy), percent, 1),
        cell(spread(us), micros, 1)
    )
}

/// `median (min–max)` with `fmt` for each number, or `–`.
pub(crate) fn cell(s: Option<Spread>, fmt: impl Fn(f64) -> String, rounds: usize) -> String {
    match s {
        None => "–".to_owned(),
        Some(s) if rounds <= 1 => fmt(s.median),
        Some(s) => format!("{} ({}–{})", fmt(s.median), fmt(s.min), fmt(s.max)),
    }
}

pub(crate) fn rate(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2} M", x / 1e6)
    } else if x >= 1e4 {
        format!("{:.0} k", x / 1e3)
    } else if x >= 1e3 {
        format!("{:.1} k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

pub(crate) fn micros(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

pub(crate) fn ratio(x: f64) -> String {
    format!("{x:.2}×")
}

pub(crate) fn percent(x: f64) -> String {
    format!("{:.0} %", x * 100.0)
}

fn kib(x: f64) -> String {
    format!("{x:.1}")
}

/// Ratios of `value(sample)` to the same figure of `base` in the same round (and workload).
pub(crate) fn ratios<S>(
    samples: &[S],
    mine: impl Fn(&S) -> bool,
    base: impl Fn(&S, &S) -> bool,
    value: impl Fn(&S) -> f64,
) -> Vec<f64> {
    samples
        .iter()
        .filter(|s| mine(s))
        .filter_map(|s| {
            let b = samples.iter().find(|b| base(s, b))?;
            Some(value(s) / value(b))
        })
        .collect()
}

pub(crate) fn shell(cmd: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(cmd).args(args).output().ok()?;
    let s = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!s.is_empty()).then_some(s)
}

pub(crate) fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpus = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map_or("unknown", |m| m.trim_start_matches([' ', '\t', ':']).trim())
        .to_owned();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "unknown".to_owned(), |s| s.trim().to_owned());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let kib: f64 = m
                .lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))?
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()?;
            Some(format!("{:.0} GiB", kib / 1024.0 / 1024.0))
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let rustc = shell("rustc", &["-V"]).unwrap_or_else(|| "rustc unknown".to_owned());
    format!("{cpus} CPUs ({model}), {memory} RAM, Linux {kernel}, {rustc}")
}

/// The lines of a block that name our echo build and the machine.
pub(crate) fn ours_and_machine(out: &mut String, options: &Options) {
    if let Some(built) = &options.ours_built {
        let _ = writeln!(
            out,
            "`ours`: `target/release/examples/echo` as built at {built}, copied at the start \
             so that one binary serves the whole run.\n"
        );
    }
    let _ = writeln!(out, "Machine: {}.\n", machine());
}

/// The list of failed runs closing a block, if any failed.
pub(crate) fn failed_runs(out: &mut String, failures: &[String]) {
    if failures.is_empty() {
        return;
    }
    let _ = writeln!(out, "**Failed runs** (left out of the tables):\n");
    for failure in failures {
        let _ = writeln!(out, "- {failure}");
    }
    out.push('\n');
}

/// The generated section: how it was made, then the tables.
pub(crate) fn render(options: &Options, results: &Results) -> String {
    let mut out = String::new();
    let (begin, end) = markers(options.parts.block());
    let _ = writeln!(out, "{begin}");
    measured_line(
        &mut out,
        options,
        results.elapsed,
        "implementations interleaved in a rotated order each round",
    );
    ours_and_machine(&mut out, options);
    let _ = writeln!(
        out,
        "Cells are `median (min–max)` over the rounds; ratios are taken within a round, then \
         summarised. Server CPU is user + system time of the whole server process from \
         `/proc/PID/stat` (10 ms ticks).\n"
    );
    if !results.echo.is_empty() {
        render_echo(&mut out, options, results);
    }
    if !results.memory.is_empty() {
        render_memory(&mut out, options, results);
    }
    if !results.handshakes.is_empty() {
        render_handshakes(&mut out, options, results);
    }
    if !results.broadcast.is_empty() {
        render_broadcast(&mut out, options, results);
    }
    if !results.open_loop.is_empty() {
        render_open_loop(&mut out, options, results);
    }
    if !results.deflate.is_empty() {
        render_deflate(&mut out, options, results);
    }
    if !results.deflate_memory.is_empty() {
        render_deflate_memory(&mut out, options, results);
    }
    failed_runs(&mut out, &results.failures);
    let _ = writeln!(out, "{end}");
    out
}

/// The header of a `ws-bench cluster` block: when, at which commit, how pinned, which echo,
/// the machine.
pub(crate) fn header(out: &mut String, options: &Options, elapsed: Duration, scale: bool) {
    let rounds = if scale { 1 } else { options.rounds };
    let order = if scale {
        "the cluster first, then the single node"
    } else {
        "the cluster and the single node alternating (rotated each round)"
    };
    cluster_header(out, options, elapsed, (rounds, order), None);
}

/// [`header`] with the rounds, the order of the runs in a round, and the command line if
/// given.
pub(crate) fn cluster_header(
    out: &mut String,
    options: &Options,
    elapsed: Duration,
    (rounds, order): (usize, &str),
    command: Option<&str>,
) {
    let commit = shell("git", &["describe", "--always", "--dirty"]).unwrap_or_else(|| "?".into());
    let date = shell("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_else(|| "?".into());
    let _ = writeln!(
        out,
        "Measured {date} at commit `{commit}` in {:.0} s: {rounds} round(s), {order}, each run \
         against fresh processes (nodes and Redis). Every node and Redis pinned to CPU 0, the \
         load generator to CPU 1: {}.\n",
        elapsed.as_secs_f64(),
        if options.pin {
            "yes"
        } else {
            "**no** (taskset missing or --no-pin)"
        },
    );
    if let Some(command) = command {
        let _ = writeln!(out, "Command: `{command}`.\n");
    }
    if let Some(built) = &options.ours_built {
        let _ = writeln!(
            out,
            "Nodes: `target/release/examples/echo` (built with `--features redis`) as built at \
             {built}, copied at the start so that one binary serves the whole run. Redis: {}, \
             started by the harness on a free port (no persistence) and stopped at the end.\n",
            shell("redis-server", &["--version"])
                .and_then(|v| {
                    v.split_whitespace()
                        .find_map(|w| w.strip_prefix("v="))
                        .map(|v| format!("redis-server {v}"))
                })
                .unwrap_or_else(|| "redis-server".to_owned())
        );
    }
    let _ = writeln!(out, "Machine: {}.\n", machine());
    let _ = writeln!(
        out,
        "Cells are `median (min–max)` over the rounds; ratios are taken within a round, then \
         summarised. CPU is user + system time of whole processes from `/proc/PID/stat` (10 ms \
         ticks). **Caveat:** this machine has 2 cores: every node and Redis share CPU 0, and \
         the load generator (one single-threaded process reading every subscriber) has CPU 1, \
         so the cluster rows show what the backplane costs in CPU and latency, not what \
         separate machines would gain.\n"
    );
}

/// The markers of a generated block.
fn markers(block: Block) -> (&'static str, &'static str) {
    match block {
        Block::Main => (BEGIN, END),
        Block::Latency => (LATENCY_BEGIN, LATENCY_END),
        Block::Deflate => (DEFLATE_BEGIN, DEFLATE_END),
        Block::Cluster => (crate::cluster::CLUSTER_BEGIN, crate::cluster::CLUSTER_END),
        Block::ClusterScale => (crate::cluster::SCALE_BEGIN, crate::cluster::SCALE_END),
        Block::History => (crate::history::HISTORY_BEGIN, crate::history::HISTORY_END),
        Block::Metrics => (crate::metrics::METRICS_BEGIN, crate::metrics::METRICS_END),
        Block::Scale => (crate::scale::SCALE_BEGIN, crate::scale::SCALE_END),
    }
}

fn render_broadcast(out: &mut String, options: &Options, results: &Results) {
    let rounds = options.rounds;
    let _ = writeln!(
        out,
        "### Broadcast fan-out\n\nOne publisher connection sends binary messages at a fixed \
         rate (chosen so that every workload makes 50,000 deliveries per second) for {:.1} s, at \
         least {} messages, plus {} warm-up messages left out of the latency figures; the server \
         relays each to every other connection. Every subscriber checks every byte, the sequence \
         and the send time of every message. Latency is publish (just before the publisher's \
         write) → the last subscriber's check, on one clock; all subscribers are read by one \
         single-threaded client core, so the client's serial work is in it too (see client \
         core). Server CPU per delivery = server CPU from the first publish to the last delivery \
         / (messages × subscribers). Lower is better everywhere.\n",
        options.secs,
        crate::fanout::MIN_MESSAGES,
        crate::fanout::WARMUP_MESSAGES
    );
    let _ = writeln!(
        out,
        "| workload | server | latency p50 (ms) | latency p99 (ms) | server CPU µs/delivery | × warp chat (CPU) | × warp chat (p99) | server core | client core |"
    );
    let _ = writeln!(
        out,
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    let bc = &results.broadcast;
    let ms = |x: f64| micros(x / 1e3);
    for &f in &options.fanouts {
        let name = FANOUTS[f].name();
        for kind in Kind::BROADCAST {
            let mine: Vec<&BroadcastSample> = bc
                .iter()
                .filter(|s| s.kind == kind && s.fanout == f)
                .collect();
            if mine.is_empty() {
                continue;
            }
            let vs_warp = |value: fn(&BroadcastSample) -> f64| {
                let r = ratios(
                    bc,
                    |s| s.kind == kind && s.fanout == f,
                    |s, b| b.kind == Kind::WarpChat && b.fanout == f && b.round == s.round,
                    value,
                );
                cell(spread(r), ratio, rounds)
            };
            let client = client_cell(
                mine.iter().map(|s| s.client_busy),
                mine.iter().map(|s| s.client_us),
            );
            let _ = writeln!(
                out,
                "| {name} | {} | {} | {} | {} | {} | {} | {} | {} |",
                kind.label(),
                cell(spread(mine.iter().map(|s| s.p50_us)), ms, rounds),
                cell(spread(mine.iter().map(|s| s.p99_us)), ms, rounds),
                cell(spread(mine.iter().map(|s| s.server_us)), micros, rounds),
                vs_warp(|s| s.server_us),
                vs_warp(|s| s.p99_us),
                cell(spread(mine.iter().map(|s| s.server_busy)), percent, 1),
                client,
            );
        }
    }
    out.push('\n');
}

fn render_echo(out: &mut String, options: &Options, results: &Results) {
    let rounds = options.rounds;
    let _ = writeln!(
        out,
        "### Echo, closed loop\n\n{:.1} s measured per run after {:.1} s of warm-up. Each \
         connection keeps a fixed number of messages in flight and sends one more for each echo \
         it has checked byte for byte; in the pipelined burst, each connection writes its whole \
         burst at once (prepared bytes, one write), then reads and checks every echo of it \
         before the next burst. Lower server CPU per message is better; when the client core is \
         near 100 %, messages/s measures the client, so read server CPU per message.\n",
        options.secs, options.warmup
    );
    if options.tungstenite_client {
        let _ = writeln!(
            out,
            "Load generator: **tokio-tungstenite's client** (`--client tungstenite`), one task \
             per connection sending each message with `SinkExt::send`, for every WebSocket \
             server; the TCP floor and the pipelined burst use the hand-written client.\n"
        );
    }
    let _ = writeln!(
        out,
        "| workload | server | messages/s | server CPU µs/msg | × warp::ws | × TCP floor | server core | client core |"
    );
    let _ = writeln!(
        out,
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    let echo = &results.echo;
    for &w in &options.workloads {
        let name = WORKLOADS[w].label();
        for &kind in &options.kinds {
            let mine: Vec<&EchoSample> = echo
                .iter()
                .filter(|s| s.kind == kind && s.workload == w)
                .collect();
            if mine.is_empty() {
                continue;
            }
            let relative_to = |base: Kind| {
                let r = ratios(
                    echo,
                    |s| s.kind == kind && s.workload == w,
                    |s, b| b.kind == base && b.workload == w && b.round == s.round,
                    |s| s.server_us,
                );
                cell(spread(r), ratio, rounds)
            };
            let client = format!(
                "{} ({} µs/msg)",
                cell(spread(mine.iter().map(|s| s.client_busy)), percent, 1),
                cell(spread(mine.iter().map(|s| s.client_us)), micros, 1)
            );
            let _ = writeln!(
                out,
                "| {name} | {} | {} | {} | {} | {} | {} | {} |",
                kind.label(),
                cell(spread(mine.iter().map(|s| s.rate)), rate, rounds),
                cell(spread(mine.iter().map(|s| s.server_us)), micros, rounds),
                relative_to(Kind::Warp),
                relative_to(Kind::Tcp),
                cell(spread(mine.iter().map(|s| s.server_busy)), percent, 1),
                client,
            );
        }
    }
    out.push('\n');
}

fn render_memory(out: &mut String, options: &Options, results: &Results) {
    let rounds = options.rounds;
    let _ = writeln!(
        out,
        "### Memory per idle connection\n\n{} WebSocket connections opened to a fresh server \
         ({CONNECTORS} connectors at a time); growth of the server's `VmRSS` divided by the \
         count, after the upgrades and again after one 1 KiB text echo on every connection. \
         User space only: kernel socket buffers are not in RSS.\n",
        thousands(options.idle)
    );
    let _ = writeln!(
        out,
        "| server | RSS at start (MiB) | KiB/conn after upgrade | KiB/conn after one echo | × warp::ws (after echo) |"
    );
    let _ = writeln!(out, "| --- | ---: | ---: | ---: | ---: |");
    let memory = &results.memory;
    for &kind in &options.kinds {
        let mine: Vec<&MemorySample> = memory.iter().filter(|s| s.kind == kind).collect();
        if mine.is_empty() {
            continue;
        }
        let vs_warp = ratios(
            memory,
            |s| s.kind == kind,
            |s, b| b.kind == Kind::Warp && b.round == s.round,
            |s| s.used_kib,
        );
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            kind.label(),
            cell(
                spread(mine.iter().map(|s| s.base_kib as f64 / 1024.0)),
                |x| format!("{x:.1}"),
                1
            ),
            cell(spread(mine.iter().map(|s| s.idle_kib)), kib, rounds),
            cell(spread(mine.iter().map(|s| s.used_kib)), kib, rounds),
            cell(spread(vs_warp), ratio, rounds),
        );
    }
    out.push('\n');
}

fn render_handshakes(out: &mut String, options: &Options, results: &Results) {
    let rounds = options.rounds;
    let _ = writeln!(
        out,
        "### Handshakes\n\n{} upgrades per run by {CONNECTORS} concurrent connectors; each \
         connection is dropped once its `101` and `Sec-WebSocket-Accept` are checked. The TCP \
         floor row is connect + accept only.\n",
        options.handshake_count
    );
    let _ = writeln!(
        out,
        "| server | handshakes/s | server CPU µs/handshake | × warp::ws (rate) | × warp::ws (CPU) |"
    );
    let _ = writeln!(out, "| --- | ---: | ---: | ---: | ---: |");
    let hs = &results.handshakes;
    for &kind in &options.kinds {
        let mine: Vec<&HandshakeSample> = hs.iter().filter(|s| s.kind == kind).collect();
        if mine.is_empty() {
            continue;
        }
        let vs_warp = |value: fn(&HandshakeSample) -> f64| {
            let r = ratios(
                hs,
                |s| s.kind == kind,
                |s, b| b.kind == Kind::Warp && b.round == s.round,
                value,
            );
            cell(spread(r), ratio, rounds)
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            kind.label(),
            cell(spread(mine.iter().map(|s| s.rate)), rate, rounds),
            cell(spread(mine.iter().map(|s| s.server_us)), micros, rounds),
            vs_warp(|s| s.rate),
            vs_warp(|s| s.server_us),
        );
    }
    out.push('\n');
}

/// Prints a run's generated block, writes it into `--markdown`'s file if one was given, and
/// gives the exit status: success when the run had no failure (`ok`) and the file, if any,
/// was written.
pub(crate) fn publish(markdown_file: Option<&Path>, markdown: &str, ok: bool) -> ExitCode {
    println!("\n{markdown}");
    if let Some(path) = markdown_file {
        if let Err(err) = write_markdown(path, markdown) {
            eprintln!("ws-bench: writing {}: {err}", path.display());
            return ExitCode::FAILURE;
        }
        eprintln!("ws-bench: wrote {}", path.display());
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The first line of a single-host block: when, at which commit, how long, the rounds, the
/// order of the runs (`order`, e.g. "servers interleaved in a rotated order each round"),
/// and whether processes were pinned.
pub(crate) fn measured_line(out: &mut String, options: &Options, elapsed: Duration, order: &str) {
    let commit = shell("git", &["describe", "--always", "--dirty"]).unwrap_or_else(|| "?".into());
    let date = shell("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_else(|| "?".into());
    let rounds = options.rounds;
    let _ = writeln!(
        out,
        "Measured {date} at commit `{commit}` in {:.0} s: {rounds} round(s), {order}, each run \
         against a fresh server process. Servers pinned to CPU 0, the load generator to CPU 1: \
         {}.\n",
        elapsed.as_secs_f64(),
        if options.pin {
            "yes"
        } else {
            "**no** (taskset missing or --no-pin)"
        },
    );
}

/// Replaces the generated section of `path` between the markers `generated` starts and ends
/// with (the main, latency or deflate block; the others are kept), or creates the file. A
/// missing latency or deflate block is added before `## Reading` (or at the end).
pub(crate) fn write_markdown(path: &Path, generated: &str) -> io::Result<()> {
    let existing = std::fs::read_to_string(path).unwrap_or_default();
    let block = [
        Block::Latency,
        Block::Deflate,
        Block::Cluster,
        Block::ClusterScale,
        Block::History,
        Block::Metrics,
        Block::Scale,
    ]
    .into_iter()
    .find(|&block| generated.starts_with(markers(block).0))
    .unwrap_or(Block::Main);
    let (begin_marker, end_marker) = markers(block);
    let text = match (existing.find(begin_marker), existing.find(end_marker)) {
        (Some(begin), Some(end)) if begin < end => format!(
            "{}{}{}",
            &existing[..begin],
            generated.trim_end(),
            &existing[end + end_marker.len()..]
        ),
        _ if block != Block::Main && !existing.is_empty() => {
            let at = existing
                .find("\n## Reading")
                .map_or(existing.len(), |at| at + 1);
            format!(
                "{}{}\n\n{}",
                &existing[..at],
                generated.trim_end(),
                &existing[at..]
            )
        }
        _ => format!(
            "# Benchmarks\n\nRegenerate: `cargo build --release --example echo -p warpsocket && cargo run \
             --release -p ws-bench -- all --markdown BENCHMARKS.md`\n\n{generated}"
        ),
    };
    std::fs::write(path, text)
}

fn render_open_loop(out: &mut String, options: &Options, results: &Results) {
    let rounds = options.rounds;
    let _ = writeln!(
        out,
        "### Echo, fixed-rate open loop\n\n{} connections × {} B binary; message k of a \
         connection is scheduled at start + k × interval (connections staggered), {} msg/s in \
         all, for {:.1} s after {:.1} s of warm-up; sends are never skipped, and latency is \
         measured from the *scheduled* send time to the checked echo, so a server (or client) \
         that falls behind pays for it. The client's timers tick in milliseconds (tokio), so up \
         to 1 ms of send lateness is in every figure, for every server alike.\n",
        crate::OPEN_LOOP_CONNS,
        crate::OPEN_LOOP_SIZE,
        options.open_loop_rate,
        options.secs,
        options.warmup,
    );
    let _ = writeln!(
        out,
        "| server | echoes/s | latency p50 (µs) | latency p99 (µs) | server CPU µs/msg | × warp::ws (CPU) | × warp::ws (p99) | server core | client core |"
    );
    let _ = writeln!(
        out,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    let ol = &results.open_loop;
    for &kind in &options.kinds {
        let mine: Vec<&OpenLoopSample> = ol.iter().filter(|s| s.kind == kind).collect();
        if mine.is_empty() {
            continue;
        }
        let vs_warp = |value: fn(&OpenLoopSample) -> f64| {
            let r = ratios(
                ol,
                |s| s.kind == kind,
                |s, b| b.kind == Kind::Warp && b.round == s.round,
                value,
            );
            cell(spread(r), ratio, rounds)
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            kind.label(),
            cell(spread(mine.iter().map(|s| s.rate)), rate, rounds),
            cell(spread(mine.iter().map(|s| s.p50_us)), micros, rounds),
            cell(spread(mine.iter().map(|s| s.p99_us)), micros, rounds),
            cell(spread(mine.iter().map(|s| s.server_us)), micros, rounds),
            vs_warp(|s| s.server_us),
            vs_warp(|s| s.p99_us),
            cell(spread(mine.iter().map(|s| s.server_busy)), percent, 1),
            cell(spread(mine.iter().map(|s| s.client_busy)), percent, 1),
        );
    }
    out.push('\n');
}

fn render_deflate(out: &mut String, options: &Options, results: &Results) {
    let rounds = options.rounds;
    let _ = writeln!(
        out,
        "### permessage-deflate: JSON chat echo\n\n{CHAT_CONNS} connections × {CHAT_DEPTH} \
         messages in flight, closed loop, {:.1} s measured per run after {:.1} s of warm-up. \
         The messages are {} distinct chat events, JSON objects of {CHAT_MIN}–{} bytes \
         (`{{\"type\":\"message\",\"room\":…,\"user\":…,\"id\":…,\"ts\":…,\"text\":\"…\"}}`, \
         sometimes `mentions` or `reply_to`, the text varied English words), which every \
         connection sends in the same order. Every client offers `permessage-deflate; \
         client_max_window_bits` (the `client_no_context_takeover` row adds that parameter). \
         Where it is agreed, each message is compressed as a browser's context would compress \
         it (zlib level 6, raw deflate, the context kept from one message to the next unless \
         `client_no_context_takeover`; sync flush with the trailing `00 00 ff ff` stripped; \
         RSV1); as every connection sends the same sequence, each frame is compressed once and \
         shared, so the client core does not limit the run. Each echo is inflated by the \
         connection's own context and checked byte for byte. \
         `examples/echo --deflate` compresses every message (threshold 0). Ratio = payload \
         bytes before compression / payload bytes on the wire (frame headers not counted), each \
         direction. Lower server CPU per message is better.\n",
        options.secs,
        options.warmup,
        thousands(CHAT_MESSAGES),
        thousands(CHAT_MAX),
    );
    let _ = writeln!(
        out,
        "| server | server's `Sec-WebSocket-Extensions` | messages/s | server CPU µs/msg | × warp::ws | × ours, deflate off | payload B/msg | client → server B/msg on the wire | ratio | server → client B/msg on the wire | ratio | server core | client core |"
    );
    let _ = writeln!(
        out,
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    let samples = &results.deflate;
    for (v, variant) in VARIANTS.iter().enumerate() {
        let mine: Vec<&DeflateSample> = samples.iter().filter(|s| s.variant == v).collect();
        if mine.is_empty() {
            continue;
        }
        let relative_to = |base: usize| {
            let r = ratios(
                samples,
                |s| s.variant == v,
                |s, b| b.variant == base && b.round == s.round,
                |s| s.server_us,
            );
            cell(spread(r), ratio, rounds)
        };
        let bytes = |x: f64| format!("{x:.0}");
        let direction = |wire: fn(&DeflateSample) -> f64, plain: fn(&DeflateSample) -> f64| {
            format!(
                "{} | {}",
                cell(spread(mine.iter().map(|s| wire(s))), bytes, 1),
                cell(
                    spread(mine.iter().map(|s| plain(s) / wire(s))),
                    ratio,
                    rounds
                )
            )
        };
        let client = format!(
            "{} ({} µs/msg)",
            cell(spread(mine.iter().map(|s| s.client_busy)), percent, 1),
            cell(spread(mine.iter().map(|s| s.client_us)), micros, 1)
        );
        let agreed = if mine[0].agreed == "none" {
            "none".to_owned()
        } else {
            format!("`{}`", mine[0].agreed)
        };
        let _ = writeln!(
            out,
            "| {} | {agreed} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            variant.label,
            cell(spread(mine.iter().map(|s| s.rate)), rate, rounds),
            cell(spread(mine.iter().map(|s| s.server_us)), micros, rounds),
            relative_to(WARP_PLAIN),
            relative_to(OURS_PLAIN),
            cell(spread(mine.iter().map(|s| s.plain_in)), bytes, 1),
            direction(|s| s.wire_out, |s| s.plain_out),
            direction(|s| s.wire_in, |s| s.plain_in),
            cell(spread(mine.iter().map(|s| s.server_busy)), percent, 1),
            client,
        );
    }
    out.push('\n');
}

fn render_deflate_memory(out: &mut String, options: &Options, results: &Results) {
    let rounds = options.rounds;
    let _ = writeln!(
        out,
        "### Memory per idle connection with permessage-deflate\n\n{} connections opened to \
         a fresh server ({CONNECTORS} connectors at a time), each offering permessage-deflate \
         as its row says; growth of the server's `VmRSS` divided by the count, after the \
         upgrades and again after one JSON chat message ({CHAT_MIN}–{} B) echoed on every \
         connection, compressed both ways where agreed (so the server has inflated and \
         compressed one message on each), and again after {} more on every connection (4 in \
         flight each; about 38 KB each way, more than the largest window: a long-lived chat \
         connection). The connections stay open and idle between the readings. User space \
         only: kernel socket buffers are not in RSS.\n",
        thousands(options.idle),
        thousands(CHAT_MAX),
        LONG_ECHOES,
    );
    let _ = writeln!(
        out,
        "| server | RSS at start (MiB) | KiB/conn after upgrade | KiB/conn after one echo | KiB/conn after {} echoes | × ours, deflate off (after {} echoes) |",
        1 + LONG_ECHOES,
        1 + LONG_ECHOES,
    );
    let _ = writeln!(out, "| --- | ---: | ---: | ---: | ---: | ---: |");
    let memory = &results.deflate_memory;
    for (v, variant) in VARIANTS.iter().enumerate() {
        let mine: Vec<&DeflateMemorySample> = memory.iter().filter(|s| s.variant == v).collect();
        if mine.is_empty() {
            continue;
        }
        let vs_plain = ratios(
            memory,
            |s| s.variant == v,
            |s, b| b.variant == OURS_PLAIN && b.round == s.round,
            |s| s.long_kib,
        );
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            variant.label,
            cell(
                spread(mine.iter().map(|s| s.base_kib as f64 / 1024.0)),
                |x| format!("{x:.1}"),
                1
            ),
            cell(spread(mine.iter().map(|s| s.idle_kib)), kib, rounds),
            cell(spread(mine.iter().map(|s| s.used_kib)), kib, rounds),
            cell(spread(mine.iter().map(|s| s.long_kib)), kib, rounds),
            cell(spread(vs_plain), ratio, rounds),
        );
    }
    out.push('\n');
}
