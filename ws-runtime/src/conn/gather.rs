//! Frames gathered for one write. Headers and small payloads are copied one after the other
//! into a staging buffer; large payloads are written by reference (they may be shared with
//! other receivers of a broadcast). A batch of small frames is then one plain write, and a
//! batch with large payloads one vectored write with a buffer per large payload and per run
//! of small frames between them. Nothing is kept by an idle connection.

use std::io::{self, IoSlice};

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::proto::{FrameHead, OutFrame};
use crate::rt::lend::Lend;

/// Payloads up to this size are copied into the staging buffer: copying them costs less than
/// a buffer of their own in a vectored write (the kernel walks each buffer separately; for a
/// batch of small frames that was most of the write's cost).
const STAGE: usize = 2048;

/// The staging buffer's first allocation.
const STAGED_FIRST: usize = 16 << 10;

/// Staged bytes written before more are staged: the buffer stays a heap allocation that is
/// reused (past 128 KiB, glibc maps fresh pages for each, and page faults cost more than the
/// extra write).
const STAGED_MAX: usize = 64 << 10;

/// Buffers past this many are written before more are gathered (Linux takes at most 1,024
/// buffers per `writev`; each large payload adds at most two).
const MAX_PARTS: usize = 512;

/// Frames waiting for one write.
#[derive(Default)]
pub(crate) struct Gather {
    /// The only frame, while there is one: a single frame (the usual case for a broadcast or
    /// a request-reply exchange) is written without staging or allocating.
    one: Option<(FrameHead, Bytes)>,
    /// Headers and small payloads, in order.
    staged: Vec<u8>,
    /// The write, in order: runs of `staged` and large payloads; empty while only small
    /// frames are gathered, `staged` then being the whole write.
    parts: Vec<Part>,
    /// Where the current run of `staged` begins.
    run_start: usize,
    bytes: usize,
}

impl Drop for Gather {
    fn drop(&mut self) {
        Lend::give_back(&mut self.staged);
    }
}

/// One buffer of the write.
enum Part {
    /// `staged` up to this offset, from the end of the previous run.
    Staged(usize),
    /// A payload written by reference.
    Shared(Bytes),
}

impl Gather {
    /// Adds a whole frame.
    pub(crate) fn push(&mut self, frame: OutFrame) {
        self.push_part(frame.frame_head(), frame.payload);
    }

    /// Adds one frame given as its header and payload.
    pub(crate) fn push_part(&mut self, head: FrameHead, payload: Bytes) {
        if self.bytes == 0 && self.parts.is_empty() && self.one.is_none() {
            self.bytes = head.bytes().len() + payload.len();
            self.one = Some((head, payload));
            return;
        }
        if let Some((head, payload)) = self.one.take() {
            self.stage(head, payload);
        }
        self.bytes += head.bytes().len() + payload.len();
        self.stage(head, payload);
    }

    fn stage(&mut self, head: FrameHead, payload: Bytes) {
        if self.staged.capacity() == 0 {
            self.staged = Lend::take();
            // Most batches fit, without growing (and copying) it several times on the way.
            self.staged.reserve(STAGED_FIRST);
        }
        self.staged.extend_from_slice(head.bytes());
        if payload.len() <= STAGE {
            self.staged.extend_from_slice(&payload);
        } else {
            self.end_run();
            self.parts.push(Part::Shared(payload));
        }
    }

    /// Ends the current run of staged bytes, if it has any.
    fn end_run(&mut self) {
        if self.staged.len() > self.run_start {
            self.run_start = self.staged.len();
            self.parts.push(Part::Staged(self.run_start));
        }
    }

    /// Whether enough is gathered to write it before gathering more.
    pub(crate) fn is_full(&self, limit: usize) -> bool {
        self.bytes >= limit || self.parts.len() >= MAX_PARTS || self.staged.len() >= STAGED_MAX
    }

    /// Writes what is gathered and empties it.
    pub(crate) async fn write<W: AsyncWrite + Unpin>(&mut self, writer: &mut W) -> io::Result<()> {
        let bytes = std::mem::take(&mut self.bytes);
        if let Some((head, payload)) = self.one.take() {
            return write_one(writer, head, &payload).await;
        }
        let written = match self.parts.as_slice() {
            // Small frames only: one plain write, and no list of buffers allocated for it.
            [] if self.staged.is_empty() => Ok(()),
            [] => writer.write_all(&self.staged).await,
            _ => {
                self.end_run();
                let parts = self.parts.as_slice();
                let mut slices = Vec::with_capacity(parts.len());
                let mut start = 0;
                for part in parts {
                    match part {
                        Part::Staged(end) => {
                            slices.push(IoSlice::new(&self.staged[start..*end]));
                            start = *end;
                        }
                        Part::Shared(payload) => slices.push(IoSlice::new(payload)),
                    }
                }
                write_slices(writer, &mut slices, bytes).await
            }
        };
        self.staged.clear();
        self.parts.clear();
        self.run_start = 0;
        written
    }
}

