//! Fuzzes the frame decoder, with and without permessage-deflate, whole and streamed: what it
//! yields keeps its limits and RFC 6455's rules, its errors map to the close codes a peer may
//! be failed with, and how the bytes are cut into reads changes nothing.
//!
//! Input: a settings byte (deflate, its window and context takeover, streaming, the limits),
//! a byte giving the sizes of the reads, then the client's bytes.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use ws_runtime::__fuzz::{DecodeError, Decoder, Event, Inflater};
use ws_runtime::{Close, Message};

/// (max frame, max message): small enough for the fuzzer to cross them, and the "no limit"
/// a server may configure.
const LIMITS: [(usize, usize); 4] = [
    (125, 125),
    (1 << 10, 1 << 12),
    (64, 200),
    (1 << 16, usize::MAX),
];

#[derive(Clone, Copy)]
struct Settings {
    deflate: Option<(u8, bool)>,
    streams: bool,
    max_frame: usize,
    max_message: usize,
}

fuzz_target!(|data: &[u8]| {
    let [settings, reads, stream @ ..] = data else {
        return;
    };
    let (max_frame, max_message) = LIMITS[usize::from(settings >> 6)];
    let settings = Settings {
        deflate: (settings & 1 != 0).then_some((8 + ((settings >> 2) & 7), settings & 2 == 0)),
        streams: settings & 32 != 0,
        max_frame,
        max_message,
    };
    let whole = run(
        settings,
        stream,
        &mut std::iter::repeat(stream.len().max(1)),
    );
    check(settings, &whole);
    // The same bytes in reads of 1 to 16 bytes, in a pattern given by `reads`.
    let mut sizes = (0..8)
        .map(|i| 1 + usize::from((reads.rotate_left(i)) & 15))
        .cycle();
    let cut = run(settings, stream, &mut sizes);
    assert_eq!(whole, cut, "the reads changed what was decoded");
});

/// What a decoder made of the bytes: its events, then its error if it failed.
#[derive(Debug, PartialEq)]
struct Outcome {
    events: Vec<Seen>,
    error: Option<DecodeError>,
    /// Bytes left undecoded when no error stopped it (the start of a frame).
    rest: usize,
}

/// An event in comparable form.
#[derive(Debug, PartialEq)]
enum Seen {
    Text(String),
    Binary(Vec<u8>),
    Begin(bool, Vec<u8>),
    Chunk(Vec<u8>),
    End(Vec<u8>),
    Ping(Vec<u8>),
    Pong,
    Close(Close),
}

fn run(settings: Settings, stream: &[u8], reads: &mut dyn Iterator<Item = usize>) -> Outcome {
    let inflater = settings
        .deflate
        .map(|(bits, takeover)| Inflater::new(bits, takeover).expect("bits within 8 to 15"));
    let mut decoder = Decoder::new(
        settings.max_frame,
        settings.max_message,
        inflater,
        settings.streams,
    );
    let mut buf = BytesMut::new();
    let mut rest = stream;
    let mut events = Vec::new();
    loop {
        let n = reads.next().unwrap_or(1).min(rest.len());
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(event)) => events.push(seen(event)),
                Ok(None) => break,
                Err(error) => {
                    return Outcome {
                        events,
                        error: Some(error),
                        // How much was read when it failed depends on the reads.
                        rest: 0,
                    };
                }
            }
        }
        // Waiting for more: what it waits for is a frame within the frame limit.
        assert!(
            decoder.wanted() <= settings.max_frame + 14,
            "{}",
            decoder.wanted()
        );
        if rest.is_empty() {
            return Outcome {
                events,
                error: None,
                rest: buf.len(),
            };
        }
    }
}

fn seen(event: Event) -> Seen {
    match event {
        Event::Message(Message::Text(text)) => {
            // A `Text` is valid UTF-8 by construction; check the bytes it holds all the same.
            let bytes = text.as_str().as_bytes().to_vec();
            Seen::Text(String::from_utf8(bytes).expect("a text message is UTF-8"))
        }
        Event::Message(Message::Binary(bytes)) => Seen::Binary(bytes.to_vec()),
        Event::Begin { text, chunk } => Seen::Begin(text, chunk.to_vec()),
        Event::Chunk(chunk) => Seen::Chunk(chunk.to_vec()),
        Event::End(chunk) => Seen::End(chunk.to_vec()),
        Event::Ping(payload) => Seen::Ping(payload.to_vec()),
        Event::Pong => Seen::Pong,
        Event::Close(close) => Seen::Close(close),
    }
}

fn check(settings: Settings, outcome: &Outcome) {
    // A streamed message in progress: text or not, and its bytes so far.
    let mut streamed: Option<(bool, Vec<u8>)> = None;
    for event in &outcome.events {
        match event {
            Seen::Text(text) => {
                assert!(streamed.is_none(), "a message inside a streamed one");
                assert!(text.len() <= settings.max_message, "text of {}", text.len());
            }
            Seen::Binary(bytes) => {
                assert!(streamed.is_none(), "a message inside a streamed one");
                assert!(
                    bytes.len() <= settings.max_message,
                    "binary of {}",
                    bytes.len()
                );
            }
            Seen::Begin(text, chunk) => {
                assert!(settings.streams, "fragments given to a collecting decoder");
                assert!(streamed.is_none(), "a message inside a streamed one");
                streamed = Some((*text, chunk.clone()));
            }
            Seen::Chunk(chunk) | Seen::End(chunk) => {
                let (text, so_far) = streamed.as_mut().expect("a fragment outside a message");
                so_far.extend_from_slice(chunk);
                if matches!(event, Seen::End(_)) {
                    if *text {
                        assert!(
                            std::str::from_utf8(so_far).is_ok(),
                            "a streamed text is UTF-8"
                        );
                    }
                    streamed = None;
                }
            }
            Seen::Ping(payload) => assert!(payload.len() <= 125, "ping of {}", payload.len()),
            Seen::Pong => {}
            Seen::Close(close) => {
                if close.code == Close::NO_STATUS {
                    assert!(close.reason.is_empty());
                } else {
                    assert!(Close::is_sendable(close.code), "close code {}", close.code);
                    assert!(
                        close.reason.len() <= 123,
                        "reason of {}",
                        close.reason.len()
                    );
                }
            }
        }
        if let Some((text, so_far)) = &streamed {
            assert!(
                so_far.len() <= settings.max_message,
                "streamed {}",
                so_far.len()
            );
            if *text {
                // Fail-fast UTF-8: what was let through is valid, or a character cut short.
                if let Err(e) = std::str::from_utf8(so_far) {
                    assert!(e.error_len().is_none(), "invalid UTF-8 let through");
                }
            }
        }
    }
    if let Some(error) = &outcome.error {
        let code = error.close.code;
        assert!(
            matches!(
                code,
                Close::PROTOCOL_ERROR | Close::INVALID_DATA | Close::TOO_BIG
            ),
            "{}: close code {code}",
            error.rule
        );
        assert!(!error.close.reason.is_empty() && !error.rule.is_empty());
        if settings.deflate.is_none() {
            assert!(!error.rule.contains("compressed data"), "{}", error.rule);
        }
    }
}
