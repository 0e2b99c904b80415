//! The test server: a socket, or a whole `Server`, on 127.0.0.1 with an ephemeral port.

use std::net::SocketAddr;

use http::Method;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use warp::{Filter, Rejection, Reply};

#[cfg(doc)]
use super::{Client, Response};
use super::{Connect, HttpRequest, raw};
use crate::{Error, Handler, Server, Socket};

/// Serves a socket's [`filter`](Socket::filter) at every path on 127.0.0.1 with an ephemeral
/// port, with the socket's lifecycle (`on_start` first, the 1001 shutdown at the end).
///
/// It runs [`ws::serve`](crate::serve) with signals off, so a test's Ctrl-C is left alone;
/// [`TestServer::shutdown`] (or dropping the server) starts the graceful shutdown. Use
/// [`serve_with`] to test your full warp routes.
///
/// ```
/// struct Quiet;
///
/// #[ws::websocket]
/// impl Quiet {}
///
/// # #[tokio::main] async fn main() {
/// let socket = ws::Socket::new(Quiet);
/// let server = ws::test::serve(&socket).await;
/// assert!(server.addr().ip().is_loopback());
/// server.shutdown().await;
/// # }
/// ```
///
/// # Panics
///
/// If 127.0.0.1 cannot be bound.
#[cfg_attr(docsrs, doc(cfg(feature = "test")))]
pub async fn serve<H: Handler>(socket: &Socket<H>) -> TestServer {
    serve_with(crate::serve(socket.filter()).socket(socket)).await
}

/// Runs a configured [`Server`] on 127.0.0.1 with an ephemeral port: your own routes, with
/// every socket given to [`Server::socket`].
///
/// Signals are turned off and a shutdown trigger is added for [`TestServer::shutdown`]; other
/// settings (the handshake timeout, more shutdown futures, `Server::tls`) are kept.
/// [`TestServer::get`] and [`TestServer::http`] request the other routes. They,
/// [`TestServer::connect`] and [`TestServer::raw`] speak plain TCP: against a server with
/// `Server::tls`, bring your own TLS client to [`TestServer::addr`].
///
/// ```
/// use warp::Filter;
///
/// struct Quiet;
///
/// #[ws::websocket]
/// impl Quiet {}
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let socket = ws::Socket::new(Quiet);
/// let routes = warp::path("ws").and(socket.filter());
/// let server = ws::test::serve_with(ws::serve(routes).socket(&socket)).await;
///
/// let client = server.connect("/ws").await?;
/// drop(client);
/// // Other paths are not routed to the socket: warp answers 404.
/// assert_eq!(server.connect("/").expect_refusal().await.status(), 404);
/// server.shutdown().await;
/// # Ok(())
/// # }
/// ```
///
/// # Panics
///
/// If 127.0.0.1 cannot be bound.
#[cfg_attr(docsrs, doc(cfg(feature = "test")))]
pub async fn serve_with<F>(server: Server<F>) -> TestServer
where
    F: Filter<Error = Rejection> + Clone + Send + Sync + 'static,
    F::Extract: Reply,
{
    let (stop, stopped) = oneshot::channel::<()>();
    let bound = server
        .signals(false)
        .shutdown_on(async {
            let _ = stopped.await;
        })
        .bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|err| panic!("ws::test: {err}"));
    let addr = bound.local_addr();
    TestServer {
        addr,
        stop: Some(stop),
        task: Some(tokio::spawn(bound.run())),
    }
}

/// A server running on 127.0.0.1 for a test, from [`serve`] or [`serve_with`].
///
/// Dropping it starts the graceful shutdown without waiting for it; call
/// [`shutdown`](TestServer::shutdown) to wait.
#[cfg_attr(docsrs, doc(cfg(feature = "test")))]
#[derive(Debug)]
pub struct TestServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), Error>>>,
}

impl TestServer {
    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://127.0.0.1:PORT` followed by `path_and_query`, for other clients.
    pub fn url(&self, path_and_query: &str) -> String {
        format!("ws://{}{path_and_query}", self.addr)
    }

    /// `http://127.0.0.1:PORT`: the `Origin` a browser sends for a page served by this
    /// server, which the default [`Origins::SameHost`](crate::Origins::SameHost) accepts.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Prepares a WebSocket handshake for `path_and_query` (e.g. `"/?token=x"`, `"/ws"`);
    /// await it to connect. Add headers, an `Origin` or subprotocols first.
    ///
    /// The request carries `Host: 127.0.0.1:PORT` and no `Origin`, like a non-browser client.
    ///
    /// ```
    /// # struct Quiet;
    /// # #[ws::websocket]
    /// # impl Quiet {}
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let socket = ws::Socket::new(Quiet);
    /// let server = ws::test::serve(&socket).await;
    /// let client = server
    ///     .connect("/chat?name=ada")
    ///     .origin(&server.origin())
    ///     .header("cookie", "session=abc")
    ///     .await?;
    /// # drop(client);
    /// let refusal = server.connect("/").origin("https://evil.example").expect_refusal().await;
    /// assert_eq!(refusal.status(), 403);
    /// # Ok(())
    /// # }
    /// ```
    pub fn connect(&self, path_and_query: &str) -> Connect {
        Connect::new(self.addr, path_and_query)
    }

