//! `state`: the OCI state of one container.

use super::{OciState, Runtime};
use crate::error::Result;

pub fn state(rt: &Runtime, id: &str) -> Result<OciState> {
    crate::id::validate(id)?;
    let (st, locked) = match rt.store.try_open_shared(id)? {
        Some(dir) => (rt.load(&dir)?, false),
        None => (rt.peek(id)?, true),
    };
    let status = rt.status(&st, locked);
    Ok(OciState::new(&st, status))
}
