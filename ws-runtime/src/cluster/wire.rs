//! The envelope between cluster nodes: its versioned binary layout, encoded and decoded.

// The layout (docs/adr/0002-backplane.md, "The envelope"): a fixed header, then the body of
// its kind.
//
//   0 version | 1 kind | 2 flags (bit 0: binary payload) | 3..7 sender (u32 BE) | 7..11 seq (u32 BE)
//
// Lengths and counts in bodies are LEB128 varints, a client id is its node (u32 BE) and its
// number (u64 BE), a room or a reason is a length and UTF-8. The payload of a delivery is the
// rest of the envelope, so it is written with one copy and read as a slice of the buffer.

use bytes::{BufMut, Bytes, BytesMut};

use super::id::{ClientId, NodeId, Room, User};
use super::position::{Epoch, Position};
use crate::message::{Message, Text};

/// The envelope version this build writes and reads.
pub(crate) const VERSION: u8 = 1;

/// Version, kind, flags, sender and seq.
const HEADER: usize = 11;
/// A client id on the wire: node (u32) and number (u64).
const ID: usize = 12;
/// Header flags, bit 0: the message is binary. The other bits are written 0 and ignored on
/// read, so that a later build may use them within this version.
const BINARY: u8 = 0b01;
/// Heartbeat flags, bits 0 and 1; the others likewise.
const HELLO: u8 = 0b01;
const LEAVING: u8 = 0b10;
/// The longest LEB128 encoding of a u64.
const VARINT_MAX: usize = 10;

/// One envelope: who sent it, its place in that sender's sequence, and what it asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Envelope {
    pub(crate) sender: NodeId,
    /// Per sender, per topic (`all` or one destination node): 1, 2, ...; 0 on room topics.
    pub(crate) seq: u32,
    pub(crate) body: Body,
}

/// What an envelope asks of the nodes that receive it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Body {
    /// Kind 0x01: a message to every client but these.
    ToAll {
        except: Vec<ClientId>,
        message: Message,
    },
    /// Kind 0x02: a message to these clients.
    ToIds {
        ids: Vec<ClientId>,
        message: Message,
    },
    /// Kind 0x03: a message to the members of these rooms (once each), but these.
    ToRooms {
        rooms: Vec<Room>,
        except: Vec<ClientId>,
        message: Message,
    },
    /// Kind 0x07: a message recorded in a room's history at this position, to the room's
    /// members but these. Written by the history's store (the position is its to give), in
    /// three parts: [`recorded`] and [`positioned`].
    Recorded {
        room: Room,
        position: Position,
        except: Vec<ClientId>,
        message: Message,
    },
    /// Kind 0x08: this client joined (`join`) or left this room, as this user.
    Presence {
        room: Room,
        join: bool,
        id: ClientId,
        user: Option<User>,
    },
    /// Kind 0x04: close this client.
    Close {
        id: ClientId,
        code: u16,
        reason: String,
    },
    /// Kind 0x05: this client joins this room.
    Join { id: ClientId, room: Room },
    /// Kind 0x06: this client leaves this room.
    Leave { id: ClientId, room: Room },
    /// Kind 0x09: a message to every connection of these users, but these.
    ToUsers {
        users: Vec<User>,
        except: Vec<ClientId>,
        message: Message,
    },
    /// Kind 0x0A: close every connection of these users.
    CloseUsers {
        users: Vec<User>,
        code: u16,
        reason: String,
    },
    /// Kind 0x10: the sender is alive (or leaving).
    Heartbeat(Heartbeat),
    /// Kind 0x11: how many clients each node has, and which if `list`.
    CountRequest { request: u64, list: bool },
    /// Kind 0x12: one node's answer to a [`Body::CountRequest`].
    CountResponse {
        request: u64,
        count: u32,
        ids: Option<Vec<ClientId>>,
    },
}

/// What a node says of itself, periodically. Its layout is frozen across versions: it is how
/// nodes learn which version every other node reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Heartbeat {
    /// Flags bit 0: a node that just (re)joined; peers answer at once.
    pub(crate) hello: bool,
    /// Flags bit 1: a graceful stop.
    pub(crate) leaving: bool,
    /// The node's start, ms since the Unix epoch.
    pub(crate) started_ms: u64,
    /// Its open clients.
    pub(crate) clients: u32,
    /// The highest envelope version it reads.
    pub(crate) reads: u8,
}

/// Why bytes from the backplane are not an envelope this node can act on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WireError {
    #[error("envelope version {0}, this node reads {VERSION}")]
    Version(u8),
    #[error("unknown envelope kind {0:#04x}")]
    UnknownKind(u8),
    #[error("truncated envelope")]
    Truncated,
    #[error("invalid envelope: {0}")]
    Invalid(&'static str),
}

/// The kinds, one table for both directions.
#[derive(Clone, Copy)]
#[repr(u8)]
enum Kind {
    ToAll = 0x01,
    ToIds = 0x02,
    ToRooms = 0x03,
    Close = 0x04,
    Join = 0x05,
    Leave = 0x06,
    Recorded = 0x07,
    Presence = 0x08,
    ToUsers = 0x09,
    CloseUsers = 0x0A,
    Heartbeat = 0x10,
    CountRequest = 0x11,
    CountResponse = 0x12,
}

impl Kind {
    fn from_byte(byte: u8) -> Option<Kind> {
        Some(match byte {
            0x01 => Kind::ToAll,
            0x02 => Kind::ToIds,
            0x03 => Kind::ToRooms,
            0x04 => Kind::Close,
            0x05 => Kind::Join,
            0x06 => Kind::Leave,
            0x07 => Kind::Recorded,
            0x08 => Kind::Presence,
            0x09 => Kind::ToUsers,
            0x0A => Kind::CloseUsers,
            0x10 => Kind::Heartbeat,
            0x11 => Kind::CountRequest,
            0x12 => Kind::CountResponse,
            _ => return None,
        })
    }

