//! permessage-deflate (RFC 7692): the configuration, the negotiation of the client's offers,
//! and the compression and decompression of messages.
//!
//! Compression uses `flate2` with its `zlib-rs` backend: a pure-Rust port of zlib, as fast as
//! zlib-ng, that builds with cargo alone (no C compiler, no cmake) and, unlike the
//! `miniz_oxide` backend, supports the window sizes (`*_max_window_bits`) RFC 7692 negotiates.

use std::cell::RefCell;
use std::fmt::Write as _;

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use http::HeaderMap;

use super::ProtocolError;

/// permessage-deflate (RFC 7692) settings of a [`Config`](crate::Config): off unless set with
/// [`Config::deflate`](crate::Config::deflate).
///
/// When a client offers `permessage-deflate` (browsers do on every connection), the first of
/// its offers that these settings can accept is answered in the `101`; messages of at least
/// [`threshold`](Deflate::threshold) bytes are then sent compressed, and compressed messages
/// from the client are inflated, their *inflated* size counting against
/// [`max_message_size`](crate::Config::max_message_size).
///
/// # Memory and ratio
///
/// Measured with a counting allocator (flate2 1.1 with zlib-rs, level 6): a compression
/// context costs about 370 KiB at 15 window bits, 260 KiB at 12 and 245 KiB at 9 (hash tables
/// and buffers dominate below 12 bits); a decompression context about 46 KiB whatever the
/// window. What each connection keeps depends on context takeover, the main lever:
///
/// - **server context takeover** ([`server_context_takeover`](Deflate::server_context_takeover),
///   default off): with it, each connection keeps its own compression context between
///   messages (about 370 KiB per connection at 15 bits, created on its first compressed
///   message) and repeated content across messages (JSON keys, say) compresses far better.
///   Without it (the default), each message is compressed on its own with a context kept
///   per worker thread and reset after each message: nothing per connection, and a broadcast
///   is compressed **once**, the same bytes going to every receiver that negotiated the same
///   window size (the first receiver's writer compresses, the others reuse its bytes).
/// - **client context takeover** ([`client_context_takeover`](Deflate::client_context_takeover),
///   default on): the client compresses each message against the ones before it, so the
///   server must remember the client's window between messages. A decompression context
///   lives only while a message is inflated; between messages the connection keeps just the
///   last `2^client_max_window_bits` bytes it inflated and primes a new context with them
///   when the next message comes (which costs about 1 µs per message at 11 bits). Without it
///   the server answers `client_no_context_takeover` and keeps nothing.
/// - **client window bits** ([`client_max_window_bits`](Deflate::client_max_window_bits)):
///   what an idle connection keeps with client context takeover, and the client's ratio.
///   Browsers offer `client_max_window_bits`; they are answered `client_max_window_bits=11`
///   by default: 2 KiB per idle connection, and a client-to-server ratio of 2.36 on the JSON
///   chat of `ws-bench deflate` (3.00 at 15 bits with 32 KiB kept; 1.56 without takeover).
/// - **server window bits** bound the server's LZ77 window (and so the ratio); with zlib-rs
///   they save little memory (see above).
///
/// Idle connections that never received or sent a compressed message hold no context. With
/// the defaults, an idle connection with deflate holds at most 2 KiB more than one without
/// (clients that do not offer `client_max_window_bits` keep 15 bits: up to 32 KiB).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deflate {
    pub(crate) threshold: usize,
    pub(crate) level: u32,
    pub(crate) server_context_takeover: bool,
    pub(crate) client_context_takeover: bool,
    pub(crate) server_max_window_bits: u8,
    /// `None`: the default, [`BROWSER_CLIENT_WINDOW_BITS`] for offers that carry
    /// `client_max_window_bits`, 15 for the others; `Some`: set with the setter.
    pub(crate) client_max_window_bits: Option<u8>,
}

/// The client window answered by default to offers that carry `client_max_window_bits` (every
/// browser's): 2 KiB of history kept per idle connection (see [`Deflate`]).
pub(crate) const BROWSER_CLIENT_WINDOW_BITS: u8 = 11;

impl Default for Deflate {
    fn default() -> Self {
        Deflate {
            threshold: 256,
            level: 6,
            server_context_takeover: false,
            client_context_takeover: true,
            server_max_window_bits: 15,
            client_max_window_bits: None,
        }
    }
}

