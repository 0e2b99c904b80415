//! Presence in Redis (ADR 0003, "Presence: each node owns its members, Redis holds a copy with
//! TTLs"): the commands of `enter`, `exit` and `alive`, which `store.rs` queues in the publish
//! pipeline, and the read of a room's members, on a clone of the publish connection.
//!
//! | key | type | content |
//! | --- | --- | --- |
//! | `{prefix}:alive:{node}` | string | set with each `alive`, expires after its TTL |
//! | `{prefix}:presence-nodes:{room}` | set | the nodes (8 hex digits) with members in the room: added on each `enter`; a reader removes a node whose hash is gone |
//! | `{prefix}:presence:{node}:{room}` | hash | client number (decimal) → `""` without a user, else `u` and the user's key |
//!
//! Both presence keys are kept [`PRESENCE_KEEP`] after each `enter`, and after each `alive`
//! whose refresh names the room; `exit` removes the client's field (the last one removes the
//! hash). The fixed part of each key comes before the room's name, and a node is always 8
//! digits, so no room name makes one key look like another.

use std::collections::BTreeMap;

use redis::Value;
use redis::aio::MultiplexedConnection;

use super::super::id::{ClientId, NodeId, Room, User};
use super::super::store::{PRESENCE_KEEP, StoreError};
use super::{RESPONSE_TIMEOUT, bulk, flatten, millis};

/// Removes node `ARGV[1]` from the set `KEYS[1]` if its hash `KEYS[2]` is gone, in one step:
/// a node whose first member enters meanwhile (`HSET`, then `SADD`) keeps its place.
const FORGET: &str = "if redis.call('EXISTS', KEYS[2]) == 0 then \
                      return redis.call('SREM', KEYS[1], ARGV[1]) end return 0";

/// A room's members as a read gives them.
type Members = Vec<(ClientId, Option<User>)>;
/// A node in a room's set, and the set's member that names it.
type Listed = (NodeId, Vec<u8>);

fn alive_key(prefix: &str, node: NodeId) -> String {
    format!("{prefix}:alive:{node}")
}

/// The set of the nodes with members in `room`.
fn nodes_key(prefix: &str, room: &Room) -> String {
    format!("{prefix}:presence-nodes:{}", room.as_str())
}

/// The hash of `node`'s members in `room`.
fn members_key(prefix: &str, node: NodeId, room: &Room) -> String {
    format!("{prefix}:presence:{node}:{}", room.as_str())
}

/// A member's value in its hash: empty without a user, else `u` and the key, so that a user
/// whose key is empty is told apart from none.
fn user_value(user: Option<&User>) -> String {
    user.map_or_else(String::new, |user| format!("u{}", user.as_str()))
}

fn pexpire(key: &str, keep: u64) -> redis::Cmd {
    let mut command = redis::cmd("PEXPIRE");
    command.arg(key).arg(keep);
    command
}

/// Client `id` is in `room` as `user`: its field in its node's hash, and the node in the
/// room's set (after the field: see [`FORGET`]), both kept [`PRESENCE_KEEP`].
pub(super) fn enter(
    prefix: &str,
    room: &Room,
    id: ClientId,
    user: Option<&User>,
) -> Vec<redis::Cmd> {
    let keep = millis(PRESENCE_KEEP);
    let members = members_key(prefix, id.node(), room);
    let nodes = nodes_key(prefix, room);
    let mut set = redis::cmd("HSET");
    set.arg(&members).arg(id.number()).arg(user_value(user));
    let mut add = redis::cmd("SADD");
    add.arg(&nodes).arg(id.node().to_string());
    vec![set, pexpire(&members, keep), add, pexpire(&nodes, keep)]
}

/// Client `id` left `room`: its field goes (the room's set keeps the node until a reader
/// finds its hash gone).
pub(super) fn exit(prefix: &str, room: &Room, id: ClientId) -> Vec<redis::Cmd> {
    let mut delete = redis::cmd("HDEL");
    delete
        .arg(members_key(prefix, id.node(), room))
        .arg(id.number());
    vec![delete]
}

