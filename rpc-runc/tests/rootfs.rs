//! Root filesystem, mounts, devices, masked/readonly paths, sysctl,
//! hostname, propagation and --no-pivot, checked from inside the container.
#[macro_use]
mod common;

use common::*;
use serde_json::json;
use std::fs;
use std::os::unix::fs::PermissionsExt;

#[test]
fn hostname_is_set() {
    let mut t = harness!("rf-hostname");
    t.config["hostname"] = json!("test-host-1");
    t.sh("hostname; cat /proc/sys/kernel/hostname");
    assert_eq!(t.run_ok(), "test-host-1\ntest-host-1\n");
}

#[test]
fn domainname_is_set() {
    let mut t = harness!("rf-domainname");
    if is_runc_before_1_2() {
        // runc 1.1 has no domainname support at all (the field is ignored and
        // the container shows "(none)"); the OCI spec has it.
        testkit::skip!("runc < 1.2 ignores `domainname`");
        return;
    }
    t.config["domainname"] = json!("example.org");
    t.args(&["cat", "/proc/sys/kernel/domainname"]);
    assert_eq!(t.run_ok(), "example.org\n");
}

#[test]
fn hostname_does_not_leak_to_host() {
    let mut t = harness!("rf-hostname-host");
    let before = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    t.config["hostname"] = json!("not-the-host");
    t.args(&["hostname"]);
    assert_eq!(t.run_ok(), "not-the-host\n");
    assert_eq!(fs::read_to_string("/proc/sys/kernel/hostname").unwrap(), before);
}

#[test]
fn root_is_the_bundle_rootfs() {
    let mut t = harness!("rf-root");
    write_file(&t.rootfs.join("marker-file"), "in-rootfs\n");
    t.sh("cat /marker-file; ls /");
    let out = t.run_ok();
    assert!(out.starts_with("in-rootfs\n"), "{out}");
    // nothing of the host's / is visible
    assert!(!out.lines().any(|l| l == "usr" || l == "var" || l == "work"), "{out}");
}

#[test]
fn root_path_absolute() {
    let mut t = harness!("rf-root-abs");
    write_file(&t.rootfs.join("marker-file"), "abs\n");
    t.config["root"]["path"] = json!(t.rootfs.to_str().unwrap());
    t.args(&["cat", "/marker-file"]);
    assert_eq!(t.run_ok(), "abs\n");
}

#[test]
fn tmpfs_mount_with_options() {
    let mut t = harness!("rf-tmpfs");
    t.add_mount(json!({
        "destination": "/data", "type": "tmpfs", "source": "tmpfs",
        "options": ["nosuid", "nodev", "size=1m", "mode=1777"]
    }));
    t.add_mount(json!({
        "destination": "/data2", "type": "tmpfs", "source": "tmpfs",
        "options": ["noexec", "ro", "size=256k", "mode=0710", "uid=1000", "gid=2000"]
    }));
    t.sh("cat /proc/self/mounts; echo ---; stat -c '%a %u:%g' /data /data2; touch /data/x && echo writable; \
          if touch /data2/x 2>/dev/null; then echo WROTE; else echo ro; fi");
    let out = t.run_ok();
    let (mounts, rest) = out.split_once("---\n").unwrap();
    let check = |target: &str, want: &[&str], not: &[&str]| {
        let line = mount_lines(mounts, target);
        assert_eq!(line.len(), 1, "{mounts}");
        let f: Vec<&str> = line[0].split_whitespace().collect();
        assert_eq!(f[2], "tmpfs");
        let opts: Vec<&str> = f[3].split(',').collect();
        for o in want {
            assert!(opts.contains(o), "option {o} missing in {line:?}");
        }
        for o in not {
            assert!(!opts.contains(o), "option {o} present in {line:?}");
        }
    };
    // the kernel does not list mode= when it is tmpfs' default 1777
    check("/data", &["rw", "nosuid", "nodev", "size=1024k"], &["noexec"]);
    check("/data2", &["ro", "noexec", "size=256k", "mode=710", "uid=1000", "gid=2000"], &["nosuid"]);
    assert_eq!(rest, "1777 0:0\n710 1000:2000\nwritable\nro\n");
}

