//! Broadcast fan-out: one publisher sends at a fixed rate, every other connection receives every
//! message. Each payload carries its sequence number and its send time (this process's clock,
//! which is also the receivers' clock), and every byte is checked by every subscriber.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::client::client_frame;
use crate::procs::Server;

/// How a fan-out's messages reach the subscribers, and so how they read them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Relay {
    /// `echo --broadcast`: to every other client, as published.
    Broadcast,
    /// `echo --room`: to the other members of the room `all`, as published.
    Room,
    /// `echo --history N`: to the other members of the room `all`, which keeps history, each
    /// message behind its position (see [`positioned`]).
    History,
}

/// A message from `echo --history N` taken apart: its offset in the room, the history's
/// epoch, and the message as published. The server writes the offset (8 bytes, big-endian),
/// the epoch's length (1 byte) and the epoch before the message.
pub(crate) fn positioned(msg: &[u8]) -> io::Result<(u64, &[u8], &[u8])> {
    let short = || invalid(format!("a message of {} bytes has no position", msg.len()));
    let (offset, rest) = msg.split_first_chunk::<8>().ok_or_else(short)?;
    let (&len, rest) = rest.split_first().ok_or_else(short)?;
    let len = usize::from(len);
    if rest.len() < len || len == 0 {
        return Err(short());
    }
    let (epoch, body) = rest.split_at(len);
    Ok((u64::from_be_bytes(*offset), epoch, body))
}

/// One fan-out workload.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fanout {
    pub(crate) subscribers: usize,
    pub(crate) size: usize,
    /// Messages the publisher sends per second.
    pub(crate) rate: u32,
    /// Messages per publish: 1 sends each on its own schedule; more sends that many back to
    /// back (one write) every `burst / rate` seconds, as a busy room or a feed does.
    pub(crate) burst: u32,
}

impl Fanout {
    /// The label of its table rows.
    pub(crate) fn name(&self) -> String {
        let size = if self.size >= 1024 {
            format!("{} KiB", self.size / 1024)
        } else {
            format!("{} B", self.size)
        };
        let bursts = if self.burst > 1 {
            format!(" in bursts of {}", self.burst)
        } else {
            String::new()
        };
        format!(
            "{} subscribers × {size} binary, {} msg/s{bursts}",
            thousands(self.subscribers),
            self.rate
        )
    }
}

/// `n` with a comma between thousands: `10,000`.
pub(crate) fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The fan-out workloads, in table order. The publish rate keeps deliveries at 50,000 per second
/// in every workload (50 msg/s to 1,000 subscribers, 10 msg/s to 5,000): the server core stays
/// about half busy (a saturated server would measure its own queueing), the single client core
/// keeps up, and one message's fan-out ends well before the next is sent. The last two send
/// the same 50 msg/s to 1,000 subscribers in bursts of 10 (five per second): the same
/// deliveries per second, arriving as a busy chat room's or a market feed's do.
pub(crate) const FANOUTS: [Fanout; 6] = [
    Fanout {
        subscribers: 1000,
        size: 64,
        rate: 50,
        burst: 1,
    },
    Fanout {
        subscribers: 1000,
        size: 1024,
        rate: 50,
        burst: 1,
    },
    Fanout {
        subscribers: 5000,
        size: 64,
        rate: 10,
        burst: 1,
    },
    Fanout {
        subscribers: 5000,
        size: 1024,
        rate: 10,
        burst: 1,
    },
    Fanout {
        subscribers: 1000,
        size: 64,
        rate: 50,
        burst: 10,
    },
    Fanout {
        subscribers: 1000,
        size: 1024,
        rate: 50,
        burst: 10,
    },
];

/// The fewest messages a timed run publishes (after the warm-up), so that p99 means something:
/// at 10 msg/s a run lasts 10 s.
pub(crate) const MIN_MESSAGES: u64 = 100;

/// Messages at the start of a run that are checked but left out of the latency figures.
pub(crate) const WARMUP_MESSAGES: u64 = 5;

/// What one fan-out run measured.
#[derive(Clone, Debug, Default)]
pub(crate) struct FanoutRun {
    /// Messages published (all of them delivered to every subscriber and checked).
    pub(crate) messages: u64,
    /// Publish→last-receiver latency of each message after the warm-up, µs, sorted.
    pub(crate) latencies_us: Vec<f64>,
    /// Server CPU ticks from the first publish to the last delivery.
    pub(crate) server_ticks: u64,
    /// Client (this process) CPU ticks over the same window.
    pub(crate) client_ticks: u64,
    /// Length of that window.
    pub(crate) elapsed: Duration,
}

/// Per-message records shared by the publisher and the subscribers.
pub(crate) struct Shared {
    pub(crate) epoch: Instant,
    /// Send time of each message, ns since `epoch`.
    pub(crate) sent: Vec<AtomicU64>,
    /// Latest receive time of each message over all subscribers, ns since `epoch`.
    pub(crate) last: Vec<AtomicU64>,
    /// Subscribers that have received each message.
    pub(crate) got: Vec<AtomicU32>,
}

