//! Child server processes, CPU pinning and the `/proc` readings: CPU time and resident memory.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};

use crate::client::Target;
use crate::servers::Kind;

/// The CPU the servers run on; the client (this process) runs on [`CLIENT_CPU`].
pub(crate) const SERVER_CPU: &str = "0";
const CLIENT_CPU: &str = "1";

/// Whether `taskset` (util-linux) is there to pin processes.
pub(crate) fn have_taskset() -> bool {
    std::process::Command::new("taskset")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Pins this process's main thread to the client CPU. Call before starting any thread: threads
/// inherit the mask of the thread that creates them.
pub(crate) fn pin_self() -> bool {
    std::process::Command::new("taskset")
        .args(["-p", "-c", CLIENT_CPU, &std::process::id().to_string()])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Raises this process's soft limit on open files to the hard limit (children inherit it),
/// through util-linux's `prlimit`. Returns the soft limit in force afterwards.
pub(crate) fn raise_nofile() -> Option<u64> {
    let hard = read_nofile(2)?;
    let _ = std::process::Command::new("prlimit")
        .args([
            "--pid",
            &std::process::id().to_string(),
            &format!("--nofile={hard}:{hard}"),
        ])
        .status();
    read_nofile(1)
}

/// Field 1 (soft) or 2 (hard) of the "Max open files" line of `/proc/self/limits`.
fn read_nofile(field: usize) -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let rest = line.trim_start_matches("Max open files");
    rest.split_whitespace().nth(field - 1)?.parse().ok()
}

/// A private copy of our echo binary, removed when dropped. Other work on the same tree may
/// rebuild `target/release/examples/echo` during a run; the copy keeps one binary for the whole
/// run instead of a mix.
pub(crate) struct Snapshot {
    path: PathBuf,
}

impl Snapshot {
    /// Copies `binary` as `ws-bench-echo-PID` (with `-TAG` after it if `tag` is not empty);
    /// first removes the copies of earlier runs that were killed (whose process is gone)
    /// before they could remove their own.
    pub(crate) fn take(binary: &Path, tag: &str) -> io::Result<Snapshot> {
        let dir = std::env::temp_dir();
        for entry in std::fs::read_dir(&dir)?.flatten() {
            let name = entry.file_name();
            let pid = name
                .to_str()
                .and_then(|n| n.strip_prefix("ws-bench-echo-"))
                .map(|rest| rest.split('-').next().unwrap_or(rest));
            if pid.is_some_and(|pid| !Path::new("/proc").join(pid).exists()) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        let name = if tag.is_empty() {
            format!("ws-bench-echo-{}", std::process::id())
        } else {
            format!("ws-bench-echo-{}-{tag}", std::process::id())
        };
        let path = dir.join(name);
        std::fs::copy(binary, &path)?;
        Ok(Snapshot { path })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// When `path` was last modified, as `YYYY-MM-DD HH:MM UTC` (through `date`).
pub(crate) fn modified_utc(path: &Path) -> Option<String> {
    let out = std::process::Command::new("date")
        .arg("-u")
        .arg("-r")
        .arg(path)
        .arg("+%Y-%m-%d %H:%M UTC")
        .output()
        .ok()?;
    let s = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !s.is_empty()).then_some(s)
}

/// Clock ticks per second for `/proc/PID/stat` times.
pub(crate) fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// User plus system CPU time of every thread of `pid`, in clock ticks.
pub(crate) fn cpu_ticks(pid: &str) -> io::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which may hold spaces and ends at the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| io::Error::other("odd /proc/PID/stat"))?;
    let mut fields = rest.split_whitespace().skip(11);
    let mut next = || -> io::Result<u64> {
        fields
            .next()
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| io::Error::other("odd /proc/PID/stat"))
    };
    Ok(next()? + next()?)
}

/// Resident set size of `pid` in KiB (`VmRSS`).
pub(crate) fn rss_kib(pid: &str) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| io::Error::other("no VmRSS in /proc/PID/status"))
}

/// A server running as a child process, pinned to the server CPU.
pub(crate) struct Server {
    child: Child,
    /// Kept open: the server may print more and must not get `SIGPIPE`.
    stdout: BufReader<ChildStdout>,
    pub(crate) pid: String,
    pub(crate) target: Target,
    /// Where the server serves its Prometheus text (`echo --metrics`), if it does.
    pub(crate) metrics: Option<SocketAddr>,
}

