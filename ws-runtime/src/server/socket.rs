//! `Socket`: one handler with its config and endpoint, the warp filter that upgrades into it,
//! and its start and stop.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use http::{HeaderMap, Method, StatusCode, Uri};
use tokio::sync::OnceCell;
use tokio_util::task::TaskTracker;
use warp::Filter;
use warp::hyper::upgrade::OnUpgrade;
use warp::reply::Response;

use super::admission::Admission;
use crate::config::Config;
use crate::conn::{self, Hook, Service, guard};
use crate::endpoint::{Endpoint, Identity};
use crate::handler::Handler;
use crate::handshake::{self, Accept, Reject, Request};
use crate::metrics::RefusalReason;

/// The peer address our own accept loop attaches to each request (warp keeps its own private).
#[derive(Clone, Copy, Debug)]
pub(crate) struct PeerAddr(pub(crate) SocketAddr);

/// A WebSocket server: a `#[websocket]` handler with its [`Config`] and [`Endpoint`].
///
/// One `Socket` serves every connection of one WebSocket route; it is not a connection (a
/// connection is a [`ClientId`](crate::ClientId) with its session). Its
/// [`endpoint`](Socket::endpoint) is the handle to send to those connections; its
/// [`filter`](Socket::filter) is what warp routes to. Cloning is cheap and shares everything. Mount [`filter`](Socket::filter) on any warp route
/// and give the socket to [`serve`](crate::serve) for its lifecycle:
///
/// ```no_run
/// use warp::Filter;
///
/// struct Greeter;
///
/// #[ws::websocket]
/// impl Greeter {
///     fn on_open(&self, id: ws::ClientId) {
///         println!("client {id} connected");
///     }
/// }
///
/// # async fn run() -> Result<(), ws::Error> {
/// let greeter = ws::Socket::new(Greeter);
/// let routes = warp::path("ws").and(greeter.filter());
/// ws::serve(routes).socket(&greeter).run("127.0.0.1:8080").await
/// # }
/// ```
pub struct Socket<H: Handler> {
    inner: Arc<SocketInner<H>>,
}

struct SocketInner<H: Handler> {
    /// What the socket's connections share.
    service: Arc<Service<H>>,
    admission: Arc<Admission>,
    tracker: TaskTracker,
    started: OnceCell<()>,
    stopped: OnceCell<()>,
}

impl<H: Handler> Clone for Socket<H> {
    fn clone(&self) -> Self {
        Socket {
            inner: self.inner.clone(),
        }
    }
}

impl<H: Handler> std::fmt::Debug for Socket<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("handler", &std::any::type_name::<H>())
            .field("clients", &self.inner.service.endpoint.len())
            .field("config", &self.inner.service.config)
            .finish()
    }
}

impl<H: Handler> Socket<H> {
    /// A socket with the default [`Config`].
    pub fn new(handler: H) -> Self {
        Socket::with_config(handler, Config::default())
    }

    /// A socket with this configuration.
    pub fn with_config(handler: H, mut config: Config) -> Self {
        if config.name.is_none() {
            config.name = Some(type_name::<H>());
        }
        let endpoint = Endpoint::new(&config);
        Socket {
            inner: Arc::new(SocketInner {
                service: Arc::new(Service {
                    handler,
                    config,
                    endpoint,
                }),
                admission: Arc::default(),
                tracker: TaskTracker::new(),
                started: OnceCell::new(),
                stopped: OnceCell::new(),
            }),
        }
    }

    /// The handler.
    pub fn handler(&self) -> &H {
        &self.inner.service.handler
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.service.config
    }

    /// A handle to send to this socket's clients.
    pub fn endpoint(&self) -> Endpoint {
        self.inner.service.endpoint.clone()
    }

