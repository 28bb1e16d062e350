#![doc = include_str!("../README.md")]

mod app;
mod error;
mod logging;
pub mod page;
mod server;
#[cfg(feature = "testing")]
pub mod testing;

pub use app::{App, Body, BodyError, BoxError, ResponseFuture, boxed, full, local_path};
pub use error::{Error, exit};
pub use logging::init_tracing;
pub use server::{AcceptBackoff, DEFAULT_GRACE, Server, every, shutdown_signal};
