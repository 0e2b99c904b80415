//! The clients of the soak: members, broadcasters, churn, slow consumers and misbehaving
//! clients, each answer checked and counted.

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use flate2::{Compress, Decompress};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::{sleep, sleep_until, timeout, timeout_at};

use super::chat::{Chat, Reading};
use crate::client::{self, Conn, Target, client_frame, frame_head, push_frame};
use crate::deflate::{self, Agreement, OFFER, Rng};

/// Members at a time, each staying [`MEMBER_LIFE_MS`] and sending one message every
/// [`MEMBER_SEND_MS`] on average.
pub(super) const MEMBERS: usize = 24;
const MEMBER_LIFE_MS: (u64, u64) = (3_000, 20_000);
const MEMBER_SEND_MS: u64 = 2_000;
/// Broadcasters (the whole phase long), each publishing every [`BROADCAST_EVERY`]: 40
/// messages a second, under the server's default read limit of 100 frames a second.
pub(super) const BROADCASTERS: usize = 2;
const BROADCAST_EVERY: Duration = Duration::from_millis(25);
/// Churn slots, each opening and leaving one connection every [`CHURN_EVERY`].
pub(super) const CHURN: usize = 4;
pub(super) const CHURN_EVERY: Duration = Duration::from_millis(100);
/// Slow consumers at a time: each reads [`SLOW_READ`] bytes every [`SLOW_EVERY`] through a
/// receive buffer of [`SLOW_BUFFER`] bytes, and is expected to be cut within [`SLOW_TRICKLE`].
pub(super) const SLOW: usize = 2;
const SLOW_READ: usize = 2 * 1024;
const SLOW_EVERY: Duration = Duration::from_millis(100);
const SLOW_BUFFER: u32 = 4 * 1024;
const SLOW_TRICKLE: Duration = Duration::from_secs(20);
/// Misbehaving slots, each running the cases of [`MISBEHAVIOURS`] in turn.
pub(super) const MISBEHAVING: usize = 3;
const MISBEHAVE_EVERY: Duration = Duration::from_millis(200);

/// Sizes of the messages: members send the first three, broadcasters all six (7.4 KB on
/// average, so that a slow consumer's queue fills within seconds).
const SIZES: [usize; 6] = [40, 180, 700, 2_500, 9_000, 32_000];
/// How long a client waits for a `101`, a close frame, or the end of a connection.
const HANDSHAKE_WAIT: Duration = Duration::from_secs(10);
const CLOSE_WAIT: Duration = Duration::from_secs(10);
const EOF_WAIT: Duration = Duration::from_secs(3);
/// The server's handshake timeout (`Server::handshake_timeout`'s default), and the margin a
/// half-done handshake is given past it.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HANDSHAKE_MARGIN: Duration = Duration::from_secs(3);
/// Distinct answers kept per case; more are counted as "other".
const ANSWER_LABELS: usize = 12;

/// What every client shares: where to go, the messages, and the tally of answers.
pub(super) struct Shared {
    target: Target,
    /// The same with a wrong password.
    refused: Target,
    catalog: Catalog,
    pub(super) tally: Mutex<Tally>,
    /// Upgrades (`101`) the clients saw, and handshakes the server refused with 403.
    pub(super) upgrades: AtomicU64,
    pub(super) forbidden: AtomicU64,
    /// Data messages received and checked byte for byte, of which compressed; bytes after
    /// inflation; messages sent.
    pub(super) received: AtomicU64,
    pub(super) compressed: AtomicU64,
    pub(super) received_bytes: AtomicU64,
    pub(super) sent: AtomicU64,
    /// Slow consumers that saw their cut (a 1008, or the EOF of a close stuck behind a write).
    pub(super) slow_cuts: AtomicU64,
    /// Client tasks that panicked (a fault of this harness).
    pub(super) harness_panics: AtomicU64,
}

impl Shared {
    pub(super) fn new(target: Target) -> Self {
        let refused = Target {
            path: "ws?password=guess".to_owned(),
            ..target.clone()
        };
        Shared {
            target,
            refused,
            catalog: Catalog::new(),
            tally: Mutex::new(Tally::default()),
            upgrades: AtomicU64::new(0),
            forbidden: AtomicU64::new(0),
            received: AtomicU64::new(0),
            compressed: AtomicU64::new(0),
            received_bytes: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            slow_cuts: AtomicU64::new(0),
            harness_panics: AtomicU64::new(0),
        }
    }

    fn record(&self, outcome: Outcome) {
        self.tally
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .record(outcome);
    }

    /// Connects and upgrades, offering permessage-deflate if `deflate`; counts the upgrade.
    async fn join(&self, deflate: bool, recv_buffer: Option<u32>) -> Result<Peer, String> {
        let offer = deflate.then_some(OFFER);
        let connect = async {
            let stream = client::open(self.target.addr, recv_buffer).await?;
            client::upgrade(stream, &self.target, offer).await
        };
        let conn = timeout(HANDSHAKE_WAIT, connect)
            .await
            .map_err(|_| "no 101 within 10 s".to_owned())?
            .map_err(|err| format!("handshake failed: {err}"))?;
        self.upgrades.fetch_add(1, Ordering::Relaxed);
        let agreed = deflate::agreement(conn.extensions()).map_err(|err| err.to_string())?;
        match (deflate, agreed.is_some()) {
            (true, false) => Err("permessage-deflate declined".into()),
            (false, true) => Err("permessage-deflate agreed though not offered".into()),
            _ => Ok(Peer::new(conn, agreed)),
        }
    }
}

