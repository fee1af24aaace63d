//! The module's one error type: each variant names the program, path or
//! setting at fault, so a caller can print it as is.

use std::path::PathBuf;

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A program or guest file is not where it was looked for.
    #[error("{what} not found (looked for {}): {hint}", .tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    Missing { what: &'static str, tried: Vec<PathBuf>, hint: String },

    /// A field of a [`crate::hypervisor::LaunchSpec`] (or of a helper's
    /// options) that cannot work.
    #[error("launch spec: {field}: {why}")]
    BadSpec { field: &'static str, why: String },

    /// A hypervisor choice that names nothing we know, or cannot run here.
    #[error("hypervisor from {source_name}: {why}")]
    BadChoice { source_name: String, why: String },

    /// fork/exec of a program failed.
    #[error("starting {program} ({}): {source}", .path.display())]
    Spawn { program: &'static str, path: PathBuf, source: std::io::Error },

    /// A helper exited before its socket listened.
    #[error("{program} exited ({status}) before listening on {}{}", .socket.display(), log_tail(.log))]
    ExitedEarly { program: &'static str, socket: PathBuf, status: String, log: Option<String> },

    /// A helper did not listen within its deadline (it was killed).
    #[error("{program} did not listen on {} within {timeout_ms} ms (killed){}", .socket.display(), log_tail(.log))]
    NotListening { program: &'static str, socket: PathBuf, timeout_ms: u128, log: Option<String> },

    /// Something already listens on a socket path we were to serve.
    #[error("{}: a live socket is already there (another VM's?)", .0.display())]
    SocketInUse(PathBuf),

    /// A filesystem or process operation on `path` failed.
    #[error("{what} {}: {source}", .path.display())]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
}

fn log_tail(log: &Option<String>) -> String {
    match log {
        Some(l) if !l.trim().is_empty() => format!("; its log ends:\n{}", l.trim_end()),
        _ => String::new(),
    }
}

impl Error {
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io { what, path: path.into(), source }
    }
}
