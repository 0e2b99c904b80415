//! Serving: the accept loop around warp's service (plain TCP or TLS, with the handshake
//! timeout), `on_start` before the first accept, and the graceful shutdown on SIGINT, SIGTERM
//! or a future of the user's. [`Socket`] (`socket.rs`) answers the handshakes of one handler
//! and spawns its connections; `admission.rs` holds the connection limits; `accept.rs` the
//! pauses and logs of failed accepts; `dashboard.rs` the operators' page; `tls.rs` the
//! `wss://` acceptor.

mod accept;
mod admission;
mod dashboard;
mod socket;
#[cfg(feature = "tls")]
mod tls;

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::sync::watch;
use tokio_util::task::TaskTracker;
use warp::{Filter, Rejection, Reply};

use crate::error::Error;
use crate::handler::Handler;
pub use dashboard::Dashboard;
pub use socket::Socket;
use socket::{Lifecycle, PeerAddr};
#[cfg(feature = "tls")]
pub use tls::Tls;

type ShutdownFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// How long plain HTTP requests still in flight at shutdown may take to finish.
const HTTP_DRAIN: Duration = Duration::from_secs(3);

/// The default of [`Server::handshake_timeout`].
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The default of [`Server::backlog`].
const BACKLOG: u32 = 1024;

/// Longer handshake timeouts are cut to this (a year), which keeps deadline arithmetic finite.
const MAX_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);

/// Starts building a server for these routes: see [`Server`].
///
/// ```no_run
/// # use warp::Filter;
/// # struct Chat;
/// # #[ws::websocket]
/// # impl Chat {}
/// # async fn run() -> Result<(), ws::Error> {
/// let chat = ws::Socket::new(Chat);
/// let routes = warp::path("ws").and(chat.filter()).or(warp::fs::dir("public"));
/// ws::serve(routes).socket(&chat).run("127.0.0.1:8080").await
/// # }
/// ```
pub fn serve<F>(filter: F) -> Server<F>
where
    F: Filter<Error = Rejection> + Clone + Send + Sync + 'static,
    F::Extract: Reply,
{
    Server {
        filter,
        sockets: Vec::new(),
        shutdown: Vec::new(),
        signals: true,
        handshake_timeout: HANDSHAKE_TIMEOUT,
        backlog: BACKLOG,
        #[cfg(feature = "tls")]
        tls: None,
    }
}

/// A warp server with the lifecycle of its WebSocket sockets.
///
/// [`run`](Server::run) binds, calls every socket's `on_start`, and serves. When SIGINT or
/// SIGTERM arrives (or a future given to [`shutdown_on`](Server::shutdown_on) completes) it
/// stops accepting, and for each socket calls `on_stop`, sends every client 1001 "Server
/// shutting down" after the messages already queued for it, waits for their close replies
/// (up to the close timeout) and their `on_close`, and then returns `Ok(())`.
///
/// Unlike `warp::serve(..).graceful(..)`, which forgets upgraded connections, the shutdown
/// waits for every WebSocket connection to end.
///
/// Every connection must send a complete request head within the
/// [handshake timeout](Server::handshake_timeout) (10 s by default) or is closed, so clients
/// that connect and dribble or send nothing (slowloris) cannot pile up. With
/// `tls` (feature `tls`) it serves `https://` and `wss://`; handlers see the peer address the
/// same way.
#[must_use = "a server does nothing until `run` is awaited"]
pub struct Server<F> {
    filter: F,
    sockets: Vec<Box<dyn Lifecycle>>,
    shutdown: Vec<ShutdownFuture>,
    signals: bool,
    handshake_timeout: Duration,
    backlog: u32,
    #[cfg(feature = "tls")]
    tls: Option<Tls>,
}

impl<F> fmt::Debug for Server<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("sockets", &self.sockets.len())
            .field("shutdown_futures", &self.shutdown.len())
            .field("signals", &self.signals)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("backlog", &self.backlog)
            .field("tls", &self.is_tls())
            .finish_non_exhaustive()
    }
}

impl<F> Server<F> {
    #[cfg_attr(not(feature = "tls"), allow(clippy::unused_self))]
    fn is_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.tls.is_some();
        #[cfg(not(feature = "tls"))]
        return false;
    }
}

