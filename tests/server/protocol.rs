//! Protocol violations sent as raw frames, and the close code each one gets.

use tokio::io::AsyncWriteExt;
use ws::Socket;
use ws::test::raw::{self, Frame};

use crate::probe::Probe;
use crate::support::*;

/// Sends a raw frame after a handshake; returns the server's close code and `on_close`'s event.
async fn violate(frame: Frame) -> (u16, String) {
    let (events, mut log) = events();
    let socket = Socket::new(Probe::new(events));
    let server = serve(&socket).await;
    let mut tcp = raw_ws(&server, "?name=raw").await;
    log.until("open raw").await;
    tcp.write_all(&frame.encode()).await.unwrap();
    let close = raw::read_close(&mut tcp).await.unwrap();
    let event = log.until("close raw").await;
    drop(tcp);
    shutdown(server).await;
    (close.code, event)
}

#[tokio::test]
async fn an_unmasked_client_frame_is_a_protocol_error() {
    let (code, event) = violate(Frame::text("hello").unmasked()).await;
    assert_eq!(code, 1002);
    assert_eq!(event, "close raw 1002 Protocol error");
}

#[tokio::test]
async fn invalid_utf8_text_closes_with_1007() {
    let (code, event) = violate(Frame::text([0x68, 0xff, 0xfe])).await;
    assert_eq!(code, 1007);
    assert_eq!(event, "close raw 1007 Invalid UTF-8");
}

#[tokio::test]
async fn a_reserved_opcode_is_a_protocol_error() {
    let (code, _) = violate(Frame::new(0x3, "")).await;
    assert_eq!(code, 1002);
}

#[tokio::test]
async fn reserved_bits_are_a_protocol_error() {
    let frame = Frame::text("x").rsv1(true);
    assert_eq!(violate(frame).await.0, 1002);
}

#[tokio::test]
async fn a_fragmented_control_frame_is_a_protocol_error() {
    let frame = Frame::ping("ping").fin(false);
    assert_eq!(violate(frame).await.0, 1002);
}

#[tokio::test]
async fn close_codes_that_cannot_be_sent_are_protocol_errors() {
    for bad in [999u16, 1004, 1005, 1006, 1015, 2000, 5000] {
        let (code, event) = violate(Frame::close(bad, "")).await;
        assert_eq!(code, 1002, "peer sent {bad}");
        assert_eq!(
            event, "close raw 1002 Protocol violation",
            "peer sent {bad}"
        );
    }
}

#[tokio::test]
async fn a_close_reason_that_is_not_utf8_closes_with_1007() {
    let (code, _) = violate(Frame::close(1000, [0xc3, 0x28])).await;
    assert_eq!(code, 1007);
}

#[tokio::test]
async fn a_continuation_without_a_start_is_a_protocol_error() {
    let frame = Frame::continuation("orphan");
    assert_eq!(violate(frame).await.0, 1002);
}
