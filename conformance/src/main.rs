//! rpc-conformance: an OCI runtime conformance suite that drives any runtime
//! (ours, runc, crun, ...) through its command line and prints, per case,
//! whether each runtime does what the runtime spec promises.

mod bundle;
mod cases;
mod console;
mod expected;
mod host;
mod report;
mod runner;
mod verdict;

use cases::Case;
use expected::ExpectedList;
use host::Host;
use report::{CaseInfo, Outcome, Report, RuntimeInfo};
use runner::{Ctx, Runtime, Settings};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use verdict::Verdict;

const USAGE: &str = "\
usage: rpc-conformance --runtime [NAME=]PATH [--runtime ...] [options]

Runs the OCI runtime conformance cases against each runtime, through its
command line only (runc's: --root, create, start, run, state, kill, delete,
list, pause/resume), and prints a table of pass/fail/skip per runtime.

options:
  --runtime [NAME=]PATH       runtime to test (repeatable); NAME defaults to the file name
  --require NAME              exit non-zero if runtime NAME fails a case not listed in
                              --expected-failures (repeatable)
  --expected-failures FILE    lines `runtime-name case-name  # reason`
  --format text|json          output format on stdout (default text)
  --results-md FILE           also write the results as a markdown page
  --filter SUBSTR             only cases whose name contains SUBSTR (repeatable: any)
  --list                      list the cases and exit
  --jobs N                    cases run in parallel (default 4)
  --case-timeout SECS         time limit of one case (default 60)
  --busybox PATH              busybox-static binary for the rootfs (default /bin/busybox)
  --workdir DIR               where bundles are made (default /tmp)
  --crun-hybrid-workaround    run every runtime inside a private mount namespace in which
                              /sys/fs/cgroup/unified/cgroup.controllers is hidden (crun 1.8
                              refuses hybrid cgroup hosts); done by default for a runtime
                              named crun on a hybrid host
  --no-crun-hybrid-workaround never do that
  --keep                      keep the bundles and logs of every case
  -v, --verbose               print each case as it finishes
  -h, --help                  this text
";

#[derive(Debug, Clone, Default)]
struct Args {
    runtimes: Vec<(String, PathBuf)>,
    require: Vec<String>,
    expected: Option<PathBuf>,
    json: bool,
    results_md: Option<PathBuf>,
    filters: Vec<String>,
    list: bool,
    jobs: usize,
    case_timeout: u64,
    busybox: PathBuf,
    workdir: PathBuf,
    workaround: Option<bool>,
    keep: bool,
    verbose: bool,
    // Set by the parent when it re-executes itself for one runtime.
    child: bool,
    tag: Option<String>,
    run_dir: Option<PathBuf>,
}

fn parse_args(argv: &[String]) -> Result<Args, String> {
    let mut a = Args { jobs: 4, case_timeout: 60, busybox: "/bin/busybox".into(), workdir: "/tmp".into(), ..Default::default() };
    let mut i = 0;
    let val = |i: &mut usize, name: &str| -> Result<String, String> {
        *i += 1;
        argv.get(*i).cloned().ok_or_else(|| format!("{name} needs a value"))
    };
    while i < argv.len() {
        let arg = argv[i].clone();
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let get = |i: &mut usize| -> Result<String, String> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => val(i, &flag),
            }
        };
        match flag.as_str() {
            "--runtime" => {
                let v = get(&mut i)?;
                let (name, path) = match v.split_once('=') {
                    Some((n, p)) if !n.contains('/') => (n.to_string(), PathBuf::from(p)),
                    _ => {
                        let p = PathBuf::from(&v);
                        (p.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or(v.clone()), p)
                    }
                };
                if name.is_empty() {
                    return Err(format!("--runtime {v}: empty name"));
                }
                if a.runtimes.iter().any(|(n, _)| *n == name) {
                    return Err(format!("two runtimes named {name}: use --runtime NAME=PATH"));
                }
                a.runtimes.push((name, path));
            }
            "--require" => a.require.push(get(&mut i)?),
            "--expected-failures" => a.expected = Some(get(&mut i)?.into()),
            "--format" => match get(&mut i)?.as_str() {
                "json" => a.json = true,
                "text" | "table" => a.json = false,
                f => return Err(format!("unknown --format {f} (text or json)")),
            },
            "--results-md" => a.results_md = Some(get(&mut i)?.into()),
            "--filter" => a.filters.push(get(&mut i)?),
            "--list" => a.list = true,
            "--jobs" | "-j" => a.jobs = get(&mut i)?.parse().map_err(|_| "--jobs wants a number")?,
            "--case-timeout" => a.case_timeout = get(&mut i)?.parse().map_err(|_| "--case-timeout wants seconds")?,
            "--busybox" => a.busybox = get(&mut i)?.into(),
            "--workdir" => a.workdir = get(&mut i)?.into(),
            "--crun-hybrid-workaround" => a.workaround = Some(true),
            "--no-crun-hybrid-workaround" => a.workaround = Some(false),
            "--keep" => a.keep = true,
            "-v" | "--verbose" => a.verbose = true,
            "--internal-child" => a.child = true,
            "--internal-tag" => a.tag = Some(get(&mut i)?),
            "--internal-run-dir" => a.run_dir = Some(get(&mut i)?.into()),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
        i += 1;
    }
    a.jobs = a.jobs.clamp(1, 64);
    Ok(a)
}