    fn of(body: &Body) -> Kind {
        match body {
            Body::ToAll { .. } => Kind::ToAll,
            Body::ToIds { .. } => Kind::ToIds,
            Body::ToRooms { .. } => Kind::ToRooms,
            Body::Close { .. } => Kind::Close,
            Body::Join { .. } => Kind::Join,
            Body::Leave { .. } => Kind::Leave,
            Body::Recorded { .. } => Kind::Recorded,
            Body::Presence { .. } => Kind::Presence,
            Body::ToUsers { .. } => Kind::ToUsers,
            Body::CloseUsers { .. } => Kind::CloseUsers,
            Body::Heartbeat(_) => Kind::Heartbeat,
            Body::CountRequest { .. } => Kind::CountRequest,
            Body::CountResponse { .. } => Kind::CountResponse,
        }
    }
}

/// The two parts of a [`Body::Recorded`] envelope around its position, which only the store
/// knows once it has recorded the message: the header (seq 0) and the room, then the except
/// ids and the payload. [`positioned`] puts the three together; a store that writes the
/// envelope itself (Redis' script) writes the same bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Parts {
    pub(crate) head: Bytes,
    pub(crate) tail: Bytes,
}

/// The parts of a recorded message's envelope.
pub(crate) fn recorded(
    sender: NodeId,
    room: &Room,
    except: &[ClientId],
    message: &Message,
) -> Parts {
    let mut head = BytesMut::with_capacity(HEADER + VARINT_MAX + room.as_str().len());
    head.put_u8(VERSION);
    head.put_u8(Kind::Recorded as u8);
    head.put_u8(if message.is_binary() { BINARY } else { 0 });
    head.put_u32(sender.get());
    head.put_u32(0);
    put_str(&mut head, room.as_str());
    let mut tail = BytesMut::with_capacity(VARINT_MAX + except.len() * ID + message.len());
    put_ids(&mut tail, except);
    tail.put_slice(message.as_bytes());
    Parts {
        head: head.freeze(),
        tail: tail.freeze(),
    }
}

/// A position as the envelope carries it: the offset (varint), then the epoch (a length byte
/// and ASCII).
#[cfg(test)]
pub(crate) fn position_bytes(position: &Position) -> Vec<u8> {
    let mut out = BytesMut::with_capacity(VARINT_MAX + 1 + Epoch::MAX_LEN);
    put_position(&mut out, position);
    out.to_vec()
}

fn put_position(out: &mut BytesMut, position: &Position) {
    put_varint(out, position.offset);
    let epoch = position.epoch.as_str();
    // At most 32 bytes: `Epoch` refuses more.
    out.put_u8(u8::try_from(epoch.len()).unwrap_or(u8::MAX));
    out.put_slice(epoch.as_bytes());
}

/// The envelope of a recorded message: its parts around its position.
pub(crate) fn positioned(parts: &Parts, position: &Position) -> Bytes {
    let mut out = BytesMut::with_capacity(
        parts.head.len() + VARINT_MAX + 1 + Epoch::MAX_LEN + parts.tail.len(),
    );
    out.put_slice(&parts.head);
    put_position(&mut out, position);
    out.put_slice(&parts.tail);
    out.freeze()
}

/// Encodes once: the message's payload is copied once into the returned buffer.
pub(crate) fn encode(sender: NodeId, seq: u32, body: &Body) -> Bytes {
    match body {
        Body::Recorded {
            room,
            position,
            except,
            message,
        } => positioned(&recorded(sender, room, except, message), position),
        _ => encode_body(sender, seq, body),
    }
}

/// [`encode`] for every kind but [`Body::Recorded`], which is encoded in its parts.
fn encode_body(sender: NodeId, seq: u32, body: &Body) -> Bytes {
    // The exact size is reserved first, so the buffer never grows (a growth would copy the
    // payload a second time).
    let size = HEADER + body_len(body);
    let mut out = BytesMut::with_capacity(size);
    let binary = match body {
        Body::ToAll { message, .. }
        | Body::ToIds { message, .. }
        | Body::ToRooms { message, .. }
        | Body::ToUsers { message, .. } => message.is_binary(),
        _ => false,
    };
    out.put_u8(VERSION);
    out.put_u8(Kind::of(body) as u8);
    out.put_u8(if binary { BINARY } else { 0 });
    out.put_u32(sender.get());
    out.put_u32(seq);
    match body {
        Body::ToAll { except, message } => {
            put_ids(&mut out, except);
            out.put_slice(message.as_bytes());
        }
        Body::ToIds { ids, message } => {
            put_ids(&mut out, ids);
            out.put_slice(message.as_bytes());
        }
        Body::ToRooms {
            rooms,
            except,
            message,
        } => {
            put_names(&mut out, rooms);
            put_ids(&mut out, except);
            out.put_slice(message.as_bytes());
        }
        Body::ToUsers {
            users,
            except,
            message,
        } => {
            put_names(&mut out, users);
            put_ids(&mut out, except);
            out.put_slice(message.as_bytes());
        }
        Body::CloseUsers {
            users,
            code,
            reason,
        } => {
            put_names(&mut out, users);
            out.put_u16(*code);
            put_str(&mut out, reason);
        }
        Body::Close { id, code, reason } => {
            put_id(&mut out, *id);
            out.put_u16(*code);
            put_str(&mut out, reason);
        }
        Body::Join { id, room } | Body::Leave { id, room } => {
            put_id(&mut out, *id);
            put_str(&mut out, room.as_str());
        }
        // Encoded above, in its parts.
        Body::Recorded { .. } => {}
        Body::Presence {
            room,
            join,
            id,
            user,
        } => put_presence(&mut out, room, *join, *id, user.as_ref()),
        Body::Heartbeat(beat) => put_heartbeat(&mut out, beat),
        Body::CountRequest { request, list } => {
            out.put_u64(*request);
            out.put_u8(u8::from(*list));
        }
        Body::CountResponse {
            request,
            count,
            ids,
        } => {
            out.put_u64(*request);
            out.put_u32(*count);
            match ids {
                None => out.put_u8(0),
                Some(ids) => {
                    out.put_u8(1);
                    put_ids(&mut out, ids);
                }
            }
        }
    }
    debug_assert_eq!(out.len(), size, "body_len disagrees with encode");
    out.freeze()
}

