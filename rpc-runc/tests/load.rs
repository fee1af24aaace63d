//! Load: create/start/wait/delete cycles of the runtime, one stream and
//! then four at once, with nothing leaked: no state dir, cgroup dir, mount,
//! process or zombie, and no descriptor of the caller. The test process is
//! a subreaper, as containerd's shim is: each container's init becomes our
//! child once `create` exits, so every exit status is checked and every
//! orphan would show up as our child.
//!
//! CI runs 300 sequential cycles and 4 streams of 100;
//! `RPC_RELIABILITY=full` (`make reliability`) runs 10,000 and 4 x 2,500.
//! `RPC_LOAD_CYCLES=N` sets the sequential count (the streams get N/4).

#[macro_use]
mod common;

use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn cycles() -> usize {
    if let Some(n) = std::env::var("RPC_LOAD_CYCLES").ok().and_then(|v| v.parse().ok()) {
        return n;
    }
    if std::env::var("RPC_RELIABILITY").is_ok_and(|v| v == "full") {
        10_000
    } else {
        300
    }
}

/// Cycles of each of the 4 parallel streams.
fn per_stream() -> usize {
    if let Some(n) = std::env::var("RPC_LOAD_CYCLES").ok().and_then(|v| v.parse::<usize>().ok()) {
        return (n / 4).max(1);
    }
    if std::env::var("RPC_RELIABILITY").is_ok_and(|v| v == "full") {
        2_500
    } else {
        100
    }
}

/// One runtime invocation, its stderr to `err` (kept for the message).
fn rt(root: &Path, err: &Path, args: &[&str]) -> Result<(), String> {
    let mut c = Command::new(runtime_path());
    if testkit::oldkernel::enabled() {
        // SAFETY: install only makes the prctl (no allocation).
        unsafe { std::os::unix::process::CommandExt::pre_exec(&mut c, || old_kernel().install()) };
    }
    let ef = fs::File::create(err).map_err(|e| e.to_string())?;
    c.arg("--root").arg(root).args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(ef);
    let mut child = c.spawn().map_err(|e| format!("spawning the runtime: {e}"))?;
    let (st, timed_out) = wait_child(&mut child, CMD_TIMEOUT);
    match st {
        Some(s) if s.success() && !timed_out => Ok(()),
        _ => {
            Err(format!("{args:?}: {st:?}{}: {}", if timed_out { " (timed out)" } else { "" }, fs::read_to_string(err).unwrap_or_default()))
        }
    }
}