impl Deflate {
    /// The defaults, as listed on each setter.
    pub fn new() -> Self {
        Deflate::default()
    }

    /// Messages smaller than this many bytes are sent uncompressed (RFC 7692 allows it per
    /// message): compressing a few bytes costs CPU and gains nothing. Default: 256 bytes.
    #[must_use]
    pub fn threshold(mut self, bytes: usize) -> Self {
        self.threshold = bytes;
        self
    }

    /// zlib compression level, 0 (none) to 9 (best). Default: 6. Compression is most of the
    /// cost of a compressed small message: echoing JSON chat messages of 200–1,000 bytes
    /// (`ws-bench deflate`), the server spent about 16 µs per message at level 6 (ratio 1.56
    /// server to client) and about 7 µs at level 1 (ratio 1.23), against 2 µs uncompressed.
    #[must_use]
    pub fn level(mut self, level: u32) -> Self {
        self.level = level.min(9);
        self
    }

    /// Keep the compression context from one message to the next. Default: off, so the
    /// server always answers `server_no_context_takeover`: nothing is kept per connection and
    /// broadcasts are compressed once. On: a better ratio on similar messages, about 370 KiB
    /// per connection at 15 window bits (the client can still ask for no context takeover).
    #[must_use]
    pub fn server_context_takeover(mut self, on: bool) -> Self {
        self.server_context_takeover = on;
        self
    }

    /// Let clients keep their compression context between messages. Default: on (the
    /// server keeps the client's window between messages: at most 2 KiB per connection for
    /// browsers with the default [`client_max_window_bits`](Deflate::client_max_window_bits),
    /// 32 KiB at 15 bits). Off: the server answers `client_no_context_takeover` and keeps
    /// nothing between messages; the client compresses each message alone (a ratio of 1.56
    /// instead of 2.36 on `ws-bench deflate`'s JSON chat).
    #[must_use]
    pub fn client_context_takeover(mut self, on: bool) -> Self {
        self.client_context_takeover = on;
        self
    }

    /// Largest LZ77 window the server compresses with, as a power of two, 8 to 15. Default:
    /// 15 (32 KiB). Below 15 it is announced as `server_max_window_bits`. zlib cannot
    /// compress with 8 bits; it uses 9 and keeps its distances within 256 bytes.
    #[must_use]
    pub fn server_max_window_bits(mut self, bits: u8) -> Self {
        self.server_max_window_bits = bits.clamp(8, 15);
        self
    }

    /// Largest LZ77 window clients may compress with, 8 to 15.
    ///
    /// Default: 11 (2 KiB) for clients whose offer carries `client_max_window_bits` (every
    /// browser's), answered as `client_max_window_bits=11`; 15 for the others, which cannot
    /// be bounded (RFC 7692 §7.1.2.2) and are accepted as they are, and for clients without
    /// context takeover (nothing is kept between their messages, so the bound would only
    /// cost ratio). With client context takeover an idle connection keeps the last
    /// `2^bits` bytes the client sent (see [`Deflate`]): 2 KiB at 11 bits, 4 KiB at 12,
    /// 32 KiB at 15; `ws-bench deflate` measured 6.6 KiB per idle connection in all at 11
    /// bits after 64 chat messages each way, 37.0 KiB at 15 (4.2 without deflate). On that
    /// JSON chat (200–1,000 B messages, zlib level 6 on the client), client-to-server ratios
    /// were 1.55 at 9 bits, 1.92 at 10, 2.36 at 11, 2.65 at 12, 2.79 at 13, 2.90 at 14 and
    /// 3.00 at 15 (1.56 without context takeover). Priming a context with the window costs
    /// the server about 1 µs per compressed message below 15 bits, 3 µs at 15.
    ///
    /// Set, the bound applies to every client: below 15, only offers that carry
    /// `client_max_window_bits` can be accepted and the others are declined; `15` accepts
    /// every offer at 15 bits (the default before 11 was: a better ratio on similar messages,
    /// up to 32 KiB kept per idle connection).
    #[must_use]
    pub fn client_max_window_bits(mut self, bits: u8) -> Self {
        self.client_max_window_bits = Some(bits.clamp(8, 15));
        self
    }

