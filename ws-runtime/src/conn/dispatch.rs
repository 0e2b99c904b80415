//! Where the hooks of one connection are called: `on_open`, then `on_data` for each message in
//! order, one at a time; and the one guard around every hook call of the crate (a panic or an
//! `Err` is logged with the hook's name, and the caller answers it: 1011 for a connection's
//! hooks, 500 for `on_handshake`).

use std::any::Any;
use std::collections::VecDeque;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::CloseOnDrop;
use crate::endpoint::{Client, Endpoint};
use crate::handler::{BoxError, DataError, DataParam, Handler};
use crate::handshake::Reject;
use crate::message::Close;
use crate::rt::lend::{Lend, lend};
use crate::rt::queue::Queue;
use crate::stream::Incoming;

/// Bytes of messages the handler takes from its inbox at once (besides the first): they are
/// outside the inbox's limit while they wait their turn.
const TAKE_BYTES: usize = 64 << 10;

/// Whole messages the handler takes from its inbox at once, under one lock (and the reader
/// collects before handing them over).
pub(super) const HAND_OVER: usize = 64;

/// Runs `on_open`, then `on_data` for each message of the inbox in order, until the inbox is
/// closed and empty or a hook fails (the client is then closed with 1011, or with the close a
/// refused message asked for).
pub(super) async fn handle_loop<H: Handler>(
    handler: &H,
    endpoint: &Endpoint,
    client: &Client,
    session: &mut H::Session,
    inbox: &Queue<Incoming>,
) {
    // However it ends, the reader learns that nothing more is taken.
    let _stopped = CloseOnDrop(inbox);
    // A hook's deliveries are written at once where their receivers' writers are idle only
    // when nothing else waits to be handled: the next message's deliveries may follow them,
    // and a burst then reaches each receiver in one write (see `Client::push_direct`).
    client.set_handles_last(inbox.len() == 0);
    // `client.id` at each use, not a copy held across every `.await` of the task.
    let opened = guard(Hook::Open, handler.on_open(endpoint, client.id, session)).await;
    client.set_handles_last(false);
    if opened.is_err() {
        client.close_urgently(internal_error());
        return;
    }
    // Taken from the inbox a few at a time, under one lock.
    let mut taken = VecDeque::new();
    loop {
        let incoming = if let Some(next) = taken.pop_front() {
            next
        } else {
            Lend::give_back(&mut taken);
            let Some(first) = inbox.pop().await else {
                break;
            };
            if inbox.len() > 0 {
                taken = Lend::take();
                // Strict: a heavy message waits in the inbox, within its limit.
                inbox.try_pop_many(&mut taken, HAND_OVER, TAKE_BYTES, false);
            }
            first
        };
        // Stored only for the last message: a burst's others cost no store.
        let last = taken.is_empty() && inbox.len() == 0;
        if last {
            client.set_handles_last(true);
        }
        // The conversion runs user code too (`FromMessage`): inside the guard. The call is
        // built in place: bound to a local first, it would be moved once more per message.
        let outcome = guard(Hook::Data, async {
            let message = match incoming {
                Incoming::Message(message) => H::Message::from_whole(message),
                // Boxed: rare, and inline its state would be part of every connection's task.
                Incoming::Stream(stream) => Box::pin(H::Message::from_stream(stream)).await,
                // The peer broke the protocol after the messages handled so far: the close
                // goes out behind the replies to them.
                Incoming::Fail(close) => {
                    client.close(close);
                    return Ok(());
                }
            };
            let message = message.map_err(DataError::Refused)?;
            handler.on_data(endpoint, client.id, session, message).await
        })
        .await;
        if last {
            client.set_handles_last(false);
        }
        match outcome {
            Ok(None) => {}
            Ok(Some(refused)) => {
                tracing::debug!(code = refused.code, reason = %refused.reason, "message refused");
                client.close_urgently(refused);
                return;
            }
            Err(Failed) => {
                client.close_urgently(internal_error());
                return;
            }
        }
    }
}

