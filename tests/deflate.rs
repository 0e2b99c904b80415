//! permessage-deflate (RFC 7692) with a raw client that offers it and writes its frames by
//! hand: the negotiation answer, compressed frames on the wire (RSV1), a zip bomb closed with
//! 1009 and RSV1 without negotiation closed with 1002.
//!
//! The client compresses with stored and fixed-Huffman deflate blocks built here, so that the
//! test depends on no compression library; the server's compressed replies are checked by
//! sending them back (the server inflates them and, compressing each message on its own,
//! answers with the very same bytes).

use http::Version;
use tokio::io::AsyncWriteExt;
use ws::test::TestServer;
use ws::test::raw::{self, Frame, Upgraded};
use ws::{ClientId, Config, Deflate, Endpoint, Message, Origins, websocket};

struct Echo;

#[websocket]
impl Echo {
    fn on_data(&self, endpoint: &Endpoint, id: ClientId, msg: Message) {
        let _ = endpoint.send(id, msg);
    }
}

/// Serves [`Echo`] with this configuration (any origin) on 127.0.0.1.
async fn serve(config: Config) -> TestServer {
    let socket = ws::Socket::with_config(Echo, config.origins(Origins::Any));
    ws::test::serve(&socket).await
}

/// Connects, offering these extensions; returns the stream and the answer's
/// `Sec-WebSocket-Extensions`.
async fn connect(server: &TestServer, offer: Option<&str>) -> (Upgraded, Option<String>) {
    let mut request = server.raw("/");
    if let Some(offer) = offer {
        request = request.header("sec-websocket-extensions", offer);
    }
    let (reply, tcp) = request.upgrade().await.unwrap();
    assert_eq!(reply.version(), Version::HTTP_11);
    assert_eq!(reply.status(), 101);
    let extensions = reply.header("sec-websocket-extensions").map(str::to_owned);
    (tcp, extensions)
}

/// Reads one server frame (unmasked, or it fails): its first byte and its payload.
async fn read_frame(tcp: &mut Upgraded) -> (u8, Vec<u8>) {
    let frame = raw::read_frame(tcp).await.unwrap();
    (frame.first_byte(), frame.payload)
}

/// The close code of the next frame, which must be a close frame.
async fn read_close_code(tcp: &mut Upgraded) -> u16 {
    let (first, payload) = read_frame(tcp).await;
    assert_eq!(first, 0x88, "a close frame");
    u16::from_be_bytes([payload[0], payload[1]])
}

/// A message compressed as one stored (uncompressed) deflate block, as permessage-deflate
/// sends it: ended by a sync flush (an empty stored block) without its `00 00 ff ff`, which
/// leaves the empty block's header byte.
fn stored(data: &[u8]) -> Vec<u8> {
    let len = u16::try_from(data.len()).unwrap();
    let mut out = vec![0x00];
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&(!len).to_le_bytes());
    out.extend_from_slice(data);
    out.push(0x00);
    out
}

/// Deflate's bit order: fields LSB first, Huffman codes MSB first.
#[derive(Default)]
struct Bits {
    out: Vec<u8>,
    acc: u32,
    n: u32,
}

impl Bits {
    fn put(&mut self, value: u32, count: u32) {
        for i in 0..count {
            self.acc |= ((value >> i) & 1) << self.n;
            self.n += 1;
            if self.n == 8 {
                self.out.push(u8::try_from(self.acc).unwrap());
                self.acc = 0;
                self.n = 0;
            }
        }
    }

    fn code(&mut self, code: u32, len: u32) {
        for i in (0..len).rev() {
            self.put((code >> i) & 1, 1);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            self.out.push(u8::try_from(self.acc).unwrap());
        }
        self.out
    }
}

/// Deflate's length codes 257..=285: (code, base length, extra bits).
const LENGTHS: [(u32, u32, u32); 29] = [
    (257, 3, 0),
    (258, 4, 0),
    (259, 5, 0),
    (260, 6, 0),
    (261, 7, 0),
    (262, 8, 0),
    (263, 9, 0),
    (264, 10, 0),
    (265, 11, 1),
    (266, 13, 1),
    (267, 15, 1),
    (268, 17, 1),
    (269, 19, 2),
    (270, 23, 2),
    (271, 27, 2),
    (272, 31, 2),
    (273, 35, 3),
    (274, 43, 3),
    (275, 51, 3),
    (276, 59, 3),
    (277, 67, 4),
    (278, 83, 4),
    (279, 99, 4),
    (280, 115, 4),
    (281, 131, 5),
    (282, 163, 5),
    (283, 195, 5),
    (284, 227, 5),
    (285, 258, 0),
];

