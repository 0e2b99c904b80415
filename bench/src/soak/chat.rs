//! The server of the soak: `secure_chat` as a child process, its output read to the end, and
//! its readings (`/metrics`, `/runtime`, `/proc/PID`).

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{sleep, timeout, timeout_at};

use crate::client::Target;
use crate::metrics::{http_get, sum};
use crate::procs;

/// The password `secure_chat` accepts by default.
const PASSWORD: &str = "reallyverysecure";

/// How long the server has to show no connection, and then to settle, after each phase.
pub(super) const SETTLE_WAIT: Duration = Duration::from_secs(30);
/// Readings in a row that must agree for the server to count as settled.
pub(super) const SETTLED_READINGS: usize = 4;
pub(super) const READING_EVERY: Duration = Duration::from_millis(250);

/// `secure_chat` running as a child process, its output read to the end by two tasks.
pub(super) struct Chat {
    child: Child,
    pid: String,
    pub(super) target: Target,
    metrics: SocketAddr,
    log: Arc<Mutex<Log>>,
    readers: JoinSet<()>,
}

/// What the server printed, in short.
#[derive(Debug, Default)]
pub(super) struct Log {
    pub(super) lines: u64,
    /// Lines that mention a panic, the first few of them.
    pub(super) panics: u64,
    pub(super) panic_lines: Vec<String>,
    /// `WARN` and `ERROR` events by their message (fields left out), and how many.
    pub(super) warnings: BTreeMap<String, u64>,
    pub(super) errors: BTreeMap<String, u64>,
    /// Lines on standard error (`secure_chat` logs to standard output; only a panic's message
    /// or a fatal error goes to standard error).
    pub(super) stderr_lines: u64,
    pub(super) stderr_first: Vec<String>,
}

impl Log {
    fn note(&mut self, line: &str, stderr: bool) {
        self.lines += 1;
        if line.contains("panicked") {
            self.panics += 1;
            if self.panic_lines.len() < 5 {
                self.panic_lines.push(line.to_owned());
            }
        }
        if stderr {
            self.stderr_lines += 1;
            if self.stderr_first.len() < 5 {
                self.stderr_first.push(line.to_owned());
            }
        }
        // tracing-subscriber's format: `TIME  LEVEL target: message key=value ...`.
        let mut words = line.split_whitespace();
        let level = words.nth(1);
        let map = match level {
            Some("WARN") => &mut self.warnings,
            Some("ERROR") => &mut self.errors,
            _ => return,
        };
        let message: Vec<&str> = words.filter(|word| !word.contains('=')).collect();
        let key = message.join(" ");
        if map.len() < 20 || map.contains_key(&key) {
            *map.entry(key).or_default() += 1;
        } else {
            *map.entry("(others)".to_owned()).or_default() += 1;
        }
    }
}

/// What the server looked like at one moment.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Reading {
    /// Since the start of its phase.
    pub(super) at: Duration,
    pub(super) connections: u64,
    pub(super) rss_kib: u64,
    pub(super) fds: u64,
    pub(super) threads: u64,
    pub(super) tasks: u64,
}

impl std::fmt::Display for Reading {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} connections, RSS {}, {} descriptors, {} threads, {} tasks alive",
            self.connections,
            mib(self.rss_kib),
            self.fds,
            self.threads,
            self.tasks
        )
    }
}

/// The reading once the server has no connection left and has settled.
#[derive(Clone, Debug, Default)]
pub(super) struct Settled {
    pub(super) reading: Reading,
    /// How long it took from the last client's end.
    pub(super) waited: Duration,
    /// Whether it never got there within [`SETTLE_WAIT`] (then `reading` is the last one).
    pub(super) timed_out: bool,
    /// A reading failed (the server is gone, or its metrics do not answer).
    pub(super) error: Option<String>,
}

/// The server's own counts at the end.
#[derive(Clone, Debug, Default)]
pub(super) struct Books {
    pub(super) opened: u64,
    pub(super) closed: u64,
    pub(super) closed_by_code: BTreeMap<String, u64>,
    pub(super) refused_by_reason: BTreeMap<String, u64>,
    pub(super) slow_consumer_closes: u64,
    pub(super) heartbeat_timeouts: u64,
    pub(super) received: u64,
    pub(super) sent: u64,
    pub(super) error: Option<String>,
}

