//! One application over several nodes: what carries envelopes between them (the
//! [`Backplane`] trait, and the in-process [`Hub`]), which cluster a socket joins
//! ([`Cluster`]), the names that travel (`id.rs`: [`NodeId`], [`ClientId`],
//! [`Room`]) and the envelope they travel in (`wire.rs`).
//!
//! Most users only choose a cluster with [`Config::cluster`](crate::Config::cluster); the
//! trait is here for those who bring their own engine.

#[cfg(feature = "redis")]
mod backoff;
mod backplane;
mod hub;
mod id;
mod position;
#[cfg(feature = "redis")]
mod redis;
pub(crate) mod ring;
mod settings;
mod store;
pub(crate) mod wire;

#[cfg(feature = "redis")]
pub use self::redis::{Redis, RedisError, RedisStats};
pub use backplane::{Backplane, Event, Inbound, Topic};
pub use hub::{Hub, InProcess};
pub(crate) use id::IdHasher;
pub use id::{ClientId, NodeId, ParseIdError, Room, User};
pub use position::{Epoch, ParseEpochError, Position};
pub use settings::Cluster;
pub use store::{Append, PRESENCE_KEEP, Read, Store, StoreError, StoreFuture, Unavailable};
