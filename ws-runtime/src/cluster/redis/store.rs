//! The Redis backplane as the cluster's history [`Store`] (ADR 0003, "Storage"): per room a
//! stream `{prefix}:history:{room}` whose entry ids are the offsets (fields `k` kind, `t`
//! Redis time in ms, `m` payload) and a hash `{prefix}:history-meta:{room}` (`e` epoch, `o`
//! last offset); two Lua scripts, `append.lua` (sent in the publish pipeline, so ordered with
//! the node's envelopes) and `read.lua` (on a clone of the publish connection); and the
//! presence calls, whose commands and reads are `presence.rs`'s.

use std::time::Duration;

use redis::Value;
use redis::aio::MultiplexedConnection;
use tokio::sync::oneshot;

use super::super::backplane::{Backplane, Topic};
use super::super::id::{ClientId, NodeId, Room, User};
use super::super::position::{Epoch, Position};
use super::super::store::{Append, Read, Store, StoreError, StoreFuture, Unavailable};
use super::{Link, Outgoing, RESPONSE_TIMEOUT, Redis, bulk, flatten, lock, millis, presence};
use crate::message::Message;

/// The `append` script: records a message and publishes its envelope.
const APPEND: &str = include_str!("append.lua");
/// The `read` script: a room's epoch, top and entries after an offset.
const READ: &str = include_str!("read.lua");
/// A room's meta hash (its epoch and top) outlives its last append or read by this.
const META_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// The SHA1s of the scripts, as `SCRIPT LOAD` answered them on the publish connection.
pub(super) struct Scripts {
    append: String,
    read: String,
}

/// What a read needs: a clone of the working publish connection (multiplexed, so a read
/// waits for nothing queued before it) and the read script's SHA1.
#[derive(Clone)]
pub(super) struct Reader {
    connection: MultiplexedConnection,
    read: String,
}

impl Scripts {
    /// Loads both scripts, in one round trip.
    pub(super) async fn load(connection: &mut MultiplexedConnection) -> Result<Scripts, String> {
        let mut pipeline = redis::pipe();
        pipeline
            .cmd("SCRIPT")
            .arg("LOAD")
            .arg(APPEND)
            .cmd("SCRIPT")
            .arg("LOAD")
            .arg(READ);
        let loaded = tokio::time::timeout(
            RESPONSE_TIMEOUT,
            pipeline.query_async::<(String, String)>(connection),
        )
        .await;
        let (append, read) = flatten(loaded)?;
        Ok(Scripts { append, read })
    }

    /// What reads use while `connection` works.
    pub(super) fn reader(&self, connection: &MultiplexedConnection) -> Reader {
        Reader {
            connection: connection.clone(),
            read: self.read.clone(),
        }
    }

    /// The EVALSHA of the `append` script for one message.
    pub(super) fn append(&self, link: &Link, append: &Append) -> redis::Cmd {
        let kind = if append.message.is_binary() { "b" } else { "t" };
        let keep = i64::try_from(append.keep).unwrap_or(i64::MAX).max(1);
        let mut command = redis::cmd("EVALSHA");
        command
            .arg(&self.append)
            .arg(2)
            .arg(stream_key(&link.prefix, &append.room))
            .arg(meta_key(&link.prefix, &append.room))
            .arg(link.channel(&Topic::Room(append.room.clone())))
            .arg(&append.head[..])
            .arg(&append.tail[..])
            .arg(kind)
            .arg(append.message.as_bytes())
            .arg(keep)
            .arg(millis(append.ttl).max(1))
            .arg(millis(META_TTL))
            .arg(Epoch::random().as_str());
        command
    }
}

/// The stream of a room's messages.
fn stream_key(prefix: &str, room: &Room) -> String {
    format!("{prefix}:history:{}", room.as_str())
}

/// The hash of a room's epoch (`e`) and last offset (`o`).
fn meta_key(prefix: &str, room: &Room) -> String {
    format!("{prefix}:history-meta:{}", room.as_str())
}

