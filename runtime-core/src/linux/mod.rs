//! The native isolation layer: one module per OCI concept.

pub mod caps;
pub mod cgroups;
pub mod devices;
pub mod exe_seal;
pub mod fdpass;
pub mod init;
pub mod kfile;
pub mod lsm;
pub mod mountinfo;
pub mod mounts;
pub mod namespaces;
pub mod passwd;
pub mod path;
pub mod probe;
pub mod process;
pub mod procfs;
pub mod rlimits;
pub mod rootfs;
pub mod sched;
pub mod seccomp;
pub mod seccomp_profile;
pub mod sysctl;
pub mod tty;