    /// Prepares a handshake written by hand for `path_and_query`, for malformed requests and
    /// raw frames: see [`raw::Request`].
    ///
    /// ```
    /// # struct Quiet;
    /// # #[ws::websocket]
    /// # impl Quiet {}
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let socket = ws::Socket::new(Quiet);
    /// let server = ws::test::serve(&socket).await;
    /// let reply = server.raw("/").header("sec-websocket-version", "8").send().await?;
    /// assert_eq!(reply.status(), 426);
    /// # server.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn raw(&self, path_and_query: &str) -> raw::Request {
        raw::Request::new(self.addr, path_and_query)
    }

    /// Prepares a plain HTTP `GET` of `path_and_query` (e.g. `"/stats"`), for the routes served
    /// beside the socket ([`serve_with`]); await it for the [`Response`]. Add headers or a
    /// timeout first (see [`HttpRequest`]).
    ///
    /// It is an HTTP/1.1 request with `Host: 127.0.0.1:PORT` and `Connection: close`, on a
    /// connection of its own. Any status is a response: a path no route takes gives warp's
    /// 404, and only a missing or broken response is an [`HttpError`](super::HttpError).
    ///
    /// A route that reports the number of connected clients, checked with a client connected:
    ///
    /// ```
    /// use warp::Filter;
    /// use ws::{ClientId, Endpoint};
    ///
    /// struct Room;
    ///
    /// #[ws::websocket]
    /// impl Room {
    ///     fn on_open(&self, endpoint: &Endpoint, id: ClientId) {
    ///         let _ = endpoint.send(id, "welcome");
    ///     }
    /// }
    ///
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let socket = ws::Socket::new(Room);
    /// let endpoint = socket.endpoint();
    /// let stats = warp::path("stats").map(move || format!("{} connected", endpoint.len()));
    /// let routes = warp::path("ws").and(socket.filter()).or(stats);
    /// let server = ws::test::serve_with(ws::serve(routes).socket(&socket)).await;
    ///
    /// let mut client = server.connect("/ws").await?;
    /// // Once the welcome arrives, `on_open` has run: the client is counted.
    /// assert_eq!(client.recv_text().await?, "welcome");
    ///
    /// let response = server.get("/stats").await?;
    /// assert_eq!(response.status(), 200);
    /// assert_eq!(response.header("content-type"), Some("text/plain; charset=utf-8"));
    /// assert_eq!(response.body(), "1 connected");
    ///
    /// assert_eq!(server.get("/nowhere").await?.status(), 404);
    /// server.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn get(&self, path_and_query: &str) -> HttpRequest {
        self.http(Method::GET, path_and_query)
    }

    /// Prepares a plain HTTP request with any method for `path_and_query`; add headers and a
    /// body, then await it for the [`Response`]. As [`get`](TestServer::get) otherwise.
    ///
    /// ```
    /// use warp::Filter;
    ///
    /// struct Quiet;
    ///
    /// #[ws::websocket]
    /// impl Quiet {}
    ///
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let socket = ws::Socket::new(Quiet);
    /// let say = warp::post()
    ///     .and(warp::path("say"))
    ///     .and(warp::header::<String>("x-name"))
    ///     .and(warp::body::bytes())
    ///     .map(|name: String, body: bytes::Bytes| {
    ///         format!("{name} said {}", String::from_utf8_lossy(&body))
    ///     });
    /// let routes = warp::path("ws").and(socket.filter()).or(say);
    /// let server = ws::test::serve_with(ws::serve(routes).socket(&socket)).await;
    ///
    /// let response = server
    ///     .http(http::Method::POST, "/say")
    ///     .header("x-name", "ada")
    ///     .body("hello")
    ///     .await?;
    /// assert_eq!(response.body(), "ada said hello");
    /// // Without the header, warp refuses the route.
    /// assert_eq!(server.http(http::Method::POST, "/say").await?.status(), 400);
    /// server.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn http(&self, method: Method, path_and_query: &str) -> HttpRequest {
        HttpRequest::new(self.addr, method, path_and_query)
    }

    /// Starts the graceful shutdown and waits for it: `on_stop`, every client closed with 1001
    /// "Server shutting down", their `on_close`, then the server task's end. Connected
    /// [`Client`]s answer the close by themselves and keep it for
    /// [`expect_close`](Client::expect_close).
    ///
    /// # Panics
    ///
    /// If the server task panicked or failed.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => panic!("ws::test: the server failed: {err}"),
                Err(err) => panic!("ws::test: the server task failed: {err}"),
            }
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
