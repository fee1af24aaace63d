//! `list`: every container under --root.

use super::{OciState, Runtime};
use crate::error::{Error, Result};

pub fn list(rt: &Runtime) -> Result<Vec<OciState>> {
    let mut out = vec![];
    for id in rt.store.list()? {
        match super::state::state(rt, &id) {
            Ok(s) => out.push(s),
            // A create between its mkdir and its first write.
            Err(Error::NotExist(_)) => {}
            // As runc: say which one cannot be listed, list the others.
            Err(e) => crate::log::warn(&format!("load container {id}: {e}")),
        }
    }
    Ok(out)
}
