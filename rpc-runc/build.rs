//! Embed the git commit for `--version` (docker and podman parse its lines),
//! and lay the hot functions out together (link-order.txt).
fn main() {
    link_order();
    packed_relocations();
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=RPC_GIT_COMMIT={commit}");
    // Where HEAD and the branch refs are: in a `git worktree` ../.git is a
    // file, and a path that does not exist made the script stale for
    // cargo every time (rpc-runc and its ~17 test binaries relinked by
    // every cargo command).
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("rev-parse")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or_default().to_string())
            .filter(|p| !p.is_empty())
    };
    let head = git(&["--git-path", "HEAD"]).unwrap_or_else(|| "../.git/HEAD".into());
    let refs = git(&["--git-common-dir"]).map(|d| format!("{d}/refs/heads")).unwrap_or_else(|| "../.git/refs/heads".into());
    for p in [head, refs] {
        if std::path::Path::new(&p).exists() {
            println!("cargo:rerun-if-changed={p}");
        }
    }
}

/// Pack the functions a container's life executes together at the start
/// of .text (list made by scripts/link-order.sh). The kernel maps text
/// 64 KiB around each page fault, so scattered hot code made ~2.6 MB of
/// our 3 MB of text resident in every process; packed, about a third.
/// lld only (Rust's default linker on x86_64 Linux since 1.90); names it
/// does not find are skipped. RPC_NO_LINK_ORDER=1 turns it off.
fn link_order() {
    println!("cargo:rerun-if-changed=link-order.txt");
    println!("cargo:rerun-if-env-changed=RPC_NO_LINK_ORDER");
    let target = std::env::var("TARGET").unwrap_or_default();
    if target != "x86_64-unknown-linux-gnu" || std::env::var_os("RPC_NO_LINK_ORDER").is_some() {
        return;
    }
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let file = std::path::Path::new(&dir).join("link-order.txt");
    if file.exists() {
        println!("cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}", file.display());
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
}

/// Relative relocations packed (DT_RELR, glibc 2.36+, lld): the static
/// PIE relocates itself at every start, and its ~15,500 RELA entries
/// (365 KB, 90 pages read through page faults by each start) shrink to a
/// few KB of bitmaps. perf put the relocation at ~2.8% of a `run`'s CPU,
/// mostly those faults. The image stays position independent (ASLR).
fn packed_relocations() {
    let target = std::env::var("TARGET").unwrap_or_default();
    if target == "x86_64-unknown-linux-gnu" {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
