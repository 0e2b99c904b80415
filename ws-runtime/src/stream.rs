//! Messages delivered as they arrive: [`MessageStream`], what `on_data` takes to receive a
//! large fragmented message chunk by chunk instead of whole.

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use tokio::sync::mpsc;

use crate::message::{Close, Message, Text};

/// Chunks a stream may hold before the connection's reader waits for `on_data` to take one.
/// With chunks of at most one frame, a streamed message holds at most this many frames.
pub(crate) const STREAM_CHUNKS: usize = 2;

/// What the reader sends down a live stream.
#[derive(Debug)]
pub(crate) enum Piece {
    Chunk(Bytes),
    /// The last frame arrived and the message is valid (complete UTF-8 for text).
    End,
}

/// The reader's end of a live stream.
#[derive(Debug)]
pub(crate) struct Feed {
    pub(crate) tx: mpsc::Sender<Piece>,
    failure: Arc<OnceLock<Close>>,
}

impl Feed {
    /// Ends the stream with the close that ends the connection inside the message; the
    /// handler gets the chunks already sent, then this close.
    pub(crate) fn fail(self, close: Close) {
        let _ = self.failure.set(close);
    }
}

/// A message received as its frames arrive: take it as the message parameter of `on_data` and
/// a large fragmented message reaches the handler chunk by chunk, in bounded memory, instead of
/// being collected whole first.
///
/// ```
/// use ws::{websocket, MessageStream};
///
/// struct Upload;
///
/// #[websocket]
/// impl Upload {
///     async fn on_data(&self, mut message: MessageStream) -> Result<(), ws::Close> {
///         let mut total = 0;
///         while let Some(chunk) = message.next_chunk().await? {
///             total += chunk.len();
///         }
///         println!("received {total} bytes");
///         Ok(())
///     }
/// }
/// ```
///
/// - A message sent in one frame arrives as a stream of one chunk; a fragmented message as one
///   chunk per frame (a frame is at most [`Config::max_frame_size`](crate::Config::max_frame_size),
///   after inflation when permessage-deflate compressed it). Empty frames give no chunk.
/// - The reader waits while two chunks are waiting for the handler, so a message of any size
///   holds a bounded amount of memory: two chunks and the frame being read. The whole message still counts
///   against [`Config::max_message_size`](crate::Config::max_message_size) (1009 past it):
///   raise that limit for large uploads.
/// - For a text message, chunk boundaries are frame boundaries and may cut a UTF-8 character;
///   the whole message is validated as it arrives and the stream ends with `Ok(None)` only when
///   it was valid UTF-8 (1007 otherwise).
/// - When the connection fails inside the message (a protocol error, an invalid byte, the size
///   limit, a lost connection), [`next_chunk`](MessageStream::next_chunk) returns `Err` with the
///   close that ends the connection; `on_close` follows as usual.
/// - Dropping the stream before its end discards the rest of the message; the connection goes
///   on with the next one. Holding it without reading pauses reading from this client (the
///   server's heartbeat does not count that against the client).
#[derive(Debug)]
pub struct MessageStream {
    text: bool,
    chunks: Chunks,
}

#[derive(Debug)]
enum Chunks {
    /// A message that arrived whole: its bytes until taken.
    Whole(Option<Bytes>),
    /// A fragmented message still arriving.
    Live {
        rx: mpsc::Receiver<Piece>,
        ended: bool,
        /// Why the stream ended before its last frame, when the reader knew.
        failure: Arc<OnceLock<Close>>,
    },
}

impl MessageStream {
    /// A stream fed by the connection's reader, and the sender it feeds it with.
    pub(crate) fn live(text: bool) -> (Feed, Self) {
        let (tx, rx) = mpsc::channel(STREAM_CHUNKS);
        let failure = Arc::new(OnceLock::new());
        let stream = MessageStream {
            text,
            chunks: Chunks::Live {
                rx,
                ended: false,
                failure: Arc::clone(&failure),
            },
        };
        (Feed { tx, failure }, stream)
    }

    /// Whether this is a text message (its bytes are UTF-8 once whole).
    pub fn is_text(&self) -> bool {
        self.text
    }

    /// Whether this is a binary message.
    pub fn is_binary(&self) -> bool {
        !self.text
    }