/// The encoded size of a body, header excluded.
fn body_len(body: &Body) -> usize {
    let ids_len = |ids: &[ClientId]| varint_len(ids.len() as u64) + ids.len() * ID;
    let str_len = |text: &str| varint_len(text.len() as u64) + text.len();
    let names_len = |names: &mut dyn ExactSizeIterator<Item = &str>| {
        varint_len(names.len() as u64) + names.map(str_len).sum::<usize>()
    };
    match body {
        Body::ToAll {
            except: ids,
            message,
        }
        | Body::ToIds { ids, message } => ids_len(ids) + message.len(),
        Body::ToRooms {
            rooms,
            except,
            message,
        } => names_len(&mut rooms.iter().map(Room::as_str)) + ids_len(except) + message.len(),
        Body::ToUsers {
            users,
            except,
            message,
        } => names_len(&mut users.iter().map(User::as_str)) + ids_len(except) + message.len(),
        Body::CloseUsers { users, reason, .. } => {
            names_len(&mut users.iter().map(User::as_str)) + 2 + str_len(reason)
        }
        Body::Close { reason, .. } => ID + 2 + str_len(reason),
        Body::Join { room, .. } | Body::Leave { room, .. } => ID + str_len(room.as_str()),
        Body::Recorded { .. } => 0,
        Body::Presence { room, user, .. } => {
            str_len(room.as_str()) + 1 + ID + 1 + user.as_ref().map_or(0, |u| str_len(u.as_str()))
        }
        Body::Heartbeat(_) => 1 + 8 + 4 + 1,
        Body::CountRequest { .. } => 8 + 1,
        Body::CountResponse { ids, .. } => 8 + 4 + 1 + ids.as_deref().map_or(0, ids_len),
    }
}

fn put_heartbeat(out: &mut BytesMut, beat: &Heartbeat) {
    let mut flags = 0;
    if beat.hello {
        flags |= HELLO;
    }
    if beat.leaving {
        flags |= LEAVING;
    }
    out.put_u8(flags);
    out.put_u64(beat.started_ms);
    out.put_u32(beat.clients);
    out.put_u8(beat.reads);
}

fn put_presence(out: &mut BytesMut, room: &Room, join: bool, id: ClientId, user: Option<&User>) {
    put_str(out, room.as_str());
    out.put_u8(u8::from(join));
    put_id(out, id);
    match user {
        None => out.put_u8(0),
        Some(user) => {
            out.put_u8(1);
            put_str(out, user.as_str());
        }
    }
}

fn varint_len(n: u64) -> usize {
    // 7 bits a byte; 0 still takes one.
    (64 - n.leading_zeros() as usize).div_ceil(7).max(1)
}

fn put_varint(out: &mut BytesMut, mut n: u64) {
    while n >= 0x80 {
        out.put_u8(n.to_le_bytes()[0] | 0x80);
        n >>= 7;
    }
    out.put_u8(n.to_le_bytes()[0]);
}

fn put_id(out: &mut BytesMut, id: ClientId) {
    out.put_u32(id.node().get());
    out.put_u64(id.number());
}

fn put_ids(out: &mut BytesMut, ids: &[ClientId]) {
    put_varint(out, ids.len() as u64);
    for &id in ids {
        put_id(out, id);
    }
}

fn put_names<N: AsRef<str>>(out: &mut BytesMut, names: &[N]) {
    put_varint(out, names.len() as u64);
    for name in names {
        put_str(out, name.as_ref());
    }
}

fn put_str(out: &mut BytesMut, text: &str) {
    put_varint(out, text.len() as u64);
    out.put_slice(text.as_bytes());
}

/// Decodes without copying the payload (the message's bytes are a slice of `bytes`); a text
/// payload is validated as UTF-8 (anyone with access to the backplane can publish).
pub(crate) fn decode(bytes: &Bytes) -> Result<Envelope, WireError> {
    // The version first, whatever follows: a later version may change everything after it.
    let version = *bytes.first().ok_or(WireError::Truncated)?;
    if version != VERSION {
        return Err(WireError::Version(version));
    }
    let kind = *bytes.get(1).ok_or(WireError::Truncated)?;
    let kind = Kind::from_byte(kind).ok_or(WireError::UnknownKind(kind))?;
    let mut read = Reader { bytes, at: 2 };
    let flags = read.u8()?;
    let sender = NodeId::from_raw(read.u32()?);
    let seq = read.u32()?;
    let body = read.body(kind, flags)?;
    Ok(Envelope { sender, seq, body })
}

impl Reader<'_> {
    /// The body of an envelope of this kind, after the header.
    fn body(&mut self, kind: Kind, flags: u8) -> Result<Body, WireError> {
        let read = self;
        Ok(match kind {
            Kind::ToAll => {
                let except = read.ids()?;
                let message = read.message(flags)?;
                Body::ToAll { except, message }
            }
            Kind::ToIds => {
                let ids = read.ids()?;
                let message = read.message(flags)?;
                Body::ToIds { ids, message }
            }
            Kind::ToRooms => {
                let rooms = read.names("room name is not UTF-8")?;
                let except = read.ids()?;
                let message = read.message(flags)?;
                Body::ToRooms {
                    rooms,
                    except,
                    message,
                }
            }
            Kind::ToUsers => {
                let users = read.names("user key is not UTF-8")?;
                let except = read.ids()?;
                let message = read.message(flags)?;
                Body::ToUsers {
                    users,
                    except,
                    message,
                }
            }
            Kind::CloseUsers => {
                let users = read.names("user key is not UTF-8")?;
                let code = read.u16()?;
                let reason = read.str("close reason is not UTF-8")?.to_owned();
                read.end()?;
                Body::CloseUsers {
                    users,
                    code,
                    reason,
                }
            }
            Kind::Close => {
                let id = read.id()?;
                let code = read.u16()?;
                let reason = read.str("close reason is not UTF-8")?.to_owned();
                read.end()?;
                Body::Close { id, code, reason }
            }
            Kind::Recorded => read.recorded(flags)?,
            Kind::Presence => read.presence()?,
            Kind::Join | Kind::Leave => {
                let id = read.id()?;
                let room = Room::from(read.str("room name is not UTF-8")?);
                read.end()?;
                if matches!(kind, Kind::Join) {
                    Body::Join { id, room }
                } else {
                    Body::Leave { id, room }
                }
            }
            Kind::Heartbeat => {
                let flags = read.u8()?;
                let beat = Heartbeat {
                    hello: flags & HELLO != 0,
                    leaving: flags & LEAVING != 0,
                    started_ms: read.u64()?,
                    clients: read.u32()?,
                    reads: read.u8()?,
                };
                read.end()?;
                Body::Heartbeat(beat)
            }
            Kind::CountRequest => {
                let request = read.u64()?;
                let list = read.bool("count request's list flag is not 0 or 1")?;
                read.end()?;
                Body::CountRequest { request, list }
            }
            Kind::CountResponse => {
                let request = read.u64()?;
                let count = read.u32()?;
                let ids = if read.bool("count response's ids flag is not 0 or 1")? {
                    Some(read.ids()?)
                } else {
                    None
                };
                read.end()?;
                Body::CountResponse {
                    request,
                    count,
                    ids,
                }
            }
        })
    }
}