#[test]
fn ro_bind_mount_of_a_host_dir() {
    let mut t = harness!("rf-bind-ro");
    let src = t.dir.join("hostdata");
    write_file(&src.join("hello.txt"), "hello from host\n");
    t.add_mount(json!({
        "destination": "/hostdata", "type": "bind", "source": src.to_str().unwrap(),
        "options": ["rbind", "ro"]
    }));
    t.sh("cat /hostdata/hello.txt; if touch /hostdata/new 2>/dev/null; then echo WROTE; else echo denied; fi; \
          grep ' /hostdata ' /proc/self/mounts");
    let out = t.run_ok();
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l[0], "hello from host", "{out}");
    assert_eq!(l[1], "denied", "{out}");
    let opts: Vec<&str> = l[2].split_whitespace().nth(3).unwrap().split(',').collect();
    assert!(opts.contains(&"ro"), "{out}");
    assert!(!src.join("new").exists());
}

#[test]
fn rw_bind_mount_writes_reach_the_host() {
    let mut t = harness!("rf-bind-rw");
    t.share().sh("echo from-container > /shared/f");
    t.run_ok();
    assert_eq!(t.shared_file("f"), "from-container\n");
}

#[test]
fn bind_mount_with_nosuid_nodev_noexec() {
    let mut t = harness!("rf-bind-flags");
    let src = t.dir.join("flagged");
    fs::create_dir_all(&src).unwrap();
    fs::copy("/bin/busybox", src.join("bb")).unwrap();
    t.add_mount(json!({
        "destination": "/flagged", "type": "bind", "source": src.to_str().unwrap(),
        "options": ["bind", "nosuid", "nodev", "noexec"]
    }));
    t.sh("grep ' /flagged ' /proc/self/mounts; if /flagged/bb true 2>/dev/null; then echo EXECUTED; else echo noexec-ok; fi");
    let out = t.run_ok();
    let l: Vec<&str> = out.lines().collect();
    let opts: Vec<&str> = l[0].split_whitespace().nth(3).unwrap().split(',').collect();
    for o in ["nosuid", "nodev", "noexec"] {
        assert!(opts.contains(&o), "{o} missing: {out}");
    }
    assert_eq!(l[1], "noexec-ok");
}

#[test]
fn bind_mount_of_a_file() {
    let mut t = harness!("rf-bind-file");
    let src = t.dir.join("host-file.conf");
    write_file(&src, "file-content\n");
    t.add_mount(json!({
        "destination": "/etc/app/app.conf", "type": "bind", "source": src.to_str().unwrap(),
        "options": ["bind", "ro"]
    }));
    t.sh("cat /etc/app/app.conf; stat -c %F /etc/app/app.conf");
    assert_eq!(t.run_ok(), "file-content\nregular file\n");
}

#[test]
fn mounts_are_in_config_order() {
    // a later mount on top of an earlier one wins
    let mut t = harness!("rf-mount-order");
    let a = t.dir.join("a");
    let b = t.dir.join("b");
    write_file(&a.join("who"), "a\n");
    write_file(&b.join("who"), "b\n");
    t.add_mount(json!({"destination": "/m", "type": "bind", "source": a.to_str().unwrap(), "options": ["bind"]}));
    t.add_mount(json!({"destination": "/m", "type": "bind", "source": b.to_str().unwrap(), "options": ["bind"]}));
    t.args(&["cat", "/m/who"]);
    assert_eq!(t.run_ok(), "b\n");
}

#[test]
fn mount_destination_is_created() {
    let mut t = harness!("rf-mount-mkdir");
    t.add_mount(json!({"destination": "/deep/new/dir", "type": "tmpfs", "source": "tmpfs", "options": ["size=64k"]}));
    t.sh("stat -c %F /deep/new/dir; grep -c ' /deep/new/dir tmpfs ' /proc/self/mounts");
    assert_eq!(t.run_ok(), "directory\n1\n");
}

