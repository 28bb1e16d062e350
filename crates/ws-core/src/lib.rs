#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod cluster_presence;
mod connection;
mod deflate;
mod error;
mod handshake;
mod hub;
#[cfg(feature = "redis")]
mod scale_out;
#[cfg(feature = "redis")]
mod shared_presence;
#[cfg(feature = "tokio")]
mod stream;

pub use cluster_presence::{
    MemberChange, NodeSnapshot, PresenceUpdate, PresenceView, RemotePresence,
};
pub use connection::{Connection, Limits};
pub use deflate::{DeflateConfig, DeflateParams};
pub use error::{Error, Result};
pub use handshake::{Accepted, AuthHook, HandshakeConfig, accept, rejection_response};
pub use hub::{
    ClientId, Hub, HubConfig, MembershipChange, Outgoing, Presence, Publication, SlowConsumer,
};
#[cfg(feature = "redis")]
pub use scale_out::{RedisInbox, RedisScaleOut, ScaleOut};
#[cfg(feature = "redis")]
pub use shared_presence::{RedisPresence, RemoteMember};
#[cfg(feature = "tokio")]
pub use stream::WebSocket;
pub use tungstenite::Message;
/// Message and close types, shared with tungstenite.
pub use tungstenite::protocol::frame::coding::CloseCode;
pub use tungstenite::protocol::frame::{CloseFrame, Utf8Bytes};
