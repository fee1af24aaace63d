//! Root, hostname, mounts, masked and read-only paths, devices
//! (config.md#root, #mounts, config-linux.md#devices, ...).

use super::{mount_at, parse_mountinfo, section, Case};
use crate::bundle::ConfigExt;
use crate::runner::{cut, kv, Ctx};
use crate::verdict::{Rule, Verdict, R};
use crate::{case, check, check_eq, need};
use serde_json::{json, Value};
use std::fs;

pub fn cases() -> Vec<Case> {
    vec![
        case!("root.readonly", "config.md#root", "root.readonly true: the root filesystem is mounted read-only and writes fail", root_readonly),
        case!("root.writable", "config.md#root", "root.readonly false: the root filesystem is writable", root_writable),
        case!("root.path.absolute", "config.md#root", "root.path may be an absolute path outside the bundle", root_absolute),
        case!("hostname", "config.md#hostname", "hostname is the container's hostname (new uts namespace)", hostname),
        case!("domainname", "config.md#domainname", "domainname is the container's NIS domain name", domainname, "1.1.0"),
        case!("mounts.tmpfs", "config.md#mounts", "a tmpfs mount with size and mode options", mounts_tmpfs),
        case!("mounts.tmpfs.uid-gid", "config.md#mounts", "tmpfs uid=/gid= options own its root", mounts_tmpfs_owner),
        case!("mounts.bind", "config.md#mounts", "a bind mount shows the host directory, and writes reach the host", mounts_bind),
        case!("mounts.bind.ro", "config.md#mounts", "a bind mount with ro is read-only", mounts_bind_ro),
        case!("mounts.bind.file", "config.md#mounts", "a single file can be bind-mounted", mounts_bind_file),
        case!("mounts.rbind", "config.md#mounts", "rbind carries the mounts below the source; bind does not", mounts_rbind),
        case!("mounts.order", "config.md#mounts", "mounts are made in the listed order (a later mount covers an earlier one)", mounts_order),
        case!("mounts.options.flags", "config.md#mounts", "nosuid, nodev, noexec, noatime options are applied and noexec is enforced", mounts_flags),
        case!("mounts.proc", "config-linux.md#default-filesystems", "/proc is a proc mount showing the container's pid namespace", mounts_proc),
        case!("mounts.sysfs", "config-linux.md#default-filesystems", "/sys is a sysfs mount, read-only as configured", mounts_sysfs),
        case!("mounts.devpts", "config-linux.md#default-filesystems", "/dev/pts is a new devpts instance", mounts_devpts),
        case!("mounts.shm", "config-linux.md#default-filesystems", "/dev/shm is a tmpfs", mounts_shm),
        case!("mounts.mqueue", "config.md#mounts", "/dev/mqueue is an mqueue mount", mounts_mqueue),
        case!("mounts.cgroup", "config-linux.md#default-filesystems", "a cgroup mount at /sys/fs/cgroup shows the controllers; its cgroup filesystems are read-only as configured", mounts_cgroup),
        case!("mounts.propagation.shared", "config.md#mounts", "a bind mount with rshared is a shared mount", |c| mount_propagation(c, "rshared", "shared")),
        case!("mounts.propagation.private", "config.md#mounts", "a bind mount with rprivate is a private mount", |c| mount_propagation(c, "rprivate", "private")),
        case!("mounts.propagation.unbindable", "config.md#mounts", "a bind mount with runbindable is unbindable", |c| mount_propagation(c, "runbindable", "unbindable")),
        case!("mounts.symlink-escape", "config.md#mounts", "a destination through a symlink pointing out of the rootfs lands inside the rootfs", mounts_symlink),
        case!("rootfs-propagation.private", "config-linux.md#rootfs-mount-propagation", "rootfsPropagation private: / is private", |c| rootfs_prop(c, "private")),
        case!(
            "rootfs-propagation.shared",
            "config-linux.md#rootfs-mount-propagation",
            "spec: rootfsPropagation shared makes the container's / shared (a new mount propagates to an earlier bind of /); runc: applies it to the mount namespace's tree before the rootfs bind and pivot_root, and / ends up private",
            |c| rootfs_prop(c, "shared")
        ),
        case!("rootfs-propagation.slave", "config-linux.md#rootfs-mount-propagation", "rootfsPropagation slave: / is not shared (mounts in the container do not propagate)", |c| rootfs_prop(c, "slave")),
        case!(
            "rootfs-propagation.unbindable",
            "config-linux.md#rootfs-mount-propagation",
            "spec: rootfsPropagation unbindable makes the container's / unbindable; runc: applies it to the mount namespace's tree before the rootfs bind and pivot_root, and / ends up private",
            |c| rootfs_prop(c, "unbindable")
        ),
        case!("masked-paths", "config-linux.md#masked-paths", "maskedPaths: a masked directory is empty and a masked file reads empty (also /proc/kcore)", masked),
        case!("readonly-paths", "config-linux.md#readonly-paths", "readonlyPaths: readable, but writes fail", readonly),
        case!("readonly-paths.proc-sys", "config-linux.md#readonly-paths", "the default /proc/sys read-only path cannot be written", readonly_proc_sys),
        case!("devices.default", "config-linux.md#default-devices", "/dev/null, zero, full, random, urandom, tty exist as the right character devices and work", devices_default),
        case!("devices.default.ptmx", "config-linux.md#default-devices", "/dev/ptmx is the devpts ptmx (symlink or bind) and opens", devices_ptmx),
        case!("devices.default.symlinks", "runtime-linux.md#dev-symbolic-links", "/dev/fd, /dev/stdin, /dev/stdout, /dev/stderr link to /proc/self/fd", devices_symlinks),
        case!("devices.custom", "config-linux.md#devices", "a listed character device is made with its major, minor, fileMode, uid and gid", devices_custom),
        case!("devices.fifo", "config-linux.md#devices", "a listed fifo (type p) is made", devices_fifo),
        case!("devices.block", "config-linux.md#devices", "a listed block device (type b) is made", devices_block),
        case!("devices.cgroup.deny", "config-linux.md#allowed-device-list", "a device not allowed by linux.resources.devices cannot be opened", devices_deny),
        case!("devices.cgroup.allow", "config-linux.md#allowed-device-list", "a device allowed by linux.resources.devices can be opened", devices_allow),
    ]
}

