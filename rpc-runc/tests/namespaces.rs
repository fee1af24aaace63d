//! Namespaces: new ones differ from the host's, joined ones are shared, user
//! namespace mappings, cgroup and time namespaces.
#[macro_use]
mod common;

use common::*;
use serde_json::json;

/// Run a container that prints `readlink /proc/self/ns/KIND` and compare it
/// with the test process' own namespace.
fn ns_inside(t: &mut Harness, kind: &str) -> String {
    t.args(&["readlink", &format!("/proc/self/ns/{kind}")]);
    let out = t.run_ok();
    let v = out.trim().to_string();
    assert!(v.starts_with(&format!("{kind}:[")), "unexpected readlink output {out:?}");
    v
}

fn new_ns_differs(name: &str, spec_type: &str, kind: &str) {
    let mut t = harness!(name);
    t.set_namespace(json!({"type": spec_type}));
    let inside = ns_inside(&mut t, kind);
    let host = host_ns(kind);
    assert!(!host.is_empty());
    assert_ne!(inside, host, "{spec_type} namespace is the host's");
}

#[test]
fn new_pid_namespace() {
    new_ns_differs("ns-new-pid", "pid", "pid");
}

#[test]
fn new_network_namespace() {
    new_ns_differs("ns-new-net", "network", "net");
}

#[test]
fn new_ipc_namespace() {
    new_ns_differs("ns-new-ipc", "ipc", "ipc");
}

#[test]
fn new_uts_namespace() {
    new_ns_differs("ns-new-uts", "uts", "uts");
}

#[test]
fn new_mount_namespace() {
    new_ns_differs("ns-new-mnt", "mount", "mnt");
}

#[test]
fn new_cgroup_namespace() {
    new_ns_differs("ns-new-cgroup", "cgroup", "cgroup");
}

fn shares_host_ns(name: &str, spec_type: &str, kind: &str) {
    let mut t = harness!(name);
    t.remove_namespace(spec_type);
    if spec_type == "uts" {
        // setting a hostname without a private UTS namespace is an error
        t.config.as_object_mut().unwrap().remove("hostname");
    }
    if spec_type == "network" {
        // sysfs cannot be mounted without a private net namespace (runc
        // bind-mounts it from the host then); keep the test focused
        let m = t.config["mounts"].as_array_mut().unwrap();
        m.retain(|m| m["destination"] != "/sys" && m["destination"] != "/sys/fs/cgroup");
    }
    let inside = ns_inside(&mut t, kind);
    assert_eq!(inside, host_ns(kind), "no {spec_type} namespace requested, yet it differs");
}

#[test]
fn without_network_namespace_shares_the_host_one() {
    shares_host_ns("ns-host-net", "network", "net");
}

#[test]
fn without_ipc_namespace_shares_the_host_one() {
    shares_host_ns("ns-host-ipc", "ipc", "ipc");
}

#[test]
fn without_uts_namespace_shares_the_host_one() {
    shares_host_ns("ns-host-uts", "uts", "uts");
}

#[test]
fn without_cgroup_namespace_shares_the_host_one() {
    // the default config has no cgroup namespace
    shares_host_ns("ns-host-cgroup", "cgroup", "cgroup");
}

#[test]
fn without_pid_namespace_pid_is_not_1() {
    let mut t = harness!("ns-host-pid");
    t.remove_namespace("pid");
    t.sh("echo $$; readlink /proc/self/ns/pid");
    let out = t.run_ok();
    let l: Vec<&str> = out.lines().collect();
    assert_ne!(l[0], "1", "{out}");
    assert_eq!(l[1], host_ns("pid"), "{out}");
}

#[test]
fn new_network_namespace_has_only_loopback() {
    let mut t = harness!("ns-net-lo");
    t.sh("ls /sys/class/net; cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '");
    let out = t.run_ok();
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l, ["lo", "lo"], "{out}");
}

#[test]
fn new_uts_namespace_hostname_isolated() {
    let mut t = harness!("ns-uts-hostname");
    t.config["hostname"] = json!("inner-name");
    t.args(&["hostname"]);
    assert_eq!(t.run_ok(), "inner-name\n");
    assert_ne!(std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim(), "inner-name");
}

