//! `ws-bench soak`: a bounded mixed run against `examples/secure_chat`, then a check that the
//! server is back where it started.
//!
//! The server is `target/release/examples/secure_chat` built with the feature `metrics`, run
//! as users run it (its defaults, permessage-deflate on) plus `--metrics 127.0.0.1:0`: its
//! `/metrics` page gives the open connections and the server's own counts, its `/runtime` page
//! the tokio tasks alive, and `/proc/PID` its resident memory, descriptors and threads. Its
//! standard output and error are read to the end and searched for panics, warnings and errors.
//! For a warm-up and then for `--secs`, this process runs a mix of clients (its own, raw):
//!
//! - **members** that stay 3 to 20 s, read and check every broadcast byte for byte (inflating
//!   the compressed ones), send a message now and then, and leave with a close handshake, by
//!   dropping the connection, or by resetting it (RST); half of them offer permessage-deflate
//!   and compress what they send;
//! - two **broadcasters**, members for the whole phase that publish 40 messages a second each
//!   (40 B to 32 KB, text and binary, one compressing), which `secure_chat` relays to every other
//!   member;
//! - **churn**: connections that open and leave at once (a close handshake, with or without a
//!   compressed message first, a drop, a reset, a refused password, a TCP connection without a
//!   request);
//! - **slow consumers**: members that read 2 KiB every 100 ms through a small receive buffer,
//!   far less than they are sent, which the server must cut with 1008 when their queue fills;
//! - **misbehaving** clients: invalid UTF-8, whole or split over fragments (1007), unmasked
//!   frames, reserved opcodes and bits, fragmented pings, a close code that may not be sent, an
//!   HTTP request after the upgrade (1002), a frame over the 1 MiB limit (1009), compressed data
//!   that does not inflate (1007), and handshakes left half done, which the server must drop
//!   within its 10 s handshake timeout.
//!
//! Every answer is checked against what RFC 6455 and the configuration call for, and counted.
//! After the warm-up, once every client is gone and the server shows no open connection, the
//! baseline is read (after, not before, the warm-up: its mix has grown the allocator's pools
//! and the server's tables to their working size). After the run, the same wait, and then the
//! server must be back to the baseline: resident memory within [`RSS_SLACK_KIB`] or
//! [`RSS_SLACK_SHARE`] of it (or `--rss-slack`), no more descriptors, no more tasks alive; nothing may have
//! panicked; its counts of connections opened and closed must equal each other and the
//! upgrades the clients saw. Finally it gets SIGTERM and must exit cleanly. The exit status is
//! 1 if any of this fails.
//!
//! What it proves: that over a run of this length and mix, connections of every kind and every
//! way of ending leave nothing behind in the server (memory, sockets, tasks), that nothing in
//! it panics, and that under churn each misbehaviour still gets its close code. It does not
//! prove the absence of a leak too slow to show in minutes, and it measures no speed: the
//! rates are modest and nothing here is timed.
//!
//! A short run (`scripts/test` runs 20 s) checks everything but memory as strictly; its
//! resident memory is still climbing to its working size (glibc keeps what the slow consumers'
//! queues, up to 4 MiB each, made it take), so it is given a slack of that size
//! (`--rss-slack 8`) and catches only a gross leak.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use crate::metrics::has_feature;
use crate::procs::{self, Snapshot};
use crate::report::{machine, shell};

use chat::{
    Books, Chat, Log, READING_EVERY, Reading, SETTLE_WAIT, SETTLED_READINGS, Settled, count, mib,
};
use mix::{BROADCASTERS, CHURN, CHURN_EVERY, MEMBERS, MISBEHAVING, SLOW, Shared, Tally, run_mix};

mod chat;
mod mix;

const USAGE: &str = "\
usage: ws-bench soak [--secs S] [--warmup S] [--rss-slack MIB] [--server PATH]
                     [--markdown FILE]

  --secs S        length of the measured run (default 300)
  --warmup S      length of the warm-up before the baseline (default: a fifth of --secs,
                  at least 20 and at most 60)
  --rss-slack MIB how far above the baseline resident memory may end (default: 2 MiB or
                  10 % of the baseline, the larger)
  --server PATH   examples/secure_chat built with --features metrics
                  (default target/release/examples/secure_chat)
  --markdown FILE write the report into FILE (the whole file; e.g. reports/soak.md)