impl<F> Server<F>
where
    F: Filter<Error = Rejection> + Clone + Send + Sync + 'static,
    F::Extract: Reply,
{
    /// Gives the server a socket's lifecycle: `on_start` before accepting, `on_stop` and the
    /// 1001 close of its clients at shutdown. Call once per socket in the routes.
    pub fn socket<H: Handler>(mut self, socket: &Socket<H>) -> Self {
        self.sockets.push(Box::new(socket.clone()));
        self
    }

    /// Also shuts down when this future completes (a oneshot receiver, a test's signal, ...).
    pub fn shutdown_on(mut self, signal: impl Future<Output = ()> + Send + 'static) -> Self {
        self.shutdown.push(Box::pin(signal));
        self
    }

    /// Whether SIGINT (Ctrl-C) and SIGTERM start the shutdown. Default: `true`.
    pub fn signals(mut self, enabled: bool) -> Self {
        self.signals = enabled;
        self
    }

    /// How long a new connection may take to deliver a complete HTTP request head (request
    /// line and headers) before it is closed without an answer. Default: 10 s.
    ///
    /// This is the defence against slowloris clients, which hold connections open by sending
    /// nothing or a byte at a time. The same bound applies to each further request on a
    /// keep-alive connection (an idle keep-alive connection is closed after it), and with
    /// `tls` to the TLS handshake too, which must finish within it before the
    /// request head gets its own period. It does not limit an upgraded WebSocket connection:
    /// the heartbeat watches those. Values above a year are treated as a year.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout.min(MAX_HANDSHAKE_TIMEOUT);
        self
    }

    /// How many connections the kernel may hold, set up but not yet accepted, for
    /// [`bind`](Server::bind) and [`run`](Server::run). Default: 1024 (the kernel lowers it
    /// to `net.core.somaxconn`, 4096 on current Linux).
    ///
    /// When the queue is full the kernel drops new connection attempts, and each client
    /// tries again after a second. Rust's standard listener asks for 128, which a storm of
    /// reconnecting clients fills: in `ws-bench scale` (BENCHMARKS.md), 256 clients
    /// connecting at once paid that second at p99 with every server that used it. A listener
    /// passed to [`listener`](Server::listener) keeps the backlog it was created with.
    pub fn backlog(mut self, connections: u32) -> Self {
        self.backlog = connections.max(1);
        self
    }

    /// Serves `https://` and `wss://` with this certificate and key instead of plain TCP.
    ///
    /// ```no_run
    /// # use warp::Filter;
    /// # struct Chat;
    /// # #[ws::websocket]
    /// # impl Chat {}
    /// # async fn run() -> Result<(), ws::Error> {
    /// # let chat = ws::Socket::new(Chat);
    /// # let routes = warp::path("ws").and(chat.filter());
    /// let tls = ws::Tls::from_pem_files("cert.pem", "key.pem")?;
    /// ws::serve(routes).socket(&chat).tls(tls).run("0.0.0.0:8443").await
    /// # }
    /// ```
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: Tls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Binds the listening socket without serving yet, so the bound address can be read
    /// (useful with port 0).
    ///
    /// # Errors
    ///
    /// [`Error::Bind`] if the address cannot be bound.
    pub async fn bind<A: ToSocketAddrs + fmt::Debug>(self, addr: A) -> Result<Bound<F>, Error> {
        let listener = listen(&addr, self.backlog)
            .await
            .map_err(|source| Error::Bind {
                addr: format!("{addr:?}").trim_matches('"').to_owned(),
                source,
            })?;
        self.listener(listener)
    }

    /// Serves on a listener bound elsewhere.
    ///
    /// # Errors
    ///
    /// [`Error::LocalAddr`] if the listener's address cannot be read.
    pub fn listener(self, listener: TcpListener) -> Result<Bound<F>, Error> {
        let local_addr = listener.local_addr().map_err(Error::LocalAddr)?;
        Ok(Bound {
            server: self,
            listener,
            local_addr,
        })
    }

    /// Binds and serves until shutdown.
    ///
    /// # Errors
    ///
    /// [`Error::Bind`] if the address cannot be bound.
    pub async fn run<A: ToSocketAddrs + fmt::Debug>(self, addr: A) -> Result<(), Error> {
        self.bind(addr).await?.run().await
    }
}

/// Binds the first of `addr`'s addresses that can be bound, as `TcpListener::bind` does
/// (with `SO_REUSEADDR` on Unix, so a restarted server can bind while the last one's
/// connections linger in `TIME_WAIT`), and listens with `backlog`.
async fn listen<A: ToSocketAddrs>(addr: &A, backlog: u32) -> std::io::Result<TcpListener> {
    let mut last = None;
    for addr in tokio::net::lookup_host(addr).await? {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        #[cfg(unix)]
        socket.set_reuseaddr(true)?;
        match socket.bind(addr).and_then(|()| socket.listen(backlog)) {
            Ok(listener) => return Ok(listener),
            Err(err) => last = Some(err),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "could not resolve to any address",
        )
    }))
}

/// A [`Server`] with its listening socket bound; [`run`](Bound::run) serves.
#[must_use = "a server does nothing until `run` is awaited"]
pub struct Bound<F> {
    server: Server<F>,
    listener: TcpListener,
    local_addr: SocketAddr,
}

impl<F> fmt::Debug for Bound<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bound")
            .field("local_addr", &self.local_addr)
            .field("listener", &self.listener)
            .field("server", &self.server)
            .finish()
    }
}

