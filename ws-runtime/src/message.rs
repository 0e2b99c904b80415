//! Messages, close codes and the conversion of a received message into what `on_data` takes.

use std::fmt;

use bytes::Bytes;
use bytestring::ByteString;

/// A complete WebSocket data message: text or binary.
///
/// Cloning is cheap: the payload is reference-counted, so a message handed to
/// [`Endpoint::broadcast`](crate::Endpoint::broadcast) shares one buffer among all receivers.
///
/// ```
/// use ws::Message;
///
/// let hello = Message::text("hello");
/// assert_eq!(hello.as_text(), Some("hello"));
/// let raw = Message::binary(vec![1, 2, 3]);
/// assert_eq!(raw.as_bytes(), &[1, 2, 3]);
/// assert_eq!(Message::from("hi"), Message::text("hi"));
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Message {
    /// A text message; its UTF-8 has been validated.
    Text(Text),
    /// A binary message.
    Binary(Bytes),
}

impl Message {
    /// A text message.
    pub fn text(text: impl Into<Text>) -> Self {
        Message::Text(text.into())
    }

    /// A binary message.
    pub fn binary(bytes: impl Into<Bytes>) -> Self {
        Message::Binary(bytes.into())
    }

    /// Whether this is a text message.
    pub fn is_text(&self) -> bool {
        matches!(self, Message::Text(_))
    }

    /// Whether this is a binary message.
    pub fn is_binary(&self) -> bool {
        matches!(self, Message::Binary(_))
    }

    /// The text of a text message, `None` for a binary one.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Message::Text(text) => Some(text.as_str()),
            Message::Binary(_) => None,
        }
    }

    /// The payload, text or binary, as bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Message::Text(text) => text.as_str().as_bytes(),
            Message::Binary(bytes) => bytes,
        }
    }

    /// The payload as [`Bytes`], without copying.
    pub fn into_bytes(self) -> Bytes {
        match self {
            Message::Text(text) => text.into_bytes(),
            Message::Binary(bytes) => bytes,
        }
    }

    /// Payload length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Message::Text(text) => f.debug_tuple("Text").field(&text.as_str()).finish(),
            Message::Binary(bytes) => f.debug_tuple("Binary").field(bytes).finish(),
        }
    }
}

impl From<&str> for Message {
    fn from(text: &str) -> Self {
        Message::text(text)
    }
}

impl From<String> for Message {
    fn from(text: String) -> Self {
        Message::text(text)
    }
}

impl From<Text> for Message {
    fn from(text: Text) -> Self {
        Message::Text(text)
    }
}

impl From<Vec<u8>> for Message {
    fn from(bytes: Vec<u8>) -> Self {
        Message::binary(bytes)
    }
}

impl From<&[u8]> for Message {
    fn from(bytes: &[u8]) -> Self {
        Message::binary(Bytes::copy_from_slice(bytes))
    }
}

impl From<Bytes> for Message {
    fn from(bytes: Bytes) -> Self {
        Message::Binary(bytes)
    }
}

/// The payload of a text message: UTF-8, reference-counted, cheap to clone.
///
/// Dereferences to `str`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Text(ByteString);

impl Text {
    /// The text as `&str`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Text of these bytes, or `None` when they are not UTF-8. Validated with SIMD
    /// (simdutf8): std's validator, which `ByteString::try_from` runs, was the largest
    /// user-space cost of echoing non-ASCII text.
    #[allow(unsafe_code)]
    #[inline]
    pub(crate) fn from_utf8(payload: Bytes) -> Option<Self> {
        simdutf8::basic::from_utf8(&payload).ok()?;
        // SAFETY: `payload` was validated as UTF-8 just above, and `Bytes` is immutable.
        Some(Text(unsafe { ByteString::from_bytes_unchecked(payload) }))
    }

    /// The UTF-8 bytes, without copying.
    pub(crate) fn into_bytes(self) -> Bytes {
        self.0.into_bytes()
    }
}

impl std::ops::Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for Text {
    fn from(text: &str) -> Self {
        Text(ByteString::from(text))
    }
}

impl From<String> for Text {
    fn from(text: String) -> Self {
        Text(ByteString::from(text))
    }
}

impl From<Text> for String {
    fn from(text: Text) -> Self {
        text.as_str().to_owned()
    }
}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// How a connection ended: the close code and reason handed to `on_close`.
///
/// The code is the one that really ended the connection: the peer's own code when it closed
/// first (1005 when its close frame had none), the code the server sent when the server
/// closed first, [`Close::ABNORMAL`] (1006) when TCP was lost without a close frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Close {
    /// The close code (RFC 6455 §7.4).
    pub code: u16,
    /// The close reason; may be empty.
    pub reason: String,
}

