//! A socket's figures after known actions: exact values from `Endpoint::stats`, and with the
//! feature `metrics` the same from a recorder installed in the test.
//! Tests run side by side under one global recorder; each socket has its own name, so each
//! test reads its own series (the `socket` label).

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::mpsc;
use ws::test::TestServer;
use ws::{ClientId, Close, Config, Endpoint, Recipients, Reject, Request, SendError, Socket};

/// How long any single expected event may take.
const WAIT: Duration = Duration::from_secs(10);

/// Relays each text message to every other client; refuses a wrong password; reports each
/// close as `"{id} {code}"`.
struct Relay {
    closes: mpsc::UnboundedSender<String>,
}

#[ws::websocket]
impl Relay {
    fn on_handshake(&self, req: &Request) -> Result<(), Reject> {
        if req.query("password") == Some("secret") {
            Ok(())
        } else {
            Err(Reject::unauthorized("Wrong password."))
        }
    }

    fn on_data(&self, endpoint: &Endpoint, id: ClientId, text: String) {
        endpoint.deliver(Recipients::except([id]), text);
    }

    fn on_close(&self, id: ClientId, close: Close) {
        let _ = self.closes.send(format!("{id} {}", close.code));
    }
}

/// A relay socket named `name`, served, and the receiving end of its closes.
async fn relay(
    name: &str,
    config: Config,
) -> (TestServer, Endpoint, mpsc::UnboundedReceiver<String>) {
    recorder::install();
    let (closes, log) = mpsc::unbounded_channel();
    let socket = Socket::with_config(Relay { closes }, config.name(name));
    let endpoint = socket.endpoint();
    (ws::test::serve(&socket).await, endpoint, log)
}

/// Waits for the close of `id`; its code.
async fn closed(log: &mut mpsc::UnboundedReceiver<String>, id: ClientId) -> u16 {
    let prefix = format!("{id} ");
    loop {
        let event = tokio::time::timeout(WAIT, log.recv())
            .await
            .expect("a close in time")
            .expect("the socket is alive");
        if let Some(code) = event.strip_prefix(&prefix) {
            return code.parse().expect("a code");
        }
    }
}

