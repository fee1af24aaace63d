//! Control groups: cgroupsPath and resources, read back from the
//! container's cgroup on the host (found from /proc/PID/cgroup of its init)
//! (config-linux.md#control-groups).

use super::Case;
use crate::host::Controller;
use crate::runner::Ctx;
use crate::verdict::{Verdict, R};
use crate::{case, check, check_eq, need};
use serde_json::{json, Value};
use std::fs;

pub fn cases() -> Vec<Case> {
    vec![
        case!(
            "cgroups.path",
            "config-linux.md#cgroups-path",
            "an absolute cgroupsPath is the container's cgroup (relative to each hierarchy's mount)",
            cg_path
        ),
        case!("cgroups.memory.limit", "config-linux.md#memory", "memory.limit", mem_limit),
        case!("cgroups.memory.reservation", "config-linux.md#memory", "memory.reservation (soft limit)", mem_reservation),
        case!("cgroups.memory.swap", "config-linux.md#memory", "memory.swap (memory+swap limit)", mem_swap),
        case!("cgroups.memory.swappiness", "config-linux.md#memory", "memory.swappiness (cgroup v1)", mem_swappiness),
        case!("cgroups.memory.disable-oom-killer", "config-linux.md#memory", "memory.disableOOMKiller (cgroup v1)", mem_oom),
        case!("cgroups.pids.limit", "config-linux.md#pids", "pids.limit", pids_limit),
        case!("cgroups.pids.enforced", "config-linux.md#pids", "pids.limit is enforced: forks past it fail", pids_enforced),
        case!("cgroups.cpu.shares", "config-linux.md#cpu", "cpu.shares (cpu.weight on cgroup v2)", cpu_shares),
        case!("cgroups.cpu.quota", "config-linux.md#cpu", "cpu.quota and cpu.period", cpu_quota),
        case!(
            "cgroups.cpu.realtime",
            "config-linux.md#cpu",
            "cpu.realtimeRuntime and realtimePeriod (cgroup v1, with an rt budget on the parent cgroups)",
            cpu_rt
        ),
        case!("cgroups.cpuset", "config-linux.md#cpu", "cpu.cpus and cpu.mems, and the process's allowed cpus", cpuset),
        case!("cgroups.blkio.weight", "config-linux.md#block-io", "blockIO.weight", blkio_weight),
        case!(
            "cgroups.blkio.throttle",
            "config-linux.md#block-io",
            "blockIO throttleReadBpsDevice and throttleWriteIOPSDevice",
            blkio_throttle
        ),
        case!("cgroups.hugetlb", "config-linux.md#huge-page-limits", "hugepageLimits", hugetlb),
        case!("cgroups.network", "config-linux.md#network", "network.classID and priorities", network),
        case!(
            "cgroups.devices.rules",
            "config-linux.md#allowed-device-list",
            "device rules reach the devices cgroup (v1 devices.list)",
            devices_list
        ),
        case!("intel-rdt", "config-linux.md#intelrdt", "intelRdt.closID (needs resctrl)", intel_rdt),
    ]
}

/// Set linux.resources.<key> = v, create a sleeping container, return its pid.
fn with_resources(c: &mut Ctx, key: &str, v: Value) -> Result<i64, Verdict> {
    c.config["linux"]["resources"][key] = v;
    let (_, pid) = c.create_ready("sleep 1000")?;
    Ok(pid)
}

/// Read `file` of the container's cgroup for `ctl`.
fn read(c: &Ctx, pid: i64, ctl: &Controller, file: &str) -> Result<String, Verdict> {
    c.cgroup_read(pid, &ctl.name, file)
}

fn cg_path(c: &mut Ctx) -> R {
    need!(!c.host.cgroups.v1.is_empty() || c.host.cgroups.v2_mount.is_some(), "no cgroups on this host");
    let (_, pid) = c.create_ready("sleep 1000")?;
    let text = crate::host::read(format!("/proc/{pid}/cgroup"));
    let want = c.cgroups_path.clone();
    let mut checked = 0;
    for line in text.lines() {
        let mut it = line.splitn(3, ':');
        let (_, ctrls, path) = match (it.next(), it.next(), it.next()) {
            (Some(a), Some(b), Some(c)) => (a, b, c),
            _ => continue,
        };
        let is_v1_ctl = ctrls.split(',').any(|x| c.host.cgroups.v1.contains_key(x) && !x.starts_with("name="));
        let is_v2_only = ctrls.is_empty() && c.host.cgroups.mode == crate::host::CgroupMode::V2;
        if is_v1_ctl || is_v2_only {
            check_eq!(path, want.as_str(), "cgroup of {} ({line})", if ctrls.is_empty() { "the unified hierarchy" } else { ctrls });
            checked += 1;
        }
    }
    check!(checked > 0, "no controller in /proc/{pid}/cgroup: {text:?}");
    Ok(Verdict::Pass)
}

