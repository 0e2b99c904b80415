//! A second load generator for the closed-loop echo (`--client tungstenite`):
//! tokio-tungstenite's client, one task per connection, each sending a message with
//! `SinkExt::send` (and so a flush) for every echo it has checked, as an application written
//! on that crate would. It costs the client core more per message than the hand-written
//! client of [`crate::client`], so it saturates sooner; it is there so that a result does not
//! hang on one client's way of writing and reading.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::{Bytes, Message};

use crate::client::{Payload, Target, open};

/// Connects with tokio-tungstenite's client handshake.
pub(crate) async fn connect(
    target: &Target,
) -> io::Result<tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>> {
    let stream = open(target.addr, None).await?;
    stream.set_nodelay(true)?;
    let url = format!("ws://{}/{}", target.addr, target.path);
    let (ws, _response) = tokio_tungstenite::client_async(url, stream)
        .await
        .map_err(io::Error::other)?;
    Ok(ws)
}

/// Closed loop over `ws`: keeps `depth` messages in flight until `limit` echoes have come
/// back, each checked byte for byte, and adds every echo to `counter`. Returns the echoes.
pub(crate) async fn echo(
    ws: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    payload: &Payload,
    depth: usize,
    limit: u64,
    counter: &Arc<AtomicU64>,
) -> io::Result<u64> {
    let message = if payload.is_text() {
        let text = std::str::from_utf8(payload.plain()).map_err(io::Error::other)?;
        Message::text(text)
    } else {
        Message::Binary(Bytes::copy_from_slice(payload.plain()))
    };
    let (mut tx, mut rx) = ws.split();
    let depth = (depth as u64).min(limit);
    for _ in 0..depth {
        tx.feed(message.clone()).await.map_err(io::Error::other)?;
    }
    tx.flush().await.map_err(io::Error::other)?;
    let (mut sent, mut received) = (depth, 0u64);
    while received < limit {
        let echo = rx
            .next()
            .await
            .ok_or_else(|| io::Error::other("server closed the connection"))?
            .map_err(io::Error::other)?;
        if echo != message {
            return Err(io::Error::other(format!(
                "echo {received} differs from the message sent ({} bytes)",
                echo.len()
            )));
        }
        received += 1;
        counter.fetch_add(1, Ordering::Relaxed);
        if sent < limit {
            tx.send(message.clone()).await.map_err(io::Error::other)?;
            sent += 1;
        }
    }
    Ok(received)
}
