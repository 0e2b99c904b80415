//! placeholder
#[doc(inline)]
pub use ws_macros::websocket;
pub use ws_runtime::*;
