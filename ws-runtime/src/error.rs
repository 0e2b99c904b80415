//! The errors of serving: binding, accepting and loading the TLS certificate and key.

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
    /// The TLS certificate chain or private key could not be read or used: a file that is
    /// missing or unreadable, no PEM section of the expected kind, invalid PEM, or a key that
    /// rustls refuses (unsupported, or not the certificate's). Returned by
    /// [`Tls::from_pem_files`](crate::Tls::from_pem_files) and
    /// [`Tls::from_pem`](crate::Tls::from_pem).
    #[cfg(feature = "tls")]
    #[error("TLS {what}: {source}")]
    Tls {
        /// What could not be loaded, e.g. ``certificate file `cert.pem` ``.
        what: String,
        /// The cause: an [`io::Error`] when a file could not be read, a
        /// `rustls::pki_types::pem::Error` for invalid PEM, a [`rustls::Error`] when rustls
        /// refuses the certificate or key.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}
