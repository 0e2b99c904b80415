//! Names that travel between nodes: [`NodeId`], [`ClientId`], [`Room`] and [`User`], and the hash the
//! registry keys its maps with.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::str::FromStr;
use std::sync::Arc;
use std::time::SystemTime;

/// A node: one [`Socket`](crate::Socket)'s [`Endpoint`](crate::Endpoint) in one process start,
/// a member of a cluster ([`Config::cluster`](crate::Config::cluster)). Every [`ClientId`]
/// carries the node that accepted the connection, so ids are unique across every process of an
/// application, and across restarts (a restarted process is a new node).
///
/// Drawn at random when the endpoint is made ([`Endpoint::node`](crate::Endpoint::node)); shown
/// as 8 hexadecimal digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(u32);

impl NodeId {
    /// A new node id, drawn at random: every [`Endpoint`](crate::Endpoint) draws its own
    /// when it is made.
    pub(crate) fn random() -> NodeId {
        // `RandomState` is seeded from the OS once per process and stepped for each new
        // one; the time and the pid make two starts of one image differ even if it were not.
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos());
        let random = RandomState::new().hash_one((nanos, std::process::id()));
        #[allow(
            clippy::cast_possible_truncation,
            reason = "the high bits are as random"
        )]
        NodeId((random ^ (random >> 32)) as u32)
    }

    /// The node as a number.
    pub fn get(self) -> u32 {
        self.0
    }

    /// The node numbered `raw`, as [`get`](Self::get) gives it: for a node id read off the wire.
    pub(crate) const fn from_raw(raw: u32) -> NodeId {
        NodeId(raw)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({self})")
    }
}

impl FromStr for NodeId {
    type Err = ParseIdError;

    /// Parses what [`Display`](fmt::Display) shows: 8 hexadecimal digits.
    fn from_str(text: &str) -> Result<Self, ParseIdError> {
        if text.len() != 8 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ParseIdError(()));
        }
        u32::from_str_radix(text, 16)
            .map(NodeId)
            .map_err(|_| ParseIdError(()))
    }
}

/// Identifies one connection across every node of an application: the [`NodeId`] of the
/// process that accepted it, and its number there (from 1, never reused by that node).
///
/// Shown as `NODE-NUMBER`, e.g. `5f3a91c2-42`, and parsed back from that text, so an id can
/// travel in a message or a URL and come back as the same client:
///
/// ```
/// # fn demo(id: ws::ClientId) {
/// let text = id.to_string();
/// assert_eq!(text.parse::<ws::ClientId>(), Ok(id));
/// # }
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ClientId {
    node: NodeId,
    number: u64,
}

impl ClientId {
    /// The `number`th id of `node`.
    pub(crate) fn new(node: NodeId, number: u64) -> Self {
        ClientId { node, number }
    }

    /// The node that accepted this client.
    pub fn node(self) -> NodeId {
        self.node
    }

    /// Its number on its node: 1 for the node's first client, and so on.
    pub fn number(self) -> u64 {
        self.number
    }
}

// One word of hash input: the number, with the node in its high bits, so that the registry's
// map stays a one-multiplication hash (`IdHasher`).
impl Hash for ClientId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.number ^ (u64::from(self.node.0) << 32));
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.node, self.number)
    }
}

impl fmt::Debug for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientId({self})")
    }
}

impl FromStr for ClientId {
    type Err = ParseIdError;

    /// Parses what [`Display`](fmt::Display) shows: `NODE-NUMBER`.
    fn from_str(text: &str) -> Result<Self, ParseIdError> {
        let (node, number) = text.split_once('-').ok_or(ParseIdError(()))?;
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseIdError(()));
        }
        let number = number.parse().map_err(|_| ParseIdError(()))?;
        Ok(ClientId::new(node.parse()?, number))
    }
}

/// Text that is not a [`ClientId`] (`NODE-NUMBER`) or a [`NodeId`] (8 hexadecimal digits).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a client id: expected 8 hexadecimal digits, `-` and a number, like `5f3a91c2-42`")]
pub struct ParseIdError(());

/// Hashes a [`ClientId`] with one multiplication (Fibonacci hashing). The registry's keys are
/// handed out by the server in sequence, never chosen by a peer (a peer can at most name an id
/// to look up), so the map needs no keyed hash; `SipHash` was a visible cost of every `send` in
/// profiles of a busy echo.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// The name of a room: a named group of clients that a delivery can address
/// ([`Recipients::room`](crate::Recipients::room)).
///
/// Cheap to clone (one reference count); made from a `&str` or a `String`, compared by its
/// text. A room exists while it has members: joining creates it, the last leave removes it.
///
/// ```
/// let lobby = ws::Room::from("lobby");
/// assert_eq!(lobby.as_str(), "lobby");
/// assert_eq!(lobby, ws::Room::from(String::from("lobby")));
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Room(Arc<str>);

/// A user: the key that ties the connections of one person (or account) together, set by
/// `on_handshake` with [`Accept::user`](crate::Accept::user), so that a delivery or a close
/// can address every connection of that user on every node
/// ([`Recipients::user`](crate::Recipients::user), [`Endpoint::close_user`](crate::Endpoint::close_user)).
///
/// Cheap to clone; made from a `&str` or a `String`, compared by its text.
///
/// ```
/// let ada = ws::User::from("ada");
/// assert_eq!(ada.as_str(), "ada");
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct User(Arc<str>);

/// What a name that travels between nodes is: made from text, shared, compared as text.
macro_rules! name {
    ($name:ident, $what:literal) => {
        impl $name {
            #[doc = concat!("The ", $what, " as text.")]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl From<&str> for $name {
            fn from(name: &str) -> Self {
                $name(name.into())
            }
        }

        impl From<String> for $name {
            fn from(name: String) -> Self {
                $name(name.into())
            }
        }

        impl From<&String> for $name {
            fn from(name: &String) -> Self {
                $name(name.as_str().into())
            }
        }

        impl From<&$name> for $name {
            fn from(name: &$name) -> Self {
                name.clone()
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }
    };
}

name!(Room, "room's name");
name!(User, "user's key");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_display_and_parse_back() {
        let id = ClientId::new(NodeId(0x5f3a_91c2), 42);
        assert_eq!(id.to_string(), "5f3a91c2-42");
        assert_eq!("5f3a91c2-42".parse(), Ok(id));
        assert_eq!(format!("{id:?}"), "ClientId(5f3a91c2-42)");
        let low = ClientId::new(NodeId(1), 1);
        assert_eq!(low.to_string(), "00000001-1");
        assert_eq!(low.to_string().parse(), Ok(low));
        assert_eq!("5F3A91C2-42".parse(), Ok(id), "hex digits in either case");
        for bad in [
            "",
            "42",
            "5f3a91c2",
            "5f3a91c2-",
            "5f3a91c2-x",
            "5f3a91c-42",
            "5f3a91c2a-42",
            "5f3a91g2-42",
            "5f3a91c2--42",
            "5f3a91c2-+42",
            "5f3a91c2-18446744073709551616",
            " 5f3a91c2-42",
        ] {
            assert_eq!(bad.parse::<ClientId>(), Err(ParseIdError(())), "{bad:?}");
        }
    }

    #[test]
    fn node_ids_are_drawn_apart_and_parse_back() {
        let (a, b) = (NodeId::random(), NodeId::random());
        assert_ne!(a, b);
        assert_eq!(a.to_string().parse(), Ok(a));
        assert_eq!(NodeId(0xab).to_string(), "000000ab");
    }
}
