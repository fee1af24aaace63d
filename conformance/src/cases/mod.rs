//! The cases. Each is a function of a [`Ctx`] returning a verdict; each
//! module lists its cases with their spec section and what they check.

use crate::runner::Ctx;
use crate::verdict::R;

pub mod cgroups;
pub mod hooks;
pub mod lifecycle;
pub mod misc;
pub mod namespaces;
pub mod process;
pub mod rootfs;

pub struct Case {
    pub name: &'static str,
    /// Where in the runtime spec (runtime.md, config.md, config-linux.md,
    /// runtime-linux.md) or runc's CLI the rule is.
    pub section: &'static str,
    /// What is checked; for two-rule cases, the spec's rule and runc's.
    pub summary: &'static str,
    /// The spec version that introduced the feature, when newer than 1.0.
    pub since: Option<&'static str>,
    pub run: fn(&mut Ctx) -> R,
}

/// `case!(name, section, summary, fn)` / `case!(name, section, summary, fn, since)`.
#[macro_export]
macro_rules! case {
    ($name:expr, $section:expr, $summary:expr, $f:expr) => {
        $crate::cases::Case { name: $name, section: $section, summary: $summary, since: None, run: $f }
    };
    ($name:expr, $section:expr, $summary:expr, $f:expr, $since:expr) => {
        $crate::cases::Case { name: $name, section: $section, summary: $summary, since: Some($since), run: $f }
    };
}

pub fn all() -> Vec<Case> {
    let mut v = Vec::new();
    v.extend(lifecycle::cases());
    v.extend(hooks::cases());
    v.extend(process::cases());
    v.extend(rootfs::cases());
    v.extend(namespaces::cases());
    v.extend(cgroups::cases());
    v.extend(misc::cases());
    v
}

/// A line of /proc/self/mountinfo, parsed.
#[derive(Debug, Clone, Default)]
pub struct MountLine {
    pub mount_point: String,
    pub mount_opts: Vec<String>,
    pub optional: Vec<String>,
    pub fstype: String,
    pub super_opts: Vec<String>,
}

impl MountLine {
    pub fn has_opt(&self, o: &str) -> bool {
        self.mount_opts.iter().any(|x| x == o)
    }
    pub fn has_super(&self, o: &str) -> bool {
        self.super_opts.iter().any(|x| x == o)
    }
    pub fn propagation(&self) -> &'static str {
        if self.optional.iter().any(|o| o.starts_with("shared:")) {
            if self.optional.iter().any(|o| o.starts_with("master:")) {
                "shared+slave"
            } else {
                "shared"
            }
        } else if self.optional.iter().any(|o| o.starts_with("master:")) {
            "slave"
        } else if self.optional.iter().any(|o| o == "unbindable") {
            "unbindable"
        } else {
            "private"
        }
    }
}

pub fn parse_mountinfo(text: &str) -> Vec<MountLine> {
    let mut v = Vec::new();
    for line in text.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let f: Vec<&str> = pre.split(' ').collect();
        let p: Vec<&str> = post.split(' ').collect();
        if f.len() < 6 || p.len() < 3 {
            continue;
        }
        v.push(MountLine {
            mount_point: crate::host::unescape(f[4]).into_owned(),
            mount_opts: f[5].split(',').map(String::from).collect(),
            optional: f[6..].iter().map(|s| s.to_string()).collect(),
            fstype: p[0].to_string(),
            super_opts: p[2].split(',').map(String::from).collect(),
        });
    }
    v
}

/// The topmost (last listed) mount at `mp`.
pub fn mount_at<'a>(mounts: &'a [MountLine], mp: &str) -> Option<&'a MountLine> {
    mounts.iter().rev().find(|m| m.mount_point == mp)
}

/// Text between `BEGIN name` and `END name` lines of a script's output.
pub fn section<'a>(out: &'a str, name: &str) -> &'a str {
    let b = format!("BEGIN {name}\n");
    let e = format!("END {name}");
    match out.find(&b) {
        Some(i) => {
            let rest = &out[i + b.len()..];
            match rest.find(&e) {
                Some(j) => &rest[..j],
                None => rest,
            }
        }
        None => "",
    }
}

/// Hex capability mask from /proc/self/status text.
pub fn status_caps(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|l| l.strip_prefix(key)).and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
}

/// The value after `key` in /proc/self/status text.
pub fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status.lines().find_map(|l| l.strip_prefix(key)).map(|v| v.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_names_are_unique_and_documented() {
        let all = all();
        assert!(all.len() > 100, "only {} cases", all.len());
        let mut names = std::collections::BTreeSet::new();
        for c in &all {
            assert!(names.insert(c.name), "duplicate case {}", c.name);
            assert!(!c.section.is_empty() && !c.summary.is_empty(), "{}", c.name);
            assert!(!c.name.contains(char::is_whitespace) && !c.name.contains('#'), "{}", c.name);
        }
    }

    #[test]
    fn mountinfo_parsing() {
        let t = "36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 shared:2 - ext3 /dev/root rw,errors=continue\n\
                 40 27 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        let m = parse_mountinfo(t);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].mount_point, "/mnt/parent");
        assert!(m[0].has_opt("noatime"));
        assert_eq!(m[0].propagation(), "shared+slave");
        assert_eq!(m[0].fstype, "ext3");
        assert!(m[0].has_super("errors=continue"));
        assert_eq!(m[1].propagation(), "private");
        assert_eq!(mount_at(&m, "/sys/fs/cgroup/unified").unwrap().fstype, "cgroup2");
    }

    #[test]
    fn sections() {
        let o = "x\nBEGIN a\n1\n2\nEND a\nBEGIN b\n3\nEND b\n";
        assert_eq!(section(o, "a"), "1\n2\n");
        assert_eq!(section(o, "b"), "3\n");
        assert_eq!(section(o, "c"), "");
    }
}
