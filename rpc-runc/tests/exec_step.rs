//! The exec step (runtime-core's `linux::process::step`): a backend makes
//! the container's process a program of its own, in the container's
//! namespaces and cgroups, as rpc-runv does with its VMM.
//!
//! This binary is both the suite and the runtime under test: started with
//! `RPC_EXEC_STEP_RUNTIME` set, it is runtime-core's CLI over a backend
//! that wraps the native one and sets an exec step described by the
//! bundle's annotations (so each test chooses its step). The step's
//! program is a copy of the host's static busybox outside the rootfs,
//! handed over sealed (`exe_seal::seal_program`).
//!
//! (No libtest harness: the runtime role needs its own argv, and the
//! cases run one after the other.)

#[macro_use]
mod common;

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use runtime_core::backend::{Backend, CreateHooks, CreateOpts, ExecOpts, OomEvents, Stats};
use runtime_core::bundle::Bundle;
use runtime_core::linux::cgroups::resources::Res;
use runtime_core::linux::exe_seal;
use runtime_core::linux::process::step::ExecStep;
use runtime_core::native::Native;
use runtime_core::state::{Dir, State};
use serde_json::json;

const ROLE: &str = "RPC_EXEC_STEP_RUNTIME";
/// Host path of the step's program.
const PROGRAM: &str = "rpc.test/step-program";
/// The step runs `sh -c SCRIPT`.
const SCRIPT: &str = "rpc.test/step-script";
/// A host file opened and kept for the step (its fd number in $STEP_FD).
const KEEP: &str = "rpc.test/step-keep";
/// "1": hand the program over unsealed (refused).
const UNSEALED: &str = "rpc.test/step-unsealed";
/// "1": exec the step at ready, without parking for start.
const AT_READY: &str = "rpc.test/step-at-ready";

/// The native backend, with the container's process replaced by the step.
struct StepBackend;

fn annotation(bundle: &Bundle, key: &str) -> Option<String> {
    bundle.spec.annotations().as_ref().and_then(|a| a.get(key).cloned())
}

fn step_of(bundle: &Bundle) -> runtime_core::Result<Option<ExecStep>> {
    let (Some(program), Some(script)) = (annotation(bundle, PROGRAM), annotation(bundle, SCRIPT)) else { return Ok(None) };
    let program = Path::new(&program);
    let fd: OwnedFd = if annotation(bundle, UNSEALED).as_deref() == Some("1") {
        std::fs::File::open(program).map_err(|e| runtime_core::Error::Io { context: program.display().to_string(), source: e })?.into()
    } else {
        exe_seal::seal_program(program, &std::env::temp_dir())?
    };
    let keep = match annotation(bundle, KEEP) {
        Some(p) => Some(OwnedFd::from(std::fs::File::open(&p).map_err(|e| runtime_core::Error::Io { context: p.clone(), source: e })?)),
        None => None,
    };
    let mut env = vec!["STEP_ENV=from-the-step".to_string(), "PATH=/bin".to_string()];
    if let Some(k) = &keep {
        env.push(format!("STEP_FD={}", k.as_raw_fd()));
    }
    let argv = ["sh", "-c", script.as_str(), "step-argv0"].map(String::from);
    let mut step = ExecStep::new(fd, &argv, &env)?;
    if annotation(bundle, AT_READY).as_deref() == Some("1") {
        step = step.at_ready();
    }
    if let Some(k) = keep {
        step.keep_fd(k);
    }
    Ok(Some(step))
}

/// The native backend, but for the exec step of create.
impl Backend for StepBackend {
    fn name(&self) -> &'static str {
        Native.name()
    }
    fn check(&self, st: &State, path: &Path) -> runtime_core::Result<()> {
        Native.check(st, path)
    }
    fn plan(&self, id: &str, bundle: &Bundle) -> runtime_core::Result<serde_json::Value> {
        Native.plan(id, bundle)
    }
    fn reserve(&self, st: &State, dir: &Dir) -> runtime_core::Result<Vec<OwnedFd>> {
        Native.reserve(st, dir)
    }
    fn forget(&self, dir: &Path) {
        Native.forget(dir)
    }
    fn create(
        &self,
        st: &State,
        bundle: &Bundle,
        dir: &Dir,
        held: Vec<OwnedFd>,
        mut opts: CreateOpts,
        hooks: &mut dyn CreateHooks,
    ) -> runtime_core::Result<i32> {
        opts.exec_step = step_of(bundle)?;
        Native.create(st, bundle, dir, held, opts, hooks)
    }
    fn parked(&self, st: &State, dir: &Path) -> bool {
        Native.parked(st, dir)
    }
    fn start(&self, st: &State, dir: &Dir) -> runtime_core::Result<()> {
        Native.start(st, dir)
    }
    fn exec(
        &self,
        st: &State,
        bundle: &Bundle,
        process: &oci_spec::runtime::Process,
        caps: Option<&runtime_core::linux::caps::CapSets>,
        opts: ExecOpts,
    ) -> runtime_core::Result<i32> {
        Native.exec(st, bundle, process, caps, opts)
    }
    fn signal(&self, st: &State, sig: i32, all: bool) -> runtime_core::Result<()> {
        Native.signal(st, sig, all)
    }
    fn kill_and_wait(&self, st: &State, paused: bool) -> runtime_core::Result<()> {
        Native.kill_and_wait(st, paused)
    }
    fn pids(&self, st: &State) -> runtime_core::Result<Vec<i32>> {
        Native.pids(st)
    }
    fn update(&self, st: &State, res: &Res) -> runtime_core::Result<()> {
        Native.update(st, res)
    }
    fn stats(&self, st: &State) -> runtime_core::Result<Stats> {
        Native.stats(st)
    }
    fn oom_events(&self, st: &State) -> runtime_core::Result<Option<Box<dyn OomEvents>>> {
        Native.oom_events(st)
    }
    fn pause(&self, st: &State, frozen: bool) -> runtime_core::Result<()> {
        Native.pause(st, frozen)
    }
    fn paused(&self, st: &State) -> bool {
        Native.paused(st)
    }
    fn destroy(&self, st: &State) -> runtime_core::Result<()> {
        Native.destroy(st)
    }
    fn destroy_if_empty(&self, st: &State) -> bool {
        Native.destroy_if_empty(st)
    }
}

