//! Typed JSON messages (feature `json`), tested with `ws::test`: round trips, broadcasts,
//! and the documented close for a message that does not decode (1007 "Invalid JSON: ...").

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use ws::{ClientId, Close, Endpoint, Json, JsonError, Message, Recipients, websocket};

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Command {
    Add { a: i64, b: i64 },
    Shout { text: String },
    Unserializable,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Reply {
    Sum { id: ClientId, value: i64 },
    Shouted { from: ClientId, text: String },
    Failed { error: String },
}

#[derive(Default)]
struct Calc {
    closes: Mutex<Vec<Close>>,
}

#[websocket]
impl Calc {
    fn on_data(
        &self,
        endpoint: &Endpoint,
        id: ClientId,
        Json(command): Json<Command>,
    ) -> Result<(), ws::BoxError> {
        match command {
            Command::Add { a, b } => {
                endpoint.send(id, Message::json(&Reply::Sum { id, value: a + b })?)?;
            }
            Command::Shout { text } => {
                let reply = Reply::Shouted {
                    from: id,
                    text: text.to_uppercase(),
                };
                endpoint.deliver(Recipients::except([id]), Message::json(&reply)?);
            }
            Command::Unserializable => {
                // Maps with non-string keys cannot be JSON: a typed error, nothing sent.
                let bad: BTreeMap<(u8, u8), u8> = BTreeMap::from([((1, 2), 3)]);
                let err = Message::json(&bad).unwrap_err();
                assert!(matches!(err, JsonError::Serialize(_)), "{err}");
                endpoint.send(
                    id,
                    Message::json(&Reply::Failed {
                        error: err.to_string(),
                    })?,
                )?;
            }
        }
        Ok(())
    }

    fn on_close(&self, close: Close) {
        self.closes.lock().unwrap().push(close);
    }
}

#[tokio::test]
async fn round_trip_text_and_binary_json() -> Result<(), Box<dyn std::error::Error>> {
    let socket = ws::Socket::new(Calc::default());
    let server = ws::test::serve(&socket).await;
    let mut client = server.connect("/").await?;
    client.send_text(r#"{"type":"add","a":2,"b":40}"#).await?;
    let Reply::Sum { id, value } = client.recv_json().await? else {
        panic!("expected a sum");
    };
    assert_eq!(value, 42);
    // Binary JSON decodes the same way; replies are text.
    client
        .send_binary(br#"{"type":"add","a":-1,"b":1}"#.to_vec())
        .await?;
    assert_eq!(
        client.recv().await?,
        Message::text(format!(r#"{{"type":"sum","id":"{id}","value":0}}"#))
    );
    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn broadcast_json_shares_one_payload() -> Result<(), Box<dyn std::error::Error>> {
    let socket = ws::Socket::new(Calc::default());
    let server = ws::test::serve(&socket).await;
    let mut a = server.connect("/").await?;
    let mut b = server.connect("/").await?;
    let mut c = server.connect("/").await?;
    a.send_json(&serde_json::json!({ "type": "shout", "text": "hi" }))
        .await?;
    let to_b: Reply = b.recv_json().await?;
    let to_c: Reply = c.recv_json().await?;
    assert_eq!(to_b, to_c);
    assert!(matches!(to_b, Reply::Shouted { ref text, .. } if text == "HI"));
    a.expect_no_message(std::time::Duration::from_millis(100))
        .await?;

    // From outside the hooks, through the socket's endpoint.
    let delivery = socket.endpoint().broadcast(Message::json(&Reply::Failed {
        error: "none".into(),
    })?);
    assert_eq!(delivery.queued, 3);
    for client in [&mut a, &mut b, &mut c] {
        assert_eq!(
            client.recv_text().await?,
            r#"{"type":"failed","error":"none"}"#
        );
    }
    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn serialization_errors_are_returned_not_sent() -> Result<(), Box<dyn std::error::Error>> {
    let socket = ws::Socket::new(Calc::default());
    let server = ws::test::serve(&socket).await;
    let mut client = server.connect("/").await?;
    let mut other = server.connect("/").await?;
    client.send_text(r#"{"type":"unserializable"}"#).await?;
    let Reply::Failed { error } = client.recv_json().await? else {
        panic!("expected the error");
    };
    assert!(
        error.starts_with("cannot serialize the message as JSON"),
        "{error}"
    );
    other
        .expect_no_message(std::time::Duration::from_millis(100))
        .await?;
    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn malformed_json_closes_with_1007() -> Result<(), Box<dyn std::error::Error>> {
    let socket = ws::Socket::new(Calc::default());
    let server = ws::test::serve(&socket).await;

    let mut client = server.connect("/").await?;
    client.send_text("{not json").await?;
    let close = client.expect_close().await?;
    assert_eq!(
        close,
        Close::new(
            Close::INVALID_DATA,
            "Invalid JSON: key must be a string at line 1 column 2"
        )
    );

    // Valid JSON of the wrong shape is refused the same way.
    let mut client = server.connect("/").await?;
    client.send_text(r#"{"type":"divide","a":1}"#).await?;
    let close = client.expect_close().await?;
    assert_eq!(close.code, Close::INVALID_DATA);
    assert!(
        close
            .reason
            .starts_with("Invalid JSON: unknown variant `divide`"),
        "{close}"
    );

    // A long error is cut to fit a close frame (123 bytes of reason).
    let mut client = server.connect("/").await?;
    let long = format!(r#"{{"type":"{}"}}"#, "ü".repeat(200));
    client.send_text(long).await?;
    let close = client.expect_close().await?;
    assert_eq!(close.code, Close::INVALID_DATA);
    assert!(close.reason.len() <= 123, "{}", close.reason.len());
    assert!(
        close
            .reason
            .starts_with("Invalid JSON: unknown variant `üü")
    );

    server.shutdown().await;
    let codes: Vec<u16> = socket
        .handler()
        .closes
        .lock()
        .unwrap()
        .iter()
        .map(|c| c.code)
        .collect();
    assert_eq!(codes, [1007, 1007, 1007]);
    Ok(())
}