impl<F> Bound<F>
where
    F: Filter<Error = Rejection> + Clone + Send + Sync + 'static,
    F::Extract: Reply,
{
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Whether it serves TLS (`https://`, `wss://`), as set with `Server::tls`.
    pub fn is_tls(&self) -> bool {
        self.server.is_tls()
    }

    /// Calls every socket's `on_start`, serves until shutdown, then shuts down gracefully.
    ///
    /// # Errors
    ///
    /// None today; the `Result` leaves room for errors that stop a running server.
    pub async fn run(self) -> Result<(), Error> {
        let Bound {
            server,
            listener,
            local_addr,
        } = self;
        let Server {
            filter,
            sockets,
            shutdown,
            signals,
            handshake_timeout,
            backlog: _,
            #[cfg(feature = "tls")]
            tls,
        } = server;
        for socket in &sockets {
            socket.start().await;
        }
        #[cfg(feature = "tls")]
        let acceptor = tls.as_ref().map(Tls::acceptor);
        #[cfg(feature = "tls")]
        tracing::info!(%local_addr, tls = tls.is_some(), "listening");
        #[cfg(not(feature = "tls"))]
        tracing::info!(%local_addr, "listening");
        let (stop_tx, stop_rx) = watch::channel(false);
        let connections = TaskTracker::new();
        let mut stop = pin!(shutdown_signal(shutdown, signals));
        let mut errors = accept::AcceptErrors::default();
        loop {
            let (stream, peer) = tokio::select! {
                () = &mut stop => break,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => {
                        errors.accepted();
                        accepted
                    }
                    Err(err) => {
                        // Usually out of file descriptors: connections go on meanwhile, and
                        // the pause lets some finish (a shutdown does not wait for it).
                        let pause = errors.failed(&err);
                        tokio::select! {
                            () = &mut stop => break,
                            () = tokio::time::sleep(pause) => continue,
                        }
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let filter = filter.clone();
            let stop_rx = stop_rx.clone();
            #[cfg(feature = "tls")]
            let acceptor = acceptor.clone();
            // Boxed: the task then holds a pointer, not the whole HTTP connection's future,
            // which tokio copies when it spawns the task and again when it finishes (a
            // handshake's largest user-space cost in `perf`).
            connections.spawn(Box::pin(async move {
                #[cfg(feature = "tls")]
                if let Some(acceptor) = acceptor {
                    let mut stop_rx = stop_rx;
                    let handshake =
                        tokio::time::timeout(handshake_timeout, tls::accept(&acceptor, stream));
                    let stream = tokio::select! {
                        result = handshake => match result {
                            Ok(Ok(stream)) => stream,
                            Ok(Err(err)) => {
                                tracing::debug!(%peer, "TLS handshake failed: {err}");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(
                                    %peer,
                                    "TLS handshake not done within {handshake_timeout:?}; closing"
                                );
                                return;
                            }
                        },
                        () = until(&mut stop_rx, |stop| *stop) => return,
                    };
                    serve_http(stream, peer, filter, stop_rx, handshake_timeout).await;
                    return;
                }
                serve_http(stream, peer, filter, stop_rx, handshake_timeout).await;
            }));
        }
        drop(listener);
        tracing::info!("shutting down");
        stop_tx.send_replace(true);
        futures_util::future::join_all(sockets.iter().map(|socket| socket.shutdown())).await;
        connections.close();
        if tokio::time::timeout(HTTP_DRAIN, connections.wait())
            .await
            .is_err()
        {
            tracing::warn!("HTTP requests still running after shutdown; dropping them");
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Serves HTTP/1.1 with upgrades on one accepted connection, the peer address in each
/// request's extensions, until it ends or the shutdown starts (then gracefully).
async fn serve_http<F, I>(
    io: I,
    peer: SocketAddr,
    filter: F,
    mut stop_rx: watch::Receiver<bool>,
    header_read_timeout: Duration,
) where
    F: Filter<Error = Rejection> + Clone + Send + Sync + 'static,
    F::Extract: Reply,
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = warp::service(filter);
    let service = warp::hyper::service::service_fn(
        move |mut request: http::Request<warp::hyper::body::Incoming>| {
            request.extensions_mut().insert(PeerAddr(peer));
            let mut service = service.clone();
            tower_service::Service::call(&mut service, request)
        },
    );
    let conn = warp::hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    let mut conn = pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = until(&mut stop_rx, |stop| *stop) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(err) = result {
        if err.is_timeout() {
            tracing::debug!(
                %peer,
                "no complete request head within {header_read_timeout:?}; closing"
            );
        } else {
            tracing::debug!(%peer, "HTTP connection ended: {err}");
        }
    }
}

/// Waits until the watched value satisfies `done` (or its sender is gone), holding no borrow.
pub(crate) async fn until<T>(rx: &mut watch::Receiver<T>, done: impl FnMut(&T) -> bool) {
    let _ = rx.wait_for(done).await;
}

async fn shutdown_signal(futures: Vec<ShutdownFuture>, signals: bool) {
    let user = async {
        if futures.is_empty() {
            std::future::pending::<()>().await;
        } else {
            futures_util::future::select_all(futures).await;
        }
    };
    let os = async {
        if signals {
            os_signal().await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        () = user => {}
        () = os => {}
    }
}

async fn os_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::warn!("cannot listen for SIGINT: {err}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::warn!("cannot listen for SIGTERM: {err}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}