/// Connect 3, refuse 1 by password and 1 by origin, 10 messages relayed to 2 others, a slow
/// consumer cut, a close with 4000.
#[tokio::test]
async fn known_actions_give_exact_figures() {
    let config = Config::new()
        .send_queue_bytes(64 << 10)
        .close_timeout(Duration::from_millis(200));
    let (server, endpoint, mut log) = relay("known-actions", config).await;
    let mut a = server.connect("/?password=secret").await.unwrap();
    let mut b = server.connect("/?password=secret").await.unwrap();
    let mut c = server.connect("/?password=secret").await.unwrap();
    let ids = endpoint.clients();
    assert_eq!(ids.len(), 3);
    let stats = endpoint.stats();
    assert_eq!((stats.connections, stats.opened), (3, 3));
    #[cfg(feature = "metrics")]
    assert_eq!(
        recorder::gauge("known-actions", "ws_connections"),
        Some(3.0)
    );

    let refused = server.connect("/?password=guess").expect_refusal().await;
    assert_eq!(refused.status(), 401);
    let refused = server
        .connect("/?password=secret")
        .origin("https://elsewhere.example")
        .expect_refusal()
        .await;
    assert_eq!(refused.status(), 403);

    for n in 0..10 {
        a.send_text(format!("message {n}")).await.unwrap();
    }
    for n in 0..10 {
        assert_eq!(b.recv_text().await.unwrap(), format!("message {n}"));
        assert_eq!(c.recv_text().await.unwrap(), format!("message {n}"));
    }

    // A client that never reads: two messages of 40 KiB do not fit its 64 KiB queue. Sent
    // without yielding (this test's runtime has one thread), nothing reaches its writer
    // before the close that cuts it, which goes ahead of what is queued.
    let (_reply, _sloth) = server
        .raw("/?password=secret")
        .upgrade()
        .await
        .expect("upgraded");
    let sloth = *endpoint
        .clients()
        .iter()
        .find(|id| !ids.contains(id))
        .expect("the sloth");
    let big = bytes::Bytes::from(vec![0u8; 40 << 10]);
    endpoint.send(sloth, big.clone()).unwrap();
    assert_eq!(endpoint.send(sloth, big), Err(SendError::QueueFull(sloth)));
    assert_eq!(closed(&mut log, sloth).await, 1008);

    b.close(4000, "done").await.unwrap();
    assert_eq!(closed(&mut log, ids[1]).await, 4000);
    a.close(1000, "").await.unwrap();
    c.close(1000, "").await.unwrap();
    for id in [ids[0], ids[2]] {
        assert_eq!(closed(&mut log, id).await, 1000);
    }

    let stats = endpoint.stats();
    assert_eq!(stats.socket, "known-actions");
    assert_eq!((stats.connections, stats.opened), (0, 4));
    let refused: BTreeMap<&str, u64> = [
        ("error", 0),
        ("limit", 0),
        ("origin", 1),
        ("protocol", 0),
        ("rejected", 1),
        ("shutdown", 0),
    ]
    .into();
    assert_eq!(stats.refused, refused);
    let closes: BTreeMap<&str, u64> = [("1000", 2), ("1008", 1), ("application", 1)].into();
    assert_eq!(stats.closed, closes);
    assert_eq!(stats.messages_received, 10);
    assert_eq!(stats.messages_sent, 20, "each relayed message to 2 others");
    assert_eq!(stats.slow_consumer_closes, 1);
    assert_eq!(stats.slow_consumer_drops, 0);
    assert_eq!(stats.heartbeat_timeouts, 0);
    // The bytes: a's 10 masked frames (2 + 4 + 9 each) and the three clients' masked close
    // frames (2 + 4, then the code and reason); 20 frames of 2 + 9 out, and the server's
    // close replies (2 + 2 + the reason echoed) and its 1008 to the sloth.
    let received = 10 * (2 + 4 + 9) + (2 + 4 + 2 + 4) + 2 * (2 + 4 + 2);
    assert_eq!(stats.received_bytes, received);
    let close_sent = |reason: &str| 2 + 2 + reason.len() as u64;
    let sent =
        20 * (2 + 9) + close_sent("done") + 2 * close_sent("") + close_sent("Send queue full");
    assert_eq!(stats.sent_bytes, sent);
    assert_eq!(stats.fanout.count, 10, "one fan-out per relayed message");

    #[cfg(feature = "metrics")]
    recorder_agrees("known-actions", &stats);
    server.shutdown().await;
}

/// The recorder holds the same figures as `stats`, those of `known_actions_give_exact_figures`.
#[cfg(feature = "metrics")]
fn recorder_agrees(name: &str, stats: &ws::SocketStats) {
    assert_eq!(recorder::gauge(name, "ws_connections"), Some(0.0));
    assert_eq!(
        recorder::counter(name, "ws_connections_opened_total", None),
        4
    );
    for (reason, count) in &stats.refused {
        let label = Some(("reason", *reason));
        assert_eq!(
            recorder::counter(name, "ws_handshakes_refused_total", label),
            *count,
            "{reason}"
        );
    }
    for (code, count) in &stats.closed {
        let label = Some(("code", *code));
        assert_eq!(
            recorder::counter(name, "ws_connections_closed_total", label),
            *count,
            "{code}"
        );
    }
    let counters = [
        ("ws_messages_received_total", 10),
        ("ws_messages_sent_total", 20),
        ("ws_received_bytes_total", stats.received_bytes),
        ("ws_sent_bytes_total", stats.sent_bytes),
        ("ws_slow_consumer_closes_total", 1),
        ("ws_slow_consumer_drops_total", 0),
    ];
    for (metric, value) in counters {
        assert_eq!(recorder::counter(name, metric, None), value, "{metric}");
    }
    assert_eq!(recorder::histogram(name, "ws_fanout_seconds"), 10);
}

