//! permessage-deflate (RFC 7692) on the load generator's side, and the JSON chat workload that
//! measures it.
//!
//! The client offers `permessage-deflate; client_max_window_bits` (as browsers do), reads the
//! agreement from the `101`, compresses each message it sends with its own context kept from one
//! message to the next (raw deflate, sync flush, the trailing `00 00 ff ff` stripped, RSV1 on
//! the first frame), inflates every echo that comes back with RSV1 and checks every byte. A
//! server that declines the offer gets (and must echo) the same messages uncompressed.

use std::fmt::Write as _;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::client::{Conn, frame_head, push_frame};
use crate::procs::Server;
use crate::servers::Kind;

/// The client's offer: its own context kept between messages, as browsers offer it.
pub(crate) const OFFER: &str = "permessage-deflate; client_max_window_bits";
/// The same offer asking the server not to keep a decompression context between messages.
pub(crate) const OFFER_NO_TAKEOVER: &str =
    "permessage-deflate; client_no_context_takeover; client_max_window_bits";

/// The client's compression level: zlib's default, which browsers use.
const LEVEL: u32 = 6;
/// The four bytes a sync flush ends with, left off on the wire (RFC 7692 §7.2.1).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Connections and messages in flight per connection of the JSON chat echo.
pub(crate) const CHAT_CONNS: usize = 50;
pub(crate) const CHAT_DEPTH: usize = 4;
/// Distinct chat messages, which every connection sends in order from the first.
pub(crate) const CHAT_MESSAGES: usize = 1024;
/// Sizes of the chat messages, bytes (inclusive).
pub(crate) const CHAT_MIN: usize = 200;
pub(crate) const CHAT_MAX: usize = 1000;

/// One row of the deflate tables: a server and what the client offers it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Variant {
    pub(crate) kind: Kind,
    pub(crate) offer: &'static str,
    pub(crate) label: &'static str,
    /// Whether the server must agree to permessage-deflate (otherwise it must decline).
    pub(crate) deflate: bool,
    /// Whether the memory table has this row too.
    pub(crate) memory: bool,
}

/// The rows, in table order. Every client offers permessage-deflate; ours without `--deflate`
/// and raw `warp::ws` (tungstenite has no permessage-deflate) decline it.
pub(crate) const VARIANTS: [Variant; 5] = [
    Variant {
        kind: Kind::OursDeflate,
        offer: OFFER,
        label: "**ours** (examples/echo --deflate), client keeps its context: `client_max_window_bits=11` (default)",
        deflate: true,
        memory: true,
    },
    Variant {
        kind: Kind::OursDeflate15,
        offer: OFFER,
        label: "**ours** (examples/echo --deflate-client-bits 15), client keeps its context, 15 bits",
        deflate: true,
        memory: true,
    },
    Variant {
        kind: Kind::OursDeflate,
        offer: OFFER_NO_TAKEOVER,
        label: "**ours** (examples/echo --deflate), `client_no_context_takeover`",
        deflate: true,
        memory: true,
    },
    Variant {
        kind: Kind::Ours,
        offer: OFFER,
        label: "**ours** (examples/echo), deflate off: declined",
        deflate: false,
        memory: true,
    },
    Variant {
        kind: Kind::Warp,
        offer: OFFER,
        label: "raw warp::ws 0.4.3: no permessage-deflate, declined",
        deflate: false,
        memory: false,
    },
];

/// The index of the "ours, deflate off" row, a base of the ratios.
pub(crate) const OURS_PLAIN: usize = 3;
/// The index of the raw `warp::ws` row, the other base.
pub(crate) const WARP_PLAIN: usize = 4;

/// Chat messages echoed on each connection, after the first, before memory is read again
/// (about 38 KB each way: more than the largest window, so every row's window is full).
pub(crate) const LONG_ECHOES: u64 = 63;

/// What a server answered to the offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Agreement {
    pub(crate) server_no_context_takeover: bool,
    pub(crate) client_no_context_takeover: bool,
    /// `server_max_window_bits`, 15 when not given.
    pub(crate) server_bits: u8,
    /// `client_max_window_bits`, 15 when not given.
    pub(crate) client_bits: u8,
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Parses the `Sec-WebSocket-Extensions` of a `101` that answers [`OFFER`] or
/// [`OFFER_NO_TAKEOVER`]: `None` when the server declined; an error for anything not offered.
pub(crate) fn agreement(reply: Option<&str>) -> io::Result<Option<Agreement>> {
    let Some(reply) = reply.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    if reply.contains(',') {
        return Err(invalid(format!(
            "more than the one extension offered: {reply}"
        )));
    }
    let mut params = reply.split(';').map(str::trim);
    if !params
        .next()
        .is_some_and(|name| name.eq_ignore_ascii_case("permessage-deflate"))
    {
        return Err(invalid(format!("an extension not offered: {reply}")));
    }
    let mut agreed = Agreement {
        server_no_context_takeover: false,
        client_no_context_takeover: false,
        server_bits: 15,
        client_bits: 15,
    };
    for param in params {
        let (name, value) = match param.split_once('=') {
            Some((name, value)) => (name.trim(), Some(value.trim().trim_matches('"'))),
            None => (param, None),
        };
        let bits = || {
            value
                .and_then(|v| v.parse::<u8>().ok())
                .filter(|b| (8..=15).contains(b))
                .ok_or_else(|| invalid(format!("bad {name} in {reply}")))
        };
        match name.to_ascii_lowercase().as_str() {
            "server_no_context_takeover" if value.is_none() => {
                agreed.server_no_context_takeover = true;
            }
            "client_no_context_takeover" if value.is_none() => {
                agreed.client_no_context_takeover = true;
            }
            "server_max_window_bits" => agreed.server_bits = bits()?,
            "client_max_window_bits" => agreed.client_bits = bits()?,
            _ => return Err(invalid(format!("bad parameter {param:?} in {reply}"))),
        }
    }
    Ok(Some(agreed))
}

