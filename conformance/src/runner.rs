//! Driving a runtime through its command line, one case at a time.
//!
//! Each case gets a [`Ctx`]: its own temp dir with a fresh bundle (busybox
//! rootfs + baseline config the case edits), its own `--root` state dir and
//! container ids. Dropping the Ctx force-deletes every container it made,
//! stops helper processes, undoes host mounts and removes the temp dir, so a
//! case cleans up whatever way it ends.
//!
//! Runtime output goes to files, never pipes: `create` and `run -d` hand
//! their stdio to the container, so a pipe would stay open as long as it
//! runs.

use crate::bundle::{base_config, RootfsTemplate};
use crate::host::{self, Host};
use crate::verdict::{fail, skip, Verdict};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Set in the runtime's environment; must not reach the container.
pub const LEAK_VAR: &str = "RPC_CONFORMANCE_HOST_ONLY";

/// A runtime under test.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub name: String,
    pub path: PathBuf,
    /// First line of `--version`.
    pub version: String,
    /// The spec version it declares (`spec: X` in `--version`).
    pub spec: Option<String>,
}

impl Runtime {
    pub fn new(name: String, path: PathBuf) -> Runtime {
        let text = Command::new(&path)
            .arg("--version")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let version = text.lines().next().unwrap_or("").trim().to_string();
        let spec = text.lines().find_map(|l| l.trim().strip_prefix("spec:")).map(|s| s.trim().to_string());
        Runtime { name, path, version, spec }
    }
}

/// Settings shared by every case of a run.
#[derive(Debug, Clone)]
pub struct Settings {
    pub run_dir: PathBuf,
    pub template: RootfsTemplate,
    /// cgroupsPath prefix; each case adds its own leaf.
    pub cgroup_parent: String,
    pub case_timeout: Duration,
    pub cmd_timeout: Duration,
    pub keep: bool,
    /// Short tag unique to this run (used in container ids).
    pub tag: String,
}

/// The result of one runtime invocation, and the helpers to show it:
/// testkit's, shared with rpc-runc's and the shim's tests.
pub use testkit::cli::{cut, tail, Out};

/// Parse `key=value` lines.
pub fn kv(s: &str) -> BTreeMap<String, String> {
    s.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect()
}

/// Is `pid` a live (non-zombie) process? (`testkit::pid_alive`; pids
/// here are the i64 of state JSON.)
pub fn pid_alive(pid: i64) -> bool {
    i32::try_from(pid).is_ok_and(|p| p > 0 && testkit::pid_alive(p))
}

