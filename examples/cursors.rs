//! Live cursors: everyone sees everyone's pointer. A first hour with `ws`, written from its
//! documentation: unique names reserved in `on_handshake` and always released, the `Endpoint`
//! taken as a hook parameter, a typed message, and a `/stats` route beside the socket
//! (`tests/cursors.rs` tests all of it with `ws::test`).
//!
//! `cargo run --example cursors -- --addr 127.0.0.1:8090`, then connect to
//! `ws://127.0.0.1:8090/ws?name=ada` and send `12 34`; every other client receives
//! `ada 12 34`. `curl http://127.0.0.1:8090/stats` shows who is connected.
//!
//! - `?name=` is required (`400` without it) and unique (`409 That name is taken.`).
//! - A name is released when its session is dropped: after `on_close`, and also when the
//!   handshake was accepted but the connection never opened (the client left, shutdown).
//! - A message that is not two numbers closes that client with 1007.
//! - Joins and leaves are announced as `+name` and `-name`.

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use warp::Filter;
use ws::{ClientId, Close, Endpoint, FromMessage, Message, Recipients, Reject, Request, websocket};

/// The names in use, shared by the handler, every session and the `/stats` route.
#[derive(Clone, Default)]
pub(crate) struct Names(Arc<Mutex<BTreeSet<String>>>);

impl Names {
    fn lock(&self) -> MutexGuard<'_, BTreeSet<String>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reserves `name`, or returns `None` if it is taken.
    fn reserve(&self, name: &str) -> Option<Reserved> {
        self.lock().insert(name.to_owned()).then(|| Reserved {
            name: name.to_owned(),
            names: self.clone(),
        })
    }

    /// The names in use, in order.
    pub(crate) fn list(&self) -> Vec<String> {
        self.lock().iter().cloned().collect()
    }
}

/// A reserved name, released when dropped: whichever way the session that holds it ends.
struct Reserved {
    name: String,
    names: Names,
}

impl Drop for Reserved {
    fn drop(&mut self) {
        self.names.lock().remove(&self.name);
    }
}

/// A connection's session.
pub(crate) struct Member {
    name: Reserved,
}

/// A pointer position, sent as `x y`.
pub(crate) struct Cursor {
    x: i32,
    y: i32,
}

impl FromMessage for Cursor {
    fn from_message(message: Message) -> Result<Self, Close> {
        let invalid = || Close::new(Close::INVALID_DATA, "expected `x y`, two integers");
        let text = message.as_text().ok_or_else(invalid)?;
        let (x, y) = text.split_once(' ').ok_or_else(invalid)?;
        match (x.parse(), y.parse()) {
            (Ok(x), Ok(y)) => Ok(Cursor { x, y }),
            _ => Err(invalid()),
        }
    }
}

/// The handler: the names in use.
#[derive(Default)]
pub(crate) struct Cursors {
    names: Names,
}

/// Names are 1 to 32 letters, digits, `-` or `_`.
fn valid_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[websocket]
impl Cursors {
    fn on_handshake(&self, req: &Request) -> Result<Member, Reject> {
        let name = req
            .query("name")
            .ok_or(Reject::bad_request("?name= is required."))?;
        if !valid_name(name) {
            return Err(Reject::bad_request(
                "A name is 1 to 32 letters, digits, `-` or `_`.",
            ));
        }
        let name = self
            .names
            .reserve(name)
            .ok_or(Reject::conflict("That name is taken."))?;
        Ok(Member { name })
    }

    fn on_open(&self, endpoint: &Endpoint, id: ClientId, member: &mut Member) {
        endpoint.deliver(Recipients::except([id]), format!("+{}", member.name.name));
    }

    fn on_data(&self, endpoint: &Endpoint, id: ClientId, member: &mut Member, cursor: Cursor) {
        let moved = format!("{} {} {}", member.name.name, cursor.x, cursor.y);
        endpoint.deliver(Recipients::except([id]), moved);
    }

    fn on_close(&self, endpoint: &Endpoint, id: ClientId, member: Member) {
        endpoint.deliver(Recipients::except([id]), format!("-{}", member.name.name));
        // `member` is dropped here, and its name with it.
    }
}

/// The application's routes: the socket at `/ws`, and `/stats` (who is connected).
pub(crate) fn routes(
    socket: &ws::Socket<Cursors>,
) -> impl Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + Clone + Send + Sync + 'static
{
    let names = socket.handler().names.clone();
    let endpoint = socket.endpoint();
    let stats = warp::path("stats").and(warp::path::end()).map(move || {
        format!(
            "connected: {}\nnames: {}\n",
            endpoint.len(),
            names.list().join(" ")
        )
    });
    warp::path("ws")
        .and(warp::path::end())
        .and(socket.filter())
        .or(stats)
}

#[allow(
    dead_code,
    reason = "tests/cursors.rs includes this file and has its own main"
)]
#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        // Colours only on a terminal: redirected to a file, the log stays plain text.
        .with_ansi(std::io::stdout().is_terminal())
        .init();
    let addr = match std::env::args().skip(1).collect::<Vec<_>>().as_slice() {
        [] => "127.0.0.1:8090".to_owned(),
        [flag, addr] if flag == "--addr" => addr.clone(),
        _ => {
            eprintln!("usage: cursors [--addr HOST:PORT]");
            return std::process::ExitCode::from(2);
        }
    };
    // Any origin: the example has no page of its own, so browsers connect from elsewhere.
    let socket = ws::Socket::with_config(
        Cursors::default(),
        ws::Config::new().origins(ws::Origins::Any),
    );
    match ws::serve(routes(&socket))
        .socket(&socket)
        .run(addr.as_str())
        .await
    {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("cursors: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
