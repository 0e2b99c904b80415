//! Each hook, its order, the typed session, and panics confined to their connection.

use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use ws::Socket;

use crate::probe::Probe;
use crate::support::*;

#[tokio::test]
async fn hooks_run_in_order_with_a_typed_session() {
    let (events, mut log) = events();
    let socket = Socket::new(Probe::new(events));
    let server = serve(&socket).await;
    assert_eq!(log.next().await, "start", "on_start runs before accepting");

    let mut client = connect(&server.url("/ws?name=alice")).await;
    assert_eq!(log.next().await, "handshake alice 127.0.0.1");
    assert!(log.next().await.starts_with("open alice "));

    send_text(&mut client, "hello").await;
    assert_eq!(recv_text(&mut client).await, "hello");
    send_text(&mut client, "again").await;
    assert_eq!(recv_text(&mut client).await, "again");
    send_text(&mut client, "count").await;
    assert_eq!(
        recv_text(&mut client).await,
        "3",
        "the session persists across messages"
    );
    assert_eq!(log.next().await, "data alice hello");
    assert_eq!(log.next().await, "data alice again");
    assert_eq!(log.next().await, "data alice count");

    close_with(&mut client, 1000, "done").await;
    expect_end(&mut client).await;
    assert_eq!(log.next().await, "close alice 1000 done");

    shutdown(server).await;
    assert_eq!(log.next().await, "stop");
    assert_eq!(log.try_next(), None, "on_close ran exactly once");
}

#[tokio::test]
async fn binary_messages_reach_on_data_in_order() {
    let (events, mut log) = events();
    let socket = Socket::new(Probe::new(events));
    let server = serve(&socket).await;
    let mut client = connect(&server.url("/ws?name=bin")).await;
    for i in 0u8..50 {
        client
            .send(WsMessage::binary(vec![i; usize::from(i)]))
            .await
            .unwrap();
    }
    for i in 0u8..50 {
        assert_eq!(
            recv(&mut client).await,
            WsMessage::binary(vec![i; usize::from(i)])
        );
    }
    log.until("data bin <49 bytes>").await;
}

#[tokio::test]
async fn a_panic_in_on_data_closes_only_that_client_with_1011() {
    let (events, mut log) = events();
    let socket = Socket::new(Probe::new(events));
    let server = serve(&socket).await;
    let mut victim = connect(&server.url("/ws?name=victim")).await;
    let mut bystander = connect(&server.url("/ws?name=bystander")).await;

    send_text(&mut victim, "panic").await;
    assert_eq!(
        recv_close(&mut victim).await,
        (1011, "Internal error".into())
    );
    assert_eq!(
        log.until("close victim").await,
        "close victim 1011 Internal error"
    );

    send_text(&mut bystander, "still here").await;
    assert_eq!(recv_text(&mut bystander).await, "still here");
    let mut newcomer = connect(&server.url("/ws?name=newcomer")).await;
    send_text(&mut newcomer, "hi").await;
    assert_eq!(recv_text(&mut newcomer).await, "hi");
}

#[tokio::test]
async fn an_err_from_on_data_closes_with_1011() {
    let (events, mut log) = events();
    let socket = Socket::new(Probe::new(events));
    let server = serve(&socket).await;
    let mut client = connect(&server.url("/ws?name=err")).await;
    send_text(&mut client, "fail").await;
    assert_eq!(recv_close(&mut client).await.0, 1011);
    assert_eq!(
        log.until("close err").await,
        "close err 1011 Internal error"
    );
}

#[tokio::test]
async fn a_panic_in_on_open_closes_with_1011_and_still_calls_on_close() {
    let (events, mut log) = events();
    let socket = Socket::new(Probe::new(events));
    let server = serve(&socket).await;
    let mut client = connect(&server.url("/ws?name=open-panic")).await;
    assert_eq!(recv_close(&mut client).await.0, 1011);
    assert_eq!(
        log.until("close").await,
        "close open-panic 1011 Internal error"
    );
}

#[tokio::test]
async fn a_panic_in_on_handshake_answers_500_and_the_server_goes_on() {
    let (events, _log) = events();
    let socket = Socket::new(Probe::new(events));
    let server = serve(&socket).await;
    let response = server.raw("/ws?mode=panic").send().await.unwrap();
    assert_eq!(response.status(), 500);
    assert_eq!(response.body(), "Internal Server Error");
    let mut client = connect(&server.url("/ws")).await;
    send_text(&mut client, "ok").await;
    assert_eq!(recv_text(&mut client).await, "ok");
}
