//! Clusters: several nodes (sockets, each served on its own port) joined by a backplane; every
//! `Endpoint` operation across nodes, the order one node's operations arrive in, membership,
//! partial counts, and a node cut off from the others. Each scenario runs over the in-process
//! `Hub` here; `redis.rs` (feature `redis`) runs them over Redis, with Redis' own failures.

mod history;
mod presence;
#[cfg(feature = "redis")]
mod redis;
mod scenarios;

use ws::Cluster;
use ws::cluster::Hub;

use scenarios::Timings;

/// Timings short enough for tests (`Timings::FAST`).
fn hub_cluster(hub: &Hub) -> Cluster {
    Timings::FAST.apply(Cluster::in_process(hub))
}

/// On the hub a node subscribes as it applies the join (and unsubscribes as it applies the last
/// leave), which the scenarios have waited for: the count is checked, not waited on.
fn room_ready(hub: &Hub) -> impl Fn(&str, usize) + '_ {
    move |room, nodes| {
        let topic = ws::cluster::Topic::Room(room.into());
        assert_eq!(hub.subscribers(&topic), nodes, "nodes receiving {room}");
    }
}

#[tokio::test]
async fn every_operation_reaches_clients_on_other_nodes() {
    let hub = Hub::new();
    scenarios::every_operation(|| hub_cluster(&hub), &room_ready(&hub)).await;
}

#[tokio::test]
async fn one_nodes_operations_reach_a_remote_client_in_order() {
    let hub = Hub::new();
    scenarios::in_order(|| hub_cluster(&hub), &room_ready(&hub)).await;
}

#[tokio::test]
async fn every_connection_of_a_user_on_every_node() {
    let hub = Hub::new();
    scenarios::users(|| hub_cluster(&hub)).await;
}

#[tokio::test]
async fn nodes_see_each_other_count_together_and_see_a_graceful_stop_at_once() {
    let hub = Hub::new();
    scenarios::membership(|| hub_cluster(&hub)).await;
}

#[tokio::test]
async fn a_cut_off_node_serves_its_own_fails_remote_calls_fast_and_is_dropped_by_the_others() {
    let hub = Hub::new();
    let cluster = || hub_cluster(&hub);
    let [a, b, c] = scenarios::Node::three(cluster).await;
    let (mut a1, a1_id) = a.enter().await;
    let (mut b1, b1_id) = b.enter().await;
    let (_c1, c1_id) = c.enter().await;
    scenarios::all_see(&[&a, &b, &c], 3).await;

    hub.cut(c.endpoint.node());
    // The cut node keeps serving its own clients at once, and refuses remote calls at once.
    let (mut c2, c2_id) = c.enter().await;
    let delivery = c.endpoint.broadcast("c alone");
    assert_eq!(delivery.queued, 2, "c's own two clients");
    assert_eq!(delivery.remote, ws::Remote::Unsent);
    assert_eq!(c2.recv_text().await.unwrap(), "c alone");
    assert_eq!(
        c.endpoint.send(a1_id, "lost"),
        Err(ws::SendError::Unavailable(a1_id))
    );
    assert!(c.endpoint.cluster_stats().unsent >= 2);
    assert!(!c.endpoint.cluster_stats().up);

    // The others ask it for its count and get a partial answer naming it, before it expires.
    let count = a.endpoint.cluster_len().await;
    assert_eq!(count.missing, [c.endpoint.node()]);
    assert_eq!(count.value, 2, "a's and b's clients");
    // Then it expires, and sends to its clients fail at once.
    scenarios::eventually("c expired on a", || a.endpoint.nodes().len() == 2).await;
    assert_eq!(
        a.endpoint.send(c1_id, "x"),
        Err(ws::SendError::UnknownClient(c1_id))
    );
    // While cut off, c does not declare the others dead: it is the one that cannot hear.
    tokio::time::sleep(Timings::FAST.expiry * 2).await;
    assert_eq!(
        c.endpoint.nodes().len(),
        3,
        "a cut-off node freezes its view"
    );

    // Restored: its hello brings it back into the others' view, and traffic flows again.
    hub.restore(c.endpoint.node());
    scenarios::all_see(&[&a, &b, &c], 3).await;
    a.endpoint.send(c2_id, "back").unwrap();
    assert_eq!(c2.recv_text().await.unwrap(), "back");
    c.endpoint.broadcast("c again");
    assert_eq!(a1.recv_text().await.unwrap(), "c again");
    assert_eq!(b1.recv_text().await.unwrap(), "c again");
    let _ = b1_id;
    for node in [a, b, c] {
        node.stop().await;
    }
}

