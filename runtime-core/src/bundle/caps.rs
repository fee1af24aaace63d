//! The five capability sets of a process (`caps` crate), parsed leniently:
//! names the crate or the running kernel do not know are logged and skipped,
//! as the OCI spec and runc do. A name is known only as the kernel spells
//! it (`CAP_NET_RAW`, as runc matches it): oci-spec also takes `net_raw`,
//! `CAP_CAP_NET_RAW` or Unicode look-alikes, and a policy that vets
//! config.json by name must not see a capability granted that it did not
//! recognise.
//!
//! The sets are applied by `linux::caps`.

use caps::Capability;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::host::last_cap;
use crate::log;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapSets {
    pub bounding: Vec<Capability>,
    pub effective: Vec<Capability>,
    pub inheritable: Vec<Capability>,
    pub permitted: Vec<Capability>,
    pub ambient: Vec<Capability>,
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
    name.parse().ok()
}

/// `process.capabilities` as written, the names not yet checked: read
/// beside oci-spec's typed parse of config.json, which would normalise them.
#[derive(Debug, Default, serde::Deserialize)]
pub struct RawCapSets<'a> {
    #[serde(borrow, default)]
    pub bounding: Option<Vec<&'a str>>,
    #[serde(borrow, default)]
    pub effective: Option<Vec<&'a str>>,
    #[serde(borrow, default)]
    pub inheritable: Option<Vec<&'a str>>,
    #[serde(borrow, default)]
    pub permitted: Option<Vec<&'a str>>,
    #[serde(borrow, default)]
    pub ambient: Option<Vec<&'a str>>,
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

    /// The sets from their names as written.
    pub fn from_raw(r: &RawCapSets) -> CapSets {
        let set = |field: &str, names: &Option<Vec<&str>>| {
            let mut out = Vec::new();
            for n in names.iter().flatten() {
                add(&mut out, n, field);
            }
            out
        };
        CapSets {
            bounding: set("bounding", &r.bounding),
            effective: set("effective", &r.effective),
            inheritable: set("inheritable", &r.inheritable),
            permitted: set("permitted", &r.permitted),
            ambient: set("ambient", &r.ambient),
        }
    }

    /// Parse `exec --cap` names: the `CAP_` prefix and upper case are
    /// optional on the command line. Unknown names are an error there.
    pub fn names(list: &[String]) -> Result<Vec<Capability>> {
        list.iter()
            .map(|n| {
                let upper = n.to_ascii_uppercase();
                let canon = if upper.starts_with("CAP_") { upper } else { format!("CAP_{upper}") };
                parse_name(&canon).ok_or_else(|| Error::Usage(format!("unknown capability {n:?}")))
            })
            .collect()
    }

    pub fn mask(set: &[Capability]) -> u64 {
        set.iter().fold(0, |m, c| m | c.bitmask())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_leniently() {
        let v = serde_json::json!({"bounding": ["CAP_CHOWN", "CAP_BOGUS", "CAP_KILL", "CAP_CHOWN"], "effective": ["CAP_KILL"]});
        let c = CapSets::from_json(&v).unwrap();
        assert_eq!(c.bounding, vec![Capability::CAP_CHOWN, Capability::CAP_KILL]);
        assert_eq!(c.effective, vec![Capability::CAP_KILL]);
        assert!(c.ambient.is_empty());
        assert_eq!(CapSets::mask(&c.bounding), 1 | (1 << 5));
    }

    #[test]
    fn only_the_kernels_spelling_is_a_capability() {
        let v = serde_json::json!({"bounding": ["kill", "NET_RAW", "CAP_CAP_CHOWN", "cap_sys_admin", "CAP_\u{17f}YS_ADMIN", "CAP_SETUID"]});
        assert_eq!(CapSets::from_json(&v).unwrap().bounding, vec![Capability::CAP_SETUID]);
        // the command line is forgiving, and still refuses what is unknown
        let cli = CapSets::names(&["net_raw".into(), "CAP_KILL".into()]).unwrap();
        assert_eq!(cli, vec![Capability::CAP_NET_RAW, Capability::CAP_KILL]);
        assert!(CapSets::names(&["CAP_CAP_KILL".into()]).is_err());
    }

    #[test]
    fn rejects_wrong_types() {
        let e = CapSets::from_json(&serde_json::json!({"bounding": [1]})).unwrap_err();
        assert_eq!(e.0, "bounding[0]");
        assert!(CapSets::from_json(&serde_json::json!({"bounding": "CAP_KILL"})).is_err());
    }
}
