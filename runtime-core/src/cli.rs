//! The runc-compatible command line, shared by the three runtimes: the
//! flags containerd, conmon/podman and dockerd pass to runc.

use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::lifecycle::{self, create::CreateArgs, Runtime};
use crate::log;
use crate::state::Store;

#[derive(Parser, Debug)]
#[command(disable_version_flag = true, about = "OCI container runtime")]
pub struct Cli {
    /// Root directory for container state.
    #[arg(long, global = true)]
    pub root: Option<PathBuf>,
    /// Log file (default: stderr).
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long = "log-format", global = true, default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    /// Debug logging.
    #[arg(long, global = true)]
    pub debug: bool,
    /// Use systemd to manage cgroups.
    #[arg(long = "systemd-cgroup", global = true)]
    pub systemd_cgroup: bool,
    /// Rootless mode: true, false or auto.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub rootless: Option<String>,
    /// Path to criu (accepted for compatibility).
    #[arg(long, global = true, hide = true)]
    pub criu: Option<String>,
    /// Print the version.
    #[arg(short = 'v', long)]
    pub version: bool,
    #[command(subcommand)]
    pub cmd: Option<Cmd>,
}

#[derive(clap::Args, Debug)]
pub struct CreateFlags {
    /// Path to the bundle directory.
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
    /// Unix socket that receives the pty master.
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// File to write the container's pid to.
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Use MS_MOVE + chroot instead of pivot_root.
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Do not create a new session keyring.
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// Pass N extra fds (3..3+N) to the container.
    #[arg(long = "preserve-fds", default_value_t = 0, allow_hyphen_values = true, value_parser = lifecycle::parse_preserve_fds)]
    pub preserve_fds: i32,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Create a container.
    Create {
        #[command(flatten)]
        f: CreateFlags,
        id: String,
    },
    /// Start a created container.
    Start { id: String },
    /// Create and start a container.
    Run {
        #[command(flatten)]
        f: CreateFlags,
        /// Detach from the container's process.
        #[arg(short = 'd', long)]
        detach: bool,
        /// Do not delete the container after it exits.
        #[arg(long)]
        keep: bool,
        id: String,
    },
    /// Run a process in a running container.
    Exec {
        #[command(flatten)]
        a: lifecycle::exec::ExecArgs,
        id: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Output the state of a container.
    State { id: String },
    /// Send a signal to the container's init (default SIGTERM).
    Kill {
        /// Send to all processes of the container.
        #[arg(short = 'a', long)]
        all: bool,
        id: String,
        signal: Option<String>,
    },
    /// Delete a container.
    Delete {
        /// Kill a running container first.
        #[arg(short = 'f', long)]
        force: bool,
        id: String,
    },
    /// List containers.
    List {
        /// table or json.
        #[arg(short = 'f', long, default_value = "table")]
        format: String,
        /// Ids only.
        #[arg(short = 'q', long)]
        quiet: bool,
    },
    /// Write a default config.json.
    Spec {
        #[arg(short = 'b', long, default_value = ".")]
        bundle: PathBuf,
        #[arg(long)]
        rootless: bool,
    },
    /// Freeze a container.
    Pause { id: String },
    /// Thaw a container.
    Resume { id: String },
    /// List the processes of a container.
    Ps {
        #[arg(short = 'f', long, default_value = "table")]
        format: String,
        id: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Update the resource limits of a container.
    Update {
        #[command(flatten)]
        f: lifecycle::update::UpdateFlags,
        id: String,
    },
    /// Show container events (stats and OOM notifications).
    Events {
        /// Print the stats once and exit.
        #[arg(long)]
        stats: bool,
        /// Interval between stats events (Go duration, e.g. 5s).
        #[arg(long, default_value = "5s", allow_hyphen_values = true)]
        interval: String,
        id: String,
    },
    /// Print the OCI runtime features JSON.
    Features,
    /// Checkpoint a container (CRIU).
    Checkpoint {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        rest: Vec<String>,
    },
    /// Restore a container (CRIU).
    Restore {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        rest: Vec<String>,
    },
}

pub struct Identity {
    /// Binary name: `rpc-runc`.
    pub name: &'static str,
    pub version: &'static str,
    pub commit: &'static str,
    /// Default --root.
    pub default_root: &'static str,
}

/// Parse the command line, run the verb, return the exit code.
pub fn main(id: &Identity, backend: &dyn Backend) -> i32 {
    // Sealing may re-execute us: do it before any other work (the parse
    // below runs again in the new image). `dispatch` checks once more,
    // for command lines this scan does not read as clap does.
    if let Some(root) = spawning_verb_root(std::env::args_os().skip(1), id.default_root) {
        let scratch = root.ancestors().find(|p| p.is_dir()).unwrap_or(std::path::Path::new("/")).to_path_buf();
        if let Err(e) = crate::linux::exe_seal::ensure(&scratch) {
            eprintln!("{}: {e}", id.name);
            return 1;
        }
    }
    // clap's command tree and matches are left to the process exit:
    // dropping them took ~100k instructions on every call.
    let mut cmd = <Cli as clap::CommandFactory>::command();
    let parsed = cmd.try_get_matches_from_mut(std::env::args_os()).and_then(|mut m| {
        let r = <Cli as clap::FromArgMatches>::from_arg_matches_mut(&mut m);
        std::mem::forget(m);
        r.map_err(|e| e.format(&mut cmd))
    });
    std::mem::forget(cmd);
    let cli = match parsed {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    if cli.version {
        println!("{} version {}\ncommit: {}\nspec: {}", id.name, id.version, id.commit, lifecycle::OCI_VERSION);
        return 0;
    }
    let format = if cli.log_format == "json" { log::Format::Json } else { log::Format::Text };
    if let Err(e) = log::init(cli.log.as_deref(), format, cli.debug) {
        eprintln!("{}: opening log {}: {e}", id.name, cli.log.as_deref().map(|p| p.display().to_string()).unwrap_or_default());
        return 1;
    }
    match dispatch(id, backend, cli) {
        Ok(code) => code,
        Err(e) => {
            let msg = e.to_string();
            // To the log file (containerd shows its last error line) and,
            // always, to stderr for people and conmon.
            log::error(&msg);
            eprintln!("{}: {msg}", id.name);
            1
        }
    }
}

/// A quick read of the command line, before clap: if the verb puts
/// processes into a container (create, run, exec), the --root it names.
fn spawning_verb_root(args: impl Iterator<Item = std::ffi::OsString>, default_root: &str) -> Option<PathBuf> {
    let mut root = PathBuf::from(default_root);
    let mut args = args.peekable();
    while let Some(a) = args.next() {
        let s = a.to_str()?;
        match s {
            "create" | "run" | "exec" => return Some(root),
            "--root" => root = PathBuf::from(args.next()?),
            "--log" | "--log-format" | "--criu" => {
                args.next()?;
            }
            "--rootless" => {
                if args.peek().and_then(|v| v.to_str()).is_some_and(|v| matches!(v, "true" | "false" | "auto")) {
                    args.next();
                }
            }
            _ if s.starts_with("--root=") => root = PathBuf::from(&s["--root=".len()..]),
            _ if s.starts_with('-') => {}
            _ => return None,
        }
    }
    None
}

fn dispatch(ident: &Identity, backend: &dyn Backend, cli: Cli) -> Result<i32> {
    let Some(cmd) = cli.cmd else {
        return Err(Error::Usage(format!("no command given; see {} --help", ident.name)));
    };
    if cli.systemd_cgroup {
        return Err(Error::Unsupported("--systemd-cgroup (systemd cgroup driver)".into()));
    }
    if let Some(r) = cli.rootless.as_deref() {
        if !matches!(r, "true" | "false" | "auto") {
            return Err(Error::Usage(format!("--rootless: invalid value {r:?} (true, false or auto)")));
        }
    }
    let rt = Runtime { store: Store::new(cli.root.unwrap_or_else(|| PathBuf::from(ident.default_root))), backend };
    if matches!(cmd, Cmd::Create { .. } | Cmd::Run { .. } | Cmd::Exec { .. }) {
        // These put processes of ours into a container: first make sure
        // the image they run from cannot be written from inside one (may
        // re-execute the runtime once, through a read-only view).
        let scratch = rt.store.root.ancestors().find(|p| p.is_dir()).unwrap_or(std::path::Path::new("/"));
        crate::linux::exe_seal::ensure(scratch)?;
    }
    let create_args = |f: CreateFlags, detached: bool| CreateArgs {
        bundle: f.bundle,
        pid_file: f.pid_file,
        console_socket: f.console_socket,
        no_pivot: f.no_pivot,
        no_new_keyring: f.no_new_keyring,
        preserve_fds: f.preserve_fds,
        console: None,
        detached,
        loaded: None,
    };
    match cmd {
        Cmd::Create { f, id } => {
            lifecycle::create::create(&rt, &id, create_args(f, true))?;
        }
        Cmd::Start { id } => lifecycle::start::start(&rt, &id)?,
        Cmd::Run { f, detach, keep, id } => {
            return lifecycle::run::run(&rt, &id, create_args(f, detach), detach, keep);
        }
        Cmd::Exec { mut a, id, command } => {
            a.args = command;
            return lifecycle::exec::exec(&rt, &id, a);
        }
        Cmd::State { id } => {
            let s = lifecycle::state::state(&rt, &id)?;
            print_json(&s)?;
        }
        Cmd::Kill { all, id, signal } => {
            let sig = lifecycle::parse_signal(signal.as_deref().unwrap_or("SIGTERM"))?;
            lifecycle::kill::kill(&rt, &id, sig, all)?;
        }
        Cmd::Delete { force, id } => lifecycle::delete::delete(&rt, &id, force)?,
        Cmd::List { format, quiet } => {
            let all = lifecycle::list::list(&rt)?;
            let mut out = std::io::stdout().lock();
            if quiet {
                for s in &all {
                    let _ = writeln!(out, "{}", s.id);
                }
            } else if format == "json" {
                let _ = writeln!(out, "{}", serde_json::to_string(&all).unwrap_or_else(|_| "[]".into()));
            } else if format == "table" {
                let rows: Vec<[String; 6]> = all
                    .iter()
                    .map(|s| {
                        [
                            s.id.clone(),
                            s.pid.to_string(),
                            s.status.clone(),
                            s.bundle.display().to_string(),
                            s.created.clone(),
                            s.owner.clone(),
                        ]
                    })
                    .collect();
                let head = ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from);
                let mut w = [0usize; 6];
                for r in std::iter::once(&head).chain(rows.iter()) {
                    for (i, c) in r.iter().enumerate() {
                        w[i] = w[i].max(c.len());
                    }
                }
                for r in std::iter::once(&head).chain(rows.iter()) {
                    let line: Vec<String> =
                        r.iter().enumerate().map(|(i, c)| if i == 5 { c.clone() } else { format!("{:w$}", c, w = w[i] + 3) }).collect();
                    let _ = writeln!(out, "{}", line.join("").trim_end());
                }
            } else {
                return Err(Error::Usage(format!("invalid format option {format:?}")));
            }
        }
        Cmd::Spec { bundle, rootless } => {
            let p = bundle.join(crate::bundle::CONFIG);
            if p.exists() {
                return Err(Error::Usage(format!("File {} exists. Remove it first", p.display())));
            }
            let v = crate::spec::default_spec(rootless || cli.rootless.as_deref() == Some("true"));
            let data = serde_json::to_string_pretty(&v).map_err(|e| Error::Container(e.to_string()))?;
            std::fs::write(&p, data + "\n").map_err(|e| Error::Io { context: format!("writing {}", p.display()), source: e })?;
        }
        Cmd::Pause { id } => lifecycle::pause::pause(&rt, &id, true)?,
        Cmd::Resume { id } => lifecycle::pause::pause(&rt, &id, false)?,
        Cmd::Ps { format, id, ps_args } => {
            lifecycle::ps::ps(&rt, &id, &format, &ps_args, &mut std::io::stdout().lock())?;
        }
        Cmd::Update { f, id } => {
            let res = lifecycle::update::resources_from(&f)?;
            lifecycle::update::update(&rt, &id, &res)?;
        }
        Cmd::Events { stats, interval, id } => {
            let every = lifecycle::events::parse_duration(&interval)?;
            lifecycle::events::events(&rt, &id, stats, every, &mut std::io::stdout().lock())?;
        }
        Cmd::Features => {
            let mut doc = crate::features::features();
            backend.features(&mut doc);
            print_json(&doc)?
        }
        Cmd::Checkpoint { .. } | Cmd::Restore { .. } => {
            return Err(Error::Unsupported("checkpoint/restore (CRIU)".into()));
        }
    }
    Ok(0)
}

fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    let s = serde_json::to_string_pretty(v).map_err(|e| Error::Container(e.to_string()))?;
    println!("{s}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(args: &[&str]) -> Option<PathBuf> {
        spawning_verb_root(args.iter().map(std::ffi::OsString::from), "/run/x")
    }

    /// The early scan finds the verbs that seal, and the --root clap would.
    #[test]
    fn the_early_scan_reads_verb_and_root_as_clap_does() {
        assert_eq!(scan(&["run", "c1"]), Some("/run/x".into()));
        assert_eq!(scan(&["--root", "/r", "--log", "run", "exec", "c1"]), Some("/r".into()));
        assert_eq!(scan(&["--debug", "--root=/r2", "--log-format", "json", "exec", "c1", "sh"]), Some("/r2".into()));
        assert_eq!(scan(&["--rootless", "true", "create", "c1"]), Some("/run/x".into()));
        assert_eq!(scan(&["state", "run"]), None);
        assert_eq!(scan(&["--root", "/r", "delete", "exec"]), None);
        assert_eq!(scan(&["--root"]), None);
    }
}