impl Store for Redis {
    fn enter(&self, room: &Room, id: ClientId, user: Option<&User>) -> Result<(), Unavailable> {
        self.enqueue(Outgoing::Commands(presence::enter(
            &self.prefix,
            room,
            id,
            user,
        )))
    }

    fn exit(&self, room: &Room, id: ClientId) -> Result<(), Unavailable> {
        self.enqueue(Outgoing::Commands(presence::exit(&self.prefix, room, id)))
    }

    fn alive(&self, node: NodeId, ttl: Duration, refresh: &[Room]) -> Result<(), Unavailable> {
        self.enqueue(Outgoing::Commands(presence::alive(
            &self.prefix,
            node,
            ttl,
            refresh,
        )))
    }

    fn members(&self, room: &Room) -> StoreFuture<'_, Vec<(ClientId, Option<User>)>> {
        let connection = self.reader().map(|reader| reader.connection);
        Box::pin(presence::members(connection, &self.prefix, room.clone()))
    }

    fn append(&self, append: Append) -> Result<StoreFuture<'static, Position>, Unavailable> {
        let (reply, answer) = oneshot::channel();
        self.enqueue(Outgoing::Append { append, reply })?;
        Ok(Box::pin(async move {
            // The publisher answers every append it takes; without an answer, it was stopped
            // (aborted) with this one perhaps sent.
            answer.await.unwrap_or_else(|_| {
                Err(StoreError::Uncertain(
                    "the Redis backplane stopped before Redis answered".to_owned(),
                ))
            })
        }))
    }

    fn read(&self, room: &Room, after: u64, limit: usize, ttl: Duration) -> StoreFuture<'_, Read> {
        let reader = self.reader();
        let stream = stream_key(&self.prefix, room);
        let meta = meta_key(&self.prefix, room);
        let command = move |sha: &str| {
            let mut command = redis::cmd("EVALSHA");
            command
                .arg(sha)
                .arg(2)
                .arg(&stream)
                .arg(&meta)
                .arg(after)
                // The script's Lua numbers print without an exponent below 1e14.
                .arg(u32::try_from(limit).unwrap_or(u32::MAX))
                .arg(millis(ttl))
                .arg(Epoch::random().as_str())
                .arg(millis(META_TTL));
            command
        };
        Box::pin(async move {
            let Some(Reader {
                mut connection,
                read,
            }) = reader
            else {
                return Err(StoreError::Unavailable("the Redis link is down".to_owned()));
            };
            let answered = tokio::time::timeout(RESPONSE_TIMEOUT, async {
                match command(&read).query_async::<Value>(&mut connection).await {
                    // The script cache was emptied (SCRIPT FLUSH, a restart): a read is not
                    // ordered with anything, so it loads the script itself and tries again.
                    Err(error) if is_noscript(&error) => {
                        let read = redis::cmd("SCRIPT")
                            .arg("LOAD")
                            .arg(READ)
                            .query_async::<String>(&mut connection)
                            .await?;
                        command(&read).query_async::<Value>(&mut connection).await
                    }
                    answer => answer,
                }
            })
            .await;
            let answer = flatten(answered).map_err(StoreError::Unavailable)?;
            read_answer(answer)
        })
    }
}

impl Redis {
    /// What reads use, while the link is up.
    fn reader(&self) -> Option<Reader> {
        if self.is_up() {
            lock(&self.shared.reader).clone()
        } else {
            None
        }
    }
}

fn is_noscript(error: &redis::RedisError) -> bool {
    error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript)
}

/// The position in the `append` script's answer `{offset, epoch}`.
pub(super) fn appended(answer: &Value) -> Result<Position, StoreError> {
    let invalid = || StoreError::Invalid(format!("the append script answered {answer:?}"));
    let Value::Array(parts) = answer else {
        return Err(invalid());
    };
    match &parts[..] {
        [offset, epoch] => match (number(offset), epoch_of(epoch)) {
            (Some(offset), Some(epoch)) => Ok(Position::new(offset, epoch)),
            _ => Err(invalid()),
        },
        _ => Err(invalid()),
    }
}