impl Chat {
    /// Starts `binary --addr 127.0.0.1:0 --metrics 127.0.0.1:0` and waits (at most 10 s) for
    /// its `Chat at` and `Metrics at` lines.
    pub(super) async fn start(binary: &Path) -> io::Result<Chat> {
        let mut child = Command::new(binary)
            .args(["--addr", "127.0.0.1:0", "--metrics", "127.0.0.1:0"])
            .env_remove("RUST_LOG")
            .env_remove("CHAT_PASSWORD")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let pid = child
            .id()
            .ok_or_else(|| io::Error::other("secure_chat exited at once"))?
            .to_string();
        let log = Arc::new(Mutex::new(Log::default()));
        let (addresses, mut found) = mpsc::unbounded_channel();
        let mut readers = JoinSet::new();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| io::Error::other("no stdout"))?;
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| io::Error::other("no stderr"))?;
        readers.spawn(read_log(stdout, log.clone(), false, Some(addresses)));
        readers.spawn(read_log(stderr, log.clone(), true, None));
        let (mut chat, mut metrics) = (None, None);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while chat.is_none() || metrics.is_none() {
            let line: String = timeout_at(deadline, found.recv())
                .await
                .map_err(|_| io::Error::other("no `Chat at` and `Metrics at` lines in 10 s"))?
                .ok_or_else(|| io::Error::other("secure_chat exited while starting"))?;
            let address = |prefix: &str, suffix: &str| {
                let (_, rest) = line.split_once(prefix)?;
                rest.trim().strip_suffix(suffix)?.parse::<SocketAddr>().ok()
            };
            chat = chat.or_else(|| address("Chat at http://", "/"));
            metrics = metrics.or_else(|| address("Metrics at http://", "/metrics"));
        }
        let (Some(addr), Some(metrics)) = (chat, metrics) else {
            return Err(io::Error::other("no addresses"));
        };
        Ok(Chat {
            child,
            pid,
            target: Target {
                addr,
                path: format!("ws?password={PASSWORD}"),
                websocket: true,
            },
            metrics,
            log,
            readers,
        })
    }

    /// Reads the server now.
    pub(super) async fn read(&self, since: Instant) -> io::Result<Reading> {
        let page = http_get(self.metrics, "/metrics").await?;
        let runtime = http_get(self.metrics, "/runtime").await?;
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        let threads = status
            .lines()
            .find_map(|line| line.strip_prefix("Threads:"))
            .and_then(|n| n.trim().parse().ok())
            .ok_or_else(|| io::Error::other("no Threads in /proc/PID/status"))?;
        let fds = std::fs::read_dir(format!("/proc/{}/fd", self.pid))?.count() as u64;
        Ok(Reading {
            at: since.elapsed(),
            connections: count(sum(&page, "ws_connections", &[])),
            rss_kib: procs::rss_kib(&self.pid)?,
            fds,
            threads,
            tasks: count(sum(&runtime, "tokio_alive_tasks", &[])),
        })
    }

    /// Waits (at most [`SETTLE_WAIT`]) for the server to show no connection, then for
    /// [`SETTLED_READINGS`] readings in a row to agree on descriptors and tasks, and, after the
    /// run (`baseline` given), to be no more than the baseline's; returns the last reading.
    pub(super) async fn settle(&self, baseline: Option<&Reading>) -> Settled {
        let started = Instant::now();
        let mut last: Vec<Reading> = Vec::new();
        loop {
            let reading = match self.read(started).await {
                Ok(reading) => reading,
                Err(err) => {
                    return Settled {
                        reading: last.last().copied().unwrap_or_default(),
                        waited: started.elapsed(),
                        timed_out: false,
                        error: Some(err.to_string()),
                    };
                }
            };
            if reading.connections > 0 {
                last.clear();
            }
            last.push(reading);
            let same = last.len() >= SETTLED_READINGS
                && last[last.len() - SETTLED_READINGS..]
                    .iter()
                    .all(|r| (r.fds, r.tasks) == (reading.fds, reading.tasks));
            let back = baseline.is_none_or(|b| reading.fds <= b.fds && reading.tasks <= b.tasks);
            let timed_out = started.elapsed() >= SETTLE_WAIT;
            if (reading.connections == 0 && same && back) || timed_out {
                return Settled {
                    reading,
                    waited: started.elapsed(),
                    timed_out: !(reading.connections == 0 && same && back),
                    error: None,
                };
            }
            sleep(READING_EVERY).await;
        }
    }

    /// The server's own counts.
    pub(super) async fn books(&self) -> Books {
        let page = match http_get(self.metrics, "/metrics").await {
            Ok(page) => page,
            Err(err) => {
                return Books {
                    error: Some(err.to_string()),
                    ..Books::default()
                };
            }
        };
        let by_label = |name: &str, label: &str| {
            let mut values = BTreeMap::new();
            for line in page.lines().filter(|line| line.starts_with(name)) {
                let Some((labels, value)) = line[name.len()..].rsplit_once(' ') else {
                    continue;
                };
                let key = labels
                    .trim_matches(['{', '}'])
                    .split(',')
                    .find_map(|pair| pair.trim().strip_prefix(label))
                    .map(|v| v.trim_matches('"').to_owned());
                if let (Some(key), Ok(value)) = (key, value.parse::<f64>())
                    && value > 0.0
                {
                    *values.entry(key).or_default() += count(value);
                }
            }
            values
        };
        Books {
            opened: count(sum(&page, "ws_connections_opened_total", &[])),
            closed: count(sum(&page, "ws_connections_closed_total", &[])),
            closed_by_code: by_label("ws_connections_closed_total{", "code="),
            refused_by_reason: by_label("ws_handshakes_refused_total{", "reason="),
            slow_consumer_closes: count(sum(&page, "ws_slow_consumer_closes_total", &[])),
            heartbeat_timeouts: count(sum(&page, "ws_heartbeat_timeouts_total", &[])),
            received: count(sum(&page, "ws_messages_received_total", &[])),
            sent: count(sum(&page, "ws_messages_sent_total", &[])),
            error: None,
        }
    }

    /// SIGTERM, then waits (at most 10 s) for the exit: `Ok(())` for a clean one.
    pub(super) async fn terminate(&mut self) -> Result<(), String> {
        let signalled = std::process::Command::new("kill")
            .args(["-TERM", &self.pid])
            .status()
            .map_err(|err| format!("kill -TERM: {err}"))?;
        if !signalled.success() {
            return Err("kill -TERM failed: the server was gone".into());
        }
        match timeout(Duration::from_secs(10), self.child.wait()).await {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => Err(format!("exited with {status}")),
            Ok(Err(err)) => Err(err.to_string()),
            Err(_) => {
                let _ = self.child.start_kill();
                Err("still running 10 s after SIGTERM; killed".into())
            }
        }
    }

    /// What the server printed, once its output has ended (at most 5 s after its exit).
    pub(super) async fn log(&mut self) -> Log {
        let _ = timeout(Duration::from_secs(5), async {
            while self.readers.join_next().await.is_some() {}
        })
        .await;
        std::mem::take(&mut *self.log.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Reads `out` line by line into `log` until it ends; forwards the lines that announce an
/// address to `addresses`.
async fn read_log(
    out: impl AsyncRead + Unpin,
    log: Arc<Mutex<Log>>,
    stderr: bool,
    addresses: Option<mpsc::UnboundedSender<String>>,
) {
    let mut lines = BufReader::new(out).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(addresses) = &addresses
            && line.contains(" at http://")
        {
            let _ = addresses.send(line.clone());
        }
        log.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .note(&line, stderr);
    }
}

#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "a count read back from Prometheus' text, clamped first"
)]
pub(super) fn count(x: f64) -> u64 {
    if x.is_finite() {
        x.max(0.0).round() as u64
    } else {
        0
    }
}

pub(super) fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}