/// A copy of the host's static busybox in the test's dir, outside the
/// rootfs (whose own busybox is another copy).
fn step_program(h: &Harness) -> PathBuf {
    let p = h.dir.join("exec-step-prog");
    std::fs::copy(testkit::Busybox::find().expect("busybox-static").binary, &p).unwrap();
    p
}

fn with_step(h: &mut Harness, script: &str) {
    let prog = step_program(h);
    h.config["annotations"] = json!({ PROGRAM: prog.to_string_lossy(), SCRIPT: script });
}

/// What the step printed, as key=value lines.
fn field<'a>(out: &'a str, key: &str) -> Option<&'a str> {
    out.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
}

/// The step runs instead of process.args, from the host's handle (its
/// /proc/<pid>/exe is not in the rootfs), with its own argv, environment
/// and kept fd, in the container's namespaces and cgroup as the host sees
/// init's, and without the spec's seccomp filter.
fn step_runs_in_the_containers_namespaces_and_cgroup() {
    let mut h = harness!("exec-step-views");
    h.sh("echo PROCESS-RAN; exit 9");
    let token = h.dir.join("token");
    std::fs::write(&token, "token-from-the-host").unwrap();
    with_step(
        &mut h,
        r#"echo STEP-RAN "$0"
e=$(readlink /proc/$$/exe); echo "exe=$e"
[ -e "$e" ] && echo "exe-in-rootfs=yes"
echo "net=$(readlink /proc/$$/ns/net)"
echo "mnt=$(readlink /proc/$$/ns/mnt)"
echo "pidns=$(readlink /proc/$$/ns/pid)"
echo "pid=$$"
echo "env=$STEP_ENV,$HOME"
echo "fd=$(cat /proc/$$/fd/$STEP_FD)"
mkdir /tmp/made && echo "mkdir=ok"
echo cgroup-begin; cat /proc/$$/cgroup; echo cgroup-end
exit 0"#,
    );
    h.config["annotations"][KEEP] = json!(token.to_string_lossy());
    // A filter the step must not get: mkdir denied.
    h.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [ { "names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO" } ]
    });
    let created = h.create();
    created.assert_ok();
    // init is parked: the host's view of its namespaces and cgroup, which
    // the step's process (init after the exec) must report from inside.
    let pid = h.pid();
    let host = |what: &str| std::fs::read_link(format!("/proc/{pid}/{what}")).unwrap().to_string_lossy().into_owned();
    let (net, mnt, pidns) = (host("ns/net"), host("ns/mnt"), host("ns/pid"));
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let mine = |what: &str| std::fs::read_link(format!("/proc/self/{what}")).unwrap().to_string_lossy().into_owned();
    assert_ne!(net, mine("ns/net"), "init is in the host's network namespace");
    assert!(!cgroup_dirs_named(&h.id).is_empty(), "no cgroup dir for the container");
    h.start().assert_ok();
    assert!(h.wait_status("stopped", Duration::from_secs(10)), "the step did not end");
    let out = created.reread_stdout();
    let ctx = format!("step output:\n{out}\nstderr:\n{}", std::fs::read_to_string(&created.stderr_path).unwrap_or_default());
    assert!(out.contains("STEP-RAN step-argv0"), "{ctx}");
    assert!(!out.contains("PROCESS-RAN"), "process.args ran: {ctx}");
    let exe = field(&out, "exe").unwrap_or_default();
    assert!(!exe.is_empty() && exe != "/bin/busybox" && !out.contains("exe-in-rootfs=yes"), "the step ran from the rootfs: {ctx}");
    assert_eq!(field(&out, "net"), Some(net.as_str()), "{ctx}");
    assert_eq!(field(&out, "mnt"), Some(mnt.as_str()), "{ctx}");
    assert_eq!(field(&out, "pidns"), Some(pidns.as_str()), "{ctx}");
    assert_eq!(field(&out, "pid"), Some("1"), "{ctx}");
    assert_eq!(field(&out, "env"), Some("from-the-step,"), "process.env or HOME reached the step: {ctx}");
    assert_eq!(field(&out, "fd"), Some("token-from-the-host"), "{ctx}");
    assert_eq!(field(&out, "mkdir"), Some("ok"), "the spec's seccomp filter was installed for the step: {ctx}");
    let inside = out.split("cgroup-begin\n").nth(1).and_then(|s| s.split("cgroup-end").next()).unwrap_or_default();
    assert_eq!(inside, cgroup, "{ctx}");
    h.delete().assert_ok();
}

