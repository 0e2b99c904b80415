//! One application over several nodes: what carries envelopes between them (the
//! [`Backplane`] trait), the names that travel (`id.rs`: [`NodeId`], [`ClientId`],
//! [`Room`]) and the envelope they travel in (`wire.rs`).
//!
//! Most users only choose a backplane with [`Config::cluster`](crate::Config::cluster); the
//! trait is here for those who bring their own engine.

mod backplane;
mod id;
pub(crate) mod wire;

pub use backplane::{Backplane, Event, Inbound, Topic, Unavailable};
pub(crate) use id::IdHasher;
pub use id::{ClientId, NodeId, ParseIdError, Room};