    /// The warp filter that answers WebSocket handshakes for this socket.
    ///
    /// It never rejects: every request that reaches it gets an answer. A request that is not a
    /// valid WebSocket handshake gets a plain HTTP error (`405` with `Allow: GET` for another
    /// method, `426` without `Upgrade: websocket` / `Connection: Upgrade`, `400` without a
    /// valid `Sec-WebSocket-Key`, `426` with `Sec-WebSocket-Version: 13` for another version),
    /// a refused `Origin` gets `403`, a request after shutdown began gets `503`; then
    /// `on_handshake` decides (a panic there answers `500`). Put path filters in front of it.
    pub fn filter(
        &self,
    ) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone + Send + Sync + 'static
    {
        let inner = self.inner.clone();
        warp::method()
            .and(warp::path::full())
            .and(warp::query::raw().or(warp::any().map(String::new)).unify())
            .and(warp::header::headers_cloned())
            .and(warp::ext::optional::<PeerAddr>())
            .and(warp::addr::remote())
            .and(warp::ext::optional::<OnUpgrade>())
            .and_then(
                move |method: Method,
                      path: warp::path::FullPath,
                      query: String,
                      headers: HeaderMap,
                      peer: Option<PeerAddr>,
                      remote: Option<SocketAddr>,
                      on_upgrade: Option<OnUpgrade>| {
                    let inner = inner.clone();
                    async move {
                        let uri = if query.is_empty() {
                            path.as_str().parse::<Uri>()
                        } else {
                            format!("{}?{query}", path.as_str()).parse::<Uri>()
                        }
                        .unwrap_or_default();
                        let remote = peer.map(|p| p.0).or(remote);
                        let request = Request::new(method, uri, headers, remote);
                        Ok::<_, warp::Rejection>(inner.handshake(request, on_upgrade).await)
                    }
                },
            )
    }

    /// Calls `on_start` if it has not run yet. [`serve`](crate::serve) does this before
    /// accepting; the filter does it on the first handshake when the socket is served some
    /// other way.
    pub async fn start(&self) {
        self.inner.start().await;
    }

    /// Shuts this socket down: refuses new handshakes with 503, calls `on_stop`, closes every
    /// client with 1001 "Server shutting down" after the messages already queued for it,
    /// waits for their close replies (up to the close timeout) and their `on_close`, then
    /// returns. Runs once; later calls wait for the first to finish.
    pub async fn shutdown(&self) {
        self.inner.shutdown().await;
    }
}

impl<H: Handler> SocketInner<H> {
    async fn start(&self) {
        self.started
            .get_or_init(|| async {
                let service = &self.service;
                // Metrics are registered with the recorder installed by now.
                service.endpoint.start_meter();
                // The cluster first: `on_start` may already send to other nodes.
                service.endpoint.start_cluster();
                let _ = guard(Hook::Start, service.handler.on_start(&service.endpoint)).await;
            })
            .await;
    }

    async fn shutdown(&self) {
        self.stopped
            .get_or_init(|| async {
                let _ = guard(
                    Hook::Stop,
                    self.service.handler.on_stop(&self.service.endpoint),
                )
                .await;
                self.service.endpoint.begin_shutdown();
                self.tracker.close();
                self.tracker.wait().await;
                self.service.endpoint.stop_cluster().await;
            })
            .await;
    }

    /// Counts and logs a refusal, with the reason its metric's label gives, and answers it.
    fn refuse(&self, request: &Request, reject: Reject, why: RefusalReason) -> Response {
        self.service.endpoint.meter().refused(why);
        tracing::debug!(
            peer = %request.remote_addr(),
            path = request.path(),
            status = reject.status().as_u16(),
            reason = why.as_str(),
            "handshake refused"
        );
        reject.into_response()
    }