impl Shared {
    /// Records for `count` messages, times counted from `epoch`.
    pub(crate) fn new(epoch: Instant, count: usize) -> Shared {
        Shared {
            epoch,
            sent: (0..count).map(|_| AtomicU64::new(0)).collect(),
            last: (0..count).map(|_| AtomicU64::new(0)).collect(),
            got: (0..count).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    pub(crate) fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// The payload of message `seq`: sequence number and send time (little-endian `u64`s), then a
/// pattern that depends on `seq`.
pub(crate) fn payload(seq: u64, sent: u64, size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&sent.to_le_bytes());
    out.extend((16..size).map(|i| pattern(seq, i)));
    out.truncate(size);
    out
}

fn pattern(seq: u64, i: usize) -> u8 {
    let i = u64::try_from(i).unwrap_or(0);
    u8::try_from((seq % 251 + i * 7 % 251) % 251).unwrap_or(0)
}

pub(crate) fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Waits, at most `limit`, until every subscriber's task has ended; each must have received
/// all `messages`. `Err` (the elapsed limit) when one has not ended in time.
pub(crate) async fn all_delivered(
    tasks: &mut JoinSet<io::Result<u64>>,
    messages: u64,
    limit: Duration,
) -> Result<io::Result<()>, tokio::time::error::Elapsed> {
    tokio::time::timeout(limit, async {
        while let Some(done) = tasks.join_next().await {
            let got = done.map_err(io::Error::other)??;
            if got != messages {
                return Err(invalid(format!("a subscriber got {got} of {messages}")));
            }
        }
        Ok(())
    })
    .await
}

/// Checks one received message against what was published, byte for byte, and records its
/// receive time.
pub(crate) fn check(shared: &Shared, expected: u64, size: usize, msg: &[u8]) -> io::Result<()> {
    if msg.len() != size {
        return Err(invalid(format!(
            "message of {} bytes, sent {size}",
            msg.len()
        )));
    }
    let word = |at: usize| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&msg[at..at + 8]);
        u64::from_le_bytes(bytes)
    };
    let seq = word(0);
    if seq != expected {
        return Err(invalid(format!("message {seq} where {expected} was due")));
    }
    let index = usize::try_from(seq).map_err(|_| invalid("sequence overflows"))?;
    let slot = shared
        .sent
        .get(index)
        .ok_or_else(|| invalid("sequence out of range"))?;
    if word(8) != slot.load(Ordering::Relaxed) {
        return Err(invalid(format!("message {seq}: send time differs")));
    }
    if msg[16..]
        .iter()
        .enumerate()
        .any(|(i, &b)| b != pattern(seq, i + 16))
    {
        return Err(invalid(format!("message {seq}: payload differs")));
    }
    shared.last[index].fetch_max(shared.now(), Ordering::Relaxed);
    shared.got[index].fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// One fan-out run: opens `subscribers + 1` connections, publishes `messages` at `rate` per
/// second from the last one (`burst` at a time, written at once), and waits (bounded) until
/// every subscriber has checked every message.
pub(crate) async fn run(
    server: &Server,
    subscribers: usize,
    size: usize,
    (rate, burst): (u32, u32),
    messages: u64,
) -> io::Result<FanoutRun> {
    assert!(size >= 16, "payloads carry 16 bytes of sequence and time");
    let mut conns = crate::open_many(server, subscribers + 1).await?;
    let mut publisher = conns
        .pop()
        .ok_or_else(|| io::Error::other("no connection"))?;
    let count = usize::try_from(messages).map_err(io::Error::other)?;
    let shared = Arc::new(Shared::new(Instant::now(), count));
    let mut tasks: JoinSet<io::Result<u64>> = JoinSet::new();
    spawn_readers(
        &mut tasks,
        conns,
        &shared,
        (messages, size),
        Relay::Broadcast,
    );
    // Let every server register every connection before the first publish.
    tokio::time::sleep(Duration::from_millis(500)).await;
    check_running(&mut tasks)?;

    let (t0, s0, c0) = (
        Instant::now(),
        server.cpu_ticks()?,
        crate::procs::cpu_ticks("self")?,
    );
    let burst = burst.max(1);
    let interval = Duration::from_secs_f64(f64::from(burst) / f64::from(rate.max(1)));
    let step = usize::try_from(burst).map_err(io::Error::other)?;
    let burst = u64::from(burst);
    let mut frames = Vec::new();
    for (n, first) in (0..messages).step_by(step).enumerate() {
        let due = t0 + interval.mul_f64(n as f64);
        tokio::time::sleep_until(due.into()).await;
        let now = shared.now();
        frames.clear();
        for seq in first..messages.min(first + burst) {
            let index = usize::try_from(seq).map_err(io::Error::other)?;
            shared.sent[index].store(now, Ordering::Relaxed);
            frames.extend_from_slice(&client_frame(0x2, &payload(seq, now, size)));
        }
        publisher.write_all(&frames).await?;
    }
    // Every subscriber must get every message; bounded wait after the last publish.
    let wait = all_delivered(&mut tasks, messages, Duration::from_secs(30)).await;
    let (t1, s1, c1) = (
        Instant::now(),
        server.cpu_ticks()?,
        crate::procs::cpu_ticks("self")?,
    );
    let Ok(outcome) = wait else {
        let missing = shared
            .got
            .iter()
            .filter(|g| g.load(Ordering::Relaxed) as usize != subscribers)
            .count();
        return Err(io::Error::other(format!(
            "{missing} message(s) not delivered to every subscriber within 30 s"
        )));
    };
    outcome?;
    drop(publisher);
    let skip = usize::try_from(WARMUP_MESSAGES.min(messages / 2)).unwrap_or(0);
    let mut latencies_us: Vec<f64> = (skip..count)
        .map(|i| {
            let sent = shared.sent[i].load(Ordering::Relaxed);
            let last = shared.last[i].load(Ordering::Relaxed);
            last.saturating_sub(sent) as f64 / 1e3
        })
        .collect();
    latencies_us.sort_by(f64::total_cmp);
    Ok(FanoutRun {
        messages,
        latencies_us,
        server_ticks: s1 - s0,
        client_ticks: c1 - c0,
        elapsed: t1 - t0,
    })
}

/// The `q` quantile (0–1) of sorted values, nearest rank.
pub(crate) fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let len = sorted.len();
    let rank = usize::try_from(crate::ceil_count(q * len as f64)).unwrap_or(len);
    sorted[rank.clamp(1, len) - 1]
}