/// Deflate's distance codes 0..=29: base distance and extra bits.
const DISTANCES: [(u32, u32); 30] = [
    (1, 0),
    (2, 0),
    (3, 0),
    (4, 0),
    (5, 1),
    (7, 1),
    (9, 2),
    (13, 2),
    (17, 3),
    (25, 3),
    (33, 4),
    (49, 4),
    (65, 5),
    (97, 5),
    (129, 6),
    (193, 6),
    (257, 7),
    (385, 7),
    (513, 8),
    (769, 8),
    (1025, 9),
    (1537, 9),
    (2049, 10),
    (3073, 10),
    (4097, 11),
    (6145, 11),
    (8193, 12),
    (12289, 12),
    (16385, 13),
    (24577, 13),
];

/// A piece of a fixed-Huffman block: literal bytes, or a copy of `len` (3 to 258) bytes from
/// `dist` bytes back, possibly into earlier messages (the client's context kept).
enum Piece<'a> {
    Literals(&'a [u8]),
    Copy { len: u32, dist: u32 },
}

impl Bits {
    /// One literal/length symbol with the fixed Huffman code.
    fn symbol(&mut self, symbol: u32) {
        match symbol {
            0..=143 => self.code(0x30 + symbol, 8),
            144..=255 => self.code(0x190 + symbol - 144, 9),
            256..=279 => self.code(symbol - 256, 7),
            _ => self.code(0xC0 + symbol - 280, 8),
        }
    }
}

