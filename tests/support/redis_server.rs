//! A `redis-server` of the test's own on a free port of 127.0.0.1, killed when dropped: the
//! tests never touch a system instance. Included with `#[path]` by the tests that need one
//! (`scripts/test` installs Debian's `redis-server` when missing).

#![allow(dead_code, reason = "each test file uses its own part of the harness")]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a started server may take to answer PING.
const READY_WITHIN: Duration = Duration::from_secs(10);
const POLL_STEP: Duration = Duration::from_millis(10);

/// A running `redis-server` (no persistence), killed on drop.
pub(crate) struct RedisServer {
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one on a free port and returns once it answers PING.
    ///
    /// # Panics
    ///
    /// If `redis-server` cannot be run, or no server answered on any of a few free ports.
    pub(crate) fn start() -> RedisServer {
        for _ in 0..5 {
            // The port is free now; another process could take it before redis-server binds
            // it, in which case the server exits at once and another port is tried.
            let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .and_then(|listener| listener.local_addr())
                .expect("a free port on 127.0.0.1")
                .port();
            let mut server = RedisServer { port, child: None };
            if server.spawn() {
                return server;
            }
        }
        panic!("redis-server did not start on any of 5 free ports");
    }

    /// `redis://127.0.0.1:PORT/`
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// SIGKILL, and waits until the process is gone (its port closed).
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the process (SIGSTOP): connections stay open, nothing is answered, as a Redis
    /// stuck in a long command or a paused VM.
    pub(crate) fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets it go on (SIGCONT) after [`pause`](Self::pause).
    pub(crate) fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let status = Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} {pid}");
    }

    /// Starts it again on the same port (after [`kill`](Self::kill)), empty, and returns once
    /// it answers PING.
    ///
    /// # Panics
    ///
    /// If it does not come back within 10 s.
    pub(crate) fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + READY_WITHIN;
        while !self.spawn() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not restart on port {}",
                self.port
            );
            std::thread::sleep(POLL_STEP);
        }
    }

    /// Runs a command with `redis-cli` and returns its output, trimmed.
    ///
    /// # Panics
    ///
    /// If `redis-cli` cannot be run or fails.
    pub(crate) fn cli(&self, args: &[&str]) -> String {
        let output = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli runs");
        assert!(output.status.success(), "redis-cli {args:?}: {output:?}");
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// Starts the process; `true` once it answers PING, `false` if it exited (port taken).
    fn spawn(&mut self) -> bool {
        let mut child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(std::env::temp_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (scripts/test installs Debian's `redis-server`)");
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                return false;
            }
            if ping(self.port) {
                self.child = Some(child);
                return true;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "redis-server on port {} did not answer PING within 10 s",
                    self.port
                );
            }
            std::thread::sleep(POLL_STEP);
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether a Redis on `port` answers PING (in RESP, without a client library).
fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut answer = [0; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut answer).is_ok()
        && &answer == b"+PONG\r\n"
}
