//! The five capability sets of a process (`caps` crate), parsed leniently:
//! names the crate or the running kernel do not know are logged and skipped,
//! as the OCI spec and runc do.

use caps::{CapSet, Capability, CapsHashSet};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::log;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapSets {
    pub bounding: Vec<Capability>,
    pub effective: Vec<Capability>,
    pub inheritable: Vec<Capability>,
    pub permitted: Vec<Capability>,
    pub ambient: Vec<Capability>,
}

/// Highest capability number the running kernel knows (read once).
pub fn last_cap() -> u8 {
    static LAST: std::sync::OnceLock<u8> = std::sync::OnceLock::new();
    *LAST.get_or_init(|| crate::linux::kfile::read("/proc/sys/kernel/cap_last_cap").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(40))
}

/// Add capability `name` of set `field` to `out`, once; unknown names and
/// names the kernel lacks are logged and skipped.
fn add(out: &mut Vec<Capability>, name: &str, field: &str) {
    match parse_name(name) {
        Some(c) if c.index() <= last_cap() => {
            if !out.contains(&c) {
                out.push(c)
            }
        }
        Some(_) => log::warn(&format!("capability {name} is not supported by the running kernel, ignored")),
        None => log::warn(&format!("unknown capability {name:?} in process.capabilities.{field}, ignored")),
    }
}

fn parse_name(name: &str) -> Option<Capability> {
    let canon = if name.starts_with("CAP_") { name.to_string() } else { format!("CAP_{name}") };
    canon.to_ascii_uppercase().parse().ok()
}

impl CapSets {
    /// Parse `process.capabilities`. Errors name the field (e.g. `bounding`).
    pub fn from_json(v: &Value) -> std::result::Result<CapSets, (String, String)> {
        let set = |field: &str| -> std::result::Result<Vec<Capability>, (String, String)> {
            let mut out = Vec::new();
            match v.get(field) {
                None | Some(Value::Null) => {}
                Some(Value::Array(a)) => {
                    for (i, n) in a.iter().enumerate() {
                        let Some(s) = n.as_str() else {
                            return Err((format!("{field}[{i}]"), "must be a string".into()));
                        };
                        add(&mut out, s, field);
                    }
                }
                Some(_) => return Err((field.to_string(), "must be an array of capability names".into())),
            }
            Ok(out)
        };
        if !v.is_object() {
            return Err((String::new(), "must be an object".into()));
        }
        Ok(CapSets {
            bounding: set("bounding")?,
            effective: set("effective")?,
            inheritable: set("inheritable")?,
            permitted: set("permitted")?,
            ambient: set("ambient")?,
        })
    }

    /// The sets oci-spec parsed (every name known to it); names the running
    /// kernel lacks are skipped as in `from_json`.
    pub fn from_oci(c: &oci_spec::runtime::LinuxCapabilities) -> CapSets {
        let set = |field: &str, names: &Option<oci_spec::runtime::Capabilities>| {
            let mut out = Vec::new();
            for n in names.iter().flatten() {
                add(&mut out, &n.to_string(), field);
            }
            out
        };
        CapSets {
            bounding: set("bounding", c.bounding()),
            effective: set("effective", c.effective()),
            inheritable: set("inheritable", c.inheritable()),
            permitted: set("permitted", c.permitted()),
            ambient: set("ambient", c.ambient()),
        }
    }

    /// Parse `--cap` style names (exec). Unknown names are an error there.
    pub fn names(list: &[String]) -> Result<Vec<Capability>> {
        list.iter().map(|n| parse_name(n).ok_or_else(|| Error::Usage(format!("unknown capability {n:?}")))).collect()
    }

    pub fn mask(set: &[Capability]) -> u64 {
        set.iter().fold(0, |m, c| m | c.bitmask())
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_leniently() {
        let v = serde_json::json!({"bounding": ["CAP_CHOWN", "CAP_BOGUS", "CAP_KILL", "CAP_CHOWN"], "effective": ["kill"]});
        let c = CapSets::from_json(&v).unwrap();
        assert_eq!(c.bounding, vec![Capability::CAP_CHOWN, Capability::CAP_KILL]);
        assert_eq!(c.effective, vec![Capability::CAP_KILL]);
        assert!(c.ambient.is_empty());
        assert_eq!(CapSets::mask(&c.bounding), 1 | (1 << 5));
    }

    #[test]
    fn rejects_wrong_types() {
        let e = CapSets::from_json(&serde_json::json!({"bounding": [1]})).unwrap_err();
        assert_eq!(e.0, "bounding[0]");
        assert!(CapSets::from_json(&serde_json::json!({"bounding": "CAP_KILL"})).is_err());
    }
}
