//! `linux.resources` written to the container's cgroup directories, for
//! `create` and for `update`. Everything is validated before the first
//! write; the writes are recorded and rolled back if one fails, so bad
//! input or a refusing kernel changes nothing. Each controller goes to the
//! hierarchy that has it: v1 files where a v1 controller is mounted, else
//! the v2 names in the unified directory (see `v1`, `v2`).
//!
//! `res`: the spec's resources as one normalised model ([`Res`]) and its
//! validation; `layout`: which directory holds which file; `tx`: the
//! writes with their undo log; `devices`: the device rules (the v1
//! devices cgroup or the v2 eBPF filter); `hugepages`: page size names.
//! The writers of each version are `super::v1` and `super::v2`.

mod devices;
mod hugepages;
mod layout;
mod res;
mod tx;

use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxResources;

use super::{v1, v2};
use crate::error::{Error, Result};

pub use devices::{apply_devices, default_device_rules, device_rules};
pub use hugepages::{host_hugepage_sizes, hugepage_file_name, hugepage_kb, kb_to_name};
pub use layout::Layout;
pub use res::{parse_list, Res, THROTTLE_NAMES};
pub use tx::Tx;

/// cpu.idle, which v1 (cpu controller) and v2 name and write alike.
pub(super) fn cpu_idle(d: &Path, r: &Res, tx: &mut Tx) -> Result<()> {
    if let Some(i) = r.cpu_idle {
        if d.join("cpu.idle").exists() {
            tx.write(d, "cpu.idle", &i.to_string())?;
        } else if i != 0 {
            return Err(Error::Usage("linux.resources.cpu.idle: this kernel has no cpu.idle".into()));
        }
    }
    Ok(())
}

/// Apply resources at create: validate, write, and the devices.
pub fn apply(dirs: &[PathBuf], r: &LinuxResources, extra_devices: &[(char, i64, i64)]) -> Result<()> {
    let l = Layout::new(dirs);
    let res = Res::from_oci(r);
    let rules = device_rules(r.devices().as_deref().unwrap_or(&[]), extra_devices)?;
    res.validate(&l)?;
    set(&l, &res)?;
    apply_devices(&l, &rules)
}

/// Write `res` (no devices) with rollback on failure.
pub fn set(l: &Layout, res: &Res) -> Result<()> {
    res.validate(l)?;
    let mut tx = Tx::new();
    let r = (|| -> Result<()> {
        v1::apply(l, res, &mut tx)?;
        v2::apply(l, res, &mut tx)?;
        Ok(())
    })();
    match r {
        Ok(()) => {
            tx.commit();
            Ok(())
        }
        Err(e) => {
            tx.rollback();
            Err(e)
        }
    }
}

/// `update`: change the limits of a running container.
pub fn update(dirs: &[PathBuf], res: &Res) -> Result<()> {
    set(&Layout::new(dirs), res)
}

/// cpu.shares (v1, 2..262144) to cpu.weight (v2, 1..10000), as runc converts.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + ((shares.saturating_sub(2)) * 9999) / 262142
}

/// cpu.weight back to shares (for stats and v1 readers).
pub fn weight_to_shares(weight: u64) -> u64 {
    if weight == 0 {
        return 0;
    }
    2 + ((weight - 1) * 262142) / 9999
}

/// blkio weight (v1, 10..1000) to io.weight (v2, 1..10000), as runc converts.
pub fn blkio_to_io_weight(w: u16) -> u64 {
    if w == 0 {
        return 0;
    }
    1 + (w as u64).saturating_sub(10) * 9999 / 990
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_conversion_matches_runc() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262144), 10000);
        assert_eq!(weight_to_shares(1), 2);
        assert_eq!(weight_to_shares(10000), 262144);
    }

    #[test]
    fn blkio_conversion_matches_runc() {
        assert_eq!(blkio_to_io_weight(10), 1);
        assert_eq!(blkio_to_io_weight(500), 4950);
        assert_eq!(blkio_to_io_weight(1000), 10000);
    }
}
