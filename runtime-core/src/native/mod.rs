//! The native backend (rpc-runc): the container's processes are host
//! processes in Linux namespaces and cgroups made here. Its record in the
//! state (`Record`) is the container's cgroup directories and whether it
//! has its own pid namespace; create parks init on the exec socket
//! (`start.rs`) until `start`.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxNamespaceType;
use serde::{Deserialize, Serialize};

use crate::backend::{Backend, CreateHooks, CreateOpts, ExecOpts, OomEvents, Stats};
use crate::bundle::Bundle;
use crate::error::{Error, Result};
use crate::linux::caps::CapSets;
use crate::linux::cgroups::manager::{Cgroupfs, Manager};
use crate::linux::cgroups::oom::{Notice, OomWatcher};
use crate::linux::cgroups::resources::Res;
use crate::linux::cgroups::{self, Hierarchies};
use crate::linux::probe;
use crate::linux::process::spawn;
use crate::state::{Dir, State};

mod start;

/// In the state directory while a create claims its cgroup: the first
/// cgroup directory, which the claim may make.
const CLAIMING: &str = "cgroup.claiming";

/// What the native backend records in a container's state (as keys of
/// state.json beside the lifecycle's, where they always were).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    /// cgroup directories by hierarchy mount point, recorded before mkdir.
    #[serde(default)]
    cgroups: Vec<PathBuf>,
    /// The container has its own pid namespace: killing init kills all.
    private_pid_ns: bool,
}

impl Record {
    fn of(st: &State) -> Result<Record> {
        serde_json::from_value(serde_json::Value::Object(st.payload.clone()))
            .map_err(|e| Error::State { path: PathBuf::from(crate::state::STATE_FILE), msg: format!("corrupt: {e}") })
    }

    /// The cgroups of a state, checked when it was loaded; none when the
    /// record cannot be read (then `check` refused it already).
    fn cgroups(st: &State) -> Cgroupfs {
        Cgroupfs::new(Record::of(st).map(|r| r.cgroups).unwrap_or_default())
    }
}

/// Is `d` strictly below the mount point of one of `hs` (a container's
/// cgroup, never a hierarchy's root), written without `.` or `..`?
fn below_a_hierarchy(hs: &Hierarchies, d: &Path) -> bool {
    use std::path::Component;
    d.is_absolute()
        && d.components().all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
        && hs.list.iter().any(|h| d.strip_prefix(&h.mountpoint).is_ok_and(|rest| rest.components().next().is_some()))
}

pub struct Native;

impl Native {
    /// The native record of a state is sound (its cgroups are containers'
    /// cgroups), whichever backend wrote it: a backend that runs on top of
    /// the native one (rpc-runv's host side) checks its own name, then this.
    pub fn check_record(&self, st: &State, path: &Path) -> Result<()> {
        let r = Record::of(st).map_err(|e| match e {
            Error::State { msg, .. } => Error::State { path: path.to_path_buf(), msg },
            e => e,
        })?;
        let corrupt = |msg: String| Error::State { path: path.to_path_buf(), msg: format!("corrupt: {msg}") };
        // delete --force kills every process in these and removes them: a
        // path that is not a container's cgroup (a hierarchy's root, "..", a
        // directory elsewhere) makes the file corrupt, never a target.
        let hs = Hierarchies::cached();
        if let Some(bad) = r.cgroups.iter().find(|d| !below_a_hierarchy(hs, d)) {
            return Err(corrupt(format!("cgroup path {} is not below a cgroup hierarchy", bad.display())));
        }
        Ok(())
    }
}

