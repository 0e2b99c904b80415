//! Typed JSON messages (feature `json`): [`Json<T>`] as `on_data`'s message, and
//! [`Message::json`] to send any `Serialize` value with any send of the [`Endpoint`].

use std::fmt;
use std::ops::{Deref, DerefMut};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cluster::ClientId;
#[cfg(test)]
use crate::endpoint::Endpoint;
use crate::message::{Close, FromMessage, Message};

// Each public item repeats `#[cfg(feature = "json")]`, although the module is gated already:
// rustdoc shows that mark on the facade's re-exports too ("Available on crate feature json").

/// A JSON message, decoded into `T` (feature `json`).
///
/// As the message parameter of `on_data`, `Json<T>` decodes each message, text or binary,
/// with `serde_json` before the hook runs. A message that does not decode into `T` (not JSON
/// at all, or JSON of another shape) never reaches `on_data`: the client is closed with
/// **1007** ([`Close::INVALID_DATA`], "inconsistent data", RFC 6455 §7.4.1) and the reason
/// `Invalid JSON: ` followed by `serde_json`'s error, cut to fit the 123 bytes a close reason
/// may have. Its `on_close` then sees that code and reason. Take a [`Message`] instead and
/// call `serde_json` yourself if a bad message should not end the connection.
///
/// To send, make a message with [`Message::json`] and give it to any send of the
/// [`Endpoint`](crate::Endpoint).
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use ws::{ClientId, Endpoint, Json, Message, websocket};
///
/// #[derive(Deserialize)]
/// #[serde(tag = "type", rename_all = "snake_case")]
/// enum Command {
///     Say { text: String },
///     Ping,
/// }
///
/// #[derive(Serialize)]
/// #[serde(tag = "type", rename_all = "snake_case")]
/// enum Event<'a> {
///     Said { from: ClientId, text: &'a str },
///     Pong,
/// }
///
/// struct Room;
///
/// #[websocket]
/// impl Room {
///     fn on_data(
///         &self,
///         endpoint: &Endpoint,
///         id: ClientId,
///         Json(command): Json<Command>,
///     ) -> Result<(), ws::BoxError> {
///         match command {
///             Command::Say { text } => {
///                 endpoint.broadcast(Message::json(&Event::Said { from: id, text: &text })?);
///             }
///             Command::Ping => endpoint.send(id, Message::json(&Event::Pong)?)?,
///         }
///         Ok(())
///     }
/// }
/// ```
#[cfg(feature = "json")]
#[cfg_attr(docsrs, doc(cfg(feature = "json")))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Json<T>(pub T);

impl<T> Json<T> {
    /// The decoded value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> Deref for Json<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for Json<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl<T> From<T> for Json<T> {
    fn from(value: T) -> Self {
        Json(value)
    }
}

/// The prefix of the close reason sent for a message that does not decode.
const INVALID_JSON: &str = "Invalid JSON: ";

/// A close reason carries at most 123 bytes (125 minus the code).
const MAX_REASON: usize = 123;

impl<T: DeserializeOwned> FromMessage for Json<T> {
    /// Decodes text or binary JSON; anything else closes with 1007 "Invalid JSON: ...".
    fn from_message(message: Message) -> Result<Self, Close> {
        serde_json::from_slice(message.as_bytes())
            .map(Json)
            .map_err(|err| Close::new(Close::INVALID_DATA, invalid_json_reason(&err)))
    }
}

/// `Invalid JSON: <error>`, cut on a character boundary to fit a close frame.
fn invalid_json_reason(err: &serde_json::Error) -> String {
    let mut reason = format!("{INVALID_JSON}{err}");
    if reason.len() > MAX_REASON {
        let mut end = MAX_REASON;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
    }
    reason
}