/// waitpid on a container's init (our child: we are a subreaper).
fn wait_exit(pid: i32, timeout: Duration) -> Result<i32, String> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut status = 0;
        // SAFETY: plain syscall on a pid that is our child.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            return Ok(if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { 128 + libc::WTERMSIG(status) });
        }
        if r < 0 {
            return Err(format!("waitpid {pid}: {}", std::io::Error::last_os_error()));
        }
        if Instant::now() > deadline {
            return Err(format!("init {pid} did not exit"));
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// One stream: `n` cycles on its own bundle and root, each container
/// exiting with `code`; the first failure, its container left tracked
/// for the harness to clean up.
fn stream(t: &Harness, n: usize, code: i32, prefix: &str) -> Result<(), String> {
    let b = t.bundle_str();
    let err = t.dir.join("stderr");
    let pidf = t.dir.join("pid");
    let pids = pidf.to_string_lossy().into_owned();
    for i in 0..n {
        let id = format!("{prefix}{i}");
        cycle(t, &id, code, &b, &err, &pidf, &pids).inspect_err(|_| t.track(&id))?;
    }
    Ok(())
}

/// create (with a pid file), start, wait for init's exit status, delete.
fn cycle(t: &Harness, id: &str, code: i32, b: &str, err: &Path, pidf: &Path, pids: &str) -> Result<(), String> {
    let _ = fs::remove_file(pidf);
    rt(&t.root, err, &["create", "--bundle", b, "--pid-file", pids, id])?;
    let pid: i32 = fs::read_to_string(pidf).ok().and_then(|s| s.trim().parse().ok()).ok_or(format!("{id}: no pid file"))?;
    rt(&t.root, err, &["start", id])?;
    let got = wait_exit(pid, CMD_TIMEOUT).map_err(|e| format!("{id}: {e}"))?;
    if got != code {
        return Err(format!("{id}: exit status {got}, want {code}"));
    }
    rt(&t.root, err, &["delete", id])?;
    if t.root.join(id).exists() {
        return Err(format!("{id}: state dir left after delete"));
    }
    Ok(())
}

/// Everything of ours left on the host: state dirs, cgroups named after
/// our ids, mounts of our dirs, processes naming them, our children.
fn leaks(dirs: &[(PathBuf, PathBuf)], prefix: &str, base: &testkit::leaks::Baseline) -> Vec<String> {
    let mut out = Vec::new();
    for (dir, root) in dirs {
        for e in testkit::leaks::dir_entries(root) {
            out.push(format!("state dir {}/{e}", root.display()));
        }
        for m in testkit::leaks::mounts_mentioning(dir) {
            out.push(format!("mount {m}"));
        }
        let dir = format!("{}/", dir.display());
        for p in testkit::processes_matching(|c| c.contains(&dir) || c.contains(prefix)) {
            out.push(format!("process {p}"));
        }
    }
    for d in testkit::leaks::cgroup_dirs_containing(prefix) {
        out.push(format!("cgroup {}", d.display()));
    }
    out.extend(base.leaked());
    out
}

#[test]
fn create_start_delete_cycles_leak_nothing() {
    let mut main = harness!("load");
    // SAFETY: plain prctl; this test binary holds only this test.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let n = cycles();
    let prefix = format!("ld{}x", std::process::id());
    main.args(&["sh", "-c", "exit 3"]);
    main.write_config();
    let streams: Vec<Harness> = (0..4)
        .map(|s| {
            let mut h = Harness::new_unchecked(&format!("load-s{s}"));
            h.args(&["sh", "-c", &format!("exit {}", 10 + s)]);
            h.write_config();
            h
        })
        .collect();
    let all: Vec<(PathBuf, PathBuf)> = std::iter::once(&main).chain(streams.iter()).map(|h| (h.dir.clone(), h.root.clone())).collect();
    let base = testkit::leaks::Baseline::take();
    let mounts_before = testkit::leaks::mount_count();

    let t0 = Instant::now();
    if let Err(e) = stream(&main, n, 3, &format!("{prefix}q")) {
        panic!("sequential: {e}");
    }
    let seq = t0.elapsed();
    let left = leaks(&all, &prefix, &base);
    assert!(left.is_empty(), "after {n} sequential cycles: {left:#?}");

    let per = per_stream();
    let t1 = Instant::now();
    // Each stream owns its harness (not shareable between threads); its
    // Drop cleans up after a failure.
    let threads: Vec<_> = streams
        .into_iter()
        .enumerate()
        .map(|(s, h)| {
            let p = format!("{prefix}{s}p");
            std::thread::spawn(move || {
                let r = stream(&h, per, 10 + s as i32, &p);
                (r, h)
            })
        })
        .collect();
    let mut results = Vec::new();
    let mut keep = Vec::new();
    for th in threads {
        match th.join() {
            Ok((r, h)) => {
                results.push(r);
                keep.push(h);
            }
            Err(_) => results.push(Err("stream panicked".into())),
        }
    }
    let par = t1.elapsed();
    for (s, r) in results.iter().enumerate() {
        assert!(r.is_ok(), "stream {s}: {:?}", r);
    }
    let left = leaks(&all, &prefix, &base);
    assert!(left.is_empty(), "after 4 x {per} parallel cycles: {left:#?}");
    let zombies = testkit::leaks::zombies_of(std::process::id() as i32);
    assert!(zombies.is_empty(), "zombies: {zombies:?}");
    eprintln!(
        "load: {n} sequential cycles in {:.1} s ({:.0}/s, {:.1} ms each); 4 x {per} parallel in {:.1} s ({:.0}/s); \
         0 failures, 0 leaked state dirs, cgroups, mounts, processes, fds; host mounts {mounts_before} -> {}",
        seq.as_secs_f64(),
        n as f64 / seq.as_secs_f64(),
        seq.as_secs_f64() * 1000.0 / n as f64,
        par.as_secs_f64(),
        (4 * per) as f64 / par.as_secs_f64(),
        testkit::leaks::mount_count(),
    );
}
