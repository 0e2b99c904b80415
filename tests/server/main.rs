//! Integration tests: a real server on 127.0.0.1 and real clients, for every hook, every
//! handshake refusal, the close codes, the endpoint and the shutdown.

// The test handlers' hooks are `async` on purpose, to exercise async hooks.
#![allow(clippy::unused_async)]

mod probe;
mod support;

mod abandoned;
mod adversarial;
mod backpressure;
mod close;
mod direct;
mod endpoint;
mod fragments;
mod handshake;
mod heartbeat;
mod history;
mod hooks;
mod limits;
mod protocol;
mod rooms;
mod shutdown;