fn ferr(e: impl std::fmt::Display) -> Verdict {
    Verdict::Fail(e.to_string())
}

fn mount_lines(c: &mut Ctx, extra: &str) -> Result<(Vec<super::MountLine>, String), Verdict> {
    let out = c.run_sh(&format!("echo BEGIN mi; cat /proc/self/mountinfo; echo END mi; {extra}"))?;
    Ok((parse_mountinfo(section(&out, "mi")), out))
}

fn root_readonly(c: &mut Ctx) -> R {
    c.config["root"]["readonly"] = json!(true);
    let (m, out) = mount_lines(c, "touch /rootfs-write 2>/dev/null && echo write=ok || echo write=failed")?;
    let root = mount_at(&m, "/").ok_or_else(|| Verdict::Fail("no / in mountinfo".into()))?;
    check!(root.has_opt("ro"), "/ is mounted {:?}", root.mount_opts.join(","));
    check_eq!(kv(&out).get("write").cloned().unwrap_or_default(), "failed", "writing to /");
    Ok(Verdict::Pass)
}

fn root_writable(c: &mut Ctx) -> R {
    c.config["root"]["readonly"] = json!(false);
    let (m, out) = mount_lines(c, "touch /rootfs-write && echo write=ok || echo write=failed")?;
    let root = mount_at(&m, "/").ok_or_else(|| Verdict::Fail("no / in mountinfo".into()))?;
    check!(root.has_opt("rw"), "/ is mounted {:?}", root.mount_opts.join(","));
    check_eq!(kv(&out).get("write").cloned().unwrap_or_default(), "ok", "writing to /");
    Ok(Verdict::Pass)
}

fn root_absolute(c: &mut Ctx) -> R {
    let alt = c.dir.join("elsewhere-rootfs");
    c.settings.template.populate(&alt).map_err(ferr)?;
    fs::write(alt.join("marker"), "alt-root\n").map_err(ferr)?;
    c.config["root"]["path"] = json!(alt.to_string_lossy());
    let out = c.run_sh("cat /marker")?;
    check_eq!(out.trim(), "alt-root", "/marker of the absolute root.path");
    Ok(Verdict::Pass)
}