fn mem_limit(c: &mut Ctx) -> R {
    let ctl = c.host.cgroups.need_file("memory", "memory.limit_in_bytes", "memory.max").map_err(Verdict::Skip)?;
    let pid = with_resources(c, "memory", json!({"limit": 67108864}))?;
    let f = if ctl.v1 { "memory.limit_in_bytes" } else { "memory.max" };
    check_eq!(read(c, pid, &ctl, f)?, "67108864", "{f}");
    Ok(Verdict::Pass)
}

fn mem_reservation(c: &mut Ctx) -> R {
    let ctl = c.host.cgroups.need_file("memory", "memory.soft_limit_in_bytes", "memory.low").map_err(Verdict::Skip)?;
    let pid = with_resources(c, "memory", json!({"limit": 67108864, "reservation": 33554432}))?;
    let f = if ctl.v1 { "memory.soft_limit_in_bytes" } else { "memory.low" };
    check_eq!(read(c, pid, &ctl, f)?, "33554432", "{f}");
    Ok(Verdict::Pass)
}

fn mem_swap(c: &mut Ctx) -> R {
    let ctl = c
        .host
        .cgroups
        .need_file("memory", "memory.memsw.limit_in_bytes", "memory.swap.max")
        .map_err(|e| Verdict::Skip(format!("{e} (no swap accounting)")))?;
    let pid = with_resources(c, "memory", json!({"limit": 67108864, "swap": 100663296}))?;
    if ctl.v1 {
        check_eq!(read(c, pid, &ctl, "memory.memsw.limit_in_bytes")?, "100663296", "memory.memsw.limit_in_bytes");
    } else {
        check_eq!(read(c, pid, &ctl, "memory.swap.max")?, "33554432", "memory.swap.max (swap - limit)");
    }
    Ok(Verdict::Pass)
}

fn mem_swappiness(c: &mut Ctx) -> R {
    let ctl = c.host.cgroups.need_file("memory", "memory.swappiness", "").map_err(Verdict::Skip)?;
    let pid = with_resources(c, "memory", json!({"limit": 67108864, "swappiness": 10}))?;
    check_eq!(read(c, pid, &ctl, "memory.swappiness")?, "10", "memory.swappiness");
    Ok(Verdict::Pass)
}

fn mem_oom(c: &mut Ctx) -> R {
    let ctl = c.host.cgroups.need_file("memory", "memory.oom_control", "").map_err(Verdict::Skip)?;
    let pid = with_resources(c, "memory", json!({"limit": 67108864, "disableOOMKiller": true}))?;
    let t = read(c, pid, &ctl, "memory.oom_control")?;
    check!(t.lines().any(|l| l.trim() == "oom_kill_disable 1"), "memory.oom_control says {:?}", t.replace('\n', "; "));
    Ok(Verdict::Pass)
}

fn pids_limit(c: &mut Ctx) -> R {
    let ctl = c.host.cgroups.need_file("pids", "pids.max", "pids.max").map_err(Verdict::Skip)?;
    let pid = with_resources(c, "pids", json!({"limit": 32}))?;
    check_eq!(read(c, pid, &ctl, "pids.max")?, "32", "pids.max");
    Ok(Verdict::Pass)
}

fn pids_enforced(c: &mut Ctx) -> R {
    let ctl = c.host.cgroups.need_file("pids", "pids.current", "pids.current").map_err(Verdict::Skip)?;
    c.config["linux"]["resources"]["pids"] = json!({"limit": 8});
    let (_, pid) = c.start_ready(
        "sh -c 'for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16; do sleep 1000 & done' 2>/shared/err; : > /shared/ready; exec sleep 1000",
    )?;
    let cur: u64 = read(c, pid, &ctl, "pids.current")?.parse().unwrap_or(0);
    check!(cur <= 8, "pids.current is {cur} with pids.limit 8");
    let err = c.read_shared("err");
    check!(!err.is_empty(), "all 16 forks succeeded with pids.limit 8");
    Ok(Verdict::Pass)
}