    /// The size threshold.
    pub fn get_threshold(&self) -> usize {
        self.threshold
    }
}

/// What was agreed with one client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Negotiated {
    pub(crate) server_no_context_takeover: bool,
    pub(crate) client_no_context_takeover: bool,
    pub(crate) server_window_bits: u8,
    pub(crate) client_window_bits: u8,
    pub(crate) threshold: usize,
    pub(crate) level: u32,
    /// The `Sec-WebSocket-Extensions` answer.
    pub(crate) header: String,
}

/// One offer's parameters, as parsed.
#[derive(Default)]
struct Offer {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// Offered, with or without a value.
    client_max_window_bits_offered: bool,
    /// Its value, when it had one.
    client_max_window_bits: Option<u8>,
}

/// Accepts the first `permessage-deflate` offer these settings can take, if any.
pub(crate) fn negotiate(config: &Deflate, headers: &HeaderMap) -> Option<Negotiated> {
    let values = headers.get_all(http::header::SEC_WEBSOCKET_EXTENSIONS);
    for value in values {
        let Ok(value) = value.to_str() else { continue };
        for offer in value.split(',') {
            let mut parts = offer.split(';');
            let name = parts.next().unwrap_or("").trim();
            if !name.eq_ignore_ascii_case("permessage-deflate") {
                continue;
            }
            let Some(offer) = parse_offer(parts) else {
                continue;
            };
            if let Some(negotiated) = accept(config, &offer) {
                return Some(negotiated);
            }
        }
    }
    None
}

/// Parses the parameters of one offer; `None` for a malformed or duplicate parameter or an
/// unknown one (the offer is declined).
fn parse_offer<'a>(params: impl Iterator<Item = &'a str>) -> Option<Offer> {
    let mut offer = Offer::default();
    for param in params {
        let (name, value) = match param.split_once('=') {
            Some((name, value)) => {
                let value = value.trim();
                let value = value
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(value);
                (name.trim(), Some(value))
            }
            None => (param.trim(), None),
        };
        match name.to_ascii_lowercase().as_str() {
            "server_no_context_takeover"
                if value.is_none() && !offer.server_no_context_takeover =>
            {
                offer.server_no_context_takeover = true;
            }
            "client_no_context_takeover"
                if value.is_none() && !offer.client_no_context_takeover =>
            {
                offer.client_no_context_takeover = true;
            }
            "server_max_window_bits" if offer.server_max_window_bits.is_none() => {
                offer.server_max_window_bits = Some(window_bits(value?)?);
            }
            "client_max_window_bits" if !offer.client_max_window_bits_offered => {
                offer.client_max_window_bits_offered = true;
                if let Some(value) = value {
                    offer.client_max_window_bits = Some(window_bits(value)?);
                }
            }
            _ => return None,
        }
    }
    Some(offer)
}

/// 8 to 15, in decimal without leading zeros.
fn window_bits(value: &str) -> Option<u8> {
    if value.is_empty() || value.starts_with('0') || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse::<u8>().ok().filter(|b| (8..=15).contains(b))
}

fn accept(config: &Deflate, offer: &Offer) -> Option<Negotiated> {
    let server_window_bits = offer
        .server_max_window_bits
        .map_or(config.server_max_window_bits, |b| {
            b.min(config.server_max_window_bits)
        });
    let client_no_context_takeover =
        offer.client_no_context_takeover || !config.client_context_takeover;
    // The default bound saves what is kept between messages: nothing is without takeover,
    // where a smaller window would only cost ratio.
    let default_bound = if client_no_context_takeover {
        15
    } else {
        BROWSER_CLIENT_WINDOW_BITS
    };
    let client_window_bits = if offer.client_max_window_bits_offered {
        offer
            .client_max_window_bits
            .unwrap_or(15)
            .min(config.client_max_window_bits.unwrap_or(default_bound))
    } else if config.client_max_window_bits.is_some_and(|bits| bits < 15) {
        // The client may use 15 bits: decline when the settings bound it lower.
        return None;
    } else {
        15
    };
    let server_no_context_takeover =
        offer.server_no_context_takeover || !config.server_context_takeover;
    let mut header = String::from("permessage-deflate");
    if server_no_context_takeover {
        header.push_str("; server_no_context_takeover");
    }
    if client_no_context_takeover {
        header.push_str("; client_no_context_takeover");
    }
    if offer.server_max_window_bits.is_some() || server_window_bits < 15 {
        let _ = write!(header, "; server_max_window_bits={server_window_bits}");
    }
    if offer.client_max_window_bits_offered && client_window_bits < 15 {
        let _ = write!(header, "; client_max_window_bits={client_window_bits}");
    }
    Some(Negotiated {
        server_no_context_takeover,
        client_no_context_takeover,
        server_window_bits,
        client_window_bits,
        threshold: config.threshold,
        level: config.level,
        header,
    })
}

