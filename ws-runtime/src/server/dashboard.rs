//! A live page for operators ([`Dashboard`]): the figures of [`Endpoint::stats`],
//! [`Endpoint::cluster_stats`] and [`Endpoint::busiest_rooms`], sampled each second and kept
//! for ten minutes, served as a page of charts and as JSON.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::{Duration, SystemTime};

use warp::reply::Response;
use warp::{Filter, Reply as _};

use super::Socket;
use crate::endpoint::{ClusterStats, Endpoint};
use crate::handler::Handler;
use crate::metrics::{RefusalReason, SocketStats, Timing};

/// The page: charts drawn on canvases by its own script, no external resource.
const PAGE: &str = include_str!("dashboard.html");

/// How often the figures are sampled.
const EVERY: Duration = Duration::from_secs(1);

/// Samples kept per socket: ten minutes.
const KEEP: usize = 600;

/// Rooms listed, busiest first.
const ROOMS: usize = 10;

/// A live page for operators: connections, message and byte rates, refusals and closes by
/// reason over the last ten minutes as charts that update each second, the ping round trip,
/// the backplane's state and lag, and the busiest rooms, for one or more sockets. It is fed
/// by [`Endpoint::stats`] and [`Endpoint::cluster_stats`] (no `metrics` recorder needed),
/// sampled each second from the first request on.
///
/// Its [`filter`](Dashboard::filter) serves the page at its root and the samples as JSON at
/// `stats.json`; mount it where only operators reach it, behind your own authentication:
///
/// ```
/// use warp::Filter;
/// # struct Chat;
/// # #[ws::websocket]
/// # impl Chat {}
///
/// let chat = ws::Socket::new(Chat);
/// let dashboard = ws::Dashboard::new().socket(&chat);
/// let routes = warp::path("ws")
///     .and(chat.filter())
///     .or(warp::path("ops")
///         .and(warp::header::exact("authorization", "Bearer ops-secret"))
///         .and(dashboard.filter()));
/// # let _ = routes;
/// ```
#[derive(Clone, Default)]
pub struct Dashboard {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    sockets: Mutex<Vec<Watched>>,
    sampler: OnceLock<()>,
}

/// One socket's endpoint and its samples.
struct Watched {
    endpoint: Endpoint,
    /// The socket's name ([`Config::name`](crate::Config::name)).
    name: String,
    samples: VecDeque<Sample>,
    /// The timings at the last sample, to give each sample the interval's own.
    last_rtt: Timing,
    last_lag: Timing,
}

/// One second's figures of one socket: counters as they were then (the page takes their
/// differences), timings of that second alone.
struct Sample {
    at_ms: u64,
    stats: SocketStats,
    /// The interval's ping round trips, median and 99th percentile (bucket bounds), in µs.
    rtt: (Option<u64>, Option<u64>),
    cluster: Option<(ClusterStats, Option<u64>)>,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard").finish_non_exhaustive()
    }
}

impl Dashboard {
    /// A dashboard of no socket yet.
    pub fn new() -> Self {
        Dashboard::default()
    }

    /// Shows this socket too.
    #[must_use]
    pub fn socket<H: Handler>(self, socket: &Socket<H>) -> Self {
        self.endpoint(socket.endpoint())
    }

    /// Shows the socket of this endpoint too.
    #[must_use]
    pub fn endpoint(self, endpoint: Endpoint) -> Self {
        let name = endpoint.stats().socket;
        lock(&self.shared.sockets).push(Watched {
            endpoint,
            name,
            samples: VecDeque::new(),
            last_rtt: Timing::default(),
            last_lag: Timing::default(),
        });
        self
    }