fn selected(all: &[Case], filters: &[String]) -> Vec<usize> {
    (0..all.len()).filter(|&i| filters.is_empty() || filters.iter().any(|f| all[i].name.contains(f.as_str()))).collect()
}

/// Parse "1.0.2-dev" into (1, 0, 2).
fn semver(s: &str) -> Option<(u32, u32, u32)> {
    let mut it = s.trim().split(|c: char| !c.is_ascii_digit());
    let a = it.next()?.parse().ok()?;
    let b = it.next().and_then(|x| x.parse().ok()).unwrap_or(0);
    let c = it.next().and_then(|x| x.parse().ok()).unwrap_or(0);
    Some((a, b, c))
}

/// Run one case on one runtime.
fn run_case(rt: &Runtime, host: &Host, settings: &Settings, index: usize, case: &Case) -> Outcome {
    let start = Instant::now();
    let mut verdict = match Ctx::new(rt, host, settings, index, case.name) {
        Err(e) => Verdict::Fail(format!("cannot make the bundle: {e}")),
        Ok(mut ctx) => {
            let v = match (case.run)(&mut ctx) {
                Ok(v) | Err(v) => v,
            };
            let v = match v {
                Verdict::Fail(m) if Instant::now() >= ctx.deadline => {
                    Verdict::Fail(format!("case timed out after {}s; {m}", settings.case_timeout.as_secs()))
                }
                v => v,
            };
            drop(ctx);
            v
        }
    };
    // A feature newer than the spec the runtime declares is not held against it.
    if let (Verdict::Fail(m), Some(since), Some(decl)) = (&verdict, case.since, rt.spec.as_deref()) {
        if let (Some(want), Some(have)) = (semver(since), semver(decl)) {
            if have < want {
                verdict = Verdict::Skip(format!("runtime declares OCI spec {decl}; this feature came in {since} (it fails: {m})"));
            }
        }
    }
    // Counted with the test suites' skips (`make test` checks them against
    // tests/skips.txt).
    if let Verdict::Skip(why) = &verdict {
        testkit::skip::record_test("conformance", "rpc-conformance", &format!("{}::{}", rt.name, case.name), why);
    }
    Outcome { verdict, ms: start.elapsed().as_millis() as u64, expected: None }
}

