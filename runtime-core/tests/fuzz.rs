//! Fuzz targets of runtime-core (issue 19, "the suite"), on the stable
//! toolchain with `testkit::fuzz`: config.json load and validate (and what
//! the runtime derives from a valid config), `exec --process` files,
//! state.json load, the seccomp translator, and the command-line values.
//!
//! `cargo test -p runtime-core --test fuzz` is the bounded pass (2 s a
//! target, a fixed seed); `make fuzz` runs longer (`RPC_FUZZ_SECS`, and
//! `RPC_FUZZ_SEED=time` for new inputs). A crash found is kept as a file
//! in `tests/fuzz-corpus/<target>/`, run first every time.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use runtime_core::bundle;
use runtime_core::linux::cgroups::{self, devices_bpf, resources};
use runtime_core::linux::{devices, mounts, namespaces, seccomp};
use runtime_core::state::Store;
use serde_json::{json, Value};
use testkit::fuzz::{self, Budget, Kind, Mutator};

/// Inputs above this are not worth the time of a mutation loop.
const MAX_LEN: usize = 64 << 10;

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-corpus").join(target)
}

fn budget() -> Budget {
    Budget::from_env(2.0)
}

/// A temp dir removed on drop.
struct Tmp(PathBuf);

impl Tmp {
    fn new(name: &str) -> Tmp {
        let p = std::env::temp_dir().join(format!("rpc-fuzz-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(p.join("rootfs")).unwrap();
        Tmp(p)
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The runtime's warnings (unknown capability names, ...) go to a file:
/// formatted as ever, but not thousands of lines on the test's stderr.
fn quiet_log() {
    runtime_core::log::init(Some(Path::new("/dev/null")), runtime_core::log::Format::Json, false).unwrap();
}

/// Words of the runtime spec the mutator puts in place of others.
const SPEC_WORDS: &[&str] = &[
    "mount",
    "pid",
    "network",
    "ipc",
    "uts",
    "user",
    "cgroup",
    "time",
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
    "SCMP_ARCH_X86_64",
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_AARCH64",
    "SCMP_CMP_EQ",
    "SCMP_CMP_NE",
    "SCMP_CMP_MASKED_EQ",
    "SCMP_CMP_GT",
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "RLIMIT_NOFILE",
    "RLIMIT_CORE",
    "RLIMIT_NPROC",
    "CAP_SYS_ADMIN",
    "CAP_KILL",
    "CAP_NOT_A_CAP",
    "bind",
    "rbind",
    "ro",
    "rw",
    "nosuid",
    "rprivate",
    "shared",
    "rslave",
    "tmpfs",
    "proc",
    "sysfs",
    "cgroup",
    "devpts",
    "c",
    "b",
    "u",
    "p",
    "a",
    "rwm",
    "r",
    "m",
    "SCHED_FIFO",
    "SCHED_OTHER",
    "SCHED_DEADLINE",
    "IOPRIO_CLASS_RT",
    "IOPRIO_CLASS_BE",
    "LINUX",
    "LINUX32",
    "net.ipv4.ip_forward",
    "kernel.shmmax",
    "kernel.hostname",
    "2MB",
    "1GB",
    "64KB",
    "0-1",
    "0,1",
    "1-0",
    "0-4294967295",
    "/dev/null",
    "/proc",
    "/sys",
    "/dev/../etc",
    "path",
    "type",
    "source",
    "destination",
    "options",
    "args",
    "env",
    "cwd",
    "uid",
    "gid",
    "hostID",
    "containerID",
    "size",
    "major",
    "minor",
    "access",
    "allow",
    "limit",
    "names",
    "action",
    "errnoRet",
    "index",
    "value",
    "valueTwo",
    "op",
];

/// A config that sets nearly every field the runtime reads.
fn full_config() -> Value {
    let mut v = runtime_core::spec::default_spec(false);
    v["process"]["terminal"] = json!(false);
    v["process"]["user"] = json!({"uid": 1000, "gid": 1000, "umask": 18, "additionalGids": [5, 100]});
    v["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}, {"type": "RLIMIT_CORE", "hard": 0, "soft": 0}]);
    v["process"]["oomScoreAdj"] = json!(100);
    v["process"]["scheduler"] = json!({"policy": "SCHED_OTHER", "nice": 5});
    v["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 4});
    v["process"]["apparmorProfile"] = json!("");
    v["process"]["consoleSize"] = json!({"height": 24, "width": 80});
    v["domainname"] = json!("example.com");
    v["annotations"] = json!({"io.kubernetes.cri.sandbox-id": "abc"});
    v["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/data", "type": "bind", "source": "/tmp", "options": ["rbind", "ro", "nosuid", "rprivate"]}));
    v["hooks"] = json!({
        "prestart": [{"path": "/bin/true", "args": ["true"], "env": ["A=b"], "timeout": 5}],
        "createRuntime": [{"path": "/bin/true"}], "createContainer": [{"path": "/bin/true"}],
        "startContainer": [{"path": "/bin/true"}], "poststart": [{"path": "/bin/true"}], "poststop": [{"path": "/bin/true", "timeout": 1}]
    });
    let linux = &mut v["linux"];
    linux["namespaces"].as_array_mut().unwrap().push(json!({"type": "user"}));
    linux["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    linux["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    linux["sysctl"] = json!({"net.ipv4.ip_forward": "1", "kernel.shmmax": "1000000"});
    linux["cgroupsPath"] = json!("/fuzz/ctr");
    linux["resources"] = json!({
        "devices": [{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rw"},
                    {"allow": true, "type": "b", "major": 8, "access": "r"}],
        "memory": {"limit": 67108864, "reservation": 33554432, "swap": 134217728, "swappiness": 10, "disableOOMKiller": false},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0-1", "mems": "0", "realtimeRuntime": 0, "realtimePeriod": 0},
        "pids": {"limit": 100},
        "blockIO": {"weight": 500, "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}]},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 0}],
        "network": {"classID": 1, "priorities": [{"name": "eth0", "priority": 1}]},
        "unified": {"pids.max": "100"}
    });
    linux["devices"] = json!([{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 438, "uid": 0, "gid": 0}]);
    linux["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1, "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
        "flags": ["SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
        "syscalls": [
            {"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}
        ]
    });
    linux["rootfsPropagation"] = json!("rslave");
    linux["personality"] = json!({"domain": "LINUX"});
    linux["timeOffsets"] = json!({"monotonic": {"secs": 10, "nanosecs": 0}});
    v
}

fn config_seeds() -> Vec<Vec<u8>> {
    let mut full_time = full_config();
    full_time["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "time"}));
    vec![
        serde_json::to_vec_pretty(&runtime_core::spec::default_spec(false)).unwrap(),
        serde_json::to_vec(&runtime_core::spec::default_spec(true)).unwrap(),
        serde_json::to_vec_pretty(&full_config()).unwrap(),
        serde_json::to_vec(&full_time).unwrap(),
    ]
}

/// Rules in a profile worth compiling here: libseccomp's time grows with
/// them, and a program over 8192 instructions hangs the export (issue 19
/// #4, fixed apart; the hostile table has that row).
fn small_profile(s: &oci_spec::runtime::LinuxSeccomp) -> bool {
    s.syscalls().iter().flatten().map(|r| r.names().len().max(1) * (1 + r.args().as_ref().map_or(0, Vec::len))).sum::<usize>() <= 400
}

/// What the runtime derives from a valid config before it forks: none of
/// it may panic, whatever the config says. `compiled` holds the seccomp
/// profiles compiled already (most mutants do not touch the profile, and
/// compiling one takes milliseconds).
fn derive(spec: &oci_spec::runtime::Spec, compiled: &mut HashSet<Vec<u8>>) {
    for m in spec.mounts().iter().flatten() {
        let _ = mounts::parse_options(m.options().as_deref().unwrap_or(&[]));
    }
    let linux = spec.linux().as_ref();
    let mut extra = vec![];
    for d in linux.and_then(|l| l.devices().as_ref()).into_iter().flatten() {
        if let Ok(d) = devices::from_spec(d) {
            extra.push((d.kind, d.major, d.minor));
        }
    }
    let _ = namespaces::new_flags(linux.and_then(|l| l.namespaces().as_deref()).unwrap_or(&[]));
    let _ = cgroups::container_dirs(cgroups::Hierarchies::cached(), linux.and_then(|l| l.cgroups_path().as_deref()), "fuzz-id");
    let _ = runtime_core::hooks::all(spec);
    if let Some(r) = linux.and_then(|l| l.resources().as_ref()) {
        if let Some(c) = r.cpu() {
            let _ = c.cpus().as_deref().map(resources::parse_list);
            let _ = c.mems().as_deref().map(resources::parse_list);
        }
        for h in r.hugepage_limits().iter().flatten() {
            let _ = resources::hugepage_kb(h.page_size());
            let _ = resources::hugepage_file_name(h.page_size());
        }
        if let Ok(rules) = resources::device_rules(r.devices().as_deref().unwrap_or(&[]), &extra) {
            device_program_agrees(&rules);
        }
    }
    if let Some(s) = linux.and_then(|l| l.seccomp().as_ref()).filter(|s| small_profile(s)) {
        if compiled.insert(serde_json::to_vec(s).unwrap_or_default()) {
            let _ = seccomp::compile(s);
        }
    }
}

/// The eBPF device program (cgroup v2) must decide as the v1 emulation of
/// the same rules does, for the devices the rules name and a few others.
fn device_program_agrees(rules: &[devices_bpf::Rule]) {
    let mut e = devices_bpf::Emulated::new();
    for r in rules {
        e.apply(*r);
    }
    let prog = devices_bpf::compile(&e);
    let mut probes: Vec<(char, i64, i64)> = vec![('c', 1, 3), ('b', 8, 0), ('c', 5, 1), ('c', 0, 0)];
    probes.extend(rules.iter().filter(|r| r.kind != 'a').map(|r| (r.kind, r.major.max(0), r.minor.max(0))));
    for (kind, ma, mi) in probes {
        // The kernel's numbers are 32-bit (12 and 20 bits in fact).
        let (Ok(ma32), Ok(mi32)) = (u32::try_from(ma), u32::try_from(mi)) else { continue };
        for acc in [devices_bpf::ACC_READ, devices_bpf::ACC_WRITE, devices_bpf::ACC_MKNOD] {
            let want = e.allows(kind, ma, mi, acc);
            let got = devices_bpf::interpret(&prog, kind, ma32, mi32, acc) == 1;
            assert_eq!(got, want, "device program and emulation differ on {kind} {ma}:{mi} access {acc:#x}; rules {rules:?}");
        }
    }
}

/// config.json: parse, validate, and everything derived from a valid one.
#[test]
fn fuzz_config_load_and_validate() {
    let tmp = Tmp::new("config");
    let path = tmp.0.join("config.json");
    let seeds = config_seeds();
    let m = Mutator::new(Kind::Json, MAX_LEN, SPEC_WORDS, &seeds);
    quiet_log();
    let mut compiled = HashSet::new();
    let s = fuzz::run("config", &corpus("config"), &seeds, &m, &budget(), |data| {
        let Ok((spec, _caps)) = bundle::parse(&path, data) else { return false };
        if bundle::validate(&path, &tmp.0, &spec).is_err() {
            return false;
        }
        derive(&spec, &mut compiled);
        true
    });
    assert!(s.accepted > 0 || s.iters == 0, "no mutant was a valid config: the mutator is not reaching validate");
}

/// `exec --process FILE` (containerd's and conmon's form).
#[test]
fn fuzz_exec_process_file() {
    let path = Path::new("process.json");
    let seeds: Vec<Vec<u8>> =
        config_seeds().iter().map(|c| serde_json::to_vec(&serde_json::from_slice::<Value>(c).unwrap()["process"]).unwrap()).collect();
    let m = Mutator::new(Kind::Json, MAX_LEN, SPEC_WORDS, &seeds);
    quiet_log();
    fuzz::run("process", &corpus("process"), &seeds, &m, &budget(), |data| bundle::parse_process(path, data).is_ok());
}

/// The seccomp translator: a profile (Docker's, ours and small ones) to
/// libseccomp and a BPF program.
#[test]
fn fuzz_seccomp_translator() {
    let caps = ["CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_KILL"];
    let full = full_config();
    let seeds = vec![
        serde_json::to_vec(&runtime_core::linux::seccomp_profile::default_profile(&caps)).unwrap(),
        serde_json::to_vec(&runtime_core::linux::seccomp_profile::default_profile(&[])).unwrap(),
        serde_json::to_vec(&full["linux"]["seccomp"]).unwrap(),
        br#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/run/agent.sock","listenerMetadata":"m","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#.to_vec(),
        br#"{"defaultAction":"SCMP_ACT_KILL_PROCESS","architectures":["SCMP_ARCH_X32"],"flags":["SECCOMP_FILTER_FLAG_LOG","SECCOMP_FILTER_FLAG_TSYNC"],"syscalls":[{"names":["getpid"],"action":"SCMP_ACT_TRACE","errnoRet":5,"args":[{"index":5,"value":18446744073709551615,"op":"SCMP_CMP_GT"},{"index":5,"value":1,"op":"SCMP_CMP_NE"}]}]}"#.to_vec(),
    ];
    let m = Mutator::new(Kind::Json, MAX_LEN, SPEC_WORDS, &seeds);
    fuzz::run("seccomp", &corpus("seccomp"), &seeds, &m, &budget(), |data| {
        let Ok(s) = serde_json::from_slice::<oci_spec::runtime::LinuxSeccomp>(data) else { return false };
        if !small_profile(&s) {
            return false;
        }
        match seccomp::compile(&s) {
            Ok(p) => {
                assert_eq!(p.bpf.len() % 8, 0, "a BPF program is whole instructions");
                assert!(!p.bpf.is_empty() && p.bpf.len() / 8 <= 4096, "{} instructions", p.bpf.len() / 8);
                true
            }
            Err(_) => false,
        }
    });
}

/// state.json as `state`, `list`, `kill` and `delete` read it, and the
/// status derived from it (which looks at /proc and the recorded cgroups:
/// reads only, never a signal).
#[test]
fn fuzz_state_load() {
    let tmp = Tmp::new("state");
    let store = Store::new(&tmp.0);
    let dir = tmp.0.join("c1");
    std::fs::create_dir_all(&dir).unwrap();
    let me = std::process::id();
    let seeds: Vec<Vec<u8>> = vec![
        serde_json::to_vec(&json!({
            "id": "c1", "backend": "native", "bundle": "/b", "rootfs": "/b/rootfs", "status": "created",
            "init": {"pid": me, "start_time": 12345}, "created": "2026-01-01T00:00:00.000000000Z", "owner": "root",
            "annotations": {"a": "b"}, "cgroups": ["/sys/fs/cgroup/pids/fuzz-none"], "host_mounts": ["/mnt/x"],
            "private_pid_ns": true,
            "hooks": {"poststart": [{"path": "/bin/true", "args": ["true"], "timeout": 1}], "poststop": [{"path": "/bin/true"}]}
        }))
        .unwrap(),
        serde_json::to_vec(&json!({
            "id": "c1", "backend": "native", "bundle": "/b", "rootfs": "/b/rootfs", "status": "creating", "init": null,
            "created": "x", "owner": "1000", "private_pid_ns": false
        }))
        .unwrap(),
    ];
    let words = ["creating", "created", "native", "init", "pid", "start_time", "cgroups", "hooks", "poststop", "private_pid_ns"];
    let m = Mutator::new(Kind::Json, MAX_LEN, &words, &seeds);
    let backend = runtime_core::native::Native;
    let rt = runtime_core::lifecycle::Runtime { store: Store::new(&tmp.0), backend: &backend };
    fuzz::run("state", &corpus("state"), &seeds, &m, &budget(), |data| {
        std::fs::write(dir.join("state.json"), data).unwrap();
        let Ok(st) = store.peek("c1") else { return false };
        let status = rt.status(&st, false);
        let oci = runtime_core::lifecycle::OciState::new(&st, status);
        let _ = oci.hook_json();
        let _ = serde_json::to_vec(&st);
        true
    });
}

/// The command line's values: durations (`events --interval`), sizes
/// (`update --memory`), signals (`kill`), ids, and /proc/self/mountinfo
/// lines (the cgroup hierarchies).
#[test]
fn fuzz_cli_values() {
    let seeds: Vec<Vec<u8>> = [
        "5s",
        "1m30s",
        "1.5h",
        "250us",
        "0",
        "512m",
        "1g",
        "-1",
        "1.5k",
        "KILL",
        "SIGTERM",
        "RTMIN+3",
        "rtmin",
        "9",
        "64",
        "abc-DEF_1.2",
        "36 25 0:30 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory",
        "40 25 0:34 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw,nsdelegate",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    let words = [
        "s",
        "ms",
        "µs",
        "h",
        "m",
        "g",
        "k",
        "SIG",
        "RTMIN",
        "RTMAX",
        "+",
        "-",
        ".",
        "18446744073709551615",
        "9999999999",
        "2147483647",
        "1e9",
    ];
    let m = Mutator::new(Kind::Bytes, 4096, &words, &seeds);
    fuzz::run("cli", &corpus("cli"), &seeds, &m, &budget(), |data| {
        let s = String::from_utf8_lossy(data);
        let mut ok = runtime_core::lifecycle::events::parse_duration(&s).is_ok();
        ok |= runtime_core::lifecycle::update::parse_bytes("memory", &s).is_ok();
        ok |= runtime_core::lifecycle::parse_signal(&s).is_ok();
        ok |= runtime_core::id::validate(&s).is_ok();
        let _ = runtime_core::linux::cgroups::Hierarchies::parse(&s);
        ok
    });
}