#[test]
fn standard_mounts_are_present() {
    let mut t = harness!("rf-std-mounts");
    t.args(&["cat", "/proc/self/mounts"]);
    let m = t.run_ok();
    let fstype = |p: &str| mount_lines(&m, p).last().map(|l| l.split_whitespace().nth(2).unwrap().to_string());
    assert_eq!(fstype("/proc").as_deref(), Some("proc"), "{m}");
    assert_eq!(fstype("/dev").as_deref(), Some("tmpfs"), "{m}");
    assert_eq!(fstype("/dev/pts").as_deref(), Some("devpts"), "{m}");
    assert_eq!(fstype("/dev/shm").as_deref(), Some("tmpfs"), "{m}");
    assert_eq!(fstype("/dev/mqueue").as_deref(), Some("mqueue"), "{m}");
    assert_eq!(fstype("/sys").as_deref(), Some("sysfs"), "{m}");
    assert!(m.lines().any(|l| l.split_whitespace().nth(1).map(|p| p.starts_with("/sys/fs/cgroup")) == Some(true)), "no cgroup mount: {m}");
    let sys = mount_options(&m, "/sys").unwrap();
    assert!(sys.contains(&"ro".to_string()), "/sys not ro: {sys:?}");
    let devpts = mount_options(&m, "/dev/pts").unwrap();
    for o in ["nosuid", "noexec", "gid=5", "mode=620", "ptmxmode=666"] {
        assert!(devpts.contains(&o.to_string()), "devpts {o}: {devpts:?}");
    }
    let shm = mount_options(&m, "/dev/shm").unwrap();
    for o in ["nosuid", "nodev", "noexec", "size=65536k"] {
        assert!(shm.contains(&o.to_string()), "shm {o}: {shm:?}");
    }
}

#[test]
fn proc_is_for_the_container_pid_namespace() {
    let mut t = harness!("rf-proc-pidns");
    t.sh("ls -d /proc/[0-9]* | wc -l; readlink /proc/self/exe");
    let out = t.run_ok();
    let l: Vec<&str> = out.lines().collect();
    // sh, ls and wc (and maybe a subshell): a handful, not the host's processes
    let n: usize = l[0].trim().parse().unwrap();
    assert!(n <= 5, "{n} processes visible in /proc: {out}");
    assert_eq!(l[1], "/bin/busybox");
}

#[test]
fn readonly_root() {
    let mut t = harness!("rf-readonly");
    t.config["root"]["readonly"] = json!(true);
    t.add_mount(json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}));
    t.sh("if touch /newfile 2>/dev/null; then echo WROTE-ROOT; else echo root-ro; fi; \
          touch /tmp/ok && echo tmp-rw; echo x > /dev/shm/y && echo shm-rw; \
          grep -E '^[^ ]+ / ' /proc/self/mounts | tail -1");
    let out = t.run_ok();
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(&l[..3], ["root-ro", "tmp-rw", "shm-rw"], "{out}");
    let opts: Vec<&str> = l[3].split_whitespace().nth(3).unwrap().split(',').collect();
    assert!(opts.contains(&"ro"), "{out}");
    assert!(!t.rootfs.join("newfile").exists());
}

#[test]
fn writable_root_by_default_here() {
    let mut t = harness!("rf-writable");
    t.sh("echo hi > /newfile && cat /newfile");
    assert_eq!(t.run_ok(), "hi\n");
    assert_eq!(fs::read_to_string(t.rootfs.join("newfile")).unwrap(), "hi\n");
}

#[test]
fn default_devices_are_char_devices() {
    let mut t = harness!("rf-devices");
    t.sh("for d in null zero full random urandom tty; do stat -c '%n %F %t:%T %a' /dev/$d; done");
    let out = t.run_ok();
    let want = [
        "/dev/null character special file 1:3 666",
        "/dev/zero character special file 1:5 666",
        "/dev/full character special file 1:7 666",
        "/dev/random character special file 1:8 666",
        "/dev/urandom character special file 1:9 666",
        "/dev/tty character special file 5:0 666",
    ];
    assert_eq!(out.lines().collect::<Vec<_>>(), want, "{out}");
}

