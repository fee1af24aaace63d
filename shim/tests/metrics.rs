//! The shim's Stats: containerd metrics from the runtime's stats model
//! (runtime_core::stats), through the shim's one mapping.
//!
//! - OOM kills end to end: a real container under a real containerd, a
//!   memory hog OOM-killed, then the task's metrics over the shim's ttrpc
//!   socket count the kill.
//! - The v2 swap figure: this host's memory controller is v1 (hybrid), so
//!   runtime-core's v2 reader runs over a fake v2 directory, its JSON is
//!   read back as the shim reads the runtime's output, and mapped. The
//!   same end to end waits for a cgroup v2 VM (issue 18).

mod common;

use common::*;
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::shim::shim::StatsRequest;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A ttrpc client on the shim that serves task `id`.
fn shim_client(d: &Daemon, id: &str) -> containerd_shim_protos::TaskClient {
    let addr_file = d.dir.join(format!("state/io.containerd.runtime.v2.task/{}/{id}/address", d.ns));
    let address = std::fs::read_to_string(&addr_file).expect("shim address file");
    containerd_shim_protos::TaskClient::new(containerd_shim_protos::Client::connect(address.trim()).expect("connect to the shim"))
}

/// The task's metrics as the shim answers containerd's Stats: this hybrid
/// host's containers have v1 figures, so v1 Metrics.
fn v1_metrics(client: &containerd_shim_protos::TaskClient, id: &str) -> containerd_shim_protos::cgroups::metrics::Metrics {
    let ctx = containerd_shim_protos::ttrpc::context::with_timeout(20_000_000_000);
    let r = client.stats(ctx, &StatsRequest { id: id.into(), ..Default::default() }).expect("Stats");
    assert_eq!(r.stats.type_url, "io.containerd.cgroups.v1.Metrics");
    containerd_shim_protos::cgroups::metrics::Metrics::parse_from_bytes(&r.stats.value).expect("v1 Metrics")
}

#[test]
fn oom_kills_reach_the_shims_metrics() {
    let d = daemon!("metrics-oom");
    let limit = 32u64 << 20;
    let limit_arg = limit.to_string();
    d.ctr_ok(
        &d.run_args(RUNTIME).into_iter().chain(["-d", "--memory-limit", &limit_arg, IMAGE, "m1", "sleep", "1000"]).collect::<Vec<_>>(),
    );
    d.wait_status("m1", "RUNNING", Duration::from_secs(10));
    let client = shim_client(&d, "m1");

    let before = v1_metrics(&client, "m1");
    assert_eq!(before.memory.usage.limit, limit, "{before:?}");
    assert_eq!(before.memory_oom_control.oom_kill, 0, "no OOM yet: {before:?}");

    // The hog is the largest process of the cgroup: the kernel kills it,
    // not the container's init. Its exit is the event waited on: the
    // kernel counts the kill before it sends the SIGKILL.
    let out = d.ctr(&d.exec_args(&["--exec-id", "hog", "m1", "tail", "/dev/zero"]));
    assert_eq!(out.status.code(), Some(137), "the memory hog should be OOM-killed: {}", out_str(&out));

    let after = v1_metrics(&client, "m1");
    assert!(after.memory_oom_control.oom_kill >= 1, "the OOM kill is not in the shim's metrics: {:?}", after.memory_oom_control);
    assert!(after.memory.usage.failcnt >= 1, "{:?}", after.memory.usage);
    assert_eq!(d.task_status("m1").as_deref(), Some("RUNNING"), "init should have survived the hog's OOM kill");

    drop(client);
    d.ctr_ok(&["task", "kill", "-s", "SIGKILL", "m1"]);
    d.wait_status("m1", "STOPPED", Duration::from_secs(10));
    d.ctr_ok(&["task", "delete", "m1"]);
    d.ctr_ok(&["containers", "delete", "m1"]);
    d.assert_no_shims();
}

/// A temp dir laid out like a container's cgroup2 directory (the reader
/// takes a directory outside any cgroup mount that has cgroup.controllers
/// for a unified one).
struct FakeV2(PathBuf);

impl FakeV2 {
    fn new(tag: &str, files: &[(&str, &str)]) -> FakeV2 {
        let dir = std::env::temp_dir().join(format!("rpc-shim-fake-cg2-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("fake cgroup dir");
        for (f, v) in [("cgroup.controllers", "cpu io memory pids\n")].iter().chain(files) {
            std::fs::write(dir.join(f), v).expect("fake cgroup file");
        }
        FakeV2(dir)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for FakeV2 {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn v2_swap_is_swap_alone_in_the_shims_metrics() {
    let memory = 50u64 << 20;
    let swap = 7u64 << 20;
    let t = FakeV2::new(
        "swap",
        &[
            ("memory.current", &format!("{memory}\n")),
            ("memory.max", "268435456\n"),
            ("memory.swap.current", &format!("{swap}\n")),
            ("memory.swap.max", "134217728\n"),
            ("memory.events", "low 0\nhigh 0\nmax 9\noom 2\noom_kill 1\noom_group_kill 0\n"),
            ("memory.stat", "anon 40000\nfile 8192\n"),
        ],
    );
    // What the runtime does for `events --stats`: read, print one line.
    let s = runtime_core::linux::cgroups::stats::collect(&[t.path().to_path_buf()], None);
    let printed = format!("{}\n", s.event("c1"));

    let stats = shim::metrics::first_stats(printed.as_bytes()).expect("the shim reads the runtime's stats");
    // The runtime says v2: the host's (hybrid) mode is not asked.
    let m = shim::metrics::for_containerd(&stats, || panic!("the host's cgroup mode asked although the runtime said v2"));
    let any = m.into_any().expect("encoding");
    assert_eq!(any.type_url, "io.containerd.cgroups.v2.Metrics");
    let m = containerd_shim_protos::cgroups_v2::metrics::Metrics::parse_from_bytes(&any.value).expect("v2 Metrics");
    assert_eq!(m.memory.usage, memory);
    assert_eq!(m.memory.usage_limit, 256 << 20);
    assert_eq!(m.memory.swap_usage, swap, "swap_usage must be memory.swap.current alone, not memory + swap");
    assert_eq!(m.memory.swap_limit, 128 << 20, "swap_limit must be memory.swap.max");
    assert_eq!(m.memory.anon, 40000);
    let e = &m.memory_events;
    assert_eq!((e.max, e.oom, e.oom_kill), (9, 2, 1));

    // Unlimited swap stays unlimited.
    std::fs::write(t.path().join("memory.swap.max"), "max\n").expect("write");
    let s = runtime_core::linux::cgroups::stats::collect(&[t.path().to_path_buf()], None);
    let stats = shim::metrics::first_stats(format!("{}\n", s.event("c1")).as_bytes()).expect("stats");
    let shim::metrics::Metrics::V2(m) = shim::metrics::for_containerd(&stats, || unreachable!()) else { panic!("v2 metrics") };
    assert_eq!((m.memory.swap_usage, m.memory.swap_limit), (swap, u64::MAX));
}