/// A standalone socket (the default) has no cluster: another node's id is unknown there, and
/// the cluster queries answer for this node alone at once.
#[tokio::test]
async fn a_standalone_socket_is_a_cluster_of_one() {
    let node = scenarios::Node::start(Cluster::standalone()).await;
    let (_client, id) = node.enter().await;
    let foreign = scenarios::foreign_id(&node.endpoint);
    assert_eq!(
        node.endpoint.send(foreign, "x"),
        Err(ws::SendError::UnknownClient(foreign))
    );
    let delivery = node.endpoint.deliver([id, foreign], "x");
    assert_eq!(delivery.queued, 1);
    assert_eq!(delivery.failed, [foreign]);
    assert_eq!(delivery.remote, ws::Remote::NotNeeded);
    let count = node.endpoint.cluster_len().await;
    assert_eq!((count.value, count.is_complete()), (1, true));
    assert_eq!(node.endpoint.cluster_clients().await.value, [id]);
    assert_eq!(node.endpoint.nodes().len(), 1);
    assert_eq!(node.endpoint.cluster_stats(), ws::ClusterStats::default());
    node.stop().await;
}

/// Anyone with access to the backplane can publish: envelopes of another version, of an
/// unknown kind or with a text payload that is not UTF-8 are counted and skipped, and the node
/// goes on with the next.
#[tokio::test]
async fn unreadable_envelopes_are_counted_and_skipped() {
    use ws::cluster::{Backplane, Topic};

    let hub = Hub::new();
    let node = scenarios::Node::start(hub_cluster(&hub)).await;
    let (mut client, _) = node.enter().await;
    let intruder = hub.backplane();
    let _inbound = intruder.start("0000abcd".parse().unwrap());
    // version, kind, flags, sender (4), seq (4), then the body.
    let header = |version: u8, kind: u8, flags: u8| {
        let mut bytes = vec![version, kind, flags, 0, 0, 0xab, 0xcd, 0, 0, 0, 1];
        bytes.push(0); // no exceptions (a to-all body)
        bytes
    };
    let mut not_utf8 = header(1, 0x01, 0);
    not_utf8.push(0xff);
    let mut binary = header(1, 0x01, 1);
    binary.extend_from_slice(b"ok");
    for envelope in [header(2, 0x01, 0), header(1, 0x7f, 0), not_utf8, binary] {
        intruder.publish(&Topic::All, envelope.into()).unwrap();
    }
    assert_eq!(&client.recv_binary().await.unwrap()[..], b"ok");
    assert_eq!(node.endpoint.cluster_stats().unreadable, 3);
    node.stop().await;
}

