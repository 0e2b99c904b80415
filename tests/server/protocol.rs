//! Protocol violations sent as raw frames, and the close code each one gets.

use tokio::io::AsyncWriteExt;
use ws::Socket;

use crate::probe::Probe;
use crate::support::*;

/// Sends raw bytes after a handshake; returns the server's close code and `on_close`'s event.
async fn violate(bytes: &[u8]) -> (u16, String) {
    let (events, mut log) = events();
    let socket = Socket::new(Probe::new(events));
    let server = serve(&socket).await;
    let mut tcp = raw_ws(server.addr, "?name=raw").await;
    log.until("open raw").await;
    tcp.write_all(bytes).await.unwrap();
    let code = raw_close_code(&mut tcp).await;
    (code, log.until("close raw").await)
}

#[tokio::test]
async fn an_unmasked_client_frame_is_a_protocol_error() {
    let (code, event) = violate(&frame(0x1, b"hello", false)).await;
    assert_eq!(code, 1002);
    assert_eq!(event, "close raw 1002 Protocol error");
}

#[tokio::test]
async fn invalid_utf8_text_closes_with_1007() {
    let (code, event) = violate(&frame(0x1, &[0x68, 0xff, 0xfe], true)).await;
    assert_eq!(code, 1007);
    assert_eq!(event, "close raw 1007 Invalid UTF-8");
}

#[tokio::test]
async fn a_reserved_opcode_is_a_protocol_error() {
    let (code, _) = violate(&frame(0x3, b"", true)).await;
    assert_eq!(code, 1002);
}

#[tokio::test]
async fn reserved_bits_are_a_protocol_error() {
    let mut bytes = frame(0x1, b"x", true);
    bytes[0] |= 0x40;
    assert_eq!(violate(&bytes).await.0, 1002);
}

#[tokio::test]
async fn a_fragmented_control_frame_is_a_protocol_error() {
    let mut bytes = frame(0x9, b"ping", true);
    bytes[0] &= 0x7f; // FIN cleared
    assert_eq!(violate(&bytes).await.0, 1002);
}

#[tokio::test]
async fn close_codes_that_cannot_be_sent_are_protocol_errors() {
    for bad in [999u16, 1004, 1005, 1006, 1015, 2000, 5000] {
        let (code, event) = violate(&frame(0x8, &close_payload(bad, b""), true)).await;
        assert_eq!(code, 1002, "peer sent {bad}");
        assert_eq!(
            event, "close raw 1002 Protocol violation",
            "peer sent {bad}"
        );
    }
}

#[tokio::test]
async fn a_close_reason_that_is_not_utf8_closes_with_1007() {
    let (code, _) = violate(&frame(0x8, &close_payload(1000, &[0xc3, 0x28]), true)).await;
    assert_eq!(code, 1007);
}

#[tokio::test]
async fn a_continuation_without_a_start_is_a_protocol_error() {
    let mut bytes = frame(0x0, b"orphan", true);
    bytes[0] |= 0x80;
    assert_eq!(violate(&bytes).await.0, 1002);
}
