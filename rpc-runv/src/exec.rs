//! `exec` in a VM: the agent runs the process in the guest container; on
//! the host, a proxy process (runtime-core's `proxy`) stands for it: its
//! pid is what `exec` reports (the shim signals and reaps it), it relays
//! the caller's stdio (or a terminal whose master went to the console
//! socket) and ends with the guest process's status.

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rpc_proto::msg::{Request, Role};
use rpc_proto::remote::{open_stdio, RemoteProcess};
use runtime_core::backend::ExecOpts;
use runtime_core::state::State;

use crate::agent::{self, guest};
use crate::error::{io, Error, Result};
use crate::record;

/// A name for the exec the agent keys its streams by: ours, unique.
fn exec_id() -> String {
    let t = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("exec-{}-{t}", std::process::id())
}

/// Runs `process` in container `st`'s guest; returns the proxy's pid.
pub fn exec(st: &State, process: &oci_spec::runtime::Process, opts: ExecOpts) -> Result<i32> {
    let id = st.id.as_str();
    let uds = record::agent_socket(&st.dir);
    let terminal = process.terminal().unwrap_or(false);
    let eid = exec_id();
    let deadline = Instant::now() + agent::DIAL_TIMEOUT;
    let mut dial = |role: Role| agent::connect(&uds, role, deadline);
    // The wait first, and pipe streams too: the agent holds them for the
    // exec, and nothing the process prints is lost. A terminal's stream
    // once the exec has its pty (the agent has the master only then;
    // output waits in the pty meanwhile).
    let mut stdio = if terminal { None } else { Some(open_stdio(&mut dial, id, Some(&eid), false).map_err(guest(id))?) };
    let wait = dial(Role::Wait { container: id.to_string(), exec: Some(eid.clone()) }).map_err(guest(id))?;
    let body = serde_json::to_value(process).map_err(|e| Error::Invalid(format!("container {id}: encoding the exec process: {e}")))?;
    let mut control = dial(Role::Control).map_err(guest(id))?;
    control
        .call(&Request::Exec { id: id.to_string(), exec_id: eid.clone(), process: body, terminal }, agent::CALL_TIMEOUT)
        .map_err(guest(id))?;
    drop(control);
    if stdio.is_none() {
        stdio = Some(open_stdio(&mut dial, id, Some(&eid), true).map_err(guest(id))?);
    }
    let stdio = stdio.unwrap_or_default();
    let mut inner = RemoteProcess::new(id, Some(&eid), stdio, wait, agent::redial(uds.clone())).map_err(guest(id))?;
    match opts.console {
        Some(console) if terminal => spawn_with_terminal(id, &mut inner, console),
        _ => Ok(runtime_core::proxy::spawn(&mut inner)?),
    }
}

/// The proxy on a new pty: its master goes to the console socket (what
/// runc does for `exec -t`), its slave is the proxy's terminal.
fn spawn_with_terminal(id: &str, inner: &mut RemoteProcess, console: OwnedFd) -> Result<i32> {
    let pty = nix::pty::openpty(None, None).map_err(|e| io(format!("container {id}: openpty"))(e.into()))?;
    runtime_core::linux::tty::send_fd(console.as_raw_fd(), pty.master.as_raw_fd(), "/dev/ptmx")?;
    drop(pty.master);
    Ok(runtime_core::proxy::spawn_tty(inner, pty.slave)?)
}
