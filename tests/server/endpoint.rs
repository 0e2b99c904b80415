//! Every `Endpoint` method, and the order of sends relative to broadcasts.

use ws::{ClientId, Endpoint, Message, Recipients, SendError, Socket, websocket};

use crate::probe::Probe;
use crate::support::*;

/// Connects `name` and returns the client with its id: the one new among the open clients.
async fn join(
    server: &TestServer,
    endpoint: &ws::Endpoint,
    log: &mut EventLog,
    name: &str,
) -> (Client, ClientId) {
    let before = endpoint.clients();
    let client = connect(&server.url(&format!("/ws?name={name}"))).await;
    let event = log.until(&format!("open {name} ")).await;
    let id = endpoint
        .clients()
        .into_iter()
        .find(|id| !before.contains(id))
        .expect("a new client");
    assert_eq!(event, format!("open {name} {id}"));
    (client, id)
}

#[tokio::test]
async fn send_broadcast_deliver_close_clients_len_info() {
    let (events, mut log) = events();
    let socket = Socket::new(Probe::new(events));
    let endpoint = socket.endpoint();
    let server = serve(&socket).await;
    assert!(endpoint.is_empty());

    let (mut a, ida) = join(&server, &endpoint, &mut log, "a").await;
    let (mut b, idb) = join(&server, &endpoint, &mut log, "b").await;
    let (mut c, idc) = join(&server, &endpoint, &mut log, "c").await;
    assert_eq!(endpoint.len(), 3);
    assert_eq!(endpoint.clients(), vec![ida, idb, idc]);
    assert!(endpoint.contains(idb));

    endpoint.send(idb, "just b").unwrap();
    assert_eq!(recv_text(&mut b).await, "just b");

    let delivery = endpoint.broadcast("all");
    assert_eq!((delivery.queued, delivery.failed.len()), (3, 0));
    for client in [&mut a, &mut b, &mut c] {
        assert_eq!(recv_text(client).await, "all");
    }

    let delivery = endpoint.deliver(Recipients::except([ida]), "not a");
    assert_eq!(delivery.queued, 2);
    // Each named client once, however often it is named.
    let delivery = endpoint.deliver([ida, idc, ida], "a and c");
    assert_eq!(delivery.queued, 2);
    assert_eq!(recv_text(&mut a).await, "a and c");
    assert_eq!(recv_text(&mut b).await, "not a");
    assert_eq!(recv_text(&mut c).await, "not a");
    assert_eq!(recv_text(&mut c).await, "a and c");

    // Counters and connection details.
    send_text(&mut a, "12345").await;
    assert_eq!(recv_text(&mut a).await, "12345");
    let info = endpoint.info(ida).unwrap();
    assert_eq!(info.id, ida);
    assert_eq!(
        info.remote_addr,
        a.get_ref().get_ref().local_addr().unwrap()
    );
    assert_eq!(info.protocol, None);
    assert_eq!((info.messages_read, info.frames_read), (1, 1));
    assert_eq!(info.bytes_read, 2 + 4 + 5, "header, mask key and payload");
    assert_eq!((info.messages_sent, info.frames_sent), (3, 3));
    assert!(info.bytes_sent >= 2 + 3 + 2 + 7 + 2 + 5);
    assert!(info.last_read.unwrap() >= info.connected_at);
    assert!(info.last_sent.unwrap() >= info.connected_at);
    assert_eq!(info.queued, 0);

    // Closing one client removes it; sending to it then fails plainly.
    endpoint.close(idc, 4002, "kicked").unwrap();
    assert_eq!(recv_close(&mut c).await, (4002, "kicked".into()));
    expect_end(&mut c).await;
    assert_eq!(log.until("close c").await, "close c 4002 kicked");
    assert_eq!(endpoint.len(), 2);
    assert!(endpoint.info(idc).is_none());
    assert_eq!(endpoint.send(idc, "x"), Err(SendError::UnknownClient(idc)));
    assert_eq!(
        endpoint.close(ida, 1006, ""),
        Err(SendError::InvalidCloseCode(1006))
    );
    let delivery = endpoint.deliver(idc, "m");
    assert_eq!((delivery.queued, delivery.failed), (0, vec![idc]));
    let delivery = endpoint.deliver(vec![ida, idc], "a, not c");
    assert_eq!((delivery.queued, delivery.failed), (1, vec![idc]));
    assert_eq!(recv_text(&mut a).await, "a, not c");
}

#[tokio::test]
async fn sends_keep_their_order_relative_to_broadcasts() {
    let (events, mut log) = events();
    let socket = Socket::new(Probe::new(events));
    let endpoint = socket.endpoint();
    let server = serve(&socket).await;
    let mut a = connect(&server.url("/ws?name=a")).await;
    let mut b = connect(&server.url("/ws?name=b")).await;
    log.until("open a").await;
    log.until("open b").await;
    let ids = endpoint.clients();
    for i in 0..200 {
        if i % 3 == 0 {
            endpoint.broadcast(format!("{i}"));
        } else {
            for id in &ids {
                endpoint.send(*id, format!("{i}")).unwrap();
            }
        }
    }
    for client in [&mut a, &mut b] {
        for i in 0..200 {
            assert_eq!(recv_text(client).await, i.to_string());
        }
    }
}

/// Sends from a hook: to its own client (found without the registry), and through another
/// socket's endpoint. Each socket is a node with its own ids, so the hook's client's id is
/// unknown to the other socket: that send must fail, not be mistaken for the current client.
#[tokio::test]
async fn a_hook_sends_to_its_own_client_and_through_another_sockets_endpoint() {
    struct Relay {
        to: Endpoint,
    }

    #[websocket]
    impl Relay {
        fn on_data(&self, own: &Endpoint, id: ClientId, msg: Message) {
            own.send(id, "before").unwrap();
            assert_eq!(
                self.to.send(id, "lost"),
                Err(ws::SendError::UnknownClient(id))
            );
            for theirs in self.to.clients() {
                self.to.send(theirs, msg.clone()).unwrap();
            }
            own.send(id, "after").unwrap();
        }
    }

    let (events, mut log) = events();
    let other = Socket::new(Probe::new(events));
    let other_server = serve(&other).await;
    let mut b = connect(&other_server.url("/ws?name=b")).await;
    log.until("open b").await;
    let relay = Socket::new(Relay {
        to: other.endpoint(),
    });
    let server = serve(&relay).await;
    let mut a = connect(&server.url("/ws")).await;
    send_text(&mut a, "for b").await;
    assert_eq!(recv_text(&mut a).await, "before");
    assert_eq!(recv_text(&mut a).await, "after");
    assert_eq!(recv_text(&mut b).await, "for b");
    assert_ne!(relay.endpoint().node(), other.endpoint().node());
    assert_eq!(other.endpoint().clients()[0].number(), 1);
    assert_eq!(relay.endpoint().clients()[0].number(), 1);
}