/// The heartbeat: pings answered give round trips; pings left unanswered close the client
/// with 1008 and count a timeout. A flood waits for the rate limit and counts its pauses.
#[tokio::test]
async fn heartbeats_and_rate_limits_are_counted() {
    let config = Config::new()
        .heartbeat(Some(Duration::from_millis(50)))
        .heartbeat_misses(1)
        .close_timeout(Duration::from_millis(200))
        .rate_limit(Some(ws::RateLimit {
            bytes_per_second: 1 << 20,
            frames_per_second: 20,
        }));
    let (server, endpoint, mut log) = relay("heartbeats", config).await;
    let mut live = server.connect("/?password=secret").await.unwrap();
    let live_id = endpoint.clients()[0];
    // Reading answers the pings: the client stays, and round trips are measured.
    while endpoint.stats().ping_rtt.count < 2 {
        live.expect_no_message(Duration::from_millis(60))
            .await
            .unwrap();
    }
    let (_reply, _silent) = server
        .raw("/?password=secret")
        .upgrade()
        .await
        .expect("upgraded");
    let silent = *endpoint
        .clients()
        .iter()
        .find(|id| **id != live_id)
        .expect("the silent one");
    assert_eq!(closed(&mut log, silent).await, 1008);
    assert_eq!(endpoint.stats().heartbeat_timeouts, 1);

    // 30 frames at once, 20 a second allowed: reading pauses at least once.
    for n in 0..30 {
        live.send_text(format!("{n}")).await.unwrap();
    }
    while endpoint.stats().messages_received < 30 {
        live.expect_no_message(Duration::from_millis(20))
            .await
            .unwrap();
    }
    live.close(1000, "").await.unwrap();
    assert_eq!(closed(&mut log, live_id).await, 1000);
    let stats = endpoint.stats();
    assert!(stats.rate_limit_pauses >= 1, "{stats:?}");
    assert!(stats.ping_rtt.count >= 2, "{stats:?}");
    let rtt = stats.ping_rtt.quantile(0.5).expect("measured");
    assert!(rtt <= Duration::from_millis(100), "{rtt:?} on loopback");

    #[cfg(feature = "metrics")]
    {
        let name = "heartbeats";
        let counter = |metric| recorder::counter(name, metric, None);
        assert_eq!(counter("ws_heartbeat_timeouts_total"), 1);
        assert_eq!(
            counter("ws_rate_limit_pauses_total"),
            stats.rate_limit_pauses
        );
        assert_eq!(
            recorder::histogram(name, "ws_ping_rtt_seconds"),
            stats.ping_rtt.count
        );
    }
    server.shutdown().await;
}