/// One answer of the server to one client.
struct Outcome {
    role: &'static str,
    case: &'static str,
    /// What RFC 6455 and the configuration call for.
    expected: &'static str,
    /// What came, as a short label.
    got: String,
    ok: bool,
}

/// The answers of one case.
#[derive(Debug, Default)]
pub(super) struct Case {
    pub(super) expected: &'static str,
    pub(super) answers: BTreeMap<String, u64>,
    pub(super) total: u64,
    pub(super) unexpected: u64,
}

/// Every case's answers, by role and case.
#[derive(Debug, Default)]
pub(super) struct Tally {
    pub(super) cases: BTreeMap<(&'static str, &'static str), Case>,
}

impl Tally {
    fn record(&mut self, outcome: Outcome) {
        let case = self
            .cases
            .entry((outcome.role, outcome.case))
            .or_insert_with(|| Case {
                expected: outcome.expected,
                ..Case::default()
            });
        let label = if outcome.ok {
            outcome.got
        } else {
            format!("**{}**", outcome.got)
        };
        let label = if case.answers.len() < ANSWER_LABELS || case.answers.contains_key(&label) {
            label
        } else {
            "(others)".to_owned()
        };
        *case.answers.entry(label).or_default() += 1;
        case.total += 1;
        case.unexpected += u64::from(!outcome.ok);
    }

    pub(super) fn total(&self) -> u64 {
        self.cases.values().map(|case| case.total).sum()
    }

    pub(super) fn unexpected(&self) -> u64 {
        self.cases.values().map(|case| case.unexpected).sum()
    }
}

/// The messages members send and receive, built once: a header `soak t 000040\n` (`t` for
/// text, `b` for binary, then the size) and a filler that follows from them, so that a
/// receiver can check every byte of a message from anyone.
struct Catalog {
    texts: Vec<Vec<u8>>,
    binaries: Vec<Vec<u8>>,
}

impl Catalog {
    const HEAD: usize = 14;

    pub(super) fn new() -> Self {
        Catalog {
            texts: SIZES
                .iter()
                .map(|&size| Catalog::build(true, size))
                .collect(),
            binaries: SIZES
                .iter()
                .map(|&size| Catalog::build(false, size))
                .collect(),
        }
    }

    fn build(text: bool, size: usize) -> Vec<u8> {
        // Chat-like text that compresses, with two-, three- and four-byte characters.
        const SAMPLE: &str = "Grüße aus Zürich — 世界你好 🚀 the chat goes on and on; ";
        let mut out = format!("soak {} {size:06}\n", if text { 't' } else { 'b' }).into_bytes();
        if text {
            'fill: loop {
                for c in SAMPLE.chars() {
                    if out.len() + c.len_utf8() > size {
                        break 'fill;
                    }
                    let mut bytes = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut bytes).as_bytes());
                }
            }
            out.resize(size, b'.');
        } else {
            while out.len() < size {
                out.push(u8::try_from(out.len() % 251).unwrap_or(0));
            }
        }
        out
    }

    fn get(&self, text: bool, size: usize) -> &[u8] {
        let i = SIZES.iter().position(|&s| s == size).unwrap_or(0);
        if text {
            &self.texts[i]
        } else {
            &self.binaries[i]
        }
    }

    /// Whether `plain`, received with `opcode`, is one of the catalog's messages, whole.
    fn check(&self, opcode: u8, plain: &[u8]) -> Result<(), String> {
        let head = plain
            .get(..Catalog::HEAD)
            .ok_or_else(|| format!("a message of {} bytes, too short", plain.len()))?;
        let text = match (&head[..7], opcode) {
            (b"soak t ", 0x1) => true,
            (b"soak b ", 0x2) => false,
            _ => return Err(format!("an unknown message (opcode {opcode})")),
        };
        let size: usize = std::str::from_utf8(&head[7..13])
            .ok()
            .and_then(|digits| digits.parse().ok())
            .filter(|size| SIZES.contains(size))
            .ok_or("a message of an unknown size")?;
        if plain != self.get(text, size) {
            return Err(format!(
                "a message of {size} bytes that differs from the one sent"
            ));
        }
        Ok(())
    }
}

/// What one read of frames gave.
enum Frame {
    Data {
        opcode: u8,
        plain: Vec<u8>,
        compressed: bool,
    },
    Ping(Vec<u8>),
    Pong,
    Close(u16, String),
}

