//! Bundles made from busybox-static alone: a rootfs with the busybox binary,
//! one symlink per applet, /etc/passwd and /etc/group, and a baseline
//! config.json (the shape of `runc spec`'s, written here so that every
//! runtime is judged on the same file).

use serde_json::{json, Value};
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

pub const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
user:x:1000:1000:user:/home/user:/bin/sh\n\
nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";

pub const GROUP: &str = "root:x:0:\ntty:x:5:\nuser:x:1000:\nextra:x:2000:\nnogroup:x:65534:\n";

/// The uid/gid of the unprivileged user in the rootfs.
pub const USER_UID: u32 = 1000;

/// Default capabilities of the baseline config (Docker's default set).
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

pub const DEFAULT_MASKED: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
];

pub const DEFAULT_READONLY: &[&str] = &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// A busybox binary copied once per run (so that every rootfs can hard-link
/// it) and the list of its applets.
#[derive(Debug, Clone)]
pub struct RootfsTemplate {
    pub busybox: testkit::Busybox,
}

impl RootfsTemplate {
    /// Copy `busybox_src` into `workdir` and ask it for its applets.
    pub fn prepare(workdir: &Path, busybox_src: &Path) -> io::Result<RootfsTemplate> {
        Ok(RootfsTemplate { busybox: testkit::Busybox::at(busybox_src)?.private_copy(workdir)? })
    }

    /// Fill `rootfs` (created if missing).
    pub fn populate(&self, rootfs: &Path) -> io::Result<()> {
        for d in ["sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "root", "home/user", "mnt", "shared", "var/run"] {
            fs::create_dir_all(rootfs.join(d))?;
        }
        self.busybox.install(rootfs)?;
        fs::set_permissions(rootfs, fs::Permissions::from_mode(0o755))?;
        fs::set_permissions(rootfs.join("tmp"), fs::Permissions::from_mode(0o1777))?;
        fs::set_permissions(rootfs.join("root"), fs::Permissions::from_mode(0o700))?;
        fs::write(rootfs.join("etc/passwd"), PASSWD)?;
        fs::write(rootfs.join("etc/group"), GROUP)?;
        fs::write(rootfs.join("etc/hostname"), "rootfs-hostname\n")?;
        let _ = std::os::unix::fs::chown(rootfs.join("home/user"), Some(USER_UID), Some(USER_UID));
        Ok(())
    }
}

fn strs(v: &[&str]) -> Value {
    Value::Array(v.iter().map(|s| Value::String(s.to_string())).collect())
}

/// The baseline config.json: runc spec's defaults except a writable root,
/// Docker's default capability set, a hostname, an explicit cgroupsPath, and
/// a bind mount of the case's `shared` host directory at /shared.
pub fn base_config(hostname: &str, cgroups_path: &str, shared: &Path) -> Value {
    let caps = strs(DEFAULT_CAPS);
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": caps.clone(),
                "effective": caps.clone(),
                "permitted": caps,
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": hostname,
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
            {"destination": "/shared", "type": "bind", "source": shared.to_string_lossy(),
             "options": ["rbind", "rw"]}
        ],
        "linux": {
            "cgroupsPath": cgroups_path,
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}
            ],
            "maskedPaths": strs(DEFAULT_MASKED),
            "readonlyPaths": strs(DEFAULT_READONLY)
        }
    })
}

/// Helpers to edit a config as JSON.
pub trait ConfigExt {
    /// The value at a '/'-separated path, created as objects on the way.
    fn at(&mut self, path: &str) -> &mut Value;
    /// Append to the array at `path` (created if missing).
    fn push(&mut self, path: &str, v: Value);
    /// Remove the namespace of `t` from linux.namespaces.
    fn remove_ns(&mut self, t: &str);
    /// Set (replace or add) the namespace of type `t`.
    fn set_ns(&mut self, t: &str, path: Option<&str>);
    /// Remove the mount with this destination.
    fn remove_mount(&mut self, dest: &str);
}

