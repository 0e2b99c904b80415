//! Rooms on one node: join and leave from hooks and from outside, deliveries to one room, to
//! several (each member once) and with exceptions, membership queries, and leaving every room
//! on close.

use ws::{ClientId, Endpoint, Recipients, Room, SendError, Socket, websocket};

use crate::support::*;

/// Commands, one per text message:
/// `join ROOM`, `leave ROOM`, `to ROOMS TEXT` (rooms comma-separated), `others ROOM TEXT`
/// (the room without the sender), `rooms` (replies with the sender's rooms). Everyone is
/// told `left ID` when a client closes.
struct Lobby;

#[websocket]
impl Lobby {
    fn on_open(&self, endpoint: &Endpoint, id: ClientId) {
        endpoint.join(id, "everyone").expect("open");
    }

    fn on_data(&self, endpoint: &Endpoint, id: ClientId, text: String) {
        let mut words = text.splitn(3, ' ');
        match (words.next(), words.next(), words.next()) {
            (Some("join"), Some(room), None) => endpoint.join(id, room).expect("open"),
            (Some("leave"), Some(room), None) => {
                let was_in = endpoint.leave(id, room);
                let _ = endpoint.send(id, format!("left {room}: {was_in}"));
            }
            (Some("to"), Some(rooms), Some(text)) => {
                let delivery = endpoint.deliver(Recipients::rooms(rooms.split(',')), text);
                let _ = endpoint.send(id, format!("queued {}", delivery.queued));
            }
            (Some("others"), Some(room), Some(text)) => {
                endpoint.deliver(Recipients::room(room).excluding([id]), text);
            }
            (Some("rooms"), None, None) => {
                let rooms: Vec<String> = endpoint.rooms(id).iter().map(Room::to_string).collect();
                let _ = endpoint.send(id, rooms.join(","));
            }
            _ => panic!("unknown command {text:?}"),
        }
    }

    fn on_close(&self, endpoint: &Endpoint, id: ClientId) {
        // The client has already left its rooms: this reaches the others only.
        endpoint.deliver(Recipients::room("everyone"), format!("left {id}"));
    }
}

/// A client of the lobby and its id (the one new among the open clients).
async fn enter(server: &TestServer, endpoint: &Endpoint) -> (ws::test::Client, ClientId) {
    let before = endpoint.clients();
    let mut client = server.connect("/ws").await.expect("connected");
    // `rooms` is answered once `on_open` has run: the client is open and in "everyone".
    client.send_text("rooms").await.unwrap();
    assert_eq!(client.recv_text().await.unwrap(), "everyone");
    let id = endpoint
        .clients()
        .into_iter()
        .find(|id| !before.contains(id))
        .expect("a new client");
    (client, id)
}

/// Asserts that the next message `client` receives is a marker sent to it alone now: nothing
/// else was queued for it before.
async fn nothing_before_marker(endpoint: &Endpoint, client: &mut ws::test::Client, id: ClientId) {
    endpoint.send(id, "marker").unwrap();
    assert_eq!(client.recv_text().await.unwrap(), "marker");
}

#[tokio::test]
async fn deliveries_reach_the_members_of_a_room_each_once() {
    let socket = Socket::new(Lobby);
    let endpoint = socket.endpoint();
    let server = serve(&socket).await;
    let (mut a, a_id) = enter(&server, &endpoint).await;
    let (mut b, b_id) = enter(&server, &endpoint).await;
    let (mut c, c_id) = enter(&server, &endpoint).await;

    a.send_text("join red").await.unwrap();
    a.send_text("join blue").await.unwrap();
    b.send_text("join blue").await.unwrap();
    // Each client's commands are handled in order: its `rooms` reply comes after its joins.
    a.send_text("rooms").await.unwrap();
    assert_eq!(a.recv_text().await.unwrap(), "everyone,red,blue");
    b.send_text("rooms").await.unwrap();
    assert_eq!(b.recv_text().await.unwrap(), "everyone,blue");
    assert_eq!(endpoint.members("blue"), [a_id, b_id]);
    assert_eq!(endpoint.room_len("red"), 1);
    assert_eq!(endpoint.room_len("nowhere"), 0);
    assert_eq!(
        endpoint.room_names(),
        [
            Room::from("blue"),
            Room::from("everyone"),
            Room::from("red")
        ]
    );

    // a is in both rooms and gets the message once; c is in neither.
    c.send_text("to red,blue both").await.unwrap();
    assert_eq!(c.recv_text().await.unwrap(), "queued 2");
    assert_eq!(a.recv_text().await.unwrap(), "both");
    assert_eq!(b.recv_text().await.unwrap(), "both");
    nothing_before_marker(&endpoint, &mut a, a_id).await;
    nothing_before_marker(&endpoint, &mut c, c_id).await;

    // The room without its sender.
    a.send_text("others blue from a").await.unwrap();
    assert_eq!(b.recv_text().await.unwrap(), "from a");
    nothing_before_marker(&endpoint, &mut a, a_id).await;

    // Leaving, from a hook and from outside.
    a.send_text("leave blue").await.unwrap();
    assert_eq!(a.recv_text().await.unwrap(), "left blue: true");
    a.send_text("leave blue").await.unwrap();
    assert_eq!(a.recv_text().await.unwrap(), "left blue: false");
    assert!(endpoint.leave(b_id, "blue"));
    assert_eq!(endpoint.room_len("blue"), 0);
    assert!(!endpoint.room_names().contains(&Room::from("blue")));
    let empty = endpoint.deliver(Recipients::room("blue"), "nobody");
    assert_eq!((empty.queued, empty.failed.len()), (0, 0));

    // Joining from outside, and a delivery from outside.
    endpoint.join(c_id, "red").unwrap();
    let delivery = endpoint.deliver(Recipients::room("red").excluding([a_id]), "to c");
    assert_eq!(delivery.queued, 1);
    assert_eq!(c.recv_text().await.unwrap(), "to c");
    nothing_before_marker(&endpoint, &mut a, a_id).await;
    nothing_before_marker(&endpoint, &mut b, b_id).await;
    shutdown(server).await;
}

#[tokio::test]
async fn a_closed_client_leaves_every_room() {
    let socket = Socket::new(Lobby);
    let endpoint = socket.endpoint();
    let server = serve(&socket).await;
    let (mut a, a_id) = enter(&server, &endpoint).await;
    let (mut b, b_id) = enter(&server, &endpoint).await;
    a.send_text("join red").await.unwrap();
    a.send_text("rooms").await.unwrap();
    assert_eq!(a.recv_text().await.unwrap(), "everyone,red");

    a.close(1000, "bye").await.unwrap();
    // `on_close` runs once the client is unregistered, which is when it leaves its rooms.
    assert_eq!(b.recv_text().await.unwrap(), format!("left {a_id}"));
    assert!(!endpoint.contains(a_id));
    assert!(endpoint.rooms(a_id).is_empty());
    assert_eq!(endpoint.members("everyone"), [b_id]);
    assert!(!endpoint.room_names().contains(&Room::from("red")));
    assert_eq!(
        endpoint.join(a_id, "red"),
        Err(SendError::UnknownClient(a_id)),
        "a closed client cannot join"
    );
    shutdown(server).await;
}
