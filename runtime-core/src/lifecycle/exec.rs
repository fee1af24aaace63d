//! `exec`: run another process in a running container, as runc does. The
//! process is the container's (as create recorded it), overridden by the flags,
//! or a whole OCI `process` object from `--process` (then the flags that
//! describe the process are ignored). With `--detach` the process is left
//! to the caller's subreaper and the pid file is written before we exit.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use super::{Runtime, Status};
use crate::backend::CreateOpts;
use crate::bundle::Bundle;
use crate::error::{Error, Result};
use crate::linux::caps::CapSets;
use crate::linux::process::spawn::Parent;
use crate::linux::tty;
use crate::state;

/// runc's exec flags.
#[derive(Default, Debug, clap::Args)]
pub struct ExecArgs {
    /// A JSON file with a full OCI process object (the flags describing
    /// the process are then ignored).
    #[arg(short = 'p', long)]
    pub process: Option<PathBuf>,
    /// The command (set from the trailing arguments).
    #[arg(skip)]
    pub args: Vec<String>,
    /// Set an environment variable (KEY=value).
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Working directory.
    #[arg(long)]
    pub cwd: Option<String>,
    /// uid[:gid].
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Additional gids.
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<u32>,
    /// Add a capability.
    #[arg(short = 'c', long = "cap")]
    pub caps: Vec<String>,
    /// Set no_new_privs.
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    /// AppArmor profile.
    #[arg(long)]
    pub apparmor: Option<String>,
    /// SELinux label.
    #[arg(long = "process-label")]
    pub process_label: Option<String>,
    /// Allocate a pseudo-TTY.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Unix socket that receives the pty master.
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Detach from the process.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// File to write the process's pid to.
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Pass N extra fds.
    #[arg(long = "preserve-fds", default_value_t = 0, allow_hyphen_values = true, value_parser = super::parse_preserve_fds)]
    pub preserve_fds: i32,
    /// Allow exec in a paused container.
    #[arg(long = "ignore-paused")]
    pub ignore_paused: bool,
    /// Run in a sub-cgroup (accepted; the container's cgroup is used).
    #[arg(long)]
    pub cgroup: Vec<String>,
}

struct NoHooks;

impl Parent for NoHooks {
    fn on_pid(&mut self, _pid: i32) -> Result<()> {
        crate::fault!("exec:after-pid");
        Ok(())
    }
    fn on_hooks(&mut self, _pid: i32) -> Result<(String, String)> {
        Err(Error::Container("exec runs no hooks".into()))
    }
}

/// The process to run and its capabilities.
fn build(b: &Bundle, a: &ExecArgs) -> Result<(oci_spec::runtime::Process, Option<CapSets>)> {
    if let Some(p) = &a.process {
        let data = std::fs::read(p).map_err(|e| Error::Io { context: format!("--process {}", p.display()), source: e })?;
        return crate::bundle::parse_process(p, &data);
    }
    let mut p = b.spec.process().clone().ok_or_else(|| Error::Container("the container's config.json has no process".into()))?;
    let mut caps = b.caps.clone();
    if a.args.is_empty() {
        return Err(Error::Usage("exec needs a command (or --process)".into()));
    }
    p.set_args(Some(a.args.clone()));
    p.set_terminal(Some(a.tty));
    let mut env = p.env().clone().unwrap_or_default();
    for e in &a.env {
        if !e.contains('=') {
            return Err(Error::Usage(format!("--env {e:?}: not of the form KEY=value")));
        }
        let key = e.split('=').next().unwrap_or("");
        env.retain(|x| x.split('=').next() != Some(key));
        env.push(e.clone());
    }
    p.set_env(Some(env));
    if let Some(c) = &a.cwd {
        p.set_cwd(PathBuf::from(c));
    }
    if let Some(u) = &a.user {
        let (uid, gid) = match u.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (u.as_str(), None),
        };
        let uid: u32 = uid.parse().map_err(|_| Error::Usage(format!("--user {u:?}: expected uid[:gid] as numbers")))?;
        p.user_mut().set_uid(uid);
        if let Some(g) = gid {
            let gid: u32 = g.parse().map_err(|_| Error::Usage(format!("--user {u:?}: expected uid[:gid] as numbers")))?;
            p.user_mut().set_gid(gid);
        }
    }
    if !a.additional_gids.is_empty() {
        p.user_mut().set_additional_gids(Some(a.additional_gids.clone()));
    }
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if let Some(x) = &a.apparmor {
        p.set_apparmor_profile(Some(x.clone()));
    }
    if let Some(x) = &a.process_label {
        p.set_selinux_label(Some(x.clone()));
    }
    if !a.caps.is_empty() {
        // --cap adds to every set but ambient, as runc does.
        let extra = CapSets::names(&a.caps)?;
        let c = caps.get_or_insert_with(CapSets::default);
        for set in [&mut c.bounding, &mut c.effective, &mut c.permitted, &mut c.inheritable] {
            for x in &extra {
                if !set.contains(x) {
                    set.push(*x);
                }
            }
        }
    }
    Ok((p, caps))
}

