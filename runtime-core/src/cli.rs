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
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = match quick_parse(&args).map(Ok).unwrap_or_else(|| clap_parse(args)) {
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

/// clap's reading of the command line (and its help, usage and errors).
fn clap_parse(args: Vec<std::ffi::OsString>) -> std::result::Result<Cli, clap::Error> {
    // clap's command tree and matches are left to the process exit:
    // dropping them took ~100k instructions on every call.
    let mut cmd = <Cli as clap::CommandFactory>::command();
    let parsed = cmd.try_get_matches_from_mut(args).and_then(|mut m| {
        let r = <Cli as clap::FromArgMatches>::from_arg_matches_mut(&mut m);
        std::mem::forget(m);
        r.map_err(|e| e.format(&mut cmd))
    });
    std::mem::forget(cmd);
    parsed
}

/// The command lines containerd, podman and the benchmarks send on every
/// container's way (a verb, its id, the usual flags), read without
/// building clap's command tree, which cost ~470k instructions of every
/// call. None for anything else (help, a flag or form not listed here, a
/// repeated flag, a value that looks like a flag, non-UTF-8): clap reads
/// those, and reports their errors, as before. The test below holds the
/// two readings equal.
fn quick_parse(args: &[std::ffi::OsString]) -> Option<Cli> {
    let mut cli = Cli {
        root: None,
        log: None,
        log_format: "text".into(),
        debug: false,
        systemd_cgroup: false,
        rootless: None,
        criu: None,
        version: false,
        cmd: None,
    };
    let mut words = args.iter().skip(1).map(|a| a.to_str());
    let mut format_set = false;
    // An option's value: present, UTF-8, and not something clap could read
    // as a flag.
    let value = |w: Option<Option<&str>>| -> Option<String> {
        let v = w??;
        (!v.is_empty() && !v.starts_with('-')).then(|| v.to_string())
    };
    // The global flags (clap takes them before and after the verb).
    // Some(true): taken; Some(false): not a global flag; None: give up.
    let mut global = |w: &str, words: &mut dyn Iterator<Item = Option<&str>>, cli: &mut Cli| -> Option<bool> {
        let (flag, inline) = match w.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v)),
            _ => (w, None),
        };
        let val = |words: &mut dyn Iterator<Item = Option<&str>>| match inline {
            Some(v) => (!v.is_empty() && !v.starts_with('-')).then(|| v.to_string()),
            None => value(words.next()),
        };
        match flag {
            "--root" if cli.root.is_none() => cli.root = Some(PathBuf::from(val(words)?)),
            "--log" if cli.log.is_none() => cli.log = Some(PathBuf::from(val(words)?)),
            "--log-format" if !format_set => {
                let v = val(words)?;
                if v != "text" && v != "json" {
                    return None;
                }
                cli.log_format = v;
                format_set = true;
            }
            "--debug" if inline.is_none() && !cli.debug => cli.debug = true,
            // (a repeated one too: the verb's match gives up on it)
            _ => return Some(false),
        }
        Some(true)
    };
    let verb = loop {
        let w = words.next()??;
        if !global(w, &mut words, &mut cli)? {
            break w;
        }
    };
    if verb.starts_with('-') {
        return None;
    }
    // The verb's own flags and positionals.
    let mut f = CreateFlags {
        bundle: PathBuf::from("."),
        console_socket: None,
        pid_file: None,
        no_pivot: false,
        no_new_keyring: false,
        preserve_fds: 0,
    };
    let (mut detach, mut keep, mut force, mut all) = (false, false, false, false);
    let mut bundle_set = false;
    let mut exec = lifecycle::exec::ExecArgs::default();
    let mut positional: Vec<String> = Vec::new();
    let creates = matches!(verb, "run" | "create");
    while let Some(w) = words.next() {
        let w = w?;
        if verb == "exec" && positional.len() == 1 {
            // The command: everything after the id, as it is (from a word
            // that is no flag: clap's reading of `exec ID -x` is its own).
            if w.starts_with('-') {
                return None;
            }
            positional.push(w.to_string());
            for w in words.by_ref() {
                positional.push(w?.to_string());
            }
            break;
        }
        if global(w, &mut words, &mut cli)? {
            continue;
        }
        let set = |flag: &mut bool| (!std::mem::replace(flag, true)).then_some(());
        match w {
            "-b" | "--bundle" if creates && !bundle_set => {
                f.bundle = PathBuf::from(value(words.next())?);
                bundle_set = true;
            }
            "--pid-file" if (creates || verb == "exec") && f.pid_file.is_none() => f.pid_file = Some(PathBuf::from(value(words.next())?)),
            "--console-socket" if (creates || verb == "exec") && f.console_socket.is_none() => {
                f.console_socket = Some(PathBuf::from(value(words.next())?))
            }
            "--no-pivot" if creates => set(&mut f.no_pivot)?,
            "--no-new-keyring" if creates => set(&mut f.no_new_keyring)?,
            "-d" | "--detach" if verb == "run" || verb == "exec" => set(&mut detach)?,
            "--keep" if verb == "run" => set(&mut keep)?,
            "-f" | "--force" if verb == "delete" => set(&mut force)?,
            "-a" | "--all" if verb == "kill" => set(&mut all)?,
            "-p" | "--process" if verb == "exec" && exec.process.is_none() => exec.process = Some(PathBuf::from(value(words.next())?)),
            _ if w.is_empty() || w.starts_with('-') => return None,
            _ => positional.push(w.to_string()),
        }
    }
    let mut pos = positional.into_iter();
    let id = pos.next()?;
    let rest: Vec<String> = pos.collect();
    cli.cmd = Some(match (verb, rest.len()) {
        ("run", 0) => Cmd::Run { f, detach, keep, id },
        ("create", 0) => Cmd::Create { f, id },
        ("start", 0) => Cmd::Start { id },
        ("state", 0) => Cmd::State { id },
        ("delete", 0) => Cmd::Delete { force, id },
        ("kill", 0 | 1) => Cmd::Kill { all, id, signal: rest.into_iter().next() },
        ("exec", _) => {
            exec.detach = detach;
            exec.pid_file = f.pid_file;
            exec.console_socket = f.console_socket;
            Cmd::Exec { a: exec, id, command: rest }
        }
        _ => return None,
    });
    Some(cli)
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

    /// Every command line the fast reader takes, clap reads alike; the
    /// ones containerd, podman and the benchmarks send are taken.
    #[test]
    fn the_fast_reader_reads_as_clap_does() {
        let taken = [
            "--root /r run --bundle /b c1",
            "--root=/r run -b /b -d c1",
            "run --root /r --bundle /b --keep --pid-file /p --console-socket /s c1",
            "--debug --log /l --log-format json create --bundle /b --pid-file /p --no-pivot --no-new-keyring c1",
            "--log=/l --log-format=text start c1",
            "--root /r delete --force c1",
            "delete -f c1",
            "--root /r state c1",
            "kill c1",
            "kill -a c1 KILL",
            "--root /r kill c1 9",
            "exec c1 /bin/true",
            "--root /r exec -d --pid-file /p c1 sh -c 'x' --root y -d",
            "exec --process /p.json --detach --console-socket /s c1",
            "delete c1 --root /r",
        ];
        let refused = [
            "",
            "--help",
            "run --help",
            "-v",
            "--version",
            "--root",
            "--root /r",
            "--root /r --root /s state c1",
            "--debug --debug state c1",
            "--log-format xml state c1",
            "--root -x state c1",
            "--root= state c1",
            "run --bundle=/b c1",
            "run -b /b -b /c c1",
            "run -d -d c1",
            "run --preserve-fds 2 c1",
            "create -d c1",
            "run c1 c2",
            "state",
            "state c1 c2",
            "delete -- c1",
            "kill c1 -9",
            "kill c1 9 x",
            "exec c1 -t sh",
            "exec -t c1 sh",
            "exec --user 1 c1 sh",
            "list",
            "spec",
            "features",
            "--systemd-cgroup run c1",
            "--rootless true run c1",
            "help run",
            "run '' ",
        ];
        let words = |line: &str| -> Vec<std::ffi::OsString> {
            let mut v = vec!["rpc-runc".into()];
            // (split on blanks, '...' as one word)
            let mut cur = String::new();
            let mut quoted = false;
            let mut any = false;
            for c in line.chars() {
                match c {
                    '\'' => {
                        quoted = !quoted;
                        any = true;
                    }
                    ' ' if !quoted => {
                        if any || !cur.is_empty() {
                            v.push(std::mem::take(&mut cur).into());
                        }
                        any = false;
                    }
                    c => cur.push(c),
                }
            }
            if any || !cur.is_empty() {
                v.push(cur.into());
            }
            v
        };
        for line in taken.iter().chain(refused.iter()) {
            let args = words(line);
            let quick = quick_parse(&args);
            assert_eq!(quick.is_some(), taken.contains(line), "{line:?}: taken by the fast reader: {quick:?}");
            if let Some(q) = quick {
                let c = clap_parse(args).unwrap_or_else(|e| panic!("{line:?}: the fast reader took what clap refuses: {e}"));
                assert_eq!(format!("{q:?}"), format!("{c:?}"), "{line:?}");
            }
        }
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
