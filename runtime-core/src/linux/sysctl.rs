//! linux.sysctl: written to /proc/sys inside the container (after
//! pivot_root, so only the container's namespaced view is touched; the
//! bundle validation already refused non-namespaced keys).

use std::collections::HashMap;

use crate::error::{Error, Result};

pub fn apply(sysctls: &HashMap<String, String>) -> Result<()> {
    let mut keys: Vec<_> = sysctls.keys().collect();
    keys.sort();
    for k in keys {
        let p = format!("/proc/sys/{}", k.replace('.', "/"));
        std::fs::write(&p, &sysctls[k]).map_err(|e| Error::Container(format!("linux.sysctl.{k}: writing {p}: {e}")))?;
    }
    Ok(())
}
