//! `create`: validate everything, record the state ahead, make the
//! container and park its process until `start`.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use oci_spec::runtime::LinuxNamespaceType;

use super::{OciState, Runtime, Status};
use crate::backend::CreateOpts;
use crate::bundle::Bundle;
use crate::error::{Error, Result};
use crate::hooks;
use crate::linux::cgroups;
use crate::linux::process::{self, spawn::Parent};
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

impl Parent for Recorder<'_> {
    fn on_pid(&mut self, pid: i32) -> Result<()> {
        let start_time = process::start_time(pid).ok_or_else(|| Error::Container("container init exited at once".into()))?;
        self.st.init = Some(ProcRef { pid, start_time });
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

/// The socket init parks on: `start` connects, init answers one byte and
/// keeps the connection open (close-on-exec) until the program runs.
fn exec_listener(dir: &Dir) -> Result<OwnedFd> {
    let l = std::os::unix::net::UnixListener::bind(dir.exec_sock_addr())
        .map_err(|e| Error::Io { context: format!("binding {}", dir.exec_sock_path().display()), source: e })?;
    std::fs::set_permissions(dir.exec_sock_path(), std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(|e| Error::Io { context: format!("chmod {}", dir.exec_sock_path().display()), source: e })?;
    Ok(OwnedFd::from(l))
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
    let linux = bundle.spec.linux().as_ref();
    let hs = cgroups::Hierarchies::cached();
    let cgroup_dirs = cgroups::container_dirs(hs, linux.and_then(|l| l.cgroups_path().as_deref()), id)?;
    // Connect the console socket before anything exists.
    let console = match (&a.console_socket, a.console) {
        (_, Some(fd)) if terminal => Some(fd),
        (Some(p), _) if terminal => Some(crate::linux::tty::connect(p)?),
        _ => None,
    };
    let dir = rt.store.create(id)?;
    crate::fault!("create:after-state-dir");
    // A cgroup already holding processes, or claimed by another create,
    // is not ours to take (nor to clean up): refuse before its paths are
    // recorded. The claim is held until init has joined (see `claim`).
    let claim = match cgroups::claim::claim(&cgroup_dirs) {
        Ok(c) => c,
        Err(e) => {
            let _ = dir.destroy();
            return Err(e);
        }
    };
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
        cgroups: cgroup_dirs,
        host_mounts: vec![],
        private_pid_ns: bundle.new_ns(LinuxNamespaceType::Pid),
        hooks: LateHooks {
            poststart: hooks::list(&bundle.spec, "poststart").to_vec(),
            poststop: hooks::list(&bundle.spec, "poststop").to_vec(),
        },
    };
    let result = (|| -> Result<i32> {
        dir.save_first(&st, &bundle.raw)?;
        crate::fault!("create:after-state-save");
        let listener = exec_listener(&dir)?;
        crate::fault!("create:after-fifo");
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
            exec_listener: Some(listener),
            host_fds: claim.fd().into_iter().collect(),
            exec_step: None,
        };
        let mut rec = Recorder { dir: &dir, st: st.clone(), bundle: &bundle };
        let handle = dir.open_handle()?;
        let pid = rt.backend.create(&st, &bundle, std::os::fd::AsRawFd::as_raw_fd(&handle), dir.lock_fd(), opts, &mut rec)?;
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
            // Changes nothing: processes are gone (spawn reaped them),
            // cgroups and the state directory are removed.
            if let Ok(cur) = dir.load() {
                if let Some(p) = cur.init {
                    // SAFETY: plain syscall.
                    unsafe { libc::kill(p.pid, libc::SIGKILL) };
                }
            }
            let _ = rt.backend.destroy(&st);
            let _ = dir.destroy();
            Err(e)
        }
    }
}
