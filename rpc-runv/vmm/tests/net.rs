//! virtio-net on a tap: a test guest ARPs for the tap's address and gets
//! the host kernel's reply. Runs rpc-vmm in a fresh network namespace
//! (`unshare -n`) holding the tap, so nothing outside the test sees it and
//! the namespace goes away with the process. Skips without root, `ip`,
//! `unshare` or /dev/net/tun.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn net_arp_round_trip_through_a_tap() {
    if net_skip("net_arp_round_trip_through_a_tap") {
        return;
    }
    let d = TempDir::new("net");
    let g = build_guest("net", d.path());
    let r = run_in_netns(&["--kernel", g.to_str().unwrap(), "--mac", "52:54:00:ab:cd:ef"], Duration::from_secs(60));
    assert_eq!(r.code(), Some(0), "stdout: {} stderr: {}", r.stdout, r.stderr);
    assert!(r.stdout.starts_with("arp reply: 10.0.2.1 is at "), "{}", r.stdout);
    assert!(r.stdout.ends_with(" (frame to 52:54:00:ab:cd:ef)\n"), "{}", r.stdout);
}