/// The close a connection gets when one of its hooks failed.
pub(super) fn internal_error() -> Close {
    Close::new(Close::INTERNAL_ERROR, "Internal error")
}

/// A hook, as logs name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hook {
    Start,
    Handshake,
    Open,
    Data,
    Close,
    Stop,
}

impl Hook {
    fn name(self) -> &'static str {
        match self {
            Hook::Start => "on_start",
            Hook::Handshake => "on_handshake",
            Hook::Open => "on_open",
            Hook::Data => "on_data",
            Hook::Close => "on_close",
            Hook::Stop => "on_stop",
        }
    }

    /// What the caller does about a failure, for the log line.
    fn consequence(self) -> &'static str {
        match self {
            Hook::Handshake => "; answering 500",
            Hook::Open | Hook::Data => "; closing with 1011",
            Hook::Start | Hook::Close | Hook::Stop => "",
        }
    }
}

/// A hook call failed (it panicked, or `on_data` returned `Err`); it has been logged.
#[derive(Debug)]
pub(crate) struct Failed;

/// What a hook returns, as the caller goes on with it: the value, or a failure to log.
pub(crate) trait HookOutput {
    /// What the caller goes on with.
    type Value;

    /// Splits off a failure (logged here).
    fn into_value(self, hook: Hook) -> Result<Self::Value, Failed>;
}

impl HookOutput for () {
    type Value = ();

    #[inline]
    fn into_value(self, _: Hook) -> Result<(), Failed> {
        Ok(())
    }
}

/// `on_handshake`: a refusal is an answer, not a failure.
impl<S> HookOutput for Result<S, Reject> {
    type Value = Self;

    #[inline]
    fn into_value(self, _: Hook) -> Result<Self, Failed> {
        Ok(self)
    }
}

/// `on_data`: the handler's `Err` is a failure; a message the conversion refused is the close
/// it asked for.
impl HookOutput for Result<(), DataError> {
    type Value = Option<Close>;

    #[inline]
    fn into_value(self, hook: Hook) -> Result<Option<Close>, Failed> {
        match self {
            Ok(()) => Ok(None),
            Err(DataError::Refused(close)) => Ok(Some(close)),
            Err(DataError::Handler(err)) => Err(failed(hook, &err)),
        }
    }
}

/// Calls a hook: the one place where a hook's panic is caught and a hook's failure logged.
/// The server and the other connections go on; the caller decides what the failure costs
/// this connection or request.
pub(crate) fn guard<F>(hook: Hook, call: F) -> Guarded<F>
where
    F: Future,
    F::Output: HookOutput,
{
    Guarded { call, hook }
}

pin_project_lite::pin_project! {
    /// A hook call under [`guard`]. A future of its own rather than an `async fn` (which would
    /// hold `call` twice in its state and move it once more, for every message `on_data`
    /// handles) or a combinator chain (each layer polled and dropped per message).
    pub(crate) struct Guarded<F> {
        #[pin]
        call: F,
        hook: Hook,
    }
}

impl<F> Future for Guarded<F>
where
    F: Future,
    F::Output: HookOutput,
{
    type Output = Result<<F::Output as HookOutput>::Value, Failed>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let hook = *this.hook;
        let call = this.call;
        match std::panic::catch_unwind(AssertUnwindSafe(|| call.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => Poll::Ready(output.into_value(hook)),
            Err(panic) => Poll::Ready(Err(panicked(hook, &*panic))),
        }
    }
}

/// Logs a hook's panic.
#[cold]
fn panicked(hook: Hook, panic: &(dyn Any + Send)) -> Failed {
    let panic = panic_message(panic);
    tracing::error!(panic, "{} panicked{}", hook.name(), hook.consequence());
    Failed
}

/// Logs a hook's `Err`.
#[cold]
fn failed(hook: Hook, error: &BoxError) -> Failed {
    tracing::error!(error = %error, "{} returned an error{}", hook.name(), hook.consequence());
    Failed
}

fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(non-string panic payload)")
}

lend!(VecDeque<Incoming>);