/// How a connection ended, as the client saw it.
enum End {
    /// The server's close frame: code (1005 if it had none) and reason.
    Close(u16, String),
    /// The connection ended without a close frame.
    Eof,
    Reset,
    TimedOut,
    Error(String),
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::Close(code, reason) if reason.is_empty() => write!(f, "{code}"),
            End::Close(code, reason) => write!(f, "{code} {reason:?}"),
            End::Eof => f.write_str("EOF without a close frame"),
            End::Reset => f.write_str("reset without a close frame"),
            End::TimedOut => f.write_str("no close frame in time"),
            End::Error(err) => write!(f, "error: {err}"),
        }
    }
}

/// One upgraded connection: its bytes read and not yet parsed, and its permessage-deflate
/// contexts when agreed.
struct Peer {
    stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// A fragmented message being put together: opcode, compressed, bytes so far.
    partial: Option<(u8, bool, Vec<u8>)>,
    agreed: Option<Agreement>,
    compress: Option<Compress>,
    decompress: Option<Decompress>,
}

impl Peer {
    pub(super) fn new(conn: Conn, agreed: Option<Agreement>) -> Self {
        let (stream, leftover) = conn.into_parts();
        let end = leftover.len();
        Peer {
            stream,
            buf: leftover,
            start: 0,
            end,
            partial: None,
            agreed,
            compress: agreed.map(deflate::compressor),
            decompress: agreed.map(|_| Decompress::new_with_window_bits(false, 15)),
        }
    }

    /// Reads up to `max` more bytes; `Ok(0)` at the end of the stream.
    async fn fill(&mut self, max: usize) -> io::Result<usize> {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        } else if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() < self.end + max {
            self.buf.resize(self.end + max, 0);
        }
        let n = self
            .stream
            .read(&mut self.buf[self.end..self.end + max])
            .await?;
        self.end += n;
        Ok(n)
    }

    /// The next whole frame read, if there is one; messages are put together and inflated.
    fn next(&mut self) -> Result<Option<Frame>, String> {
        loop {
            let rest = &self.buf[self.start..self.end];
            let Some((fin, opcode, head, len)) = frame_head(rest).map_err(|e| e.to_string())?
            else {
                return Ok(None);
            };
            if rest.len() - head < len {
                return Ok(None);
            }
            let rsv = rest[0] & 0x70;
            let payload = rest[head..head + len].to_vec();
            self.start += head + len;
            let (opcode, compressed, whole) = match (opcode, self.partial.take()) {
                (0x8..=0xa, _) if rsv != 0 || !fin => {
                    return Err(format!(
                        "a control frame {opcode:#x} with RSV or without FIN"
                    ));
                }
                (0x8, partial) => {
                    self.partial = partial;
                    let (code, reason) = match payload.as_slice() {
                        [hi, lo, reason @ ..] => (
                            u16::from_be_bytes([*hi, *lo]),
                            String::from_utf8_lossy(reason).into_owned(),
                        ),
                        _ => (1005, String::new()),
                    };
                    return Ok(Some(Frame::Close(code, reason)));
                }
                (0x9, partial) => {
                    self.partial = partial;
                    return Ok(Some(Frame::Ping(payload)));
                }
                (0xa, partial) => {
                    self.partial = partial;
                    return Ok(Some(Frame::Pong));
                }
                (0x1 | 0x2, None) if rsv & 0x30 == 0 => (opcode, rsv == 0x40, payload),
                (0x0, Some((opcode, compressed, mut bytes))) if rsv == 0 => {
                    bytes.extend_from_slice(&payload);
                    (opcode, compressed, bytes)
                }
                _ => {
                    return Err(format!(
                        "an unexpected frame: opcode {opcode:#x}, RSV {rsv:#04x}"
                    ));
                }
            };
            if !fin {
                self.partial = Some((opcode, compressed, whole));
                continue;
            }
            let plain = if compressed {
                let context = self
                    .decompress
                    .as_mut()
                    .ok_or("a compressed message without permessage-deflate")?;
                let mut plain = Vec::with_capacity(whole.len() * 4);
                deflate::inflate(context, &whole, &mut plain).map_err(|e| e.to_string())?;
                plain
            } else {
                whole
            };
            return Ok(Some(Frame::Data {
                opcode,
                plain,
                compressed,
            }));
        }
    }

    /// Sends one message, compressed when permessage-deflate was agreed.
    async fn send(&mut self, text: bool, plain: &[u8]) -> io::Result<()> {
        let opcode = if text { 0x1 } else { 0x2 };
        let frame = match (&mut self.compress, self.agreed) {
            (Some(context), Some(agreed)) => {
                let mut compressed = Vec::new();
                deflate::deflate(context, plain, &mut compressed)?;
                if agreed.client_no_context_takeover {
                    context.reset();
                }
                let mut frame = Vec::with_capacity(compressed.len() + 14);
                push_frame(&mut frame, 0xc0 | opcode, &compressed);
                frame
            }
            _ => client_frame(opcode, plain),
        };
        self.stream.write_all(&frame).await
    }

    /// Sends a close frame with `code`.
    async fn close(&mut self, code: u16) -> io::Result<()> {
        self.stream
            .write_all(&client_frame(0x8, &code.to_be_bytes()))
            .await
    }

    /// Reads (skipping data and pings) until the server's close frame, the end of the
    /// connection, or `wait`. Nothing is written: a connection the server has dropped answers
    /// a write with a reset, which would lose what it still had to deliver.
    async fn await_close(&mut self, wait: Duration) -> End {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            loop {
                match self.next() {
                    Ok(Some(Frame::Close(code, reason))) => return End::Close(code, reason),
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(err) => return End::Error(err),
                }
            }
            match timeout_at(deadline, self.fill(64 * 1024)).await {
                Err(_) => return End::TimedOut,
                Ok(Ok(0)) => return End::Eof,
                Ok(Ok(_)) => {}
                Ok(Err(err)) if err.kind() == io::ErrorKind::ConnectionReset => return End::Reset,
                Ok(Err(err)) => return End::Error(err.to_string()),
            }
        }
    }

    /// Answers the server's close with the same code and waits for the end of the connection.
    async fn finish_close(&mut self, code: u16) {
        let reply = if code == 1005 { 1000 } else { code };
        if self.close(reply).await.is_ok() {
            self.wait_eof().await;
        }
    }

    /// Waits (at most [`EOF_WAIT`]) for the server to end the connection once the close
    /// handshake is done: RFC 6455 has the server close TCP first.
    async fn wait_eof(&mut self) {
        let _ = timeout(EOF_WAIT, async {
            while matches!(self.fill(64 * 1024).await, Ok(n) if n > 0) {}
        })
        .await;
    }

    /// Drops the connection with a reset (RST) instead of a FIN.
    fn reset(self) {
        let _ = self.stream.set_zero_linger();
    }
}

