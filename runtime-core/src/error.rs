//! Typed errors of the runtime core. The wording of the messages matters:
//! containerd, conmon and podman match on runc's words ("does not exist",
//! "container not running", "no such process"), so we keep them.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid container id {id:?}: {reason}")]
    InvalidId { id: String, reason: &'static str },

    #[error("container \"{0}\" does not exist")]
    NotExist(String),

    #[error("container with id exists: {0}")]
    Exists(String),

    #[error("{path}: {field}: {msg}")]
    Config { path: PathBuf, field: String, msg: String },

    /// A file the runtime reads is of the wrong kind or size.
    #[error("{path}: {msg}")]
    BadFile { path: PathBuf, msg: String },

    #[error("container not running")]
    NotRunning,

    #[error("cannot {op} container {id} in status {status}")]
    BadStatus { op: &'static str, id: String, status: String },

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    #[error("{context}: {source}")]
    Sys {
        context: String,
        #[source]
        source: nix::Error,
    },

    #[error("{0}")]
    Container(String),

    #[error("hook {kind}[{index}] ({path}): {msg}")]
    Hook { kind: &'static str, index: usize, path: String, msg: String },

    #[error("{0}")]
    Usage(String),

    #[error("{0} is not supported by this runtime")]
    Unsupported(String),

    #[error("cgroup {path}: {msg}")]
    Cgroup { path: PathBuf, msg: String },

    /// A state file that cannot be read or parsed (not a missing one).
    #[error("state file {path}: {msg}")]
    State { path: PathBuf, msg: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attach a human context to io and nix errors.
pub trait Context<T> {
    fn ctx<C: Into<String>>(self, c: C) -> Result<T>;
    fn with_ctx<C: Into<String>, F: FnOnce() -> C>(self, f: F) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, std::io::Error> {
    fn ctx<C: Into<String>>(self, c: C) -> Result<T> {
        self.map_err(|source| Error::Io { context: c.into(), source })
    }
    fn with_ctx<C: Into<String>, F: FnOnce() -> C>(self, f: F) -> Result<T> {
        self.map_err(|source| Error::Io { context: f().into(), source })
    }
}

impl<T> Context<T> for std::result::Result<T, nix::Error> {
    fn ctx<C: Into<String>>(self, c: C) -> Result<T> {
        self.map_err(|source| Error::Sys { context: c.into(), source })
    }
    fn with_ctx<C: Into<String>, F: FnOnce() -> C>(self, f: F) -> Result<T> {
        self.map_err(|source| Error::Sys { context: f().into(), source })
    }
}

impl Error {
    pub fn config(path: impl Into<PathBuf>, field: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Config { path: path.into(), field: field.into(), msg: msg.into() }
    }
    /// The errno behind this error, when there is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Io { source, .. } => source.raw_os_error(),
            Error::Sys { source, .. } => Some(*source as i32),
            _ => None,
        }
    }
}
