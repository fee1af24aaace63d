//! The one error type of rpc-proto: framing, the host client, the hybrid
//! vsock dial. Messages name what was wrong (the length, the kind, the
//! ids, the socket path and port) so that a caller can add only its step.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crate::msg::{ErrorCode, MAX_FRAME, MIN_FRAME};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A frame's `len` over [`MAX_FRAME`] (read, or about to be written).
    #[error("frame of {0} bytes over the {lim} MiB limit", lim = MAX_FRAME >> 20)]
    TooLong(u64),
    /// A frame's `len` under [`MIN_FRAME`].
    #[error("frame of {0} bytes under the {MIN_FRAME}-byte minimum")]
    TooShort(u32),
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    /// The peer closed its side inside a frame: `got` of the frame's
    /// `want` bytes (the length prefix included) had arrived.
    #[error("closed the connection mid-frame ({got} of {want} bytes)")]
    MidFrame { got: usize, want: usize },
    /// The peer closed its side between frames.
    #[error("closed the connection")]
    Closed,
    /// A frame's body is not the JSON of its kind's enum.
    #[error("bad JSON in a {kind} frame: {source}")]
    Json { kind: &'static str, source: serde_json::Error },
    /// A message that does not serialize (never for msg.rs's types).
    #[error("encoding a {kind} frame: {source}")]
    Encode { kind: &'static str, source: serde_json::Error },
    /// A frame of another kind than the step expects.
    #[error("expected a {want} frame, got a {got} frame (id {id})")]
    UnexpectedKind { want: &'static str, got: &'static str, id: u32 },
    /// Nothing (or not enough) arrived in time.
    #[error("no {what} within {after:?}")]
    Timeout { what: String, after: Duration },
    #[error("{op}: {source}")]
    Io { op: String, source: io::Error },
    /// No protocol version in common.
    #[error("agent speaks protocol {agent}, we speak {ours}")]
    Version { agent: String, ours: u32 },
    /// The agent answered with an error frame.
    #[error("guest: {msg}")]
    Agent { code: ErrorCode, msg: String },
    /// A reply whose id is not the one of the request waited for.
    #[error("reply of id {got} to the request of id {want}")]
    WrongId { got: u32, want: u32 },
    /// `recv` of an id no request is waiting under.
    #[error("no request of id {0} is waiting for its reply")]
    NotPending(u32),
    /// The peer sent more than we keep unread.
    #[error("agent sent more than {limit} {what} unread")]
    Overflow { what: &'static str, limit: usize },
    /// A reply of the wrong type for the request (Pong to a Start...).
    #[error("unexpected reply to {what}: {got}")]
    UnexpectedReply { what: String, got: String },
    /// The hybrid vsock dial (`CONNECT <port>` / `OK <n>`) failed.
    #[error("hybrid vsock {} port {port}: {msg}", path.display())]
    Hvsock { path: PathBuf, port: u32, msg: String },
}

impl Error {
    pub(crate) fn io(op: impl Into<String>, source: io::Error) -> Error {
        Error::Io { op: op.into(), source }
    }

    pub(crate) fn errno(op: impl Into<String>, e: nix::errno::Errno) -> Error {
        Error::Io { op: op.into(), source: io::Error::from(e) }
    }
}