/// Runs the mix for `length`, then waits for every client to end; with `chat`, reads the
/// server every second meanwhile and returns the readings.
/// `seed` draws the phase's lifetimes and ways of leaving; `started` is the soak's start.
pub(super) async fn run_mix(
    shared: &Arc<Shared>,
    length: Duration,
    chat: Option<&Chat>,
    (started, seed): (Instant, u64),
) -> Vec<Reading> {
    let phase = Instant::now();
    let until = tokio::time::Instant::now() + length;
    let mut tasks = JoinSet::new();
    for slot in 0..MEMBERS {
        let shared = shared.clone();
        tasks.spawn(async move { members(&shared, slot, until, seed).await });
    }
    for slot in 0..BROADCASTERS {
        let shared = shared.clone();
        tasks.spawn(async move { broadcaster(&shared, slot, until).await });
    }
    for slot in 0..CHURN {
        let shared = shared.clone();
        tasks.spawn(async move { churn(&shared, slot, until, seed).await });
    }
    for _ in 0..SLOW {
        let shared = shared.clone();
        tasks.spawn(async move { slow_consumers(&shared, until).await });
    }
    for slot in 0..MISBEHAVING {
        let shared = shared.clone();
        tasks.spawn(async move { misbehaving(&shared, slot, until).await });
    }
    let mut readings = Vec::new();
    let mut every = tokio::time::interval(Duration::from_secs(1));
    let mut last_note = Instant::now();
    loop {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                None => break,
                Some(Ok(())) => {}
                Some(Err(err)) => {
                    eprintln!("ws-bench soak: a client task failed: {err}");
                    shared.harness_panics.fetch_add(1, Ordering::Relaxed);
                }
            },
            _ = every.tick(), if chat.is_some() && tokio::time::Instant::now() < until => {
                if let Some(chat) = chat {
                    match chat.read(phase).await {
                        Ok(reading) => readings.push(reading),
                        Err(err) => eprintln!("ws-bench soak: reading the server: {err}"),
                    }
                }
                if last_note.elapsed() >= Duration::from_secs(30) {
                    last_note = Instant::now();
                    if let Some(reading) = readings.last() {
                        eprintln!("[{:>4.0}s] {reading}", started.elapsed().as_secs_f64());
                    }
                }
            }
        }
    }
    readings
}

/// Draws a duration between `range.0` and `range.1` ms.
fn between(rng: &mut Rng, (low, high): (u64, u64)) -> Duration {
    let span = usize::try_from(high - low).unwrap_or(0);
    Duration::from_millis(low + rng.below(span + 1) as u64)
}

/// One member slot: members one after the other until `until`.
async fn members(shared: &Shared, slot: usize, until: tokio::time::Instant, seed: u64) {
    let mut rng = Rng(seed ^ (slot as u64).wrapping_mul(0x1234_5678_9abc_def1));
    // Staggered, so that the slots do not all start and leave together.
    sleep(between(&mut rng, (0, 2_000))).await;
    let mut n = 0;
    while tokio::time::Instant::now() < until {
        let leave_at = tokio::time::Instant::now() + between(&mut rng, MEMBER_LIFE_MS);
        // Those still there when the phase ends leave with a close.
        let leave = match rng.below(3) {
            _ if leave_at >= until => Leave::Close,
            0 => Leave::Close,
            1 => Leave::Drop,
            _ => Leave::Reset,
        };
        let member_ = Member {
            deflate: (slot + n).is_multiple_of(2),
            leave_at: leave_at.min(until),
            leave,
            sends: Sends::Chat,
        };
        let outcome = member(shared, &mut rng, member_).await;
        let failed = !outcome.ok;
        shared.record(outcome);
        if failed {
            sleep(Duration::from_secs(1)).await;
        }
        n += 1;
    }
}