/// `node` is alive for `ttl`; its entries in the rooms of `refresh` are kept another
/// [`PRESENCE_KEEP`] (the hash, and the room's set, which must outlive it).
pub(super) fn alive(
    prefix: &str,
    node: NodeId,
    ttl: std::time::Duration,
    refresh: &[Room],
) -> Vec<redis::Cmd> {
    let keep = millis(PRESENCE_KEEP);
    let mut commands = Vec::with_capacity(1 + 2 * refresh.len());
    let mut set = redis::cmd("SET");
    set.arg(alive_key(prefix, node))
        .arg("1")
        .arg("PX")
        .arg(millis(ttl).max(1));
    commands.push(set);
    for room in refresh {
        commands.push(pexpire(&members_key(prefix, node, room), keep));
        commands.push(pexpire(&nodes_key(prefix, room), keep));
    }
    commands
}

/// The members of `room` on the nodes whose alive key is there: the room's set, then one
/// pipeline of the nodes' alive keys and hashes, within the response timeout. The nodes whose
/// hash is gone are then removed from the set, without waiting (a failure is left to the next
/// read).
pub(super) async fn members(
    connection: Option<MultiplexedConnection>,
    prefix: &str,
    room: Room,
) -> Result<Members, StoreError> {
    let Some(mut connection) = connection else {
        return Err(StoreError::Unavailable("the Redis link is down".to_owned()));
    };
    let deadline = tokio::time::Instant::now() + RESPONSE_TIMEOUT;
    let nodes_key = nodes_key(prefix, &room);
    let mut list = redis::cmd("SMEMBERS");
    list.arg(&nodes_key);
    let listed = list.query_async::<Value>(&mut connection);
    let listed = flatten(tokio::time::timeout_at(deadline, listed).await)
        .map_err(StoreError::Unavailable)?;
    let nodes = listed_nodes(&listed)?;
    if nodes.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipeline = redis::pipe();
    pipeline.cmd("MGET");
    for &(node, _) in &nodes {
        pipeline.arg(alive_key(prefix, node));
    }
    for &(node, _) in &nodes {
        pipeline
            .cmd("HGETALL")
            .arg(members_key(prefix, node, &room));
    }
    let answers = pipeline.query_async::<Vec<Value>>(&mut connection);
    let answers = flatten(tokio::time::timeout_at(deadline, answers).await)
        .map_err(StoreError::Unavailable)?;
    let (members, gone) = gather(&nodes, answers)?;
    if !gone.is_empty() {
        let mut forget = redis::pipe();
        for (node, member) in gone {
            forget
                .cmd("EVAL")
                .arg(FORGET)
                .arg(2)
                .arg(&nodes_key)
                .arg(members_key(prefix, node, &room))
                .arg(member);
        }
        tokio::spawn(async move {
            let forgotten = forget.query_async::<Value>(&mut connection);
            let _ = tokio::time::timeout(RESPONSE_TIMEOUT, forgotten).await;
        });
    }
    Ok(members)
}

fn invalid(what: &str) -> StoreError {
    StoreError::Invalid(format!("the presence read: {what}"))
}

/// The nodes of a room's set (`SMEMBERS`), each with the member that names it, once each.
fn listed_nodes(listed: &Value) -> Result<Vec<Listed>, StoreError> {
    let (Value::Array(listed) | Value::Set(listed)) = listed else {
        return Err(invalid("the room's set is not a set"));
    };
    let mut nodes = BTreeMap::new();
    for member in listed {
        let node = bulk(member)
            .and_then(|member| std::str::from_utf8(member).ok())
            .and_then(|member| member.parse::<NodeId>().ok())
            .ok_or_else(|| invalid("the room's set holds something other than a node"))?;
        nodes.insert(node, bulk(member).unwrap_or_default().to_vec());
    }
    Ok(nodes.into_iter().collect())
}

