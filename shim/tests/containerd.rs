//! Our shim under a real containerd, driven with `ctr`.

mod common;

use common::*;

#[test]
fn run_rm_echo_prints_hi() {
    let d = daemon!("echo");
    let mut args = d.run_args(RUNTIME);
    args.extend(["--rm", IMAGE, "echo1", "echo", "hi"]);
    let out = d.ctr(&args);
    assert!(out.status.success(), "{}\n{}", out_str(&out), tail(&d.log(), 40));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    d.assert_no_shims();
}
