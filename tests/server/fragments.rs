//! Large sends: a message over the send frame size goes out as fragments, and the pong to a
//! ping sent meanwhile comes between them instead of after the whole message.

use tokio::io::AsyncWriteExt;
use ws::test::raw::{self, Frame};
use ws::{ClientId, Config, Endpoint, Message, Origins, websocket};

use crate::support::{raw_ws, serve, shutdown};

/// Sends one large message to every client that sends `"big"`.
struct Big {
    size: usize,
}

#[websocket]
impl Big {
    fn on_data(&self, endpoint: &Endpoint, id: ClientId, _message: Message) {
        let payload: Vec<u8> = (0..self.size)
            .map(|i| u8::try_from(i % 253).unwrap())
            .collect();
        endpoint.send(id, payload).unwrap();
    }
}

#[tokio::test]
async fn a_large_send_is_fragmented_and_a_ping_is_answered_between_its_frames() {
    const SIZE: usize = 32 << 20;
    let handler = Big { size: SIZE };
    let config = Config::new()
        .origins(Origins::Any)
        .send_queue_bytes(64 << 20)
        .send_frame_size(64 << 10);
    let socket = ws::Socket::with_config(handler, config);
    let server = serve(&socket).await;
    let mut tcp = raw_ws(&server, "").await;
    tcp.write_all(&Frame::text("big").encode()).await.unwrap();
    // The first fragment arrives; the rest waits in the socket buffers while we send a ping,
    // whose pong must come before the message ends.
    let frame = raw::read_frame(&mut tcp).await.unwrap();
    let (first, payload) = (frame.first_byte(), frame.payload);
    assert_eq!((first, payload.len()), (0x02, 64 << 10), "binary, not FIN");
    tcp.write_all(&Frame::ping("are you there").encode())
        .await
        .unwrap();
    let mut message = payload;
    let mut pong_at = None;
    loop {
        let frame = raw::read_frame(&mut tcp).await.unwrap();
        let (first, payload) = (frame.first_byte(), frame.payload);
        match first {
            0x00 | 0x80 => {
                assert_eq!(payload.len(), 64 << 10);
                message.extend_from_slice(&payload);
                if first == 0x80 {
                    break;
                }
            }
            0x8A => {
                assert_eq!(payload, b"are you there");
                pong_at = Some(message.len());
            }
            other => panic!("unexpected frame {other:#x}"),
        }
    }
    assert_eq!(message.len(), SIZE);
    assert!(
        message
            .iter()
            .enumerate()
            .all(|(i, &b)| b == u8::try_from(i % 253).unwrap())
    );
    let pong_at = pong_at.expect("a pong between the fragments");
    assert!(pong_at < SIZE, "the pong came before the last fragment");
    drop(tcp);
    shutdown(server).await;
}