/// Why a value could not become a JSON message (feature `json`).
#[cfg(feature = "json")]
#[cfg_attr(docsrs, doc(cfg(feature = "json")))]
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JsonError {
    /// The value could not be serialized (a map with non-string keys, a failing `Serialize`
    /// implementation). Nothing was sent.
    #[error("cannot serialize the message as JSON: {0}")]
    Serialize(#[source] serde_json::Error),
}

impl Message {
    /// A text message holding `value` serialized as JSON (feature `json`).
    ///
    /// Serialize once and hand the message to [`Endpoint::deliver`](crate::Endpoint::deliver) or
    /// any other send: the payload is shared, not copied.
    ///
    /// ```
    /// # fn demo(endpoint: ws::Endpoint, id: ws::ClientId) -> Result<(), Box<dyn std::error::Error>> {
    /// #[derive(serde::Serialize)]
    /// struct Welcome<'a> { r#type: &'a str, id: ws::ClientId }
    ///
    /// endpoint.send(id, ws::Message::json(&Welcome { r#type: "welcome", id })?)?;
    /// endpoint.broadcast(ws::Message::json(&serde_json::json!({ "type": "tick" }))?);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// ```
    /// let message = ws::Message::json(&serde_json::json!({ "type": "tick", "n": 1 }))?;
    /// assert_eq!(message.as_text(), Some(r#"{"n":1,"type":"tick"}"#));
    /// # Ok::<(), ws::JsonError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`JsonError::Serialize`] if `value` cannot be serialized.
    #[cfg(feature = "json")]
    #[cfg_attr(docsrs, doc(cfg(feature = "json")))]
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Message, JsonError> {
        serde_json::to_string(value)
            .map(Message::text)
            .map_err(JsonError::Serialize)
    }
}

/// A [`ClientId`] serializes as its text, `NODE-NUMBER` (feature `json`), so events can carry
/// it and clients can send it back.
impl Serialize for ClientId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A [`ClientId`] deserializes from its text, `NODE-NUMBER` (feature `json`).
impl<'de> serde::Deserialize<'de> for ClientId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl<T: fmt::Display> fmt::Display for Json<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[derive(Debug, PartialEq, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Point {
        x: i32,
        y: i32,
    }

    #[test]
    fn decodes_text_and_binary() {
        let Json(point) = Json::<Point>::from_message(Message::text(r#"{"x":1,"y":2}"#)).unwrap();
        assert_eq!(point, Point { x: 1, y: 2 });
        let binary = Message::binary(br#"{"x":3,"y":4}"#.to_vec());
        assert_eq!(
            Json::<Point>::from_message(binary).unwrap().0,
            Point { x: 3, y: 4 }
        );
    }

    #[test]
    fn bad_json_closes_with_1007() {
        let close = Json::<Point>::from_message(Message::text("{nope")).unwrap_err();
        assert_eq!(close.code, Close::INVALID_DATA);
        assert!(
            close
                .reason
                .starts_with("Invalid JSON: key must be a string"),
            "{close}"
        );
        let close = Json::<Point>::from_message(Message::text(r#"{"x":1}"#)).unwrap_err();
        assert_eq!(
            close.reason,
            "Invalid JSON: missing field `y` at line 1 column 7"
        );
    }

    #[test]
    fn long_reasons_fit_a_close_frame() {
        let field = "é".repeat(200);
        let close = Json::<Point>::from_message(Message::text(format!(r#"{{"{field}":1}}"#)))
            .map(|_| ())
            .unwrap_err();
        assert!(close.reason.len() <= MAX_REASON, "{}", close.reason.len());
        assert!(close.reason.starts_with(INVALID_JSON));
    }

    #[test]
    fn serialization_errors_are_typed() {
        let mut map = BTreeMap::new();
        map.insert(vec![1u8], 1);
        assert!(matches!(Message::json(&map), Err(JsonError::Serialize(_))));
        assert_eq!(Message::json(&[1, 2]).unwrap().as_text(), Some("[1,2]"));
        let endpoint = Endpoint::new(&crate::Config::new());
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 1));
        let client = endpoint.register(addr, None).unwrap();
        let json = serde_json::to_string(&client.id).unwrap();
        assert_eq!(json, format!("\"{}\"", client.id));
        assert_eq!(serde_json::from_str::<ClientId>(&json).unwrap(), client.id);
        assert!(serde_json::from_str::<ClientId>("1").is_err());
        assert!(serde_json::from_str::<ClientId>("\"1\"").is_err());
    }
}