/// The `read` script's answer `{epoch, top, {id, kind, payload, ...}}` as a [`Read`].
fn read_answer(answer: Value) -> Result<Read, StoreError> {
    let invalid = |what: &str| StoreError::Invalid(format!("the read script's answer: {what}"));
    let Value::Array(parts) = answer else {
        return Err(invalid("not an array"));
    };
    let [epoch, top, Value::Array(entries)] = &parts[..] else {
        return Err(invalid("not {epoch, top, entries}"));
    };
    let epoch = epoch_of(epoch).ok_or_else(|| invalid("the epoch"))?;
    let top = number(top).ok_or_else(|| invalid("the top offset"))?;
    let mut read = Vec::with_capacity(entries.len() / 3);
    for entry in entries.chunks(3) {
        let [id, kind, payload] = entry else {
            return Err(invalid("a cut entry"));
        };
        let offset = text(id)
            .and_then(|id| id.strip_suffix("-0"))
            .and_then(|offset| offset.parse().ok())
            .ok_or_else(|| invalid("an entry id that is not {offset}-0"))?;
        let payload = bulk(payload).ok_or_else(|| invalid("a payload"))?;
        let message = match bulk(kind) {
            Some(b"t") => Message::text(
                String::from_utf8(payload.to_vec())
                    .map_err(|_| invalid("a text message that is not UTF-8"))?,
            ),
            Some(b"b") => Message::binary(payload.to_vec()),
            _ => return Err(invalid("a kind that is neither t nor b")),
        };
        read.push((offset, message));
    }
    Ok(Read::new(Position::new(top, epoch), read))
}

fn text(value: &Value) -> Option<&str> {
    std::str::from_utf8(bulk(value)?).ok()
}

/// An offset: an integer reply, or its decimal text.
fn number(value: &Value) -> Option<u64> {
    match value {
        Value::Int(n) => u64::try_from(*n).ok(),
        other => text(other)?.parse().ok(),
    }
}

fn epoch_of(value: &Value) -> Option<Epoch> {
    text(value)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    #[test]
    fn answers_are_read_and_garbage_is_invalid() {
        let epoch: Epoch = "abcd2345".parse().unwrap();
        assert_eq!(
            appended(&Value::Array(vec![Value::Int(7), bulk("abcd2345")])),
            Ok(Position::new(7, epoch))
        );
        for bad in [
            Value::Int(7),
            Value::Array(vec![Value::Int(-1), bulk("abcd2345")]),
            Value::Array(vec![Value::Int(1), bulk("not an epoch")]),
        ] {
            assert!(matches!(appended(&bad), Err(StoreError::Invalid(_))));
        }
        let entries = vec![
            bulk("3-0"),
            bulk("t"),
            bulk("hi"),
            bulk("4-0"),
            bulk("b"),
            Value::BulkString(vec![0xff]),
        ];
        let read = read_answer(Value::Array(vec![
            bulk("abcd2345"),
            bulk("4"),
            Value::Array(entries),
        ]))
        .unwrap();
        assert_eq!(read.top, Position::new(4, epoch));
        assert_eq!(
            read.entries,
            [(3, Message::text("hi")), (4, Message::binary(vec![0xff]))]
        );
        for entries in [
            vec![bulk("3-0"), bulk("t")],
            vec![bulk("3-0"), bulk("t"), Value::BulkString(vec![0xff])],
            vec![bulk("3-1"), bulk("t"), bulk("x")],
            vec![bulk("3-0"), bulk("x"), bulk("x")],
        ] {
            let answer = Value::Array(vec![bulk("abcd2345"), bulk("4"), Value::Array(entries)]);
            assert!(matches!(read_answer(answer), Err(StoreError::Invalid(_))));
        }
    }
}