/// Run the selected cases on one runtime, `jobs` at a time.
fn run_runtime(rt: &Runtime, host: &Host, settings: &Settings, all: &[Case], sel: &[usize], jobs: usize, verbose: bool) -> Vec<Outcome> {
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Outcome>>> = Mutex::new(vec![None; sel.len()]);
    std::thread::scope(|s| {
        for _ in 0..jobs.min(sel.len().max(1)) {
            s.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::SeqCst);
                if k >= sel.len() {
                    break;
                }
                let case = &all[sel[k]];
                let o = run_case(rt, host, settings, sel[k], case);
                let n = done.fetch_add(1, Ordering::SeqCst) + 1;
                if verbose {
                    let d = o.verdict.detail();
                    eprintln!(
                        "[{}] {n}/{} {} {} ({} ms){}",
                        rt.name,
                        sel.len(),
                        case.name,
                        o.verdict.word(),
                        o.ms,
                        if d.is_empty() { String::new() } else { format!(": {}", runner::cut(d, 200)) }
                    );
                }
                if let Ok(mut r) = results.lock() {
                    r[k] = Some(o);
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .map(|o| o.unwrap_or(Outcome { verdict: Verdict::Fail("case did not run".into()), ms: 0, expected: None }))
        .collect()
}

/// Does this runtime need crun's hybrid-cgroup workaround?
fn wants_workaround(args: &Args, host: &Host, name: &str, path: &Path) -> bool {
    match args.workaround {
        Some(w) => w,
        None => {
            let is_crun = name == "crun" || path.file_name().map(|f| f == "crun").unwrap_or(false);
            is_crun && host.cgroups.mode == host::CgroupMode::Hybrid && !host.cgroups.v2_controllers.is_empty()
        }
    }
}

/// In the private mount namespace of a child: hide the cgroup2 controllers.
fn hide_unified_controllers(host: &Host, run_dir: &Path) -> Result<(), String> {
    let Some(m) = &host.cgroups.v2_mount else {
        return Ok(());
    };
    let target = m.join("cgroup.controllers");
    if !target.exists() {
        return Ok(());
    }
    let empty = run_dir.join("empty-cgroup.controllers");
    std::fs::write(&empty, "").map_err(|e| format!("{}: {e}", empty.display()))?;
    let cs = |p: &Path| std::ffi::CString::new(p.to_string_lossy().as_bytes()).map_err(|_| "bad path".to_string());
    let (src, dst) = (cs(&empty)?, cs(&target)?);
    // SAFETY: valid C strings; a bind mount in our private mount namespace.
    let r = unsafe { libc::mount(src.as_ptr(), dst.as_ptr(), std::ptr::null(), libc::MS_BIND, std::ptr::null()) };
    if r != 0 {
        return Err(format!("bind mount over {}: {}", target.display(), std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Run one runtime in `unshare -m --propagation private <self> --internal-child`.
fn run_in_child(args: &Args, name: &str, path: &Path, tag: &str, run_dir: &Path, unshare: &Path) -> Result<Vec<Outcome>, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut c = Command::new(unshare);
    c.args(["-m", "--propagation", "private"]).arg(&exe);
    c.arg("--internal-child").arg("--runtime").arg(format!("{}={}", name, path.display()));
    c.arg("--internal-tag").arg(tag).arg("--internal-run-dir").arg(run_dir);
    c.arg("--jobs").arg(args.jobs.to_string()).arg("--case-timeout").arg(args.case_timeout.to_string());
    c.arg("--busybox").arg(&args.busybox).arg("--workdir").arg(&args.workdir);
    for f in &args.filters {
        c.arg("--filter").arg(f);
    }
    if args.keep {
        c.arg("--keep");
    }
    if args.verbose {
        c.arg("--verbose");
    }
    let out = c.stdin(Stdio::null()).stderr(Stdio::inherit()).output().map_err(|e| format!("spawn {}: {e}", unshare.display()))?;
    if !out.status.success() {
        return Err(format!("{} ... --internal-child exited {}", unshare.display(), out.status));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("child output: {e}"))
}

/// rmdir, bottom-up, the cgroups this run created (only empty ones go).
fn remove_cgroups(host: &Host, parent: &str) {
    let mut mounts: Vec<PathBuf> = host.cgroups.v1.values().map(|c| c.mount.clone()).collect();
    mounts.extend(host.cgroups.v2_mount.clone());
    mounts.sort();
    mounts.dedup();
    fn rm(p: &Path) {
        if let Ok(rd) = std::fs::read_dir(p) {
            for e in rd.flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    rm(&e.path());
                }
            }
        }
        let _ = std::fs::remove_dir(p);
    }
    let rel = parent.trim_start_matches('/');
    for m in mounts {
        rm(&m.join(rel));
        if let Some(top) = Path::new(rel).components().next() {
            let _ = std::fs::remove_dir(m.join(top));
        }
    }
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse_args(&argv) {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            print!("{USAGE}");
            return;
        }
        Err(e) => {
            eprintln!("rpc-conformance: {e}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    let all = cases::all();
    let sel = selected(&all, &args.filters);
    if args.list {
        for &i in &sel {
            println!("{:<40} {:<32} {}", all[i].name, all[i].section, all[i].summary);
        }
        return;
    }
    if args.runtimes.is_empty() {
        eprintln!("rpc-conformance: give at least one --runtime\n\n{USAGE}");
        std::process::exit(2);
    }
    for r in &args.require {
        if !args.runtimes.iter().any(|(n, _)| n == r) {
            eprintln!("rpc-conformance: --require {r}: no --runtime of that name");
            std::process::exit(2);
        }
    }
    let mut args = args;
    for (n, p) in args.runtimes.iter_mut() {
        // Runtimes run with each case's dir as cwd: make the path absolute.
        match std::fs::canonicalize(&*p) {
            Ok(abs) => *p = abs,
            Err(e) => {
                eprintln!("rpc-conformance: runtime {n}: {}: {e}", p.display());
                std::process::exit(2);
            }
        }
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("rpc-conformance: must run as root (containers need namespaces, mounts and cgroups)");
        std::process::exit(2);
    }
    let expected = match &args.expected {
        Some(p) => match ExpectedList::load(p) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("rpc-conformance: {e}");
                std::process::exit(2);
            }
        },
        None => ExpectedList::default(),
    };
    for e in &expected.entries {
        if !all.iter().any(|c| c.name == e.case) {
            eprintln!("rpc-conformance: warning: expected-failures line {}: no case named {}", e.line, e.case);
        }
    }

    let tag = args.tag.clone().unwrap_or_else(|| format!("rc{}", std::process::id()));
    let run_dir = args.run_dir.clone().unwrap_or_else(|| args.workdir.join(format!("rpc-conformance-{}", std::process::id())));
    if let Err(e) = std::fs::create_dir_all(&run_dir) {
        eprintln!("rpc-conformance: {}: {e}", run_dir.display());
        std::process::exit(2);
    }
    let host = Host::probe(&args.busybox, &run_dir);
    let cgroup_parent = format!("/rpc-conformance/{tag}");

    if args.child {
        if let Err(e) = hide_unified_controllers(&host, &run_dir) {
            eprintln!("rpc-conformance: {e}");
            std::process::exit(2);
        }
    }
    let template = match bundle::RootfsTemplate::prepare(&run_dir.join("template"), &args.busybox) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("rpc-conformance: busybox {}: {e}", args.busybox.display());
            std::process::exit(2);
        }
    };
    let settings = Settings {
        run_dir: run_dir.clone(),
        template,
        cgroup_parent: cgroup_parent.clone(),
        case_timeout: Duration::from_secs(args.case_timeout),
        cmd_timeout: Duration::from_secs(20),
        keep: args.keep,
        tag: tag.clone(),
    };

    if args.child {
        let (name, path) = args.runtimes[0].clone();
        let rt = Runtime::new(name, path);
        let out = run_runtime(&rt, &host, &settings, &all, &sel, args.jobs, args.verbose);
        remove_cgroups(&host, &cgroup_parent);
        let s = serde_json::to_string(&out).unwrap_or_else(|_| "[]".into());
        let _ = std::io::stdout().write_all(s.as_bytes());
        return;
    }

    let mut infos = Vec::new();
    let mut columns: Vec<Vec<Outcome>> = Vec::new();
    for (name, path) in &args.runtimes {
        let rt = Runtime::new(name.clone(), path.clone());
        let t0 = Instant::now();
        let mut note = None;
        let outs = if wants_workaround(&args, &host, name, path) {
            note = Some("run in a private mount namespace with the cgroup2 controllers hidden (hybrid-cgroup workaround)".to_string());
            let r = match &host.unshare {
                Some(u) => run_in_child(&args, name, path, &tag, &run_dir, u),
                None => Err("no unshare binary".into()),
            };
            r.unwrap_or_else(|e| {
                sel.iter().map(|_| Outcome { verdict: Verdict::Fail(format!("workaround failed: {e}")), ms: 0, expected: None }).collect()
            })
        } else {
            run_runtime(&rt, &host, &settings, &all, &sel, args.jobs, args.verbose)
        };
        let secs = t0.elapsed().as_secs_f64();
        eprintln!("rpc-conformance: {name}: {} cases in {secs:.1} s", sel.len());
        let version = match &rt.spec {
            Some(s) => format!("{} (spec {s})", rt.version),
            None => rt.version.clone(),
        };
        infos.push(RuntimeInfo { name: name.clone(), path: path.display().to_string(), version, note, seconds: secs });
        columns.push(outs);
    }
    remove_cgroups(&host, &cgroup_parent);
    if !args.keep {
        runner::remove_tree(&run_dir);
    } else {
        eprintln!("rpc-conformance: kept bundles and logs in {}", run_dir.display());
    }

    let mut report = Report {
        host: host.summary_lines(),
        runtimes: infos,
        cases: sel
            .iter()
            .map(|&i| CaseInfo { name: all[i].name.into(), section: all[i].section.into(), summary: all[i].summary.into() })
            .collect(),
        outcomes: (0..sel.len()).map(|k| columns.iter().map(|col| col[k].clone()).collect()).collect(),
    };
    report.apply_expected(&expected);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.json()).unwrap_or_default());
    } else {
        print!("{}", report.text());
    }
    if let Some(md) = &args.results_md {
        let cmd = format!(
            "rpc-conformance {}",
            argv.iter().map(|a| if a.contains(' ') { format!("'{a}'") } else { a.clone() }).collect::<Vec<_>>().join(" ")
        );
        if let Err(e) = std::fs::write(md, report.markdown(&cmd)) {
            eprintln!("rpc-conformance: {}: {e}", md.display());
            std::process::exit(2);
        }
    }
    let mut bad = false;
    for r in &args.require {
        let ri = report.runtimes.iter().position(|x| &x.name == r).expect("checked above");
        let u = report.unexpected_failures(ri);
        if !u.is_empty() {
            bad = true;
            eprintln!("rpc-conformance: {r} failed {} case(s) not in the expected-failures list:", u.len());
            for (c, why) in u {
                eprintln!("  {c}: {why}");
            }
        }
    }
    if bad {
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Result<Args, String> {
        parse_args(&s.split_whitespace().map(String::from).collect::<Vec<_>>())
    }

    #[test]
    fn runtime_names() {
        let a = args("--runtime /usr/sbin/runc --runtime ours=target/release/rpc-runc --require ours").unwrap();
        assert_eq!(a.runtimes[0], ("runc".to_string(), PathBuf::from("/usr/sbin/runc")));
        assert_eq!(a.runtimes[1], ("ours".to_string(), PathBuf::from("target/release/rpc-runc")));
        assert_eq!(a.require, vec!["ours"]);
        assert!(args("--runtime /a/runc --runtime /b/runc").is_err());
    }

    #[test]
    fn options() {
        let a = args("--format json --filter hooks. --filter ns. --jobs 2 --results-md x.md --expected-failures e.txt").unwrap();
        assert!(a.json);
        assert_eq!(a.filters, vec!["hooks.", "ns."]);
        assert_eq!(a.jobs, 2);
        assert_eq!(a.results_md, Some(PathBuf::from("x.md")));
        assert!(args("--format=json").unwrap().json);
        assert!(args("--format xml").is_err());
        assert!(args("--bogus").is_err());
        assert_eq!(args("--help").unwrap_err(), "");
    }

    #[test]
    fn filters_select_by_substring() {
        let all = cases::all();
        let s = selected(&all, &["delete.".to_string()]);
        assert!(!s.is_empty());
        assert!(s.iter().all(|&i| all[i].name.contains("delete.")));
        assert_eq!(selected(&all, &[]).len(), all.len());
    }

    #[test]
    fn spec_versions() {
        assert_eq!(semver("1.0.2-dev"), Some((1, 0, 2)));
        assert_eq!(semver("1.2.0"), Some((1, 2, 0)));
        assert!(semver("1.0.2-dev") < semver("1.1.0"));
    }
}