/// The recorder every test of this binary reads (feature `metrics`): counters, gauges and
/// histograms kept by key, never drained, so that tests running side by side do not disturb
/// each other's readings.
#[cfg(feature = "metrics")]
mod recorder {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex, OnceLock};

    use metrics::{
        Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString,
        Unit,
    };

    /// A histogram's count of values.
    #[derive(Default)]
    struct Values(AtomicU64);

    impl HistogramFn for Values {
        fn record(&self, _value: f64) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[derive(Default)]
    struct Kept {
        counters: HashMap<Key, Arc<AtomicU64>>,
        gauges: HashMap<Key, Arc<AtomicU64>>,
        histograms: HashMap<Key, Arc<Values>>,
    }

    #[derive(Default)]
    struct Keeper(Mutex<Kept>);

    impl Keeper {
        fn kept(&self) -> std::sync::MutexGuard<'_, Kept> {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        }
    }

    impl Recorder for &'static Keeper {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            Counter::from_arc(self.kept().counters.entry(key.clone()).or_default().clone())
        }

        fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::from_arc(self.kept().gauges.entry(key.clone()).or_default().clone())
        }

        fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::from_arc(
                self.kept()
                    .histograms
                    .entry(key.clone())
                    .or_default()
                    .clone(),
            )
        }
    }

    static KEEPER: OnceLock<&'static Keeper> = OnceLock::new();

    /// Installs the recorder, once per process: before any socket starts.
    pub(crate) fn install() {
        KEEPER.get_or_init(|| {
            let keeper: &'static Keeper = Box::leak(Box::default());
            metrics::set_global_recorder(keeper).expect("the only recorder");
            keeper
        });
    }

    /// Whether `key` is `name` for `socket`, with `label` among its labels if given.
    fn matches(key: &Key, socket: &str, name: &str, label: Option<(&str, &str)>) -> bool {
        let has = |k: &str, v: &str| key.labels().any(|l| l.key() == k && l.value() == v);
        key.name() == name && has("socket", socket) && label.is_none_or(|(k, v)| has(k, v))
    }

    fn find<T: Clone>(
        map: &HashMap<Key, T>,
        socket: &str,
        name: &str,
        label: Option<(&str, &str)>,
    ) -> Option<T> {
        map.iter()
            .find(|(key, _)| matches(key, socket, name, label))
            .map(|(_, value)| value.clone())
    }

    /// A counter's value; 0 when it was never incremented (a handle may not exist yet).
    pub(crate) fn counter(socket: &str, name: &str, label: Option<(&str, &str)>) -> u64 {
        let kept = KEEPER.get().expect("installed").kept();
        find(&kept.counters, socket, name, label).map_or(0, |n| n.load(Ordering::Relaxed))
    }

    pub(crate) fn gauge(socket: &str, name: &str) -> Option<f64> {
        let kept = KEEPER.get().expect("installed").kept();
        find(&kept.gauges, socket, name, None).map(|v| f64::from_bits(v.load(Ordering::Relaxed)))
    }

    /// How many values the histogram was given.
    pub(crate) fn histogram(socket: &str, name: &str) -> u64 {
        let kept = KEEPER.get().expect("installed").kept();
        find(&kept.histograms, socket, name, None).map_or(0, |v| v.0.load(Ordering::Relaxed))
    }
}

/// Without the feature `metrics`: no recorder; `Endpoint::stats` alone is checked.
#[cfg(not(feature = "metrics"))]
mod recorder {
    pub(crate) fn install() {}
}

/// The operators' page and its JSON, mounted under a path: the page at its root, the samples
/// at `stats.json` with the socket's figures, nothing else.
#[tokio::test]
async fn the_dashboard_serves_its_page_and_the_samples() {
    use warp::Filter;

    recorder::install();
    let (closes, _log) = mpsc::unbounded_channel();
    let socket = Socket::with_config(Relay { closes }, Config::new().name("dashboard"));
    let dashboard = ws::Dashboard::new().socket(&socket);
    let routes = warp::path("ws")
        .and(socket.filter())
        .or(warp::path("ops").and(dashboard.filter()));
    let server = ws::test::serve_with(ws::serve(routes).socket(&socket)).await;
    let _a = server.connect("/ws?password=secret").await.unwrap();
    let _b = server.connect("/ws?password=secret").await.unwrap();

    let page = server.get("/ops/").await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(page.body().contains("<title>ws dashboard</title>"));
    assert_eq!(
        server.get("/ops").await.unwrap().status(),
        200,
        "no slash too"
    );

    let reply = server.get("/ops/stats.json?since=0").await.unwrap();
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let json: serde_json::Value = serde_json::from_str(reply.body()).unwrap();
    let socket = &json["sockets"][0];
    assert_eq!(socket["name"], "dashboard");
    assert_eq!(socket["clustered"], false);
    let sample = &socket["samples"][0];
    assert_eq!(sample["connections"], 2);
    assert_eq!(sample["opened"], 2);
    assert_eq!(sample["refused"]["origin"], 0);
    // Only the samples after `since`.
    let at = sample["t"].as_u64().unwrap();
    let later = server
        .get(&format!("/ops/stats.json?since={at}"))
        .await
        .unwrap();
    let later: serde_json::Value = serde_json::from_str(later.body()).unwrap();
    assert!(
        later["sockets"][0]["samples"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["t"].as_u64().unwrap() > at)
    );
    assert_eq!(server.get("/ops/other").await.unwrap().status(), 404);
    server.shutdown().await;
}
