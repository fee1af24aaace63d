//! `create`: validate everything, record the state ahead, make the
//! container and park its process until `start`.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use super::{OciState, Runtime, Status};
use crate::backend::{CreateHooks, CreateOpts};
use crate::bundle::Bundle;
use crate::error::{Error, Result};
use crate::hooks;
use crate::state::{self, Dir, LateHooks, ProcRef, Recorded, State};

pub struct CreateArgs {
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: i32,
    /// `run` in the foreground passes its own console socket.
    pub console: Option<OwnedFd>,
    /// True for `create` and `run -d`: a terminal then needs a socket.
    pub detached: bool,
    /// The bundle, when the caller loaded it already (`run`).
    pub loaded: Option<Bundle>,
}

struct Recorder<'a> {
    dir: &'a Dir,
    st: State,
    bundle: &'a Bundle,
}

impl CreateHooks for Recorder<'_> {
    fn on_pid(&mut self, pid: i32) -> Result<()> {
        let p = ProcRef::of(pid).ok_or_else(|| Error::Container(format!("container {}: its process {pid} exited at once", self.st.id)))?;
        self.st.init = Some(p);
        self.dir.save(&self.st)?;
        crate::fault!("create:after-pid-save");
        Ok(())
    }

    fn on_hooks(&mut self, pid: i32) -> Result<(String, String)> {
        let oci = OciState::new(&self.st, Status::Creating);
        let json = oci.hook_json();
        // prestart (deprecated) and createRuntime: runtime namespace.
        hooks::run_all("prestart", hooks::list(&self.bundle.spec, "prestart"), &json)?;
        hooks::run_all("createRuntime", hooks::list(&self.bundle.spec, "createRuntime"), &json)?;
        let _ = pid;
        let created = OciState::new(&self.st, Status::Created).hook_json();
        crate::fault!("create:after-hooks");
        Ok((String::from_utf8_lossy(&json).into_owned(), String::from_utf8_lossy(&created).into_owned()))
    }
}

/// Create the container; returns the init pid. Leaves nothing behind on
/// error.
pub fn create(rt: &Runtime, id: &str, mut a: CreateArgs) -> Result<i32> {
    crate::id::validate(id)?;
    super::check_preserve_fds(a.preserve_fds)?;
    let bundle = match a.loaded.take() {
        Some(b) => b,
        None => Bundle::load(&a.bundle)?,
    };
    let process = bundle.spec.process().as_ref().ok_or_else(|| Error::config(bundle.dir.join("config.json"), "process", "must be set"))?;
    let terminal = process.terminal().unwrap_or(false);
    if terminal && a.detached && a.console_socket.is_none() && a.console.is_none() {
        return Err(Error::Usage("cannot allocate tty if runc will detach without setting console socket".into()));
    }
    if !terminal && a.console_socket.is_some() {
        return Err(Error::Usage("cannot use console socket if runc will not detach or allocate tty".into()));
    }
    // What the backend will make on the host (cgroups), checked before
    // anything is.
    let payload = match rt.backend.plan(id, &bundle)? {
        serde_json::Value::Object(m) if !m.keys().any(|k| state::CORE_KEYS.contains(&k.as_str())) => m,
        _ => {
            return Err(Error::Container(format!("container {id}: backend {} planned a record state.json cannot hold", rt.backend.name())))
        }
    };
    // Connect the console socket before anything exists.
    let console = match (&a.console_socket, a.console) {
        (_, Some(fd)) if terminal => Some(fd),
        (Some(p), _) if terminal => Some(crate::linux::tty::connect(p)?),
        _ => None,
    };
    let dir = rt.store.create(id)?;
    crate::fault!("create:after-state-dir");
    let st = State {
        id: id.to_string(),
        backend: rt.backend.name().to_string(),
        bundle: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        status: Recorded::Creating,
        init: None,
        created: crate::log::rfc3339_now(),
        owner: super::owner(),
        annotations: bundle.spec.annotations().clone().unwrap_or_default().into_iter().collect(),
        hooks: LateHooks {
            poststart: hooks::list(&bundle.spec, "poststart").to_vec(),
            poststop: hooks::list(&bundle.spec, "poststop").to_vec(),
        },
        payload,
        dir: dir.path.clone(),
    };
    // A cgroup already holding processes, or claimed by another create,
    // is not ours to take (nor to clean up): refuse before its paths are
    // recorded. The claim is held until init has joined (see `claim`).
    let held = match rt.backend.reserve(&st, &dir) {
        Ok(h) => {
            crate::fault!("create:after-reserve");
            h
        }
        Err(e) => {
            let _ = dir.destroy();
            return Err(e);
        }
    };
    let result = (|| -> Result<i32> {
        dir.save_first(&st, &bundle.raw)?;
        crate::fault!("create:after-state-save");
        let mut extra_env = vec![];
        let mut preserve = a.preserve_fds;
        if let Some(n) =
            std::env::var("LISTEN_FDS").ok().and_then(|v| v.parse::<i32>().ok()).filter(|n| (1..=super::MAX_PRESERVE_FDS).contains(n))
        {
            extra_env.push(format!("LISTEN_FDS={n}"));
            extra_env.push("LISTEN_PID=1".to_string());
            preserve = preserve.max(n);
        }
        let opts = CreateOpts {
            console,
            no_pivot: a.no_pivot,
            no_new_keyring: a.no_new_keyring,
            preserve_fds: preserve,
            extra_env,
            exec_step: None,
        };
        let mut rec = Recorder { dir: &dir, st: st.clone(), bundle: &bundle };
        let pid = rt.backend.create(&st, &bundle, &dir, held, opts, &mut rec)?;
        crate::fault!("create:after-ready");
        // Recorded so that `state` tells a finished create from one in
        // progress: both have a live init and a fifo, and any command
        // holding the lock (start, pause, delete) would otherwise read as
        // a create still running.
        let mut st = rec.st;
        st.status = Recorded::Created;
        dir.save(&st)?;
        crate::fault!("create:before-pid-file");
        if let Some(pf) = &a.pid_file {
            state::write_atomic(pf, pid.to_string().as_bytes())?;
        }
        crate::fault!("create:after-pid-file");
        Ok(pid)
    })();
    match result {
        Ok(pid) => Ok(pid),
        Err(e) => {
            // Changes nothing: the process is gone (the backend killed and
            // reaped what it made, or it is killed here: only the process
            // recorded, checked by its start time, never a pid reused
            // since), the backend's host resources and the state directory
            // are removed. What cannot be is said beside the error.
            crate::fault!("create:before-cleanup");
            let mut cleanup = vec![];
            let cur = dir.load().unwrap_or(st);
            if cur.init.is_some() {
                match rt.backend.signal(&cur, libc::SIGKILL, false) {
                    Ok(()) | Err(Error::NotRunning(_)) => {}
                    Err(k) => cleanup.push(format!("killing its process: {k}")),
                }
            }
            if let Err(d) = rt.backend.destroy(&cur) {
                cleanup.push(format!("removing what the {} backend made: {d}", rt.backend.name()));
            }
            if let Err(d) = dir.destroy() {
                cleanup.push(d.to_string());
            }
            Err(e.with_cleanup(cleanup))
        }
    }
}
