//! rpc-proto: how rpc-runv's host side talks to its guest agent (and
//! rpc-runlxc's host side to its in-container exec server).
//!
//! - [`msg`]: every message, as typed serde enums shared by both ends.
//! - [`guest`]: the fixed facts both ends agree on (port, tags, paths).
//!
//! The wire format (see `frame`): `len: u32 LE` (the bytes after it,
//! 9..=[`msg::MAX_FRAME`]) · `kind: u8` ([`msg::Kind`]) · `id: u32 LE`
//! (a request's id, echoed by its reply; 0 for events) · body: UTF-8 JSON
//! of the kind's enum. The first frame on every connection is a
//! [`msg::Request::Hello`] naming the connection's [`msg::Role`]; the
//! agent answers [`msg::Reply::Welcome`] or an error of code `version`.

pub mod guest;
pub mod msg;
