//! The shim driving rpc-runv under containerd: `ctr run --rm` of a
//! busybox image in a micro-VM (QEMU/TCG), output and exit status exact,
//! nothing left.

mod common;

use common::*;

const RUNV: &str = "io.containerd.rpc-runv.v2";

#[test]
fn ctr_run_in_a_vm_prints_and_keeps_the_status() {
    let d = daemon!("runv");
    if !runc_bin().with_file_name("rpc-runv").is_file() {
        testkit::skip!("rpc-runv is not built beside rpc-runc (a workspace build makes it)");
        return;
    }
    let mut args = d.run_args(RUNV);
    args.extend_from_slice(&["--rm", IMAGE, "vm1", "sh", "-c", "echo hi from $(uname -r); exit 7"]);
    let out = d.ctr(&args);
    assert_eq!(out.status.code(), Some(7), "{}\n{}", out_str(&out), tail(&d.log(), 40));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let host = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    assert!(stdout.starts_with("hi from ") && !stdout.contains(host.trim()), "{}", out_str(&out));
    d.assert_no_shims();
    assert!(d.ctr_ok(&["containers", "ls", "-q"]).trim().is_empty());
}