impl ConfigExt for Value {
    fn at(&mut self, path: &str) -> &mut Value {
        let mut cur = self;
        for key in path.split('/').filter(|k| !k.is_empty()) {
            if !cur.is_object() {
                *cur = json!({});
            }
            cur = cur.as_object_mut().expect("object").entry(key.to_string()).or_insert(Value::Null);
        }
        cur
    }
    fn push(&mut self, path: &str, v: Value) {
        let a = self.at(path);
        if !a.is_array() {
            *a = json!([]);
        }
        a.as_array_mut().expect("array").push(v);
    }
    fn remove_ns(&mut self, t: &str) {
        if let Some(a) = self.at("linux/namespaces").as_array_mut() {
            a.retain(|n| n["type"] != t);
        }
    }
    fn set_ns(&mut self, t: &str, path: Option<&str>) {
        self.remove_ns(t);
        let mut n = json!({"type": t});
        if let Some(p) = path {
            n["path"] = json!(p);
        }
        self.push("linux/namespaces", n);
    }
    fn remove_mount(&mut self, dest: &str) {
        if let Some(a) = self.at("mounts").as_array_mut() {
            a.retain(|m| m["destination"] != dest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::process::Command;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rpc-conformance-unit-{}-{}", tag, std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn rootfs_from_busybox() {
        let src = Path::new("/bin/busybox");
        if !src.exists() {
            testkit::skip!("no /bin/busybox");
            return;
        }
        let d = tmpdir("rootfs");
        let t = RootfsTemplate::prepare(&d, src).unwrap();
        assert!(t.busybox.applets.iter().any(|a| a == "sh"));
        assert!(!t.busybox.applets.iter().any(|a| a == "busybox"));
        let r = d.join("rootfs");
        t.populate(&r).unwrap();
        assert!(r.join("bin/busybox").is_file());
        assert_eq!(fs::read_link(r.join("bin/sh")).unwrap(), Path::new("busybox"));
        assert!(fs::read_to_string(r.join("etc/passwd")).unwrap().starts_with("root:x:0:0:"));
        assert!(fs::read_to_string(r.join("etc/group")).unwrap().contains("root:x:0:"));
        assert_eq!(fs::metadata(r.join("tmp")).unwrap().permissions().mode() & 0o7777, 0o1777);
        // A second populate (e.g. reused dir) is fine.
        t.populate(&r).unwrap();
        // The rootfs runs: busybox answers through the sh symlink.
        let out = Command::new(r.join("bin/sh")).args(["-c", "echo ok"]).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn base_config_shape() {
        let c = base_config("h", "/x/y", Path::new("/tmp/s"));
        assert_eq!(c["ociVersion"], "1.0.2");
        assert_eq!(c["root"]["path"], "rootfs");
        assert_eq!(c["process"]["args"][0], "sh");
        assert_eq!(c["linux"]["cgroupsPath"], "/x/y");
        let ns: Vec<&str> = c["linux"]["namespaces"].as_array().unwrap().iter().map(|n| n["type"].as_str().unwrap()).collect();
        for t in ["pid", "network", "ipc", "uts", "mount"] {
            assert!(ns.contains(&t), "{t}");
        }
        let dests: Vec<&str> = c["mounts"].as_array().unwrap().iter().map(|m| m["destination"].as_str().unwrap()).collect();
        assert_eq!(dests[0], "/proc");
        assert!(dests.contains(&"/shared"));
    }

    #[test]
    fn config_edits() {
        let mut c = base_config("h", "/x", Path::new("/s"));
        *c.at("process/user/additionalGids") = json!([5]);
        assert_eq!(c["process"]["user"]["additionalGids"][0], 5);
        *c.at("linux/sysctl/net.ipv4.ip_forward") = json!("1");
        assert_eq!(c["linux"]["sysctl"]["net.ipv4.ip_forward"], "1");
        c.set_ns("user", None);
        c.set_ns("network", Some("/proc/1/ns/net"));
        let ns = c["linux"]["namespaces"].as_array().unwrap();
        assert_eq!(ns.iter().filter(|n| n["type"] == "network").count(), 1);
        assert!(ns.iter().any(|n| n["type"] == "network" && n["path"] == "/proc/1/ns/net"));
        c.remove_ns("user");
        assert!(!c["linux"]["namespaces"].as_array().unwrap().iter().any(|n| n["type"] == "user"));
        c.push("hooks/poststop", json!({"path": "/bin/true"}));
        assert_eq!(c["hooks"]["poststop"][0]["path"], "/bin/true");
        c.remove_mount("/shared");
        assert!(!c["mounts"].as_array().unwrap().iter().any(|m| m["destination"] == "/shared"));
    }
}