#[test]
fn default_devices_are_usable() {
    // the device cgroup denies everything but the default devices
    let mut t = harness!("rf-devices-use");
    t.sh("echo x > /dev/null && echo null-ok; head -c 4 /dev/zero | od -An -tx1 | tr -d ' '; \
          head -c 16 /dev/urandom | wc -c; if echo x > /dev/full 2>/dev/null; then echo FULL-WROTE; else echo full-enospc; fi");
    assert_eq!(t.run_ok(), "null-ok\n00000000\n16\nfull-enospc\n");
}

#[test]
fn dev_links_and_dirs() {
    let mut t = harness!("rf-dev-links");
    t.sh("for l in fd stdin stdout stderr; do readlink /dev/$l; done; \
          stat -c %F /dev/pts /dev/shm; test -e /dev/ptmx && echo ptmx; test -c /dev/pts/ptmx && echo pts-ptmx");
    let out = t.run_ok();
    assert_eq!(out, "/proc/self/fd\n/proc/self/fd/0\n/proc/self/fd/1\n/proc/self/fd/2\ndirectory\ndirectory\nptmx\npts-ptmx\n");
}

#[test]
fn dev_has_only_the_expected_entries() {
    // no host devices leak into the /dev tmpfs
    let mut t = harness!("rf-dev-list");
    t.sh("ls /dev");
    let out = t.run_ok();
    let mut got: Vec<&str> = out.lines().collect();
    got.sort();
    let mut allowed = vec![
        "console", "core", "fd", "full", "mqueue", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout", "tty", "urandom",
        "zero",
    ];
    allowed.sort();
    for g in &got {
        assert!(allowed.contains(g), "unexpected /dev entry {g}: {got:?}");
    }
    for must in ["fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout", "tty", "urandom", "zero"] {
        assert!(got.contains(&must), "/dev/{must} missing: {got:?}");
    }
}

#[test]
fn linux_devices_adds_a_node() {
    let mut t = harness!("rf-linux-devices");
    t.config["linux"]["devices"] = json!([{
        "path": "/dev/mynull", "type": "c", "major": 1, "minor": 3,
        "fileMode": 0o666, "uid": 1000, "gid": 2000
    }]);
    t.sh("stat -c '%F %t:%T %a %u:%g' /dev/mynull; echo data > /dev/mynull && echo write-ok");
    assert_eq!(t.run_ok(), "character special file 1:3 666 1000:2000\nwrite-ok\n");
}

#[test]
fn linux_devices_file_mode() {
    let mut t = harness!("rf-linux-devmode");
    t.config["linux"]["devices"] = json!([{
        "path": "/dev/myzero", "type": "c", "major": 1, "minor": 5, "fileMode": 0o640, "uid": 0, "gid": 0
    }]);
    t.sh("stat -c '%F %t:%T %a %u:%g' /dev/myzero; head -c 2 /dev/myzero | wc -c");
    assert_eq!(t.run_ok(), "character special file 1:5 640 0:0\n2\n");
}

#[test]
fn devices_in_the_images_setgid_dev_get_the_ids_and_mode_asked_for() {
    // No /dev tmpfs: nodes are made in the image's /dev, here setgid and
    // group 2000, which a bare mknod would pass on to them.
    let mut t = harness!("rf-setgid-dev");
    t.config["mounts"].as_array_mut().unwrap().retain(|m| m["destination"] != "/dev");
    let dev = t.rootfs.join("dev");
    std::os::unix::fs::chown(&dev, Some(0), Some(2000)).unwrap();
    std::fs::set_permissions(&dev, std::os::unix::fs::PermissionsExt::from_mode(0o2755)).unwrap();
    t.config["linux"]["devices"] = json!([{
        "path": "/dev/myzero", "type": "c", "major": 1, "minor": 5, "fileMode": 0o640, "uid": 0, "gid": 0
    }]);
    t.sh("stat -c '%n %a %u:%g' /dev/myzero /dev/null");
    assert_eq!(t.run_ok(), "/dev/myzero 640 0:0\n/dev/null 666 0:0\n");
}