/// A small deterministic generator (splitmix64) for the chat messages (and the soak's draws).
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n.max(1)).unwrap_or(u64::MAX)).unwrap_or(0)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const ROOMS: [&str; 6] = [
    "general",
    "random",
    "rust",
    "support",
    "announcements",
    "off-topic",
];
const USERS: [&str; 16] = [
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
    "niaj", "olivia", "peggy", "rupert", "sybil",
];
const WORDS: [&str; 94] = [
    "the",
    "a",
    "to",
    "and",
    "of",
    "is",
    "it",
    "that",
    "for",
    "on",
    "with",
    "this",
    "we",
    "you",
    "can",
    "not",
    "be",
    "have",
    "just",
    "deploy",
    "server",
    "build",
    "release",
    "test",
    "tests",
    "branch",
    "merge",
    "review",
    "latency",
    "memory",
    "socket",
    "message",
    "queue",
    "broadcast",
    "client",
    "browser",
    "compression",
    "window",
    "buffer",
    "handshake",
    "timeout",
    "retry",
    "error",
    "panic",
    "log",
    "logs",
    "trace",
    "metrics",
    "dashboard",
    "alert",
    "staging",
    "production",
    "rollback",
    "config",
    "cache",
    "database",
    "index",
    "query",
    "slow",
    "fast",
    "fixed",
    "broken",
    "works",
    "again",
    "today",
    "tomorrow",
    "yesterday",
    "morning",
    "later",
    "lunch",
    "coffee",
    "meeting",
    "standup",
    "sprint",
    "ticket",
    "issue",
    "patch",
    "version",
    "upgrade",
    "thanks",
    "sure",
    "maybe",
    "probably",
    "actually",
    "really",
    "great",
    "weird",
    "interesting",
    "café",
    "naïve",
    "Zürich",
    "déjà",
    "vu",
    "🚀",
];
const ENDINGS: [&str; 6] = [".", "?", "!", "...", " :)", "."];

/// One chat message of `CHAT_MIN..=CHAT_MAX` bytes: a JSON object with a varied `text`.
fn chat_message(rng: &mut Rng, id: u64) -> Vec<u8> {
    let target = CHAT_MIN + rng.below(CHAT_MAX - CHAT_MIN + 1);
    let room = rng.pick(&ROOMS);
    let user = rng.pick(&USERS);
    let ts = 1_732_400_000_000 + id * 1_337 + u64::try_from(rng.below(1000)).unwrap_or(0);
    let mut head = format!(
        "{{\"type\":\"message\",\"room\":\"{room}\",\"user\":\"{user}\",\"id\":{id},\"ts\":{ts},"
    );
    if rng.below(4) == 0 {
        let mention = rng.pick(&USERS);
        let _ = write!(head, "\"mentions\":[\"{mention}\"],");
    }
    if rng.below(5) == 0 {
        let to = id.saturating_sub(1 + u64::try_from(rng.below(50)).unwrap_or(0));
        let _ = write!(head, "\"reply_to\":{to},");
    }
    head.push_str("\"text\":\"");
    let tail = "\"}";
    let room_for_text = target.saturating_sub(head.len() + tail.len());
    let mut text = String::with_capacity(room_for_text + 8);
    let mut sentence_start = true;
    loop {
        let mut word = rng.pick(&WORDS).to_owned();
        if sentence_start {
            let mut chars = word.chars();
            if let Some(first) = chars.next() {
                word = first.to_uppercase().chain(chars).collect();
            }
        }
        if rng.below(9) == 0 {
            let _ = write!(word, " #{}", rng.below(5000));
        }
        let ending = if rng.below(8) == 0 {
            rng.pick(&ENDINGS)
        } else {
            ""
        };
        let space = usize::from(!text.is_empty());
        if text.len() + space + word.len() + ending.len() > room_for_text {
            break;
        }
        if space == 1 {
            text.push(' ');
        }
        text.push_str(&word);
        text.push_str(ending);
        sentence_start = !ending.is_empty();
    }
    while text.len() < room_for_text {
        text.push('.');
    }
    let mut out = head.into_bytes();
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(tail.as_bytes());
    out
}