impl Backend for Native {
    fn name(&self) -> &'static str {
        "native"
    }

    fn check(&self, st: &State, path: &Path) -> Result<()> {
        if st.backend != self.name() {
            return Err(Error::ForeignState {
                id: st.id.clone(),
                path: path.to_path_buf(),
                recorded: st.backend.clone(),
                ours: self.name(),
            });
        }
        self.check_record(st, path)
    }

    fn plan(&self, id: &str, bundle: &Bundle) -> Result<serde_json::Value> {
        let linux = bundle.spec.linux().as_ref();
        let dirs = cgroups::container_dirs(Hierarchies::cached(), linux.and_then(|l| l.cgroups_path().as_deref()), id)?;
        let r = Record { cgroups: dirs, private_pid_ns: bundle.new_ns(LinuxNamespaceType::Pid) };
        serde_json::to_value(r).map_err(|e| Error::Container(format!("container {id}: encoding its record: {e}")))
    }

    fn reserve(&self, st: &State, dir: &Dir) -> Result<Vec<OwnedFd>> {
        let cg = Record::cgroups(st);
        // The claim may mkdir the first cgroup before state.json names it:
        // say so first, for `forget` after a create killed in between.
        if let Some(first) = cg.dirs().first() {
            let p = dir.path.join(CLAIMING);
            std::fs::write(&p, first.as_os_str().as_encoded_bytes())
                .map_err(|e| Error::Io { context: format!("writing {}", p.display()), source: e })?;
        }
        Ok(cg.claim()?.into_fd().into_iter().collect())
    }

    fn forget(&self, dir: &Path) {
        let Ok(data) = crate::bounded::read_file(&dir.join(CLAIMING), 4096) else { return };
        let cgroup = PathBuf::from(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&data));
        if !below_a_hierarchy(Hierarchies::cached(), &cgroup) {
            return;
        }
        cgroups::claim::remove_unclaimed(&cgroup);
    }

    fn create(
        &self,
        st: &State,
        bundle: &Bundle,
        dir: &Dir,
        held: Vec<OwnedFd>,
        opts: CreateOpts,
        hooks: &mut dyn CreateHooks,
    ) -> Result<i32> {
        // A step exec'd at ready does not park: no exec socket to wait on.
        let listener = match &opts.exec_step {
            Some(step) if step.is_at_ready() => None,
            _ => Some(start::listen(dir)?),
        };
        crate::fault!("create:after-fifo");
        let cg = Record::cgroups(st);
        cg.create()?;
        crate::fault!("create:after-cgroups");
        // Resources, and always the device rules: deny by default plus the
        // default allow list. linux.devices entries are not implicitly
        // allowed (as with runc): the config's rules decide.
        let r = bundle.spec.linux().as_ref().and_then(|l| l.resources().clone()).unwrap_or_default();
        cg.apply(&r)?;
        let process =
            bundle.spec.process().as_ref().ok_or_else(|| Error::config(bundle.dir.join("config.json"), "process", "must be set"))?;
        // An exec step gets no seccomp filter (see process::step).
        let (seccomp, seccomp_listener) = if opts.exec_step.is_some() { (None, None) } else { compile_seccomp(bundle)? };
        let handle = dir.open_handle()?;
        let spec = spawn::InitSpec {
            seccomp: seccomp.as_ref(),
            seccomp_listener,
            exec_step: opts.exec_step.as_ref(),
            id: &st.id,
            bundle,
            process,
            caps: bundle.caps.as_ref(),
            exec: None,
            state_dir_fd: handle.as_raw_fd(),
            exec_listener: listener,
            host_fds: held.iter().map(|f| f.as_raw_fd()).collect(),
            lock_fd: dir.lock_fd(),
            cgroup_dirs: cg.dirs(),
            console: opts.console,
            no_pivot: opts.no_pivot,
            preserve_fds: opts.preserve_fds,
            extra_env: opts.extra_env,
            no_new_keyring: opts.no_new_keyring,
        };
        spawn::spawn(&spec, hooks)
    }

    fn parked(&self, _st: &State, dir: &Path) -> bool {
        dir.join(crate::state::EXEC_SOCK).exists()
    }

    fn start(&self, st: &State, dir: &Dir) -> Result<()> {
        start::release(st, dir)
    }

    fn exec(
        &self,
        st: &State,
        bundle: &Bundle,
        process: &oci_spec::runtime::Process,
        caps: Option<&CapSets>,
        opts: ExecOpts,
    ) -> Result<i32> {
        let init = st.init.ok_or_else(|| Error::NotRunning(st.id.clone()))?;
        // Join every namespace the container has, through its init.
        let mut namespaces = Vec::new();
        for n in bundle.namespaces() {
            let path = PathBuf::from(format!("/proc/{}/ns/{}", init.pid, crate::linux::namespaces::proc_name(n.typ())));
            let mut ns = n.clone();
            ns.set_path(Some(path));
            namespaces.push(ns);
        }
        if !init.alive() {
            return Err(Error::Transition { op: crate::error::Op::Exec, id: st.id.clone(), status: "stopped" });
        }
        let cg = Record::cgroups(st);
        let (seccomp, listener) = compile_seccomp(bundle)?;
        let spec = spawn::InitSpec {
            seccomp: seccomp.as_ref(),
            seccomp_listener: listener,
            id: &st.id,
            bundle,
            process,
            caps,
            exec: Some(spawn::ExecTarget { namespaces }),
            state_dir_fd: -1,
            exec_listener: None,
            host_fds: vec![],
            lock_fd: -1,
            cgroup_dirs: cg.dirs(),
            console: opts.console,
            no_pivot: false,
            preserve_fds: opts.preserve_fds,
            extra_env: vec![],
            no_new_keyring: true,
            exec_step: None,
        };
        spawn::spawn(&spec, &mut ExecHooks)
    }

    fn signal(&self, st: &State, sig: i32, all: bool) -> Result<()> {
        if all {
            let cg = Record::cgroups(st);
            // Freeze so nothing forks away while we signal, as runc does.
            let frozen = cg.freeze(true).is_ok();
            if sig == libc::SIGKILL {
                cg.kill_all();
            } else {
                cg.signal_all(sig);
            }
            if frozen {
                let _ = cg.freeze(false);
            }
            return Ok(());
        }
        let Some(p) = st.init else { return Err(Error::NotRunning(st.id.clone())) };
        p.signal(sig).map_err(|e| {
            if e.raw_os_error() == Some(libc::ESRCH) {
                Error::NotRunning(st.id.clone())
            } else {
                Error::Io { context: format!("signalling container {}'s init {}", st.id, p.pid), source: e }
            }
        })
    }

    fn kill_and_wait(&self, st: &State, paused: bool) -> Result<()> {
        // With its own pid namespace, init's death kills the rest.
        let private_pid_ns = Record::of(st).map(|r| r.private_pid_ns).unwrap_or(false);
        let _ = self.signal(st, libc::SIGKILL, !private_pid_ns);
        if let Some(p) = st.init {
            let _ = self.signal(st, libc::SIGKILL, false);
            if paused {
                let _ = self.pause(st, false);
            }
            if !probe::wait_gone(p.pid, p.start_time, std::time::Duration::from_secs(10)) {
                return Err(Error::Container(format!("container {}: its init {} did not exit after SIGKILL", st.id, p.pid)));
            }
        } else if paused {
            let _ = self.pause(st, false);
        }
        Ok(())
    }

    fn pids(&self, st: &State) -> Result<Vec<i32>> {
        Ok(Record::cgroups(st).pids())
    }

    fn update(&self, st: &State, res: &Res) -> Result<()> {
        let cg = Record::cgroups(st);
        if cg.dirs().is_empty() {
            return Err(Error::Unsupported(format!("update of container {} (it has no cgroups)", st.id)));
        }
        cg.update(res)
    }

    fn stats(&self, st: &State) -> Result<Stats> {
        Ok(Record::cgroups(st).stats(st.init.map(|p| p.pid)))
    }

    fn oom_events(&self, st: &State) -> Result<Option<Box<dyn OomEvents>>> {
        Ok(Record::cgroups(st).oom_watcher()?.map(|w| Box::new(w) as Box<dyn OomEvents>))
    }

    fn pause(&self, st: &State, frozen: bool) -> Result<()> {
        Record::cgroups(st).freeze(frozen)
    }

    fn paused(&self, st: &State) -> bool {
        Record::cgroups(st).is_frozen()
    }

    fn destroy(&self, st: &State) -> Result<()> {
        let cg = Record::cgroups(st);
        if cg.remove_if_empty() {
            return Ok(());
        }
        // Something is left (no pid namespace, or helpers that escaped
        // it): kill it, then remove.
        cg.kill_all();
        cg.destroy()
    }

    fn destroy_if_empty(&self, st: &State) -> bool {
        Record::cgroups(st).remove_if_empty()
    }
}

