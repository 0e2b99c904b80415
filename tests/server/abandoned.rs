//! Handshakes that never become connections: the client leaves during a slow `on_handshake`,
//! or shutdown races it. The hook runs to completion, the session is dropped without
//! `on_open` or `on_close`, and what the handshake reserved is released in the session's
//! `Drop`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use ws::{Close, Reject, Request, Socket, websocket};

use crate::support::*;

/// The names in use.
#[derive(Clone, Default)]
struct Names(Arc<Mutex<HashSet<String>>>);

impl Names {
    fn lock(&self) -> MutexGuard<'_, HashSet<String>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The session: a reserved name, released when dropped.
struct Member {
    name: String,
    names: Names,
    events: Events,
}

impl Drop for Member {
    fn drop(&mut self) {
        self.names.lock().remove(&self.name);
        self.events.push(format!("released {}", self.name));
    }
}

/// Reserves `?name=` in `on_handshake`, then waits for the test to open its gate when the
/// name starts with `slow`.
struct Reserving {
    names: Names,
    gate: Arc<Semaphore>,
    events: Events,
}

#[websocket]
impl Reserving {
    async fn on_handshake(&self, req: &Request) -> Result<Member, Reject> {
        let name = req.query("name").unwrap_or("anonymous").to_owned();
        if !self.names.lock().insert(name.clone()) {
            return Err(Reject::conflict("Name taken."));
        }
        self.events.push(format!("reserved {name}"));
        if name.starts_with("slow") {
            // Held at an `.await` while the test makes the client leave or shuts down.
            self.gate.acquire().await.expect("gate open").forget();
        }
        self.events.push(format!("returned {name}"));
        Ok(Member {
            name,
            names: self.names.clone(),
            events: self.events.clone(),
        })
    }

    async fn on_open(&self, member: &mut Member) {
        self.events.push(format!("open {}", member.name));
    }

    async fn on_close(&self, member: Member, close: Close) {
        self.events
            .push(format!("close {} {}", member.name, close.code));
    }
}

fn reserving() -> (Socket<Reserving>, Names, Arc<Semaphore>, EventLog) {
    let (events, log) = events();
    let names = Names::default();
    let gate = Arc::new(Semaphore::new(0));
    let socket = Socket::new(Reserving {
        names: names.clone(),
        gate: gate.clone(),
        events,
    });
    (socket, names, gate, log)
}

/// Sends a handshake request for `/ws?name=NAME` and returns the connection without reading.
async fn start_handshake(server: &TestServer, name: &str) -> TcpStream {
    let mut tcp = TcpStream::connect(server.addr()).await.expect("connected");
    let request = format!(
        "GET /ws?name={name} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: {}\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n",
        server.addr(),
        ws::test::raw::SAMPLE_KEY,
    );
    tcp.write_all(request.as_bytes()).await.expect("written");
    tcp
}

#[tokio::test]
async fn a_client_that_leaves_during_a_slow_handshake_releases_its_name() {
    let (socket, names, gate, mut log) = reserving();
    let server = serve(&socket).await;

    let tcp = start_handshake(&server, "slow").await;
    assert_eq!(log.next().await, "reserved slow");
    drop(tcp);
    // The client is gone; the hook, held at its `.await`, still runs to its end.
    gate.add_permits(1);
    assert_eq!(log.next().await, "returned slow");
    // Whether the server learns that the client left before or after its 101, the session
    // ends once: dropped unopened, or opened and at once closed with 1006.
    let next = log.next().await;
    if next == "open slow" {
        assert_eq!(log.next().await, "close slow 1006");
        assert_eq!(log.next().await, "released slow");
    } else {
        assert_eq!(next, "released slow");
    }
    assert!(names.lock().is_empty(), "{:?}", names.lock());

    // The name is free again, and a connection with it opens and closes as usual.
    let mut client = connect(&server.url("/ws?name=fast")).await;
    assert_eq!(log.next().await, "reserved fast");
    assert_eq!(log.next().await, "returned fast");
    assert_eq!(log.next().await, "open fast");
    close_with(&mut client, 1000, "bye").await;
    assert_eq!(log.next().await, "close fast 1000");
    assert_eq!(log.next().await, "released fast");
    shutdown(server).await;
    assert_eq!(log.try_next(), None);
}

#[tokio::test]
async fn shutdown_racing_a_handshake_refuses_it_with_503_and_releases_its_name() {
    let (socket, names, gate, mut log) = reserving();
    let server = serve(&socket).await;
    let mut open = connect(&server.url("/ws?name=open")).await;
    assert_eq!(log.until("open open").await, "open open");

    let refused = tokio::spawn(server.raw("/ws?name=slow").timeout(WAIT).send());
    assert_eq!(log.next().await, "reserved slow");
    let stopping = tokio::spawn({
        let socket = socket.clone();
        async move { socket.shutdown().await }
    });
    // Shutdown has begun once the open client is told so; it waits for the hook.
    assert_eq!(
        recv_close(&mut open).await,
        (1001, "Server shutting down".to_owned())
    );
    expect_end(&mut open).await;
    assert!(
        !stopping.is_finished(),
        "shutdown waits for the handshake in progress"
    );
    gate.add_permits(1);
    assert_eq!(log.until("returned slow").await, "returned slow");

    let reply = refused.await.expect("no panic").expect("a reply");
    assert_eq!(reply.status(), 503, "{reply}");
    assert_eq!(reply.body(), "Server shutting down.");
    tokio::time::timeout(WAIT, stopping)
        .await
        .expect("shutdown ended")
        .expect("shutdown did not panic");
    assert!(names.lock().is_empty(), "{:?}", names.lock());
    let mut rest = Vec::new();
    while let Some(event) = log.try_next() {
        rest.push(event);
    }
    rest.sort();
    assert_eq!(
        rest,
        ["close open 1001", "released open", "released slow"],
        "the raced session never opened"
    );
    shutdown(server).await;
}
