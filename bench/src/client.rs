//! A minimal hand-rolled WebSocket client: a fixed upgrade request, frames masked once and
//! written as prepared bytes, and a parser that checks every echoed byte. It spends far less CPU
//! per message than a general-purpose client, so the client core saturates later.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// The RFC 6455 sample key and the accept value every correct server answers with.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
/// A fixed, non-zero masking key: servers must unmask for real.
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
/// Upper bound for an upgrade response.
const MAX_RESPONSE: usize = 16 * 1024;

/// Where a server listens, and whether it speaks WebSocket (the TCP floor does not).
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub(crate) addr: SocketAddr,
    pub(crate) path: String,
    pub(crate) websocket: bool,
}

/// One connection, upgraded when the target speaks WebSocket.
pub(crate) struct Conn {
    stream: TcpStream,
    /// Bytes read past the end of the upgrade response.
    leftover: Vec<u8>,
    checker: Checker,
    /// The `Sec-WebSocket-Extensions` of the `101`, if it had any.
    extensions: Option<String>,
}

/// Checks echoed bytes against the message sent.
#[derive(Debug, Default)]
struct Checker {
    /// Offset inside the message being received (fragmented echoes), or inside the frame for
    /// the TCP floor.
    offset: usize,
    in_message: bool,
}

/// The message a workload sends, prepared once.
pub(crate) struct Payload {
    opcode: u8,
    plain: Vec<u8>,
    /// `depth` copies of the masked client frame, back to back.
    burst: Vec<u8>,
    frame_len: usize,
}

impl Payload {
    /// A text (valid, mostly non-ASCII UTF-8) or binary payload of exactly `size` bytes, with
    /// `depth` frames prepared for the closed loop.
    pub(crate) fn new(text: bool, size: usize, depth: usize) -> Self {
        let plain = if text {
            text_payload(size)
        } else {
            (0..size)
                .map(|i| u8::try_from(i % 251).unwrap_or(0))
                .collect()
        };
        let opcode = if text { 0x1 } else { 0x2 };
        let frame = client_frame(opcode, &plain);
        Payload {
            opcode,
            frame_len: frame.len(),
            burst: frame.repeat(depth.max(1)),
            plain,
        }
    }

    fn depth(&self) -> usize {
        self.burst.len() / self.frame_len
    }

    fn frame(&self) -> &[u8] {
        &self.burst[..self.frame_len]
    }

    /// The payload, unframed.
    pub(crate) fn plain(&self) -> &[u8] {
        &self.plain
    }

    /// Whether it is a text message.
    pub(crate) fn is_text(&self) -> bool {
        self.opcode == 0x1
    }

    /// Read buffer size: room for two whole server frames and at least 64 KiB.
    fn read_buffer(&self) -> usize {
        (2 * (self.plain.len() + 14)).max(64 * 1024)
    }
}

/// Valid UTF-8 of exactly `size` bytes, mostly two-, three- and four-byte characters.
fn text_payload(size: usize) -> Vec<u8> {
    const SAMPLE: &str = "Grüße aus Zürich — ünïcödé ✓ 世界你好 🚀 ";
    let mut out = String::with_capacity(size + 4);
    'fill: loop {
        for c in SAMPLE.chars() {
            if out.len() + c.len_utf8() > size {
                break 'fill;
            }
            out.push(c);
        }
    }
    while out.len() < size {
        out.push('.');
    }
    out.into_bytes()
}

/// A final, masked client frame.
pub(crate) fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(payload.len() + 14);
    push_frame(&mut frame, 0x80 | opcode, payload);
    frame
}

