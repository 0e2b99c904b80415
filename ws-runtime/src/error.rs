//! The errors of serving: binding and accepting.

use std::io;

/// An error that stops [`serve`](crate::serve).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The listening socket could not be bound (address in use, no permission, bad address).
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address as given.
        addr: String,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The listening socket's local address could not be read.
    #[error("cannot read the listening address: {0}")]
    LocalAddr(#[source] io::Error),
}