    /// The page at the filter's root (`GET`, with or without a trailing slash), and the
    /// samples at `stats.json` (`?since=MS`: only those taken after that time, in ms since
    /// the Unix epoch). Anything else is not matched (a rejection), so the filter combines
    /// with `or`.
    pub fn filter(
        &self,
    ) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone + Send + Sync + 'static
    {
        let page = warp::path::end().map(|| {
            let mut reply = warp::reply::html(PAGE).into_response();
            reply.headers_mut().insert(
                http::header::CACHE_CONTROL,
                http::HeaderValue::from_static("no-store"),
            );
            reply
        });
        let shared = self.shared.clone();
        let json = warp::path("stats.json")
            .and(warp::path::end())
            .and(warp::query::raw().or(warp::any().map(String::new)).unify())
            .map(move |query: String| {
                Shared::start(&shared);
                let since = form_urlencoded::parse(query.as_bytes())
                    .find(|(key, _)| key == "since")
                    .and_then(|(_, value)| value.parse().ok())
                    .unwrap_or(0);
                let mut reply = warp::reply::with_header(
                    shared.json(since),
                    http::header::CONTENT_TYPE,
                    "application/json",
                )
                .into_response();
                reply.headers_mut().insert(
                    http::header::CACHE_CONTROL,
                    http::HeaderValue::from_static("no-store"),
                );
                reply
            });
        warp::get().and(page.or(json).unify())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

fn micros(duration: Option<Duration>) -> Option<u64> {
    duration.map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

impl Shared {
    /// Starts sampling, once: a task that samples each second while the dashboard exists.
    fn start(shared: &Arc<Shared>) {
        shared.sampler.get_or_init(|| {
            shared.sample();
            let weak: Weak<Shared> = Arc::downgrade(shared);
            tokio::spawn(async move {
                let mut every = tokio::time::interval(EVERY);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                every.tick().await;
                loop {
                    every.tick().await;
                    let Some(shared) = weak.upgrade() else { return };
                    shared.sample();
                }
            });
        });
    }

    /// Takes one sample of every socket.
    fn sample(&self) {
        let at_ms = now_ms();
        for watched in lock(&self.sockets).iter_mut() {
            let stats = watched.endpoint.stats();
            let rtt = stats.ping_rtt.since(&watched.last_rtt);
            watched.last_rtt = stats.ping_rtt.clone();
            let cluster = watched.endpoint.is_clustered().then(|| {
                let cluster = watched.endpoint.cluster_stats();
                let lag = cluster.lag.since(&watched.last_lag);
                watched.last_lag = cluster.lag.clone();
                let lag = micros(lag.quantile(0.5));
                (cluster, lag)
            });
            if watched.samples.len() == KEEP {
                watched.samples.pop_front();
            }
            watched.samples.push_back(Sample {
                at_ms,
                stats,
                rtt: (micros(rtt.quantile(0.5)), micros(rtt.quantile(0.99))),
                cluster,
            });
        }
    }

    /// Every socket's samples taken after `since` (ms since the Unix epoch), and its busiest
    /// rooms now.
    fn json(&self, since: u64) -> String {
        let sockets = lock(&self.sockets);
        let mut out = String::with_capacity(4096);
        let _ = write!(
            out,
            "{{\"now\":{},\"every\":{},\"keep\":{KEEP},\"sockets\":[",
            now_ms(),
            EVERY.as_millis()
        );
        for (i, watched) in sockets.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str("{\"name\":");
            string(&mut out, &watched.name);
            let _ = write!(
                out,
                ",\"node\":\"{}\",\"clustered\":{},\"rooms\":[",
                watched.endpoint.node(),
                watched.endpoint.is_clustered()
            );
            for (j, (room, members)) in watched.endpoint.busiest_rooms(ROOMS).iter().enumerate() {
                if j > 0 {
                    out.push(',');
                }
                out.push('[');
                string(&mut out, room.as_str());
                let _ = write!(out, ",{members}]");
            }
            out.push_str("],\"samples\":[");
            let mut first = true;
            for sample in watched.samples.iter().filter(|s| s.at_ms > since) {
                if !first {
                    out.push(',');
                }
                first = false;
                sample.write(&mut out);
            }
            out.push_str("]}");
        }
        out.push_str("]}");
        out
    }
}

impl Sample {
    fn write(&self, out: &mut String) {
        let s = &self.stats;
        let _ = write!(
            out,
            "{{\"t\":{},\"connections\":{},\"opened\":{},\"messages_received\":{},\
             \"messages_sent\":{},\"received_bytes\":{},\"sent_bytes\":{},\
             \"slow_consumer_closes\":{},\"slow_consumer_drops\":{},\"rate_limit_pauses\":{},\
             \"heartbeat_timeouts\":{},\"rtt_p50_us\":{},\"rtt_p99_us\":{},\"refused\":{{",
            self.at_ms,
            s.connections,
            s.opened,
            s.messages_received,
            s.messages_sent,
            s.received_bytes,
            s.sent_bytes,
            s.slow_consumer_closes,
            s.slow_consumer_drops,
            s.rate_limit_pauses,
            s.heartbeat_timeouts,
            number(self.rtt.0),
            number(self.rtt.1),
        );
        for (i, why) in RefusalReason::ALL.iter().enumerate() {
            let count = s.refused.get(why.as_str()).copied().unwrap_or(0);
            let comma = if i > 0 { "," } else { "" };
            let _ = write!(out, "{comma}\"{}\":{count}", why.as_str());
        }
        out.push_str("},\"closed\":{");
        for (i, (code, count)) in s.closed.iter().enumerate() {
            let comma = if i > 0 { "," } else { "" };
            let _ = write!(out, "{comma}\"{code}\":{count}");
        }
        out.push('}');
        if let Some((cluster, lag)) = &self.cluster {
            let _ = write!(
                out,
                ",\"cluster\":{{\"up\":{},\"published\":{},\"received\":{},\"unsent\":{},\
                 \"missed\":{},\"unreadable\":{},\"outages\":{},\"lag_p50_us\":{}}}",
                cluster.up,
                cluster.published,
                cluster.received,
                cluster.unsent,
                cluster.missed,
                cluster.unreadable,
                cluster.outages,
                number(*lag),
            );
        }
        out.push('}');
    }
}

/// A JSON number, or `null`.
fn number(value: Option<u64>) -> String {
    value.map_or_else(|| "null".to_owned(), |v| v.to_string())
}

/// A JSON string: quoted, with `"`, `\` and control characters escaped.
fn string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            // Closes no `<script>`, whatever a room's name is.
            '<' => out.push_str("\\u003c"),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped() {
        let mut out = String::new();
        string(&mut out, "a\"b\\c\u{1}</script>é");
        assert_eq!(out, r#""a\"b\\c\u0001\u003c/script>é""#);
    }
}
