//! The native backend (rpc-runc): Linux namespaces and cgroups on the host.

use crate::backend::{Backend, CreateOpts};
use crate::bundle::Bundle;
use crate::error::{Error, Result};
use crate::linux::cgroups;
use crate::linux::probe;
use crate::linux::process::{self, spawn};
use crate::state::State;

pub struct Native;

impl Backend for Native {
    fn name(&self) -> &'static str {
        "native"
    }

    fn create(
        &self,
        st: &State,
        bundle: &Bundle,
        state_dir_fd: i32,
        lock_fd: i32,
        opts: CreateOpts,
        parent: &mut dyn spawn::Parent,
    ) -> Result<i32> {
        cgroups::create(&st.cgroups)?;
        crate::fault!("create:after-cgroups");
        // Resources, and always the device rules: deny by default plus the
        // default allow list. linux.devices entries are not implicitly
        // allowed (as with runc): the config's rules decide.
        let r = bundle.spec.linux().as_ref().and_then(|l| l.resources().clone()).unwrap_or_default();
        cgroups::resources::apply(&st.cgroups, &r, &[])?;
        let process = bundle.spec.process().as_ref().ok_or_else(|| Error::Container("config.json has no process".into()))?;
        // An exec step gets no seccomp filter (see process::step).
        let (seccomp, listener) = if opts.exec_step.is_some() { (None, None) } else { compile_seccomp(bundle)? };
        let spec = spawn::InitSpec {
            seccomp: seccomp.as_ref(),
            seccomp_listener: listener,
            exec_step: opts.exec_step.as_ref(),
            id: &st.id,
            bundle,
            process,
            caps: bundle.caps.as_ref(),
            exec: None,
            state_dir_fd,
            exec_listener: opts.exec_listener,
            host_fds: opts.host_fds,
            lock_fd,
            cgroup_dirs: &st.cgroups,
            console: opts.console,
            no_pivot: opts.no_pivot,
            preserve_fds: opts.preserve_fds,
            extra_env: opts.extra_env,
            no_new_keyring: opts.no_new_keyring,
        };
        spawn::spawn(&spec, parent)
    }

    fn exec(
        &self,
        st: &State,
        bundle: &Bundle,
        process: &oci_spec::runtime::Process,
        caps: Option<&crate::linux::caps::CapSets>,
        opts: CreateOpts,
        parent: &mut dyn spawn::Parent,
    ) -> Result<i32> {
        if opts.exec_step.is_some() {
            return Err(Error::Unsupported("an exec step for `exec` (only the container's own process can be one)".into()));
        }
        let init = st.init.ok_or(Error::NotRunning)?;
        // Join every namespace the container has, through its init.
        let mut namespaces = Vec::new();
        for n in bundle.namespaces() {
            let path = std::path::PathBuf::from(format!("/proc/{}/ns/{}", init.pid, crate::linux::namespaces::proc_name(n.typ())));
            let mut ns = n.clone();
            ns.set_path(Some(path));
            namespaces.push(ns);
        }
        if !process::alive(init.pid, init.start_time) {
            return Err(Error::Container("cannot exec in a stopped container".into()));
        }
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
            cgroup_dirs: &st.cgroups,
            console: opts.console,
            no_pivot: false,
            preserve_fds: opts.preserve_fds,
            extra_env: opts.extra_env,
            no_new_keyring: true,
            exec_step: None,
        };
        spawn::spawn(&spec, parent)
    }

    fn signal(&self, st: &State, sig: i32, all: bool) -> Result<()> {
        if all {
            // Freeze so nothing forks away while we signal, as runc does.
            let frozen = cgroups::freeze(&st.cgroups, true).is_ok();
            if sig == libc::SIGKILL {
                cgroups::kill_all(&st.cgroups);
            } else {
                cgroups::signal_all(&st.cgroups, sig);
            }
            if frozen {
                let _ = cgroups::freeze(&st.cgroups, false);
            }
            return Ok(());
        }
        let Some(p) = st.init else { return Err(Error::NotRunning) };
        if !process::alive(p.pid, p.start_time) {
            return Err(Error::NotRunning);
        }
        if let Some(Ok(fd)) = probe::pidfd_open(p.pid) {
            use std::os::fd::AsRawFd;
            // The pidfd now pins the process: re-check it is ours.
            if process::start_time(p.pid) != Some(p.start_time) {
                return Err(Error::NotRunning);
            }
            return probe::pidfd_send_signal(fd.as_raw_fd(), sig).map_err(|e| {
                if e.raw_os_error() == Some(libc::ESRCH) {
                    Error::NotRunning
                } else {
                    Error::Io { context: "signalling init".into(), source: e }
                }
            });
        }
        // SAFETY: plain syscall.
        if unsafe { libc::kill(p.pid, sig) } != 0 {
            return Err(Error::NotRunning);
        }
        Ok(())
    }

    fn destroy(&self, st: &State) -> Result<()> {
        cgroups::destroy(&st.cgroups)
    }

    fn destroy_if_empty(&self, st: &State) -> bool {
        cgroups::remove_if_empty(&st.cgroups)
    }

    fn pause(&self, st: &State, frozen: bool) -> Result<()> {
        cgroups::freeze(&st.cgroups, frozen)
    }

    fn paused(&self, st: &State) -> bool {
        cgroups::is_frozen(&st.cgroups)
    }
}

/// Compile the bundle's seccomp profile (in the runtime, before fork) and
/// connect to its agent when it has NOTIFY actions.
fn compile_seccomp(bundle: &Bundle) -> Result<(Option<crate::linux::seccomp::Program>, Option<std::os::fd::OwnedFd>)> {
    let Some(s) = bundle.spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) else { return Ok((None, None)) };
    let p = crate::linux::seccomp::compile(s)?;
    let listener = match (&p.listener_path, p.notify) {
        (Some(path), true) => {
            let sock = std::os::unix::net::UnixStream::connect(path)
                .map_err(|e| Error::Io { context: format!("linux.seccomp.listenerPath {path}"), source: e })?;
            Some(std::os::fd::OwnedFd::from(sock))
        }
        _ => None,
    };
    Ok((Some(p), listener))
}