pub fn ns_inode(pid: &str, t: &str) -> String {
    fs::read_link(format!("/proc/{pid}/ns/{t}")).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Remove a tree without crossing into other filesystems (a mount left by a
/// broken runtime is detached first, never emptied) and without following
/// symlinks.
pub fn remove_tree(top: &Path) {
    let Ok(meta) = fs::symlink_metadata(top) else {
        return;
    };
    remove_inner(top, meta.dev());
}

fn remove_inner(p: &Path, dev: u64) {
    let Ok(meta) = fs::symlink_metadata(p) else {
        return;
    };
    if meta.is_dir() {
        if meta.dev() != dev {
            umount_detach(p);
            match fs::symlink_metadata(p) {
                Ok(m) if m.dev() == dev => {}
                _ => return,
            }
        }
        if let Ok(rd) = fs::read_dir(p) {
            for e in rd.flatten() {
                remove_inner(&e.path(), dev);
            }
        }
        let _ = fs::remove_dir(p);
    } else {
        if meta.dev() != dev {
            // A bind-mounted file.
            umount_detach(p);
        }
        let _ = fs::remove_file(p);
    }
}

pub fn umount_detach(p: &Path) {
    if let Ok(c) = std::ffi::CString::new(p.as_os_str().to_string_lossy().as_bytes()) {
        // SAFETY: valid C string.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

/// Everything one case owns.
pub struct Ctx<'a> {
    pub rt: &'a Runtime,
    pub host: &'a Host,
    pub settings: &'a Settings,
    pub dir: PathBuf,
    pub root: PathBuf,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// Host dir bind-mounted at /shared in the container.
    pub shared: PathBuf,
    /// The config written to the bundle before each create/run.
    pub config: Value,
    /// cgroupsPath of the baseline config.
    pub cgroups_path: String,
    pub deadline: Instant,
    ids: Vec<String>,
    id_seq: u32,
    id_base: String,
    cmd_seq: u32,
    holders: Vec<Child>,
    host_mounts: Vec<PathBuf>,
    /// Stdout file of the create/run that made each container.
    outputs: BTreeMap<String, PathBuf>,
    /// Commands run, for --keep transcripts.
    pub transcript: Vec<String>,
}

impl<'a> Ctx<'a> {
    pub fn new(rt: &'a Runtime, host: &'a Host, settings: &'a Settings, index: usize, case: &'a str) -> io::Result<Ctx<'a>> {
        let dir = settings.run_dir.join(sanitize(&rt.name)).join(format!("{index:03}-{case}"));
        remove_tree(&dir);
        fs::create_dir_all(&dir)?;
        let bundle = dir.join("bundle");
        let rootfs = bundle.join("rootfs");
        let shared = dir.join("shared");
        let root = dir.join("state");
        for d in [&bundle, &shared, &dir.join("log")] {
            fs::create_dir_all(d)?;
        }
        // Directories on the way must be searchable for mapped users.
        let mut p = dir.clone();
        while p.starts_with(&settings.run_dir) {
            let _ = fs::set_permissions(&p, fs::Permissions::from_mode(0o755));
            if !p.pop() {
                break;
            }
        }
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o777))?;
        settings.template.populate(&rootfs)?;
        let id_base = format!("{}-{}-{index}", settings.tag, sanitize(&rt.name));
        let cgroups_path = format!("{}/{}", settings.cgroup_parent, id_base);
        let config = base_config("rpc-conformance", &cgroups_path, &shared);
        Ok(Ctx {
            rt,
            host,
            settings,
            dir,
            root,
            bundle,
            rootfs,
            shared,
            config,
            cgroups_path,
            deadline: Instant::now() + settings.case_timeout,
            ids: Vec::new(),
            id_seq: 0,
            id_base,
            cmd_seq: 0,
            holders: Vec::new(),
            host_mounts: Vec::new(),
            outputs: BTreeMap::new(),
            transcript: Vec::new(),
        })
    }

    /// A new container id, remembered for cleanup. Each container gets a
    /// cgroupsPath of its own (runtimes may refuse a non-empty cgroup).
    pub fn new_id(&mut self) -> String {
        self.id_seq += 1;
        let id = if self.id_seq == 1 { self.id_base.clone() } else { format!("{}-{}", self.id_base, self.id_seq) };
        self.ids.push(id.clone());
        self.cgroups_path = format!("{}/{}", self.settings.cgroup_parent, id);
        self.config["linux"]["cgroupsPath"] = serde_json::json!(self.cgroups_path);
        id
    }

    /// Remember an id made some other way (so that cleanup deletes it).
    pub fn track_id(&mut self, id: &str) {
        if !self.ids.iter().any(|i| i == id) {
            self.ids.push(id.to_string());
        }
    }

    pub fn bundle_str(&self) -> String {
        self.bundle.to_string_lossy().into_owned()
    }

    pub fn write_config(&self) -> Result<(), Verdict> {
        let s = serde_json::to_string_pretty(&self.config).map_err(|e| fail(format!("serialize config: {e}")))?;
        fs::write(self.bundle.join("config.json"), s).map_err(|e| fail(format!("write config.json: {e}")))
    }

    /// process.args = sh -c SCRIPT.
    pub fn set_script(&mut self, script: &str) {
        self.config["process"]["args"] = serde_json::json!(["sh", "-c", script]);
    }

    fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Run the runtime with `--root` and `args`, default time limit.
    pub fn rt(&mut self, args: &[&str]) -> Out {
        let t = self.settings.cmd_timeout;
        self.rt_timeout(args, t)
    }

    pub fn rt_timeout(&mut self, args: &[&str], timeout: Duration) -> Out {
        let timeout = timeout.min(self.remaining());
        self.exec(&self.rt.path.clone(), true, args, timeout)
    }

    /// Run a runtime command without the case deadline (cleanup).
    fn rt_cleanup(&mut self, args: &[&str]) -> Out {
        self.exec(&self.rt.path.clone(), true, args, Duration::from_secs(10))
    }

    fn exec(&mut self, prog: &Path, with_root: bool, args: &[&str], timeout: Duration) -> Out {
        self.cmd_seq += 1;
        let verb = args.iter().find(|a| !a.starts_with('-')).copied().unwrap_or("cmd");
        let base = self.dir.join("log").join(format!("{:03}-{}", self.cmd_seq, sanitize(verb)));
        let mut shown = vec![self.rt.name.clone()];
        shown.extend(args.iter().map(|a| {
            let s = a.to_string();
            // Keep the table readable: abbreviate our temp paths.
            match s.strip_prefix(&self.dir.to_string_lossy().to_string()) {
                Some(rest) => format!("…{rest}"),
                None => s,
            }
        }));
        let cmd = shown.join(" ");
        let mut c = if with_root {
            testkit::cli::command(prog, &self.root, &[] as &[&str], args)
        } else {
            let mut c = Command::new(prog);
            c.args(args).stdin(Stdio::null());
            c
        };
        // Its own process group: a timeout kills what it started too.
        c.current_dir(&self.dir).env(LEAK_VAR, "1").process_group(0);
        let out = testkit::cli::run_to_files(c, cmd, base.with_extension("out"), base.with_extension("err"), timeout);
        self.transcript.push(format!("{} -> {}{}", out.cmd, out.code(), if out.timed_out { " (timeout)" } else { "" }));
        out
    }

    /// `create --bundle B [extra...] ID`; Ok only if it succeeded.
    pub fn create(&mut self, id: &str) -> Result<Out, Verdict> {
        let o = self.try_create(id, &[])?;
        if !o.ok() {
            return Err(fail(format!("create failed: {}", o.brief())));
        }
        Ok(o)
    }

    /// `create` with extra options; returns the outcome whatever it is.
    pub fn try_create(&mut self, id: &str, extra: &[&str]) -> Result<Out, Verdict> {
        self.write_config()?;
        self.track_id(id);
        let b = self.bundle_str();
        let mut args = vec!["create", "--bundle", b.as_str()];
        args.extend_from_slice(extra);
        args.push(id);
        let o = self.rt(&args);
        self.outputs.insert(id.to_string(), o.stdout_path.clone());
        Ok(o)
    }

    pub fn start(&mut self, id: &str) -> Result<Out, Verdict> {
        let o = self.rt(&["start", id]);
        if !o.ok() {
            return Err(fail(format!("start failed: {}", o.brief())));
        }
        Ok(o)
    }

    /// Foreground `run --bundle B ID`; the container's stdout is the Out's.
    pub fn run_fg(&mut self, id: &str, extra: &[&str]) -> Result<Out, Verdict> {
        self.write_config()?;
        self.track_id(id);
        let b = self.bundle_str();
        let mut args = vec!["run", "--bundle", b.as_str()];
        args.extend_from_slice(extra);
        args.push(id);
        let o = self.rt(&args);
        self.outputs.insert(id.to_string(), o.stdout_path.clone());
        Ok(o)
    }

    /// Run `script` in a new container in the foreground; its stdout if it
    /// exited 0, else a failure saying why.
    pub fn run_sh(&mut self, script: &str) -> Result<String, Verdict> {
        self.set_script(script);
        let id = self.new_id();
        let o = self.run_fg(&id, &[])?;
        if o.timed_out {
            return Err(fail(format!("container did not finish: {}", o.brief())));
        }
        if o.code() != 0 {
            let mut m = format!("container run failed: {}", o.brief());
            let so = tail(&o.stdout, 2);
            if !so.is_empty() {
                m.push_str(&format!(" (stdout: {so})"));
            }
            return Err(fail(m));
        }
        Ok(o.stdout)
    }

    /// Like run_sh, parsed as key=value lines.
    pub fn run_kv(&mut self, script: &str) -> Result<BTreeMap<String, String>, Verdict> {
        Ok(kv(&self.run_sh(script)?))
    }

    /// What the container `id` has written to its stdout so far.
    pub fn output_of(&self, id: &str) -> String {
        self.outputs.get(id).and_then(|p| fs::read_to_string(p).ok()).unwrap_or_default()
    }

    /// `state ID` parsed; a failure if the command fails or is not JSON.
    pub fn state(&mut self, id: &str) -> Result<Value, Verdict> {
        let o = self.rt(&["state", id]);
        if !o.ok() {
            return Err(fail(format!("state failed: {}", o.brief())));
        }
        serde_json::from_str(&o.stdout).map_err(|e| fail(format!("state output is not JSON ({e}): {}", cut(&o.stdout, 200))))
    }

    /// The state's status, or None if `state` fails.
    pub fn status(&mut self, id: &str) -> Option<String> {
        let o = self.rt(&["state", id]);
        if !o.ok() {
            return None;
        }
        serde_json::from_str::<Value>(&o.stdout).ok().and_then(|v| v["status"].as_str().map(String::from))
    }

    /// The pid in the state (created or running container).
    pub fn pid(&mut self, id: &str) -> Result<i64, Verdict> {
        let s = self.state(id)?;
        match s["pid"].as_i64() {
            Some(p) if p > 0 => Ok(p),
            _ => Err(fail(format!("state of a {} container has no pid: {}", s["status"], cut(&s.to_string(), 200)))),
        }
    }

    /// Poll `state` until the status is `want` (or, for "stopped", the
    /// container is gone is not accepted: it must still be listed).
    pub fn wait_status(&mut self, id: &str, want: &str, timeout: Duration) -> Result<(), Verdict> {
        let deadline = Instant::now() + timeout.min(self.remaining());
        let mut last = None;
        loop {
            last = self.status(id).or(last);
            if last.as_deref() == Some(want) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(fail(format!(
                    "status did not become {want:?} within {:.1}s (last: {})",
                    timeout.as_secs_f64(),
                    last.map(|s| format!("{s:?}")).unwrap_or("state failed".into())
                )));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// `kill ID SIG`.
    pub fn kill(&mut self, id: &str, sig: &str) -> Out {
        self.rt(&["kill", id, sig])
    }

    pub fn delete(&mut self, id: &str) -> Out {
        self.rt(&["delete", id])
    }

    pub fn delete_force(&mut self, id: &str) -> Out {
        self.rt(&["delete", "--force", id])
    }

    /// A runtime in a created container ready to start: create + pid.
    pub fn create_ready(&mut self, script: &str) -> Result<(String, i64), Verdict> {
        self.set_script(script);
        let id = self.new_id();
        self.create(&id)?;
        let pid = self.pid(&id)?;
        Ok((id, pid))
    }

    /// Create + start a long-running container; waits until the script has
    /// written /shared/ready (the script must `touch /shared/ready`).
    pub fn start_ready(&mut self, script: &str) -> Result<(String, i64), Verdict> {
        let _ = fs::remove_file(self.shared.join("ready"));
        let (id, pid) = self.create_ready(script)?;
        self.start(&id)?;
        if !self.wait_file("ready", Duration::from_secs(10)) {
            return Err(fail(format!("container did not become ready: output {:?}", cut(&self.output_of(&id), 200))));
        }
        Ok((id, pid))
    }

    /// Host path of a file in the shared dir.
    pub fn sh_path(&self, name: &str) -> PathBuf {
        self.shared.join(name)
    }

    pub fn read_shared(&self, name: &str) -> String {
        fs::read_to_string(self.shared.join(name)).unwrap_or_default()
    }

    pub fn wait_file(&self, name: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout.min(self.remaining());
        loop {
            if self.shared.join(name).exists() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Wait until `pid` is gone (or a zombie).
    pub fn wait_pid_gone(&self, pid: i64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while pid_alive(pid) {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    /// A helper process (e.g. `unshare --net sleep`) killed at cleanup.
    pub fn spawn_holder(&mut self, prog: &Path, args: &[&str]) -> Result<u32, Verdict> {
        let child = Command::new(prog)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| fail(format!("spawn {}: {e}", prog.display())))?;
        let pid = child.id();
        self.holders.push(child);
        Ok(pid)
    }

    /// Mount a tmpfs on the host at `p` (undone at cleanup).
    pub fn host_tmpfs(&mut self, p: &Path) -> Result<(), Verdict> {
        fs::create_dir_all(p).map_err(|e| fail(format!("mkdir {}: {e}", p.display())))?;
        let t = std::ffi::CString::new("tmpfs").expect("cstr");
        let target = std::ffi::CString::new(p.to_string_lossy().as_bytes()).map_err(|_| fail("bad path"))?;
        // SAFETY: valid C strings.
        let r = unsafe { libc::mount(t.as_ptr(), target.as_ptr(), t.as_ptr(), 0, std::ptr::null()) };
        if r != 0 {
            return Err(skip(format!("cannot mount a tmpfs on the host: {}", io::Error::last_os_error())));
        }
        self.host_mounts.push(p.to_path_buf());
        Ok(())
    }

    /// Bind `p` onto itself on the host, making it a mount point (undone at
    /// cleanup).
    pub fn host_bind_self(&mut self, p: &Path) -> Result<(), Verdict> {
        let cs = std::ffi::CString::new(p.to_string_lossy().as_bytes()).map_err(|_| fail("bad path"))?;
        // SAFETY: valid C strings.
        let r = unsafe { libc::mount(cs.as_ptr(), cs.as_ptr(), std::ptr::null(), libc::MS_BIND, std::ptr::null()) };
        if r != 0 {
            return Err(skip(format!("cannot bind mount on the host: {}", io::Error::last_os_error())));
        }
        self.host_mounts.push(p.to_path_buf());
        Ok(())
    }

    /// The container's cgroup directory of `controller` on the host, found
    /// from /proc/PID/cgroup of its init.
    pub fn cgroup_dir(&self, pid: i64, controller: &str) -> Result<PathBuf, Verdict> {
        let c = self.host.cgroups.controller(controller).ok_or_else(|| skip(format!("host has no {controller} controller")))?;
        let procfile = host::read(format!("/proc/{pid}/cgroup"));
        for line in procfile.lines() {
            let mut it = line.splitn(3, ':');
            let (_, ctrls, path) = match (it.next(), it.next(), it.next()) {
                (Some(a), Some(b), Some(c)) => (a, b, c),
                _ => continue,
            };
            let matches = if c.v1 { ctrls.split(',').any(|x| x == controller) } else { ctrls.is_empty() };
            if matches {
                return Ok(c.mount.join(path.trim_start_matches('/')));
            }
        }
        Err(fail(format!("/proc/{pid}/cgroup has no {controller} entry: {}", cut(&procfile.replace('\n', "; "), 200))))
    }

    /// Read an interface file of the container's cgroup.
    pub fn cgroup_read(&self, pid: i64, controller: &str, file: &str) -> Result<String, Verdict> {
        let d = self.cgroup_dir(pid, controller)?;
        fs::read_to_string(d.join(file)).map(|s| s.trim().to_string()).map_err(|e| fail(format!("read {}/{file}: {e}", d.display())))
    }

    /// Does the runtime have a `pause` command? (not part of the OCI CLI)
    pub fn pause(&mut self, id: &str) -> Result<(), Verdict> {
        let o = self.rt(&["pause", id]);
        if o.ok() {
            return Ok(());
        }
        let all = format!("{} {}", o.stdout, o.stderr).to_lowercase();
        if all.contains("unknown command")
            || all.contains("unrecognized")
            || all.contains("no help topic")
            || all.contains("unknown subcommand")
        {
            return Err(skip("runtime has no pause command"));
        }
        Err(fail(format!("pause failed: {}", o.brief())))
    }

    fn cleanup(&mut self) {
        let ids: Vec<String> = self.ids.iter().rev().cloned().collect();
        for id in ids {
            if !self.root.exists() {
                break;
            }
            let st = self.rt_cleanup(&["state", &id]);
            if !st.ok() {
                continue;
            }
            let pid = serde_json::from_str::<Value>(&st.stdout).ok().and_then(|v| v["pid"].as_i64()).unwrap_or(0);
            let o = self.rt_cleanup(&["delete", "--force", &id]);
            if !o.ok() || self.rt_cleanup(&["state", &id]).ok() {
                // Last resort: kill the init ourselves, then delete again.
                if pid > 0 && pid_alive(pid) {
                    // SAFETY: plain kill.
                    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                    self.wait_pid_gone(pid, Duration::from_secs(3));
                }
                let _ = self.rt_cleanup(&["delete", "--force", &id]);
            }
        }
        for mut h in self.holders.drain(..) {
            // SAFETY: our child's group.
            unsafe { libc::kill(-(h.id() as i32), libc::SIGKILL) };
            let _ = h.kill();
            let _ = h.wait();
        }
        for m in self.host_mounts.drain(..).rev() {
            umount_detach(&m);
        }
        if self.settings.keep {
            let _ = fs::write(self.dir.join("transcript.txt"), self.transcript.join("\n"));
        } else {
            remove_tree(&self.dir);
        }
    }
}

impl Drop for Ctx<'_> {
    fn drop(&mut self) {
        self.cleanup();
    }
}

pub fn sanitize(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' { c } else { '_' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_lines() {
        let m = kv("a=1\nnoise\nb = x=y\n");
        assert_eq!(m["a"], "1");
        assert_eq!(m["b"], "x=y");
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn remove_tree_does_not_follow_symlinks() {
        let d = std::env::temp_dir().join(format!("rpc-conf-rm-{}", std::process::id()));
        let keep = std::env::temp_dir().join(format!("rpc-conf-keep-{}", std::process::id()));
        fs::create_dir_all(d.join("a/b")).unwrap();
        fs::create_dir_all(&keep).unwrap();
        fs::write(keep.join("f"), "x").unwrap();
        std::os::unix::fs::symlink(&keep, d.join("a/link")).unwrap();
        remove_tree(&d);
        assert!(!d.exists());
        assert!(keep.join("f").exists());
        fs::remove_dir_all(&keep).unwrap();
    }

    #[test]
    fn own_pid_is_alive() {
        assert!(pid_alive(std::process::id() as i64));
        assert!(!pid_alive(0));
    }
}
