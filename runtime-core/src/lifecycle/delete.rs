//! `delete`: runc's semantics. A created container is killed and deleted,
//! a running one only with `--force`; `--force` of an unknown id succeeds
//! and removes a half-written state directory.

use super::{OciState, Runtime, Status};
use crate::error::{Error, Op, Result};
use crate::hooks;
use crate::state::State;

pub fn delete(rt: &Runtime, id: &str, force: bool) -> Result<()> {
    crate::id::validate(id)?;
    let dir = match rt.store.open(id, true) {
        Ok(d) => d,
        Err(Error::NotExist(_)) if force => return Ok(()),
        Err(e) => return Err(e),
    };
    let (st, recovered) = match rt.load(&dir) {
        Ok(s) => (s, false),
        Err(e @ (Error::NotExist(_) | Error::State { .. })) if force => match recover(rt, &dir, &e) {
            Some(s) => (s, true),
            None => {
                rt.backend.forget(&dir.path);
                return dir.destroy();
            }
        },
        Err(e @ Error::State { .. }) => {
            return Err(Error::Container(format!("{e} (delete --force cleans up what create recorded)")));
        }
        Err(e) => return Err(e),
    };
    let status = rt.status(&st, false);
    if recovered {
        // Its init is unknown: every process in its cgroups goes, frozen
        // ones too (a SIGKILL waits for the thaw under cgroup v1).
        let _ = rt.backend.signal(&st, libc::SIGKILL, true);
        let _ = rt.backend.pause(&st, false);
    }
    crate::fault!("delete:before-kill");
    match status {
        // A create that died: its init may still be on its way out.
        Status::Stopped if st.status == crate::state::Recorded::Creating => rt.backend.kill_and_wait(&st, false)?,
        Status::Stopped => {}
        Status::Created | Status::Creating => rt.backend.kill_and_wait(&st, false)?,
        Status::Running | Status::Paused if force => rt.backend.kill_and_wait(&st, status == Status::Paused)?,
        s => return Err(Error::Transition { op: Op::Delete, id: id.to_string(), status: s.as_str() }),
    }
    crate::fault!("delete:after-kill");
    // Nothing left (the usual case: the pid namespace died with init):
    // the fewest steps; otherwise the backend kills what is left first.
    if !rt.backend.destroy_if_empty(&st) {
        rt.backend.destroy(&st)?;
    }
    crate::fault!("delete:after-destroy");
    if !st.hooks.poststop.is_empty() {
        let json = OciState::new(&st, Status::Stopped).hook_json();
        hooks::run_all_warn("poststop", &st.hooks.poststop, &json);
    }
    crate::fault!("delete:after-poststop");
    dir.destroy()
}

/// The state of a container whose state.json is missing or unreadable,
/// from what create recorded before it made anything (its cgroups): all
/// that `delete --force` needs to kill what is left and remove it. None
/// when nothing was recorded (a create killed before its first write),
/// after saying so if a state file was there: what it held cannot be
/// found and may be left behind.
fn recover(rt: &Runtime, dir: &crate::state::Dir, why: &Error) -> Option<State> {
    let missing = matches!(why, Error::NotExist(_));
    match dir.load_snapshot().and_then(|s| match s {
        // What the snapshot names is checked as a state file would be.
        Some(s) => rt.backend.check(&s.state, &dir.path.join(crate::state::SNAPSHOT)).map(|()| Some(s)),
        None => Ok(None),
    }) {
        Ok(Some(s)) => {
            if !missing {
                crate::log::warn(&format!("{why}; deleting the container by what create recorded"));
            }
            Some(s.state)
        }
        Ok(None) if missing => None,
        Ok(None) => {
            crate::log::warn(&format!(
                "{why}; nothing else was recorded for container {}: its processes and cgroups, if any, are not known and are left",
                dir.id
            ));
            None
        }
        Err(e) => {
            crate::log::warn(&format!("{why}; {e}: the container's processes and cgroups, if any, are not known and are left"));
            None
        }
    }
}
