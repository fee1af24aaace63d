//! Namespaces: new, shared with the host, joined by path; user namespace
//! mappings; time offsets (config-linux.md#namespaces, #user-namespace-mappings).

use super::Case;
use crate::bundle::ConfigExt;
use crate::runner::{ns_inode, Ctx};
use crate::verdict::{Verdict, R};
use crate::{case, check, check_eq, need};
use serde_json::json;
use std::time::{Duration, Instant};

/// (config type, /proc/PID/ns file, unshare flags)
const TYPES: &[(&str, &str, &[&str])] = &[
    ("pid", "pid", &["--pid", "--fork"]),
    ("network", "net", &["--net"]),
    ("ipc", "ipc", &["--ipc"]),
    ("uts", "uts", &["--uts"]),
    ("mount", "mnt", &["--mount"]),
    ("user", "user", &["--user", "--map-root-user"]),
    ("cgroup", "cgroup", &["--cgroup"]),
    ("time", "time", &["--time", "--fork"]),
];

pub fn cases() -> Vec<Case> {
    let v = vec![
        case!("ns.pid.new", "config-linux.md#namespaces", "a new pid namespace: the container's differs from the host's", |c| ns_new(
            c, "pid"
        )),
        case!("ns.network.new", "config-linux.md#namespaces", "a new network namespace: only lo inside", |c| ns_new(c, "network")),
        case!("ns.ipc.new", "config-linux.md#namespaces", "a new ipc namespace", |c| ns_new(c, "ipc")),
        case!("ns.uts.new", "config-linux.md#namespaces", "a new uts namespace", |c| ns_new(c, "uts")),
        case!("ns.mount.new", "config-linux.md#namespaces", "a new mount namespace", |c| ns_new(c, "mount")),
        case!("ns.user.new", "config-linux.md#namespaces", "a new user namespace (with uid/gid mappings)", |c| ns_new(c, "user")),
        case!("ns.cgroup.new", "config-linux.md#namespaces", "a new cgroup namespace: the container sees its cgroups as /", |c| ns_new(
            c, "cgroup"
        )),
        case!("ns.time.new", "config-linux.md#namespaces", "a new time namespace", |c| ns_new(c, "time"), "1.1.0"),
        case!("ns.pid.host", "config-linux.md#namespaces", "no pid entry: the container shares the runtime's pid namespace", |c| ns_host(
            c, "pid"
        )),
        case!(
            "ns.network.host",
            "config-linux.md#namespaces",
            "no network entry: the container shares the runtime's network namespace",
            |c| ns_host(c, "network")
        ),
        case!("ns.ipc.host", "config-linux.md#namespaces", "no ipc entry: the container shares the runtime's ipc namespace", |c| ns_host(
            c, "ipc"
        )),
        case!("ns.uts.host", "config-linux.md#namespaces", "no uts entry: the container shares the runtime's uts namespace", |c| ns_host(
            c, "uts"
        )),
        case!(
            "ns.cgroup.host",
            "config-linux.md#namespaces",
            "no cgroup entry: the container shares the runtime's cgroup namespace",
            |c| ns_host(c, "cgroup")
        ),
        case!("ns.user.host", "config-linux.md#namespaces", "no user entry: the container shares the runtime's user namespace", |c| {
            ns_host(c, "user")
        }),
        case!("ns.pid.path", "config-linux.md#namespaces", "pid namespace joined by path", |c| ns_path(c, "pid")),
        case!("ns.network.path", "config-linux.md#namespaces", "network namespace joined by path", |c| ns_path(c, "network")),
        case!("ns.ipc.path", "config-linux.md#namespaces", "ipc namespace joined by path", |c| ns_path(c, "ipc")),
        case!("ns.uts.path", "config-linux.md#namespaces", "uts namespace joined by path", |c| ns_path(c, "uts")),
        case!("ns.mount.path", "config-linux.md#namespaces", "mount namespace joined by path", |c| ns_path(c, "mount")),
        case!("ns.user.path", "config-linux.md#namespaces", "user namespace joined by path", |c| ns_path(c, "user")),
        case!("ns.cgroup.path", "config-linux.md#namespaces", "cgroup namespace joined by path", |c| ns_path(c, "cgroup")),
        case!("ns.time.path", "config-linux.md#namespaces", "time namespace joined by path", |c| ns_path(c, "time"), "1.1.0"),
        case!("ns.path.wrong-type", "config-linux.md#namespaces", "a path to a namespace of another type is an error", ns_wrong_type),
        case!("ns.path.not-a-namespace", "config-linux.md#namespaces", "a path that is not a namespace is an error", ns_not_ns),
        case!(
            "ns.user.mappings",
            "config-linux.md#user-namespace-mappings",
            "uidMappings/gidMappings are the container's uid_map/gid_map; its root is the mapped host uid",
            user_mappings
        ),
        case!(
            "ns.user.multiple-mappings",
            "config-linux.md#user-namespace-mappings",
            "several mapping ranges all reach uid_map and gid_map",
            user_multi
        ),
        case!(
            "ns.time.offsets",
            "config-linux.md#offset-for-time-namespace",
            "timeOffsets shift the container's monotonic and boottime clocks",
            time_offsets,
            "1.1.0"
        ),
    ];
    v
}