/// Appends a masked client frame whose first byte (FIN, RSV bits, opcode) is `first`.
pub(crate) fn push_frame(frame: &mut Vec<u8>, first: u8, payload: &[u8]) {
    frame.reserve(payload.len() + 14);
    frame.push(first);
    match payload.len() {
        n @ 0..=125 => frame.push(0x80 | u8::try_from(n).unwrap_or(125)),
        n @ 126..=0xffff => {
            frame.push(0x80 | 0x7e);
            frame.extend_from_slice(&u16::try_from(n).unwrap_or(u16::MAX).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 0x7f);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&MASK);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Source addresses the client spreads its connections over: 127.0.0.2 to 127.0.0.201. Servers
/// with a per-IP connection limit (ours: 256 by default) then see at most 50 connections per
/// address at 10,000, and the ephemeral ports of one address are not exhausted.
const SOURCES: usize = 200;
static NEXT_SOURCE: AtomicUsize = AtomicUsize::new(0);

/// A TCP connection to `addr`, from the next of the [`SOURCES`] when `addr` is on the loopback,
/// with a receive buffer of `recv_buffer` bytes if given (the kernel's default otherwise; a
/// small one makes a slow reader's window close early).
pub(crate) async fn open(addr: SocketAddr, recv_buffer: Option<u32>) -> io::Result<TcpStream> {
    let socket = match addr.ip() {
        IpAddr::V4(ip) if ip.is_loopback() => {
            let n = NEXT_SOURCE.fetch_add(1, Ordering::Relaxed) % SOURCES;
            let source = Ipv4Addr::new(127, 0, 0, 2 + u8::try_from(n).unwrap_or(0));
            let socket = TcpSocket::new_v4()?;
            socket.bind(SocketAddr::from((source, 0)))?;
            socket
        }
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if let Some(bytes) = recv_buffer {
        socket.set_recv_buffer_size(bytes)?;
    }
    socket.connect(addr).await
}

/// Connects and, for a WebSocket target, performs the upgrade and checks the 101 reply.
pub(crate) async fn connect(target: &Target) -> io::Result<Conn> {
    connect_with(target, None).await
}

/// [`connect`], offering the extensions in `offer` (a `Sec-WebSocket-Extensions` value); the
/// reply's extensions are then in [`Conn::extensions`].
pub(crate) async fn connect_with(target: &Target, offer: Option<&str>) -> io::Result<Conn> {
    upgrade(open(target.addr, None).await?, target, offer).await
}

/// Performs the upgrade of [`connect_with`] on a connection already open to `target`.
pub(crate) async fn upgrade(
    mut stream: TcpStream,
    target: &Target,
    offer: Option<&str>,
) -> io::Result<Conn> {
    stream.set_nodelay(true)?;
    let mut leftover = Vec::new();
    let mut extensions = None;
    if target.websocket {
        let offer = offer
            .map(|offer| format!("Sec-WebSocket-Extensions: {offer}\r\n"))
            .unwrap_or_default();
        let request = format!(
            "GET /{} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{offer}\r\n",
            target.path, target.addr
        );
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::with_capacity(512);
        let mut chunk = [0u8; 1024];
        let end = loop {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(invalid("connection closed during the upgrade"));
            }
            response.extend_from_slice(&chunk[..n]);
            if let Some(pos) = response.windows(4).position(|w| w == b"\r\n\r\n") {
                break pos + 4;
            }
            if response.len() > MAX_RESPONSE {
                return Err(invalid("upgrade response too long"));
            }
        };
        let head = String::from_utf8_lossy(&response[..end]);
        if !head.starts_with("HTTP/1.1 101") || !head.contains(ACCEPT) {
            let status = head.lines().next().unwrap_or_default().to_owned();
            return Err(invalid(format!("upgrade refused: {status}")));
        }
        leftover = response[end..].to_vec();
        extensions = header_values(&head, "sec-websocket-extensions");
    }
    Ok(Conn {
        stream,
        leftover,
        checker: Checker::default(),
        extensions,
    })
}

/// The values of every `name:` line of a response head (`name` in lower case), joined with
/// `, `, or `None` if there is none.
fn header_values(head: &str, name: &str) -> Option<String> {
    let values: Vec<&str> = head
        .lines()
        .filter_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then_some(value.trim())
        })
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

impl Conn {
    /// The `Sec-WebSocket-Extensions` the server answered with, if any.
    pub(crate) fn extensions(&self) -> Option<&str> {
        self.extensions.as_deref()
    }

    /// The socket and the bytes already read past the upgrade response.
    pub(crate) fn into_parts(self) -> (TcpStream, Vec<u8>) {
        (self.stream, self.leftover)
    }

    /// Closed loop: keeps `payload.depth()` messages in flight until `limit` echoes have come
    /// back, checking each one; adds every echo to `counter` as it arrives. Returns the number of
    /// echoes received.
    ///
    /// With `burst`, it writes `payload.depth()` messages back to back (one write of prepared
    /// bytes), then reads and checks all their echoes before it writes the next burst.
    pub(crate) async fn echo(
        &mut self,
        websocket: bool,
        payload: &Payload,
        limit: u64,
        counter: &Arc<AtomicU64>,
        burst: bool,
    ) -> io::Result<u64> {
        let cap = payload.read_buffer();
        let max_frame = payload.plain.len() + 14;
        let mut buf = vec![0u8; cap];
        let leftover = std::mem::take(&mut self.leftover);
        if leftover.len() > cap {
            return Err(invalid("unexpected data after the upgrade"));
        }
        buf[..leftover.len()].copy_from_slice(&leftover);
        let (mut start, mut end) = (0, leftover.len());

        let depth = payload.depth() as u64;
        let mut sent = depth.min(limit);
        let mut received = 0u64;
        self.send(payload, sent).await?;
        while received < limit {
            if end > start {
                let (used, done) = if websocket {
                    self.checker.parse_frames(payload, &buf[start..end])?
                } else {
                    self.checker.check_raw(payload, &buf[start..end])?
                };
                start += used;
                if done > 0 {
                    counter.fetch_add(done, Ordering::Relaxed);
                    received += done;
                    if received > sent {
                        return Err(invalid("more echoes than messages sent"));
                    }
                    let more = if !burst {
                        done.min(limit - sent)
                    } else if received == sent {
                        depth.min(limit - sent)
                    } else {
                        0
                    };
                    self.send(payload, more).await?;
                    sent += more;
                }
            }
            if received >= limit {
                break;
            }
            if start == end {
                (start, end) = (0, 0);
            } else if cap - end < max_frame {
                buf.copy_within(start..end, 0);
                end -= start;
                start = 0;
                if end == cap {
                    return Err(invalid("server frame larger than the read buffer"));
                }
            }
            let n = self.stream.read(&mut buf[end..]).await?;
            if n == 0 {
                return Err(invalid("server closed the connection"));
            }
            end += n;
        }
        Ok(received)
    }

    /// Open loop: sends message `k` at `first + k × interval` (late if the client falls behind,
    /// never skipped) and, concurrently, checks the echoes. Returns each message's latency from
    /// its *scheduled* send time, in µs, in order.
    pub(crate) async fn open_loop(
        self,
        websocket: bool,
        payload: &Payload,
        first: Instant,
        interval: Duration,
        count: u64,
    ) -> io::Result<Vec<f64>> {
        let Conn {
            stream,
            leftover,
            mut checker,
            ..
        } = self;
        let (mut rd, mut wr) = stream.into_split();
        let due = move |k: usize| first + interval.mul_f64(k as f64);
        let total = usize::try_from(count).map_err(io::Error::other)?;
        let frame = payload.frame();
        let writer = async move {
            for k in 0..total {
                tokio::time::sleep_until(due(k).into()).await;
                wr.write_all(frame).await?;
            }
            Ok::<_, io::Error>(wr)
        };
        let reader = async move {
            let cap = payload.read_buffer();
            let max_frame = payload.plain.len() + 14;
            let mut buf = vec![0u8; cap.max(leftover.len())];
            buf[..leftover.len()].copy_from_slice(&leftover);
            let (mut start, mut end) = (0, leftover.len());
            let mut latencies = Vec::with_capacity(total);
            while latencies.len() < total {
                if end > start {
                    let (used, done) = if websocket {
                        checker.parse_frames(payload, &buf[start..end])?
                    } else {
                        checker.check_raw(payload, &buf[start..end])?
                    };
                    start += used;
                    let now = Instant::now();
                    for _ in 0..done {
                        let k = latencies.len();
                        latencies.push(now.saturating_duration_since(due(k)).as_secs_f64() * 1e6);
                    }
                }
                if latencies.len() >= total {
                    break;
                }
                if start == end {
                    (start, end) = (0, 0);
                } else if buf.len() - end < max_frame {
                    buf.copy_within(start..end, 0);
                    end -= start;
                    start = 0;
                }
                let n = rd.read(&mut buf[end..]).await?;
                if n == 0 {
                    return Err(invalid("server closed the connection"));
                }
                end += n;
            }
            if latencies.len() > total {
                return Err(invalid("more echoes than messages sent"));
            }
            Ok(latencies)
        };
        let (_wr, latencies) = tokio::try_join!(writer, reader)?;
        Ok(latencies)
    }

    /// Writes prepared bytes (whole frames).
    pub(crate) async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// Reads server frames until `count` data messages (text or binary, reassembled if
    /// fragmented) have been handed to `on_message`; pings are answered with a pong, pongs are
    /// skipped, a close frame or a masked frame is an error. Returns when `count` messages have been received.
    pub(crate) async fn read_messages(
        &mut self,
        count: u64,
        mut on_message: impl FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<u64> {
        let cap = 64 * 1024;
        let mut buf = std::mem::take(&mut self.leftover);
        let mut end = buf.len();
        buf.resize(end.max(cap), 0);
        let mut start = 0;
        let mut message: Vec<u8> = Vec::new();
        let mut in_message = false;
        let mut received = 0;
        let mut pongs = Vec::new();
        while received < count {
            // Parse every whole frame in buf[start..end], up to the `count`th message.
            while received < count {
                let rest = &buf[start..end];
                let Some((fin, opcode, head, len)) = frame_head(rest)? else {
                    break;
                };
                if rest.len() - head < len {
                    if head + len > buf.len() {
                        buf.resize(head + len, 0);
                    }
                    break;
                }
                let body = &rest[head..head + len];
                match opcode {
                    0x1 | 0x2 if in_message => {
                        return Err(invalid("new message inside a fragmented one"));
                    }
                    0x1 | 0x2 if fin => {
                        on_message(body)?;
                        received += 1;
                    }
                    0x1 | 0x2 => {
                        message.clear();
                        message.extend_from_slice(body);
                        in_message = true;
                    }
                    0x0 if in_message => {
                        message.extend_from_slice(body);
                        if fin {
                            on_message(&message)?;
                            in_message = false;
                            received += 1;
                        }
                    }
                    0x0 => return Err(invalid("continuation frame without a message")),
                    0x8 => return Err(invalid(close_reason(body))),
                    // Answered below: a subscriber that never writes is pinged by the server's
                    // heartbeat, and closed if it does not answer.
                    0x9 => pongs.extend_from_slice(&client_frame(0xa, body)),
                    0xa => {}
                    other => return Err(invalid(format!("unknown opcode {other}"))),
                }
                start += head + len;
            }
            if !pongs.is_empty() {
                self.stream.write_all(&pongs).await?;
                pongs.clear();
            }
            if received >= count {
                break;
            }
            if start == end {
                (start, end) = (0, 0);
            } else if start > 0 {
                buf.copy_within(start..end, 0);
                end -= start;
                start = 0;
            }
            if end == buf.len() {
                buf.resize(buf.len() * 2, 0);
            }
            let n = self.stream.read(&mut buf[end..]).await?;
            if n == 0 {
                return Err(invalid("server closed the connection"));
            }
            end += n;
        }
        // What was read past the last message stays for the next call.
        self.leftover = buf[start..end].to_vec();
        Ok(received)
    }

    /// Writes `count` prepared frames.
    async fn send(&mut self, payload: &Payload, count: u64) -> io::Result<()> {
        let mut left = usize::try_from(count).unwrap_or(usize::MAX);
        while left > 0 {
            let n = left.min(payload.depth());
            self.stream
                .write_all(&payload.burst[..n * payload.frame_len])
                .await?;
            left -= n;
        }
        Ok(())
    }
}

/// "server sent a close frame", with its code and reason if it has them.
fn close_reason(body: &[u8]) -> String {
    match body {
        [hi, lo, reason @ ..] => format!(
            "server sent a close frame ({} {:?})",
            u16::from_be_bytes([*hi, *lo]),
            String::from_utf8_lossy(reason)
        ),
        _ => "server sent a close frame".to_owned(),
    }
}

/// Decodes a server frame header: `(fin, opcode, header length, payload length)`, or `None`
/// while it is incomplete. The RSV bits are `rest[0] & 0x70`.
pub(crate) fn frame_head(rest: &[u8]) -> io::Result<Option<(bool, u8, usize, usize)>> {
    if rest.len() < 2 {
        return Ok(None);
    }
    let (b0, b1) = (rest[0], rest[1]);
    if b1 & 0x80 != 0 {
        return Err(invalid("server sent a masked frame"));
    }
    let (head, len) = match b1 & 0x7f {
        126 if rest.len() >= 4 => (4, usize::from(u16::from_be_bytes([rest[2], rest[3]]))),
        127 if rest.len() >= 10 => {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&rest[2..10]);
            let len = usize::try_from(u64::from_be_bytes(bytes))
                .map_err(|_| invalid("frame length overflows"))?;
            (10, len)
        }
        126 | 127 => return Ok(None),
        n => (2, usize::from(n)),
    };
    Ok(Some((b0 & 0x80 != 0, b0 & 0x0f, head, len)))
}

impl Checker {
    /// The TCP floor returns our own masked frames byte for byte.
    fn check_raw(&mut self, payload: &Payload, mut data: &[u8]) -> io::Result<(usize, u64)> {
        let frame = payload.frame();
        let used = data.len();
        let mut done = 0;
        while !data.is_empty() {
            let n = data.len().min(frame.len() - self.offset);
            if data[..n] != frame[self.offset..self.offset + n] {
                return Err(invalid("TCP echo returned different bytes"));
            }
            self.offset += n;
            data = &data[n..];
            if self.offset == frame.len() {
                self.offset = 0;
                done += 1;
            }
        }
        Ok((used, done))
    }

    /// Parses whole server frames from `data`; returns the bytes used and the messages completed.
    fn parse_frames(&mut self, payload: &Payload, data: &[u8]) -> io::Result<(usize, u64)> {
        let mut pos = 0;
        let mut done = 0;
        loop {
            let rest = &data[pos..];
            let Some((fin, opcode, head, len)) = frame_head(rest)? else {
                break;
            };
            if rest.len() - head < len {
                break;
            }
            let body = &rest[head..head + len];
            match opcode {
                opcode @ (0x0..=0x2) => {
                    if opcode == 0 && !self.in_message {
                        return Err(invalid("continuation frame without a message"));
                    }
                    if opcode != 0 && (self.in_message || opcode != payload.opcode) {
                        return Err(invalid(format!("unexpected data frame opcode {opcode}")));
                    }
                    if payload.plain.get(self.offset..self.offset + len) != Some(body) {
                        return Err(invalid("echo differs from the message sent"));
                    }
                    self.offset += len;
                    self.in_message = true;
                    if fin {
                        if self.offset != payload.plain.len() {
                            return Err(invalid("echo shorter than the message sent"));
                        }
                        self.offset = 0;
                        self.in_message = false;
                        done += 1;
                    }
                }
                0x8 => return Err(invalid("server sent a close frame")),
                0x9 | 0xa => {}
                opcode => return Err(invalid(format!("unknown opcode {opcode}"))),
            }
            pos += head + len;
        }
        Ok((pos, done))
    }
}

#[cfg(test)]
mod tests {
    use super::{Checker, Payload, client_frame};

    /// A server frame: unmasked.
    fn server_frame(first: u8, body: &[u8]) -> Vec<u8> {
        let mut frame = client_frame(first & 0x0f, body);
        frame[0] = first;
        let head = frame.len() - body.len() - 4;
        frame[1] &= 0x7f;
        frame.truncate(head);
        frame.extend_from_slice(body);
        frame
    }

    #[test]
    fn text_payload_is_valid_utf8_of_the_exact_size() {
        for size in [20, 1024, 1023, 16 * 1024] {
            let payload = Payload::new(true, size, 1);
            assert_eq!(payload.plain.len(), size);
            let text = std::str::from_utf8(&payload.plain).unwrap();
            assert!(text.chars().filter(|c| !c.is_ascii()).count() > size / 8);
        }
    }

    #[test]
    fn whole_and_fragmented_echoes_are_counted() {
        let payload = Payload::new(true, 300, 2);
        let mut data = server_frame(0x81, &payload.plain);
        data.extend(server_frame(0x01, &payload.plain[..100]));
        data.extend(server_frame(0x8a, b"")); // a pong in between is ignored
        data.extend(server_frame(0x80, &payload.plain[100..]));
        let mut checker = Checker::default();
        // Fed byte by byte: partial frames wait for more.
        let (mut used, mut done) = (0, 0);
        for end in 1..=data.len() {
            let (u, d) = checker.parse_frames(&payload, &data[used..end]).unwrap();
            used += u;
            done += d;
        }
        assert_eq!((used, done), (data.len(), 2));
    }

    #[test]
    fn wrong_echoes_are_errors() {
        let payload = Payload::new(false, 200, 1);
        let mut wrong = payload.plain.clone();
        wrong[150] ^= 1;
        let cases = [
            server_frame(0x82, &wrong),
            server_frame(0x81, &payload.plain),
            server_frame(0x82, &payload.plain[..199]),
            server_frame(0x88, b"\x03\xe8"),
            client_frame(0x2, &payload.plain),
        ];
        for data in cases {
            assert!(Checker::default().parse_frames(&payload, &data).is_err());
        }
    }

    #[test]
    fn raw_echo_is_checked_byte_for_byte() {
        let payload = Payload::new(false, 20, 3);
        let mut checker = Checker::default();
        assert_eq!(
            checker.check_raw(&payload, &payload.burst).unwrap(),
            (payload.burst.len(), 3)
        );
        let mut wrong = payload.burst.clone();
        wrong[30] ^= 1;
        assert!(Checker::default().check_raw(&payload, &wrong).is_err());
    }
}
