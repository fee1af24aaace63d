//! rpc-proto: how rpc-runv's host side talks to its guest agent (and
//! rpc-runlxc's host side to its in-container exec server).
//!
//! - [`msg`]: every message, as typed serde enums shared by both ends.
//! - [`guest`]: the fixed facts both ends agree on (port, tags, paths).
//! - [`frame`]: the wire format, an incremental reader, blocking helpers.
//! - [`client`]: the host's blocking client (handshake, calls, events).
//! - [`hvsock`]: dialing a guest port over a hybrid vsock unix socket.
//! - [`server`]: the agent's side of a connection (Hello, requests, queue).
//! - [`remote`]: a process behind an agent, for runtime-core's proxy.
//! - [`error`]: the crate's one error type.
//!
//! The wire format (see [`frame`]): `len: u32 LE` (the bytes after it,
//! 9..=[`msg::MAX_FRAME`]) · `kind: u8` ([`msg::Kind`]) · `id: u32 LE`
//! (a request's id, echoed by its reply; 0 for events) · body: UTF-8 JSON
//! of the kind's enum. The first frame on every connection is a
//! [`msg::Request::Hello`] naming the connection's [`msg::Role`]; the
//! agent answers [`msg::Reply::Welcome`] or an error of code `version`.
//!
//! Only plain read/write/poll/sendmsg/recvmsg: the crate also serves
//! rpc-runlxc on Linux 2.6.32 hosts.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

pub mod client;
pub mod error;
pub mod frame;
pub mod guest;
pub mod hvsock;
// msg.rs is frozen; its Reply::Stats (runtime-core's Stats, ~1 KiB) makes
// clippy flag the enum's size. Replies are built once per request, so
// boxing would buy nothing; the lead may box it when msg.rs next changes.
#[allow(clippy::large_enum_variant)]
pub mod msg;
pub mod remote;
pub mod server;

pub use error::{Error, Result};