/// The distinct chat messages every connection cycles through (from its own offset).
pub(crate) fn chat_messages() -> Arc<Vec<Vec<u8>>> {
    let mut rng = Rng(0x5eed_cafe);
    Arc::new(
        (0..CHAT_MESSAGES as u64)
            .map(|id| chat_message(&mut rng, 10_000 + id))
            .collect(),
    )
}

/// Byte and message counts of the chat echo, shared by every connection of a run.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Messages sent, and echoes received and checked.
    sent: AtomicU64,
    echoes: AtomicU64,
    /// Payload bytes of the messages sent, before and after compression.
    plain_out: AtomicU64,
    wire_out: AtomicU64,
    /// Payload bytes of the echoes received, on the wire and inflated.
    wire_in: AtomicU64,
    plain_in: AtomicU64,
    /// Echoes that came back compressed (RSV1).
    compressed_in: AtomicU64,
}

/// A reading of [`Counters`].
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Counts {
    pub(crate) sent: u64,
    pub(crate) echoes: u64,
    pub(crate) plain_out: u64,
    pub(crate) wire_out: u64,
    pub(crate) wire_in: u64,
    pub(crate) plain_in: u64,
    pub(crate) compressed_in: u64,
}

impl Counters {
    pub(crate) fn read(&self) -> Counts {
        Counts {
            sent: self.sent.load(Ordering::Relaxed),
            echoes: self.echoes.load(Ordering::Relaxed),
            plain_out: self.plain_out.load(Ordering::Relaxed),
            wire_out: self.wire_out.load(Ordering::Relaxed),
            wire_in: self.wire_in.load(Ordering::Relaxed),
            plain_in: self.plain_in.load(Ordering::Relaxed),
            compressed_in: self.compressed_in.load(Ordering::Relaxed),
        }
    }
}

impl Counts {
    /// The counts since `earlier`.
    fn since(self, earlier: Counts) -> Counts {
        Counts {
            sent: self.sent - earlier.sent,
            echoes: self.echoes - earlier.echoes,
            plain_out: self.plain_out - earlier.plain_out,
            wire_out: self.wire_out - earlier.wire_out,
            wire_in: self.wire_in - earlier.wire_in,
            plain_in: self.plain_in - earlier.plain_in,
            compressed_in: self.compressed_in - earlier.compressed_in,
        }
    }
}

/// A client's compression context for the agreement `agreed`: raw deflate at [`LEVEL`], in
/// its own window, at most what the server allows (zlib needs 9 bits or more).
pub(crate) fn compressor(agreed: Agreement) -> Compress {
    Compress::new_with_window_bits(Compression::new(LEVEL), false, agreed.client_bits.max(9))
}

/// Compresses one whole message with a sync flush into `out` and strips the trailing
/// `00 00 ff ff`.
pub(crate) fn deflate(context: &mut Compress, input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    out.clear();
    let start = context.total_in();
    loop {
        if out.capacity() - out.len() < 64 {
            out.reserve(out.capacity().max(256));
        }
        let consumed = usize::try_from(context.total_in() - start).unwrap_or(usize::MAX);
        context
            .compress_vec(
                &input[consumed.min(input.len())..],
                out,
                FlushCompress::Sync,
            )
            .map_err(|e| invalid(format!("deflate: {e}")))?;
        let consumed = usize::try_from(context.total_in() - start).unwrap_or(usize::MAX);
        if consumed >= input.len() && out.len() < out.capacity() {
            break;
        }
    }
    if !out.ends_with(&TAIL) {
        return Err(invalid("a sync flush that does not end with 00 00 ff ff"));
    }
    out.truncate(out.len() - TAIL.len());
    Ok(())
}

/// Inflates one compressed message (the stripped tail put back) into `out`.
pub(crate) fn inflate(context: &mut Decompress, input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    out.clear();
    feed(context, input, out)?;
    feed(context, &TAIL, out)
}

fn feed(context: &mut Decompress, mut input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    loop {
        if out.capacity() - out.len() < 256 {
            out.reserve(out.capacity().max(1024));
        }
        let (before_in, before_out) = (context.total_in(), out.len());
        let status = context
            .decompress_vec(input, out, FlushDecompress::Sync)
            .map_err(|e| invalid(format!("inflate: {e}")))?;
        let read = usize::try_from(context.total_in() - before_in).unwrap_or(usize::MAX);
        input = &input[read.min(input.len())..];
        if status == Status::StreamEnd {
            // A final block (BFINAL) may end a message; the next one starts a new stream.
            context.reset(false);
            return if input.is_empty() {
                Ok(())
            } else {
                Err(invalid("data after the end of a deflate stream"))
            };
        }
        if input.is_empty() && out.len() < out.capacity() {
            return Ok(());
        }
        if read == 0 && out.len() == before_out && out.len() < out.capacity() {
            return Err(invalid("inflate made no progress"));
        }
    }
}