/// The four bytes a sync flush ends with, removed on the wire (RFC 7692 §7.2.1).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// zlib's deflate takes 9 to 15 window bits; with 9 its distances stay within 256 bytes
/// (the window minus the lookahead), so it serves an 8-bit agreement too.
fn new_compress(level: u32, bits: u8) -> Compress {
    Compress::new_with_window_bits(Compression::new(level), false, bits.max(9))
}

/// Compresses one whole message with a sync flush and strips the trailing `00 00 ff ff`.
fn compress(compress: &mut Compress, payload: &[u8]) -> Bytes {
    let mut out: Vec<u8> = Vec::with_capacity(payload.len() / 2 + 64);
    let start = compress.total_in();
    loop {
        if out.capacity() - out.len() < 64 {
            out.reserve(out.capacity().max(256));
        }
        let consumed = usize::try_from(compress.total_in() - start).unwrap_or(usize::MAX);
        // Errors only on misuse of the stream (a buffer error is "no progress").
        let _ = compress.compress_vec(&payload[consumed..], &mut out, FlushCompress::Sync);
        let consumed = usize::try_from(compress.total_in() - start).unwrap_or(usize::MAX);
        if consumed >= payload.len() && out.len() < out.capacity() {
            break;
        }
    }
    if out.ends_with(&TAIL) {
        out.truncate(out.len() - TAIL.len());
    }
    Bytes::from(out)
}

thread_local! {
    /// Compression contexts without context takeover, one per (window bits, level) used on
    /// this thread: reset after every message, shared by all the thread's connections.
    static SHARED: RefCell<Vec<(u16, Compress)>> = const { RefCell::new(Vec::new()) };
}

/// The compressor of one connection's writer.
#[derive(Debug)]
pub(crate) struct Deflater {
    negotiated: Negotiated,
    /// With context takeover: this connection's own context, created on first use.
    own: Option<Compress>,
    /// Bytes this deflater has compressed (a broadcast compressed once for all receivers
    /// counts for the one that compressed it): the writer yields to other connections after
    /// each slice of this work.
    pub(crate) deflated: u64,
}

impl Deflater {
    pub(crate) fn new(negotiated: Negotiated) -> Self {
        Deflater {
            negotiated,
            own: None,
            deflated: 0,
        }
    }

    /// The key of compressed bytes that are the same for every receiver with these
    /// parameters.
    fn key(&self) -> u16 {
        u16::from(self.negotiated.server_window_bits.max(9)) << 8
            | u16::try_from(self.negotiated.level).unwrap_or(6)
    }

    /// The compressed payload for this message, or `None` to send it uncompressed: empty,
    /// under the threshold, or (without context takeover) not smaller once compressed.
    pub(crate) fn deflate(&mut self, payload: &Bytes, shared: Option<&Shared>) -> Option<Bytes> {
        let n = &self.negotiated;
        if payload.is_empty() || payload.len() < n.threshold {
            return None;
        }
        if !n.server_no_context_takeover {
            // The peer's inflater shares this context's history: once compressed, the message
            // must be sent compressed, whatever its size.
            let (level, bits) = (n.level, n.server_window_bits);
            let own = self.own.get_or_insert_with(|| new_compress(level, bits));
            self.deflated += payload.len() as u64;
            return Some(compress(own, payload));
        }
        let key = self.key();
        if let Some((k, compressed)) = shared.and_then(|cell| cell.get()) {
            if *k == key {
                return compressed.clone();
            }
        }
        let bytes = SHARED.with(|contexts| {
            let mut contexts = contexts.borrow_mut();
            let index = if let Some(i) = contexts.iter().position(|(k, _)| *k == key) {
                i
            } else {
                contexts.push((key, new_compress(n.level, n.server_window_bits)));
                contexts.len() - 1
            };
            let context = &mut contexts[index].1;
            self.deflated += payload.len() as u64;
            let bytes = compress(context, payload);
            context.reset();
            bytes
        });
        // Incompressible data (already compressed, random) goes out as it is: no bigger on the
        // wire, no inflating for the peer, and no second copy held by queued broadcasts.
        let compressed = (bytes.len() < payload.len()).then_some(bytes);
        if let Some(cell) = shared {
            let _ = cell.set((key, compressed.clone()));
        }
        compressed
    }
}

