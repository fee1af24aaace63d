//! Embed the git commit for `--version` (docker and podman parse its lines),
//! and lay the hot functions out together (link-order.txt).
fn main() {
    link_order();
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=RPC_GIT_COMMIT={commit}");
    println!("cargo:rerun-if-changed=../.git/HEAD");
    println!("cargo:rerun-if-changed=../.git/refs/heads");
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
