//! The feature `metrics` (`ws-bench metrics`): what the metrics cost per message. Our echo is
//! run three ways, interleaved with raw `warp::ws` in each round:
//!
//! - built without the feature (`--ours`, when that binary lacks it): the runtime's own
//!   counters and the fan-out timer only;
//! - built with the feature (`--ours-metrics`), no recorder installed: the facade's handles
//!   are no-ops;
//! - the same binary with `--metrics 127.0.0.1:0`: the Prometheus recorder
//!   (`metrics-exporter-prometheus`) installed before the socket starts, its upkeep every 5 s,
//!   `/metrics` served on an address of its own. The harness scrapes it once per run, after
//!   the measured window, with a plain HTTP/1.1 GET, and checks that the messages were
//!   counted.
//!
//! The workloads are the closed-loop echo workloads of `ws-bench echo` and two of the
//! broadcast workloads of `ws-bench broadcast` (paced, and in bursts), each run against a
//! fresh server process pinned to the server CPU; ratios are taken within a round.

use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;

use crate::Options;
use crate::fanout::FANOUTS as ALL_FANOUTS;
use crate::procs::Server;
use crate::report::{
    BroadcastSample, EchoSample, cell, machine, micros, percent, rate, ratio, spread,
};
use crate::servers::Kind;

/// The markers of the generated block.
pub(crate) const METRICS_BEGIN: &str =
    "<!-- ws-bench:metrics:begin (generated, do not edit by hand) -->";
pub(crate) const METRICS_END: &str = "<!-- ws-bench:metrics:end -->";

/// The echo servers of `ws-bench metrics`, in table order (`--only` may narrow them).
pub(crate) const KINDS: [Kind; 4] = [
    Kind::Ours,
    Kind::OursFeature,
    Kind::OursPrometheus,
    Kind::Warp,
];

/// The broadcast workloads (indexes into [`crate::fanout::FANOUTS`]): 1,000 subscribers ×
/// 64 B at 50 msg/s, paced and in bursts of 10.
pub(crate) const FANOUTS: [usize; 2] = [0, 4];

/// The broadcast server that does what the echo server `kind` does.
fn broadcast_twin(kind: Kind) -> Option<Kind> {
    match kind {
        Kind::Ours => Some(Kind::OursBroadcast),
        Kind::OursFeature => Some(Kind::OursBroadcastFeature),
        Kind::OursPrometheus => Some(Kind::OursBroadcastPrometheus),
        Kind::Warp => Some(Kind::WarpChat),
        _ => None,
    }
}

/// The echo server a row stands for (itself, or the echo twin of a broadcast server).
fn echo_twin(kind: Kind) -> Kind {
    KINDS
        .into_iter()
        .find(|&echo| broadcast_twin(echo) == Some(kind))
        .unwrap_or(kind)
}

/// Whether our echo `binary` was built with the feature `metrics`: asked for `--metrics` on
/// an address it cannot bind, it fails on the address with the feature, on the feature
/// without it (or prints its usage, if it is older than `--metrics`).
pub(crate) async fn has_feature(binary: &Path) -> bool {
    let probe = Command::new(binary)
        .args(["--metrics", "no-such-address", "--addr", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(Duration::from_secs(10), probe).await {
        Ok(Ok(out)) => String::from_utf8_lossy(&out.stderr).contains("--metrics no-such-address:"),
        _ => false,
    }
}

/// What one scrape of `/metrics` showed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Scrape {
    /// The body's length.
    bytes: usize,
    /// `ws_messages_received_total` and `ws_messages_sent_total`, summed over their series.
    received: f64,
    sent: f64,
}

/// `GET /metrics` from the server's metrics address, bounded to 5 s; fails unless it is a 200
/// that counted messages both ways.
pub(crate) async fn scrape(server: &Server) -> io::Result<Scrape> {
    let addr: SocketAddr = server
        .metrics
        .ok_or_else(|| io::Error::other("the server serves no metrics"))?;
    let body = http_get(addr, "/metrics")
        .await
        .map_err(|err| io::Error::other(format!("scrape: {err}")))?;
    let scrape = Scrape {
        bytes: body.len(),
        received: sum(&body, "ws_messages_received_total", &[]),
        sent: sum(&body, "ws_messages_sent_total", &[]),
    };
    if scrape.received <= 0.0 || scrape.sent <= 0.0 {
        return Err(io::Error::other(format!(
            "scrape: messages not counted (received {}, sent {})",
            scrape.received, scrape.sent
        )));
    }
    Ok(scrape)
}

/// The body of `GET path` from `addr` over plain HTTP/1.1 (`Connection: close`), bounded to
/// 5 s; an error unless the answer is a 200.
pub(crate) async fn http_get(addr: SocketAddr, path: &str) -> io::Result<String> {
    let get = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, io::Error>(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(5), get)
        .await
        .map_err(|_| io::Error::other(format!("GET {path}: no answer in 5 s")))??;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| io::Error::other(format!("GET {path}: no HTTP head")))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(io::Error::other(format!(
            "GET {path}: {}",
            head.lines().next().unwrap_or_default()
        )));
    }
    Ok(body.to_owned())
}

