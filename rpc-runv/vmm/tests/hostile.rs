//! Hostile guests for the devices with a host backend: virtio-fs (a
//! vhost-user frontend to virtiofsd) and virtio-net (a tap). Each guest
//! writes garbage to every register and queue of its device, then shows
//! the device still works after a reset, and exits 42; rpc-vmm must
//! neither crash nor hang, must never tell the backend of a ring outside
//! guest memory, and must report the faults, naming the device.
//! (tests/virtio.rs has the hostile guest of the disk, console and vsock.)
//!
//! Skips like tests/fs.rs (virtiofsd missing: skip, failed under CI) and
//! tests/net.rs (no root, ip, unshare or /dev/net/tun).

mod common;

use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(60);

/// Asserts that `stderr` has a printed report of `kind` naming `device`.
fn reported(stderr: &str, kind: &str, device: &str) {
    let line = format!("rpc-vmm: guest: {kind}: {device}");
    assert!(stderr.contains(&line), "no {line:?} in:\n{stderr}");
}

/// Faults of the virtio-mmio transport every garbled device must report.
const TRANSPORT_FAULTS: &[&str] = &[
    "virtio bad register access",
    "virtio bad queue index",
    "virtio bad queue size",
    "virtio bad feature",
    "virtio bad state",
    "virtio bad config access",
    "virtio notify while not live",
];

#[test]
fn hostile_guest_garbles_virtio_fs() {
    let Some(bin) = virtiofsd("hostile_guest_garbles_virtio_fs") else { return };
    let d = TempDir::new("hostilefs");
    let shared = d.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    let socket = d.path().join("fs.sock");
    let g = build_guest("hostilefs", d.path());
    let mut backend = Backend::start(&bin, &shared, &socket, d.path());
    let fs = format!("shared0={}", socket.display());
    // 4 GiB: RAM on both sides of the MMIO gap (memfds, mapped by the
    // backend too, but only touched where the guest writes).
    let r = run(&["--kernel", g.to_str().unwrap(), "--mem", "4096", "--fs", &fs], T);
    eprintln!("hostile fs guest: {:.2} s", r.elapsed.as_secs_f64());
    let log = backend.log_text();
    assert_eq!(r.code(), Some(42), "stdout: {}\nstderr: {}\nvirtiofsd: {log}", r.stdout, r.stderr);
    let expected = "registers done\n\
                    features done\n\
                    queue registers done\n\
                    kicks done\n\
                    bad rings refused: 12 of 12\n\
                    rings above the gap accepted\n\
                    reset cycles done\n\
                    config done, tag unchanged\n\
                    init after the abuse: ok\n\
                    survived\n";
    assert_eq!(r.stdout, expected, "stderr: {}\nvirtiofsd: {log}", r.stderr);
    for kind in TRANSPORT_FAULTS.iter().chain(&["virtio device start failed", "virtio bad ring address", "virtio invalid queue"]) {
        reported(&r.stderr, kind, "virtio-fs");
    }
    assert!(r.stderr.contains("bad size or rings outside memory"), "{}", r.stderr);
    assert!(r.stderr.contains("MMIO write to no device"), "the 8-byte write across the window's end: {}", r.stderr);
    assert!(r.stderr.contains("rpc-vmm: guest faults: "), "{}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    assert!(!r.stderr.contains("disconnected"), "the backend went away: {}\nvirtiofsd: {log}", r.stderr);
    // virtiofsd was never handed a ring it could not map.
    for bad in ["rror", "nvalid"] {
        assert!(!log.contains(bad), "virtiofsd complained: {log}");
    }
    assert!(backend.exited_within(Duration::from_secs(10)), "virtiofsd still running: {}", backend.log_text());
}

#[test]
fn hostile_guest_garbles_virtio_net() {
    if net_skip("hostile_guest_garbles_virtio_net") {
        return;
    }
    let d = TempDir::new("hostilenet");
    let g = build_guest("hostilenet", d.path());
    let r = run_in_netns(&["--kernel", g.to_str().unwrap(), "--mem", "4096", "--mac", "52:54:00:ab:cd:ef"], T);
    eprintln!("hostile net guest: {:.2} s", r.elapsed.as_secs_f64());
    assert_eq!(r.code(), Some(42), "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    let expected = "registers done\n\
                    bad rings done\n\
                    transmit chains done\n\
                    bad receive chains returned: 5, empty: 4\n\
                    arp reply after the abuse\n\
                    survived\n";
    assert_eq!(r.stdout, expected, "stderr: {}", r.stderr);
    for kind in TRANSPORT_FAULTS.iter().chain(&["virtio invalid queue", "virtio notify of a queue not ready"]) {
        reported(&r.stderr, kind, "virtio-net");
    }
    for kind in
        ["virtio-net bad descriptor chain", "virtio-net bad frame", "virtio-net receive buffer too small", "virtio-net bad used ring"]
    {
        assert!(r.stderr.contains(&format!("rpc-vmm: guest: {kind}: ")), "no report of {kind}: {}", r.stderr);
    }
    // The 64 KiB frame reached the tap, which refused it.
    assert!(r.stderr.contains("virtio-net tap write failed=1"), "{}", r.stderr);
    assert!(r.stderr.contains("rpc-vmm: guest faults: "), "{}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
}