/// One broadcaster: a member for the whole phase, sending every [`BROADCAST_EVERY`].
async fn broadcaster(shared: &Shared, slot: usize, until: tokio::time::Instant) {
    let mut rng = Rng(0xb0ad ^ slot as u64);
    while tokio::time::Instant::now() < until {
        let outcome = member(
            shared,
            &mut rng,
            Member {
                deflate: slot.is_multiple_of(2),
                leave_at: until,
                leave: Leave::Close,
                sends: Sends::Broadcast,
            },
        )
        .await;
        let failed = !outcome.ok;
        shared.record(outcome);
        if failed {
            sleep(Duration::from_secs(1)).await;
        }
    }
}

/// How a member leaves.
#[derive(Clone, Copy, Debug)]
enum Leave {
    /// A close handshake with 1000.
    Close,
    /// Shuts its side down and drops the connection: no close frame.
    Drop,
    /// Drops the connection with a reset.
    Reset,
}

/// What a member sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sends {
    /// Text of the three smaller sizes, one message every [`MEMBER_SEND_MS`] on average.
    Chat,
    /// Every size, text and binary in turn, every [`BROADCAST_EVERY`].
    Broadcast,
}

struct Member {
    deflate: bool,
    leave_at: tokio::time::Instant,
    leave: Leave,
    sends: Sends,
}

/// What a member waits for.
enum Event {
    Read(io::Result<usize>),
    Send,
    Leave,
}

/// One member's life: joins, reads and checks every message, sends, leaves.
async fn member(shared: &Shared, rng: &mut Rng, member: Member) -> Outcome {
    let (role, case, expected) = match (member.sends, member.leave) {
        (Sends::Broadcast, _) => (
            "broadcaster",
            "publishes 40 msg/s the whole phase, then closes (1000)",
            "1000 echoed",
        ),
        (Sends::Chat, Leave::Close) => {
            ("member", "stays, leaves with a close (1000)", "1000 echoed")
        }
        (Sends::Chat, Leave::Drop) => (
            "member",
            "stays, leaves with a drop (FIN)",
            "nothing to answer",
        ),
        (Sends::Chat, Leave::Reset) => (
            "member",
            "stays, leaves with a reset (RST)",
            "nothing to answer",
        ),
    };
    let outcome = |(ok, got): (bool, String)| Outcome {
        role,
        case,
        expected,
        got,
        ok,
    };
    let mut peer = match shared.join(member.deflate, None).await {
        Ok(peer) => peer,
        Err(err) => return outcome((false, err)),
    };
    let mut next_send = tokio::time::Instant::now() + between(rng, (0, MEMBER_SEND_MS * 2));
    let mut sent = 0usize;
    loop {
        if let Err(failed) = peer.take_messages(shared).await {
            return outcome((false, failed));
        }
        let event = tokio::select! {
            read = peer.fill(64 * 1024) => Event::Read(read),
            () = sleep_until(next_send) => Event::Send,
            () = sleep_until(member.leave_at) => Event::Leave,
        };
        match event {
            Event::Read(Ok(0)) => return outcome((false, End::Eof.to_string())),
            Event::Read(Ok(_)) => {}
            Event::Read(Err(err)) if err.kind() == io::ErrorKind::ConnectionReset => {
                return outcome((false, End::Reset.to_string()));
            }
            Event::Read(Err(err)) => return outcome((false, format!("reading: {err}"))),
            Event::Send => {
                let (text, size, every) = match member.sends {
                    Sends::Chat => (
                        true,
                        SIZES[sent % 3],
                        between(rng, (MEMBER_SEND_MS / 2, MEMBER_SEND_MS * 3 / 2)),
                    ),
                    Sends::Broadcast => (
                        (sent / SIZES.len()).is_multiple_of(2),
                        SIZES[sent % SIZES.len()],
                        BROADCAST_EVERY,
                    ),
                };
                if let Err(err) = peer.send(text, shared.catalog.get(text, size)).await {
                    return outcome((false, format!("sending: {err}")));
                }
                shared.sent.fetch_add(1, Ordering::Relaxed);
                sent += 1;
                next_send += every;
            }
            Event::Leave => break,
        }
    }
    outcome(peer.leave(member.leave).await)
}