fn cpu_shares(c: &mut Ctx) -> R {
    let ctl = c.host.cgroups.need_file("cpu", "cpu.shares", "cpu.weight").map_err(Verdict::Skip)?;
    let pid = with_resources(c, "cpu", json!({"shares": 512}))?;
    if ctl.v1 {
        check_eq!(read(c, pid, &ctl, "cpu.shares")?, "512", "cpu.shares");
    } else {
        // runc's conversion: weight = 1 + ((shares - 2) * 9999) / 262142.
        check_eq!(read(c, pid, &ctl, "cpu.weight")?, "20", "cpu.weight for shares 512");
    }
    Ok(Verdict::Pass)
}

fn cpu_quota(c: &mut Ctx) -> R {
    let ctl = c.host.cgroups.need_file("cpu", "cpu.cfs_quota_us", "cpu.max").map_err(Verdict::Skip)?;
    let pid = with_resources(c, "cpu", json!({"quota": 50000, "period": 200000}))?;
    if ctl.v1 {
        check_eq!(read(c, pid, &ctl, "cpu.cfs_quota_us")?, "50000", "cpu.cfs_quota_us");
        check_eq!(read(c, pid, &ctl, "cpu.cfs_period_us")?, "200000", "cpu.cfs_period_us");
    } else {
        check_eq!(read(c, pid, &ctl, "cpu.max")?, "50000 200000", "cpu.max");
    }
    Ok(Verdict::Pass)
}

fn cpu_rt(c: &mut Ctx) -> R {
    let ctl = c
        .host
        .cgroups
        .need_file("cpu", "cpu.rt_runtime_us", "")
        .map_err(|e| Verdict::Skip(format!("{e} (kernel without CONFIG_RT_GROUP_SCHED)")))?;
    // A child's rt budget must fit in its parent's: give the parents
    // (made here, below the run's cgroup parent) a budget first.
    let parent = c.settings.cgroup_parent.trim_start_matches('/').to_string();
    let mut p = ctl.mount.clone();
    for part in parent.split('/') {
        p.push(part);
        let _ = fs::create_dir(&p);
        if fs::write(p.join("cpu.rt_runtime_us"), "20000").is_err() {
            return Err(Verdict::Skip(format!("cannot give {} an rt budget", p.display())));
        }
    }
    let pid = with_resources(c, "cpu", json!({"realtimeRuntime": 10000, "realtimePeriod": 1000000}))?;
    check_eq!(read(c, pid, &ctl, "cpu.rt_runtime_us")?, "10000", "cpu.rt_runtime_us");
    check_eq!(read(c, pid, &ctl, "cpu.rt_period_us")?, "1000000", "cpu.rt_period_us");
    Ok(Verdict::Pass)
}

fn cpuset(c: &mut Ctx) -> R {
    let ctl = c.host.cgroups.need_file("cpuset", "cpuset.cpus", "cpuset.cpus").map_err(Verdict::Skip)?;
    let cpu = *c.host.cpus.last().ok_or_else(|| Verdict::Skip("no cpus found in the host's cpuset".into()))?;
    let mem = *c.host.mems.first().ok_or_else(|| Verdict::Skip("no memory nodes found".into()))?;
    let pid = with_resources(c, "cpu", json!({"cpus": cpu.to_string(), "mems": mem.to_string()}))?;
    check_eq!(read(c, pid, &ctl, "cpuset.cpus")?, cpu.to_string(), "cpuset.cpus");
    check_eq!(read(c, pid, &ctl, "cpuset.mems")?, mem.to_string(), "cpuset.mems");
    let status = crate::host::read(format!("/proc/{pid}/status"));
    check_eq!(
        super::status_field(&status, "Cpus_allowed_list:").unwrap_or(""),
        cpu.to_string().as_str(),
        "the container process's allowed cpus"
    );
    Ok(Verdict::Pass)
}

fn blkio_weight(c: &mut Ctx) -> R {
    let ctl = c
        .host
        .cgroups
        .need_file("blkio", "blkio.weight", "io.weight")
        .map_err(|e| Verdict::Skip(format!("{e} (no proportional-weight I/O scheduler)")))?;
    let pid = with_resources(c, "blockIO", json!({"weight": 300}))?;
    let f = if ctl.v1 { "blkio.weight" } else { "io.weight" };
    let got = read(c, pid, &ctl, f)?;
    check!(got.split_whitespace().any(|w| w == "300"), "{f} is {got:?}, want 300");
    Ok(Verdict::Pass)
}

