//! The room-history test protocol, shared by the one-node tests (`tests/server/history.rs`)
//! and the cluster tests (`tests/cluster/history.rs`). Commands, one per text message: `join
//! ROOM` or `join ROOM OFFSET EPOCH` (answered `joined ROOM EPOCH OFFSET RECOVERED REASON`
//! after the replay, or `error ...`), `say ROOM TEXT` (one word). Recorded messages reach
//! members as `ROOM EPOCH OFFSET TEXT`; rooms whose name starts with `tmp` keep no history.

use std::time::Duration;

use ws::{ClientId, Endpoint, Epoch, History, Message, NotRecovered, Position, Recipients};

/// Handles one command of the protocol.
pub(crate) async fn command(endpoint: &Endpoint, id: ClientId, text: &str) {
    let words: Vec<&str> = text.splitn(4, ' ').collect();
    match words[..] {
        ["join", room] => join(endpoint, id, room, None).await,
        ["join", room, offset, epoch] => {
            let since = Position::new(offset.parse().unwrap(), epoch.parse().unwrap());
            join(endpoint, id, room, Some(since)).await;
        }
        ["say", room, text] => {
            endpoint.deliver(Recipients::room(room), text);
        }
        _ => panic!("unknown command {text:?}"),
    }
}

async fn join(endpoint: &Endpoint, id: ClientId, room: &str, since: Option<Position>) {
    let joined = endpoint
        .join_since(id, room, since)
        .then_send(|r| {
            let reason = r.reason.map_or("-", NotRecovered::as_str);
            let (epoch, offset, ok) = (r.position.epoch, r.position.offset, r.recovered);
            Some(format!("joined {room} {epoch} {offset} {ok} {reason}").into())
        })
        .await;
    if let Err(error) = joined {
        let _ = endpoint.send(id, format!("error {error}"));
    }
}

/// Keeps `keep` messages for 5 minutes in every room but `tmp*`, and writes each with its
/// position.
pub(crate) fn history(keep: usize) -> History {
    History::new(keep, Duration::from_secs(300))
        .rooms(|room| !room.starts_with("tmp"))
        .format(|room, at, message| {
            let text = message.as_text().unwrap_or_default();
            Message::text(format!("{room} {} {} {text}", at.epoch, at.offset))
        })
}

/// A `joined` reply.
#[derive(Debug)]
pub(crate) struct Joined {
    pub(crate) epoch: Epoch,
    pub(crate) offset: u64,
    pub(crate) recovered: bool,
    pub(crate) reason: String,
}

pub(crate) fn joined(reply: &str) -> Joined {
    let words: Vec<&str> = reply.split(' ').collect();
    assert_eq!(words[0], "joined", "{reply}");
    Joined {
        epoch: words[2].parse().unwrap(),
        offset: words[3].parse().unwrap(),
        recovered: words[4] == "true",
        reason: words[5].to_owned(),
    }
}

/// A recorded message as a member got it: its position and text.
pub(crate) fn recorded(frame: &str) -> (Position, String) {
    let words: Vec<&str> = frame.splitn(4, ' ').collect();
    assert_eq!(words.len(), 4, "{frame}");
    let at = Position::new(words[2].parse().unwrap(), words[1].parse().unwrap());
    (at, words[3].to_owned())
}
