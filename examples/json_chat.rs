//! A chat that speaks typed JSON events (feature `json`).
//!
//! `cargo run --example json_chat --features json -- --addr 127.0.0.1:8081`
//!
//! Connect with `ws://127.0.0.1:8081/?name=ada` and send
//! `{"type":"say","text":"hello"}`, `{"type":"rename","name":"lovelace"}` or
//! `{"type":"who"}`. Every event the server sends has a `type` too: `welcome`, `joined`,
//! `said`, `renamed`, `members`, `left`. A message that is not one of the commands closes the
//! connection with 1007 "Invalid JSON: ...".

use std::io::IsTerminal;

use serde::{Deserialize, Serialize};
use ws::{
    ClientId, Close, Endpoint, Json, JsonError, Message, Origins, Recipients, Reject, Request,
    websocket,
};

/// What clients send.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Command {
    /// Say something to everyone.
    Say { text: String },
    /// Change your name.
    Rename { name: String },
    /// Ask who is here.
    Who,
}

/// What the server sends.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event<'a> {
    /// To a new member: its id and name.
    Welcome { id: ClientId, name: &'a str },
    /// To the others when someone joins.
    Joined { id: ClientId, name: &'a str },
    /// To everyone, the sender included.
    Said {
        id: ClientId,
        name: &'a str,
        text: &'a str,
    },
    /// To everyone when someone changes name.
    Renamed {
        id: ClientId,
        from: &'a str,
        to: &'a str,
    },
    /// To whoever asked: the number of members.
    Members { count: usize },
    /// To the others when someone leaves.
    Left {
        id: ClientId,
        name: &'a str,
        code: u16,
    },
}

struct Chat;

/// A member's session.
struct Member {
    name: String,
}

/// Names are 1 to 32 characters, without control characters.
fn valid_name(name: &str) -> bool {
    (1..=32).contains(&name.chars().count()) && !name.chars().any(char::is_control)
}

#[websocket]
impl Chat {
    fn on_handshake(&self, req: &Request) -> Result<Member, Reject> {
        let name = req.query("name").unwrap_or("anonymous");
        if !valid_name(name) {
            return Err(Reject::bad_request("`name` must be 1 to 32 characters."));
        }
        Ok(Member {
            name: name.to_owned(),
        })
    }

    fn on_open(&self, endpoint: &Endpoint, id: ClientId, member: &mut Member) {
        let name = member.name.as_str();
        // Events of these types always serialize; a failed send means the client is closing.
        if let Ok(welcome) = Message::json(&Event::Welcome { id, name }) {
            let _ = endpoint.send(id, welcome);
        }
        if let Ok(joined) = Message::json(&Event::Joined { id, name }) {
            endpoint.deliver(Recipients::except([id]), joined);
        }
    }

    fn on_data(
        &self,
        endpoint: &Endpoint,
        id: ClientId,
        member: &mut Member,
        Json(command): Json<Command>,
    ) -> Result<(), JsonError> {
        match command {
            Command::Say { text } => {
                let name = &member.name;
                endpoint.broadcast(Message::json(&Event::Said {
                    id,
                    name,
                    text: &text,
                })?);
            }
            Command::Rename { name } if valid_name(&name) => {
                let from = std::mem::replace(&mut member.name, name);
                endpoint.broadcast(Message::json(&Event::Renamed {
                    id,
                    from: &from,
                    to: &member.name,
                })?);
            }
            Command::Rename { .. } => {
                // Not worth a close: say nothing and keep the old name.
            }
            Command::Who => {
                let count = endpoint.len();
                // A failed send means the client is already closing; nothing to tell it.
                let _ = endpoint.send(id, Message::json(&Event::Members { count })?);
            }
        }
        Ok(())
    }

    fn on_close(&self, endpoint: &Endpoint, id: ClientId, member: Member, close: Close) {
        let name = &member.name;
        if let Ok(left) = Message::json(&Event::Left {
            id,
            name,
            code: close.code,
        }) {
            endpoint.broadcast(left);
        }
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        // Colours only on a terminal: redirected to a file, the log stays plain text.
        .with_ansi(std::io::stdout().is_terminal())
        .init();
    let mut addr = "127.0.0.1:8081".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if let ("--addr", Some(value)) = (arg.as_str(), args.next()) {
            addr = value;
        } else {
            eprintln!("usage: json_chat [--addr HOST:PORT]");
            return std::process::ExitCode::from(2);
        }
    }
    // No page of its own: allow any origin so a page elsewhere (or a console) can try it.
    let chat = ws::Socket::with_config(Chat, ws::Config::new().origins(Origins::Any));
    let server = match ws::serve(chat.filter())
        .socket(&chat)
        .bind(addr.as_str())
        .await
    {
        Ok(server) => server,
        Err(err) => {
            eprintln!("json_chat: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!(
        "json_chat listening on ws://{}/?name=YOU",
        server.local_addr()
    );
    match server.run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("json_chat: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