fn file_of(t: &str) -> &'static str {
    TYPES.iter().find(|x| x.0 == t).map(|x| x.1).unwrap_or("?")
}

fn need_ns(c: &Ctx, t: &str) -> Result<(), Verdict> {
    let f = file_of(t);
    need!(c.host.has_ns(f), "the kernel has no {t} namespace (/proc/self/ns/{f})");
    if t == "user" {
        need!(c.host.max_user_namespaces > 0, "user namespaces are disabled (user.max_user_namespaces is 0)");
    }
    Ok(())
}

/// Config for a new user namespace mapping 0..65536 to 100000.. .
pub fn userns_config(c: &mut Ctx) {
    c.config.set_ns("user", None);
    c.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    c.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
}

fn ns_new(c: &mut Ctx, t: &str) -> R {
    need_ns(c, t)?;
    if t == "user" {
        userns_config(c);
    } else {
        c.config.set_ns(t, None);
    }
    let (_, pid) = c.create_ready("sleep 1000")?;
    let f = file_of(t);
    let mine = ns_inode(&std::process::id().to_string(), f);
    let theirs = ns_inode(&pid.to_string(), f);
    check!(!theirs.is_empty(), "cannot read /proc/{pid}/ns/{f}");
    check!(theirs != mine, "the container's {t} namespace is the runtime's ({mine})");
    match t {
        "network" => {
            c.set_script("tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '");
            let id = c.new_id();
            let o = c.run_fg(&id, &[])?;
            check!(o.ok(), "run failed: {}", o.brief());
            let ifs: Vec<&str> = o.stdout.lines().filter(|l| !l.is_empty()).collect();
            check_eq!(ifs, vec!["lo"], "network interfaces in a new network namespace");
        }
        "cgroup" => {
            c.set_script("cat /proc/self/cgroup");
            let id = c.new_id();
            let o = c.run_fg(&id, &[])?;
            check!(o.ok(), "run failed: {}", o.brief());
            let not_root: Vec<&str> = o.stdout.lines().filter(|l| !l.ends_with(":/")).collect();
            check!(not_root.is_empty(), "in a new cgroup namespace the container's cgroups are not /: {not_root:?}");
        }
        _ => {}
    }
    Ok(Verdict::Pass)
}

fn ns_host(c: &mut Ctx, t: &str) -> R {
    need_ns(c, t)?;
    c.config.remove_ns(t);
    if t == "uts" {
        // Setting a hostname needs a uts namespace of its own.
        if let Some(o) = c.config.as_object_mut() {
            o.remove("hostname");
        }
    }
    let (_, pid) = c.create_ready("sleep 1000")?;
    let f = file_of(t);
    let mine = ns_inode(&std::process::id().to_string(), f);
    check_eq!(ns_inode(&pid.to_string(), f), mine, "the container's {t} namespace vs the runtime's");
    Ok(Verdict::Pass)
}

/// Start `unshare FLAGS sleep` and wait until its namespace exists; returns
/// the namespace file to join.
fn holder(c: &mut Ctx, t: &str) -> Result<String, Verdict> {
    let un = c.host.unshare.clone().ok_or_else(|| Verdict::Skip("no unshare binary on the host to make a namespace to join".into()))?;
    let (_, f, flags) = *TYPES.iter().find(|x| x.0 == t).ok_or_else(|| Verdict::Fail(format!("unknown type {t}")))?;
    let mut args: Vec<&str> = flags.to_vec();
    args.extend(["sleep", "60"]);
    let pid = c.spawn_holder(&un, &args)?;
    // For pid and time the new namespace is the one of unshare's children.
    let file = if flags.contains(&"--fork") { format!("{f}_for_children") } else { f.to_string() };
    let path = format!("/proc/{pid}/ns/{file}");
    let mine = ns_inode(&std::process::id().to_string(), f);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = std::fs::read_link(&path).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
        if !got.is_empty() && got != mine {
            return Ok(path);
        }
        if Instant::now() > deadline {
            return Err(Verdict::Fail(format!("`unshare {}` did not make a {t} namespace", flags.join(" "))));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn ns_path(c: &mut Ctx, t: &str) -> R {
    need_ns(c, t)?;
    let path = holder(c, t)?;
    let want = std::fs::read_link(&path).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
    c.config.set_ns(t, Some(&path));
    if t == "user" {
        // unshare --map-root-user maps 0 to 0 only.
        c.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 0, "size": 1}]);
        c.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 0, "size": 1}]);
        devpts_without_gid(c);
    }
    let (_, pid) = c.create_ready("sleep 1000")?;
    check_eq!(ns_inode(&pid.to_string(), file_of(t)), want, "the container's {t} namespace vs {path}");
    Ok(Verdict::Pass)
}

