//! rpc-runv end to end on QEMU/TCG (root): containers in their own VM
//! through the CLI, checked from inside (own kernel, hostname, the guest
//! cgroup's limit, a bind mount written from the guest) and from the host
//! (exit status, state, signals, nothing left after delete).
//!
//! Needs what `make test` provides: qemu-system-x86_64, virtiofsd,
//! vhost-device-vsock, the guest kernel (`make guest`) and the agent
//! initramfs beside the rpc-runv binary (the Makefile builds it).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use testkit::cli::{command, run_to_files, wait_until, Out};

const PKG: &str = env!("CARGO_PKG_NAME");
const RUNTIME: &str = env!("CARGO_BIN_EXE_rpc-runv");
/// A VM boot, create and start take ~2-4 s on QEMU/TCG here; a loaded CI
/// host gets room, a hung guest does not hang the suite.
const VERB: Duration = Duration::from_secs(120);

struct Vm {
    dir: PathBuf,
    root: PathBuf,
    bundle: PathBuf,
    id: String,
    config: Value,
    n: u32,
}

impl Vm {
    /// A busybox bundle whose process runs `script` under sh, or None
    /// (the skip recorded) without root or QEMU.
    fn new(tag: &str, script: &str) -> Option<Vm> {
        if testkit::skip::unless_root(PKG, tag) {
            return None;
        }
        if let Err(e) = rpc_runv::hypervisor::binaries::qemu() {
            testkit::skip!("{tag}: {e}");
            return None;
        }
        let dir = std::env::temp_dir().join(format!("rpc-runv-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let bundle = dir.join("bundle");
        let rootfs = bundle.join("rootfs");
        std::fs::create_dir_all(rootfs.join("etc")).expect("bundle dir");
        testkit::Busybox::find().expect("busybox-static").install(&rootfs).expect("busybox in the rootfs");
        std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").expect("passwd");
        let spec = Command::new(RUNTIME).args(["spec", "--bundle"]).arg(&bundle).output().expect("rpc-runv spec");
        assert!(spec.status.success(), "rpc-runv spec: {}", String::from_utf8_lossy(&spec.stderr));
        let mut config: Value = serde_json::from_slice(&std::fs::read(bundle.join("config.json")).expect("config")).expect("json");
        config["process"]["terminal"] = json!(false);
        config["process"]["args"] = json!(["sh", "-c", script]);
        config["hostname"] = json!("in-a-vm");
        let ns = config["linux"]["namespaces"].as_array_mut().expect("namespaces");
        if !ns.iter().any(|n| n["type"] == "cgroup") {
            ns.push(json!({"type": "cgroup"}));
        }
        let id = format!("{tag}-{}", std::process::id());
        Some(Vm { root: dir.join("root"), dir, bundle, id, config, n: 0 })
    }

    fn write_config(&self) {
        std::fs::write(self.bundle.join("config.json"), serde_json::to_vec_pretty(&self.config).expect("encode")).expect("config.json");
    }

    fn rt(&mut self, args: &[&str]) -> Out {
        self.n += 1;
        let c = command(Path::new(RUNTIME), &self.root, &[] as &[&str], args);
        let cmd = format!("rpc-runv {}", args.join(" "));
        run_to_files(c, cmd, self.dir.join(format!("out{}", self.n)), self.dir.join(format!("err{}", self.n)), VERB)
    }

    fn run(&mut self) -> Out {
        self.write_config();
        let (b, id) = (self.bundle.display().to_string(), self.id.clone());
        self.rt(&["run", "--bundle", &b, &id])
    }

    fn state(&mut self) -> Option<Value> {
        let id = self.id.clone();
        let o = self.rt(&["state", &id]);
        if !o.ok() {
            return None;
        }
        serde_json::from_str(&o.stdout).ok()
    }

    fn status(&mut self) -> String {
        self.state().and_then(|s| s["status"].as_str().map(String::from)).unwrap_or_default()
    }

    /// What the container left on the host: its state, its host side's
    /// processes (QEMU, virtiofsd, vhost-device-vsock all run under the
    /// state dir's paths), cgroups, mounts.
    fn leftovers(&self) -> Vec<String> {
        let mut left: Vec<String> = testkit::leaks::dir_entries(&self.root).into_iter().map(|e| format!("state {e}")).collect();
        // The host side's processes (supervisor, QEMU, virtiofsd,
        // vhost-device-vsock) are all in the container's cgroup.
        for p in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let cg = std::fs::read_to_string(p.path().join("cgroup")).unwrap_or_default();
            // A zombie is dead already: its reaper (not us) is init.
            let stat = std::fs::read_to_string(p.path().join("stat")).unwrap_or_default();
            let zombie = stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z'));
            if cg.contains(&self.id) && !zombie {
                let cmd = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
                left.push(format!("process {}: {}", p.file_name().to_string_lossy(), String::from_utf8_lossy(&cmd).replace('\0', " ")));
            }
        }
        left.extend(testkit::leaks::cgroup_dirs_containing(&self.id).into_iter().map(|d| format!("cgroup {}", d.display())));
        left.extend(testkit::leaks::mounts_mentioning(&self.dir).into_iter().map(|m| format!("mount {m}")));
        left
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let id = self.id.clone();
        let _ = self.rt(&["delete", "--force", &id]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn host_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string()
}

/// `run` prints what the container printed and keeps its exit status;
/// the container runs on its own kernel, with its own hostname, and
/// nothing is left afterwards.
#[test]
fn run_prints_output_and_keeps_the_status_on_its_own_kernel() {
    let Some(mut vm) = Vm::new("run", "echo hi; echo kernel=$(uname -r); echo host=$(hostname); echo oops >&2; exit 3") else { return };
    let o = vm.run();
    assert_eq!(o.code(), 3, "{}", o.describe());
    assert!(o.stdout.lines().any(|l| l == "hi"), "{}", o.describe());
    let kernel = o.stdout.lines().find_map(|l| l.strip_prefix("kernel=")).unwrap_or_default().to_string();
    assert!(!kernel.is_empty() && kernel != host_release(), "the container's kernel is the host's ({kernel}): {}", o.describe());
    assert!(o.stdout.lines().any(|l| l == "host=in-a-vm"), "{}", o.describe());
    assert!(o.stderr.contains("oops"), "stderr lost: {}", o.describe());
    eprintln!("rpc-runv run: {:.2} s (boot, create, start, exit, delete)", o.elapsed.as_secs_f64());
    let left = vm.leftovers();
    assert!(left.is_empty(), "left after run: {left:#?}");
}

/// create parks the container in a booted VM; start runs it; a SIGTERM
/// to the container reaches the process in the guest (its trap runs);
/// delete leaves nothing.
#[test]
fn create_start_kill_delete() {
    let script = "trap 'echo got-term; exit 7' TERM; echo started; while :; do sleep 0.1; done";
    let Some(mut vm) = Vm::new("cycle", script) else { return };
    vm.write_config();
    let (b, id) = (vm.bundle.display().to_string(), vm.id.clone());
    let created = vm.rt(&["create", "--bundle", &b, &id]);
    assert!(created.ok(), "{}", created.describe());
    assert_eq!(vm.status(), "created");
    assert!(!created.reread_stdout().contains("started"), "the process ran before start");
    let started = vm.rt(&["start", &id]);
    assert!(started.ok(), "{}", started.describe());
    assert!(
        wait_until(Duration::from_secs(30), || created.reread_stdout().contains("started")),
        "no output after start: {}",
        created.reread_stdout()
    );
    assert_eq!(vm.status(), "running");
    let killed = vm.rt(&["kill", &id, "TERM"]);
    assert!(killed.ok(), "{}", killed.describe());
    assert!(wait_until(Duration::from_secs(30), || vm.status() == "stopped"), "still {} after SIGTERM", vm.status());
    assert!(created.reread_stdout().contains("got-term"), "the trap did not run: {}", created.reread_stdout());
    let deleted = vm.rt(&["delete", &id]);
    assert!(deleted.ok(), "{}", deleted.describe());
    let left = vm.leftovers();
    assert!(left.is_empty(), "left after delete: {left:#?}");
}

/// The config's memory limit is the guest cgroup's, and a bind mount's
/// source on the host sees what the container wrote there.
#[test]
fn memory_limit_and_bind_mount_reach_the_guest() {
    let script = "cat /sys/fs/cgroup/memory.max; echo written-in-the-guest > /data/out; cat /data/in";
    let Some(mut vm) = Vm::new("limits", script) else { return };
    let shared = vm.dir.join("shared");
    std::fs::create_dir_all(&shared).expect("shared dir");
    std::fs::write(shared.join("in"), "from-the-host\n").expect("in");
    vm.config["linux"]["resources"]["memory"] = json!({"limit": 64 << 20});
    vm.config["mounts"].as_array_mut().expect("mounts").push(json!({
        "destination": "/data", "type": "bind", "source": shared, "options": ["rbind", "rw"]
    }));
    let o = vm.run();
    assert_eq!(o.code(), 0, "{}", o.describe());
    assert!(o.stdout.lines().any(|l| l == (64u64 << 20).to_string()), "memory.max is not the limit: {}", o.describe());
    assert!(o.stdout.contains("from-the-host"), "{}", o.describe());
    assert_eq!(std::fs::read_to_string(shared.join("out")).unwrap_or_default(), "written-in-the-guest\n");
}

/// A config a VM cannot run (a host namespace to join) fails at create,
/// naming what is wrong, and leaves nothing behind.
#[test]
fn a_host_namespace_is_refused_and_nothing_is_left() {
    let Some(mut vm) = Vm::new("hostns", "true") else { return };
    vm.config["linux"]["namespaces"].as_array_mut().expect("namespaces").push(json!({"type": "ipc", "path": "/proc/1/ns/ipc"}));
    vm.config["linux"]["namespaces"].as_array_mut().expect("namespaces").retain(|n| !(n["type"] == "ipc" && n.get("path").is_none()));
    let o = vm.run();
    assert_ne!(o.code(), 0, "{}", o.describe());
    assert!(o.stderr.contains("ipc") && o.stderr.contains("/proc/1/ns/ipc") && o.stderr.contains("VM"), "{}", o.describe());
    let left = vm.leftovers();
    assert!(left.is_empty(), "left after a refused create: {left:#?}");
}

/// A running container in a VM, for the exec tests.
fn running(tag: &str) -> Option<Vm> {
    let mut vm = Vm::new(tag, "echo up; while :; do sleep 0.1; done")?;
    let o = vm.run_detached();
    assert!(o.ok(), "{}", o.describe());
    Some(vm)
}

impl Vm {
    fn run_detached(&mut self) -> Out {
        self.write_config();
        let (b, id) = (self.bundle.display().to_string(), self.id.clone());
        self.rt(&["run", "-d", "--bundle", &b, &id])
    }
}

/// exec runs in the guest container (its kernel, its filesystem), relays
/// output and keeps the exit status; `exec -d --pid-file` gives a host pid
/// whose signals reach the guest process, and whose status is its own.
#[test]
fn exec_runs_in_the_guest_and_its_proxy_stands_for_it() {
    let Some(mut vm) = running("exec") else { return };
    let id = vm.id.clone();
    let o = vm.rt(&["exec", &id, "sh", "-c", "echo in-guest $(uname -r); cat /etc/passwd | head -1; echo err >&2; exit 5"]);
    assert_eq!(o.code(), 5, "{}", o.describe());
    assert!(o.stdout.contains("in-guest ") && !o.stdout.contains(&host_release()), "{}", o.describe());
    assert!(o.stdout.contains("root:x:0:0"), "{}", o.describe());
    assert!(o.stderr.contains("err"), "{}", o.describe());

    // The proxy outlives `exec -d`: as the shim would, be its subreaper
    // and reap it, to see its status.
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) takes no pointers.
    assert_eq!(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) }, 0);
    let pid_file = vm.dir.join("exec.pid");
    let pf = pid_file.display().to_string();
    let o = vm.rt(&["exec", "-d", "--pid-file", &pf, &id, "sh", "-c", "trap 'exit 9' TERM; echo trapping; while :; do sleep 0.1; done"]);
    assert!(o.ok(), "{}", o.describe());
    let pid: i32 = std::fs::read_to_string(&pid_file).expect("pid file").trim().parse().expect("a pid");
    // Its output goes where exec's went: the proxy relays it.
    let ready = wait_until(Duration::from_secs(20), || o.reread_stdout().contains("trapping"));
    assert!(ready, "the detached exec did not start");
    // SAFETY: kill(2) of the pid the runtime reported, our child now.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0, "the proxy {pid} is gone before its signal");
    let mut status = 0;
    // SAFETY: waitpid on our (adopted) child with a valid status pointer.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(r, pid, "waitpid: {}", std::io::Error::last_os_error());
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 9, "the proxy's status is not the guest process's (9): {status:#x}");
    let stopped = vm.rt(&["kill", &id, "KILL"]);
    assert!(stopped.ok(), "{}", stopped.describe());
}

