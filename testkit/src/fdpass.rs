//! Receiving an fd sent with SCM_RIGHTS (runc's console socket, a seccomp
//! agent's socket): runtime-core's, the one the runtimes and the shim use.

pub use runtime_core::linux::fdpass::recv_fd_msg;
