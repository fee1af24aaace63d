//! What rpc-runv keeps of a container: its record in state.json (the
//! native host side's keys, where native keeps them, plus `vm`), and the
//! files in its state directory.

use std::path::{Path, PathBuf};

use runtime_core::state::State;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::sizing::Size;

/// The state directory's `vm/`: sockets, logs, the launch description
/// (bound at [`crate::hostspec::VM_DIR`] in the host side).
pub const VM: &str = "vm";
/// In `vm/`: what the supervisor starts (see [`crate::launch`]).
pub const LAUNCH: &str = "launch.json";
/// In the state directory once `start` has reached the guest.
pub const STARTED: &str = "started";
/// In the state directory while the guest's container is paused.
pub const PAUSED: &str = "paused";

/// The `vm` key of state.json.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Vm {
    /// "qemu" or "rpc-vmm".
    pub hypervisor: String,
    /// "tcg" or "kvm".
    pub accel: String,
    /// Why this hypervisor ran (features, --debug).
    pub reason: String,
    pub size: Size,
}

impl Vm {
    pub fn of(st: &State) -> Result<Vm> {
        let v = st.payload.get("vm").cloned().ok_or_else(|| Error::Path { path: st.dir.join("state.json"), msg: "no vm record".into() })?;
        serde_json::from_value(v).map_err(|e| Error::Path { path: st.dir.join("state.json"), msg: format!("corrupt vm record: {e}") })
    }
}

pub fn vm_dir(st: &State) -> PathBuf {
    st.dir.join(VM)
}

/// The hybrid vsock socket the host dials to reach the agent.
pub fn agent_socket(dir: &Path) -> PathBuf {
    dir.join(VM).join("vsock.sock")
}