#[test]
fn new_ipc_namespace_has_no_host_queues() {
    // create a SysV message queue on the host; the container must not see it
    let key = 0x5250_0000 + (std::process::id() as i32 & 0xffff);
    // SAFETY: msgget takes plain integers.
    let qid = unsafe { libc::msgget(key, libc::IPC_CREAT | 0o600) };
    assert!(qid >= 0, "msgget failed");
    struct Rm(i32);
    impl Drop for Rm {
        fn drop(&mut self) {
            // SAFETY: IPC_RMID takes no buffer (NULL is allowed).
            unsafe {
                libc::msgctl(self.0, libc::IPC_RMID, std::ptr::null_mut());
            }
        }
    }
    let _rm = Rm(qid);
    let mut t = harness!("ns-ipc-isolated");
    t.args(&["cat", "/proc/sysvipc/msg"]);
    let out = t.run_ok();
    assert_eq!(out.lines().count(), 1, "queues visible in the container: {out}");
    // and without an IPC namespace it is visible
    let mut t = harness!("ns-ipc-shared");
    t.remove_namespace("ipc");
    t.args(&["cat", "/proc/sysvipc/msg"]);
    let out = t.run_ok();
    assert!(out.lines().count() >= 2, "host queue not visible without ipc ns: {out}");
}

#[test]
fn cgroup_namespace_root_is_slash() {
    let mut t = harness!("ns-cgroup-root");
    t.set_namespace(json!({"type": "cgroup"}));
    t.args(&["cat", "/proc/self/cgroup"]);
    let out = t.run_ok();
    for l in out.lines() {
        let path = l.splitn(3, ':').nth(2).unwrap_or("");
        assert_eq!(path, "/", "cgroup path not / in a cgroup namespace: {out}");
    }
}

#[test]
fn without_cgroup_namespace_cgroup_path_names_the_container() {
    let mut t = harness!("ns-cgroup-path");
    t.args(&["cat", "/proc/self/cgroup"]);
    let out = t.run_ok();
    // the container is in a cgroup of its own (runc: /<id> by default)
    assert!(out.lines().any(|l| l.ends_with(&format!("/{}", t.id)) || l.contains(&t.id)), "no cgroup named after the container: {out}");
}

/// A long-running first container whose namespaces others join.
fn first_container(name: &str) -> Option<(Harness, i32)> {
    let mut a = Harness::new(name)?;
    a.config["hostname"] = json!("first-host");
    a.args(&["sleep", "300"]);
    a.run_detached().assert_ok();
    let pid = a.pid();
    Some((a, pid))
}

fn join_ns(name: &str, spec_type: &str, kind: &str) {
    let Some((_a, pid)) = first_container(&format!("{name}-a")) else {
        return;
    };
    let target = pid_ns(pid, kind);
    assert!(!target.is_empty());
    assert_ne!(target, host_ns(kind));
    let mut b = harness!(&format!("{name}-b"));
    b.set_namespace(json!({"type": spec_type, "path": format!("/proc/{pid}/ns/{kind}")}));
    if spec_type == "uts" {
        b.config.as_object_mut().unwrap().remove("hostname");
    }
    let inside = ns_inside(&mut b, kind);
    assert_eq!(inside, target, "joined {spec_type} namespace differs");
}

#[test]
fn join_network_namespace_by_path() {
    join_ns("ns-join-net", "network", "net");
}

#[test]
fn join_ipc_namespace_by_path() {
    join_ns("ns-join-ipc", "ipc", "ipc");
}

#[test]
fn join_uts_namespace_by_path() {
    join_ns("ns-join-uts", "uts", "uts");
}

#[test]
fn join_uts_namespace_sees_its_hostname() {
    let Some((_a, pid)) = first_container("ns-join-uts-host-a") else {
        return;
    };
    let mut b = harness!("ns-join-uts-host-b");
    b.set_namespace(json!({"type": "uts", "path": format!("/proc/{pid}/ns/uts")}));
    b.config.as_object_mut().unwrap().remove("hostname");
    b.args(&["hostname"]);
    assert_eq!(b.run_ok(), "first-host\n");
}

#[test]
fn join_pid_namespace_by_path() {
    let Some((_a, pid)) = first_container("ns-join-pid-a") else {
        return;
    };
    let mut b = harness!("ns-join-pid-b");
    b.set_namespace(json!({"type": "pid", "path": format!("/proc/{pid}/ns/pid")}));
    b.sh("readlink /proc/self/ns/pid; echo $$");
    let out = b.run_ok();
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l[0], pid_ns(pid, "pid"), "{out}");
    assert_ne!(l[1], "1", "joined pid namespace already has a pid 1: {out}");
}