impl Server {
    /// Starts the server of `kind` and waits (at most 10 s) for its "listening on" line (and
    /// for `echo --metrics`, the next one, with the metrics' address). `ours` is our echo
    /// binary, `ours_metrics` our echo built with the feature `metrics`, `baseline` the build
    /// ours is compared with.
    pub(crate) async fn start(
        kind: Kind,
        (ours, ours_metrics, baseline): (&Path, &Path, &Path),
        pin: bool,
    ) -> io::Result<Server> {
        let exe = std::env::current_exe()?;
        let (program, args): (&Path, Vec<&str>) = match kind {
            Kind::Ours => (ours, vec!["--addr", "127.0.0.1:0"]),
            Kind::OursBaseline => (baseline, vec!["--addr", "127.0.0.1:0"]),
            Kind::OursBroadcast => (ours, vec!["--broadcast", "--addr", "127.0.0.1:0"]),
            Kind::OursDeflate => (ours, vec!["--deflate", "--addr", "127.0.0.1:0"]),
            Kind::OursDeflate15 => (
                ours,
                vec!["--deflate-client-bits", "15", "--addr", "127.0.0.1:0"],
            ),
            Kind::OursFeature => (ours_metrics, vec!["--addr", "127.0.0.1:0"]),
            Kind::OursBroadcastFeature => {
                (ours_metrics, vec!["--broadcast", "--addr", "127.0.0.1:0"])
            }
            Kind::OursPrometheus => (
                ours_metrics,
                vec!["--metrics", "127.0.0.1:0", "--addr", "127.0.0.1:0"],
            ),
            Kind::OursBroadcastPrometheus => (
                ours_metrics,
                vec![
                    "--broadcast",
                    "--metrics",
                    "127.0.0.1:0",
                    "--addr",
                    "127.0.0.1:0",
                ],
            ),
            _ => (exe.as_path(), vec!["serve", kind.name()]),
        };
        let mut server =
            Server::spawn(kind.name(), program, &args, pin, kind.is_websocket()).await?;
        if kind.is_prometheus() {
            server.metrics = Some(server.metrics_line().await?);
        }
        Ok(server)
    }

    /// Reads the line `echo metrics at http://ADDR/metrics` (at most 10 s) and returns `ADDR`.
    async fn metrics_line(&mut self) -> io::Result<SocketAddr> {
        let mut line = String::new();
        tokio::time::timeout(Duration::from_secs(10), self.stdout.read_line(&mut line))
            .await
            .map_err(|_| io::Error::other("no metrics line in 10 s"))??;
        line.trim()
            .strip_prefix("echo metrics at http://")
            .and_then(|rest| rest.strip_suffix("/metrics"))
            .and_then(|addr| addr.parse().ok())
            .ok_or_else(|| io::Error::other(format!("odd metrics line {line:?}")))
    }

    /// Starts `program ARGS` (a server that prints `… listening on ws://ADDR/PATH` first),
    /// pinned to the server CPU if `pin`, and waits (at most 10 s) for that line.
    pub(crate) async fn spawn(
        name: &str,
        program: &Path,
        args: &[&str],
        pin: bool,
        websocket: bool,
    ) -> io::Result<Server> {
        let mut command = if pin {
            let mut command = Command::new("taskset");
            command.args(["-c", SERVER_CPU]).arg(program);
            command
        } else {
            Command::new(program)
        };
        command
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let mut child = command.spawn()?;
        let pid = child
            .id()
            .ok_or_else(|| io::Error::other("server exited at once"))?
            .to_string();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| io::Error::other("no stdout"))?;
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        tokio::time::timeout(Duration::from_secs(10), stdout.read_line(&mut line))
            .await
            .map_err(|_| io::Error::other(format!("{name} did not start in 10 s")))??;
        let url = line
            .split_once("ws://")
            .map(|(_, url)| url.trim())
            .ok_or_else(|| io::Error::other(format!("{name}: odd first line {line:?}")))?;
        let (addr, path) = url.split_once('/').unwrap_or((url, ""));
        let target = Target {
            addr: addr
                .parse()
                .map_err(|e| io::Error::other(format!("{name}: bad address {addr}: {e}")))?,
            path: path.to_owned(),
            websocket,
        };
        Ok(Server {
            child,
            stdout,
            pid,
            target,
            metrics: None,
        })
    }

    /// CPU ticks the server has used so far.
    pub(crate) fn cpu_ticks(&self) -> io::Result<u64> {
        cpu_ticks(&self.pid)
    }

    /// The server's resident memory in KiB.
    pub(crate) fn rss_kib(&self) -> io::Result<u64> {
        rss_kib(&self.pid)
    }

    /// Kills the server and reaps it.
    pub(crate) async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}