/// The step's exit status is the container's (`run` in the foreground).
fn step_exit_status_is_the_containers() {
    let mut h = harness!("exec-step-status");
    h.sh("echo PROCESS-RAN; exit 9");
    with_step(&mut h, "echo STEP-RAN; exit 7");
    let o = h.run();
    assert_eq!(o.code(), 7, "{}", o.describe());
    assert!(o.stdout.contains("STEP-RAN") && !o.stdout.contains("PROCESS-RAN"), "{}", o.describe());
}

/// A step exec'd at ready runs during create, before any `start`, with no
/// exec socket left to wait on; the backend's `state` then says running
/// (native's parked() sees no socket), and kill + delete clean up.
fn step_at_ready_runs_before_start() {
    let mut h = harness!("exec-step-ready");
    h.sh("echo PROCESS-RAN; exit 9");
    with_step(&mut h, "echo STEP-AT-READY; exec sleep 100");
    h.config["annotations"][AT_READY] = json!("1");
    let created = h.create();
    created.assert_ok();
    let ran = wait_until(Duration::from_secs(10), || created.reread_stdout().contains("STEP-AT-READY"));
    assert!(ran, "the step did not run during create: {}", created.reread_stdout());
    assert!(!created.reread_stdout().contains("PROCESS-RAN"));
    assert!(!h.root.join(&h.id).join("exec.sock").exists(), "an exec socket was made for a step that does not park");
    assert!(h.wait_status("running", Duration::from_secs(5)), "state does not say running");
    h.kill("KILL").assert_ok();
    assert!(h.wait_status("stopped", Duration::from_secs(10)), "the step did not stop");
    h.delete().assert_ok();
    let id = h.id.clone();
    h.assert_no_leftovers(&id, "exec-step-ready");
}

/// A program that could be written through /proc/<pid>/exe is refused:
/// create fails naming the step, and leaves nothing behind.
fn unsealed_program_is_refused() {
    let mut h = harness!("exec-step-unsealed");
    h.sh("echo PROCESS-RAN");
    with_step(&mut h, "echo STEP-RAN");
    h.config["annotations"][UNSEALED] = json!("1");
    let o = h.create();
    o.assert_fail();
    assert!(o.stderr.contains("exec step \"sh\"") && o.stderr.contains("writable"), "{}", o.describe());
    let id = h.id.clone();
    h.assert_no_leftovers(&id, "exec-step-unsealed");
}

fn main() {
    if std::env::var_os(ROLE).is_some() {
        let id = runtime_core::cli::Identity {
            name: "rpc-exec-step-test",
            version: "0",
            commit: "test",
            default_root: "/run/rpc-exec-step-test",
        };
        std::process::exit(runtime_core::cli::main(&id, &StepBackend));
    }
    // Every runtime the harness starts is this binary, in its runtime role.
    std::env::set_var(ROLE, "1");
    std::env::set_var("RPC_RUNTIME", std::env::current_exe().unwrap());
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let tests: [(&str, fn()); 4] = [
        ("step_at_ready_runs_before_start", step_at_ready_runs_before_start),
        ("step_runs_in_the_containers_namespaces_and_cgroup", step_runs_in_the_containers_namespaces_and_cgroup),
        ("step_exit_status_is_the_containers", step_exit_status_is_the_containers),
        ("unsealed_program_is_refused", unsealed_program_is_refused),
    ];
    let (mut passed, mut failed) = (0, vec![]);
    for (name, f) in tests {
        if !filter.is_empty() && !filter.iter().any(|p| name.contains(p.as_str())) {
            continue;
        }
        match std::panic::catch_unwind(f) {
            Ok(()) => {
                println!("test {name} ... ok");
                passed += 1;
            }
            Err(_) => {
                println!("test {name} ... FAILED");
                failed.push(name);
            }
        }
    }
    println!("\nexec_step: {passed} passed; {} failed {failed:?}", failed.len());
    std::process::exit(if failed.is_empty() { 0 } else { 1 });
}
