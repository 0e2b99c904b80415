//! One application over several nodes: what carries envelopes between them (the
//! [`Backplane`] trait) and the names that travel (`id.rs`: [`NodeId`], [`ClientId`],
//! [`Room`]).
//!
//! Most users only choose a backplane with [`Config::cluster`](crate::Config::cluster); the
//! trait is here for those who bring their own engine.

#[cfg(feature = "redis")]
mod backoff;
mod backplane;
mod id;
#[cfg(feature = "redis")]
mod redis;

#[cfg(feature = "redis")]
pub use self::redis::{Redis, RedisError, RedisStats};
pub use backplane::{Backplane, Event, Inbound, Topic, Unavailable};
pub(crate) use id::IdHasher;
pub use id::{ClientId, NodeId, ParseIdError, Room};