#[test]
fn a_mount_over_the_root_itself_gets_the_later_mounts_and_devices() {
    // The first mount covers the rootfs's "/": what follows (proc, the
    // /dev tmpfs, device nodes) must land on it, not on what it covers.
    let mut t = harness!("rf-mount-over-root");
    let alt = t.dir.join("alt-rootfs");
    make_rootfs(&alt);
    std::fs::write(alt.join("marker"), "alt\n").unwrap();
    let over = json!({"destination": "/", "type": "bind", "source": alt.to_str().unwrap(), "options": ["rbind", "rw"]});
    t.config["mounts"].as_array_mut().unwrap().insert(0, over);
    t.sh("cat /marker; test -c /dev/null && echo null-ok; test -e /proc/self/status && echo proc-ok");
    assert_eq!(t.run_ok(), "alt\nnull-ok\nproc-ok\n");
}

#[test]
fn device_cgroup_denies_an_unlisted_device() {
    // a node for 1:1 (/dev/mem) made by linux.devices but not allowed in
    // linux.resources.devices cannot be opened
    let mut t = harness!("rf-devcg-deny");
    t.config["linux"]["devices"] = json!([{
        "path": "/dev/mymem", "type": "c", "major": 1, "minor": 1, "fileMode": 0o600
    }]);
    t.sh("if head -c 1 /dev/mymem >/dev/null 2>&1; then echo OPENED; else echo denied; fi");
    assert_eq!(t.run_ok(), "denied\n");
}

#[test]
fn masked_file_reads_empty() {
    let mut t = harness!("rf-masked-file");
    // /proc/kcore does not exist on this kernel; /proc/timer_list does
    t.sh("wc -c < /proc/timer_list; wc -c < /proc/keys");
    assert_eq!(t.run_ok(), "0\n0\n");
}

#[test]
fn masked_dir_is_empty() {
    let mut t = harness!("rf-masked-dir");
    assert!(fs::read_dir("/sys/firmware").map(|d| d.count()).unwrap_or(0) > 0, "host /sys/firmware empty");
    t.sh("ls -A /sys/firmware | wc -l; if touch /sys/firmware/x 2>/dev/null; then echo WROTE; else echo ro; fi");
    assert_eq!(t.run_ok(), "0\nro\n");
}

#[test]
fn masked_custom_paths() {
    let mut t = harness!("rf-masked-custom");
    write_file(&t.rootfs.join("secret-dir/inner.txt"), "top secret\n");
    write_file(&t.rootfs.join("etc/secret.txt"), "also secret\n");
    t.config["linux"]["maskedPaths"] = json!(["/secret-dir", "/etc/secret.txt", "/does-not-exist"]);
    t.sh("ls -A /secret-dir | wc -l; wc -c < /etc/secret.txt; test -e /does-not-exist || echo absent");
    assert_eq!(t.run_ok(), "0\n0\nabsent\n");
}

#[test]
fn readonly_proc_sys() {
    let mut t = harness!("rf-ro-procsys");
    // in a new UTS namespace /proc/sys/kernel/hostname would be writable
    t.sh("if echo other > /proc/sys/kernel/hostname 2>/dev/null; then echo WROTE; else echo ro; fi; hostname; \
          grep ' /proc/sys ' /proc/self/mounts");
    let out = t.run_ok();
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(&l[..2], ["ro", "runc"], "{out}");
    let opts: Vec<&str> = l[2].split_whitespace().nth(3).unwrap().split(',').collect();
    assert!(opts.contains(&"ro"), "{out}");
}

#[test]
fn readonly_custom_paths() {
    let mut t = harness!("rf-ro-custom");
    write_file(&t.rootfs.join("rodir/existing"), "keep\n");
    t.config["linux"]["readonlyPaths"] = json!(["/rodir"]);
    t.sh("cat /rodir/existing; if touch /rodir/new 2>/dev/null; then echo WROTE; else echo ro; fi; touch /rwfile && echo root-rw");
    assert_eq!(t.run_ok(), "keep\nro\nroot-rw\n");
}