#[tokio::test]
async fn history_of_a_room_is_one_across_nodes_and_recovers_on_another_node() {
    let hub = Hub::new();
    history::recovery_across_nodes(|| hub_cluster(&hub)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_recovery_on_one_node_while_another_publishes_gives_every_offset_once() {
    let hub = Hub::new();
    history::recovery_while_another_node_publishes(|| hub_cluster(&hub)).await;
}

/// What a cut-off node's members missed is read back from the store when its link comes
/// back: every offset once, in order; when the store no longer has all of it, they are
/// closed with 1012 and, back, told honestly that they did not recover.
#[tokio::test]
async fn history_a_cut_off_node_heals_its_gap_or_closes_its_members_with_1012() {
    let hub = Hub::new();
    let a = history::Node::start(hub_cluster(&hub), 5).await;
    let b = history::Node::start(hub_cluster(&hub), 5).await;
    let (mut on_a, first) = a.enter_room("join lobby").await;
    let (mut on_b, _) = b.enter_room("join lobby").await;
    let epoch = first.epoch;
    a.endpoint.publish("lobby", "m1").await.unwrap();
    assert_eq!(history::next(&mut on_b).await.0.offset, 1);

    // Three missed, within the five kept: healed.
    hub.cut(b.endpoint.node());
    for n in 2..=4 {
        a.endpoint.publish("lobby", format!("m{n}")).await.unwrap();
    }
    hub.restore(b.endpoint.node());
    for n in 2..=4 {
        let at = ws::Position::new(n, epoch);
        assert_eq!(history::next(&mut on_b).await, (at, format!("m{n}")));
    }
    a.endpoint.publish("lobby", "m5").await.unwrap();
    assert_eq!(history::next(&mut on_b).await.0.offset, 5, "once each");
    assert_eq!(b.endpoint.history_stats().unwrap().healed, 1);
    for n in 1..=5 {
        assert_eq!(history::next(&mut on_a).await.0.offset, n);
    }

    // Seven missed, two more than kept: the members here are closed, and back with their
    // last position they learn it is out of the window.
    hub.cut(b.endpoint.node());
    for n in 6..=12 {
        a.endpoint.publish("lobby", format!("m{n}")).await.unwrap();
    }
    hub.restore(b.endpoint.node());
    let close = on_b.expect_close().await.unwrap();
    assert_eq!((close.code, close.reason.as_str()), (1012, "History lost"));
    assert_eq!(b.endpoint.history_stats().unwrap().lost, 1);
    let (mut back, reply) = b.enter_room(&format!("join lobby 5 {epoch}")).await;
    assert!(!reply.recovered);
    assert_eq!((reply.reason.as_str(), reply.offset), ("window", 12));
    a.endpoint.publish("lobby", "m13").await.unwrap();
    assert_eq!(history::next(&mut back).await.1, "m13");
    a.stop().await;
    b.stop().await;
}

/// A history the store lost begins a new epoch: live members go on (nothing can be missing
/// without an outage), and an old position is not trusted. A node cut off from the store
/// records and delivers nothing.
#[tokio::test]
async fn history_lost_by_the_store_is_a_new_epoch_and_a_cut_off_publisher_records_nothing() {
    let hub = Hub::new();
    let a = history::Node::start(hub_cluster(&hub), 10).await;
    let b = history::Node::start(hub_cluster(&hub), 10).await;
    let (mut on_a, first) = a.enter_room("join lobby").await;
    let (mut on_b, _) = b.enter_room("join lobby").await;
    a.endpoint.publish("lobby", "m1").await.unwrap();
    hub.forget("lobby");
    let at = a.endpoint.publish("lobby", "again").await.unwrap();
    assert_eq!(at.offset, 1);
    assert_ne!(at.epoch, first.epoch);
    for client in [&mut on_a, &mut on_b] {
        assert_eq!(history::next(client).await.0.offset, 1);
        assert_eq!(history::next(client).await, (at, "again".to_owned()));
    }
    let (_, reply) = b.enter_room(&format!("join lobby 1 {}", first.epoch)).await;
    assert_eq!((reply.recovered, reply.reason.as_str()), (false, "epoch"));
    assert_eq!((reply.epoch, reply.offset), (at.epoch, 1));

    hub.cut(a.endpoint.node());
    assert_eq!(
        a.endpoint.publish("lobby", "lost").await,
        Err(ws::PublishError::Unavailable("lobby".into()))
    );
    let delivery = a.endpoint.deliver(ws::Recipients::room("lobby"), "lost");
    assert_eq!((delivery.queued, delivery.remote), (0, ws::Remote::Unsent));
    hub.restore(a.endpoint.node());
    let at = b.endpoint.publish("lobby", "after").await.unwrap();
    assert_eq!(at.offset, 2, "nothing was recorded meanwhile");
    for client in [&mut on_a, &mut on_b] {
        assert_eq!(history::next(client).await, (at, "after".to_owned()));
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn presence_lists_every_nodes_members_and_events_cross_nodes() {
    let hub = Hub::new();
    presence::across_nodes(|| hub_cluster(&hub)).await;
}

/// A node cut off (as a killed one would be) stops marking itself alive: its members leave
/// the others' lists within the expiry; back, it writes them again.
#[tokio::test]
async fn presence_of_a_silent_node_expires_and_comes_back_with_it() {
    let hub = Hub::new();
    let a = presence::Node::start(hub_cluster(&hub)).await;
    let b = presence::Node::start(hub_cluster(&hub)).await;
    let (mut ada, _) = a.member("ada", "lobby").await;
    let (_bob, _) = b.member("bob", "lobby").await;
    presence::eventually_who(&mut ada, "lobby", "2 ada,bob").await;
    let cut = std::time::Instant::now();
    hub.cut(b.endpoint.node());
    presence::eventually_who(&mut ada, "lobby", "1 ada").await;
    let gone = cut.elapsed();
    assert!(gone <= Timings::FAST.expiry * 2, "{gone:?}");
    hub.restore(b.endpoint.node());
    presence::eventually_who(&mut ada, "lobby", "2 ada,bob").await;
    a.stop().await;
    b.stop().await;
}

/// On one node (no cluster), presence is the node's rooms, with the same events.
#[tokio::test]
async fn presence_on_a_standalone_node() {
    let node = presence::Node::start(Cluster::standalone()).await;
    let (mut ada, _) = node.member("ada", "lobby").await;
    let (mut bob, bob_id) = node.member("bob", "lobby").await;
    assert_eq!(ada.recv_text().await.unwrap(), "join lobby bob");
    let (mut ada2, _) = node.member("ada", "lobby").await;
    assert_eq!(bob.recv_text().await.unwrap(), "join lobby ada");
    presence::eventually_who(&mut ada, "lobby", "3 ada,bob").await;
    let members = node.endpoint.presence("lobby").await;
    assert!(members.is_complete());
    assert_eq!((members.value.len(), members.value.users_len()), (3, 2));
    assert!(members.value.members.iter().any(|m| m.id == bob_id));
    node.endpoint.leave(bob_id, "lobby");
    assert_eq!(ada.recv_text().await.unwrap(), "leave lobby bob");
    assert_eq!(ada2.recv_text().await.unwrap(), "leave lobby bob");
    bob.expect_no_message(std::time::Duration::from_millis(20))
        .await
        .unwrap();
    node.stop().await;
}
