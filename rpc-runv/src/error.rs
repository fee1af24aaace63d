//! rpc-runv's errors; at the seam they become runtime-core's.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A config, annotation, flag or variable we cannot run with.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Core(#[from] runtime_core::Error),
    #[error(transparent)]
    Hypervisor(#[from] crate::hypervisor::Error),
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    /// The guest agent refused or failed a request, or broke the protocol.
    #[error("container {id}: guest: {msg}")]
    Guest { id: String, msg: String },
    /// The VM or its helpers did not come up.
    #[error("container {id}: the VM did not start: {msg}")]
    Boot { id: String, msg: String },
    #[error("{path}: {msg}")]
    Path { path: PathBuf, msg: String },
}

pub type Result<T> = std::result::Result<T, Error>;

pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}

impl From<Error> for runtime_core::Error {
    fn from(e: Error) -> runtime_core::Error {
        match e {
            Error::Core(e) => e,
            Error::Io { context, source } => runtime_core::Error::Io { context, source },
            e => runtime_core::Error::Container(e.to_string()),
        }
    }
}
