//! Counted skips. A test that cannot run here (no root, a missing tool or
//! kernel facility, the reference runc lacking a feature) returns early;
//! libtest counts that as a pass, so a run where half the suite skipped
//! looks as green as a full one. Every early return goes through
//! [`skip!`](crate::skip!) instead: it prints `SKIP <test>: <reason>` and,
//! when `$RPC_TEST_SKIPS` names a file, appends one line to it
//! (`<package>::<binary>::<test>\t<reason>`). `make test` sets that
//! variable, prints the totals after the run and fails on a skip that
//! `tests/skips.txt` does not list with its reason
//! (`scripts/test-skips.py`).

use std::io::Write;

/// The environment variable naming the file skips are appended to.
pub const ENV: &str = "RPC_TEST_SKIPS";

/// `skip!("why {}", x)`: print and record a skip of the running test. The
/// caller returns right after (a macro so that the package name is the
/// calling crate's).
#[macro_export]
macro_rules! skip {
    ($($arg:tt)+) => {
        $crate::skip::record(env!("CARGO_PKG_NAME"), &format!($($arg)+))
    };
}

/// Print and record a skip of the running test for `package`.
pub fn record(package: &str, reason: &str) {
    let test = test_name();
    eprintln!("SKIP {test}: {}", one_line(reason));
    record_test(package, &binary_name(), &test, reason);
}

/// Record (without printing: the caller reports it its own way) a skip
/// of `test` in `binary` of `package`: the conformance runner's cases.
pub fn record_test(package: &str, binary: &str, test: &str, reason: &str) {
    let Some(path) = std::env::var_os(ENV).filter(|p| !p.is_empty()) else { return };
    append(std::path::Path::new(&path), package, binary, test, reason);
}

fn append(path: &std::path::Path, package: &str, binary: &str, test: &str, reason: &str) {
    let line = format!("{package}::{binary}::{test}\t{}\n", one_line(reason));
    // O_APPEND and one write per line: tests of several threads and
    // binaries append to the same file without interleaving lines.
    let res = std::fs::OpenOptions::new().create(true).append(true).open(path).and_then(|mut f| f.write_all(line.as_bytes()));
    // A skip that cannot be recorded would pass unseen: that is what this
    // module exists to prevent, so it fails the test instead.
    if let Err(e) = res {
        panic!("cannot record the skip of {test} in {} (${ENV}): {e}", path.display());
    }
}

/// One line per skip: the record file is read line by line, tab-separated.
fn one_line(reason: &str) -> String {
    reason.replace(['\n', '\t'], " ")
}

/// `true` (after recording the skip) when this process is not root.
pub fn unless_root(package: &str, what: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return false;
    }
    record(package, &format!("needs root ({what})"));
    true
}

/// The running test: libtest runs each test on a thread named after its
/// path (`module::name`); outside libtest, the thread's name or "main".
fn test_name() -> String {
    std::thread::current().name().unwrap_or("main").to_string()
}

/// The test binary's name without the hash cargo appends
/// (`lifecycle-0123456789abcdef` -> `lifecycle`).
fn binary_name() -> String {
    let exe = std::env::current_exe().ok().and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned())).unwrap_or_default();
    strip_hash(&exe).to_string()
}

fn strip_hash(exe: &str) -> &str {
    match exe.rsplit_once('-') {
        Some((stem, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => stem,
        _ => exe,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_names_lose_the_cargo_hash() {
        assert_eq!(strip_hash("lifecycle-0123456789abcdef"), "lifecycle");
        assert_eq!(strip_hash("shim-metrics-0123456789abcdef"), "shim-metrics");
        assert_eq!(strip_hash("rpc-conformance"), "rpc-conformance");
    }

    #[test]
    fn a_skip_is_recorded_with_test_and_reason() {
        let f = std::env::temp_dir().join(format!("testkit-skips-{}", std::process::id()));
        let _ = std::fs::remove_file(&f);
        // Through the file directly: setting $RPC_TEST_SKIPS here would
        // race with the other tests of this binary.
        append(&f, "testkit", &binary_name(), &test_name(), &format!("no {} here", "gizmo\twith a tab"));
        let text = std::fs::read_to_string(&f).expect("record file");
        let _ = std::fs::remove_file(&f);
        let line = text.lines().next().expect("one line");
        let (test, reason) = line.split_once('\t').expect("tab");
        assert!(test.starts_with("testkit::testkit::"), "{test}");
        assert!(test.ends_with("skip::tests::a_skip_is_recorded_with_test_and_reason"), "{test}");
        assert_eq!(reason, "no gizmo with a tab here");
    }
}
