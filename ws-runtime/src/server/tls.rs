//! `wss://`: the server certificate and key for [`Server::tls`](crate::Server::tls), and the
//! TLS side of accepting a connection.

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::error::Error;

/// The body of the 400 answer to a plain-HTTP request sent to the TLS port.
const PLAIN_HTTP_BODY: &str = "This server speaks TLS only: use https:// or wss:// instead.\n";

/// How much of a plain-HTTP request is read before answering it (so that closing does not
/// reset the connection under the reply).
const PLAIN_HTTP_READ_LIMIT: usize = 16 * 1024;

/// TLS for [`Server::tls`](crate::Server::tls): serve `https://` and `wss://` with
/// [rustls](https://docs.rs/rustls) (its `ring` crypto provider).
///
/// Build it from PEM files with [`from_pem_files`](Tls::from_pem_files), from PEM bytes with
/// [`from_pem`](Tls::from_pem), or from a `rustls::ServerConfig` of your own with
/// [`from_config`](Tls::from_config) (client certificates, several certificates by SNI,
/// another crypto provider, ...).
///
/// The server speaks HTTP/1.1 (WebSocket upgrades need it), so the configurations built here
/// advertise ALPN `http/1.1`. Every connection must finish its TLS handshake within the
/// [handshake timeout](crate::Server::handshake_timeout); one that fails is logged at debug
/// level and closed, and affects no other connection. A plain-HTTP request sent to the TLS
/// port gets a `400 Bad Request` that says to use `https://` or `wss://`.
///
/// ```no_run
/// # use warp::Filter;
/// # struct Chat;
/// # #[ws::websocket]
/// # impl Chat {}
/// # async fn run() -> Result<(), ws::Error> {
/// let chat = ws::Socket::new(Chat);
/// let routes = warp::path("ws").and(chat.filter());
/// let tls = ws::Tls::from_pem_files("cert.pem", "key.pem")?;
/// ws::serve(routes).socket(&chat).tls(tls).run("0.0.0.0:443").await
/// # }
/// ```
#[derive(Clone)]
pub struct Tls {
    config: Arc<ServerConfig>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("alpn_protocols", &self.config.alpn_protocols)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Reads the certificate chain (PEM `CERTIFICATE` sections, the server's own certificate
    /// first, then its intermediates) and the private key (the first PEM private key: PKCS#8,
    /// PKCS#1 RSA or SEC1 EC) from these files.
    ///
    /// # Errors
    ///
    /// [`Error::Tls`] if a file cannot be read, holds invalid PEM or no section of the
    /// expected kind, or if rustls refuses the key (unsupported, or not the key of the
    /// certificate).
    pub fn from_pem_files(
        cert_chain: impl AsRef<Path>,
        private_key: impl AsRef<Path>,
    ) -> Result<Self, Error> {
        let (cert_path, key_path) = (cert_chain.as_ref(), private_key.as_ref());
        let cert_what = format!("certificate file `{}`", cert_path.display());
        let key_what = format!("private key file `{}`", key_path.display());
        let certs = std::fs::read(cert_path).map_err(|err| tls_error(&cert_what, err))?;
        let key = std::fs::read(key_path).map_err(|err| tls_error(&key_what, err))?;
        Self::build(&certs, &cert_what, &key, &key_what)
    }

    /// Like [`from_pem_files`](Tls::from_pem_files), with the PEM text in memory (from a
    /// secret store, an environment variable, a certificate generated at startup, ...).
    ///
    /// # Errors
    ///
    /// [`Error::Tls`] if the PEM is invalid or holds no section of the expected kind, or if
    /// rustls refuses the key (unsupported, or not the key of the certificate).
    pub fn from_pem(cert_chain: &[u8], private_key: &[u8]) -> Result<Self, Error> {
        Self::build(cert_chain, "certificate chain", private_key, "private key")
    }

    /// Uses a rustls server configuration as it is.
    ///
    /// The server speaks HTTP/1.1 only: leave `alpn_protocols` empty or set it to
    /// `[b"http/1.1"]`; a client that negotiated `h2` would not be understood. `rustls` is
    /// re-exported as `ws::rustls`, so the versions match.
    pub fn from_config(config: Arc<ServerConfig>) -> Self {
        Self { config }
    }

    /// The rustls configuration connections are accepted with.
    pub fn config(&self) -> &Arc<ServerConfig> {
        &self.config
    }

    fn build(certs: &[u8], cert_what: &str, key: &[u8], key_what: &str) -> Result<Self, Error> {
        let chain = CertificateDer::pem_slice_iter(certs)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| tls_error(cert_what, err))?;
        if chain.is_empty() {
            return Err(tls_error(
                cert_what,
                "no PEM `CERTIFICATE` section found".to_owned(),
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|err| match err {
            pem::Error::NoItemsFound => tls_error(
                key_what,
                "no PEM `PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY` section found"
                    .to_owned(),
            ),
            err => tls_error(key_what, err),
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|builder| builder.with_no_client_auth().with_single_cert(chain, key))
            .map_err(|err| tls_error(&format!("{cert_what} with {key_what}"), err))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self::from_config(Arc::new(config)))
    }

    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(Arc::clone(&self.config))
    }
}

fn tls_error(what: &str, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
    Error::Tls {
        what: what.to_owned(),
        source: source.into(),
    }
}

/// Runs the server side of the TLS handshake. A client that sent plain HTTP instead (its first
/// byte is a letter, where TLS starts with a handshake record, 0x16) is answered with a 400
/// that says so and gets an error here. The caller bounds the time this takes.
pub(crate) async fn accept(
    acceptor: &TlsAcceptor,
    mut stream: TcpStream,
) -> io::Result<TlsStream<TcpStream>> {
    let mut first = [0u8; 1];
    if stream.peek(&mut first).await? == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    if first[0].is_ascii_alphabetic() {
        let mut request = Vec::new();
        let mut chunk = [0u8; 2048];
        while request.len() < PLAIN_HTTP_READ_LIMIT && !request.windows(4).any(|w| w == b"\r\n\r\n")
        {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            request.extend_from_slice(&chunk[..n]);
        }
        let reply = format!(
            "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{PLAIN_HTTP_BODY}",
            PLAIN_HTTP_BODY.len()
        );
        stream.write_all(reply.as_bytes()).await?;
        stream.shutdown().await?;
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "plain HTTP on the TLS port (answered 400)",
        ));
    }
    acceptor.accept(stream).await
}