impl Peer {
    /// Takes every whole frame read: checks and counts each message, answers pings. An error
    /// for a message that is not one of the catalog's, or a close from the server.
    async fn take_messages(&mut self, shared: &Shared) -> Result<(), String> {
        loop {
            match self.next()? {
                Some(Frame::Data {
                    opcode,
                    plain,
                    compressed,
                }) => {
                    shared.catalog.check(opcode, &plain)?;
                    shared.received.fetch_add(1, Ordering::Relaxed);
                    shared
                        .compressed
                        .fetch_add(u64::from(compressed), Ordering::Relaxed);
                    shared
                        .received_bytes
                        .fetch_add(plain.len() as u64, Ordering::Relaxed);
                }
                Some(Frame::Ping(payload)) => {
                    self.stream
                        .write_all(&client_frame(0xa, &payload))
                        .await
                        .map_err(|err| format!("writing a pong: {err}"))?;
                }
                Some(Frame::Pong) => {}
                Some(Frame::Close(code, reason)) => {
                    self.finish_close(code).await;
                    return Err(format!(
                        "closed by the server: {}",
                        End::Close(code, reason)
                    ));
                }
                None => return Ok(()),
            }
        }
    }

    /// Leaves as `leave` says; whether the answer was the expected one, and what it was.
    async fn leave(mut self, leave: Leave) -> (bool, String) {
        match leave {
            Leave::Close => {
                if let Err(err) = self.close(1000).await {
                    return (false, format!("sending the close: {err}"));
                }
                let end = self.await_close(CLOSE_WAIT).await;
                let ok = matches!(end, End::Close(1000, _));
                if let End::Close(..) = end {
                    self.wait_eof().await;
                }
                (ok, end.to_string())
            }
            Leave::Drop => {
                let _ = self.stream.shutdown().await;
                (true, "dropped".to_owned())
            }
            Leave::Reset => {
                self.reset();
                (true, "reset".to_owned())
            }
        }
    }
}

/// The churn cases, in turn.
const CHURNS: [(&str, &str); 6] = [
    ("joins and closes at once (1000)", "1000 echoed"),
    (
        "joins with deflate, sends one compressed message, closes (1000)",
        "1000 echoed",
    ),
    ("joins and drops at once (FIN)", "nothing to answer"),
    ("joins and resets at once (RST)", "nothing to answer"),
    ("a wrong password", "403"),
    (
        "a TCP connection closed without a request",
        "nothing to answer",
    ),
];