";

/// Resident memory after the run may exceed the baseline by the larger of these: freed memory
/// is kept by the allocator in pools whose size depends on how fragmented the last moments
/// left them, not only on what is still in use.
pub(crate) const RSS_SLACK_KIB: u64 = 2 * 1024;
pub(crate) const RSS_SLACK_SHARE: f64 = 0.10;
/// What to run.
struct Settings {
    secs: f64,
    warmup: f64,
    /// `--rss-slack`, in KiB.
    rss_slack: Option<u64>,
    server: PathBuf,
    markdown: Option<PathBuf>,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Settings, String> {
    let mut settings = Settings {
        secs: 300.0,
        warmup: -1.0,
        rss_slack: None,
        server: PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../target/release/examples/secure_chat"),
        markdown: None,
    };
    while let Some(flag) = args.next() {
        if matches!(flag.as_str(), "-h" | "--help") {
            return Err(String::new());
        }
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--secs" => settings.secs = value.parse().map_err(|e| bad(&e))?,
            "--warmup" => settings.warmup = value.parse().map_err(|e| bad(&e))?,
            "--rss-slack" => {
                let mib: f64 = value.parse().map_err(|e| bad(&e))?;
                if !(mib >= 0.0 && mib.is_finite()) {
                    return Err(bad(&"not a size"));
                }
                settings.rss_slack = Some(count(mib * 1024.0));
            }
            "--server" => settings.server = PathBuf::from(&value),
            "--markdown" => settings.markdown = Some(PathBuf::from(&value)),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if settings.secs <= 0.0 || !settings.secs.is_finite() {
        return Err("--secs must be positive".into());
    }
    if settings.warmup < 0.0 {
        settings.warmup = (settings.secs / 5.0).clamp(20.0, 60.0);
    }
    Ok(settings)
}

/// `ws-bench soak [OPTIONS]`: runs, prints and writes the report; exit 1 if a criterion fails.
pub(crate) fn main(args: impl Iterator<Item = String>) -> ExitCode {
    let settings = match parse_args(args) {
        Ok(settings) => settings,
        Err(err) => {
            if !err.is_empty() {
                eprintln!("ws-bench soak: {err}\n");
            }
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    if !settings.server.is_file() {
        eprintln!(
            "ws-bench soak: {} not found; build it first: \
             cargo build --release --example secure_chat -p warpsocket --features metrics",
            settings.server.display()
        );
        return ExitCode::FAILURE;
    }
    let _ = procs::raise_nofile();
    // Two workers: the clients read every broadcast, and the server runs on the same cores.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("ws-bench soak: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(&settings))
}

async fn run(settings: &Settings) -> ExitCode {
    let started = Instant::now();
    if !has_feature(&settings.server).await {
        eprintln!(
            "ws-bench soak: {} is not built with the feature `metrics`: \
             cargo build --release --example secure_chat -p warpsocket --features metrics",
            settings.server.display()
        );
        return ExitCode::FAILURE;
    }
    let built = procs::modified_utc(&settings.server);
    let snapshot = match Snapshot::take(&settings.server, "soak") {
        Ok(snapshot) => snapshot,
        Err(err) => {
            eprintln!(
                "ws-bench soak: copying {}: {err}",
                settings.server.display()
            );
            return ExitCode::FAILURE;
        }
    };
    let mut chat = match Chat::start(snapshot.path()).await {
        Ok(chat) => chat,
        Err(err) => {
            eprintln!("ws-bench soak: starting secure_chat: {err}");
            return ExitCode::FAILURE;
        }
    };
    let shared = Arc::new(Shared::new(chat.target.clone()));

    eprintln!("[{:>4.0}s] warm-up: {:.0} s", 0.0, settings.warmup);
    run_mix(&shared, secs(settings.warmup), None, (started, 1)).await;
    let baseline = chat.settle(None).await;
    eprintln!(
        "[{:>4.0}s] baseline: {}",
        started.elapsed().as_secs_f64(),
        baseline.reading
    );

    eprintln!(
        "[{:>4.0}s] run: {:.0} s",
        started.elapsed().as_secs_f64(),
        settings.secs
    );
    let run_started = Instant::now();
    let samples = run_mix(&shared, secs(settings.secs), Some(&chat), (started, 2)).await;
    let run_secs = run_started.elapsed().as_secs_f64();
    let after = chat.settle(Some(&baseline.reading)).await;
    eprintln!(
        "[{:>4.0}s] after: {}",
        started.elapsed().as_secs_f64(),
        after.reading
    );
    let soak = Soak {
        baseline,
        after,
        samples,
        run_secs,
        books: chat.books().await,
        exit: chat.terminate().await,
        log: chat.log().await,
        elapsed: started.elapsed(),
        rss_slack: settings.rss_slack,
    };

    let tally = shared.tally.lock().unwrap_or_else(PoisonError::into_inner);
    let markdown = render(settings, built.as_deref(), &soak, &shared, &tally);
    let verdict = soak.verdict(&shared, &tally);
    println!("\n{markdown}");
    if let Some(path) = &settings.markdown {
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Err(err) = std::fs::write(path, &markdown) {
            eprintln!("ws-bench soak: writing {}: {err}", path.display());
            return ExitCode::FAILURE;
        }
        eprintln!("ws-bench soak: wrote {}", path.display());
    }
    if verdict.iter().all(|criterion| criterion.pass) {
        ExitCode::SUCCESS
    } else {
        for criterion in verdict.iter().filter(|criterion| !criterion.pass) {
            eprintln!(
                "ws-bench soak: FAILED {}: {}",
                criterion.name, criterion.got
            );
        }
        ExitCode::FAILURE
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

/// Everything the soak read.
struct Soak {
    baseline: Settled,
    after: Settled,
    samples: Vec<Reading>,
    run_secs: f64,
    books: Books,
    exit: Result<(), String>,
    log: Log,
    elapsed: Duration,
    /// `--rss-slack`, in KiB.
    rss_slack: Option<u64>,
}

/// One pass/fail line of the verdict.
struct Criterion {
    name: &'static str,
    limit: String,
    got: String,
    pass: bool,
}

impl Soak {
    /// The RSS the run may end at.
    fn rss_limit(&self) -> u64 {
        let base = self.baseline.reading.rss_kib;
        base + self
            .rss_slack
            .unwrap_or_else(|| RSS_SLACK_KIB.max(count(base as f64 * RSS_SLACK_SHARE)))
    }

    /// The slope of resident memory over the last two thirds of the run, in KiB per minute
    /// (least squares over the readings), if there are enough of them: a leak that grows with
    /// the traffic shows as a steady climb; the allocator's pools level off.
    fn rss_trend(&self) -> Option<f64> {
        let from = self.samples.len() / 3;
        let points: Vec<(f64, f64)> = self.samples[from..]
            .iter()
            .map(|r| (r.at.as_secs_f64() / 60.0, r.rss_kib as f64))
            .collect();
        if points.len() < 10 {
            return None;
        }
        let n = points.len() as f64;
        let (mean_t, mean_rss) = points
            .iter()
            .fold((0.0, 0.0), |(t, m), (pt, pm)| (t + pt / n, m + pm / n));
        let (cov, var) = points.iter().fold((0.0, 0.0), |(c, v), (t, m)| {
            (
                c + (t - mean_t) * (m - mean_rss),
                v + (t - mean_t) * (t - mean_t),
            )
        });
        (var > 0.0).then(|| cov / var)
    }

    fn peak(&self) -> Reading {
        let mut peak = Reading::default();
        for r in &self.samples {
            peak.connections = peak.connections.max(r.connections);
            peak.rss_kib = peak.rss_kib.max(r.rss_kib);
            peak.fds = peak.fds.max(r.fds);
            peak.threads = peak.threads.max(r.threads);
            peak.tasks = peak.tasks.max(r.tasks);
        }
        peak
    }

    /// Resident memory after the run against the baseline.
    fn rss_criterion(&self) -> Criterion {
        let (base, after) = (&self.baseline.reading, &self.after.reading);
        Criterion {
            name: "resident memory back to the baseline",
            limit: match self.rss_slack {
                Some(slack) => format!(
                    "≤ {} (baseline + {}, `--rss-slack`)",
                    mib(self.rss_limit()),
                    mib(slack)
                ),
                None => format!(
                    "≤ {} (baseline + {} or {:.0} %, the larger)",
                    mib(self.rss_limit()),
                    mib(RSS_SLACK_KIB),
                    RSS_SLACK_SHARE * 100.0
                ),
            },
            got: format!("{} (baseline {})", mib(after.rss_kib), mib(base.rss_kib)),
            pass: after.rss_kib <= self.rss_limit() && self.after.error.is_none(),
        }
    }

    fn verdict(&self, shared: &Shared, tally: &Tally) -> Vec<Criterion> {
        let (base, after) = (&self.baseline.reading, &self.after.reading);
        let settled = |s: &Settled| match (&s.error, s.timed_out) {
            (Some(err), _) => format!("reading failed: {err}"),
            (None, true) => format!("not settled within {} s", SETTLE_WAIT.as_secs()),
            (None, false) => format!("in {:.1} s", s.waited.as_secs_f64()),
        };
        let upgrades = shared.upgrades.load(Ordering::Relaxed);
        let forbidden = shared.forbidden.load(Ordering::Relaxed);
        let refused = self
            .books
            .refused_by_reason
            .get("rejected")
            .copied()
            .unwrap_or(0);
        let harness = shared.harness_panics.load(Ordering::Relaxed);
        let slow_cuts = shared.slow_cuts.load(Ordering::Relaxed);
        vec![
            Criterion {
                name: "no connection left, server settled (baseline)",
                limit: format!("within {} s", SETTLE_WAIT.as_secs()),
                got: settled(&self.baseline),
                pass: self.baseline.error.is_none() && !self.baseline.timed_out,
            },
            Criterion {
                name: "no connection left, server settled (after the run)",
                limit: format!("within {} s", SETTLE_WAIT.as_secs()),
                got: settled(&self.after),
                pass: self.after.error.is_none() && !self.after.timed_out,
            },
            self.rss_criterion(),
            Criterion {
                name: "descriptors back to the baseline",
                limit: format!("≤ {}", base.fds),
                got: after.fds.to_string(),
                pass: after.fds <= base.fds && self.after.error.is_none(),
            },
            Criterion {
                name: "tokio tasks alive back to the baseline",
                limit: format!("≤ {}", base.tasks),
                got: after.tasks.to_string(),
                pass: after.tasks <= base.tasks && self.after.error.is_none(),
            },
            Criterion {
                name: "no panic in the server's output",
                limit: "0 lines".to_owned(),
                got: format!("{} lines", self.log.panics),
                pass: self.log.panics == 0,
            },
            Criterion {
                name: "every answer as expected",
                limit: format!("all of {}", tally.total()),
                got: format!("{} unexpected", tally.unexpected()),
                pass: tally.unexpected() == 0 && tally.total() > 0 && harness == 0,
            },
            Criterion {
                name: "server's books: opened = closed = upgrades the clients saw",
                limit: format!("{upgrades} each"),
                got: match &self.books.error {
                    Some(err) => format!("scrape failed: {err}"),
                    None => format!(
                        "opened {}, closed {}; refused for the password {refused} \
                         (403s seen: {forbidden})",
                        self.books.opened, self.books.closed
                    ),
                },
                pass: self.books.error.is_none()
                    && self.books.opened == upgrades
                    && self.books.closed == upgrades
                    && refused == forbidden,
            },
            Criterion {
                name: "slow consumers cut: as many as the server counted",
                limit: format!(
                    "{} (`ws_slow_consumer_closes_total`)",
                    self.books.slow_consumer_closes
                ),
                got: slow_cuts.to_string(),
                pass: self.books.error.is_none()
                    && slow_cuts == self.books.slow_consumer_closes
                    && slow_cuts > 0,
            },
            Criterion {
                name: "clean exit on SIGTERM",
                limit: "exit status 0 within 10 s".to_owned(),
                got: match &self.exit {
                    Ok(()) => "exit status 0".to_owned(),
                    Err(err) => err.clone(),
                },
                pass: self.exit.is_ok(),
            },
        ]
    }
}

/// The report, in Markdown.
fn render(
    settings: &Settings,
    built: Option<&str>,
    soak: &Soak,
    shared: &Shared,
    tally: &Tally,
) -> String {
    let mut out = String::new();
    render_verdict(&mut out, settings, built, soak, shared, tally);
    render_server(&mut out, soak);
    render_clients(&mut out, shared, tally);
    render_books(&mut out, soak);
    render_log(&mut out, &soak.log);
    render_readings(&mut out, soak);
    out
}

/// How it was made, the mix, and the verdict.
fn render_verdict(
    out: &mut String,
    settings: &Settings,
    built: Option<&str>,
    soak: &Soak,
    shared: &Shared,
    tally: &Tally,
) {
    let commit = shell("git", &["describe", "--always", "--dirty"]).unwrap_or_else(|| "?".into());
    let date = shell("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_else(|| "?".into());
    let verdict = soak.verdict(shared, tally);
    let passed = verdict.iter().all(|criterion| criterion.pass);
    let _ = writeln!(out, "# Soak: examples/secure_chat under a mixed load\n");
    let _ = writeln!(
        out,
        "Measured {date} at commit `{commit}` in {:.0} s: `ws-bench soak --secs {}{}` ({:.0} s \
         of warm-up, then {:.0} s measured). Server: `{}`{}, run with its defaults \
         (permessage-deflate on) and `--metrics 127.0.0.1:0`, copied at the start. Machine: {}.\n",
        soak.elapsed.as_secs_f64(),
        settings.secs,
        settings
            .rss_slack
            .map(|kib| format!(" --rss-slack {}", kib as f64 / 1024.0))
            .unwrap_or_default(),
        settings.warmup,
        soak.run_secs,
        settings.server.display(),
        built
            .map(|b| format!(" as built at {b}"))
            .unwrap_or_default(),
        machine(),
    );
    let _ = writeln!(
        out,
        "The mix, in both phases: {MEMBERS} members at a time (3–20 s each, half of them \
         compressing; leaving by close, drop or reset), {BROADCASTERS} broadcasters at 40 msg/s \
         each, {CHURN} churn slots (a connection every {} ms each), {SLOW} slow consumers \
         (20 KiB/s read), {MISBEHAVING} misbehaving slots. The baseline is read after the \
         warm-up, once the server shows no connection and {SETTLED_READINGS} readings \
         {} ms apart agree; the end state the same way after the run. See `bench/src/soak.rs`.\n",
        CHURN_EVERY.as_millis(),
        READING_EVERY.as_millis(),
    );
    let _ = writeln!(
        out,
        "**Verdict: {}.**\n",
        if passed { "pass" } else { "FAIL" }
    );
    let _ = writeln!(out, "| Criterion | Limit | Got | |\n|---|---|---|---|");
    for c in &verdict {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            c.name,
            c.limit,
            c.got,
            if c.pass { "pass" } else { "**FAIL**" }
        );
    }
    out.push('\n');
}

/// A row of the server's table: its label, and how it shows a reading.
type Row = (&'static str, fn(&Reading) -> String);

/// The server's readings at the baseline, at their peak, and after.
fn render_server(out: &mut String, soak: &Soak) {
    let (base, after, peak) = (&soak.baseline.reading, &soak.after.reading, soak.peak());
    let _ = writeln!(
        out,
        "### The server\n\n| | Baseline (after warm-up) | Peak during the run | After the run |\n\
         |---|---:|---:|---:|"
    );
    let rows: [Row; 5] = [
        ("Open connections", |r| r.connections.to_string()),
        ("Resident memory (VmRSS)", |r| mib(r.rss_kib)),
        ("Open descriptors", |r| r.fds.to_string()),
        ("Threads", |r| r.threads.to_string()),
        ("tokio tasks alive (`/runtime`)", |r| r.tasks.to_string()),
    ];
    for (label, show) in rows {
        let _ = writeln!(
            out,
            "| {label} | {} | {} | {} |",
            show(base),
            show(&peak),
            show(after)
        );
    }
    out.push('\n');
    let _ = writeln!(
        out,
        "Peaks from a reading every second of the run ({} readings); the figures include the \
         harness's own scrape (one HTTP connection at a time). Resident memory over the last \
         two thirds of the run: {}.\n",
        soak.samples.len(),
        soak.rss_trend().map_or_else(
            || "too few readings for a trend".to_owned(),
            |kib| format!("{kib:+.0} KiB per minute (least squares)")
        ),
    );
}

/// What the clients sent, received and were answered.
fn render_clients(out: &mut String, shared: &Shared, tally: &Tally) {
    let _ = writeln!(
        out,
        "### The clients' view\n\n{} upgrades, {} handshakes refused with 403; {} messages \
         sent; {} received and checked byte for byte ({} of them compressed, inflated), \
         {:.1} MB after inflation.\n",
        shared.upgrades.load(Ordering::Relaxed),
        shared.forbidden.load(Ordering::Relaxed),
        shared.sent.load(Ordering::Relaxed),
        shared.received.load(Ordering::Relaxed),
        shared.compressed.load(Ordering::Relaxed),
        shared.received_bytes.load(Ordering::Relaxed) as f64 / 1e6,
    );
    let _ = writeln!(
        out,
        "| Role | Case | Expected | Answers (count) | Unexpected |\n|---|---|---|---|---:|"
    );
    for ((role, case), answers) in &tally.cases {
        let list: Vec<String> = answers
            .answers
            .iter()
            .map(|(label, n)| format!("{label} ({n})"))
            .collect();
        let _ = writeln!(
            out,
            "| {role} | {case} | {} | {} | {} |",
            answers.expected,
            list.join("; "),
            answers.unexpected
        );
    }
    out.push('\n');
}

/// The server's own counts.
fn render_books(out: &mut String, soak: &Soak) {
    let books = &soak.books;
    let _ = writeln!(
        out,
        "### The server's books (`/metrics` at the end)\n\n{} connections opened, {} closed; \
         {} slow consumers cut, {} heartbeat timeouts; {} messages received, {} sent.\n",
        books.opened,
        books.closed,
        books.slow_consumer_closes,
        books.heartbeat_timeouts,
        books.received,
        books.sent
    );
    let codes: Vec<String> = books
        .closed_by_code
        .iter()
        .map(|(code, n)| format!("{code}: {n}"))
        .collect();
    let reasons: Vec<String> = books
        .refused_by_reason
        .iter()
        .map(|(reason, n)| format!("{reason}: {n}"))
        .collect();
    let _ = writeln!(
        out,
        "Closes by code: {}. Handshakes refused by reason: {}.\n",
        if codes.is_empty() {
            "none".to_owned()
        } else {
            codes.join(", ")
        },
        if reasons.is_empty() {
            "none".to_owned()
        } else {
            reasons.join(", ")
        }
    );
}

/// What the server printed, in short.
fn render_log(out: &mut String, log: &Log) {
    let _ = writeln!(
        out,
        "### The server's output\n\n{} lines; {} on standard error; {} mentioning a panic.\n",
        log.lines, log.stderr_lines, log.panics
    );
    for (level, map) in [("WARN", &log.warnings), ("ERROR", &log.errors)] {
        for (message, n) in map {
            let _ = writeln!(out, "- {level} ×{n}: `{message}`");
        }
    }
    for line in log.panic_lines.iter().chain(&log.stderr_first) {
        let _ = writeln!(out, "- `{line}`");
    }
    if !log.warnings.is_empty()
        || !log.errors.is_empty()
        || !log.panic_lines.is_empty()
        || !log.stderr_first.is_empty()
    {
        out.push('\n');
    }
}

/// Readings through the run, about a dozen, and the one after.
fn render_readings(out: &mut String, soak: &Soak) {
    let after = &soak.after.reading;
    let _ = writeln!(
        out,
        "### Over the run\n\n| s | Connections | RSS | Descriptors | Threads | Tasks |\n\
         |---:|---:|---:|---:|---:|---:|"
    );
    let step = (soak.samples.len() / 12).max(1);
    let rows = soak
        .samples
        .iter()
        .enumerate()
        .filter(|(i, _)| i % step == 0 || *i + 1 == soak.samples.len());
    for (_, r) in rows {
        let _ = writeln!(
            out,
            "| {:.0} | {} | {} | {} | {} | {} |",
            r.at.as_secs_f64(),
            r.connections,
            mib(r.rss_kib),
            r.fds,
            r.threads,
            r.tasks
        );
    }
    let _ = writeln!(
        out,
        "| after | {} | {} | {} | {} | {} |",
        after.connections,
        mib(after.rss_kib),
        after.fds,
        after.threads,
        after.tasks
    );
}