/// A broadcast's compressed payload, computed once for all receivers without context
/// takeover: the parameters it was compressed with (see `Deflater::key`), and the bytes, or
/// `None` when compressing did not make it smaller.
pub(crate) type Shared = std::sync::OnceLock<(u16, Option<Bytes>)>;

/// Inflated bytes are produced at most this many at a time, so that a message over the limit
/// is detected before it is allocated.
const CHUNK: usize = 16 << 10;

/// The decompressor of one connection's reader.
///
/// A live zlib(-rs) inflate context costs about 46 KiB whatever the window (its state, and a
/// window of 32 KiB that zlib-rs allocates for every window size and touches as it fills), so
/// it lives only while a message is being inflated. With context takeover, the only state a
/// client's next message may refer to is the window: the last `2^bits` bytes inflated, since
/// every message ends at a block boundary (the sync flush). Between messages the inflater
/// *hibernates*: it keeps those bytes alone, and the next message gets a new context primed
/// with them as a dictionary (`inflateSetDictionary`), which decodes exactly as the old context
/// would have.
#[derive(Debug)]
pub(crate) struct Inflater {
    window_bits: u8,
    takeover: bool,
    /// Only while a message is being inflated.
    context: Option<Decompress>,
    /// With context takeover: the last `2^max(bits, 9)` bytes inflated (fewer before that many
    /// have been), the window a hibernating context is rebuilt from. Its capacity never grows
    /// past the window.
    history: Vec<u8>,
    /// Bytes inflated so far: what the rate limit counts besides the bytes on the wire.
    inflated: u64,
}

impl Inflater {
    pub(crate) fn new(negotiated: &Negotiated) -> Self {
        Inflater {
            window_bits: negotiated.client_window_bits,
            takeover: !negotiated.client_no_context_takeover,
            context: None,
            history: Vec::new(),
            inflated: 0,
        }
    }

    /// Bytes inflated so far.
    pub(crate) fn inflated(&self) -> u64 {
        self.inflated
    }

    /// zlib inflates with 9 to 15 bits (flate2 panics below 9); a window larger than the
    /// client's reads every stream the client writes, so an 8-bit agreement gets 9.
    fn bits(&self) -> u8 {
        self.window_bits.max(9)
    }

    /// Inflates one frame's payload of a compressed message onto `out` (and, for the last
    /// frame, the stripped tail), failing with 1009 as soon as `out` would pass `limit`.
    pub(crate) fn inflate(
        &mut self,
        input: &[u8],
        last: bool,
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), ProtocolError> {
        let bits = self.bits();
        let context = match &mut self.context {
            Some(context) => context,
            slot @ None => {
                let mut context = Decompress::new_with_window_bits(false, bits);
                if !self.history.is_empty() {
                    // Raw inflate takes a dictionary at any time; it fails only on misuse.
                    context.set_dictionary(&self.history).map_err(|err| {
                        tracing::debug!("inflate dictionary: {err}");
                        ProtocolError::InvalidCompressedData
                    })?;
                }
                slot.insert(context)
            }
        };
        let before = out.len();
        let fed = feed(context, input, out, limit).and_then(|()| {
            if last {
                feed(context, &TAIL, out, limit)
            } else {
                Ok(())
            }
        });
        self.inflated += (out.len() - before) as u64;
        fed?;
        if self.takeover {
            remember(&mut self.history, &out[before..], 1 << bits);
        }
        if last {
            // Without takeover the client starts afresh for each message; with it, the
            // history is all the next message needs: nothing else is kept while idle.
            self.context = None;
        }
        Ok(())
    }