/// The frames every connection of a run sends, in order: message `k` of the sequence (message
/// `k mod 1,024`), masked, and compressed where agreed exactly as a client's own context would
/// compress it after messages `0..k` (kept from one message to the next, or reset after each
/// with `client_no_context_takeover`). Every connection sends the same sequence from its
/// start, so each frame is compressed once and shared: each connection's stream is still
/// exactly what its own compressor would have produced, and the client core is left for the
/// rest (a browser-like context at level 6 costs tens of µs per chat message, which would make
/// the single client core the bottleneck).
pub(crate) struct Frames {
    messages: Arc<Vec<Vec<u8>>>,
    agreed: Option<Agreement>,
    state: Mutex<FrameState>,
}

struct FrameState {
    /// The client's context, if compressing.
    compress: Option<Compress>,
    /// Reset after each message: then frame `k` is frame `k mod 1,024`.
    reset: bool,
    /// The frames back to back, where each ends, and the payload bytes of each on the wire.
    bytes: Vec<u8>,
    ends: Vec<usize>,
    wire: Vec<usize>,
    scratch: Vec<u8>,
}

impl Frames {
    /// The frames for connections that agreed to `agreed` (or declined: `None`).
    pub(crate) fn new(messages: Arc<Vec<Vec<u8>>>, agreed: Option<Agreement>) -> Self {
        let compress = agreed.map(compressor);
        Frames {
            messages,
            agreed,
            state: Mutex::new(FrameState {
                reset: agreed.is_none_or(|a| a.client_no_context_takeover),
                compress,
                bytes: Vec::new(),
                ends: Vec::new(),
                wire: Vec::new(),
                scratch: Vec::new(),
            }),
        }
    }

    /// Appends frames `from..from + count` to `out`; returns their payload bytes before and
    /// after compression.
    fn append(&self, from: usize, count: usize, out: &mut Vec<u8>) -> io::Result<(usize, usize)> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let n = self.messages.len();
        let (mut plain_bytes, mut wire_bytes) = (0, 0);
        for k in from..from + count {
            let index = if state.reset { k % n } else { k };
            while state.ends.len() <= index {
                let plain = &self.messages[state.ends.len() % n];
                let FrameState {
                    compress,
                    reset,
                    bytes,
                    ends,
                    wire,
                    scratch,
                } = &mut *state;
                if let Some(context) = compress {
                    deflate(context, plain, scratch)?;
                    if *reset {
                        context.reset();
                    }
                    push_frame(bytes, 0x80 | 0x40 | 0x1, scratch);
                    wire.push(scratch.len());
                } else {
                    push_frame(bytes, 0x80 | 0x1, plain);
                    wire.push(plain.len());
                }
                ends.push(bytes.len());
            }
            let begin = index.checked_sub(1).map_or(0, |i| state.ends[i]);
            out.extend_from_slice(&state.bytes[begin..state.ends[index]]);
            plain_bytes += self.messages[k % n].len();
            wire_bytes += state.wire[index];
        }
        Ok((plain_bytes, wire_bytes))
    }
}

/// One connection of the chat echo, with its decompression context when permessage-deflate
/// was agreed.
pub(crate) struct ChatConn {
    stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    frames: Arc<Frames>,
    messages: Arc<Vec<Vec<u8>>>,
    agreed: Option<Agreement>,
    decompress: Option<Decompress>,
    /// Index of the next message to send and of the next echo due.
    next_send: usize,
    next_echo: usize,
    out: Vec<u8>,
    /// Receive side: a fragmented message being assembled, and inflated bytes.
    in_message: bool,
    compressed: bool,
    partial: Vec<u8>,
    inflated: Vec<u8>,
}

impl ChatConn {
    /// Takes over an upgraded connection that will send `frames`; its agreement must be the
    /// one the frames were made for.
    pub(crate) fn new(conn: Conn, frames: Arc<Frames>) -> io::Result<Self> {
        let agreed = agreement(conn.extensions())?;
        if agreed != frames.agreed {
            return Err(invalid(format!(
                "connections of one server agreed to different extensions: {agreed:?}, {:?}",
                frames.agreed
            )));
        }
        let (stream, leftover) = conn.into_parts();
        let mut buf = leftover;
        let end = buf.len();
        buf.resize(end.max(4096), 0);
        // 15 bits inflate whatever window the server compresses with; created per echo when
        // the server compresses each message alone (so idle connections hold none).
        let decompress = agreed
            .filter(|a| !a.server_no_context_takeover)
            .map(|_| Decompress::new_with_window_bits(false, 15));
        Ok(ChatConn {
            stream,
            buf,
            start: 0,
            end,
            messages: frames.messages.clone(),
            frames,
            agreed,
            decompress,
            next_send: 0,
            next_echo: 0,
            out: Vec::new(),
            in_message: false,
            compressed: false,
            partial: Vec::new(),
            inflated: Vec::new(),
        })
    }

