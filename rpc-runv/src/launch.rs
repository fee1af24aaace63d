//! What the host side's supervisor starts, written by `create` to
//! `vm/launch.json` and read inside the host side (at `/vm/launch.json`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{io, Error, Result};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Launch {
    pub id: String,
    pub vcpus: u32,
    pub mem_mib: u32,
    /// "tcg" or "kvm".
    pub accel: String,
    pub cmdline: String,
    /// The container's config as the guest's rpc-runc gets it.
    pub guest_config: Value,
    pub terminal: bool,
    /// How long the agent may take to answer once QEMU runs.
    pub boot_timeout_ms: u64,
    /// QEMU's path inside the host side: its own when it is under /usr
    /// (QEMU finds its firmware relative to where it is), else where the
    /// host side binds it.
    pub qemu: String,
}

/// The largest launch description read back (the guest config is in it).
const MAX: u64 = 4 << 20;

impl Launch {
    pub fn write(&self, path: &std::path::Path) -> Result<()> {
        let data = serde_json::to_vec(self).map_err(|e| Error::Invalid(format!("encoding {}: {e}", path.display())))?;
        std::fs::write(path, data).map_err(io(format!("writing {}", path.display())))
    }

    pub fn read(path: &std::path::Path) -> Result<Launch> {
        let data = runtime_core::bounded::read_file(path, MAX).map_err(|e| Error::Path { path: path.to_path_buf(), msg: e.to_string() })?;
        serde_json::from_slice(&data).map_err(|e| Error::Path { path: path.to_path_buf(), msg: format!("corrupt: {e}") })
    }
}
