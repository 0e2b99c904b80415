//! Frames gathered for one vectored write: each frame's header and its payload by reference
//! (the payload may be shared with other receivers of a broadcast), nothing copied into a
//! write buffer, and nothing kept by an idle connection.

use std::io::{self, IoSlice};

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::frame::{FrameHead, OutFrame};

/// A lone frame up to this size (header included) is copied and written with one plain write.
const SMALL: usize = 1024;

/// Frames past this many are written before more are gathered (Linux takes at most 1,024
/// buffers per `writev`, two per frame).
const MAX_FRAMES: usize = 256;

/// Frames waiting for one write.
#[derive(Default)]
pub(crate) struct Gather {
    /// The only frame, while there is one: a single frame (the usual case for a broadcast or
    /// a request-reply exchange) is written without allocating.
    one: Option<(FrameHead, Bytes)>,
    /// All the frames, once there are several.
    frames: Vec<(FrameHead, Bytes)>,
    bytes: usize,
}

impl Gather {
    /// Adds a whole frame.
    pub(crate) fn push(&mut self, frame: OutFrame) {
        self.push_part(frame.frame_head(), frame.payload);
    }

    /// Adds one frame given as its header and payload.
    pub(crate) fn push_part(&mut self, head: FrameHead, payload: Bytes) {
        self.bytes += head.bytes().len() + payload.len();
        if self.one.is_none() && self.frames.is_empty() {
            self.one = Some((head, payload));
            return;
        }
        if let Some(one) = self.one.take() {
            self.frames.push(one);
        }
        self.frames.push((head, payload));
    }

    /// Whether enough is gathered to write it before gathering more.
    pub(crate) fn is_full(&self, limit: usize) -> bool {
        self.bytes >= limit || self.frames.len() >= MAX_FRAMES
    }

    /// Writes what is gathered and empties it.
    pub(crate) async fn write<W: AsyncWrite + Unpin>(&mut self, writer: &mut W) -> io::Result<()> {
        if self.frames.is_empty() && self.bytes <= SMALL {
            if let Some((head, payload)) = self.one.take() {
                // A small lone frame: one plain write of a copy is cheaper than `writev`'s
                // two-buffer setup (a broadcast delivery, a reply).
                let mut copy = [0u8; SMALL];
                let (h, p) = (head.bytes().len(), payload.len());
                copy[..h].copy_from_slice(head.bytes());
                copy[h..h + p].copy_from_slice(&payload);
                self.bytes = 0;
                return writer.write_all(&copy[..h + p]).await;
            }
        }
        if self.frames.is_empty() && writer.is_write_vectored() {
            if let Some((head, payload)) = self.one.take() {
                self.bytes = 0;
                let mut slices = [IoSlice::new(head.bytes()), IoSlice::new(&payload)];
                return write_all_vectored(writer, &mut slices).await;
            }
        }
        if let Some(one) = self.one.take() {
            self.frames.push(one);
        }
        if self.frames.is_empty() {
            return Ok(());
        }
        if writer.is_write_vectored() {
            let mut slices = Vec::with_capacity(self.frames.len() * 2);
            for (head, payload) in &self.frames {
                slices.push(IoSlice::new(head.bytes()));
                if !payload.is_empty() {
                    slices.push(IoSlice::new(payload));
                }
            }
            write_all_vectored(writer, &mut slices).await?;
        } else {
            // A stream that would write one buffer per call: one copy, one write.
            let mut buf = Vec::with_capacity(self.bytes);
            for (head, payload) in &self.frames {
                buf.extend_from_slice(head.bytes());
                buf.extend_from_slice(payload);
            }
            writer.write_all(&buf).await?;
        }
        self.frames.clear();
        self.bytes = 0;
        Ok(())
    }
}

/// Writes every slice, in as few calls as the stream takes.
async fn write_all_vectored<W: AsyncWrite + Unpin>(
    writer: &mut W,
    slices: &mut [IoSlice<'_>],
) -> io::Result<()> {
    let mut rest = slices;
    // An empty payload's slice is skipped by the advance below, like a written one.
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
