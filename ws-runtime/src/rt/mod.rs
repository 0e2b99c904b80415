//! Generic async plumbing for one connection's task: nothing here knows the protocol, and
//! nothing here imports the rest of the crate.
//!
//! | file | owns |
//! | --- | --- |
//! | `join.rs` | [`join3`](join::join3): the connection's three loops in one task, each polled only when woken |
//! | `signal.rs` | [`Signal`](signal::Signal): a lock-free wake-up for one waiter |
//! | `queue.rs` | [`Queue`](queue::Queue): bounded by items and bytes, one consumer, memory given back when idle |
//! | `lend.rs` | [`Lend`](lend::Lend): scratch buffers pooled per worker thread |
//! | `tcp.rs` | [`TcpWriter`](tcp::TcpWriter) and reads and writes without waiting: a plain TCP socket shared by reference |

pub(crate) mod join;
pub(crate) mod lend;
pub(crate) mod queue;
pub(crate) mod signal;
pub(crate) mod tcp;
