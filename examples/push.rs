//! Server push: a task started in `on_start` broadcasts a tick to every client once a second;
//! `on_stop` stops it before the clients are closed with 1001.
//!
//! `cargo run --example push -- --addr 127.0.0.1:8082`, then connect to
//! `ws://127.0.0.1:8082/` with any WebSocket client. Ctrl-C or SIGTERM stops the ticker, closes
//! every client with 1001 and exits.
//!
//! The ticker stands for any feed you poll (a database, a queue, an upstream API): it reads
//! once and broadcasts once, and the payload is shared by all clients, however many.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use ws::{ClientId, Endpoint, Origins, websocket};

struct Push {
    interval: Duration,
    /// Set to `true` by `on_stop`; the ticker watches it.
    stop: watch::Sender<bool>,
    /// The ticker, awaited by `on_stop` so it is gone before the clients are closed.
    ticker: Mutex<Option<JoinHandle<()>>>,
}

impl Push {
    fn new(interval: Duration) -> Self {
        Push {
            interval,
            stop: watch::channel(false).0,
            ticker: Mutex::new(None),
        }
    }
}

/// Broadcasts a tick every `interval` until `stop` turns `true`.
async fn tick(endpoint: Endpoint, interval: Duration, mut stop: watch::Receiver<bool>) {
    let mut ticks = tokio::time::interval(interval);
    // A slow round (a slow feed) delays the next tick instead of bursting to catch up.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n: u64 = 0;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            // `wait_for` also returns when the sender is gone: stop then too.
            _ = stop.wait_for(|stop| *stop) => break,
        }
        if endpoint.is_empty() {
            continue;
        }
        n += 1;
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let clients = endpoint.len();
        let delivery = endpoint.broadcast(format!(
            r#"{{"type":"tick","n":{n},"time_ms":{millis},"clients":{clients}}}"#
        ));
        if !delivery.failed.is_empty() {
            tracing::debug!(
                failed = delivery.failed.len(),
                "tick not queued for some clients"
            );
        }
    }
    tracing::info!(ticks = n, "ticker stopped");
}

#[websocket]
impl Push {
    fn on_start(&self, endpoint: Endpoint) {
        let task = tokio::spawn(tick(endpoint, self.interval, self.stop.subscribe()));
        *self
            .ticker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(task);
    }

    fn on_open(&self, id: ClientId) {
        tracing::info!("client {id} subscribed");
    }

    async fn on_stop(&self) {
        self.stop.send_replace(true);
        let task = self
            .ticker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            if let Err(err) = task.await {
                tracing::error!("ticker failed: {err}");
            }
        }
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        // Colours only on a terminal: redirected to a file, the log stays plain text.
        .with_ansi(std::io::stdout().is_terminal())
        .init();
    let mut addr = "127.0.0.1:8082".to_owned();
    let mut interval = Duration::from_secs(1);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--addr", Some(value)) => addr = value,
            ("--interval-ms", Some(value)) if value.parse::<u64>().is_ok_and(|ms| ms > 0) => {
                interval = Duration::from_millis(value.parse().unwrap_or(1000));
            }
            _ => {
                eprintln!("usage: push [--addr HOST:PORT] [--interval-ms MILLISECONDS]");
                return std::process::ExitCode::from(2);
            }
        }
    }
    // A public feed: any page may subscribe.
    let push =
        ws::Socket::with_config(Push::new(interval), ws::Config::new().origins(Origins::Any));
    let server = match ws::serve(push.filter())
        .socket(&push)
        .bind(addr.as_str())
        .await
    {
        Ok(server) => server,
        Err(err) => {
            eprintln!("push: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!("push listening on ws://{}/", server.local_addr());
    // SIGINT/SIGTERM: on_stop stops the ticker, clients get 1001, `run` returns.
    match server.run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("push: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