fn hostname(c: &mut Ctx) -> R {
    c.config["hostname"] = json!("conformance-host");
    let out = c.run_kv("echo h=$(hostname); echo k=$(cat /proc/sys/kernel/hostname)")?;
    check_eq!(out.get("h").cloned().unwrap_or_default(), "conformance-host", "hostname");
    check_eq!(out.get("k").cloned().unwrap_or_default(), "conformance-host", "kernel.hostname");
    check!(crate::host::read("/proc/sys/kernel/hostname").trim() != "conformance-host", "the host's hostname was changed");
    Ok(Verdict::Pass)
}

fn domainname(c: &mut Ctx) -> R {
    c.config["domainname"] = json!("conformance.example");
    let out = c.run_sh("cat /proc/sys/kernel/domainname")?;
    check_eq!(out.trim(), "conformance.example", "kernel.domainname");
    Ok(Verdict::Pass)
}

fn add_mount(c: &mut Ctx, m: Value) {
    c.config.push("mounts", m);
}

fn mounts_tmpfs(c: &mut Ctx) -> R {
    add_mount(c, json!({"destination": "/mnt/t", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m", "mode=1770"]}));
    let (m, out) = mount_lines(c, "echo mode=$(stat -c %a /mnt/t)")?;
    let t = mount_at(&m, "/mnt/t").ok_or_else(|| Verdict::Fail("nothing mounted at /mnt/t".into()))?;
    check_eq!(t.fstype.as_str(), "tmpfs", "type of /mnt/t");
    check!(t.has_super("size=1024k"), "/mnt/t has options {:?}, want size=1024k", t.super_opts.join(","));
    check_eq!(kv(&out).get("mode").cloned().unwrap_or_default(), "1770", "mode of /mnt/t");
    Ok(Verdict::Pass)
}

fn mounts_tmpfs_owner(c: &mut Ctx) -> R {
    add_mount(c, json!({"destination": "/mnt/t", "type": "tmpfs", "source": "tmpfs", "options": ["uid=1000", "gid=2000"]}));
    let out = c.run_sh("stat -c %u:%g /mnt/t")?;
    check_eq!(out.trim(), "1000:2000", "owner of /mnt/t");
    Ok(Verdict::Pass)
}

fn host_dir(c: &Ctx, name: &str) -> Result<std::path::PathBuf, Verdict> {
    let d = c.dir.join(name);
    fs::create_dir_all(&d).map_err(ferr)?;
    Ok(d)
}

fn mounts_bind(c: &mut Ctx) -> R {
    let d = host_dir(c, "bind-src")?;
    fs::write(d.join("from-host"), "host-data\n").map_err(ferr)?;
    add_mount(c, json!({"destination": "/mnt/b", "type": "bind", "source": d.to_string_lossy(), "options": ["bind", "rw"]}));
    let out = c.run_kv("echo read=$(cat /mnt/b/from-host); echo container-data > /mnt/b/from-container && echo write=ok")?;
    check_eq!(out.get("read").cloned().unwrap_or_default(), "host-data", "host file read through the bind mount");
    check_eq!(out.get("write").cloned().unwrap_or_default(), "ok", "write into the bind mount");
    check_eq!(
        fs::read_to_string(d.join("from-container")).unwrap_or_default().trim(),
        "container-data",
        "file written in the container, seen on the host"
    );
    Ok(Verdict::Pass)
}

fn mounts_bind_ro(c: &mut Ctx) -> R {
    let d = host_dir(c, "bind-src")?;
    fs::write(d.join("f"), "x\n").map_err(ferr)?;
    add_mount(c, json!({"destination": "/mnt/b", "type": "bind", "source": d.to_string_lossy(), "options": ["bind", "ro"]}));
    let (m, out) = mount_lines(c, "echo read=$(cat /mnt/b/f); touch /mnt/b/new 2>/dev/null && echo write=ok || echo write=failed")?;
    let b = mount_at(&m, "/mnt/b").ok_or_else(|| Verdict::Fail("nothing mounted at /mnt/b".into()))?;
    check!(b.has_opt("ro"), "/mnt/b is mounted {}", b.mount_opts.join(","));
    let kv = kv(&out);
    check_eq!(kv.get("read").cloned().unwrap_or_default(), "x", "read through the read-only bind");
    check_eq!(kv.get("write").cloned().unwrap_or_default(), "failed", "write into the read-only bind");
    check!(!d.join("new").exists(), "the write reached the host");
    Ok(Verdict::Pass)
}

fn mounts_bind_file(c: &mut Ctx) -> R {
    let f = c.dir.join("bind-file");
    fs::write(&f, "single file\n").map_err(ferr)?;
    add_mount(c, json!({"destination": "/etc/bound-file", "type": "bind", "source": f.to_string_lossy(), "options": ["bind"]}));
    let out = c.run_sh("cat /etc/bound-file; [ -f /etc/bound-file ] && echo is-file")?;
    check!(out.contains("single file") && out.contains("is-file"), "bind-mounted file reads {:?}", cut(&out, 100));
    Ok(Verdict::Pass)
}

fn mounts_rbind(c: &mut Ctx) -> R {
    let d = host_dir(c, "rbind-src")?;
    let sub = d.join("sub");
    c.host_tmpfs(&sub)?;
    fs::write(sub.join("on-submount"), "x").map_err(ferr)?;
    let ds = d.to_string_lossy().into_owned();
    add_mount(c, json!({"destination": "/mnt/r", "type": "bind", "source": ds, "options": ["rbind"]}));
    add_mount(c, json!({"destination": "/mnt/b", "type": "bind", "source": ds, "options": ["bind"]}));
    let out = c.run_kv(
        "[ -e /mnt/r/sub/on-submount ] && echo rbind=yes || echo rbind=no; [ -e /mnt/b/sub/on-submount ] && echo bind=yes || echo bind=no",
    )?;
    check_eq!(out.get("rbind").cloned().unwrap_or_default(), "yes", "submount visible through rbind");
    check_eq!(out.get("bind").cloned().unwrap_or_default(), "no", "submount visible through a non-recursive bind");
    Ok(Verdict::Pass)
}

fn mounts_order(c: &mut Ctx) -> R {
    let d = host_dir(c, "order-src")?;
    fs::write(d.join("from-bind"), "x").map_err(ferr)?;
    add_mount(c, json!({"destination": "/mnt/o", "type": "bind", "source": d.to_string_lossy(), "options": ["bind"]}));
    add_mount(c, json!({"destination": "/mnt/o", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}));
    add_mount(c, json!({"destination": "/mnt/o/inner", "type": "tmpfs", "source": "tmpfs", "options": ["size=2m"]}));
    let (m, out) = mount_lines(c, "[ -e /mnt/o/from-bind ] && echo bindvisible=yes || echo bindvisible=no")?;
    let o = mount_at(&m, "/mnt/o").ok_or_else(|| Verdict::Fail("nothing mounted at /mnt/o".into()))?;
    check_eq!(o.fstype.as_str(), "tmpfs", "type on top at /mnt/o (the later mount)");
    check_eq!(kv(&out).get("bindvisible").cloned().unwrap_or_default(), "no", "the earlier bind mount is covered");
    let i = mount_at(&m, "/mnt/o/inner")
        .ok_or_else(|| Verdict::Fail("nothing mounted at /mnt/o/inner (made inside the later tmpfs)".into()))?;
    check!(i.has_super("size=2048k"), "/mnt/o/inner is not the third mount: {:?}", i.super_opts.join(","));
    Ok(Verdict::Pass)
}

fn mounts_flags(c: &mut Ctx) -> R {
    add_mount(
        c,
        json!({"destination": "/mnt/f", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "noexec", "noatime", "mode=755"]}),
    );
    let (m, out) = mount_lines(c, "cp /bin/busybox /mnt/f/bb && /mnt/f/bb true 2>/dev/null && echo exec=ok || echo exec=denied")?;
    let f = mount_at(&m, "/mnt/f").ok_or_else(|| Verdict::Fail("nothing mounted at /mnt/f".into()))?;
    for o in ["nosuid", "nodev", "noexec", "noatime"] {
        check!(f.has_opt(o), "/mnt/f is mounted {} (no {o})", f.mount_opts.join(","));
    }
    check_eq!(kv(&out).get("exec").cloned().unwrap_or_default(), "denied", "running a program from the noexec mount");
    Ok(Verdict::Pass)
}

fn expect_type(c: &mut Ctx, mp: &str, fstype: &str, extra: &str) -> Result<(super::MountLine, String), Verdict> {
    let (m, out) = mount_lines(c, extra)?;
    let l = mount_at(&m, mp).ok_or_else(|| Verdict::Fail(format!("nothing mounted at {mp}")))?.clone();
    check!(l.fstype == fstype, "{mp} is {}, want {fstype}", l.fstype);
    Ok((l, out))
}

fn mounts_proc(c: &mut Ctx) -> R {
    let (_, out) = expect_type(c, "/proc", "proc", "echo self=$(readlink /proc/self); echo me=$$")?;
    let kv = kv(&out);
    check!(kv.get("self").map(|s| !s.is_empty()).unwrap_or(false), "/proc/self does not resolve");
    check_eq!(kv.get("me").cloned().unwrap_or_default(), "1", "pid of the program in the /proc view");
    Ok(Verdict::Pass)
}

fn mounts_sysfs(c: &mut Ctx) -> R {
    let (l, out) = expect_type(c, "/sys", "sysfs", "[ -d /sys/kernel ] && echo kernel=yes")?;
    check!(l.has_opt("ro"), "/sys is mounted {} although the config says ro", l.mount_opts.join(","));
    check!(out.contains("kernel=yes"), "/sys/kernel is missing");
    Ok(Verdict::Pass)
}

fn mounts_devpts(c: &mut Ctx) -> R {
    let (l, _) = expect_type(c, "/dev/pts", "devpts", "")?;
    check!(l.has_super("ptmxmode=666") || l.has_super("ptmxmode=0666"), "/dev/pts options {:?} lack ptmxmode=0666", l.super_opts.join(","));
    // A new instance: the host's ptys are not visible.
    Ok(Verdict::Pass)
}

fn mounts_shm(c: &mut Ctx) -> R {
    let (l, _) = expect_type(c, "/dev/shm", "tmpfs", "")?;
    for o in ["nosuid", "noexec", "nodev"] {
        check!(l.has_opt(o), "/dev/shm lacks {o}: {}", l.mount_opts.join(","));
    }
    Ok(Verdict::Pass)
}

fn mounts_mqueue(c: &mut Ctx) -> R {
    expect_type(c, "/dev/mqueue", "mqueue", "")?;
    Ok(Verdict::Pass)
}

fn mounts_cgroup(c: &mut Ctx) -> R {
    let (m, out) = mount_lines(
        c,
        "echo BEGIN ls; ls /sys/fs/cgroup; echo END ls; d=/sys/fs/cgroup/memory; [ -d $d ] || d=/sys/fs/cgroup; \
         mkdir $d/conformance-probe 2>/dev/null && { rmdir $d/conformance-probe; echo write=ok; } || echo write=failed",
    )?;
    let under: Vec<&super::MountLine> =
        m.iter().filter(|l| l.mount_point == "/sys/fs/cgroup" || l.mount_point.starts_with("/sys/fs/cgroup/")).collect();
    check!(!under.is_empty(), "nothing mounted at /sys/fs/cgroup");
    let ls = section(&out, "ls");
    if c.host.cgroups.v1.contains_key("memory") {
        check!(ls.lines().any(|l| l.split(',').any(|x| x == "memory")), "no memory controller in /sys/fs/cgroup: {:?}", cut(ls, 150));
        let mem = m
            .iter()
            .find(|l| l.mount_point.starts_with("/sys/fs/cgroup/") && l.fstype == "cgroup" && l.super_opts.iter().any(|o| o == "memory"));
        check!(mem.is_some(), "no cgroup mount of the memory controller under /sys/fs/cgroup");
    } else {
        check!(ls.contains("cgroup.controllers"), "no cgroup.controllers in /sys/fs/cgroup");
    }
    for l in under.iter().filter(|l| l.fstype.starts_with("cgroup")) {
        check!(l.has_opt("ro"), "{} is mounted {} although the config says ro", l.mount_point, l.mount_opts.join(","));
    }
    check_eq!(kv(&out).get("write").cloned().unwrap_or_default(), "failed", "making a cgroup under /sys/fs/cgroup");
    Ok(Verdict::Pass)
}

fn mount_propagation(c: &mut Ctx, opt: &str, want: &str) -> R {
    let d = host_dir(c, "prop-src")?;
    add_mount(c, json!({"destination": "/mnt/p", "type": "bind", "source": d.to_string_lossy(), "options": ["rbind", opt]}));
    let (m, _) = mount_lines(c, "")?;
    let p = mount_at(&m, "/mnt/p").ok_or_else(|| Verdict::Fail("nothing mounted at /mnt/p".into()))?;
    check_eq!(p.propagation(), want, "propagation of /mnt/p (optional fields {:?})", p.optional.join(" "));
    Ok(Verdict::Pass)
}

fn mounts_symlink(c: &mut Ctx) -> R {
    // rootfs/escape -> <case dir>/outside: absolute, so the runtime must
    // resolve it inside the rootfs (CVE-2021-30465 and friends).
    let outside = c.dir.join("outside");
    fs::create_dir_all(&outside).map_err(ferr)?;
    // The same path inside the rootfs, so that no runtime has to create
    // directories through the symlink.
    fs::create_dir_all(c.rootfs.join(outside.strip_prefix("/").unwrap_or(&outside)).join("m")).map_err(ferr)?;
    std::os::unix::fs::symlink(&outside, c.rootfs.join("escape")).map_err(ferr)?;
    add_mount(c, json!({"destination": "/escape/m", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}));
    let inside = format!("{}/m", outside.display());
    let (m, _) = mount_lines(c, "")?;
    check!(
        mount_at(&m, &inside).is_some(),
        "the tmpfs is not at {inside} inside the container (mounts: {})",
        m.iter()
            .map(|l| l.mount_point.as_str())
            .filter(|p| p.starts_with("/tmp") || p.starts_with("/escape"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    check!(
        c.rootfs.join(outside.strip_prefix("/").unwrap_or(&outside)).join("m").exists(),
        "the mount point was not made inside the rootfs"
    );
    Ok(Verdict::Pass)
}

fn rootfs_prop(c: &mut Ctx, prop: &str) -> R {
    // As runtime-tools' runtimetest: with CAP_SYS_ADMIN, bind / recursively
    // to /target, then mount a tmpfs under /: it shows in /target only if /
    // is shared; binding / fails if it is unbindable.
    c.config["linux"]["rootfsPropagation"] = json!(prop);
    // The rootfs as its own mount point, as an image's overlay would be.
    let r = c.rootfs.clone();
    c.host_bind_self(&r)?;
    if prop == "unbindable" {
        // Nothing can be bind-mounted from under an unbindable tree.
        c.config.remove_mount("/shared");
    }
    for set in ["bounding", "effective", "permitted"] {
        if let Some(a) = c.config["process"]["capabilities"][set].as_array_mut() {
            a.push(json!("CAP_SYS_ADMIN"));
        }
    }
    let (m, out) = mount_lines(
        c,
        "mkdir -p /target /mnt/src; if mount --rbind / /target 2>/tmp/err; then echo bind=ok; else echo bind=failed:$(cat /tmp/err); fi; \
         mount -t tmpfs t /mnt/src && touch /mnt/src/marker; [ -e /target/mnt/src/marker ] && echo propagated=yes || echo propagated=no",
    )?;
    let root = mount_at(&m, "/").ok_or_else(|| Verdict::Fail("no / in mountinfo".into()))?;
    let got = root.propagation();
    let kv = kv(&out);
    let bind = kv.get("bind").cloned().unwrap_or_default();
    let propagated = kv.get("propagated").cloned().unwrap_or_default();
    match prop {
        "unbindable" if bind == "ok" && got == "private" => {
            return Ok(Verdict::PassAs(
                Rule::Runc,
                "applied to the mount namespace before pivot_root; the container's / is private".into(),
            ));
        }
        "unbindable" => {
            check!(bind != "ok", "bind mounting / succeeded: / is not unbindable (it is {got})");
            return Ok(Verdict::PassAs(Rule::Spec, "/ is unbindable".into()));
        }
        "shared" if got == "private" && propagated == "no" => {
            return Ok(Verdict::PassAs(
                Rule::Runc,
                "applied to the mount namespace before pivot_root; the container's / is private".into(),
            ));
        }
        "shared" => {
            check!(got.starts_with("shared"), "/ is {got} (optional fields {:?}), want shared", root.optional.join(" "));
            check_eq!(propagated.as_str(), "yes", "a mount under / propagated to a bind of / made before it");
            return Ok(Verdict::PassAs(Rule::Spec, "/ is shared".into()));
        }
        _ => {
            check!(bind == "ok", "bind mounting / failed: {bind}");
            check!(!got.starts_with("shared"), "/ is {got} (optional fields {:?}), want {prop}", root.optional.join(" "));
            if prop == "private" {
                check!(got == "private", "/ is {got}, want private");
            }
            check_eq!(propagated.as_str(), "no", "a mount under / propagated to a bind of / made before it");
        }
    }
    Ok(Verdict::Pass)
}

fn masked(c: &mut Ctx) -> R {
    fs::create_dir_all(c.rootfs.join("masked-dir")).map_err(ferr)?;
    fs::write(c.rootfs.join("masked-dir/secret"), "secret\n").map_err(ferr)?;
    fs::write(c.rootfs.join("masked-file"), "secret\n").map_err(ferr)?;
    c.config.push("linux/maskedPaths", json!("/masked-dir"));
    c.config.push("linux/maskedPaths", json!("/masked-file"));
    let out = c.run_kv("echo dir=$(ls -A /masked-dir | wc -l); echo file=$(cat /masked-file | wc -c); echo kcore=$(head -c 16 /proc/kcore 2>/dev/null | wc -c)")?;
    check_eq!(out.get("dir").cloned().unwrap_or_default(), "0", "entries in the masked directory");
    check_eq!(out.get("file").cloned().unwrap_or_default(), "0", "bytes read from the masked file");
    check_eq!(out.get("kcore").cloned().unwrap_or_default(), "0", "bytes read from the masked /proc/kcore");
    Ok(Verdict::Pass)
}

fn readonly(c: &mut Ctx) -> R {
    fs::create_dir_all(c.rootfs.join("ro-dir")).map_err(ferr)?;
    fs::write(c.rootfs.join("ro-dir/f"), "data\n").map_err(ferr)?;
    fs::write(c.rootfs.join("ro-file"), "data\n").map_err(ferr)?;
    c.config.push("linux/readonlyPaths", json!("/ro-dir"));
    c.config.push("linux/readonlyPaths", json!("/ro-file"));
    let out = c.run_kv(
        "echo readdir=$(cat /ro-dir/f); echo readfile=$(cat /ro-file); \
         touch /ro-dir/new 2>/dev/null && echo writedir=ok || echo writedir=failed; \
         (echo x >> /ro-file) 2>/dev/null && echo writefile=ok || echo writefile=failed",
    )?;
    check_eq!(out.get("readdir").cloned().unwrap_or_default(), "data", "read in the read-only directory");
    check_eq!(out.get("readfile").cloned().unwrap_or_default(), "data", "read of the read-only file");
    check_eq!(out.get("writedir").cloned().unwrap_or_default(), "failed", "write in the read-only directory");
    check_eq!(out.get("writefile").cloned().unwrap_or_default(), "failed", "write to the read-only file");
    Ok(Verdict::Pass)
}

fn readonly_proc_sys(c: &mut Ctx) -> R {
    let out = c.run_kv("echo read=$(cat /proc/sys/kernel/ostype); (echo conformance > /proc/sys/kernel/hostname) 2>/dev/null && echo write=ok || echo write=failed")?;
    check_eq!(out.get("read").cloned().unwrap_or_default(), "Linux", "read of /proc/sys/kernel/ostype");
    check_eq!(out.get("write").cloned().unwrap_or_default(), "failed", "write to /proc/sys");
    Ok(Verdict::Pass)
}

fn devices_default(c: &mut Ctx) -> R {
    let devs = [("null", "1:3"), ("zero", "1:5"), ("full", "1:7"), ("random", "1:8"), ("urandom", "1:9"), ("tty", "5:0")];
    let mut s = String::new();
    for (d, _) in devs {
        s.push_str(&format!("echo {d}=$(stat -c '%F %t:%T' /dev/{d}); "));
    }
    s.push_str("echo x > /dev/null && echo nullw=ok; echo zeroread=$(head -c 4 /dev/zero | wc -c); (echo x > /dev/full) 2>/dev/null || echo fullw=enospc; echo urandomread=$(head -c 8 /dev/urandom | wc -c)");
    let out = c.run_kv(&s)?;
    for (d, mm) in devs {
        let (maj, min) = mm.split_once(':').unwrap_or(("0", "0"));
        let want = format!("character special file {:x}:{:x}", maj.parse::<u32>().unwrap_or(0), min.parse::<u32>().unwrap_or(0));
        check_eq!(out.get(d).cloned().unwrap_or_default(), want, "/dev/{d}");
    }
    check!(out.contains_key("nullw"), "writing /dev/null failed");
    check_eq!(out.get("zeroread").cloned().unwrap_or_default(), "4", "bytes read from /dev/zero");
    check!(out.contains_key("fullw"), "writing /dev/full did not fail");
    check_eq!(out.get("urandomread").cloned().unwrap_or_default(), "8", "bytes read from /dev/urandom");
    Ok(Verdict::Pass)
}

fn devices_ptmx(c: &mut Ctx) -> R {
    let out =
        c.run_kv("echo link=$(readlink /dev/ptmx); echo dev=$(stat -L -c '%F %t:%T' /dev/ptmx); exec 3<>/dev/ptmx && echo open=ok")?;
    let link = out.get("link").cloned().unwrap_or_default();
    check!(link.is_empty() || link == "pts/ptmx" || link == "/dev/pts/ptmx", "/dev/ptmx links to {link:?}");
    check_eq!(out.get("dev").cloned().unwrap_or_default(), "character special file 5:2", "/dev/ptmx device");
    check!(out.contains_key("open"), "/dev/ptmx does not open");
    Ok(Verdict::Pass)
}

fn devices_symlinks(c: &mut Ctx) -> R {
    let out = c.run_kv("for l in fd stdin stdout stderr; do echo $l=$(readlink /dev/$l); done")?;
    for (l, want) in [("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")] {
        check_eq!(out.get(l).cloned().unwrap_or_default(), want, "/dev/{l}");
    }
    Ok(Verdict::Pass)
}

fn devices_custom(c: &mut Ctx) -> R {
    c.config.push(
        "linux/devices",
        json!({"path": "/dev/conformance-null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o640, "uid": 1000, "gid": 2000}),
    );
    c.config.push("linux/resources/devices", json!({"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}));
    let out = c.run_kv("echo st=$(stat -c '%F %t:%T %a %u:%g' /dev/conformance-null); echo x > /dev/conformance-null && echo write=ok")?;
    check_eq!(out.get("st").cloned().unwrap_or_default(), "character special file 1:3 640 1000:2000", "type, major:minor, mode, owner");
    check!(out.contains_key("write"), "the device cannot be written");
    Ok(Verdict::Pass)
}

fn devices_fifo(c: &mut Ctx) -> R {
    c.config.push("linux/devices", json!({"path": "/dev/conformance-fifo", "type": "p", "fileMode": 0o600}));
    let out = c.run_sh("stat -c '%F %a' /dev/conformance-fifo")?;
    check_eq!(out.trim(), "fifo 600", "type and mode of the fifo");
    Ok(Verdict::Pass)
}

fn devices_block(c: &mut Ctx) -> R {
    c.config.push("linux/devices", json!({"path": "/dev/conformance-blk", "type": "b", "major": 7, "minor": 0, "fileMode": 0o660}));
    let out = c.run_sh("stat -c '%F %t:%T %a' /dev/conformance-blk")?;
    check_eq!(out.trim(), "block special file 7:0 660", "type, major:minor, mode of the block device");
    Ok(Verdict::Pass)
}

/// Open /dev/conformance-blk (b 7:0) for reading; "eperm" when the device
/// cgroup refuses (other errors, e.g. no such device, mean it was allowed).
const OPEN_BLK: &str = "if head -c 0 /dev/conformance-blk 2>/tmp/err; then echo open=ok; \
     elif grep -q 'not permitted' /tmp/err; then echo open=eperm; else echo open=other:$(cat /tmp/err); fi";

fn devices_deny(c: &mut Ctx) -> R {
    c.config.push("linux/devices", json!({"path": "/dev/conformance-blk", "type": "b", "major": 7, "minor": 0, "fileMode": 0o660}));
    let out = c.run_kv(OPEN_BLK)?;
    check_eq!(out.get("open").cloned().unwrap_or_default(), "eperm", "opening a device the cgroup does not allow");
    Ok(Verdict::Pass)
}

fn devices_allow(c: &mut Ctx) -> R {
    need!(
        c.host.cgroups.controller("devices").is_some() || c.host.cgroups.mode == crate::host::CgroupMode::V2,
        "no devices cgroup on this host"
    );
    c.config.push("linux/devices", json!({"path": "/dev/conformance-blk", "type": "b", "major": 7, "minor": 0, "fileMode": 0o660}));
    c.config.push("linux/resources/devices", json!({"allow": true, "type": "b", "major": 7, "minor": 0, "access": "r"}));
    let out = c.run_kv(OPEN_BLK)?;
    let got = out.get("open").cloned().unwrap_or_default();
    check!(got != "eperm" && !got.is_empty(), "opening an allowed device: {got}");
    Ok(Verdict::Pass)
}