impl Close {
    /// 1000: normal closure.
    pub const NORMAL: u16 = 1000;
    /// 1001: the endpoint is going away (server shutdown, page navigation).
    pub const GOING_AWAY: u16 = 1001;
    /// 1002: protocol error.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// 1003: a data type the endpoint cannot accept (binary to a text-only handler).
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// 1005: the peer's close frame carried no code. Never sent on the wire.
    pub const NO_STATUS: u16 = 1005;
    /// 1006: the connection was lost without a close frame. Never sent on the wire.
    pub const ABNORMAL: u16 = 1006;
    /// 1007: a text message or close reason was not valid UTF-8.
    pub const INVALID_DATA: u16 = 1007;
    /// 1008: a policy was violated (slow consumer, heartbeat).
    pub const POLICY_VIOLATION: u16 = 1008;
    /// 1009: a message or frame was larger than the configured limit.
    pub const TOO_BIG: u16 = 1009;
    /// 1011: the server hit an unexpected condition (a hook panicked or returned `Err`).
    pub const INTERNAL_ERROR: u16 = 1011;
    /// 1012: the service is restarting; the client may reconnect (sent to a room's members
    /// when messages of the room were lost before they could be delivered: see
    /// [`History`](crate::History)).
    pub const SERVICE_RESTART: u16 = 1012;

    /// A close with this code and reason.
    pub fn new(code: u16, reason: impl Into<String>) -> Self {
        Close {
            code,
            reason: reason.into(),
        }
    }

    /// Whether `code` may be sent in a close frame (RFC 6455 §7.4): 1000–1003, 1007–1011,
    /// 1012–1014, and 3000–4999. 1004–1006, 1015 and anything else are refused.
    pub fn is_sendable(code: u16) -> bool {
        matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

impl fmt::Display for Close {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.reason.is_empty() {
            write!(f, "{}", self.code)
        } else {
            write!(f, "{} ({})", self.code, self.reason)
        }
    }
}

impl std::error::Error for Close {}

/// A close reason is at most 123 bytes (125 minus the code); cut at a character boundary.
pub(crate) fn truncate_reason(reason: &str) -> &str {
    if reason.len() <= 123 {
        return reason;
    }
    let mut end = 123;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

/// What `on_data` may take as its message parameter.
///
/// The runtime receives a [`Message`] and converts it with this trait before calling
/// `on_data`; a conversion that fails closes the connection with the returned [`Close`]
/// (the handler is not called). Implemented for [`Message`] (always succeeds),
/// [`String`] and [`Text`] (a binary message closes with 1003), and `Vec<u8>` and [`Bytes`]
/// (text arrives as its UTF-8 bytes). Implement it for your own types to decode messages once,
/// in one place.
///
/// ```
/// use ws::{Close, FromMessage, Message};
///
/// struct Command(String);
///
/// impl FromMessage for Command {
///     fn from_message(message: Message) -> Result<Self, Close> {
///         match message.as_text() {
///             Some(text) if text.starts_with('/') => Ok(Command(text[1..].to_owned())),
///             _ => Err(Close::new(Close::UNSUPPORTED_DATA, "expected a /command")),
///         }
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`on_data` cannot take a `{Self}` as its message",
    label = "this type does not implement `ws::FromMessage`",
    note = "the message parameter of `on_data` may be `ws::Message`, `String`, `ws::Text`, `Vec<u8>`, `bytes::Bytes`, or a type that implements `ws::FromMessage`"
)]
pub trait FromMessage: Sized {
    /// Converts a received message, or says how to close the connection instead.
    ///
    /// # Errors
    ///
    /// The [`Close`] to send when the message is not acceptable.
    fn from_message(message: Message) -> Result<Self, Close>;
}

impl FromMessage for Message {
    fn from_message(message: Message) -> Result<Self, Close> {
        Ok(message)
    }
}

impl FromMessage for Text {
    fn from_message(message: Message) -> Result<Self, Close> {
        match message {
            Message::Text(text) => Ok(text),
            Message::Binary(_) => Err(Close::new(
                Close::UNSUPPORTED_DATA,
                "binary messages are not accepted",
            )),
        }
    }
}

impl FromMessage for String {
    fn from_message(message: Message) -> Result<Self, Close> {
        Text::from_message(message).map(String::from)
    }
}

impl FromMessage for Bytes {
    fn from_message(message: Message) -> Result<Self, Close> {
        Ok(message.into_bytes())
    }
}

impl FromMessage for Vec<u8> {
    fn from_message(message: Message) -> Result<Self, Close> {
        Ok(message.into_bytes().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_is_truncated_on_a_char_boundary() {
        let long = "é".repeat(100);
        let cut = truncate_reason(&long);
        assert!(cut.len() <= 123);
        assert_eq!(cut.len() % 2, 0);
        assert_eq!(truncate_reason("short"), "short");
    }

    #[test]
    fn conversions() {
        assert_eq!(
            String::from_message(Message::text("a")).ok(),
            Some("a".into())
        );
        let err = String::from_message(Message::binary(vec![1])).unwrap_err();
        assert_eq!(err.code, Close::UNSUPPORTED_DATA);
        assert_eq!(
            Vec::<u8>::from_message(Message::text("ab")).ok(),
            Some(b"ab".to_vec())
        );
        assert_eq!(Message::text("héllo").len(), 6);
        assert!(Message::binary(Vec::new()).is_empty());
    }

    #[test]
    fn sendable_codes() {
        for ok in [1000, 1001, 1003, 1007, 1011, 1014, 3000, 4999] {
            assert!(Close::is_sendable(ok), "{ok}");
        }
        for bad in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000] {
            assert!(!Close::is_sendable(bad), "{bad}");
        }
    }
}