#[test]
fn join_network_namespace_made_with_unshare() {
    // a namespace that is not a container's: a bind-mounted nsfs file
    let mut t = harness!("ns-join-nsfs");
    let nsfile = t.dir.join("netns");
    std::fs::write(&nsfile, "").unwrap();
    let st = std::process::Command::new("unshare").arg(format!("--net={}", nsfile.display())).arg("true").status().expect("unshare");
    if !st.success() {
        testkit::skip!("unshare --net=FILE failed");
        return;
    }
    let want = {
        let f = std::fs::File::open(&nsfile).unwrap();
        use std::os::unix::fs::MetadataExt;
        format!("net:[{}]", f.metadata().unwrap().ino())
    };
    t.set_namespace(json!({"type": "network", "path": nsfile.to_str().unwrap()}));
    let inside = ns_inside(&mut t, "net");
    // the harness unmounts the nsfs bind when it drops
    assert_eq!(inside, want);
}

fn userns_config(t: &mut Harness) {
    t.set_namespace(json!({"type": "user"}));
    t.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    t.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
}

#[test]
fn user_namespace_uid_map() {
    let mut t = harness!("ns-user-map");
    userns_config(&mut t);
    t.sh("cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g; readlink /proc/self/ns/user");
    let out = t.run_ok();
    let l: Vec<Vec<&str>> = out.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(l[0], ["0", "100000", "65536"], "{out}");
    assert_eq!(l[1], ["0", "100000", "65536"], "{out}");
    assert_eq!(l[2], ["0"], "{out}");
    assert_eq!(l[3], ["0"], "{out}");
    assert_ne!(l[4][0], host_ns("user"), "{out}");
}

#[test]
fn user_namespace_host_sees_mapped_ids() {
    let mut t = harness!("ns-user-host");
    userns_config(&mut t);
    t.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    t.args(&["sleep", "300"]);
    t.run_detached().assert_ok();
    let pid = t.pid();
    let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid: Vec<String> = status_field(&st, "Uid").unwrap().split_whitespace().map(String::from).collect();
    let gid: Vec<String> = status_field(&st, "Gid").unwrap().split_whitespace().map(String::from).collect();
    assert_eq!(uid, ["101000"; 4], "{st}");
    assert_eq!(gid, ["101000"; 4], "{st}");
}

