#![doc = include_str!("../README.md")]

mod app;
mod body;
mod deployment;
mod error;
pub mod logging;
pub mod page;
mod secret;
mod server;
#[cfg(feature = "testing")]
pub mod testing;

pub use app::{App, Body, BodyError, BoxError, ResponseFuture, boxed, full, local_path};
pub use body::{read_body, read_form};
pub use deployment::Deployment;
pub use error::{Error, config_from_args, exit};
pub use logging::init_tracing;
pub use secret::secret;
pub use server::{AcceptBackoff, DEFAULT_GRACE, Server, blocking, every, shutdown_signal};