/// Returns the exit code: 0 when detached, the process's status otherwise.
pub fn exec(rt: &Runtime, id: &str, a: ExecArgs) -> Result<i32> {
    crate::id::validate(id)?;
    super::check_preserve_fds(a.preserve_fds)?;
    let dir = rt.store.open(id, false)?;
    let st = dir.load()?;
    let snapshot = dir.load_snapshot()?;
    drop(dir);
    match rt.status(&st, false) {
        Status::Stopped => return Err(Error::Container("cannot exec in a stopped container".into())),
        Status::Paused if !a.ignore_paused => {
            return Err(Error::Container("cannot exec in a paused container (use --ignore-paused)".into()))
        }
        Status::Creating => return Err(Error::Container("cannot exec in a container that is being created".into())),
        _ => {}
    }
    // The container's namespaces, seccomp and process defaults as create
    // recorded them: config.json may have been edited or removed since.
    let bundle = match &snapshot {
        Some(s) => Bundle::recorded(&st.bundle, &st.rootfs, &rt.store.root.join(id).join(state::SNAPSHOT), s.config())?,
        None => {
            // Made by a runtime that kept no snapshot: the bundle is all
            // there is.
            crate::log::warn(&format!(
                "container {id} has no {}: exec reads {} again",
                state::SNAPSHOT,
                st.bundle.join("config.json").display()
            ));
            Bundle::load(&st.bundle)?
        }
    };
    let (process, caps) = build(&bundle, &a)?;
    let terminal = process.terminal().unwrap_or(false);
    if terminal && a.detach && a.console_socket.is_none() {
        return Err(Error::Usage("cannot allocate tty if runc will detach without setting console socket".into()));
    }
    if !terminal && a.console_socket.is_some() {
        return Err(Error::Usage("cannot use console socket if runc will not detach or allocate tty".into()));
    }
    let set = if a.detach { None } else { Some(super::run::block_all()?) };
    let mut ours: Option<OwnedFd> = None;
    let console = match (&a.console_socket, terminal) {
        (Some(p), true) => Some(tty::connect(p)?),
        (None, true) => {
            let (x, y) = std::os::unix::net::UnixStream::pair().map_err(|e| Error::Io { context: "socketpair".into(), source: e })?;
            ours = Some(OwnedFd::from(x));
            Some(OwnedFd::from(y))
        }
        _ => None,
    };
    let opts = CreateOpts {
        console,
        no_pivot: false,
        no_new_keyring: true,
        preserve_fds: a.preserve_fds,
        extra_env: vec![],
        exec_listener: None,
        host_fds: vec![],
        exec_step: None,
    };
    let pid = rt.backend.exec(&st, &bundle, &process, caps.as_ref(), opts, &mut NoHooks)?;
    crate::fault!("exec:after-ready");
    // The process runs from here on: if the caller cannot be given it (no
    // terminal, no pid file), it must not run on unknown to anyone.
    let after = (|| -> Result<Option<OwnedFd>> {
        let master = match ours {
            Some(sock) => Some(tty::recv_fd(sock.as_raw_fd())?),
            None => None,
        };
        crate::fault!("exec:before-pid-file");
        if let Some(pf) = &a.pid_file {
            state::write_atomic(pf, pid.to_string().as_bytes())?;
        }
        crate::fault!("exec:after-pid-file");
        Ok(master)
    })();
    let master = match after {
        Ok(m) => m,
        Err(e) => {
            // It is our child (stage-1 cloned it with CLONE_PARENT).
            crate::linux::process::spawn::kill_and_reap(pid);
            return Err(e);
        }
    };
    match set {
        None => Ok(0),
        Some(set) => super::run::forward(pid, &set, master.as_ref()),
    }
}