/// One churn slot: a connection that opens and leaves at once, every [`CHURN_EVERY`].
async fn churn(shared: &Shared, slot: usize, until: tokio::time::Instant, seed: u64) {
    let mut rng = Rng(seed ^ 0xc4u64.wrapping_mul(slot as u64 + 1));
    let mut n = slot;
    while tokio::time::Instant::now() < until {
        let (case, expected) = CHURNS[n % CHURNS.len()];
        let outcome = |ok: bool, got: String| Outcome {
            role: "churn",
            case,
            expected,
            got,
            ok,
        };
        let result = match n % CHURNS.len() {
            0 | 1 => match shared.join(n % CHURNS.len() == 1, None).await {
                Ok(mut peer) => {
                    if n % CHURNS.len() == 1 {
                        let size = SIZES[rng.below(3)];
                        if peer
                            .send(true, shared.catalog.get(true, size))
                            .await
                            .is_ok()
                        {
                            shared.sent.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    match peer.close(1000).await {
                        Ok(()) => {
                            let end = peer.await_close(CLOSE_WAIT).await;
                            let ok = matches!(end, End::Close(1000, _));
                            if ok {
                                peer.wait_eof().await;
                            }
                            outcome(ok, end.to_string())
                        }
                        Err(err) => outcome(false, format!("sending the close: {err}")),
                    }
                }
                Err(err) => outcome(false, err),
            },
            2 => match shared.join(false, None).await {
                Ok(mut peer) => {
                    let _ = peer.stream.shutdown().await;
                    outcome(true, "dropped".to_owned())
                }
                Err(err) => outcome(false, err),
            },
            3 => match shared.join(false, None).await {
                Ok(peer) => {
                    peer.reset();
                    outcome(true, "reset".to_owned())
                }
                Err(err) => outcome(false, err),
            },
            4 => {
                let refused = timeout(HANDSHAKE_WAIT, client::connect(&shared.refused)).await;
                match refused {
                    Ok(Err(err)) if err.to_string().contains(" 403 ") => {
                        shared.forbidden.fetch_add(1, Ordering::Relaxed);
                        outcome(true, "403".to_owned())
                    }
                    Ok(Err(err)) => outcome(false, err.to_string()),
                    Ok(Ok(_)) => {
                        shared.upgrades.fetch_add(1, Ordering::Relaxed);
                        outcome(false, "101: upgraded with a wrong password".to_owned())
                    }
                    Err(_) => outcome(false, "no answer within 10 s".to_owned()),
                }
            }
            _ => match client::open(shared.target.addr, None).await {
                Ok(stream) => {
                    drop(stream);
                    outcome(true, "closed".to_owned())
                }
                Err(err) => outcome(false, format!("connect failed: {err}")),
            },
        };
        shared.record(result);
        n += 1;
        sleep(CHURN_EVERY).await;
    }
}

/// One slow consumer slot: slow consumers one after the other until `until`.
async fn slow_consumers(shared: &Shared, until: tokio::time::Instant) {
    while tokio::time::Instant::now() < until {
        let outcome = slow_consumer(shared, until).await;
        let failed = !outcome.ok;
        shared.record(outcome);
        if failed {
            sleep(Duration::from_secs(1)).await;
        }
    }
}

/// A member that reads [`SLOW_READ`] bytes every [`SLOW_EVERY`] through a receive buffer of
/// [`SLOW_BUFFER`] bytes, far less than it is sent: the server must cut it with 1008 when its
/// send queue fills. The close frame can only follow what the server's socket had already
/// taken, megabytes on the loopback (whose send buffer grows to 4 MiB), which a reader this
/// slow would take minutes to reach; so after [`SLOW_TRICKLE`] (or when the phase ends) it
/// reads what is there at full speed, for at most [`CLOSE_WAIT`], looking for the close. It
/// sends nothing, and the trickle is shorter than the heartbeat's three missed pings (the pings
/// wait behind the same bytes), so that only the queue can cut it.
///
/// When the server's write is stuck at the cut (the writer was in the middle of a batch of
/// frames the slow reader does not take), the server gives that write up after its close
/// timeout and drops the connection without a close frame: the client then reads the backlog
/// and an EOF. Both count as a cut, and [`Soak::verdict`](super::Soak::verdict) compares the cuts seen here with the
/// server's `ws_slow_consumer_closes_total`, so that an EOF for another reason does not pass.
async fn slow_consumer(shared: &Shared, until: tokio::time::Instant) -> Outcome {
    let outcome = |ok: bool, got: String| Outcome {
        role: "slow consumer",
        case: "reads 20 KiB/s of the broadcasts, for 20 s",
        expected: "1008 \"Send queue full\", or EOF (close frame stuck behind a write)",
        got,
        ok,
    };
    let mut peer = match shared.join(false, Some(SLOW_BUFFER)).await {
        Ok(peer) => peer,
        Err(err) => return outcome(false, err),
    };
    let trickle_end = until.min(tokio::time::Instant::now() + SLOW_TRICKLE);
    let mut end = None;
    while end.is_none() && tokio::time::Instant::now() < trickle_end {
        sleep(SLOW_EVERY).await;
        end = match timeout(SLOW_EVERY, peer.fill(SLOW_READ)).await {
            Err(_) | Ok(Ok(1..)) => None,
            Ok(Ok(0)) => Some(End::Eof),
            Ok(Err(err)) if err.kind() == io::ErrorKind::ConnectionReset => Some(End::Reset),
            Ok(Err(err)) => Some(End::Error(err.to_string())),
        };
        // Whole frames are dropped; pings are not answered, so that nothing is written to a
        // connection the server may have dropped (which would reset it, losing the rest).
        loop {
            match peer.next() {
                Ok(Some(Frame::Close(code, reason))) => {
                    end = Some(End::Close(code, reason));
                    break;
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(err) => return outcome(false, err),
            }
        }
    }
    let end = match end {
        Some(end) => end,
        None => peer.await_close(CLOSE_WAIT).await,
    };
    let got = end.to_string();
    match end {
        End::Close(code, _) => {
            shared
                .slow_cuts
                .fetch_add(u64::from(code == 1008), Ordering::Relaxed);
            peer.finish_close(code).await;
            outcome(code == 1008, got)
        }
        End::Eof => {
            shared.slow_cuts.fetch_add(1, Ordering::Relaxed);
            outcome(true, got)
        }
        End::TimedOut if trickle_end < until => {
            peer.reset();
            outcome(
                false,
                format!("not cut within {} s", SLOW_TRICKLE.as_secs()),
            )
        }
        End::TimedOut => {
            peer.reset();
            outcome(true, "the phase ended before the cut".to_owned())
        }
        End::Reset | End::Error(_) => outcome(false, got),
    }
}

/// A misbehaviour: what is sent after the upgrade (or instead of it), and the close code it
/// must get.
struct Misbehaviour {
    case: &'static str,
    /// Offer permessage-deflate first.
    deflate: bool,
    /// The bytes, or `None` for a half-done handshake (see [`half_open`]).
    bytes: fn() -> Option<Vec<u8>>,
    code: u16,
    expected: &'static str,
}

fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::new();
    push_frame(&mut frame, first, payload);
    frame
}

/// The misbehaving cases, in turn.
const MISBEHAVIOURS: [Misbehaviour; 12] = [
    Misbehaviour {
        case: "invalid UTF-8 in a text frame",
        deflate: false,
        bytes: || Some(masked(0x81, b"soak \xff\xfe")),
        code: 1007,
        expected: "1007",
    },
    Misbehaviour {
        case: "invalid UTF-8 across two fragments",
        deflate: false,
        bytes: || {
            let mut bytes = masked(0x01, b"soak \xe2\x82");
            bytes.extend(masked(0x80, b"\x28 and on"));
            Some(bytes)
        },
        code: 1007,
        expected: "1007",
    },
    Misbehaviour {
        case: "an unmasked frame",
        deflate: false,
        bytes: || Some(b"\x81\x05hello".to_vec()),
        code: 1002,
        expected: "1002",
    },
    Misbehaviour {
        case: "a frame over the 1 MiB limit (its header)",
        deflate: false,
        bytes: || {
            let mut bytes = vec![0x82, 0x80 | 0x7f];
            bytes.extend_from_slice(&(2u64 << 20).to_be_bytes());
            bytes.extend_from_slice(&[0x37, 0xfa, 0x21, 0x3d]);
            bytes.extend_from_slice(&[0u8; 1024]);
            Some(bytes)
        },
        code: 1009,
        expected: "1009",
    },
    Misbehaviour {
        case: "a reserved opcode (0x3)",
        deflate: false,
        bytes: || Some(masked(0x83, b"what")),
        code: 1002,
        expected: "1002",
    },
    Misbehaviour {
        case: "RSV1 without permessage-deflate",
        deflate: false,
        bytes: || Some(masked(0xc1, b"soak")),
        code: 1002,
        expected: "1002",
    },
    Misbehaviour {
        case: "a fragmented ping",
        deflate: false,
        bytes: || Some(masked(0x09, b"ping")),
        code: 1002,
        expected: "1002",
    },
    Misbehaviour {
        case: "close code 1005 on the wire",
        deflate: false,
        bytes: || Some(masked(0x88, &1005u16.to_be_bytes())),
        code: 1002,
        expected: "1002",
    },
    Misbehaviour {
        case: "an HTTP request after the upgrade (garbage)",
        deflate: false,
        bytes: || Some(b"GET / HTTP/1.1\r\nHost: soak\r\n\r\n".to_vec()),
        code: 1002,
        expected: "1002",
    },
    Misbehaviour {
        case: "compressed data that does not inflate (deflate agreed)",
        deflate: true,
        bytes: || Some(masked(0xc1, &[0xff; 16])),
        code: 1007,
        expected: "1007",
    },
    Misbehaviour {
        case: "half-open: TCP connection, no request",
        deflate: false,
        bytes: || None,
        code: 0,
        expected: "dropped within the 10 s handshake timeout",
    },
    Misbehaviour {
        case: "half-open: request head cut short",
        deflate: false,
        bytes: || None,
        code: 0,
        expected: "dropped within the 10 s handshake timeout",
    },
];

/// One misbehaving slot: the cases in turn until `until`.
async fn misbehaving(shared: &Shared, slot: usize, until: tokio::time::Instant) {
    let mut n = slot * 4;
    while tokio::time::Instant::now() < until {
        let case = &MISBEHAVIOURS[n % MISBEHAVIOURS.len()];
        let outcome = |ok: bool, got: String| Outcome {
            role: "misbehaving",
            case: case.case,
            expected: case.expected,
            got,
            ok,
        };
        let result = match (case.bytes)() {
            Some(bytes) => match shared.join(case.deflate, None).await {
                Ok(mut peer) => match peer.stream.write_all(&bytes).await {
                    Ok(()) => {
                        let end = peer.await_close(CLOSE_WAIT).await;
                        let ok = matches!(end, End::Close(code, _) if code == case.code);
                        if let End::Close(code, _) = end {
                            peer.finish_close(code).await;
                        }
                        outcome(ok, end.to_string())
                    }
                    Err(err) => outcome(false, format!("writing: {err}")),
                },
                Err(err) => outcome(false, err),
            },
            None => half_open(shared, n % MISBEHAVIOURS.len() == 11, until)
                .await
                .map_or_else(|got| outcome(false, got), |got| outcome(true, got)),
        };
        shared.record(result);
        n += 1;
        sleep(MISBEHAVE_EVERY).await;
    }
}

/// A handshake left half done: a TCP connection with nothing sent, or (`head`) with the
/// start of a request head. The server must end it within its handshake timeout (plus
/// [`HANDSHAKE_MARGIN`]); if the phase ends first, the client drops it.
async fn half_open(
    shared: &Shared,
    head: bool,
    until: tokio::time::Instant,
) -> Result<String, String> {
    let mut stream = client::open(shared.target.addr, None)
        .await
        .map_err(|err| format!("connect failed: {err}"))?;
    let opened = Instant::now();
    if head {
        let start = format!(
            "GET /{} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\n",
            shared.target.path, shared.target.addr
        );
        stream
            .write_all(start.as_bytes())
            .await
            .map_err(|err| format!("writing: {err}"))?;
    }
    let limit = HANDSHAKE_TIMEOUT + HANDSHAKE_MARGIN;
    let deadline = until.min(tokio::time::Instant::now() + limit);
    let mut answer = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        match timeout_at(deadline, stream.read(&mut chunk)).await {
            Err(_) if opened.elapsed() >= limit => {
                return Err(format!("still open after {} s", limit.as_secs()));
            }
            Err(_) => return Ok("the phase ended first (dropped)".to_owned()),
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&chunk[..n]),
        }
    }
    let after = opened.elapsed().as_secs_f64();
    let status = String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .map(|line| format!(" after answering {line:?}"))
        .unwrap_or_default();
    let got = format!("closed at {after:.0} s{status}");
    if opened.elapsed() <= limit {
        Ok(got)
    } else {
        Err(got)
    }
}
