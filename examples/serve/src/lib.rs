#![doc = include_str!("../README.md")]

mod app;
mod error;
mod logging;
mod server;

pub use app::{App, Body, BoxError, ResponseFuture, boxed, full};
pub use error::{Error, exit};
pub use logging::init_tracing;
pub use server::{AcceptBackoff, DEFAULT_GRACE, Server, every, shutdown_signal};
