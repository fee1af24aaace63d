//! Fault points for the reliability suite (`rpc-runc/tests/faults.rs`):
//! with the `fault-points` feature, `fault!("create:after-state-save")`
//! makes the runtime SIGKILL itself when `RPC_FAULT` names that point, so a
//! test can stop it exactly where a crash leaves a different state and
//! check that `state` and `delete --force` still cope. Without the feature
//! (release builds, the benchmarked binary) the macro expands to nothing,
//! not even the environment lookup.
//!
//! `RPC_FAULT_STOP=name` stops the runtime there instead (SIGSTOP), so a
//! test can change the world under it (reuse a pid it recorded) and let
//! it go on with SIGCONT.
//!
//! `RPC_FAULT_TRACE=FILE` appends the name of every point reached to FILE:
//! the suite first records which points a clean lifecycle passes, then
//! kills at each, so a point added here is tested without listing it twice.

/// Mark a step. One line at the call site; nothing without the feature.
#[macro_export]
macro_rules! fault {
    ($name:expr) => {
        #[cfg(feature = "fault-points")]
        $crate::fault::hit($name);
    };
}

/// The point `name` was reached: trace it, and die if it is the one asked for.
#[cfg(feature = "fault-points")]
pub fn hit(name: &str) {
    use std::io::Write;
    if let Some(path) = std::env::var_os("RPC_FAULT_TRACE") {
        // One write per line with O_APPEND: lines of concurrent runtimes
        // do not interleave.
        if let Ok(mut f) = std::fs::OpenOptions::new().append(true).create(true).open(path) {
            let _ = f.write_all(format!("{name}\n").as_bytes());
        }
    }
    if std::env::var_os("RPC_FAULT_STOP").is_some_and(|v| v == name) {
        // SAFETY: plain syscall; we go on when continued.
        unsafe { libc::raise(libc::SIGSTOP) };
    }
    if std::env::var_os("RPC_FAULT").is_some_and(|v| v == name) {
        // SAFETY: plain syscalls; SIGKILL cannot be caught, so nothing of
        // ours runs after this (as with a kill -9 from outside).
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
            libc::_exit(137);
        }
    }
}
