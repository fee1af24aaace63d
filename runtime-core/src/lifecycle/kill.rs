//! `kill`: signal init, or with `--all` every process of the container.

use super::{Runtime, Status};
use crate::error::{Error, Result};

pub fn kill(rt: &Runtime, id: &str, sig: i32, all: bool) -> Result<()> {
    crate::id::validate(id)?;
    let dir = rt.store.open(id, false)?;
    let st = rt.load(&dir)?;
    let status = rt.status(&st, false);
    if status == Status::Stopped && !all {
        return Err(Error::NotRunning(id.to_string()));
    }
    rt.backend.signal(&st, sig, all || (status == Status::Stopped))?;
    if status == Status::Paused && sig == libc::SIGKILL {
        // A frozen process cannot die: thaw it, as runc does.
        let _ = rt.backend.pause(&st, false);
    }
    Ok(())
}
