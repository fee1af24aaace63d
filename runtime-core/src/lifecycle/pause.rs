//! `pause` / `resume`: the freezer.

use super::{Runtime, Status};
use crate::error::{Error, Op, Result};

pub fn pause(rt: &Runtime, id: &str, frozen: bool) -> Result<()> {
    crate::id::validate(id)?;
    let dir = rt.store.open(id, true)?;
    let st = rt.load(&dir)?;
    match (rt.status(&st, false), frozen) {
        (Status::Running, true) | (Status::Paused, false) => rt.backend.pause(&st, frozen),
        (s, true) => Err(Error::Transition { op: Op::Pause, id: id.to_string(), status: s.as_str() }),
        (s, false) => Err(Error::Transition { op: Op::Resume, id: id.to_string(), status: s.as_str() }),
    }
}