    /// Closed loop: keeps `depth` messages in flight until `limit` echoes have been inflated
    /// (if compressed) and checked; counts bytes and echoes in `wire`. Returns the echoes.
    pub(crate) async fn echo(
        &mut self,
        depth: usize,
        limit: u64,
        wire: &Counters,
    ) -> io::Result<u64> {
        let mut sent = u64::try_from(depth).unwrap_or(u64::MAX).min(limit);
        let mut received = 0;
        self.send(sent, wire).await?;
        while received < limit {
            if self.end > self.start {
                let (used, done) = self.parse(wire)?;
                self.start += used;
                if done > 0 {
                    received += done;
                    if received > sent {
                        return Err(invalid("more echoes than messages sent"));
                    }
                    let more = done.min(limit - sent);
                    self.send(more, wire).await?;
                    sent += more;
                }
            }
            if received >= limit {
                break;
            }
            if self.start == self.end {
                (self.start, self.end) = (0, 0);
            } else if self.end == self.buf.len() {
                if self.start > 0 {
                    self.buf.copy_within(self.start..self.end, 0);
                    self.end -= self.start;
                    self.start = 0;
                } else {
                    // One frame larger than the buffer.
                    self.buf.resize(self.buf.len() * 2, 0);
                }
            }
            let n = self.stream.read(&mut self.buf[self.end..]).await?;
            if n == 0 {
                return Err(invalid("server closed the connection"));
            }
            self.end += n;
        }
        Ok(received)
    }

    /// Writes the next `count` frames (compressed if agreed) in one write.
    async fn send(&mut self, count: u64, wire: &Counters) -> io::Result<()> {
        if count == 0 {
            return Ok(());
        }
        self.out.clear();
        let count_usize = usize::try_from(count).map_err(io::Error::other)?;
        let (plain_bytes, wire_bytes) =
            self.frames
                .append(self.next_send, count_usize, &mut self.out)?;
        self.next_send += count_usize;
        wire.sent.fetch_add(count, Ordering::Relaxed);
        wire.plain_out
            .fetch_add(plain_bytes as u64, Ordering::Relaxed);
        wire.wire_out
            .fetch_add(wire_bytes as u64, Ordering::Relaxed);
        self.stream.write_all(&self.out).await
    }

    /// Parses whole server frames in `buf[start..end]`; returns the bytes used and the echoes
    /// completed (each inflated if compressed and checked byte for byte).
    fn parse(&mut self, wire: &Counters) -> io::Result<(usize, u64)> {
        let mut pos = self.start;
        let mut done = 0;
        while let Some((fin, opcode, head, len)) = frame_head(&self.buf[pos..self.end])? {
            if self.end - pos - head < len {
                break;
            }
            let (first, body) = (pos + head, pos + head + len);
            let rsv = self.buf[pos] & 0x70;
            match opcode {
                0x1 | 0x2 => {
                    if self.in_message {
                        return Err(invalid("new message inside a fragmented one"));
                    }
                    if opcode != 0x1 {
                        return Err(invalid("a binary echo of a text message"));
                    }
                    let compressed = rsv == 0x40;
                    if rsv != 0 && !(compressed && self.agreed.is_some()) {
                        return Err(invalid(format!("unexpected RSV bits {rsv:#04x}")));
                    }
                    wire.wire_in.fetch_add(len as u64, Ordering::Relaxed);
                    if fin {
                        self.finish(first..body, compressed, wire)?;
                        done += 1;
                    } else {
                        self.partial.clear();
                        self.partial.extend_from_slice(&self.buf[first..body]);
                        (self.in_message, self.compressed) = (true, compressed);
                    }
                }
                0x0 => {
                    if !self.in_message || rsv != 0 {
                        return Err(invalid("unexpected continuation frame"));
                    }
                    wire.wire_in.fetch_add(len as u64, Ordering::Relaxed);
                    self.partial.extend_from_slice(&self.buf[first..body]);
                    if fin {
                        let whole = std::mem::take(&mut self.partial);
                        let outcome = self.check(&whole, self.compressed, wire);
                        self.partial = whole;
                        outcome?;
                        self.in_message = false;
                        done += 1;
                    }
                }
                0x8 => return Err(invalid("server sent a close frame")),
                0x9 | 0xa if rsv == 0 => {}
                other => return Err(invalid(format!("unexpected frame {other:#x}"))),
            }
            pos = body;
        }
        Ok((pos - self.start, done))
    }

    /// Checks the unfragmented message in `buf[range]`.
    fn finish(
        &mut self,
        range: std::ops::Range<usize>,
        compressed: bool,
        wire: &Counters,
    ) -> io::Result<()> {
        let buf = std::mem::take(&mut self.buf);
        let outcome = self.check(&buf[range], compressed, wire);
        self.buf = buf;
        outcome
    }