impl Reader<'_> {
    /// The body of a [`Body::Presence`].
    fn presence(&mut self) -> Result<Body, WireError> {
        let room = Room::from(self.str("room name is not UTF-8")?);
        let join = self.bool("presence change is not 0 or 1")?;
        let id = self.id()?;
        let user = if self.bool("presence user flag is not 0 or 1")? {
            Some(User::from(self.str("user key is not UTF-8")?))
        } else {
            None
        };
        self.end()?;
        Ok(Body::Presence {
            room,
            join,
            id,
            user,
        })
    }

    /// The body of a [`Body::Recorded`].
    fn recorded(&mut self, flags: u8) -> Result<Body, WireError> {
        let room = Room::from(self.str("room name is not UTF-8")?);
        let offset = self.varint()?;
        let len = usize::from(self.u8()?);
        let epoch = std::str::from_utf8(self.take(len)?)
            .ok()
            .and_then(|epoch| epoch.parse::<Epoch>().ok())
            .ok_or(WireError::Invalid(
                "epoch is not 1 to 32 ASCII letters, digits, - or _",
            ))?;
        let except = self.ids()?;
        let message = self.message(flags)?;
        Ok(Body::Recorded {
            room,
            position: Position::new(offset, epoch),
            except,
            message,
        })
    }
}

/// A cursor over an envelope being decoded. `at <= bytes.len()` always: it only moves by
/// `take`, which checks.
struct Reader<'a> {
    bytes: &'a Bytes,
    at: usize,
}

impl<'a> Reader<'a> {
    /// A count of names, then each (length and UTF-8).
    fn names<N: for<'s> From<&'s str>>(
        &mut self,
        invalid: &'static str,
    ) -> Result<Vec<N>, WireError> {
        // Each name takes at least its length byte.
        let count = self.count(1)?;
        let mut names = Vec::with_capacity(count);
        for _ in 0..count {
            names.push(N::from(self.str(invalid)?));
        }
        Ok(names)
    }

    fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.at)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self.at.checked_add(n).ok_or(WireError::Truncated)?;
        let bytes: &'a [u8] = self.bytes;
        let taken = bytes.get(self.at..end).ok_or(WireError::Truncated)?;
        self.at = end;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        self.take(N)?.try_into().map_err(|_| WireError::Truncated)
    }

    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(u8::from_be_bytes(self.array()?))
    }

    fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn bool(&mut self, invalid: &'static str) -> Result<bool, WireError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(WireError::Invalid(invalid)),
        }
    }

    /// A LEB128 u64 in its shortest form: a longer one would give one number several
    /// encodings, and one past 64 bits has no number.
    fn varint(&mut self) -> Result<u64, WireError> {
        let mut n = 0;
        for i in 0..VARINT_MAX {
            let byte = self.u8()?;
            if i == VARINT_MAX - 1 && byte > 1 {
                return Err(WireError::Invalid("varint overflows u64"));
            }
            if i > 0 && byte == 0 {
                return Err(WireError::Invalid("overlong varint"));
            }
            n |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(n);
            }
        }
        // The tenth byte is at most 1, so it always ended the loop.
        Err(WireError::Invalid("varint overflows u64"))
    }

    /// A count of items of at least `size` bytes each, checked against what is left before
    /// anything is allocated for them: a peer's number alone never sizes an allocation.
    fn count(&mut self, size: usize) -> Result<usize, WireError> {
        let count = self.varint()?;
        match usize::try_from(count) {
            Ok(count) if count <= self.remaining() / size => Ok(count),
            _ => Err(WireError::Truncated),
        }
    }

    fn str(&mut self, invalid: &'static str) -> Result<&'a str, WireError> {
        let len = self.count(1)?;
        std::str::from_utf8(self.take(len)?).map_err(|_| WireError::Invalid(invalid))
    }

    fn id(&mut self) -> Result<ClientId, WireError> {
        let node = NodeId::from_raw(self.u32()?);
        Ok(ClientId::new(node, self.u64()?))
    }

    fn ids(&mut self) -> Result<Vec<ClientId>, WireError> {
        let count = self.count(ID)?;
        let mut ids = Vec::with_capacity(count);
        for _ in 0..count {
            ids.push(self.id()?);
        }
        Ok(ids)
    }

    /// The rest of the envelope as the message, a slice of the buffer.
    fn message(&mut self, flags: u8) -> Result<Message, WireError> {
        let payload = self.bytes.slice(self.at..);
        self.at = self.bytes.len();
        if flags & BINARY != 0 {
            Ok(Message::Binary(payload))
        } else {
            Text::from_utf8(payload)
                .map(Message::Text)
                .ok_or(WireError::Invalid("text payload is not UTF-8"))
        }
    }

    /// The end of a kind without a payload: anything after it is a layout this build does not
    /// know, not something to skip silently.
    fn end(&mut self) -> Result<(), WireError> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(WireError::Invalid("trailing bytes"))
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn id(node: u32, number: u64) -> ClientId {
        ClientId::new(NodeId::from_raw(node), number)
    }

    fn is_delivery(body: &Body) -> Option<&Message> {
        match body {
            Body::ToAll { message, .. }
            | Body::ToIds { message, .. }
            | Body::ToRooms { message, .. }
            | Body::ToUsers { message, .. } => Some(message),
            _ => None,
        }
    }

    fn with_message(body: &Body, new: Message) -> Body {
        let mut body = body.clone();
        match &mut body {
            Body::ToAll { message, .. }
            | Body::ToIds { message, .. }
            | Body::ToRooms { message, .. }
            | Body::ToUsers { message, .. } => *message = new,
            _ => unreachable!("not a delivery"),
        }
        body
    }

    /// More ids than a one-byte count holds.
    fn many_ids() -> Vec<ClientId> {
        (0..130).map(|n| id(n, u64::from(n) << 33)).collect()
    }

    /// Every delivery kind, with empty lists, empty and multi-byte payloads, extreme numbers.
    fn deliveries() -> Vec<Body> {
        let many = many_ids();
        vec![
            Body::ToAll {
                except: vec![],
                message: Message::text(""),
            },
            Body::ToAll {
                except: vec![id(1, 1), id(u32::MAX, u64::MAX)],
                message: Message::text("héllo → 世界 🎉"),
            },
            Body::ToAll {
                except: many.clone(),
                message: Message::binary(vec![0u8; 0]),
            },
            Body::ToIds {
                ids: vec![id(0xdead_beef, 1 << 40)],
                message: Message::binary(vec![0, 0xff, 0x80, 1]),
            },
            Body::ToIds {
                ids: vec![],
                message: Message::text("ü"),
            },
            Body::ToRooms {
                rooms: vec!["lobby".into(), "".into(), "salle d'été ☕".into()],
                except: vec![],
                message: Message::text("bonjour"),
            },
            Body::ToRooms {
                rooms: vec![],
                except: vec![id(0, 0)],
                message: Message::binary(vec![7; 300]),
            },
            Body::ToRooms {
                rooms: (0..200).map(|n| Room::from(format!("r{n}"))).collect(),
                except: many.clone(),
                message: Message::binary(Vec::new()),
            },
            Body::ToUsers {
                users: vec!["ada".into(), "".into(), "zoë ✓".into()],
                except: vec![id(4, 5)],
                message: Message::text("to ada"),
            },
            Body::ToUsers {
                users: vec![],
                except: vec![],
                message: Message::binary(vec![1, 2, 3]),
            },
        ]
    }

    /// Every other kind, likewise.
    fn controls() -> Vec<Body> {
        vec![
            Body::Close {
                id: id(2, 3),
                code: 4999,
                reason: String::new(),
            },
            Body::Close {
                id: id(u32::MAX, u64::MAX),
                code: 1000,
                reason: "au revoir ✓".into(),
            },
            Body::Join {
                id: id(9, 10),
                room: "lobby".into(),
            },
            Body::Leave {
                id: id(9, 10),
                room: "".into(),
            },
            Body::CloseUsers {
                users: vec!["ada".into()],
                code: 4001,
                reason: "signed out elsewhere".into(),
            },
            Body::CloseUsers {
                users: vec![],
                code: 1000,
                reason: String::new(),
            },
            Body::Heartbeat(Heartbeat {
                hello: false,
                leaving: false,
                started_ms: 0,
                clients: 0,
                reads: 0,
            }),
            Body::Heartbeat(Heartbeat {
                hello: true,
                leaving: true,
                started_ms: u64::MAX,
                clients: u32::MAX,
                reads: u8::MAX,
            }),
            Body::Heartbeat(Heartbeat {
                hello: false,
                leaving: true,
                started_ms: 1_700_000_000_000,
                clients: 12,
                reads: VERSION,
            }),
            Body::CountRequest {
                request: 0,
                list: false,
            },
            Body::CountRequest {
                request: u64::MAX,
                list: true,
            },
            Body::CountResponse {
                request: 1,
                count: 0,
                ids: None,
            },
            Body::CountResponse {
                request: u64::MAX,
                count: u32::MAX,
                ids: Some(vec![]),
            },
            Body::CountResponse {
                request: 5,
                count: 130,
                ids: Some(many_ids()),
            },
        ]
    }

    /// Every kind, from senders and at seqs from 0 to the largest.
    fn samples() -> Vec<(NodeId, u32, Body)> {
        let senders = [(0, 0), (1, 1), (u32::MAX, u32::MAX), (0x5f3a_91c2, 42)];
        deliveries()
            .into_iter()
            .chain(controls())
            .enumerate()
            .map(|(i, body)| {
                let (sender, seq) = senders[i % senders.len()];
                (NodeId::from_raw(sender), seq, body)
            })
            .collect()
    }

    #[test]
    fn every_kind_round_trips() {
        for (sender, seq, body) in samples() {
            let bytes = encode(sender, seq, &body);
            assert_eq!(bytes[0], VERSION);
            assert_eq!(bytes[1], Kind::of(&body) as u8);
            let binary = is_delivery(&body).is_some_and(Message::is_binary);
            assert_eq!(bytes[2], u8::from(binary), "{body:?}");
            assert_eq!(bytes.len(), HEADER + body_len(&body));
            let expected = Envelope { sender, seq, body };
            assert_eq!(decode(&bytes), Ok(expected));
        }
    }

    #[test]
    fn golden_to_ids() {
        let bytes = encode(
            NodeId::from_raw(0x0102_0304),
            7,
            &Body::ToIds {
                ids: vec![id(0xa0b0_c0d0, 300)],
                message: Message::binary(vec![0xde, 0xad]),
            },
        );
        #[rustfmt::skip]
        let golden: &[u8] = &[
            0x01, 0x02, 0x01,                                // version, to-ids, binary
            0x01, 0x02, 0x03, 0x04,                          // sender
            0x00, 0x00, 0x00, 0x07,                          // seq
            0x01,                                            // one id:
            0xa0, 0xb0, 0xc0, 0xd0,                          //   node
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x2c,  //   number 300
            0xde, 0xad,                                      // payload
        ];
        assert_eq!(&bytes[..], golden);
    }

    #[test]
    fn golden_heartbeat() {
        let bytes = encode(
            NodeId::from_raw(0xffff_fffe),
            0x0100_0000,
            &Body::Heartbeat(Heartbeat {
                hello: true,
                leaving: false,
                started_ms: 1_700_000_000_000,
                clients: 42,
                reads: 1,
            }),
        );
        #[rustfmt::skip]
        let golden: &[u8] = &[
            0x01, 0x10, 0x00,                                // version, heartbeat, no flags
            0xff, 0xff, 0xff, 0xfe,                          // sender
            0x01, 0x00, 0x00, 0x00,                          // seq
            0x01,                                            // hello
            0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00,  // started 1_700_000_000_000 ms
            0x00, 0x00, 0x00, 0x2a,                          // 42 clients
            0x01,                                            // reads version 1
        ];
        assert_eq!(&bytes[..], golden);
    }

    #[test]
    fn varints_are_leb128() {
        for (n, encoded) in [
            (0, &[0x00][..]),
            (1, &[0x01]),
            (127, &[0x7f]),
            (128, &[0x80, 0x01]),
            (300, &[0xac, 0x02]),
            (
                u64::MAX,
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            ),
        ] {
            let mut out = BytesMut::new();
            put_varint(&mut out, n);
            assert_eq!(&out[..], encoded, "{n}");
            assert_eq!(varint_len(n), encoded.len(), "{n}");
            let bytes = out.freeze();
            let mut read = Reader {
                bytes: &bytes,
                at: 0,
            };
            assert_eq!(read.varint(), Ok(n));
            assert_eq!(read.remaining(), 0);
        }
    }

    /// Every strict prefix of a valid envelope is an error, except that a delivery cut inside
    /// its payload is a delivery of a shorter payload (the payload has no length to check).
    #[test]
    fn every_prefix_is_truncated() {
        for (sender, seq, body) in samples() {
            let bytes = encode(sender, seq, &body);
            let head = bytes.len() - is_delivery(&body).map_or(0, Message::len);
            for n in 0..bytes.len() {
                let got = decode(&bytes.slice(..n));
                if n < head {
                    assert_eq!(got, Err(WireError::Truncated), "{n} bytes of {body:?}");
                    continue;
                }
                let message = is_delivery(&body).expect("only a delivery has a payload");
                let cut = &message.as_bytes()[..n - head];
                let expected = if message.is_binary() {
                    Some(Message::binary(cut.to_vec()))
                } else {
                    std::str::from_utf8(cut).ok().map(Message::text)
                };
                match expected {
                    Some(message) => assert_eq!(
                        got,
                        Ok(Envelope {
                            sender,
                            seq,
                            body: with_message(&body, message),
                        }),
                        "{n} bytes"
                    ),
                    None => assert_eq!(
                        got,
                        Err(WireError::Invalid("text payload is not UTF-8")),
                        "{n} bytes, cut inside a character"
                    ),
                }
            }
        }
    }

    /// Version, kind, flags, sender 1, seq 1.
    fn header(kind: u8, flags: u8) -> Vec<u8> {
        vec![VERSION, kind, flags, 0, 0, 0, 1, 0, 0, 0, 1]
    }

    fn decode_vec(bytes: Vec<u8>) -> Result<Envelope, WireError> {
        decode(&Bytes::from(bytes))
    }

    #[test]
    fn another_version_is_refused_first() {
        assert_eq!(decode_vec(vec![2]), Err(WireError::Version(2)));
        assert_eq!(decode_vec(vec![0]), Err(WireError::Version(0)));
        assert_eq!(decode_vec(vec![255, 0x99]), Err(WireError::Version(255)));
        let mut bytes = encode(
            NodeId::from_raw(1),
            1,
            &Body::Join {
                id: id(1, 1),
                room: "a".into(),
            },
        )
        .to_vec();
        bytes[0] = 2;
        assert_eq!(decode_vec(bytes), Err(WireError::Version(2)));
        assert_eq!(decode_vec(vec![]), Err(WireError::Truncated));
        assert_eq!(
            WireError::Version(2).to_string(),
            "envelope version 2, this node reads 1"
        );
    }

    /// A recorded message's envelope, byte by byte: what Redis' script writes too.
    #[test]
    fn a_recorded_message_has_this_layout() {
        let parts = recorded(
            NodeId::from_raw(0x0102_0304),
            &Room::from("ab"),
            &[id(5, 6)],
            &Message::text("hi"),
        );
        let at = Position::new(300, "e1".parse().unwrap());
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0x01, 0x07, 0x00,                                // version, recorded, text
            0x01, 0x02, 0x03, 0x04,                          // sender
            0x00, 0x00, 0x00, 0x00,                          // seq 0
            0x02, b'a', b'b',                                // room
            0xac, 0x02,                                      // offset 300
            0x02, b'e', b'1',                                // epoch
            0x01,                                            // one except id:
            0x00, 0x00, 0x00, 0x05,                          //   node 5
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x06,  //   number 6
            b'h', b'i',                                      // payload
        ];
        let bytes = positioned(&parts, &at);
        assert_eq!(&bytes[..], expected);
        assert_eq!(&parts.head[..], &expected[..14]);
        assert_eq!(position_bytes(&at), &expected[14..19]);
        assert_eq!(&parts.tail[..], &expected[19..]);
        let mut bad = expected.to_vec();
        bad[17] = b' ';
        assert!(matches!(decode_vec(bad), Err(WireError::Invalid(_))));
    }

    #[test]
    fn unknown_kinds_are_named() {
        for kind in [0x00, 0x0b, 0x0f, 0x13, 0xff] {
            assert_eq!(
                decode_vec(header(kind, 0)),
                Err(WireError::UnknownKind(kind))
            );
            assert_eq!(
                decode_vec(vec![VERSION, kind]),
                Err(WireError::UnknownKind(kind)),
                "known as soon as its byte is there"
            );
        }
        assert_eq!(
            WireError::UnknownKind(0x0b).to_string(),
            "unknown envelope kind 0x0b"
        );
    }

    #[test]
    fn header_flags_other_than_binary_are_ignored() {
        let mut text = header(0x02, 0xfe);
        text.extend([0, b'h', b'i']);
        let got = decode_vec(text).unwrap();
        assert_eq!(
            got.body,
            Body::ToIds {
                ids: vec![],
                message: Message::text("hi")
            }
        );
        let mut binary = header(0x02, 0xff);
        binary.extend([0, 0xff]);
        let got = decode_vec(binary).unwrap();
        assert_eq!(
            got.body,
            Body::ToIds {
                ids: vec![],
                message: Message::binary(vec![0xff])
            }
        );
        let mut beat = header(0x10, 0xff);
        beat.extend([0xfc, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 1]);
        let got = decode_vec(beat).unwrap();
        assert_eq!(
            got.body,
            Body::Heartbeat(Heartbeat {
                hello: false,
                leaving: false,
                started_ms: 1,
                clients: 2,
                reads: 1,
            }),
            "heartbeat flags other than hello and leaving are ignored too"
        );
    }

    #[test]
    fn invalid_utf8_is_refused() {
        // A text payload; the same bytes as binary are fine.
        for kind in [0x01, 0x02] {
            let mut bytes = header(kind, 0);
            bytes.extend([0, b'a', 0xc3]);
            assert_eq!(
                decode_vec(bytes),
                Err(WireError::Invalid("text payload is not UTF-8"))
            );
            let mut bytes = header(kind, BINARY);
            bytes.extend([0, b'a', 0xc3]);
            assert!(decode_vec(bytes).is_ok());
        }
        // A room name: in a room list, a join, a leave.
        let mut rooms = header(0x03, BINARY);
        rooms.extend([1, 2, 0xff, 0xfe, 0]);
        assert_eq!(
            decode_vec(rooms),
            Err(WireError::Invalid("room name is not UTF-8"))
        );
        for kind in [0x05, 0x06] {
            let mut bytes = header(kind, 0);
            bytes.extend([0; ID]);
            bytes.extend([1, 0x80]);
            assert_eq!(
                decode_vec(bytes),
                Err(WireError::Invalid("room name is not UTF-8"))
            );
        }
        // A close reason.
        let mut close = header(0x04, 0);
        close.extend([0; ID]);
        close.extend([0x03, 0xe8, 2, 0xed, 0xa0]);
        assert_eq!(
            decode_vec(close),
            Err(WireError::Invalid("close reason is not UTF-8"))
        );
    }

    #[test]
    fn overlong_and_overflowing_varints_are_refused() {
        let with_count = |count: &[u8]| {
            let mut bytes = header(0x02, BINARY);
            bytes.extend(count);
            bytes.extend([0; 64]);
            decode_vec(bytes)
        };
        let overlong = Err(WireError::Invalid("overlong varint"));
        let overflow = Err(WireError::Invalid("varint overflows u64"));
        assert_eq!(with_count(&[0x80, 0x00]), overlong);
        assert_eq!(with_count(&[0x81, 0x80, 0x00]), overlong);
        assert_eq!(
            with_count(&[0xff; 9].iter().chain(&[0x00]).copied().collect::<Vec<_>>()),
            overlong
        );
        assert_eq!(
            with_count(&[0xff; 9].iter().chain(&[0x02]).copied().collect::<Vec<_>>()),
            overflow
        );
        assert_eq!(with_count(&[0x80; 10]), overflow);
        assert_eq!(with_count(&[0xff; 11]), overflow);
        // The shortest forms are fine: 0 as one byte, 1 and 2 ids.
        assert!(with_count(&[0x00]).is_ok());
        assert_eq!(
            with_count(&[0x02]).map(|envelope| match envelope.body {
                Body::ToIds { ids, .. } => ids.len(),
                _ => 0,
            }),
            Ok(2)
        );
        // A varint that the envelope ends inside.
        let mut cut = header(0x02, BINARY);
        cut.push(0x80);
        assert_eq!(decode_vec(cut), Err(WireError::Truncated));
    }

    #[test]
    fn counts_beyond_the_remaining_bytes_are_truncated() {
        // Two ids announced, one there (and a payload that is too short for the second).
        let mut ids = header(0x02, BINARY);
        ids.push(2);
        ids.extend([0; ID + ID - 1]);
        assert_eq!(decode_vec(ids), Err(WireError::Truncated));
        // The largest count there is: refused before anything is allocated for it.
        let huge = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        for kind in [0x01, 0x02, 0x03] {
            let mut bytes = header(kind, BINARY);
            bytes.extend(huge);
            bytes.extend([0; 32]);
            assert_eq!(decode_vec(bytes), Err(WireError::Truncated), "kind {kind}");
        }
        let mut response = header(0x12, 0);
        response.extend([0; 12]);
        response.push(1);
        response.extend(huge);
        assert_eq!(decode_vec(response), Err(WireError::Truncated));
        // A room name longer than what is left.
        let mut join = header(0x05, 0);
        join.extend([0; ID]);
        join.extend([4, b'a', b'b', b'c']);
        assert_eq!(decode_vec(join), Err(WireError::Truncated));
        let mut join = header(0x05, 0);
        join.extend([0; ID]);
        join.extend(huge);
        assert_eq!(decode_vec(join), Err(WireError::Truncated));
    }

    #[test]
    fn trailing_bytes_are_refused() {
        for (sender, seq, body) in samples() {
            if is_delivery(&body).is_some() {
                continue;
            }
            let mut bytes = encode(sender, seq, &body).to_vec();
            bytes.push(0);
            assert_eq!(
                decode_vec(bytes),
                Err(WireError::Invalid("trailing bytes")),
                "{body:?}"
            );
        }
    }

    #[test]
    fn flags_of_count_messages_are_0_or_1() {
        let mut request = header(0x11, 0);
        request.extend([0; 8]);
        request.push(2);
        assert_eq!(
            decode_vec(request),
            Err(WireError::Invalid(
                "count request's list flag is not 0 or 1"
            ))
        );
        let mut response = header(0x12, 0);
        response.extend([0; 12]);
        response.push(2);
        assert_eq!(
            decode_vec(response),
            Err(WireError::Invalid(
                "count response's ids flag is not 0 or 1"
            ))
        );
    }

    #[test]
    fn the_payload_is_a_slice_of_the_envelope() {
        for message in [Message::text("héllo, monde"), Message::binary(vec![1; 100])] {
            let bytes = encode(
                NodeId::from_raw(1),
                1,
                &Body::ToRooms {
                    rooms: vec!["a".into()],
                    except: vec![id(1, 2)],
                    message,
                },
            );
            let Ok(Envelope {
                body: Body::ToRooms { message, .. },
                ..
            }) = decode(&bytes)
            else {
                panic!("not decoded");
            };
            let range = bytes.as_ptr_range();
            let payload = message.as_bytes().as_ptr_range();
            assert!(range.start <= payload.start && payload.end == range.end);
            let payload = message.into_bytes();
            assert_eq!(
                payload.as_ptr_range().end,
                range.end,
                "not copied into `Bytes` either"
            );
        }
    }

    fn client_id() -> impl Strategy<Value = ClientId> {
        (any::<u32>(), any::<u64>()).prop_map(|(node, number)| id(node, number))
    }

    fn ids() -> impl Strategy<Value = Vec<ClientId>> {
        proptest::collection::vec(client_id(), 0..5)
    }

    fn text() -> impl Strategy<Value = String> {
        proptest::collection::vec(any::<char>(), 0..12).prop_map(String::from_iter)
    }

    fn room() -> impl Strategy<Value = Room> {
        text().prop_map(Room::from)
    }

    fn message() -> impl Strategy<Value = Message> {
        prop_oneof![
            text().prop_map(Message::text),
            proptest::collection::vec(any::<u8>(), 0..64).prop_map(Message::binary),
        ]
    }

    fn body() -> impl Strategy<Value = Body> {
        prop_oneof![
            (ids(), message()).prop_map(|(except, message)| Body::ToAll { except, message }),
            (ids(), message()).prop_map(|(ids, message)| Body::ToIds { ids, message }),
            (proptest::collection::vec(room(), 0..5), ids(), message()).prop_map(
                |(rooms, except, message)| Body::ToRooms {
                    rooms,
                    except,
                    message
                }
            ),
            (client_id(), any::<u16>(), text()).prop_map(|(id, code, reason)| Body::Close {
                id,
                code,
                reason
            }),
            (
                room(),
                any::<u64>(),
                "[a-zA-Z0-9_-]{1,32}",
                ids(),
                message()
            )
                .prop_map(|(room, offset, epoch, except, message)| Body::Recorded {
                    room,
                    position: Position::new(offset, epoch.parse().unwrap()),
                    except,
                    message
                }),
            (
                room(),
                any::<bool>(),
                client_id(),
                proptest::option::of(text())
            )
                .prop_map(|(room, join, id, user)| Body::Presence {
                    room,
                    join,
                    id,
                    user: user.map(User::from)
                }),
            (client_id(), room()).prop_map(|(id, room)| Body::Join { id, room }),
            (client_id(), room()).prop_map(|(id, room)| Body::Leave { id, room }),
            (proptest::collection::vec(room(), 0..5), ids(), message()).prop_map(
                |(users, except, message)| Body::ToUsers {
                    users: users.iter().map(|room| User::from(room.as_str())).collect(),
                    except,
                    message
                }
            ),
            (
                proptest::collection::vec(room(), 0..5),
                any::<u16>(),
                text()
            )
                .prop_map(|(users, code, reason)| Body::CloseUsers {
                    users: users.iter().map(|room| User::from(room.as_str())).collect(),
                    code,
                    reason
                }),
            (
                any::<bool>(),
                any::<bool>(),
                any::<u64>(),
                any::<u32>(),
                any::<u8>()
            )
                .prop_map(|(hello, leaving, started_ms, clients, reads)| {
                    Body::Heartbeat(Heartbeat {
                        hello,
                        leaving,
                        started_ms,
                        clients,
                        reads,
                    })
                }),
            (any::<u64>(), any::<bool>())
                .prop_map(|(request, list)| Body::CountRequest { request, list }),
            (any::<u64>(), any::<u32>(), proptest::option::of(ids())).prop_map(
                |(request, count, ids)| Body::CountResponse {
                    request,
                    count,
                    ids
                }
            ),
        ]
    }

    proptest::proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Every envelope comes back as it was encoded.
        #[test]
        fn every_body_round_trips(sender in any::<u32>(), seq in any::<u32>(), body in body()) {
            let sender = NodeId::from_raw(sender);
            // A recorded message's seq is always 0: the position orders it.
            let seq = if matches!(body, Body::Recorded { .. }) { 0 } else { seq };
            let bytes = encode(sender, seq, &body);
            if !matches!(body, Body::Recorded { .. }) {
                prop_assert_eq!(bytes.len(), HEADER + body_len(&body));
            }
            prop_assert_eq!(decode(&bytes), Ok(Envelope { sender, seq, body }));
        }

        /// Arbitrary bytes are an envelope or an error, never a panic.
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(&Bytes::from(bytes));
        }

        /// The same, past the version and kind checks, so that every body decoder sees garbage.
        #[test]
        fn garbage_bodies_never_panic(
            kind in prop_oneof![1u8..=0x0A, 0x10u8..=0x12],
            flags in any::<u8>(),
            rest in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let mut bytes = vec![VERSION, kind, flags];
            bytes.extend(rest);
            let _ = decode(&Bytes::from(bytes));
        }

        /// A valid envelope with one byte changed decodes or fails, never panics.
        #[test]
        fn corrupted_envelopes_never_panic(body in body(), at in any::<usize>(), byte in any::<u8>()) {
            let mut bytes = encode(NodeId::from_raw(1), 1, &body).to_vec();
            let at = at % bytes.len();
            bytes[at] = byte;
            let _ = decode(&Bytes::from(bytes));
        }
    }
}