fn blkio_throttle(c: &mut Ctx) -> R {
    let ctl = c.host.cgroups.need_file("blkio", "blkio.throttle.read_bps_device", "io.max").map_err(Verdict::Skip)?;
    let (maj, min, name) = c.host.block_device.clone().ok_or_else(|| Verdict::Skip("no block device on this host".into()))?;
    let pid = with_resources(
        c,
        "blockIO",
        json!({"throttleReadBpsDevice": [{"major": maj, "minor": min, "rate": 1048576}], "throttleWriteIOPSDevice": [{"major": maj, "minor": min, "rate": 100}]}),
    )?;
    let dev = format!("{maj}:{min}");
    if ctl.v1 {
        let r = read(c, pid, &ctl, "blkio.throttle.read_bps_device")?;
        check!(
            r.lines().any(|l| l.trim() == format!("{dev} 1048576")),
            "blkio.throttle.read_bps_device is {r:?}, want \"{dev} 1048576\" ({name})"
        );
        let w = read(c, pid, &ctl, "blkio.throttle.write_iops_device")?;
        check!(w.lines().any(|l| l.trim() == format!("{dev} 100")), "blkio.throttle.write_iops_device is {w:?}, want \"{dev} 100\"");
    } else {
        let m = read(c, pid, &ctl, "io.max")?;
        let line = m.lines().find(|l| l.starts_with(&format!("{dev} "))).unwrap_or("");
        check!(line.contains("rbps=1048576") && line.contains("wiops=100"), "io.max is {m:?}");
    }
    Ok(Verdict::Pass)
}

fn hugetlb(c: &mut Ctx) -> R {
    let ctl = c.host.cgroups.need_file("hugetlb", "hugetlb.2MB.limit_in_bytes", "hugetlb.2MB.max").map_err(Verdict::Skip)?;
    let pid = with_resources(c, "hugepageLimits", json!([{"pageSize": "2MB", "limit": 4194304}]))?;
    let f = if ctl.v1 { "hugetlb.2MB.limit_in_bytes" } else { "hugetlb.2MB.max" };
    check_eq!(read(c, pid, &ctl, f)?, "4194304", "{f}");
    Ok(Verdict::Pass)
}

fn network(c: &mut Ctx) -> R {
    let ctl = c.host.cgroups.need_file("net_cls", "net_cls.classid", "").map_err(Verdict::Skip)?;
    let pid = with_resources(c, "network", json!({"classID": 1048577}))?;
    check_eq!(read(c, pid, &ctl, "net_cls.classid")?, "1048577", "net_cls.classid");
    Ok(Verdict::Pass)
}

fn devices_list(c: &mut Ctx) -> R {
    let ctl = c
        .host
        .cgroups
        .need_file("devices", "devices.list", "")
        .map_err(|e| Verdict::Skip(format!("{e} (on cgroup v2 device rules are an eBPF program, checked by devices.cgroup.*)")))?;
    c.config["linux"]["resources"]["devices"] =
        json!([{"allow": false, "access": "rwm"}, {"allow": true, "type": "b", "major": 7, "minor": 0, "access": "r"}]);
    let (_, pid) = c.create_ready("sleep 1000")?;
    let l = read(c, pid, &ctl, "devices.list")?;
    check!(
        l.lines().any(|x| x.trim() == "b 7:0 r"),
        "devices.list lacks \"b 7:0 r\": {:?}",
        crate::runner::cut(&l.replace('\n', "; "), 200)
    );
    check!(!l.lines().any(|x| x.trim() == "a *:* rwm"), "devices.list still allows everything");
    Ok(Verdict::Pass)
}

fn intel_rdt(c: &mut Ctx) -> R {
    need!(std::path::Path::new("/sys/fs/resctrl/info").exists(), "no resctrl filesystem (Intel RDT) on this host");
    c.config["linux"]["intelRdt"] = json!({"closID": format!("conformance-{}", std::process::id())});
    let (_, pid) = c.create_ready("sleep 1000")?;
    let g = format!("/sys/fs/resctrl/conformance-{}/tasks", std::process::id());
    let tasks = crate::host::read(&g);
    check!(tasks.lines().any(|t| t.trim() == pid.to_string()), "pid {pid} is not in {g}");
    Ok(Verdict::Pass)
}