#[test]
fn sysctl_in_a_new_net_namespace() {
    let mut t = harness!("rf-sysctl-net");
    let host = fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let want = if host.trim() == "1" { "0" } else { "1" };
    t.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": want});
    t.args(&["cat", "/proc/sys/net/ipv4/ip_forward"]);
    assert_eq!(t.run_ok(), format!("{want}\n"));
    assert_eq!(fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(), host, "host sysctl changed");
}

#[test]
fn sysctl_ipc_namespace() {
    let mut t = harness!("rf-sysctl-ipc");
    t.config["linux"]["sysctl"] = json!({"kernel.msgmax": "12345", "kernel.shmmni": "1234"});
    t.sh("cat /proc/sys/kernel/msgmax /proc/sys/kernel/shmmni");
    assert_eq!(t.run_ok(), "12345\n1234\n");
}

fn root_mountinfo_line(mi: &str) -> String {
    mi.lines().rfind(|l| l.split_whitespace().nth(4) == Some("/")).unwrap_or_else(|| panic!("no / in mountinfo: {mi}")).to_string()
}

/// Optional fields (between the mount options and the " - " separator).
fn propagation_tags(line: &str) -> Vec<String> {
    let pre = line.split(" - ").next().unwrap();
    pre.split_whitespace().skip(6).map(|s| s.to_string()).collect()
}

#[test]
fn rootfs_propagation_shared() {
    let mut t = harness!("rf-prop-shared");
    if is_reference_runc() {
        // runc 1.1.5 applies rootfsPropagation to the container's copy of the
        // host "/" *before* it makes the rootfs' parent mount private (needed
        // for pivot_root) and bind-mounts the rootfs, so with "shared" the
        // container's / ends up private (prepareRoot in rootfs_linux.go).
        // The OCI spec says the value sets the rootfs' propagation.
        testkit::skip!("runc 1.1 leaves / private for \"shared\"");
        return;
    }
    t.config["linux"]["rootfsPropagation"] = json!("shared");
    t.args(&["cat", "/proc/self/mountinfo"]);
    let line = root_mountinfo_line(&t.run_ok());
    let tags = propagation_tags(&line);
    assert!(tags.iter().any(|t| t.starts_with("shared:")), "/ is not shared: {line}");
}

/// Run the container from a private mount namespace of our own (`unshare -m`)
/// in which the bundle dir is a shared mount, so the propagation of the
/// container's / is observable (the host's mounts are all private here, so
/// without this a slave would look private). The host is untouched.
fn run_from_shared_bundle(t: &Harness) -> Out {
    t.write_config();
    t.track(&t.id);
    let script = format!(
        "mount --bind {b} {b} && mount --make-shared {b} && exec \"$0\" --root {r} run --bundle {b} {id}",
        b = t.bundle_str(),
        r = t.root.to_str().unwrap(),
        id = t.id
    );
    let mut c = std::process::Command::new("unshare");
    c.args(["-m", "--propagation", "private", "sh", "-c", &script]);
    c.arg(runtime_path());
    c.stdin(std::process::Stdio::null());
    t.exec(c, CMD_TIMEOUT)
}

#[test]
fn rootfs_propagation_private() {
    let mut t = harness!("rf-prop-private");
    t.config["linux"]["rootfsPropagation"] = json!("private");
    t.args(&["cat", "/proc/self/mountinfo"]);
    let o = run_from_shared_bundle(&t);
    assert!(o.ok(), "{}", o.describe());
    let line = root_mountinfo_line(&o.stdout);
    assert!(propagation_tags(&line).is_empty(), "/ is not private: {line}");
}

#[test]
fn rootfs_propagation_slave() {
    let mut t = harness!("rf-prop-slave");
    t.config["linux"]["rootfsPropagation"] = json!("rslave");
    t.args(&["cat", "/proc/self/mountinfo"]);
    let o = run_from_shared_bundle(&t);
    assert!(o.ok(), "{}", o.describe());
    let line = root_mountinfo_line(&o.stdout);
    let tags = propagation_tags(&line);
    assert!(tags.iter().any(|t| t.starts_with("master:")), "/ is not a slave: {line}");
    assert!(!tags.iter().any(|t| t.starts_with("shared:")), "/ is shared: {line}");
}