/// Spawns one reader per subscriber, each checking every one of `messages` messages of `size`
/// bytes it gets, in order, against `shared`; a task ends with the count it read. Through a
/// room that keeps history, message `seq` must also come with offset `seq + 1` (the room is
/// new: its first message has offset 1), and every message with the same epoch.
pub(crate) fn spawn_readers(
    tasks: &mut JoinSet<io::Result<u64>>,
    conns: Vec<crate::client::Conn>,
    shared: &Arc<Shared>,
    (messages, size): (u64, usize),
    relay: Relay,
) {
    for mut conn in conns {
        let shared = shared.clone();
        tasks.spawn(async move {
            let mut expected = 0;
            let mut epoch: Option<Vec<u8>> = None;
            conn.read_messages(messages, |msg| {
                let body = if relay == Relay::History {
                    let (offset, this, body) = positioned(msg)?;
                    if offset != expected + 1 {
                        return Err(invalid(format!(
                            "offset {offset} where {} was due",
                            expected + 1
                        )));
                    }
                    match &epoch {
                        Some(known) if known.as_slice() != this => {
                            return Err(invalid(format!("message {expected}: the epoch changed")));
                        }
                        Some(_) => {}
                        None => epoch = Some(this.to_vec()),
                    }
                    body
                } else {
                    msg
                };
                check(&shared, expected, size, body)?;
                expected += 1;
                Ok(())
            })
            .await
        });
    }
}

/// Fails if any task has ended early with an error.
pub(crate) fn check_running(tasks: &mut JoinSet<io::Result<u64>>) -> io::Result<()> {
    if let Some(done) = tasks.try_join_next() {
        let got = done.map_err(io::Error::other)??;
        return Err(invalid(format!(
            "a subscriber stopped after {got} messages"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Shared, check, payload, positioned, quantile, thousands};
    use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
    use std::time::Instant;

    #[test]
    fn payloads_are_checked_byte_for_byte() {
        let shared = Shared {
            epoch: Instant::now(),
            sent: (0..3).map(|_| AtomicU64::new(0)).collect(),
            last: (0..3).map(|_| AtomicU64::new(0)).collect(),
            got: (0..3).map(|_| AtomicU32::new(0)).collect(),
        };
        shared.sent[1].store(1234, Ordering::Relaxed);
        let good = payload(1, 1234, 64);
        assert_eq!(good.len(), 64);
        assert!(check(&shared, 1, 64, &good).is_ok());
        assert_eq!(shared.got[1].load(Ordering::Relaxed), 1);
        assert!(check(&shared, 2, 64, &good).is_err());
        assert!(check(&shared, 1, 65, &good).is_err());
        for at in [0, 9, 16, 63] {
            let mut bad = good.clone();
            bad[at] ^= 1;
            assert!(check(&shared, 1, 64, &bad).is_err(), "byte {at}");
        }
    }

    #[test]
    fn positions_are_taken_apart() {
        let mut msg = 7u64.to_be_bytes().to_vec();
        msg.push(3);
        msg.extend_from_slice(b"abcbody");
        let (offset, epoch, body) = positioned(&msg).unwrap();
        assert_eq!((offset, epoch, body), (7, &b"abc"[..], &b"body"[..]));
        assert!(positioned(&msg[..8]).is_err());
        assert!(positioned(&msg[..10]).is_err(), "epoch cut short");
        msg[8] = 0;
        assert!(positioned(&msg).is_err(), "empty epoch");
    }

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1024), "1,024");
        assert_eq!(thousands(10_000), "10,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn quantiles_use_the_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert!((quantile(&v, 0.5) - 50.0).abs() < 1e-9);
        assert!((quantile(&v, 0.99) - 99.0).abs() < 1e-9);
        assert!((quantile(&v[..1], 0.99) - 1.0).abs() < 1e-9);
    }
}