/// The sum of the samples of `name` in Prometheus' text `body` whose labels include each of
/// `labels` (written `key="value"`); 0 when there is none.
pub(crate) fn sum(body: &str, name: &str, labels: &[&str]) -> f64 {
    body.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let (labelled, value) = rest.rsplit_once(' ')?;
            let matches = match labelled.strip_prefix('{') {
                Some(set) => labels.iter().all(|label| {
                    set.trim_end_matches('}')
                        .split(',')
                        .any(|pair| pair.trim() == *label)
                }),
                None => labelled.is_empty() && labels.is_empty(),
            };
            matches.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

/// Everything `ws-bench metrics` measured.
#[derive(Debug, Default)]
struct Results {
    echo: Vec<EchoSample>,
    broadcast: Vec<BroadcastSample>,
    scrapes: Vec<Scrape>,
    failures: Vec<String>,
    elapsed: Duration,
    /// Why the build without the feature was not measured, if it was not.
    no_plain: Option<String>,
}

impl Results {
    fn fail(&mut self, round: usize, kind: Kind, what: &str, err: &io::Error) {
        let line = format!("round {} {what} {}: {err}", round + 1, kind.name());
        eprintln!("FAILED {line}");
        self.failures.push(line);
    }
}

/// `ws-bench metrics`: runs, prints and writes the block; exit 1 on any failure.
pub(crate) async fn main(options: &Options) -> ExitCode {
    let started = Instant::now();
    let mut results = Results::default();
    if !has_feature(&options.ours_metrics).await {
        eprintln!(
            "ws-bench: --ours-metrics is not built with the feature `metrics`: \
             cargo build --release --example echo -p warpsocket --features metrics"
        );
        return ExitCode::FAILURE;
    }
    let mut kinds: Vec<Kind> = options
        .kinds
        .iter()
        .copied()
        .filter(|kind| KINDS.contains(kind))
        .collect();
    if kinds.contains(&Kind::Ours) && has_feature(&options.ours).await {
        kinds.retain(|&kind| kind != Kind::Ours);
        results.no_plain = Some(
            "the build without the feature was not measured: the `--ours` binary has it (pass \
             one built without `--features metrics` as `--ours`)"
                .to_owned(),
        );
        eprintln!(
            "ws-bench: {}",
            results.no_plain.as_deref().unwrap_or_default()
        );
    }
    if kinds.is_empty() {
        eprintln!("ws-bench: no server of `metrics` selected ({KINDS:?})");
        return ExitCode::FAILURE;
    }
    for round in 0..options.rounds {
        let mut order = kinds.clone();
        let shift = round % order.len();
        order.rotate_left(shift);
        echo_round(options, round, &order, started, &mut results).await;
        let broadcast: Vec<Kind> = order.iter().filter_map(|&k| broadcast_twin(k)).collect();
        broadcast_round(options, round, &broadcast, started, &mut results).await;
    }
    results.elapsed = started.elapsed();
    let markdown = render(options, &kinds, &results);
    crate::report::publish(
        options.markdown.as_deref(),
        &markdown,
        results.failures.is_empty(),
    )
}

/// The echo runs of one round: every workload, the servers in the round's order; a recorder's
/// `/metrics` scraped after each of its runs.
async fn echo_round(
    options: &Options,
    round: usize,
    kinds: &[Kind],
    started: Instant,
    results: &mut Results,
) {
    for &w in &options.workloads {
        let workload = crate::WORKLOADS[w];
        for &kind in kinds {
            let outcome = crate::with_server(options, kind, async |s| {
                let sample = crate::measure_echo(options, s, &workload).await?;
                let scraped = if kind.is_prometheus() {
                    Some(scrape(s).await?)
                } else {
                    None
                };
                Ok((sample, scraped))
            })
            .await;
            match outcome {
                Ok((sample, scraped)) => {
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
                    results.scrapes.extend(scraped);
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

/// The broadcast runs of one round, likewise.
async fn broadcast_round(
    options: &Options,
    round: usize,
    kinds: &[Kind],
    started: Instant,
    results: &mut Results,
) {
    for &f in &options.fanouts {
        let fanout = ALL_FANOUTS[f];
        for &kind in kinds {
            let outcome = crate::with_server(options, kind, async |s| {
                let sample = crate::measure_broadcast(options, s, f).await?;
                let scraped = if kind.is_prometheus() {
                    Some(scrape(s).await?)
                } else {
                    None
                };
                Ok((sample, scraped))
            })
            .await;
            match outcome {
                Ok((sample, scraped)) => {
                    eprintln!(
                        "[{:>4.0}s] round {} {:<44} {:<25} p50 {:>8.0} µs p99 {:>8.0} µs, {:>6.3} µs server CPU/delivery, {:>3.0}% server core, {:>3.0}% client core",
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
                    results.scrapes.extend(scraped);
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

/// The rows of `ws-bench smoke` for the feature: echo and broadcast checks against
/// `echo --metrics` (each followed by a scrape that must show the messages counted) and
/// against the same binary without a recorder. Skipped (0 runs) when `--ours-metrics` is
/// missing or lacks the feature, or `--only` leaves out `ours`. Returns the runs and the
/// failures.
pub(crate) async fn smoke_rows(options: &Options) -> (usize, usize) {
    if !options.kinds.contains(&Kind::Ours) {
        return (0, 0);
    }
    if !options.ours_metrics.is_file() || !has_feature(&options.ours_metrics).await {
        eprintln!(
            "smoke metrics            skipped: needs echo built with `--features metrics` (--ours-metrics)"
        );
        return (0, 0);
    }
    let mut failed = 0;
    for kind in Kind::METRICS {
        let broadcast = kind != echo_twin(kind);
        let outcome = crate::with_server(options, kind, async |server| {
            let what = if broadcast {
                crate::smoke_broadcast(server).await?;
                "3 × 20 broadcasts to 20 subscribers, every byte checked".to_owned()
            } else {
                let echoed = crate::smoke_echo(options, server).await?;
                format!("{echoed} messages echoed and checked")
            };
            if kind.is_prometheus() {
                let scraped = scrape(server).await?;
                return Ok(format!(
                    "{what}; /metrics scraped ({} bytes): {} messages received, {} sent",
                    scraped.bytes, scraped.received, scraped.sent
                ));
            }
            Ok(what)
        })
        .await;
        match outcome {
            Ok(what) => eprintln!("smoke {:<25} ok: {what}", kind.name()),
            Err(err) => {
                failed += 1;
                eprintln!("smoke {:<25} FAILED: {err}", kind.name());
            }
        }
    }
    (Kind::METRICS.len(), failed)
}

/// The generated block.
fn render(options: &Options, kinds: &[Kind], results: &Results) -> String {
    let mut out = String::new();
    let command = std::iter::once("ws-bench".to_owned())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    let _ = writeln!(out, "{METRICS_BEGIN}");
    crate::report::measured_line(
        &mut out,
        options,
        results.elapsed,
        "servers interleaved in a rotated order each round",
    );
    let _ = writeln!(out, "Command: `{command}`.\n");
    let built = |at: &Option<String>| at.clone().unwrap_or_else(|| "an unknown time".into());
    let _ = writeln!(
        out,
        "Binaries, each copied at the start so that one build serves the whole run: `--ours` \
         (built without the feature `metrics`) as built at {}; `--ours-metrics` (built with \
         `--features metrics`; the rows \"no recorder\" and \"Prometheus recorder\" are this \
         one binary, run without and with `--metrics 127.0.0.1:0`) as built at {}.\n",
        if kinds.contains(&Kind::Ours) {
            built(&options.ours_built)
        } else {
            "– (not measured)".to_owned()
        },
        built(&options.ours_metrics_built),
    );
    if let Some(why) = &results.no_plain {
        let _ = writeln!(out, "**Not complete:** {why}.\n");
    }
    let _ = writeln!(out, "Machine: {}.\n", machine());
    let (min, max) = results.scrapes.iter().fold((usize::MAX, 0), |(lo, hi), s| {
        (lo.min(s.bytes), hi.max(s.bytes))
    });
    let _ = writeln!(
        out,
        "Cells are `median (min–max)` over the rounds; ratios are taken within a round, then \
         summarised. Server CPU is user + system time of the whole server process from \
         `/proc/PID/stat` (10 ms ticks). With the recorder, `/metrics` was scraped once per \
         run, after the measured window (its render is not in the figures), by a plain \
         HTTP/1.1 GET from the load generator, and each scrape had to show messages received \
         and sent: {} scrapes{}.\n",
        results.scrapes.len(),
        if results.scrapes.is_empty() {
            String::new()
        } else {
            format!(" of {min}–{max} bytes")
        },
    );
    render_echo(&mut out, options, kinds, results);
    render_broadcast(&mut out, options, kinds, results);
    crate::report::failed_runs(&mut out, &results.failures);
    let _ = writeln!(out, "{METRICS_END}");
    out
}

/// A row's label in this block's tables.
fn label(kind: Kind) -> &'static str {
    match echo_twin(kind) {
        Kind::Ours => "ours, **feature off**",
        Kind::OursFeature => "ours, feature on, no recorder",
        Kind::OursPrometheus => "ours, feature on, **Prometheus recorder**",
        Kind::Warp => {
            if kind == Kind::WarpChat {
                "raw warp::ws, chat-example pattern"
            } else {
                "raw warp::ws"
            }
        }
        _ => kind.label(),
    }
}

/// `value` of each sample of `kind` over the same figure of the sample of `base` in the same
/// round, for the samples `same` pairs.
fn ratios<S>(
    samples: &[S],
    (kind, base): (Kind, Kind),
    round_kind: impl Fn(&S) -> (usize, Kind),
    same: impl Fn(&S, &S) -> bool,
    value: impl Fn(&S) -> f64,
) -> Vec<f64> {
    samples
        .iter()
        .filter(|s| round_kind(s).1 == kind)
        .filter_map(|s| {
            let b = samples
                .iter()
                .find(|b| round_kind(b) == (round_kind(s).0, base) && same(s, b))?;
            Some(value(s) / value(b))
        })
        .collect()
}

fn render_echo(out: &mut String, options: &Options, kinds: &[Kind], results: &Results) {
    if results.echo.is_empty() {
        return;
    }
    let rounds = options.rounds;
    let _ = writeln!(
        out,
        "### Echo, closed loop: the metrics' cost per message\n\n\
         The workloads of the echo table above ({:.1} s measured after {:.1} s of warm-up per \
         run). `× feature off` and `× no recorder` divide a row's server CPU per message by \
         that of the build without the feature, and of the build with it but no recorder, in \
         the same round: the issue's goal is `× feature off` ≤ 1.05 for the recorder's row.\n",
        options.secs, options.warmup,
    );
    let _ = writeln!(
        out,
        "| workload | server | msg/s | server CPU µs/msg | × feature off (CPU) | × no recorder (CPU) | × warp::ws (CPU) | server core | client core |\n\
         | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    let echo = &results.echo;
    for &w in &options.workloads {
        let name = crate::WORKLOADS[w].label();
        for kind in KINDS.into_iter().filter(|k| kinds.contains(k)) {
            let mine: Vec<&EchoSample> = echo
                .iter()
                .filter(|s| s.kind == kind && s.workload == w)
                .collect();
            if mine.is_empty() {
                continue;
            }
            let vs = |base: Kind| {
                if base == kind || !kinds.contains(&base) {
                    return "–".to_owned();
                }
                let r = ratios(
                    echo,
                    (kind, base),
                    |s| (s.round, s.kind),
                    |s, b| s.workload == b.workload && s.workload == w,
                    |s| s.server_us,
                );
                cell(spread(r), ratio, rounds)
            };
            let col = |f: fn(&EchoSample) -> f64, fmt: fn(f64) -> String| {
                cell(spread(mine.iter().map(|s| f(s))), fmt, rounds)
            };
            let _ = writeln!(
                out,
                "| {name} | {} | {} | {} | {} | {} | {} | {} | {} |",
                label(kind),
                col(|s| s.rate, rate),
                col(|s| s.server_us, micros3),
                vs(Kind::Ours),
                vs(Kind::OursFeature),
                vs(Kind::Warp),
                col(|s| s.server_busy, percent),
                col(|s| s.client_busy, percent),
            );
        }
    }
    out.push('\n');
}

fn render_broadcast(out: &mut String, options: &Options, kinds: &[Kind], results: &Results) {
    if results.broadcast.is_empty() {
        return;
    }
    let rounds = options.rounds;
    let _ = writeln!(
        out,
        "### Broadcast fan-out: the metrics' cost per delivery\n\n\
         Workloads of the broadcast table (`echo --broadcast`; raw warp::ws in the chat \
         example's pattern): one publisher, every other connection a subscriber checking every \
         byte; {:.1} s of publishing, at least {} messages, plus {} warm-up messages. Server \
         CPU per delivery = CPU from the first publish to the last delivery / (messages × \
         subscribers); ratios as in the echo table.\n",
        options.secs,
        crate::fanout::MIN_MESSAGES,
        crate::fanout::WARMUP_MESSAGES,
    );
    let _ = writeln!(
        out,
        "| workload | server | latency p50 (ms) | latency p99 (ms) | server CPU µs/delivery | × feature off (CPU) | × no recorder (CPU) | × warp chat (CPU) | server core | client core |\n\
         | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    let bc = &results.broadcast;
    let ms = |x: f64| micros(x / 1e3);
    for &f in &options.fanouts {
        let name = ALL_FANOUTS[f].name();
        for kind in KINDS
            .into_iter()
            .filter(|k| kinds.contains(k))
            .filter_map(broadcast_twin)
        {
            let mine: Vec<&BroadcastSample> = bc
                .iter()
                .filter(|s| s.kind == kind && s.fanout == f)
                .collect();
            if mine.is_empty() {
                continue;
            }
            let vs = |base: Kind| {
                let base = broadcast_twin(base).unwrap_or(base);
                if base == kind || !kinds.contains(&echo_twin(base)) {
                    return "–".to_owned();
                }
                let r = ratios(
                    bc,
                    (kind, base),
                    |s| (s.round, s.kind),
                    |s, b| s.fanout == b.fanout && s.fanout == f,
                    |s| s.server_us,
                );
                cell(spread(r), ratio, rounds)
            };
            let col = |f: fn(&BroadcastSample) -> f64, fmt: &dyn Fn(f64) -> String| {
                cell(spread(mine.iter().map(|s| f(s))), fmt, rounds)
            };
            let _ = writeln!(
                out,
                "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                label(kind),
                col(|s| s.p50_us, &ms),
                col(|s| s.p99_us, &ms),
                col(|s| s.server_us, &micros3),
                vs(Kind::Ours),
                vs(Kind::OursFeature),
                vs(Kind::Warp),
                col(|s| s.server_busy, &percent),
                col(|s| s.client_busy, &percent),
            );
        }
    }
    out.push('\n');
}

/// Microseconds with three significant digits below 10 (the differences here are a few %).
fn micros3(x: f64) -> String {
    if x >= 10.0 {
        micros(x)
    } else {
        format!("{x:.3}")
    }
}
