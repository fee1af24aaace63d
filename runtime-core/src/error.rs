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

    /// runc's words ("container not running": containerd and podman
    /// match them), then the id.
    #[error("container not running: {0}")]
    NotRunning(String),

    /// A verb the container's status does not allow, in runc's words
    /// with the id.
    #[error("{}", transition(*op, id, status))]
    Transition { op: Op, id: String, status: &'static str },

    /// The state directory was made by another backend (a --root shared
    /// by two runtimes): handling it here would do the wrong things.
    #[error("container {id}: {path} was made by the {recorded} backend; this runtime is the {ours} one and cannot handle it")]
    ForeignState { id: String, path: PathBuf, recorded: String, ours: &'static str },

    /// An error, and the cleanup after it that failed too (what may be
    /// left behind).
    #[error("{error}; cleaning up after it failed too: {}", cleanup.join("; "))]
    WithCleanup { error: Box<Error>, cleanup: Vec<String> },

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

/// The verbs whose refusals are `Transition` errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Start,
    Exec,
    Delete,
    Pause,
    Resume,
    Update,
    Events,
}

/// runc's messages for a refused transition (containerd, podman and
/// people match their words), each with the container's id.
fn transition(op: Op, id: &str, status: &str) -> String {
    match (op, status) {
        (Op::Start, "stopped") => format!("cannot start a container that has stopped: {id}"),
        (Op::Start, s) => format!("cannot start an already {s} container: {id}"),
        (Op::Exec, "paused") => format!("cannot exec in a paused container (use --ignore-paused): {id}"),
        (Op::Exec, "creating") => format!("cannot exec in a container that is being created: {id}"),
        (Op::Exec, s) => format!("cannot exec in a {s} container: {id}"),
        (Op::Delete, s) => format!("cannot delete container {id} that is not stopped: {s}"),
        (Op::Pause, "paused") => format!("container already paused: {id}"),
        (Op::Pause, _) => format!("container not running: {id}"),
        (Op::Resume, _) => format!("container not paused: {id}"),
        (Op::Update, _) => format!("cannot update container {id}: container not running"),
        (Op::Events, _) => format!("container with id {id} is not running"),
    }
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
    /// This error, with the cleanup failures that followed it.
    pub fn with_cleanup(self, cleanup: Vec<String>) -> Self {
        if cleanup.is_empty() {
            self
        } else {
            Error::WithCleanup { error: Box::new(self), cleanup }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A failed create says what its cleanup could not undo, beside the
    /// error itself; transitions keep runc's words and add the id.
    #[test]
    fn cleanup_failures_and_transitions_name_what_they_are_about() {
        let e = Error::Usage("bad".into()).with_cleanup(vec!["removing /run/x/c1: EBUSY".into()]);
        assert_eq!(e.to_string(), "bad; cleaning up after it failed too: removing /run/x/c1: EBUSY");
        assert!(matches!(Error::Usage("bad".into()).with_cleanup(vec![]), Error::Usage(_)));
        let t = Error::Transition { op: Op::Start, id: "c1".into(), status: "stopped" };
        assert_eq!(t.to_string(), "cannot start a container that has stopped: c1");
        let d = Error::Transition { op: Op::Delete, id: "c1".into(), status: "running" };
        assert_eq!(d.to_string(), "cannot delete container c1 that is not stopped: running");
        assert!(Error::NotRunning("c1".into()).to_string().starts_with("container not running"));
    }
}
