//! CVE-2019-5736 with CAP_SYS_PTRACE, at the price of no second start of
//! the runtime (issue 13): create, run and exec take the sealed view of
//! the binary as their image in place; re-executing through it cost
//! ~1.1 ms CPU of every `run`. Part of security.rs.

use crate::common::*;
use serde_json::json;

/// The runtime process that forks init (and runs the createRuntime hook)
/// runs from the sealed view, not the host's binary, and got there without
/// executing itself again: an exec through the view (/proc/self/fd/N or
/// execveat of the handle) renames the process after the descriptor's
/// number, and any exec of ours re-reads the binary, so its name is still
/// the one the first exec gave it. It maps nothing of the host's binary.
/// On the old-kernel surface (RPC_TEST_OLD_KERNEL) the same holds of a
/// runtime that had to re-execute.
#[test]
fn the_runtime_seals_its_image_without_a_second_exec() {
    if is_reference_runc() {
        eprintln!("skip: runc seals by re-executing a copy of itself; this checks our design");
        return;
    }
    let mut t = harness!("sec-seal-in-place");
    let host = std::fs::canonicalize(runtime_path()).unwrap();
    let rec = t.dir.join("parent");
    let script = format!(
        "cat /proc/$PPID/comm > {r}; readlink /proc/$PPID/exe >> {r}; echo \"maps $(grep -cF '{h}' /proc/$PPID/maps)\" >> {r}",
        r = rec.display(),
        h = host.display()
    );
    t.config["hooks"] = json!({"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", script]}]});
    t.args(&["true"]);
    t.run_ok();
    let got = std::fs::read_to_string(&rec).unwrap();
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(lines.len(), 3, "{got}");
    // (the kernel keeps 15 bytes of the name)
    let name: String = runtime_name().chars().take(15).collect();
    if testkit::oldkernel::enabled() {
        // No PR_SET_MM_MAP there (3.18): sealed by re-executing.
        assert_ne!(lines[0], name, "old-kernel surface, yet sealed without a re-exec: {got}");
    } else {
        assert_eq!(lines[0], name, "the runtime executed itself again (its name is now {:?}): {got}", lines[0]);
    }
    assert_ne!(lines[1], host.to_string_lossy(), "the runtime's image is the host's binary: not sealed: {got}");
    assert_eq!(lines[2], "maps 0", "the runtime still maps the host's binary: {got}");
}