    /// The next chunk of the message, or `Ok(None)` after the last one.
    ///
    /// # Errors
    ///
    /// The close that is ending the connection, when it failed before the message was whole
    /// (`Close::ABNORMAL`, 1006, when the connection was lost).
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, Close> {
        std::future::poll_fn(|cx| self.poll_chunk(cx)).await
    }

    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, Close>> {
        match &mut self.chunks {
            Chunks::Whole(bytes) => Poll::Ready(Ok(bytes.take().filter(|b| !b.is_empty()))),
            Chunks::Live { ended: true, .. } => Poll::Ready(Ok(None)),
            Chunks::Live {
                rx, ended, failure, ..
            } => match rx.poll_recv(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Some(Piece::Chunk(chunk))) => Poll::Ready(Ok(Some(chunk))),
                Poll::Ready(Some(Piece::End)) => {
                    *ended = true;
                    Poll::Ready(Ok(None))
                }
                Poll::Ready(None) => {
                    Poll::Ready(Err(failure.get().cloned().unwrap_or_else(|| {
                        Close::new(Close::ABNORMAL, "Connection ended inside the message")
                    })))
                }
            },
        }
    }

    /// Collects the rest of the message into a [`Message`] (in memory, up to
    /// [`Config::max_message_size`](crate::Config::max_message_size)).
    ///
    /// # Errors
    ///
    /// As [`next_chunk`](MessageStream::next_chunk).
    pub async fn into_message(mut self) -> Result<Message, Close> {
        let mut first = None;
        let mut rest = BytesMut::new();
        while let Some(chunk) = self.next_chunk().await? {
            if first.is_none() && rest.is_empty() {
                first = Some(chunk);
            } else {
                if let Some(first) = first.take() {
                    rest.extend_from_slice(&first);
                }
                rest.extend_from_slice(&chunk);
            }
        }
        let bytes = first.unwrap_or_else(|| rest.freeze());
        if self.text {
            // The reader validated every chunk as it came; this only makes it a `Text`.
            Text::from_utf8(bytes)
                .map(Message::Text)
                .ok_or_else(|| Close::new(Close::INVALID_DATA, "Invalid UTF-8"))
        } else {
            Ok(Message::Binary(bytes))
        }
    }
}

/// What the reader hands to the handler: a message that arrived whole, or, for a handler
/// whose `on_data` takes a [`MessageStream`], a fragmented message as it arrives.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// A whole message.
    Message(Message),
    /// A fragmented message, delivered as its frames arrive.
    Stream(MessageStream),
    /// The peer broke the protocol after the messages before this: the handler queues this
    /// close behind its replies to them.
    Fail(Close),
}

impl crate::rt::queue::Weighted for Incoming {
    /// A message weighs its bytes; a stream or a close nothing, a stream's chunks being
    /// bounded by the stream.
    fn weight(&self) -> usize {
        match self {
            Incoming::Message(message) => message.len(),
            Incoming::Stream(_) | Incoming::Fail(_) => 0,
        }
    }
}

impl From<Message> for MessageStream {
    /// A stream of the message's bytes in one chunk.
    fn from(message: Message) -> Self {
        MessageStream {
            text: message.is_text(),
            chunks: Chunks::Whole(Some(message.into_bytes())),
        }
    }
}

impl Stream for MessageStream {
    type Item = Result<Bytes, Close>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_chunk(cx).map(Result::transpose)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_whole_message_is_one_chunk() {
        let mut stream = MessageStream::from(Message::text("héllo"));
        assert!(stream.is_text());
        assert_eq!(stream.next_chunk().await, Ok(Some(Bytes::from("héllo"))));
        assert_eq!(stream.next_chunk().await, Ok(None));
        let empty = MessageStream::from(Message::binary(Vec::new()));
        assert_eq!(empty.into_message().await, Ok(Message::binary(Vec::new())));
    }

    #[tokio::test]
    async fn live_chunks_end_or_fail() {
        let (feed, stream) = MessageStream::live(true);
        let tx = feed.tx.clone();
        tx.send(Piece::Chunk(Bytes::from_static(&[0xC3])))
            .await
            .unwrap();
        tx.send(Piece::Chunk(Bytes::from_static(&[0xA9, b'!'])))
            .await
            .unwrap();
        let collect = tokio::spawn(stream.into_message());
        tx.send(Piece::End).await.unwrap();
        assert_eq!(collect.await.unwrap(), Ok(Message::text("é!")));

        let (feed, mut stream) = MessageStream::live(false);
        feed.tx
            .send(Piece::Chunk(Bytes::from_static(b"a")))
            .await
            .unwrap();
        feed.fail(Close::new(Close::TOO_BIG, "Message too big"));
        assert_eq!(
            stream.next_chunk().await,
            Ok(Some(Bytes::from_static(b"a")))
        );
        assert_eq!(stream.next_chunk().await.unwrap_err().code, Close::TOO_BIG);

        let (feed, mut stream) = MessageStream::live(false);
        drop(feed);
        assert_eq!(stream.next_chunk().await.unwrap_err().code, Close::ABNORMAL);
    }
}
