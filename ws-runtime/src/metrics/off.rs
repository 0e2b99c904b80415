//! Without the feature `metrics`: nothing is exported. [`Exported`] has no value, so
//! [`Meter::export`](super::Meter::export) is always `None` and every call that would export
//! compiles away; its methods mirror `export.rs`'s.

use std::time::Duration;

use super::{Failure, RefusalReason};

/// No handles: a type without values.
#[derive(Debug)]
pub(crate) enum Exported {}

/// Methods that cannot be called (there is no `Exported` to call them on).
macro_rules! unreachable_methods {
    ($(fn $name:ident(&self $(, $arg:ident: $ty:ty)*);)*) => {
        impl Exported {
            $(
                pub(crate) fn $name(&self $(, $arg: $ty)*) {
                    $(let _ = $arg;)*
                    match *self {}
                }
            )*
        }
    };
}

unreachable_methods! {
    fn opened(&self, open: usize);
    fn closed(&self, socket: &str, code: &'static str, open: usize);
    fn refused(&self, why: RefusalReason);
    fn slow_close(&self);
    fn slow_drop(&self);
    fn rate_limit_pause(&self);
    fn heartbeat_timeout(&self);
    fn ping_rtt(&self, took: Duration);
    fn fanout(&self, took: Duration);
    fn read(&self, messages: u64, bytes: u64);
    fn wrote(&self, messages: u64, bytes: u64);
    fn backplane_up(&self, up: bool);
    fn published(&self);
    fn received(&self);
    fn failed(&self, failure: Failure, count: u64);
    fn outage(&self);
    fn lag(&self, took: Duration);
    fn recovery(&self, outcome: usize);
    fn history_lost(&self, members: u64);
}
