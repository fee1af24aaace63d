//! virtio-net on a tap: a test guest ARPs for the tap's address and gets
//! the host kernel's reply. Runs rpc-vmm in a fresh network namespace
//! (`unshare -n`) holding the tap, so nothing outside the test sees it and
//! the namespace goes away with the process. Skips without root, `ip`,
//! `unshare` or /dev/net/tun.

mod common;

use std::time::Duration;

use common::*;

fn net_skip_reason() -> Option<String> {
    if !Path::new("/dev/net/tun").exists() {
        return Some("/dev/net/tun missing".into());
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root (tap in a new network namespace)".into());
    }
    for tool in ["ip", "unshare"] {
        if std::process::Command::new(tool).arg("-V").output().is_err() {
            return Some(format!("{tool} not found"));
        }
    }
    None
}

use std::path::Path;

#[test]
fn net_arp_round_trip_through_a_tap() {
    if skip("net_arp_round_trip_through_a_tap") {
        return;
    }
    if let Some(why) = net_skip_reason() {
        eprintln!("skipping net_arp_round_trip_through_a_tap: {why}");
        return;
    }
    let d = TempDir::new("net");
    let g = build_guest("net", d.path());
    let script = format!(
        "set -e; ip tuntap add dev rvm0 mode tap; ip addr add 10.0.2.1/24 dev rvm0; ip link set rvm0 up; \
         exec {} --kernel {} --net-tap rvm0 --mac 52:54:00:ab:cd:ef",
        vmm_bin(),
        g.display()
    );
    let child = std::process::Command::new("unshare")
        .args(["-n", "sh", "-c", &script])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn unshare");
    let r = wait(child, Duration::from_secs(60));
    assert_eq!(r.code(), Some(0), "stdout: {} stderr: {}", r.stdout, r.stderr);
    assert!(r.stdout.starts_with("arp reply: 10.0.2.1 is at "), "{}", r.stdout);
    assert!(r.stdout.ends_with(" (frame to 52:54:00:ab:cd:ef)\n"), "{}", r.stdout);
}
