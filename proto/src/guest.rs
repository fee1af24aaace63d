//! Facts the host side and the guest agent agree on.

/// The vsock port the agent listens on (every role on the same port).
pub const AGENT_PORT: u32 = 1024;
/// The virtio-fs tag of the VM's shared tree.
pub const FS_TAG: &str = "rpcfs";
/// Where the agent mounts the shared tree; a container `cid`'s rootfs is
/// `SHARED_DIR/<cid>/rootfs`, its N-th bind mount source `SHARED_DIR/<cid>/m<N>`.
pub const SHARED_DIR: &str = "/run/rpc/shared";
/// Where the guest's rpc-runc binary is (read-only in the guest).
pub const GUEST_RUNTIME: &str = "/usr/lib/rpc/rpc-runc";
/// The guest rpc-runc's `--root`.
pub const GUEST_ROOT: &str = "/run/rpc-runc";
/// Where the agent writes each container's bundle (config.json).
pub const BUNDLES_DIR: &str = "/run/rpc/bundles";
/// Kernel command-line key carrying the protocol version the host speaks.
pub const CMDLINE_PROTO: &str = "rpc.proto";
/// What the agent prints on the guest's console once it listens: the host
/// dials only then (vhost-device-vsock 0.3 can stop answering a VM whose
/// connections it was asked for before the guest's driver was up).
pub const LISTENING: &str = "rpc-agent: listening on vsock port";