    async fn handshake(
        self: Arc<Self>,
        request: Request,
        on_upgrade: Option<OnUpgrade>,
    ) -> Response {
        self.start().await;
        let Service {
            config, endpoint, ..
        } = &*self.service;
        let headers = request.headers();
        let key = match handshake::check_protocol(request.method(), headers) {
            Ok(key) => key,
            Err(reject) => return self.refuse(&request, reject, RefusalReason::Protocol),
        };
        if !handshake::origin_allowed(&config.origins, headers) {
            let reject = Reject::forbidden("Origin not allowed.");
            return self.refuse(&request, reject, RefusalReason::Origin);
        }
        if endpoint.is_shutting_down() {
            return self.refuse(&request, shutting_down(), RefusalReason::Shutdown);
        }
        let slot = match self.admission.admit(
            request.remote_addr().ip(),
            config.max_connections,
            config.max_connections_per_ip,
        ) {
            Ok(slot) => slot,
            Err(reject) => return self.refuse(&request, reject, RefusalReason::Limit),
        };
        let Some(on_upgrade) = on_upgrade else {
            tracing::error!(
                "no upgrade is possible on this connection (HTTP/2, or not served by hyper)"
            );
            let reject = Reject::internal_error("Internal Server Error");
            return self.refuse(&request, reject, RefusalReason::Error);
        };
        // The hook runs to completion: what it reserves is not lost at an `.await` when the
        // client leaves meanwhile (hyper then drops this future). Polled here first; a hook
        // that has to wait goes on in a task of its own, which shutdown waits for like for a
        // connection. (Spawning every hook cost 53-56 instead of 50-52 µs of server CPU per
        // handshake in `ws-bench handshakes`.)
        let mut decide = Box::pin({
            let inner = self.clone();
            async move {
                let Service {
                    handler, endpoint, ..
                } = &*inner.service;
                let mut accept = Accept::new(&request);
                let outcome = guard(
                    Hook::Handshake,
                    handler.on_handshake(endpoint, &request, &mut accept),
                )
                .await;
                (outcome, request, accept)
            }
        });
        let decided = match std::future::poll_fn(|cx| Poll::Ready(decide.as_mut().poll(cx))).await {
            Poll::Ready(decided) => decided,
            Poll::Pending => {
                let Ok(decided) = self.tracker.spawn(decide).await else {
                    // The hook's task was cancelled: the request went with it.
                    endpoint.meter().refused(RefusalReason::Error);
                    return Reject::internal_error("Internal Server Error").into_response();
                };
                decided
            }
        };
        let (session, request, mut accept) = match decided {
            (Ok(Ok(session)), request, accept) => (session, request, accept),
            (Ok(Err(reject)), request, _) => {
                return self.refuse(&request, reject, RefusalReason::Rejected);
            }
            (Err(_), request, _) => {
                let reject = Reject::internal_error("Internal Server Error");
                return self.refuse(&request, reject, RefusalReason::Error);
            }
        };
        if endpoint.is_shutting_down() {
            // Shutdown began while the hook ran: the session is dropped, never opened.
            return self.refuse(&request, shutting_down(), RefusalReason::Shutdown);
        }
        let protocol = handshake::choose_protocol(config, &request, &accept);
        let user = accept.take_user();
        let deflate = config
            .deflate
            .as_ref()
            .and_then(|d| crate::proto::deflate::negotiate(d, request.headers()));
        let extensions = deflate.as_ref().map(|d| d.header.as_str());
        let response =
            match handshake::switching_protocols(&key, accept, protocol.as_deref(), extensions) {
                Ok(response) => response,
                Err(reject) => return self.refuse(&request, reject, RefusalReason::Error),
            };
        let remote = request.remote_addr();
        // Boxed, as the HTTP connection's task (`server::serve`): not copied at spawn and end.
        self.tracker.spawn(Box::pin(conn::run(
            self.service.clone(),
            on_upgrade,
            session,
            remote,
            Identity::boxed(protocol, user),
            deflate,
            slot,
        )));
        response
    }
}

/// A type's name without its path or generic arguments: `Chat` for `my_app::Chat<T>`.
fn type_name<T>() -> String {
    let full = std::any::type_name::<T>();
    let bare = full.split('<').next().unwrap_or(full);
    bare.rsplit("::").next().unwrap_or(bare).to_owned()
}

/// The answer to a handshake once shutdown began.
fn shutting_down() -> Reject {
    Reject::with_body(StatusCode::SERVICE_UNAVAILABLE, "Server shutting down.")
}

/// What [`Server`](crate::Server) needs of a socket, whatever its handler type.
pub(crate) trait Lifecycle: Send + Sync {
    fn start(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
    fn shutdown(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

impl<H: Handler> Lifecycle for Socket<H> {
    fn start(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(self.inner.start())
    }

    fn shutdown(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(self.inner.shutdown())
    }
}
