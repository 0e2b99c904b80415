//! Streamed messages, with a raw client that writes and reads frames by hand: a 100 MiB
//! fragmented message reaches an `on_data` that takes a `MessageStream` chunk by chunk in
//! bounded memory (the peak RSS of this test process), a stream that fails inside its message
//! reports the close, a dropped stream discards the rest. (Its own test binary: the other
//! suites' allocations would blur the memory figure.)

use std::time::Duration;

use http::Version;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use ws::test::TestServer;
use ws::test::raw::{self, Frame, Upgraded, opcode};
use ws::{ClientId, Close, Config, Endpoint, MessageStream, Origins, websocket};

/// This process's resident set size and its peak since the last reset, in bytes.
fn rss() -> (usize, usize) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().strip_suffix("kB"))
            .and_then(|kib| kib.trim().parse::<usize>().ok())
            .map(|kib| kib << 10)
            .unwrap()
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Resets the peak resident set size to the current one (Linux 4.0+).
fn reset_peak_rss() {
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
}

const WAIT: Duration = Duration::from_secs(60);

/// What the streaming handler saw of each message.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    /// A message read to its end: text or not, chunks, bytes, and a checksum of the bytes.
    Whole {
        text: bool,
        chunks: usize,
        bytes: usize,
        sum: u64,
    },
    /// A message that failed inside, after this many bytes, with this close.
    Failed { bytes: usize, code: u16 },
    /// A message dropped after its first chunk.
    Dropped,
    /// `on_close`'s code.
    Closed(u16),
}

struct Counter {
    seen: mpsc::UnboundedSender<Seen>,
}

#[websocket]
impl Counter {
    async fn on_data(&self, endpoint: &Endpoint, id: ClientId, mut message: MessageStream) {
        let text = message.is_text();
        let (mut chunks, mut bytes, mut sum) = (0, 0, 0u64);
        loop {
            match message.next_chunk().await {
                Ok(Some(chunk)) => {
                    if chunk.starts_with(b"drop") {
                        let _ = self.seen.send(Seen::Dropped);
                        return;
                    }
                    chunks += 1;
                    bytes += chunk.len();
                    sum = chunk.iter().fold(sum, |sum, &b| {
                        sum.wrapping_mul(31).wrapping_add(u64::from(b))
                    });
                }
                Ok(None) => break,
                Err(close) => {
                    let _ = self.seen.send(Seen::Failed {
                        bytes,
                        code: close.code,
                    });
                    return;
                }
            }
        }
        let _ = self.seen.send(Seen::Whole {
            text,
            chunks,
            bytes,
            sum,
        });
        let _ = endpoint.send(id, format!("{bytes}"));
    }

    fn on_close(&self, close: Close) {
        let _ = self.seen.send(Seen::Closed(close.code));
    }
}

async fn serve(config: Config) -> (TestServer, mpsc::UnboundedReceiver<Seen>) {
    let (seen, rx) = mpsc::unbounded_channel();
    let handler = Counter { seen };
    let socket = ws::Socket::with_config(handler, config.origins(Origins::Any).rate_limit(None));
    (ws::test::serve(&socket).await, rx)
}

async fn connect(server: &TestServer) -> Upgraded {
    let (reply, tcp) = server.raw("/").upgrade().await.unwrap();
    assert_eq!(reply.version(), Version::HTTP_11);
    assert_eq!(reply.status(), 101);
    tcp
}

/// Reads one server frame: its first byte and its payload.
async fn read_frame(tcp: &mut Upgraded) -> (u8, Vec<u8>) {
    let frame = raw::read_frame_within(tcp, WAIT)
        .await
        .expect("a frame in time");
    (frame.first_byte(), frame.payload)
}

async fn next(seen: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    tokio::time::timeout(WAIT, seen.recv())
        .await
        .expect("an event in time")
        .expect("the handler is alive")
}