/// devpts' gid=5 needs gid 5 mapped.
fn devpts_without_gid(c: &mut Ctx) {
    if let Some(ms) = c.config["mounts"].as_array_mut() {
        for m in ms.iter_mut().filter(|m| m["destination"] == "/dev/pts") {
            if let Some(o) = m["options"].as_array_mut() {
                o.retain(|x| x != "gid=5");
            }
        }
    }
}

fn ns_wrong_type(c: &mut Ctx) -> R {
    need_ns(c, "network")?;
    let path = holder(c, "network")?;
    c.config.set_ns("uts", Some(&path));
    c.set_script("sleep 1000");
    let id = c.new_id();
    let o = c.try_create(&id, &[])?;
    check!(!o.ok(), "create joined a network namespace ({path}) as the uts namespace");
    Ok(Verdict::Pass)
}

fn ns_not_ns(c: &mut Ctx) -> R {
    let f = c.dir.join("not-a-namespace");
    std::fs::write(&f, "").map_err(|e| Verdict::Fail(e.to_string()))?;
    c.config.set_ns("network", Some(&f.to_string_lossy()));
    c.set_script("sleep 1000");
    let id = c.new_id();
    let o = c.try_create(&id, &[])?;
    check!(!o.ok(), "create accepted a regular file as the network namespace");
    Ok(Verdict::Pass)
}

fn maps_of(out: &str, name: &str) -> Vec<Vec<String>> {
    super::section(out, name)
        .lines()
        .map(|l| l.split_whitespace().map(String::from).collect())
        .filter(|v: &Vec<String>| !v.is_empty())
        .collect()
}

fn user_mappings(c: &mut Ctx) -> R {
    need_ns(c, "user")?;
    userns_config(c);
    let (_, pid) = c.create_ready("sleep 1000")?;
    let status = crate::host::read(format!("/proc/{pid}/status"));
    let uid = super::status_field(&status, "Uid:").unwrap_or("").split_whitespace().next().unwrap_or("").to_string();
    check_eq!(uid.as_str(), "100000", "host uid of the container's root");
    let out = c.run_sh("echo BEGIN uid; cat /proc/self/uid_map; echo END uid; echo BEGIN gid; cat /proc/self/gid_map; echo END gid")?;
    let want = vec![vec!["0".to_string(), "100000".into(), "65536".into()]];
    check_eq!(maps_of(&out, "uid"), want, "uid_map");
    check_eq!(maps_of(&out, "gid"), want, "gid_map");
    Ok(Verdict::Pass)
}

fn user_multi(c: &mut Ctx) -> R {
    need_ns(c, "user")?;
    c.config.set_ns("user", None);
    c.config["linux"]["uidMappings"] =
        json!([{"containerID": 0, "hostID": 100000, "size": 1000}, {"containerID": 1000, "hostID": 200000, "size": 1000}]);
    c.config["linux"]["gidMappings"] =
        json!([{"containerID": 0, "hostID": 100000, "size": 1000}, {"containerID": 1000, "hostID": 200000, "size": 1000}]);
    let out = c.run_sh("echo BEGIN uid; cat /proc/self/uid_map; echo END uid; echo BEGIN gid; cat /proc/self/gid_map; echo END gid")?;
    let mut want = vec![vec!["0".to_string(), "100000".into(), "1000".into()], vec!["1000".to_string(), "200000".into(), "1000".into()]];
    want.sort();
    let mut u = maps_of(&out, "uid");
    u.sort();
    let mut g = maps_of(&out, "gid");
    g.sort();
    check_eq!(u, want, "uid_map");
    check_eq!(g, want, "gid_map");
    Ok(Verdict::Pass)
}

fn time_offsets(c: &mut Ctx) -> R {
    need_ns(c, "time")?;
    c.config.set_ns("time", None);
    let days10 = 10 * 86400;
    c.config["linux"]["timeOffsets"] = json!({"monotonic": {"secs": days10, "nanosecs": 0}, "boottime": {"secs": days10, "nanosecs": 0}});
    let out = c.run_sh("cut -d. -f1 /proc/uptime")?;
    let host_up: u64 = crate::host::read("/proc/uptime").split('.').next().unwrap_or("0").parse().unwrap_or(0);
    let up: u64 = out.trim().parse().unwrap_or(0);
    check!(up >= host_up + days10 - 5, "uptime in the container is {up}s, the host's {host_up}s: boottime offset of {days10}s not applied");
    Ok(Verdict::Pass)
}