/// Writes a lone frame: one with a payload small enough to stage as one plain write of a copy
/// (in a lent buffer; `writev`'s setup of two buffers costs the kernel more than the copy, for
/// a broadcast delivery or a reply), a larger one as header and payload.
async fn write_one<W: AsyncWrite + Unpin>(
    writer: &mut W,
    head: FrameHead,
    payload: &[u8],
) -> io::Result<()> {
    if payload.len() <= STAGE {
        let mut copy: Vec<u8> = Lend::take();
        copy.extend_from_slice(head.bytes());
        copy.extend_from_slice(payload);
        let written = writer.write_all(&copy).await;
        Lend::give_back(&mut copy);
        return written;
    }
    let h = head.bytes().len();
    let mut slices = [IoSlice::new(head.bytes()), IoSlice::new(payload)];
    write_slices(writer, &mut slices, h + payload.len()).await
}

/// Writes the slices (`bytes` in all): vectored, or, to a stream that would write one buffer
/// per call, as one copy in one write.
async fn write_slices<W: AsyncWrite + Unpin>(
    writer: &mut W,
    slices: &mut [IoSlice<'_>],
    bytes: usize,
) -> io::Result<()> {
    if writer.is_write_vectored() {
        return write_all_vectored(writer, slices).await;
    }
    let mut buf = Vec::with_capacity(bytes);
    for slice in slices.iter() {
        buf.extend_from_slice(slice);
    }
    writer.write_all(&buf).await
}

/// Writes every slice, in as few calls as the stream takes.
async fn write_all_vectored<W: AsyncWrite + Unpin>(
    writer: &mut W,
    slices: &mut [IoSlice<'_>],
) -> io::Result<()> {
    let mut rest = slices;
    // An empty slice is skipped by the advance below, like a written one.
    IoSlice::advance_slices(&mut rest, 0);
    while !rest.is_empty() {
        let n = writer.write_vectored(rest).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut rest, n);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;

    fn frame(len: usize, fill: u8) -> OutFrame {
        OutFrame::message(Message::Binary(Bytes::from(vec![fill; len])), usize::MAX)
    }

    fn encoded(frame: &OutFrame) -> Vec<u8> {
        let mut bytes = frame.frame_head().bytes().to_vec();
        bytes.extend_from_slice(&frame.payload);
        bytes
    }

    /// Small and large frames, interleaved, come out whole and in order, whether the stream
    /// takes vectored writes or not.
    #[tokio::test]
    async fn staged_and_shared_frames_keep_their_order() {
        let frames = [
            frame(5, 1),
            frame(STAGE + 1, 2),
            frame(STAGE, 3),
            frame(0, 4),
            frame(70_000, 5),
            frame(STAGE + 10, 6),
            frame(7, 7),
        ];
        let expected: Vec<u8> = frames.iter().flat_map(encoded).collect();
        for vectored in [true, false] {
            let mut gather = Gather::default();
            for frame in &frames {
                gather.push(frame.clone());
            }
            let mut out = Sink {
                bytes: Vec::new(),
                vectored,
            };
            gather.write(&mut out).await.expect("written");
            assert_eq!(out.bytes, expected, "vectored: {vectored}");
            // Emptied: the next write starts afresh.
            gather.push(frames[0].clone());
            gather.write(&mut out).await.expect("written");
            assert_eq!(out.bytes[expected.len()..], encoded(&frames[0]));
        }
    }

    /// A lone frame, small or large.
    #[tokio::test]
    async fn a_lone_frame_is_written_whole() {
        for len in [0, 100, STAGE, STAGE + 1, 100_000] {
            for vectored in [true, false] {
                let mut gather = Gather::default();
                gather.push(frame(len, 9));
                let mut out = Sink {
                    bytes: Vec::new(),
                    vectored,
                };
                gather.write(&mut out).await.expect("written");
                assert_eq!(out.bytes, encoded(&frame(len, 9)));
            }
        }
    }

    /// Takes at most 1,000 bytes per call, vectored or not.
    struct Sink {
        bytes: Vec<u8>,
        vectored: bool,
    }

    impl AsyncWrite for Sink {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<io::Result<usize>> {
            let n = buf.len().min(1000);
            self.bytes.extend_from_slice(&buf[..n]);
            std::task::Poll::Ready(Ok(n))
        }

        fn poll_write_vectored(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> std::task::Poll<io::Result<usize>> {
            let mut n = 0;
            for buf in bufs {
                let take = buf.len().min(1000 - n);
                self.bytes.extend_from_slice(&buf[..take]);
                n += take;
                if n == 1000 {
                    break;
                }
            }
            std::task::Poll::Ready(Ok(n))
        }

        fn is_write_vectored(&self) -> bool {
            self.vectored
        }

        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }
}