fn checksum(sum: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(sum, |sum, &b| {
        sum.wrapping_mul(31).wrapping_add(u64::from(b))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mib_fragmented_message_streams_in_bounded_memory() {
    const FRAME: usize = 64 << 10;
    const FRAMES: usize = 1600; // 100 MiB
    let config = Config::new().max_message_size(128 << 20);
    let (server, mut seen) = serve(config).await;
    let mut tcp = connect(&server).await;
    // A different pattern per frame, so that a lost, repeated or reordered chunk shows.
    let pattern: Vec<u8> = (0..FRAME + 251)
        .map(|i| u8::try_from(i % 251).unwrap())
        .collect();
    let mut sum = 0;
    reset_peak_rss();
    let (before, _) = rss();
    for i in 0..FRAMES {
        let (opcode, fin) = match i {
            0 => (opcode::BINARY, false),
            i if i == FRAMES - 1 => (opcode::CONTINUATION, true),
            _ => (opcode::CONTINUATION, false),
        };
        let payload = &pattern[i % 251..i % 251 + FRAME];
        sum = checksum(sum, payload);
        // The header only, with the all-zero key: the payload goes out as it is, uncopied.
        let head = Frame::new(opcode, Vec::new())
            .fin(fin)
            .mask([0; 4])
            .declared_len(u64::try_from(FRAME).unwrap());
        tcp.write_all(&head.encode()).await.unwrap();
        tcp.write_all(payload).await.unwrap();
    }
    let (first, reply) = read_frame(&mut tcp).await;
    assert_eq!((first, reply.as_slice()), (0x81, b"104857600".as_slice()));
    let peak = rss().1.saturating_sub(before);
    assert_eq!(
        next(&mut seen).await,
        Seen::Whole {
            text: false,
            chunks: FRAMES,
            bytes: FRAMES * FRAME,
            sum
        }
    );
    // Two chunks waiting, the frame being read, the read buffer, the allocator's slack: a
    // few frames, nowhere near the 100 MiB message.
    assert!(peak < 16 << 20, "peak RSS growth {peak} bytes");
    println!("100 MiB streamed; peak RSS growth {} KiB", peak >> 10);
    drop(tcp);
    server.shutdown().await;
}

#[tokio::test]
async fn a_whole_message_is_a_stream_of_one_chunk() {
    let (server, mut seen) = serve(Config::new()).await;
    let mut tcp = connect(&server).await;
    tcp.write_all(&Frame::text("héllo").encode()).await.unwrap();
    assert_eq!(read_frame(&mut tcp).await, (0x81, b"6".to_vec()));
    assert_eq!(
        next(&mut seen).await,
        Seen::Whole {
            text: true,
            chunks: 1,
            bytes: 6,
            sum: checksum(0, "héllo".as_bytes())
        }
    );
    drop(tcp);
    server.shutdown().await;
}

#[tokio::test]
async fn a_text_stream_cut_inside_a_character_is_whole_and_valid() {
    let (server, mut seen) = serve(Config::new()).await;
    let mut tcp = connect(&server).await;
    let text = "ünïcödé".as_bytes();
    let mut wire = Frame::text(&text[..1]).fin(false).encode();
    wire.extend(Frame::continuation(&text[1..5]).fin(false).encode());
    wire.extend(Frame::continuation([]).fin(false).encode()); // empty: no chunk
    wire.extend(Frame::continuation(&text[5..]).encode());
    tcp.write_all(&wire).await.unwrap();
    assert_eq!(
        read_frame(&mut tcp).await.1,
        text.len().to_string().as_bytes()
    );
    assert_eq!(
        next(&mut seen).await,
        Seen::Whole {
            text: true,
            chunks: 3,
            bytes: text.len(),
            sum: checksum(0, text)
        }
    );
    drop(tcp);
    server.shutdown().await;
}

#[tokio::test]
async fn a_stream_past_the_message_limit_fails_with_1009() {
    let (server, mut seen) = serve(Config::new().max_message_size(100_000)).await;
    let mut tcp = connect(&server).await;
    let chunk = vec![7u8; 40_000];
    let mut wire = Frame::binary(chunk.clone()).fin(false).encode();
    wire.extend(Frame::continuation(chunk.clone()).fin(false).encode());
    wire.extend(Frame::continuation(chunk).fin(false).encode()); // 120,000 > 100,000
    tcp.write_all(&wire).await.unwrap();
    let (first, payload) = read_frame(&mut tcp).await;
    assert_eq!((first, &payload[..2]), (0x88, &1009u16.to_be_bytes()[..]));
    assert_eq!(
        next(&mut seen).await,
        Seen::Failed {
            bytes: 80_000,
            code: 1009
        }
    );
    tcp.write_all(&Frame::close(1009, "").encode())
        .await
        .unwrap();
    assert_eq!(next(&mut seen).await, Seen::Closed(1009));
    drop(tcp);
    server.shutdown().await;
}

#[tokio::test]
async fn invalid_utf8_inside_a_text_stream_fails_with_1007() {
    let (server, mut seen) = serve(Config::new()).await;
    let mut tcp = connect(&server).await;
    let mut wire = Frame::text("fine so far").fin(false).encode();
    wire.extend(Frame::continuation([0xC3, 0x28]).fin(false).encode()); // a lead byte followed by a non-continuation
    tcp.write_all(&wire).await.unwrap();
    let (first, payload) = read_frame(&mut tcp).await;
    assert_eq!((first, &payload[..2]), (0x88, &1007u16.to_be_bytes()[..]));
    assert_eq!(
        next(&mut seen).await,
        Seen::Failed {
            bytes: 11,
            code: 1007
        }
    );
    drop(tcp);
    server.shutdown().await;
}

#[tokio::test]
async fn a_dropped_stream_discards_the_rest_of_its_message_only() {
    let (server, mut seen) = serve(Config::new()).await;
    let mut tcp = connect(&server).await;
    let mut wire = Frame::binary("drop the rest").fin(false).encode();
    for _ in 0..20 {
        wire.extend(Frame::continuation([1; 1000]).fin(false).encode());
    }
    wire.extend(Frame::continuation("end").encode());
    wire.extend(Frame::binary("next").encode());
    tcp.write_all(&wire).await.unwrap();
    assert_eq!(next(&mut seen).await, Seen::Dropped);
    assert_eq!(read_frame(&mut tcp).await, (0x81, b"4".to_vec()));
    assert_eq!(
        next(&mut seen).await,
        Seen::Whole {
            text: false,
            chunks: 1,
            bytes: 4,
            sum: checksum(0, b"next")
        }
    );
    drop(tcp);
    server.shutdown().await;
}
