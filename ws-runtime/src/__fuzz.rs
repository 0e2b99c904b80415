//! Not public API: thin entry points into the protocol internals for the fuzz targets in
//! `fuzz/`. Compiled only with `--cfg fuzzing` (which `cargo fuzz` sets), so it is in no
//! release and no documentation.
//!
//! Each wrapper calls the very code the server runs, in the order the server runs it, and
//! hands out plain values (close codes, header strings) the targets can check.

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap};
use http::{Method, Uri};

use crate::config::Origins;
use crate::handshake::{self, Accept, Reject, Request};
use crate::message::{Close, Message};
use crate::proto::deflate::{self, Deflate};
use crate::proto::{self, ProtocolError};

/// A handshake's outcome: the `101` with its headers, or the refusal.
pub type Handshake = Result<HeaderMap, Reject>;

/// The handshake the server runs for `request` (`server::socket`'s order, without the
/// connection limits and with no `on_handshake`): the RFC 6455 checks, the origin policy,
/// the subprotocol among `protocols`, permessage-deflate when `deflate` is set, and the 101.
pub fn handshake(
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    origins: &Origins,
    protocols: &[String],
    deflate: Option<&Deflate>,
) -> Handshake {
    let key = handshake::check_protocol(&method, &headers)?;
    if !handshake::origin_allowed(origins, &headers) {
        return Err(Reject::forbidden("Origin not allowed."));
    }
    let request = Request::new(method, uri, headers, None);
    let accept = Accept::new(&request);
    let config = crate::Config::new().protocols(protocols.iter().cloned());
    let protocol = handshake::choose_protocol(&config, &request, &accept);
    let extensions = deflate.and_then(|d| deflate::negotiate(d, request.headers()));
    let response = handshake::switching_protocols(
        &key,
        accept,
        protocol.as_deref(),
        extensions.as_ref().map(|n| n.header.as_str()),
    )?;
    Ok(response.headers().clone())
}

/// What permessage-deflate negotiation agreed on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Agreement {
    /// `server_no_context_takeover`.
    pub server_no_context_takeover: bool,
    /// `client_no_context_takeover`.
    pub client_no_context_takeover: bool,
    /// The server's window.
    pub server_window_bits: u8,
    /// The client's window.
    pub client_window_bits: u8,
    /// The compression level.
    pub level: u32,
    /// The `Sec-WebSocket-Extensions` answer.
    pub header: String,
}

/// Negotiates the `Sec-WebSocket-Extensions` offers in `headers` with these settings.
pub fn negotiate(config: &Deflate, headers: &HeaderMap) -> Option<Agreement> {
    deflate::negotiate(config, headers).map(|n| Agreement {
        server_no_context_takeover: n.server_no_context_takeover,
        client_no_context_takeover: n.client_no_context_takeover,
        server_window_bits: n.server_window_bits,
        client_window_bits: n.client_window_bits,
        level: n.level,
        header: n.header,
    })
}

/// An agreement for a client compressing with `client_window_bits` (8 to 15), with or without
/// context takeover, and a server with context takeover (so that every message is compressed).
fn agreement(client_window_bits: u8, client_takeover: bool) -> Option<deflate::Negotiated> {
    let mut offer = format!("permessage-deflate; client_max_window_bits={client_window_bits}");
    if !client_takeover {
        offer.push_str("; client_no_context_takeover");
    }
    let mut headers = HeaderMap::new();
    headers.insert(header::SEC_WEBSOCKET_EXTENSIONS, offer.parse().ok()?);
    let config = Deflate::new().server_context_takeover(true);
    deflate::negotiate(&config, &headers)
}

/// The decompressor of a connection's reader.
#[derive(Debug)]
pub struct Inflater(deflate::Inflater);

impl Inflater {
    /// For a client compressing with `window_bits` (8 to 15; `None` outside).
    pub fn new(window_bits: u8, takeover: bool) -> Option<Self> {
        agreement(window_bits, takeover).map(|n| Inflater(deflate::Inflater::new(&n)))
    }

    /// Inflates one frame of a compressed message onto `out`, within `limit` bytes in all;
    /// the close code on failure.
    pub fn inflate(
        &mut self,
        input: &[u8],
        last: bool,
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), u16> {
        self.0
            .inflate(input, last, out, limit)
            .map_err(ProtocolError::code)
    }
}

/// The compressor a client would use with the same agreement (the server's, with context
/// takeover: every message is compressed).
#[derive(Debug)]
pub struct Deflater(deflate::Deflater);

impl Deflater {
    /// Compressing with `window_bits` (8 to 15; `None` outside).
    pub fn new(window_bits: u8, takeover: bool) -> Option<Self> {
        let mut n = agreement(window_bits, takeover)?;
        // The server's side of the same agreement, compressing as a client would.
        n.server_window_bits = n.client_window_bits;
        n.server_no_context_takeover = false;
        n.threshold = 0;
        Some(Deflater(deflate::Deflater::new(n)))
    }

    /// One whole message compressed (its `00 00 ff ff` tail stripped); `None` when empty.
    pub fn deflate(&mut self, payload: &Bytes) -> Option<Bytes> {
        self.0.deflate(payload, None)
    }
}

/// What the decoder gives.
#[derive(Debug)]
pub enum Event {
    /// A whole message.
    Message(Message),
    /// The first fragment of a streamed message.
    Begin {
        /// A text message.
        text: bool,
        /// Its bytes.
        chunk: Bytes,
    },
    /// A middle fragment of a streamed message.
    Chunk(Bytes),
    /// The last fragment of a streamed message.
    End(Bytes),
    /// A ping and its payload.
    Ping(Bytes),
    /// A pong.
    Pong,
    /// The peer's close.
    Close(Close),
}

/// Why the decoder failed the connection: the close it sends, and the rule (its `Display`).
#[derive(Debug, PartialEq, Eq)]
pub struct DecodeError {
    /// The close frame the server fails the connection with.
    pub close: Close,
    /// Which rule was broken.
    pub rule: String,
}

/// The frame decoder of a connection's reader.
#[derive(Debug)]
pub struct Decoder(proto::Decoder);

impl Decoder {
    /// With these limits, inflating with `inflater` when permessage-deflate was negotiated,
    /// and giving fragments one by one when `streams`.
    pub fn new(
        max_frame: usize,
        max_message: usize,
        inflater: Option<Inflater>,
        streams: bool,
    ) -> Self {
        let limits = proto::Limits {
            max_frame,
            max_message,
        };
        Decoder(proto::Decoder::with_inflater(limits, inflater.map(|i| i.0)).streaming(streams))
    }

    /// The next event from the front of `buf`, `Ok(None)` until more bytes arrive.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Event>, DecodeError> {
        let event = self.0.decode(buf).map_err(|e| DecodeError {
            close: e.close(),
            rule: e.to_string(),
        })?;
        Ok(event.map(|event| match event {
            proto::Event::Message(m) => Event::Message(m),
            proto::Event::Begin { text, chunk } => Event::Begin { text, chunk },
            proto::Event::Chunk(c) => Event::Chunk(c),
            proto::Event::End(c) => Event::End(c),
            proto::Event::Ping(p) => Event::Ping(p),
            proto::Event::Pong => Event::Pong,
            proto::Event::Close(c) => Event::Close(c),
        }))
    }

    /// Bytes the buffer must hold for the frame at its front (0 before its header is there).
    pub fn wanted(&self) -> usize {
        self.0.wanted()
    }
}
