//! Where a message stands in its room's history: an offset and the history's epoch.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher;
use std::str::FromStr;
use std::time::SystemTime;

/// The identity of one room's history: it changes whenever that history is lost (a restart of
/// a node that kept it in memory, a store that lost it), so that an offset from before is never
/// trusted. At most 32 ASCII letters, digits, `-` or `_`.
///
/// ```
/// let epoch: ws::Epoch = "ab12cd34".parse().unwrap();
/// assert_eq!(epoch.as_str(), "ab12cd34");
/// assert!("ünïcode".parse::<ws::Epoch>().is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Epoch {
    len: u8,
    bytes: [u8; Epoch::MAX_LEN],
}

/// Why text is not an [`Epoch`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an epoch is 1 to 32 ASCII letters, digits, '-' or '_'")]
pub struct ParseEpochError;

impl Epoch {
    /// The longest epoch, in bytes.
    pub const MAX_LEN: usize = 32;

    /// A new random epoch of eight lowercase letters and digits.
    pub(crate) fn random() -> Epoch {
        const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
        // As `NodeId::random`: `RandomState` is seeded once per process and stepped for each
        // new one; the time makes two epochs of one process differ even if it were not.
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos());
        let mut random = RandomState::new().hash_one((nanos, std::process::id()));
        let mut bytes = [0; Epoch::MAX_LEN];
        for byte in &mut bytes[..8] {
            *byte = ALPHABET[(random & 31) as usize];
            random >>= 5;
        }
        Epoch { len: 8, bytes }
    }

    /// The epoch as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever stored.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl FromStr for Epoch {
    type Err = ParseEpochError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let valid = |b: &u8| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_';
        if text.is_empty() || text.len() > Epoch::MAX_LEN || !text.bytes().all(|b| valid(&b)) {
            return Err(ParseEpochError);
        }
        let mut bytes = [0; Epoch::MAX_LEN];
        bytes[..text.len()].copy_from_slice(text.as_bytes());
        Ok(Epoch {
            len: u8::try_from(text.len()).map_err(|_| ParseEpochError)?,
            bytes,
        })
    }
}

impl TryFrom<&str> for Epoch {
    type Error = ParseEpochError;

    fn try_from(text: &str) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// Where a message stands in its room's history: its offset (1 for the room's first message,
/// then one more for each) in this epoch of the history.
///
/// A client keeps the position of the last message it got and hands it back when it comes
/// back ([`Endpoint::join_since`](crate::Endpoint::join_since)); how it does so is the
/// application's protocol.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Position {
    /// The message's offset in the room: consecutive, from 1.
    pub offset: u64,
    /// The history the offset belongs to.
    pub epoch: Epoch,
}

impl Position {
    /// The position at `offset` in `epoch`.
    pub fn new(offset: u64, epoch: Epoch) -> Self {
        Position { offset, epoch }
    }
}

impl fmt::Debug for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.offset, self.epoch)
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} in epoch {}", self.offset, self.epoch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_parse_print_and_refuse() {
        let epoch: Epoch = "Ab-_9".parse().unwrap();
        assert_eq!(epoch.to_string(), "Ab-_9");
        assert_eq!(format!("{epoch:?}"), "\"Ab-_9\"");
        for bad in ["", "a b", "é", &"x".repeat(33), "a\"b"] {
            assert_eq!(bad.parse::<Epoch>(), Err(ParseEpochError), "{bad:?}");
        }
        assert!("x".repeat(32).parse::<Epoch>().is_ok());
    }

    #[test]
    fn random_epochs_differ_and_parse_back() {
        let a = Epoch::random();
        let b = Epoch::random();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 8);
        assert_eq!(a.as_str().parse::<Epoch>(), Ok(a));
        let at = Position::new(7, a);
        assert_eq!(format!("{at:?}"), format!("7@{a}"));
    }
}
