//! The device rules: the spec's `linux.resources.devices` with runc's
//! default allow list, applied to the v1 devices cgroup or (cgroup v2) as
//! an eBPF filter.

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use super::layout::Layout;
use crate::error::{Error, Result};
use crate::linux::cgroups::devices_bpf::{self, Rule};
use crate::linux::cgroups::v1;

/// runc's default allow list: what every container may use.
pub fn default_device_rules() -> Vec<(char, i64, i64, &'static str)> {
    vec![
        ('c', -1, -1, "m"),
        ('b', -1, -1, "m"),
        ('c', 1, 3, "rwm"),
        ('c', 1, 8, "rwm"),
        ('c', 1, 7, "rwm"),
        ('c', 5, 0, "rwm"),
        ('c', 1, 5, "rwm"),
        ('c', 1, 9, "rwm"),
        ('c', 5, 1, "rwm"),
        ('c', 136, -1, "rwm"),
        ('c', 5, 2, "rwm"),
        ('c', 10, 200, "rwm"),
    ]
}

fn device_rule_of(r: &LinuxDeviceCgroup) -> Result<Option<Rule>> {
    let kind = match r.typ() {
        Some(LinuxDeviceType::B) => 'b',
        Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => 'c',
        // The device cgroup does not control FIFOs.
        Some(LinuxDeviceType::P) => return Ok(None),
        Some(LinuxDeviceType::A) | None => 'a',
    };
    let access = devices_bpf::parse_access(r.access().as_deref().unwrap_or("rwm"))
        .map_err(|e| Error::Usage(format!("linux.resources.devices: {e}")))?;
    let (major, minor) = if kind == 'a' { (-1, -1) } else { (r.major().unwrap_or(-1), r.minor().unwrap_or(-1)) };
    if major < -1 || minor < -1 {
        return Err(Error::Usage(format!("linux.resources.devices: invalid device number {major}:{minor}")));
    }
    Ok(Some(Rule { allow: r.allow(), kind, major, minor, access }))
}

/// The full, ordered rule list: deny everything, the config's rules, the
/// default allow list, then the config's `linux.devices`.
pub fn device_rules(rules: &[LinuxDeviceCgroup], extra: &[(char, i64, i64)]) -> Result<Vec<Rule>> {
    let all = devices_bpf::ACC_MKNOD | devices_bpf::ACC_READ | devices_bpf::ACC_WRITE;
    let mut v = vec![Rule { allow: false, kind: 'a', major: -1, minor: -1, access: all }];
    for r in rules {
        if let Some(x) = device_rule_of(r)? {
            v.push(x);
        }
    }
    for (t, ma, mi, acc) in default_device_rules() {
        v.push(Rule { allow: true, kind: t, major: ma, minor: mi, access: devices_bpf::parse_access(acc)? });
    }
    for (t, ma, mi) in extra {
        if *t == 'b' || *t == 'c' {
            v.push(Rule { allow: true, kind: *t, major: *ma, minor: *mi, access: all });
        }
    }
    Ok(v)
}

/// Apply the device rules: the v1 devices cgroup, else (cgroup v2) the
/// eBPF filter on the unified directory.
pub fn apply_devices(l: &Layout, rules: &[Rule]) -> Result<()> {
    if let Some(d) = l.v1_with("devices.allow") {
        return v1::devices(d, rules);
    }
    if let Some(d) = l.v2 {
        if l.pure_v2() {
            return devices_bpf::apply(d, rules);
        }
    }
    crate::log::debug("no devices cgroup: device rules not enforced");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_rule_list() {
        use oci_spec::runtime::LinuxDeviceCgroupBuilder;
        let deny = LinuxDeviceCgroupBuilder::default().allow(false).access("rwm").build().unwrap();
        let v = device_rules(&[deny], &[('c', 1, 1)]).unwrap();
        assert_eq!(v[0].kind, 'a');
        assert!(!v[0].allow);
        assert_eq!(v.last().unwrap().major, 1);
        let bad = LinuxDeviceCgroupBuilder::default().allow(true).typ(LinuxDeviceType::C).access("rwx").build().unwrap();
        assert!(device_rules(&[bad], &[]).is_err());
    }
}