/// The members of the live nodes among `nodes`, from the answers `MGET` of their alive keys,
/// then `HGETALL` of each one's hash; and the nodes whose hash is gone.
fn gather(nodes: &[Listed], answers: Vec<Value>) -> Result<(Members, Vec<Listed>), StoreError> {
    let mut answers = answers.into_iter();
    let alive = match answers.next() {
        Some(Value::Array(alive)) if alive.len() == nodes.len() => alive,
        _ => return Err(invalid("the alive keys' answer")),
    };
    if answers.len() != nodes.len() {
        return Err(invalid("not one hash per node"));
    }
    let (mut members, mut gone) = (Vec::new(), Vec::new());
    for ((node, member), (alive, hash)) in nodes.iter().zip(alive.iter().zip(answers)) {
        let entries = entries(hash)?;
        if entries.is_empty() {
            gone.push((*node, member.clone()));
        } else if !matches!(alive, Value::Nil) {
            for (number, user) in entries {
                members.push((
                    ClientId::new(*node, client_number(&number)?),
                    user_of(&user)?,
                ));
            }
        }
    }
    Ok((members, gone))
}

/// A hash's fields and values (`HGETALL`: flat in RESP2, a map in RESP3).
fn entries(hash: Value) -> Result<Vec<(Value, Value)>, StoreError> {
    match hash {
        Value::Map(entries) => Ok(entries),
        Value::Array(flat) if flat.len() % 2 == 0 => {
            let mut flat = flat.into_iter();
            Ok(std::iter::from_fn(|| Some((flat.next()?, flat.next()?))).collect())
        }
        _ => Err(invalid("a node's hash")),
    }
}

/// A client's number on its node, as its field in the hash: decimal digits.
fn client_number(field: &Value) -> Result<u64, StoreError> {
    bulk(field)
        .filter(|digits| !digits.is_empty() && digits.iter().all(u8::is_ascii_digit))
        .and_then(|digits| std::str::from_utf8(digits).ok()?.parse().ok())
        .ok_or_else(|| invalid("a field that is not a client number"))
}

