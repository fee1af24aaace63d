//! `start`: let the created container's process run its program (the
//! backend's handshake), then run the poststart hooks.

use super::{OciState, Runtime, Status};
use crate::error::{Error, Op, Result};
use crate::hooks;

pub fn start(rt: &Runtime, id: &str) -> Result<()> {
    crate::id::validate(id)?;
    let dir = rt.store.open(id, true)?;
    let st = rt.load(&dir)?;
    match rt.status(&st, false) {
        Status::Created => {}
        s => return Err(Error::Transition { op: Op::Start, id: id.to_string(), status: s.as_str() }),
    }
    rt.backend.start(&st, &dir)?;
    crate::fault!("start:before-poststart");
    if !st.hooks.poststart.is_empty() {
        let json = OciState::new(&st, Status::Running).hook_json();
        // The spec: a failing poststart hook is logged, the others still run.
        hooks::run_all_warn("poststart", &st.hooks.poststart, &json);
    }
    crate::fault!("start:after-poststart");
    Ok(())
}