/// `exec -t` with a console socket: the caller gets a pty master; what is
/// typed reaches the guest process, which sees a terminal of the size set
/// on the master, and the exec's status is the guest process's.
#[test]
fn exec_with_a_terminal() {
    let Some(mut vm) = running("exectty") else { return };
    let id = vm.id.clone();
    let sock_path = vm.dir.join("console.sock");
    let mut sock = testkit::console::ConsoleSocket::listen(&sock_path, Duration::from_secs(60)).expect("console socket");
    let sp = sock_path.display().to_string();
    let o = vm.rt(&["exec", "-t", "-d", "--console-socket", &sp, &id, "sh"]);
    assert!(o.ok(), "{}", o.describe());
    let mut master = sock.master().expect("the pty master");
    assert!(testkit::console::is_pty_master(&master));
    let ws = libc::winsize { ws_row: 33, ws_col: 101, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads one winsize.
    unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&master), libc::TIOCSWINSZ, &ws) };
    std::io::Write::write_all(&mut master, b"echo size=$(stty size) tty=$(tty)\n").expect("typing");
    let seen = testkit::console::read_until(&mut master, "tty=/dev/pts", Duration::from_secs(30));
    assert!(seen.contains("tty=/dev/pts/"), "no answer through the terminal: {seen:?}");
    assert!(seen.contains("size=33 101"), "the master's size did not reach the guest: {seen:?}");
}
