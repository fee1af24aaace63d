//! rpc-agent: the guest agent (pid 1 of an rpc-runv micro-VM), or, with
//! `--listen-unix`, the same agent on the host for tests.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Parser;
use rpc_agent::{boot, Agent, Config, RealExecutor};

#[derive(Parser)]
#[command(name = "rpc-agent", version, about = "rpc-runv's guest agent")]
struct Args {
    /// Host test mode: serve on this unix socket instead of vsock, mount
    /// nothing, be a child subreaper (not pid 1).
    #[arg(long, value_name = "PATH")]
    listen_unix: Option<PathBuf>,
    /// The runtime's --root (guest: /run/rpc-runc).
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// The runtime binary (guest: /usr/lib/rpc/rpc-runc).
    #[arg(long, value_name = "BIN")]
    runtime: Option<PathBuf>,
    /// The agent's own state: bundles/ and calls/ (guest: /run/rpc;
    /// host test mode: PATH of --listen-unix with ".d" appended).
    #[arg(long, value_name = "DIR")]
    state: Option<PathBuf>,
}

fn main() {
    let args = Args::parse();
    let pid1 = std::process::id() == 1;
    match run(args, pid1) {
        Ok(status) if pid1 => boot::power_off(status),
        Ok(status) => std::process::exit(status & 0xff),
        Err(e) => {
            eprintln!("rpc-agent: {e:#}");
            if pid1 {
                // Nothing serves the host now: end the VM rather than hang it.
                boot::power_off(255);
            }
            std::process::exit(1);
        }
    }
}

fn run(args: Args, pid1: bool) -> Result<i32> {
    let mut cfg = Config::guest();
    if let Some(r) = args.root {
        cfg.root = r;
    }
    if let Some(r) = args.runtime {
        cfg.runtime = r;
    }
    let listener: OwnedFd = match &args.listen_unix {
        Some(path) => {
            cfg.state = args.state.unwrap_or_else(|| {
                let mut s = path.clone().into_os_string();
                s.push(".d");
                PathBuf::from(s)
            });
            // Container inits are the runtime's grandchildren: their exits
            // reach us only as a subreaper.
            // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) takes no pointers.
            if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
                return Err(std::io::Error::last_os_error()).context("PR_SET_CHILD_SUBREAPER");
            }
            let _ = std::fs::remove_file(path);
            let l = std::os::unix::net::UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
            l.into()
        }
        None => {
            if !pid1 {
                bail!("not pid 1: give --listen-unix PATH to run on the host");
            }
            if let Some(s) = args.state {
                cfg.state = s;
            }
            // One line each on the console: where a guest that never
            // answers stopped (the host shows the console's tail).
            eprintln!("rpc-agent: setting up the guest");
            boot::pid1().context("setting up the guest")?;
            let l = vsock_listener(rpc_proto::guest::AGENT_PORT)?;
            eprintln!("{} {}", rpc_proto::guest::LISTENING, rpc_proto::guest::AGENT_PORT);
            l
        }
    };
    let runtime = cfg.runtime.clone();
    let mut agent = Agent::new(cfg, Box::new(RealExecutor { runtime })).context("starting the agent")?;
    agent.reap_children().context("SIGCHLD")?;
    agent.listen(listener).context("listening")?;
    Ok(rpc_agent::serve(&mut agent)?)
}

fn vsock_listener(port: u32) -> Result<OwnedFd> {
    use nix::sys::socket::{bind, listen, socket, AddressFamily, Backlog, SockFlag, SockType, VsockAddr};
    let fd =
        socket(AddressFamily::Vsock, SockType::Stream, SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK, None).context("vsock socket")?;
    bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &VsockAddr::new(libc::VMADDR_CID_ANY, port))
        .with_context(|| format!("binding vsock port {port}"))?;
    listen(&fd, Backlog::new(128).unwrap_or(Backlog::MAXCONN)).context("listen")?;
    Ok(fd)
}