    /// Inflates (if `compressed`) one echo and compares it with the message it answers.
    fn check(&mut self, payload: &[u8], compressed: bool, wire: &Counters) -> io::Result<()> {
        let expected = &self.messages[self.next_echo % self.messages.len()];
        self.next_echo += 1;
        let plain: &[u8] = if compressed {
            let agreed = self
                .agreed
                .ok_or_else(|| invalid("compressed echo without an agreement"))?;
            let context = self
                .decompress
                .get_or_insert_with(|| Decompress::new_with_window_bits(false, 15));
            inflate(context, payload, &mut self.inflated)?;
            if agreed.server_no_context_takeover {
                self.decompress = None;
            }
            &self.inflated
        } else {
            payload
        };
        if plain != expected.as_slice() {
            return Err(invalid(format!(
                "echo {} differs from the message sent ({} bytes, sent {})",
                self.next_echo - 1,
                plain.len(),
                expected.len()
            )));
        }
        wire.plain_in
            .fetch_add(plain.len() as u64, Ordering::Relaxed);
        wire.compressed_in
            .fetch_add(u64::from(compressed), Ordering::Relaxed);
        wire.echoes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Opens `count` connections offering `variant.offer` and checks that the server agreed or
/// declined as `variant.deflate` says. Returns them with the reply's extensions (of the first).
pub(crate) async fn open_chat(
    server: &Server,
    variant: &Variant,
    count: usize,
) -> io::Result<(Vec<ChatConn>, String)> {
    let conns = crate::open_many_with(server, count, Some(variant.offer)).await?;
    let agreed = conns
        .first()
        .and_then(Conn::extensions)
        .unwrap_or("none")
        .to_owned();
    let frames = frames_for(variant, &conns)?;
    let chat = conns
        .into_iter()
        .map(|conn| ChatConn::new(conn, frames.clone()))
        .collect::<io::Result<_>>()?;
    Ok((chat, agreed))
}

/// The frames of a run, for the agreement of its first connection, which must be what
/// `variant.deflate` says (every other connection must agree the same; [`ChatConn::new`]).
fn frames_for(variant: &Variant, conns: &[Conn]) -> io::Result<Arc<Frames>> {
    let agreed = agreement(conns.first().and_then(Conn::extensions))?;
    match (variant.deflate, agreed) {
        (true, None) => Err(invalid("the server declined permessage-deflate")),
        (false, Some(_)) => Err(invalid("the server agreed to permessage-deflate")),
        _ => Ok(Arc::new(Frames::new(chat_messages(), agreed))),
    }
}

/// What one chat echo run measured: the window's counts and CPU.
pub(crate) struct ChatRun {
    pub(crate) counts: Counts,
    pub(crate) elapsed: Duration,
    pub(crate) server_ticks: u64,
    pub(crate) client_ticks: u64,
    /// The server's `Sec-WebSocket-Extensions` answer (`none` if declined).
    pub(crate) agreed: String,
}

/// Closed-loop JSON chat echo: `conns` connections, `depth` in flight each, `warmup` then a
/// measured window of `secs`.
pub(crate) async fn run_chat(
    server: &Server,
    variant: &Variant,
    conns: usize,
    warmup: f64,
    secs: f64,
) -> io::Result<ChatRun> {
    let (chat, agreed) = open_chat(server, variant, conns).await?;
    let wire = Arc::new(Counters::default());
    let mut tasks = JoinSet::new();
    for mut conn in chat {
        let wire = wire.clone();
        tasks.spawn(async move { conn.echo(CHAT_DEPTH, u64::MAX, &wire).await });
    }
    tokio::time::sleep(Duration::from_secs_f64(warmup)).await;
    check_running(&mut tasks)?;
    let (t0, w0) = (Instant::now(), wire.read());
    let (s0, c0) = (server.cpu_ticks()?, crate::procs::cpu_ticks("self")?);
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    let (s1, c1) = (server.cpu_ticks()?, crate::procs::cpu_ticks("self")?);
    let (t1, w1) = (Instant::now(), wire.read());
    check_running(&mut tasks)?;
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    Ok(ChatRun {
        counts: w1.since(w0),
        elapsed: t1 - t0,
        server_ticks: s1 - s0,
        client_ticks: c1 - c0,
        agreed,
    })
}

/// `count` messages on each of `conns` connections, every echo checked (for `smoke`).
pub(crate) async fn smoke_chat(
    server: &Server,
    variant: &Variant,
    conns: usize,
    count: u64,
) -> io::Result<Counts> {
    let (chat, _) = open_chat(server, variant, conns).await?;
    let wire = Arc::new(Counters::default());
    let mut tasks = JoinSet::new();
    for mut conn in chat {
        let wire = wire.clone();
        tasks.spawn(async move { conn.echo(CHAT_DEPTH, count, &wire).await });
    }
    while let Some(done) = tasks.join_next().await {
        let got = done.map_err(io::Error::other)??;
        if got != count {
            return Err(invalid(format!("{got} echoes of {count}")));
        }
    }
    let counts = wire.read();
    // An echo that would not shrink comes back uncompressed (RFC 7692 allows it); none at all
    // compressed means deflate is not in use.
    if variant.deflate && counts.compressed_in == 0 {
        return Err(invalid(format!(
            "{} of {} echoes came back compressed",
            counts.compressed_in, counts.echoes
        )));
    }
    Ok(counts)
}

/// One chat message echoed on each connection (32 at a time), which then stays open idle
/// (the client holds no decompression context between echoes when the server compresses each
/// message alone, as every row's server does). Returns the idle connections, in `connectors`
/// groups.
pub(crate) async fn echo_once(
    conns: Vec<Conn>,
    variant: &Variant,
    connectors: usize,
) -> io::Result<Vec<Vec<ChatConn>>> {
    let frames = frames_for(variant, &conns)?;
    let wire = Arc::new(Counters::default());
    let mut chunks: Vec<Vec<Conn>> = (0..connectors.max(1)).map(|_| Vec::new()).collect();
    for (i, conn) in conns.into_iter().enumerate() {
        let n = chunks.len();
        chunks[i % n].push(conn);
    }
    let mut tasks = JoinSet::new();
    for chunk in chunks {
        let (frames, wire) = (frames.clone(), wire.clone());
        tasks.spawn(async move {
            let mut idle = Vec::with_capacity(chunk.len());
            for conn in chunk {
                let mut conn = ChatConn::new(conn, frames.clone())?;
                conn.echo(1, 1, &wire).await?;
                idle.push(conn);
            }
            Ok::<_, io::Error>(idle)
        });
    }
    let mut idle = Vec::new();
    while let Some(done) = tasks.join_next().await {
        idle.push(done.map_err(io::Error::other)??);
    }
    Ok(idle)
}

/// [`LONG_ECHOES`] more chat messages echoed on each connection of each group (one group per
/// task, 4 in flight per connection), which then stay open idle again.
pub(crate) async fn echo_more(groups: Vec<Vec<ChatConn>>) -> io::Result<Vec<Vec<ChatConn>>> {
    let wire = Arc::new(Counters::default());
    let mut tasks = JoinSet::new();
    for mut group in groups {
        let wire = wire.clone();
        tasks.spawn(async move {
            for conn in &mut group {
                conn.echo(CHAT_DEPTH, LONG_ECHOES, &wire).await?;
            }
            Ok::<_, io::Error>(group)
        });
    }
    let mut idle = Vec::new();
    while let Some(done) = tasks.join_next().await {
        idle.push(done.map_err(io::Error::other)??);
    }
    Ok(idle)
}

/// Fails if any connection task has ended with an error.
fn check_running(tasks: &mut JoinSet<io::Result<u64>>) -> io::Result<()> {
    while let Some(done) = tasks.try_join_next() {
        done.map_err(io::Error::other)??;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{
        Agreement, CHAT_MAX, CHAT_MIN, Compress, Compression, Decompress, Frames, TAIL, agreement,
        chat_messages, deflate, inflate,
    };
    use crate::client::push_frame;

    #[test]
    fn chat_messages_are_json_like_and_sized() {
        let messages = chat_messages();
        let mut sizes = std::collections::HashSet::new();
        for m in messages.iter() {
            let text = std::str::from_utf8(m).unwrap();
            assert!(
                (CHAT_MIN..=CHAT_MAX).contains(&m.len()),
                "{} bytes",
                m.len()
            );
            assert!(text.starts_with("{\"type\":\"message\",") && text.ends_with("\"}"));
            assert_eq!(text.matches('"').count() % 2, 0);
            sizes.insert(m.len());
        }
        assert!(sizes.len() > 300, "varied sizes");
        assert_ne!(messages[0], messages[1]);
    }

    #[test]
    fn messages_round_trip_with_and_without_context_takeover() {
        let messages = chat_messages();
        for reset in [false, true] {
            let mut c = Compress::new_with_window_bits(Compression::new(6), false, 15);
            let mut d = Decompress::new_with_window_bits(false, 15);
            let (mut packed, mut plain) = (Vec::new(), Vec::new());
            let (mut total_in, mut total_out) = (0, 0);
            for m in messages.iter().take(200) {
                deflate(&mut c, m, &mut packed).unwrap();
                assert!(!packed.ends_with(&TAIL));
                if reset {
                    c.reset();
                }
                inflate(&mut d, &packed, &mut plain).unwrap();
                assert_eq!(&plain, m);
                (total_in, total_out) = (total_in + m.len(), total_out + packed.len());
            }
            assert!(total_out * 3 / 2 < total_in, "{total_in} → {total_out}");
        }
    }

    #[test]
    fn shared_frames_are_what_a_connection_of_its_own_would_send() {
        let messages = chat_messages();
        let n = messages.len();
        for no_takeover in [false, true] {
            let agreed = Agreement {
                server_no_context_takeover: true,
                client_no_context_takeover: no_takeover,
                server_bits: 15,
                client_bits: 15,
            };
            let frames = Frames::new(messages.clone(), Some(agreed));
            // Asked for out of order and past the end of the messages.
            let (mut late, mut early) = (Vec::new(), Vec::new());
            frames.append(n - 2, 4, &mut late).unwrap();
            frames.append(0, n - 2, &mut early).unwrap();
            early.extend_from_slice(&late);
            let mut own = Compress::new_with_window_bits(Compression::new(6), false, 15);
            let (mut expected, mut packed) = (Vec::new(), Vec::new());
            for k in 0..n + 2 {
                deflate(&mut own, &messages[k % n], &mut packed).unwrap();
                if no_takeover {
                    own.reset();
                }
                push_frame(&mut expected, 0xc1, &packed);
            }
            assert_eq!(early, expected, "no_takeover {no_takeover}");
        }
        let plain = Frames::new(messages.clone(), None);
        let mut out = Vec::new();
        let (before, after) = plain.append(n - 1, 2, &mut out).unwrap();
        assert_eq!(before, after);
        assert_eq!(before, messages[n - 1].len() + messages[0].len());
    }

    #[test]
    fn agreements_are_parsed_and_strangers_refused() {
        assert_eq!(agreement(None).unwrap(), None);
        assert_eq!(
            agreement(Some("permessage-deflate; server_no_context_takeover")).unwrap(),
            Some(Agreement {
                server_no_context_takeover: true,
                client_no_context_takeover: false,
                server_bits: 15,
                client_bits: 15,
            })
        );
        let a = agreement(Some(
            "permessage-deflate; client_no_context_takeover; client_max_window_bits=\"10\"",
        ))
        .unwrap()
        .unwrap();
        assert!(a.client_no_context_takeover && a.client_bits == 10);
        for bad in [
            "x-webkit-deflate-frame",
            "permessage-deflate; foo",
            "permessage-deflate; client_max_window_bits=16",
            "permessage-deflate, permessage-deflate",
        ] {
            assert!(agreement(Some(bad)).is_err(), "{bad}");
        }
    }
}

/// The offline sweep quoted in BENCHMARKS.md ("What an idle connection keeps"): for each client
/// window (9 to 15 bits), the chat corpus compressed as a browser's context would (4,096
/// messages, the context kept), its ratio, and the server-side cost of inflating each message
/// with one live context against a context rebuilt per message from the last `2^bits` bytes
/// (ws-runtime's hibernating inflater). Best of 5 passes. In-process, no server:
/// `cargo test --release -p ws-bench -- --ignored --nocapture window_sweep`.
#[cfg(test)]
mod sweep {
    use super::{Compress, Compression, Decompress, Instant, chat_messages, deflate, inflate};

    /// Appends `new` to `history`, keeping its last `window` bytes.
    fn remember(history: &mut Vec<u8>, new: &[u8], window: usize) {
        let excess = (history.len() + new.len()).saturating_sub(window);
        history.drain(..excess.min(history.len()));
        history.extend_from_slice(&new[new.len().saturating_sub(window)..]);
    }

    #[test]
    #[ignore = "a measurement, run by hand with --release"]
    fn window_sweep() {
        let messages = chat_messages();
        let n = 4096;
        println!(
            "| client window | kept while idle | ratio | B/msg on the wire | inflate, live context (ns/msg) | inflate, re-primed (ns/msg) | priming (ns/msg) |"
        );
        println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        for bits in 9..=15u8 {
            let mut c = Compress::new_with_window_bits(Compression::new(6), false, bits);
            let (mut packed, mut out) = (Vec::new(), Vec::new());
            let (mut plain_bytes, mut wire_bytes) = (0, 0);
            for k in 0..n {
                let m = &messages[k % messages.len()];
                deflate(&mut c, m, &mut out).unwrap();
                plain_bytes += m.len();
                wire_bytes += out.len();
                packed.push(out.clone());
            }
            let (mut live, mut primed) = (f64::MAX, f64::MAX);
            let mut plain = Vec::new();
            for _ in 0..5 {
                let t = Instant::now();
                let mut d = Decompress::new_with_window_bits(false, bits);
                for p in &packed {
                    inflate(&mut d, p, &mut plain).unwrap();
                }
                live = live.min(t.elapsed().as_nanos() as f64 / n as f64);
                let mut history = Vec::new();
                let t = Instant::now();
                for (k, p) in packed.iter().enumerate() {
                    let mut d = Decompress::new_with_window_bits(false, bits);
                    if !history.is_empty() {
                        d.set_dictionary(&history).unwrap();
                    }
                    inflate(&mut d, p, &mut plain).unwrap();
                    assert_eq!(plain, messages[k % messages.len()]);
                    remember(&mut history, &plain, 1 << bits);
                }
                primed = primed.min(t.elapsed().as_nanos() as f64 / n as f64);
            }
            println!(
                "| {bits} bits | {} B | {:.2}× | {} | {live:.0} | {primed:.0} | {:.0} |",
                1 << bits,
                plain_bytes as f64 / wire_bytes as f64,
                wire_bytes / n,
                primed - live
            );
        }
        let mut c = Compress::new_with_window_bits(Compression::new(6), false, 15);
        let (mut plain_bytes, mut wire_bytes, mut out) = (0, 0, Vec::new());
        for k in 0..n {
            let m = &messages[k % messages.len()];
            deflate(&mut c, m, &mut out).unwrap();
            c.reset();
            plain_bytes += m.len();
            wire_bytes += out.len();
        }
        println!(
            "| `client_no_context_takeover` | 0 | {:.2}× | {} | | | |",
            plain_bytes as f64 / wire_bytes as f64,
            wire_bytes / n
        );
    }
}