#[test]
fn rootfs_propagation_default_is_rslave() {
    // runc's default when rootfsPropagation is unset: rslave
    let mut t = harness!("rf-prop-default");
    t.args(&["cat", "/proc/self/mountinfo"]);
    let o = run_from_shared_bundle(&t);
    assert!(o.ok(), "{}", o.describe());
    let line = root_mountinfo_line(&o.stdout);
    assert!(propagation_tags(&line).iter().any(|t| t.starts_with("master:")), "/ is not a slave: {line}");
}

#[test]
fn host_mounts_under_a_slave_rootfs_propagate_in() {
    // with the default rslave, a mount made on the host side under the bundle
    // rootfs after the container started shows up inside it
    let mut t = harness!("rf-prop-into");
    let sub = t.rootfs.join("late");
    std::fs::create_dir_all(&sub).unwrap();
    let src = t.dir.join("late-src");
    write_file(&src.join("file"), "late-mount\n");
    t.share().sh("while [ ! -e /shared/go ]; do sleep 0.05; done; cat /late/file 2>&1");
    t.write_config();
    t.track(&t.id);
    let script = format!(
        "mount --bind {b} {b} && mount --make-shared {b} && \
         ( \"$0\" --root {r} run --bundle {b} {id} > {out} 2>&1 & ) ; \
         i=0; while ! \"$0\" --root {r} state {id} 2>/dev/null | grep -q running; do sleep 0.05; i=$((i+1)); [ $i -gt 200 ] && exit 9; done; \
         mount --bind {src} {sub} && touch {shared}/go; \
         i=0; while \"$0\" --root {r} state {id} 2>/dev/null | grep -q running; do sleep 0.05; i=$((i+1)); [ $i -gt 200 ] && exit 8; done; exit 0",
        b = t.bundle_str(),
        r = t.root.to_str().unwrap(),
        id = t.id,
        out = t.dir.join("late.out").display(),
        src = src.display(),
        sub = sub.display(),
        shared = t.shared.display(),
    );
    let mut c = std::process::Command::new("unshare");
    c.args(["-m", "--propagation", "private", "sh", "-c", &script]);
    c.arg(runtime_path());
    c.stdin(std::process::Stdio::null());
    let o = t.exec(c, CMD_TIMEOUT);
    assert!(o.ok(), "{}", o.describe());
    let out = std::fs::read_to_string(t.dir.join("late.out")).unwrap_or_default();
    assert_eq!(out, "late-mount\n");
}

#[test]
fn no_pivot() {
    let mut t = harness!("rf-no-pivot");
    write_file(&t.rootfs.join("marker-file"), "no-pivot-root\n");
    t.sh("cat /marker-file; ls /; echo ---; cat /proc/self/mounts");
    let o = t.run_with(&["--no-pivot"]);
    assert!(o.ok(), "{}", o.describe());
    let (top, _mounts) = o.stdout.split_once("---\n").unwrap();
    assert!(top.starts_with("no-pivot-root\n"), "{}", o.stdout);
    assert!(!top.lines().any(|l| l == "usr" || l == "work"), "host / visible: {top}");
}

#[test]
fn no_pivot_create_start() {
    let mut t = harness!("rf-no-pivot-create");
    t.share().sh("cat /marker-file > /shared/out");
    write_file(&t.rootfs.join("marker-file"), "np\n");
    t.create_id(&t.id.clone(), &["--no-pivot"]).assert_ok();
    t.start().assert_ok();
    assert!(wait_until(std::time::Duration::from_secs(10), || t.shared_file("out") == "np\n"));
}

#[test]
fn rootfs_mode_and_ownership_kept() {
    let mut t = harness!("rf-perms");
    fs::create_dir_all(t.rootfs.join("srv")).unwrap();
    fs::set_permissions(t.rootfs.join("srv"), fs::Permissions::from_mode(0o750)).unwrap();
    std::os::unix::fs::chown(t.rootfs.join("srv"), Some(1000), Some(2000)).unwrap();
    t.args(&["stat", "-c", "%a %u %g", "/srv"]);
    assert_eq!(t.run_ok(), "750 1000 2000\n");
}
