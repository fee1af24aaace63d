//! `list`: every container under --root.

use super::{OciState, Runtime};
use crate::error::Result;

pub fn list(rt: &Runtime) -> Result<Vec<OciState>> {
    let mut out = vec![];
    for id in rt.store.list()? {
        if let Ok(s) = super::state::state(rt, &id) {
            out.push(s);
        }
    }
    Ok(out)
}
