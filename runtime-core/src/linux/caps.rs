//! Applying the five capability sets of a process (`caps` crate): the
//! bounding set first, the others last before exec. The sets are parsed
//! with the bundle (`bundle::caps`).

use caps::{CapSet, Capability, CapsHashSet};

pub use crate::bundle::caps::{CapSets, RawCapSets};
pub use crate::host::last_cap;

use crate::error::{Error, Result};
use crate::log;

impl CapSets {
    /// Drop from the bounding set everything not in `bounding`. Needs
    /// CAP_SETPCAP, so it runs before the uid changes.
    pub fn apply_bounding(&self) -> Result<()> {
        let keep = Self::mask(&self.bounding);
        for c in caps::all() {
            if keep & c.bitmask() == 0 && c.index() <= last_cap() {
                caps::drop(None, CapSet::Bounding, c).map_err(|e| Error::Container(format!("dropping {c} from the bounding set: {e}")))?;
            }
        }
        Ok(())
    }

    /// Set effective, permitted, inheritable and ambient: the last step
    /// before exec, after the user switch (done with PR_SET_KEEPCAPS).
    pub fn apply_final(&self) -> Result<()> {
        let hs = |s: &[Capability]| s.iter().copied().collect::<CapsHashSet>();
        let e = |what: &str, err: caps::errors::CapsError| Error::Container(format!("setting {what} capabilities: {err}"));
        // Permitted must be a superset of effective and inheritable at each step.
        caps::set(None, CapSet::Effective, &hs(&self.effective).intersection(&hs(&self.permitted)).copied().collect())
            .or_else(|_| caps::set(None, CapSet::Effective, &CapsHashSet::new()))
            .map_err(|x| e("effective", x))?;
        caps::set(None, CapSet::Inheritable, &hs(&self.inheritable)).map_err(|x| e("inheritable", x))?;
        caps::set(None, CapSet::Permitted, &hs(&self.permitted)).map_err(|x| e("permitted", x))?;
        caps::set(None, CapSet::Effective, &hs(&self.effective)).map_err(|x| e("effective", x))?;
        // The kernel only keeps ambient capabilities that are permitted
        // and inheritable; others are skipped, as runc does.
        for c in &self.ambient {
            if let Err(x) = caps::raise(None, CapSet::Ambient, *c) {
                log::debug(&format!("ambient capability {c} not raised: {x}"));
            }
        }
        Ok(())
    }
}