/// A message as one fixed-Huffman block of `pieces`, ended by a sync flush without its
/// `00 00 ff ff`: what a client that keeps its context sends when it refers back.
fn fixed(pieces: &[Piece<'_>]) -> Vec<u8> {
    let mut bits = Bits::default();
    bits.put(0, 1); // not BFINAL
    bits.put(1, 2); // fixed Huffman
    for piece in pieces {
        match *piece {
            Piece::Literals(bytes) => bytes.iter().for_each(|&b| bits.symbol(u32::from(b))),
            Piece::Copy { len, dist } => {
                let &(code, base, extra) = LENGTHS.iter().rev().find(|l| l.1 <= len).unwrap();
                bits.symbol(code);
                bits.put(len - base, extra);
                let (i, &(base, extra)) = DISTANCES
                    .iter()
                    .enumerate()
                    .rev()
                    .find(|d| d.1.0 <= dist)
                    .unwrap();
                bits.code(u32::try_from(i).unwrap(), 5);
                bits.put(dist - base, extra);
            }
        }
    }
    bits.symbol(256); // end of block
    bits.put(0, 3); // an empty stored block: the sync flush, its LEN/NLEN left to the server
    bits.finish()
}

/// A zip bomb: one fixed-Huffman block of a literal `a` then `matches` copies of 258 bytes at
/// distance 1 (13 bits each), ended by a sync flush without its `00 00 ff ff`.
fn bomb(matches: usize) -> Vec<u8> {
    let mut bits = Bits::default();
    bits.put(0, 1); // BFINAL
    bits.put(1, 2); // fixed Huffman
    bits.code(0x30 + u32::from(b'a'), 8);
    for _ in 0..matches {
        bits.code(0xC0 + (285 - 280), 8); // length 258
        bits.code(0, 5); // distance 1
    }
    bits.code(0, 7); // end of block
    bits.put(0, 3); // an empty stored block: the sync flush, its LEN/NLEN left to the server
    bits.finish()
}

#[tokio::test]
async fn negotiation_answers_the_first_acceptable_offer() {
    let server = serve(Config::new().deflate(Some(Deflate::new()))).await;
    let (_, answer) = connect(&server, Some("permessage-deflate; client_max_window_bits")).await;
    assert_eq!(
        answer.as_deref(),
        Some("permessage-deflate; server_no_context_takeover; client_max_window_bits=11"),
        "a browser's offer: its window bounded to 11 bits by default"
    );
    let (_, answer) = connect(
        &server,
        Some(
            "permessage-deflate; server_max_window_bits=7, \
             permessage-deflate; server_max_window_bits=10; client_max_window_bits=12, \
             permessage-deflate",
        ),
    )
    .await;
    assert_eq!(
        answer.as_deref(),
        Some(
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; \
             client_max_window_bits=11"
        ),
        "the invalid first offer is declined, the second accepted (12 client bits bounded to 11)"
    );
    let (_, answer) = connect(&server, Some("permessage-deflate")).await;
    assert_eq!(
        answer.as_deref(),
        Some("permessage-deflate; server_no_context_takeover"),
        "an offer without client_max_window_bits cannot be bounded: accepted at 15 bits"
    );
    let (_, answer) = connect(&server, Some("permessage-deflate; mystery_param")).await;
    assert_eq!(answer, None, "an unknown parameter declines the only offer");
    let (_, answer) = connect(
        &server,
        Some("permessage-deflate; client_no_context_takeover; client_no_context_takeover"),
    )
    .await;
    assert_eq!(answer, None, "a duplicate parameter declines the offer");

    let off = serve(Config::new()).await;
    let (_, answer) = connect(&off, Some("permessage-deflate")).await;
    assert_eq!(answer, None, "off by default");

    let takeover = serve(
        Config::new().deflate(Some(
            Deflate::new()
                .server_context_takeover(true)
                .client_context_takeover(false),
        )),
    )
    .await;
    let (_, answer) = connect(&takeover, Some("permessage-deflate")).await;
    assert_eq!(
        answer.as_deref(),
        Some("permessage-deflate; client_no_context_takeover")
    );
    server.shutdown().await;
    off.shutdown().await;
    takeover.shutdown().await;
}

#[tokio::test]
async fn messages_travel_compressed_with_rsv1() {
    let server = serve(Config::new().deflate(Some(Deflate::new()))).await;
    let (mut tcp, answer) = connect(&server, Some("permessage-deflate")).await;
    assert!(answer.is_some());
    let text = "hello, compressed world! ".repeat(60);

    // A compressed text message: inflated by the server, echoed compressed.
    tcp.write_all(&Frame::text(stored(text.as_bytes())).rsv1(true).encode())
        .await
        .unwrap();
    let (first, compressed) = read_frame(&mut tcp).await;
    assert_eq!(first, 0xC1, "FIN, RSV1, text");
    assert!(
        compressed.len() < text.len() / 10,
        "{} bytes on the wire for {}",
        compressed.len(),
        text.len()
    );

    // The server's bytes, sent back: the server inflates them to the same text and,
    // compressing every message on its own, answers with the same bytes.
    tcp.write_all(&Frame::text(compressed.clone()).rsv1(true).encode())
        .await
        .unwrap();
    let (first, again) = read_frame(&mut tcp).await;
    assert_eq!((first, again), (0xC1, compressed.clone()));

    // A fragmented compressed message: RSV1 on the first frame only.
    let whole = stored(text.as_bytes());
    let (a, b) = whole.split_at(100);
    let mut bytes = Frame::text(a).rsv1(true).fin(false).encode();
    bytes.extend(Frame::ping("ping").encode());
    bytes.extend(Frame::continuation(b).encode());
    tcp.write_all(&bytes).await.unwrap();
    assert_eq!(read_frame(&mut tcp).await, (0x8A, b"ping".to_vec()));
    assert_eq!(read_frame(&mut tcp).await, (0xC1, compressed));

    // Under the threshold: sent plain, whether it came compressed or not.
    tcp.write_all(&Frame::text(stored(b"small")).rsv1(true).encode())
        .await
        .unwrap();
    assert_eq!(read_frame(&mut tcp).await, (0x81, b"small".to_vec()));
    tcp.write_all(&Frame::binary([7; 40]).encode())
        .await
        .unwrap();
    assert_eq!(read_frame(&mut tcp).await, (0x82, vec![7; 40]));
    drop(tcp);
    server.shutdown().await;
}

#[tokio::test]
async fn a_zip_bomb_closes_with_1009() {
    let server = serve(
        Config::new()
            .max_message_size(64 << 10)
            .deflate(Some(Deflate::new())),
    )
    .await;
    let (mut tcp, _) = connect(&server, Some("permessage-deflate")).await;
    // About 6.5 KiB that inflate to 1 MiB.
    let big = bomb(4064);
    assert!(big.len() < 7 << 10);
    tcp.write_all(&Frame::binary(big).rsv1(true).encode())
        .await
        .unwrap();
    assert_eq!(read_close_code(&mut tcp).await, 1009);
    drop(tcp);

    // Under the limit, the same construction is a fine message.
    let (mut tcp, _) = connect(&server, Some("permessage-deflate")).await;
    tcp.write_all(&Frame::binary(bomb(100)).rsv1(true).encode())
        .await
        .unwrap();
    let (first, _) = read_frame(&mut tcp).await;
    assert_eq!(first, 0xC2);
    drop(tcp);
    server.shutdown().await;
}

#[tokio::test]
async fn rsv1_without_negotiation_closes_with_1002() {
    // Deflate on, but this client offered nothing.
    let server = serve(Config::new().deflate(Some(Deflate::new()))).await;
    let (mut tcp, answer) = connect(&server, None).await;
    assert_eq!(answer, None);
    tcp.write_all(&Frame::text(stored(b"hi")).rsv1(true).encode())
        .await
        .unwrap();
    assert_eq!(read_close_code(&mut tcp).await, 1002);
    drop(tcp);

    // Negotiated, but RSV1 on a control frame or a continuation is still an error.
    let (mut tcp, _) = connect(&server, Some("permessage-deflate")).await;
    tcp.write_all(&Frame::ping("").rsv1(true).encode())
        .await
        .unwrap();
    assert_eq!(read_close_code(&mut tcp).await, 1002);
    drop(tcp);
    let (mut tcp, _) = connect(&server, Some("permessage-deflate")).await;
    let mut bytes = Frame::text("a").fin(false).encode();
    bytes.extend(Frame::continuation("b").rsv1(true).encode());
    tcp.write_all(&bytes).await.unwrap();
    assert_eq!(read_close_code(&mut tcp).await, 1002);
    drop(tcp);
    server.shutdown().await;
}

/// Found by fuzzing (`fuzz/`, target `decode`): an agreed client window of 8 bits made the
/// first compressed message panic the connection's reader, zlib inflating with 9 to 15 bits
/// only. It is inflated with a 9-bit window, which reads every stream an 8-bit one writes.
#[tokio::test]
async fn an_eight_bit_client_window_is_inflated() {
    let server = serve(Config::new().deflate(Some(Deflate::new()))).await;
    let (mut tcp, answer) = connect(
        &server,
        Some("permessage-deflate; client_max_window_bits=8"),
    )
    .await;
    assert_eq!(
        answer.as_deref(),
        Some("permessage-deflate; server_no_context_takeover; client_max_window_bits=8")
    );
    for _ in 0..2 {
        tcp.write_all(&Frame::text(stored(b"eight bits")).rsv1(true).encode())
            .await
            .unwrap();
        assert_eq!(read_frame(&mut tcp).await, (0x81, b"eight bits".to_vec()));
    }
    drop(tcp);
    server.shutdown().await;
}

/// Found by fuzzing (`fuzz/`, targets `inflate` and `decode`): with `max_message_size` set to
/// `usize::MAX` (no limit), the inflater's "one byte past the limit" overflowed: a panic in a
/// debug build, every compressed message failed with 1007 in a release build.
#[tokio::test]
async fn no_message_limit_still_inflates() {
    let server = serve(
        Config::new()
            .max_message_size(usize::MAX)
            .deflate(Some(Deflate::new())),
    )
    .await;
    let (mut tcp, _) = connect(&server, Some("permessage-deflate")).await;
    tcp.write_all(&Frame::binary(bomb(100)).rsv1(true).encode())
        .await
        .unwrap();
    let (first, _) = read_frame(&mut tcp).await;
    assert_eq!(first, 0xC2, "the message echoed, compressed");
    tcp.write_all(&Frame::text(stored(b"unlimited")).rsv1(true).encode())
        .await
        .unwrap();
    assert_eq!(read_frame(&mut tcp).await, (0x81, b"unlimited".to_vec()));
    drop(tcp);
    server.shutdown().await;
}

/// The rate limit counts what compressed messages inflate to, not only their bytes on the
/// wire: six messages of 64 KiB, about 420 bytes each once compressed and sent in one write,
/// are read at the limit's 128 KiB/s (one second's burst, then two more seconds), and the
/// client is slowed, not closed.
#[tokio::test]
async fn compressed_messages_are_paced_by_their_inflated_size() {
    let limit = ws::RateLimit {
        bytes_per_second: 128 << 10,
        frames_per_second: 10_000,
    };
    let server = serve(
        Config::new()
            .rate_limit(Some(limit))
            .deflate(Some(Deflate::new())),
    )
    .await;
    let (mut tcp, _) = connect(&server, Some("permessage-deflate")).await;
    // 1 + 254 × 258 = 65,533 bytes of `a`.
    let message = bomb(254);
    assert!(message.len() < 512);
    let mut write = Vec::new();
    for _ in 0..6 {
        write.extend(Frame::binary(message.clone()).rsv1(true).encode());
    }
    let started = std::time::Instant::now();
    tcp.write_all(&write).await.unwrap();
    for _ in 0..6 {
        let (first, _) = read_frame(&mut tcp).await;
        assert_eq!(first, 0xC2, "echoed, compressed");
    }
    // 384 KiB inflated at 128 KiB/s with a one-second burst: about two seconds.
    let elapsed = started.elapsed();
    assert!(
        elapsed >= std::time::Duration::from_millis(1500),
        "{elapsed:?}"
    );
    drop(tcp);
    server.shutdown().await;
}

/// Compressing in slices loses nothing: a burst of messages whose compression ends a slice
/// in the middle of what the writer took from the queue all arrive (sent plain, echoed
/// compressed: 64 KiB each, four to a slice).
#[tokio::test]
async fn a_burst_of_compressed_messages_arrives_whole() {
    let server = serve(Config::new().rate_limit(None).deflate(Some(Deflate::new()))).await;
    let (mut tcp, _) = connect(&server, Some("permessage-deflate")).await;
    let mut write = Vec::new();
    for i in 0..60u8 {
        write.extend(Frame::binary(vec![i; 64 << 10]).encode());
    }
    tcp.write_all(&write).await.unwrap();
    for i in 0..60 {
        let (first, _) = read_frame(&mut tcp).await;
        assert_eq!(first, 0xC2, "echo {i}");
    }
    drop(tcp);
    server.shutdown().await;
}

/// A browser-like client (it offers `client_max_window_bits` and keeps its context) gets the
/// default answer, `client_max_window_bits=11`, and every message it sends referring back
/// into its earlier messages (within 2 KiB) is inflated right: the server, which keeps only
/// that window between messages, echoes each exactly (plain, over a high threshold).
#[tokio::test]
async fn a_client_keeping_its_context_is_echoed_right_with_the_default_window() {
    let server = serve(Config::new().deflate(Some(Deflate::new().threshold(1 << 20)))).await;
    let (mut tcp, answer) =
        connect(&server, Some("permessage-deflate; client_max_window_bits")).await;
    assert_eq!(
        answer.as_deref(),
        Some("permessage-deflate; server_no_context_takeover; client_max_window_bits=11")
    );
    // 258 bytes of chat text, sent once as a stored block, then copied from the previous
    // message (258 bytes back past this message's prefix) by every later message.
    let text: Vec<u8> = "{\"type\":\"message\",\"room\":\"general\",\"text\":\"hello there\"} "
        .repeat(5)
        .into_bytes()[..258]
        .to_vec();
    let first: Vec<u8> = [b"0:".as_slice(), &text].concat();
    tcp.write_all(&Frame::text(stored(&first)).rsv1(true).encode())
        .await
        .unwrap();
    assert_eq!(read_frame(&mut tcp).await, (0x81, first.clone()));
    let mut previous = first;
    for i in 1..8u8 {
        let prefix = [b'0' + i, b':'];
        let packed = if i % 2 == 1 {
            // The whole text from the previous message.
            fixed(&[
                Piece::Literals(&prefix),
                Piece::Copy {
                    len: 258,
                    dist: 2 + 258,
                },
            ])
        } else {
            // Its first 100 bytes from two messages back (this prefix, the previous message,
            // the older one's text: 2 + 260 + 258 bytes back), the rest from the previous one.
            fixed(&[
                Piece::Literals(&prefix),
                Piece::Copy {
                    len: 100,
                    dist: 2 + 260 + 258,
                },
                Piece::Copy {
                    len: 158,
                    dist: 2 + 258,
                },
            ])
        };
        assert!(packed.len() < 16, "{} bytes", packed.len());
        let expected: Vec<u8> = [prefix.as_slice(), &text].concat();
        tcp.write_all(&Frame::text(packed).rsv1(true).encode())
            .await
            .unwrap();
        assert_eq!(
            read_frame(&mut tcp).await,
            (0x81, expected.clone()),
            "message {i}"
        );
        assert_eq!(&expected[2..], &previous[2..]);
        previous = expected;
    }
    // 8 × 260 bytes have come: a copy from 2,048 bytes back still reads the window, one from
    // further back is beyond the agreed 11 bits (invalid distance too far back).
    let copy_back = |dist| {
        Frame::text(fixed(&[Piece::Copy { len: 10, dist }]))
            .rsv1(true)
            .encode()
    };
    tcp.write_all(&copy_back(2048)).await.unwrap();
    let (first, _) = read_frame(&mut tcp).await;
    assert_eq!(first, 0x81);
    tcp.write_all(&copy_back(3000)).await.unwrap();
    assert_eq!(read_close_code(&mut tcp).await, 1007);
    drop(tcp);
    server.shutdown().await;
}