impl OomEvents for OomWatcher {
    fn wait(&mut self, ms: i32) -> Notice {
        OomWatcher::wait(self, ms)
    }
}

/// exec runs no hooks; its process is recorded by the caller.
struct ExecHooks;

impl CreateHooks for ExecHooks {
    fn on_pid(&mut self, _pid: i32) -> Result<()> {
        crate::fault!("exec:after-pid");
        Ok(())
    }
    fn on_hooks(&mut self, _pid: i32) -> Result<(String, String)> {
        Err(Error::Container("exec runs no hooks".into()))
    }
}

/// Compile the bundle's seccomp profile (in the runtime, before fork) and
/// connect to its agent when it has NOTIFY actions.
fn compile_seccomp(bundle: &Bundle) -> Result<(Option<crate::linux::seccomp::Program>, Option<OwnedFd>)> {
    let Some(s) = bundle.spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) else { return Ok((None, None)) };
    let p = crate::linux::seccomp::compile(s)?;
    let listener = match (&p.listener_path, p.notify) {
        (Some(path), true) => {
            let sock = std::os::unix::net::UnixStream::connect(path)
                .map_err(|e| Error::Io { context: format!("linux.seccomp.listenerPath {path}"), source: e })?;
            Some(OwnedFd::from(sock))
        }
        _ => None,
    };
    Ok((Some(p), listener))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recorded cgroups are checked on load: only a container's cgroup
    /// below a hierarchy's mount point, never a root or a path with "..".
    #[test]
    fn recorded_cgroups_must_lie_below_a_hierarchy() {
        let hs = Hierarchies {
            list: vec![cgroups::Hierarchy {
                mountpoint: "/sys/fs/cgroup/pids".into(),
                root: "/".into(),
                kind: cgroups::Kind::V1(vec!["pids".into()]),
            }],
        };
        assert!(below_a_hierarchy(&hs, Path::new("/sys/fs/cgroup/pids/c1")));
        assert!(below_a_hierarchy(&hs, Path::new("/sys/fs/cgroup/pids/a/b")));
        for bad in ["/sys/fs/cgroup/pids", "/sys/fs/cgroup/pids/", "/sys/fs/cgroup/pids/c1/..", "/tmp/c1", "pids/c1"] {
            assert!(!below_a_hierarchy(&hs, Path::new(bad)), "{bad}");
        }
    }
}
