//! The VMM's error type: everything that can fail while building or
//! running a VM. Guest misbehaviour is not an error of the VMM: it is
//! reported ([`crate::report`]) and, when fatal to the guest, ends the VM
//! with [`crate::VmExit::GuestCrash`].

use std::path::PathBuf;

/// Errors of the VMM.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("/dev/kvm: {0}")]
    Kvm(#[source] kvm_ioctls::Error),
    #[error("KVM API version {0}, need 12")]
    KvmApiVersion(i32),
    #[error("KVM lacks capability {0}")]
    KvmCapability(&'static str),
    #[error("{what}: {source}")]
    KvmIoctl {
        what: &'static str,
        #[source]
        source: kvm_ioctls::Error,
    },
    #[error("guest memory: {0}")]
    Memory(String),
    #[error("shared guest memory (needed by vhost-user devices): {0}")]
    SharedMemory(String),
    /// (Its message carries the detail; it is not a `source`, so that
    /// error chains do not print it twice.)
    #[error("virtio-fs: {0}")]
    Fs(crate::devices::virtio::fs::FsError),
    #[error("guest memory access at {addr:#x}: {source}")]
    GuestMemoryAccess {
        addr: u64,
        #[source]
        source: vm_memory::GuestMemoryError,
    },
    #[error("kernel {path}: {source}")]
    KernelLoad {
        path: PathBuf,
        #[source]
        source: linux_loader::loader::Error,
    },
    #[error("kernel command line: {0}")]
    Cmdline(#[from] linux_loader::cmdline::Error),
    #[error("initrd {path}: {msg}")]
    Initrd { path: PathBuf, msg: String },
    #[error("{path}: {source}")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("configuration: {0}")]
    Config(String),
    #[error("MP table does not fit: {0}")]
    MpTable(&'static str),
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("vCPU thread: {0}")]
    Thread(String),
}

impl From<crate::devices::virtio::fs::FsError> for Error {
    fn from(e: crate::devices::virtio::fs::FsError) -> Error {
        Error::Fs(e)
    }
}

/// Result with the VMM's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn kvm(what: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> Error {
        move |source| Error::KvmIoctl { what, source }
    }
    pub(crate) fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> Error {
        move |source| Error::Io { what, source }
    }
}
