//! uidMappings and gidMappings as the kernel takes them: their text, and
//! the checks the kernel's map_write makes, done before anything is made.

use oci_spec::runtime::LinuxIdMapping;

use crate::host::max_map_lines;

/// A map's text as written to /proc/PID/{uid,gid}_map.
pub fn map_text(m: &[LinuxIdMapping]) -> String {
    m.iter().map(|x| format!("{} {} {}\n", x.container_id(), x.host_id(), x.size())).collect()
}

/// Check a uidMappings or gidMappings list as the kernel's map_write does,
/// so a mapping it would refuse is reported by its field before anything
/// is made: the first bad entry's index and why.
pub fn check_mappings(field: &str, m: &[LinuxIdMapping]) -> std::result::Result<(), (String, String)> {
    // Lines first: the kernel takes at most this many, in one write of
    // less than a page (which 124 lines of the longest form can pass).
    if m.len() > 5 {
        let max = max_map_lines();
        if m.len() > max {
            return Err((field.to_string(), format!("{} mappings, above the kernel's limit of {max}", m.len())));
        }
    }
    if m.len() > 100 {
        // SAFETY: plain call.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
        let len = map_text(m).len();
        if len >= page {
            return Err((
                field.to_string(),
                format!("{} mappings take {len} bytes, above the kernel's limit of {} per map", m.len(), page - 1),
            ));
        }
    }
    let end = |start: u32, size: u32| start as u64 + size as u64;
    for (i, x) in m.iter().enumerate() {
        let f = format!("{field}[{i}]");
        if x.size() == 0 {
            return Err((f, "size must not be 0".into()));
        }
        // The kernel keeps ids below 2^32-1 ((u32)-1 is the invalid id).
        for (what, start) in [("containerID", x.container_id()), ("hostID", x.host_id())] {
            if end(start, x.size()) > u32::MAX as u64 {
                return Err((f, format!("{what} {start} + size {} overflows the 32-bit id range", x.size())));
            }
        }
        for (j, y) in m[..i].iter().enumerate() {
            // [a, a+xs) and [b, b+ys) meet.
            let overlap = |a: u32, b: u32| (a as u64) < end(b, y.size()) && (b as u64) < end(a, x.size());
            if overlap(x.container_id(), y.container_id()) {
                return Err((f, format!("container ids {}..{} overlap {field}[{j}]", x.container_id(), end(x.container_id(), x.size()))));
            }
            if overlap(x.host_id(), y.host_id()) {
                return Err((f, format!("host ids {}..{} overlap {field}[{j}]", x.host_id(), end(x.host_id(), x.size()))));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn maps(v: &[(u32, u32, u32)]) -> Vec<LinuxIdMapping> {
        v.iter().map(|&(c, h, n)| serde_json::from_value(serde_json::json!({"containerID": c, "hostID": h, "size": n})).unwrap()).collect()
    }

    fn check(v: &[(u32, u32, u32)]) -> std::result::Result<(), String> {
        check_mappings("linux.uidMappings", &maps(v)).map_err(|(f, m)| format!("{f}: {m}"))
    }

    #[test]
    fn mappings_are_checked_as_the_kernel_does() {
        check(&[(0, 100000, 65536)]).unwrap();
        // Adjacent ranges and the last valid id.
        check(&[(0, 100000, 1000), (1000, 101000, 1000)]).unwrap();
        check(&[(4294967294, 0, 1)]).unwrap();
        assert!(check(&[(4294967294, 0, 2)]).unwrap_err().starts_with("linux.uidMappings[0]: containerID 4294967294"));
        assert!(check(&[(0, 4294967295, 1)]).unwrap_err().starts_with("linux.uidMappings[0]: hostID"));
        assert_eq!(check(&[(0, 1, 5), (7, 9, 0)]).unwrap_err(), "linux.uidMappings[1]: size must not be 0");
        assert!(check(&[(0, 1000, 10), (9, 2000, 1)]).unwrap_err().starts_with("linux.uidMappings[1]: container ids 9..10 overlap"));
        assert!(check(&[(0, 1000, 10), (50, 995, 10)]).unwrap_err().starts_with("linux.uidMappings[1]: host ids 995..1005 overlap"));
        // More lines than the kernel takes, and more text than a page.
        let many: Vec<_> = (0..341).map(|i| (i, 100000 + i, 1)).collect();
        assert!(check(&many).unwrap_err().contains("341 mappings, above the kernel's limit of"));
        let long: Vec<_> = (0..200).map(|i| (4000000000 + i * 10, 4100000000 + i * 10, 10)).collect();
        assert!(check(&long).unwrap_err().contains("bytes, above the kernel's limit of"));
    }
}