    /// Bytes held between messages (the history), for tests.
    #[cfg(test)]
    fn kept(&self) -> usize {
        debug_assert!(self.context.is_none());
        self.history.capacity()
    }
}

/// Appends `new` to `history`, keeping only its last `window` bytes; the capacity grows by
/// doubling but never past `window`.
fn remember(history: &mut Vec<u8>, new: &[u8], window: usize) {
    if new.len() >= window {
        history.clear();
        history.reserve_exact(window);
        history.extend_from_slice(&new[new.len() - window..]);
        return;
    }
    let excess = (history.len() + new.len()).saturating_sub(window);
    history.drain(..excess);
    let needed = history.len() + new.len();
    if needed > history.capacity() {
        let want = needed.max(history.capacity() * 2).min(window);
        history.reserve_exact(want - history.len());
    }
    history.extend_from_slice(new);
}

fn feed(
    context: &mut Decompress,
    mut input: &[u8],
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<(), ProtocolError> {
    let mut chunk = [0u8; CHUNK];
    loop {
        // One byte past the limit is enough to know it is passed (saturating: `usize::MAX`
        // is a server without a limit).
        let room = limit.saturating_add(1).saturating_sub(out.len()).min(CHUNK);
        let (before_in, before_out) = (context.total_in(), context.total_out());
        let status = context
            .decompress(input, &mut chunk[..room], FlushDecompress::Sync)
            .map_err(|err| {
                tracing::debug!("inflate failed: {err}");
                ProtocolError::InvalidCompressedData
            })?;
        let read = usize::try_from(context.total_in() - before_in).unwrap_or(usize::MAX);
        let written = usize::try_from(context.total_out() - before_out).unwrap_or(usize::MAX);
        input = &input[read.min(input.len())..];
        if out.len() + written > limit {
            tracing::debug!("Inflated message too big");
            return Err(ProtocolError::MessageTooBig);
        }
        out.extend_from_slice(&chunk[..written]);
        if status == Status::StreamEnd {
            // A final block (BFINAL) ends the stream; what follows would be garbage.
            return if input.is_empty() {
                Ok(())
            } else {
                Err(ProtocolError::InvalidCompressedData)
            };
        }
        if input.is_empty() && written < room {
            return Ok(());
        }
        if read == 0 && written == 0 {
            return Err(ProtocolError::InvalidCompressedData);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn offer(value: &'static str) -> Option<String> {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::SEC_WEBSOCKET_EXTENSIONS,
            HeaderValue::from_static(value),
        );
        negotiate(&Deflate::default(), &headers).map(|n| n.header)
    }

    #[test]
    fn negotiation() {
        assert_eq!(
            offer("permessage-deflate; client_max_window_bits").as_deref(),
            Some("permessage-deflate; server_no_context_takeover; client_max_window_bits=11")
        );
        assert_eq!(
            offer("permessage-deflate; server_max_window_bits=10; client_max_window_bits=\"9\"")
                .as_deref(),
            Some(
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; client_max_window_bits=9"
            )
        );
        assert_eq!(
            offer("permessage-deflate; server_max_window_bits=7, permessage-deflate; client_no_context_takeover").as_deref(),
            Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
            "the first acceptable offer"
        );
        assert_eq!(offer("permessage-deflate; server_max_window_bits"), None);
        assert_eq!(
            offer("permessage-deflate; server_max_window_bits=010"),
            None
        );
        assert_eq!(
            offer("permessage-deflate; client_no_context_takeover; client_no_context_takeover"),
            None
        );
        assert_eq!(
            offer("permessage-deflate; server_no_context_takeover=1"),
            None
        );
        assert_eq!(offer("permessage-deflate; foo"), None);
        assert_eq!(offer("x-webkit-deflate-frame"), None);
    }

    #[test]
    fn round_trip_and_bomb() {
        let negotiated = {
            let mut headers = HeaderMap::new();
            headers.insert(
                http::header::SEC_WEBSOCKET_EXTENSIONS,
                HeaderValue::from_static("permessage-deflate"),
            );
            negotiate(&Deflate::default(), &headers).unwrap()
        };
        let mut deflater = Deflater::new(negotiated.clone());
        let mut inflater = Inflater::new(&negotiated);
        let text = Bytes::from("hello hello hello hello ".repeat(100));
        let packed = deflater.deflate(&text, None).unwrap();
        assert!(packed.len() < 100);
        let mut out = Vec::new();
        inflater.inflate(&packed, true, &mut out, 1 << 20).unwrap();
        assert_eq!(out, text);
        let zeros = Bytes::from(vec![0u8; 1 << 20]);
        let bomb = deflater.deflate(&zeros, None).unwrap();
        let mut out = Vec::new();
        let err = inflater
            .inflate(&bomb, true, &mut out, 64 << 10)
            .unwrap_err();
        assert_eq!(err, ProtocolError::MessageTooBig);
        assert!(out.capacity() <= 128 << 10);
    }

    /// Text-like messages of 1 byte to 3 KiB, words drawn from a small vocabulary (so later
    /// messages repeat earlier ones' content), some longer than the smaller windows.
    fn messages(count: usize) -> Vec<Vec<u8>> {
        const WORDS: [&str; 12] = [
            "alpha",
            "{\"type\":",
            "message",
            "room",
            "42",
            "the",
            "quick",
            "user\":\"",
            "brown",
            "fox",
            "jumps",
            "été",
        ];
        let mut seed = 0x1234_5678_u64;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            usize::try_from(seed >> 33).unwrap()
        };
        (0..count)
            .map(|_| {
                let len = 1 + next() % 3000;
                let mut m = Vec::with_capacity(len + 16);
                while m.len() < len {
                    m.extend_from_slice(WORDS[next() % WORDS.len()].as_bytes());
                    if next() % 7 == 0 {
                        m.extend_from_slice(&(next() % 10_000).to_le_bytes()[..2]);
                    }
                    m.push(b' ');
                }
                m
            })
            .collect()
    }

    fn agreed(bits: u8, takeover: bool) -> Negotiated {
        let mut n = Negotiated {
            server_no_context_takeover: true,
            client_no_context_takeover: !takeover,
            server_window_bits: 15,
            client_window_bits: bits,
            threshold: 0,
            level: 6,
            header: String::new(),
        };
        n.header.push_str("permessage-deflate");
        n
    }

    /// A long stream with context takeover decodes the same whether the inflater hibernates
    /// between messages (ours) or keeps one live context (a plain `Decompress`), at every
    /// window size, whole messages and messages cut into several frames alike; between
    /// messages it keeps at most the window.
    #[test]
    fn a_hibernating_inflater_decodes_as_a_live_one() {
        let messages = messages(300);
        for bits in 8..=15u8 {
            let mut client = new_compress(6, bits);
            let mut ours = Inflater::new(&agreed(bits, true));
            let mut live = Decompress::new_with_window_bits(false, bits.max(9));
            for (i, m) in messages.iter().enumerate() {
                let packed = compress(&mut client, m);
                let mut out = Vec::new();
                if i % 3 == 0 && packed.len() > 2 {
                    // Three frames: the context lives across them, then hibernates.
                    let (a, rest) = packed.split_at(packed.len() / 3);
                    let (b, c) = rest.split_at(rest.len() / 2);
                    ours.inflate(a, false, &mut out, usize::MAX).unwrap();
                    ours.inflate(b, false, &mut out, usize::MAX).unwrap();
                    ours.inflate(c, true, &mut out, usize::MAX).unwrap();
                } else {
                    ours.inflate(&packed, true, &mut out, usize::MAX).unwrap();
                }
                assert_eq!(&out, m, "bits {bits}, message {i}");
                let mut reference = Vec::new();
                feed(&mut live, &packed, &mut reference, usize::MAX).unwrap();
                feed(&mut live, &TAIL, &mut reference, usize::MAX).unwrap();
                assert_eq!(reference, out, "bits {bits}, message {i}");
                assert!(
                    ours.kept() <= 1 << bits.max(9),
                    "bits {bits}: {}",
                    ours.kept()
                );
            }
            assert_eq!(
                ours.kept(),
                1 << bits.max(9),
                "a full window once enough has come"
            );
        }
    }

    /// A message that repeats the previous one is sent as a back-reference into it: the
    /// hibernated history resolves it, and an inflater without that history cannot.
    #[test]
    fn a_message_refers_back_to_the_previous_one() {
        let first =
            b"{\"type\":\"message\",\"room\":\"general\",\"text\":\"never gonna give you up\"}";
        for bits in [9u8, 11, 15] {
            let mut client = new_compress(6, bits);
            let mut ours = Inflater::new(&agreed(bits, true));
            let packed = compress(&mut client, first);
            let mut out = Vec::new();
            ours.inflate(&packed, true, &mut out, usize::MAX).unwrap();
            assert_eq!(out, first);
            assert!(ours.context.is_none(), "hibernating between messages");
            assert_eq!(ours.kept(), first.len());
            let again = compress(&mut client, first);
            assert!(again.len() < 10, "a back-reference: {} bytes", again.len());
            let mut out = Vec::new();
            ours.inflate(&again, true, &mut out, usize::MAX).unwrap();
            assert_eq!(out, first);
            let mut fresh = Inflater::new(&agreed(bits, true));
            let mut out = Vec::new();
            assert_eq!(
                fresh.inflate(&again, true, &mut out, usize::MAX),
                Err(ProtocolError::InvalidCompressedData)
            );
        }
        // Without takeover nothing is kept.
        let mut none = Inflater::new(&agreed(15, false));
        let mut client = new_compress(6, 15);
        let mut out = Vec::new();
        none.inflate(&compress(&mut client, first), true, &mut out, usize::MAX)
            .unwrap();
        assert_eq!((out.as_slice(), none.kept()), (&first[..], 0));
    }

    #[test]
    fn browsers_get_the_small_window_by_default_and_others_fifteen_bits() {
        let at = |config: &Deflate, value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(
                http::header::SEC_WEBSOCKET_EXTENSIONS,
                HeaderValue::from_static(value),
            );
            negotiate(config, &headers).map(|n| (n.client_window_bits, n.header))
        };
        let default = Deflate::default();
        assert_eq!(
            at(&default, "permessage-deflate; client_max_window_bits"),
            Some((
                11,
                "permessage-deflate; server_no_context_takeover; client_max_window_bits=11".into()
            ))
        );
        assert_eq!(
            at(&default, "permessage-deflate; client_max_window_bits=9").map(|a| a.0),
            Some(9)
        );
        assert_eq!(
            at(&default, "permessage-deflate"),
            Some((15, "permessage-deflate; server_no_context_takeover".into()))
        );
        assert_eq!(
            at(
                &default,
                "permessage-deflate; client_no_context_takeover; client_max_window_bits"
            ),
            Some((
                15,
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover".into()
            )),
            "nothing kept between messages: no bound"
        );
        let off = Deflate::new().client_context_takeover(false);
        assert_eq!(
            at(&off, "permessage-deflate; client_max_window_bits").map(|a| a.0),
            Some(15)
        );
        let wide = Deflate::new().client_max_window_bits(15);
        assert_eq!(
            at(&wide, "permessage-deflate; client_max_window_bits"),
            Some((15, "permessage-deflate; server_no_context_takeover".into()))
        );
        let twelve = Deflate::new().client_max_window_bits(12);
        assert_eq!(
            at(&twelve, "permessage-deflate; client_max_window_bits").map(|a| a.0),
            Some(12)
        );
        assert_eq!(at(&twelve, "permessage-deflate"), None);
    }

    /// Found by fuzzing (`fuzz/`): an 8-bit client window panicked in flate2, and a limit of
    /// `usize::MAX` overflowed.
    #[test]
    fn an_eight_bit_window_and_no_limit() {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::SEC_WEBSOCKET_EXTENSIONS,
            HeaderValue::from_static("permessage-deflate; client_max_window_bits=8"),
        );
        let negotiated = negotiate(&Deflate::default(), &headers).unwrap();
        assert_eq!(negotiated.client_window_bits, 8);
        let mut inflater = Inflater::new(&negotiated);
        // "hi" as a stored block ended by a sync flush, its `00 00 ff ff` stripped.
        let hi = [0x00, 0x02, 0x00, 0xfd, 0xff, b'h', b'i', 0x00];
        for limit in [2, usize::MAX] {
            let mut out = Vec::new();
            inflater.inflate(&hi, true, &mut out, limit).unwrap();
            assert_eq!(out, b"hi");
        }
        let mut out = Vec::new();
        let err = inflater.inflate(&hi, true, &mut out, 1).unwrap_err();
        assert_eq!((err, out.len()), (ProtocolError::MessageTooBig, 0));
    }
}