#[test]
fn user_namespace_root_has_caps_only_inside() {
    let mut t = harness!("ns-user-caps");
    userns_config(&mut t);
    // root in the user namespace cannot touch a host-root-owned 0600 file
    write_file(&t.rootfs.join("root-only"), "secret\n");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(t.rootfs.join("root-only"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let all = ["CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_CHOWN"];
    t.config["process"]["capabilities"] = json!({"bounding": all, "effective": all, "permitted": all});
    t.sh("stat -c '%u %g' /root-only; if cat /root-only 2>/dev/null; then :; else echo denied; fi");
    // host uid 0 is unmapped, so it shows as the overflow id 65534
    assert_eq!(t.run_ok(), "65534 65534\ndenied\n");
}

#[test]
fn time_namespace() {
    let mut t = harness!("ns-time");
    if !std::path::Path::new("/proc/self/ns/time").exists() {
        testkit::skip!("kernel without time namespaces");
        return;
    }
    if is_runc_before_1_2() {
        // runc 1.1 does not know the "time" namespace type at all
        testkit::skip!("runc < 1.2 has no time namespace support");
        return;
    }
    t.set_namespace(json!({"type": "time"}));
    t.config["linux"]["timeOffsets"] = json!({
        "monotonic": {"secs": 864000, "nanosecs": 0},
        "boottime": {"secs": 1728000, "nanosecs": 0}
    });
    t.sh("readlink /proc/self/ns/time; cat /proc/self/timens_offsets; cut -d' ' -f1 /proc/uptime");
    let out = t.run_ok();
    let l: Vec<&str> = out.lines().collect();
    assert_ne!(l[0], host_ns("time"), "{out}");
    let offs: Vec<Vec<&str>> = l[1..3].iter().map(|x| x.split_whitespace().collect()).collect();
    assert!(offs.contains(&vec!["monotonic", "864000", "0"]), "{out}");
    assert!(offs.contains(&vec!["boottime", "1728000", "0"]), "{out}");
    // uptime is boottime based
    let up: f64 = l[3].parse().unwrap();
    let host_up: f64 = std::fs::read_to_string("/proc/uptime").unwrap().split_whitespace().next().unwrap().parse().unwrap();
    assert!(up >= host_up + 1_700_000.0, "uptime {up} vs host {host_up}");
}

#[test]
fn namespaces_of_a_detached_container_match_state_pid() {
    // the pid in `state` is the container process, inside the new namespaces
    let mut t = harness!("ns-state-pid");
    t.args(&["sleep", "300"]);
    t.run_detached().assert_ok();
    let pid = t.pid();
    for kind in ["pid", "net", "ipc", "uts", "mnt"] {
        let n = pid_ns(pid, kind);
        assert!(!n.is_empty());
        assert_ne!(n, host_ns(kind), "{kind}");
    }
    // the state pid is pid 1 in the container's pid namespace
    let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let nspid = status_field(&st, "NSpid").unwrap();
    assert_eq!(nspid.split_whitespace().last(), Some("1"), "{st}");
}

/// A create that must fail fast (never hang with the lock held), say
/// `want` on stderr, and leave `state`, `delete --force` and the host
/// clean.
fn bad_userns_create(t: &Harness, marker: &str, want: &[&str], prep: impl FnOnce(&mut std::process::Command)) {
    t.write_config();
    t.track(&t.id);
    let b = t.bundle_str();
    let mut c = t.command(&["run", "--bundle", &b, &t.id]);
    prep(&mut c);
    let started = std::time::Instant::now();
    let out = t.exec(c, std::time::Duration::from_secs(10));
    assert!(!out.timed_out, "run hung: {}", out.describe());
    out.assert_fail();
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "slow failure: {:?}", started.elapsed());
    for w in want {
        assert!(out.stderr.contains(w), "no {w:?} in the error: {}", out.describe());
    }
    let st = t.state();
    assert!(st.stderr.contains("does not exist"), "{}", st.describe());
    let d = t.delete_force();
    assert!(!d.timed_out, "{}", d.describe());
    t.assert_no_leftovers(&t.id, marker);
}

/// Each mapping the kernel refuses is an error naming the entry, before
/// anything is made.
#[test]
fn refused_user_namespace_mappings_fail_fast_by_field() {
    let many: Vec<_> = (0..400).map(|i| json!({"containerID": i, "hostID": 100000 + i, "size": 1})).collect();
    let cases = [
        ("uidMappings", json!([{"containerID": 0, "hostID": 100000, "size": 0}]), "linux.uidMappings[0]: size must not be 0"),
        (
            "uidMappings",
            json!([{"containerID": 0, "hostID": 100000, "size": 65536}, {"containerID": 1000, "hostID": 300000, "size": 10}]),
            "linux.uidMappings[1]: container ids 1000..1010 overlap linux.uidMappings[0]",
        ),
        (
            "gidMappings",
            json!([{"containerID": 0, "hostID": 100000, "size": 65536}, {"containerID": 70000, "hostID": 100010, "size": 10}]),
            "linux.gidMappings[1]: host ids 100010..100020 overlap linux.gidMappings[0]",
        ),
        ("uidMappings", json!([{"containerID": 0, "hostID": 4294967000u32, "size": 65536}]), "linux.uidMappings[0]: hostID 4294967000"),
        ("gidMappings", json!(many), "linux.gidMappings: 400 mappings, above the kernel's limit of 340"),
    ];
    for (i, (field, m, want)) in cases.into_iter().enumerate() {
        let mut t = harness!("ns-user-bad");
        userns_config(&mut t);
        let marker = format!("userns-bad-{}-{i}", std::process::id());
        t.marked_sleep(&marker);
        t.config["linux"][field] = m;
        bad_userns_create(&t, &marker, &[want], |_| {});
    }
}

/// A mapping only the kernel refuses (host root mapped by a runtime
/// without CAP_SETFCAP): stage-1 is killed, not waited for forever, and
/// the error is runc's.
#[test]
fn kernel_refused_uid_map_fails_fast_and_leaves_nothing() {
    let mut t = harness!("ns-user-kref");
    userns_config(&mut t);
    let marker = format!("userns-kref-{}", std::process::id());
    t.marked_sleep(&marker);
    t.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 0, "size": 65536}]);
    bad_userns_create(
        &t,
        &marker,
        &["failed to update /proc/", "/uid_map: Operation not permitted", "linux.uidMappings [0 0 65536]"],
        |c| {
            // SAFETY: one prctl between fork and exec.
            unsafe {
                std::os::unix::process::CommandExt::pre_exec(c, || {
                    // CAP_SETFCAP out of the bounding set: root's exec then
                    // leaves it out of the permitted set as well.
                    if libc::prctl(libc::PR_CAPBSET_DROP, 31, 0, 0, 0) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                })
            };
        },
    );
}
