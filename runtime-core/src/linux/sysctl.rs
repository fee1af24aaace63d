//! linux.sysctl: written to /proc/sys inside the container (after
//! pivot_root, so only the container's namespaced view is touched; the
//! bundle validation already refused non-namespaced keys), through the
//! verified procfs handle, so a mount over /proc/sys/... cannot redirect
//! the value (CVE-2025-52881).

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::linux::procfs;

pub fn apply(proc: &procfs::Lazy, sysctls: &HashMap<String, String>) -> Result<()> {
    let mut keys: Vec<_> = sysctls.keys().collect();
    keys.sort();
    for k in keys {
        let rel = format!("sys/{}", k.replace('.', "/"));
        proc.get()?
            .write(&rel, sysctls[k].as_bytes())
            .map_err(|e| Error::Container(format!("linux.sysctl.{k}: writing /proc/{rel}: {e}")))?;
    }
    Ok(())
}
