//! `pause` / `resume`: the freezer.

use super::{Runtime, Status};
use crate::error::{Error, Result};

pub fn pause(rt: &Runtime, id: &str, frozen: bool) -> Result<()> {
    crate::id::validate(id)?;
    let dir = rt.store.open(id, true)?;
    let st = dir.load()?;
    match (rt.status(&st, false), frozen) {
        (Status::Running, true) | (Status::Paused, false) => rt.backend.pause(&st, frozen),
        (Status::Paused, true) => Err(Error::Container("container already paused".into())),
        (_, true) => Err(Error::NotRunning),
        (_, false) => Err(Error::Container("container not paused".into())),
    }
}