/// A member's user, from its value in the hash ([`user_value`]).
fn user_of(value: &Value) -> Result<Option<User>, StoreError> {
    match bulk(value) {
        Some([]) => Ok(None),
        Some([b'u', key @ ..]) => std::str::from_utf8(key)
            .map(|key| Some(User::from(key)))
            .map_err(|_| invalid("a user's key that is not UTF-8")),
        _ => Err(invalid("a value that is not a user")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(text: &[u8]) -> Value {
        Value::BulkString(text.to_vec())
    }

    fn node(text: &str) -> NodeId {
        text.parse().unwrap()
    }

    #[test]
    fn keys_put_the_fixed_part_first_and_users_tell_empty_from_none() {
        let room = Room::from("a:b");
        let n = node("0000abcd");
        assert_eq!(alive_key("ws", n), "ws:alive:0000abcd");
        assert_eq!(nodes_key("ws", &room), "ws:presence-nodes:a:b");
        assert_eq!(members_key("ws", n, &room), "ws:presence:0000abcd:a:b");
        assert_eq!(user_value(None), "");
        assert_eq!(user_value(Some(&User::from(""))), "u");
        assert_eq!(user_value(Some(&User::from("é:x"))), "ué:x");
        let id = ClientId::new(n, 7);
        let names = |commands: Vec<redis::Cmd>| -> Vec<String> {
            commands
                .iter()
                .map(|command| {
                    let args: Vec<_> = command
                        .args_iter()
                        .map(|arg| match arg {
                            redis::Arg::Simple(bytes) => {
                                String::from_utf8_lossy(bytes).into_owned()
                            }
                            _ => "<not simple>".to_owned(),
                        })
                        .collect();
                    args.join(" ")
                })
                .collect()
        };
        assert_eq!(
            names(enter("ws", &room, id, None)),
            [
                "HSET ws:presence:0000abcd:a:b 7 ",
                "PEXPIRE ws:presence:0000abcd:a:b 600000",
                "SADD ws:presence-nodes:a:b 0000abcd",
                "PEXPIRE ws:presence-nodes:a:b 600000",
            ]
        );
        assert_eq!(
            names(exit("ws", &room, id)),
            ["HDEL ws:presence:0000abcd:a:b 7"]
        );
        assert_eq!(
            names(alive("ws", n, std::time::Duration::ZERO, &[room])),
            [
                "SET ws:alive:0000abcd 1 PX 1",
                "PEXPIRE ws:presence:0000abcd:a:b 600000",
                "PEXPIRE ws:presence-nodes:a:b 600000",
            ]
        );
    }

    #[test]
    fn answers_are_read_and_garbage_is_invalid() {
        let listed = Value::Array(vec![
            string(b"0000000b"),
            string(b"0000000a"),
            string(b"0000000A"),
        ]);
        let nodes = listed_nodes(&listed).unwrap();
        let (a, b) = (node("0000000a"), node("0000000b"));
        assert_eq!(
            nodes.iter().map(|(node, _)| *node).collect::<Vec<_>>(),
            [a, b]
        );
        for garbage in [
            Value::Int(1),
            Value::Array(vec![string(b"0000000g")]),
            Value::Array(vec![string(b"a")]),
            Value::Array(vec![Value::Int(10)]),
        ] {
            assert!(matches!(
                listed_nodes(&garbage),
                Err(StoreError::Invalid(_))
            ));
        }

        let c = node("0000000c");
        let nodes = vec![
            (a, b"0000000a".to_vec()),
            (b, b"0000000b".to_vec()),
            (c, b"0000000c".to_vec()),
        ];
        let alive = Value::Array(vec![string(b"1"), Value::Nil, string(b"1")]);
        let hash_a = Value::Array(vec![string(b"1"), string(b""), string(b"2"), string(b"u")]);
        let hash_b = Value::Array(vec![string(b"3"), string(b"uada")]);
        let hash_c = Value::Array(vec![]);
        let (members, gone) = gather(&nodes, vec![alive.clone(), hash_a, hash_b, hash_c]).unwrap();
        assert_eq!(
            members,
            [
                (ClientId::new(a, 1), None),
                (ClientId::new(a, 2), Some(User::from(""))),
            ],
            "b is not alive"
        );
        assert_eq!(gone, [(c, b"0000000c".to_vec())]);

        let map = Value::Map(vec![(string(b"4"), string(b"ubob"))]);
        let empty = Value::Array(vec![]);
        let (members, _) = gather(
            &nodes,
            vec![alive.clone(), map, empty.clone(), empty.clone()],
        )
        .unwrap();
        assert_eq!(members, [(ClientId::new(a, 4), Some(User::from("bob")))]);

        for hash_a in [
            Value::Int(1),
            Value::Array(vec![string(b"1")]),
            Value::Array(vec![string(b"x"), string(b"")]),
            Value::Array(vec![string(b"+1"), string(b"")]),
            Value::Array(vec![string(b""), string(b"")]),
            Value::Array(vec![string(b"18446744073709551616"), string(b"")]),
            Value::Array(vec![string(b"1"), string(b"ada")]),
            Value::Array(vec![string(b"1"), string(b"u\xff")]),
            Value::Array(vec![string(b"1"), Value::Int(1)]),
        ] {
            let answers = vec![alive.clone(), hash_a, empty.clone(), empty.clone()];
            assert!(matches!(
                gather(&nodes, answers),
                Err(StoreError::Invalid(_))
            ));
        }
        for answers in [
            vec![alive.clone(), empty.clone(), empty.clone()],
            vec![
                Value::Array(vec![]),
                empty.clone(),
                empty.clone(),
                empty.clone(),
            ],
            vec![Value::Nil, empty.clone(), empty.clone(), empty.clone()],
        ] {
            assert!(matches!(
                gather(&nodes, answers),
                Err(StoreError::Invalid(_))
            ));
        }
    }
}
