//! podman drives the runtime CLI itself, through conmon (not through a
//! containerd shim): `podman --runtime rpc-runc` with a private storage,
//! config and runtime root under a temp dir.

mod common;

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use common::*;

const IMG: &str = "docker.io/rpc/busybox:test";

struct Podman {
    dir: PathBuf,
}

impl Podman {
    fn new() -> Option<Podman> {
        if testkit::skip::unless_root(env!("CARGO_PKG_NAME"), "podman, containerd, mounts") {
            return None;
        }
        assert!(
            Command::new("podman").arg("--version").output().is_ok_and(|o| o.status.success()),
            "podman is not installed: `make deps` (apt-get install podman) first"
        );
        let dir = PathBuf::from(format!("/tmp/rpc-podman-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("tmp")).expect("temp dir");
        // podman 4.3 asks for RLIMIT_NOFILE 1048576 by default, which this
        // host's root (no CAP_SYS_RESOURCE) cannot grant: no default ulimits.
        fs::write(
            dir.join("containers.conf"),
            "[containers]\ndefault_ulimits = []\n[engine]\nevents_logger = \"file\"\ncgroup_manager = \"cgroupfs\"\n",
        )
        .expect("containers.conf");
        fs::write(
            dir.join("storage.conf"),
            format!("[storage]\ndriver = \"vfs\"\nrunroot = \"{d}/runroot\"\ngraphroot = \"{d}/storage\"\n", d = dir.display()),
        )
        .expect("storage.conf");
        fs::write(dir.join("registries.conf"), "unqualified-search-registries = []\n").expect("registries.conf");
        let p = Podman { dir };
        let tarball = build_image(&p.dir.join("image"), IMG, &["/bin/sh"]);
        p.ok(&["load", "-i", tarball.to_str().expect("utf-8")]);
        Some(p)
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", self.dir.join("storage.conf"))
            .env("CONTAINERS_REGISTRIES_CONF", self.dir.join("registries.conf"))
            .arg("--runtime")
            .arg(runc_bin())
            .arg(format!("--runtime-flag=root={}", self.dir.join("runtime-root").display()))
            .arg("--cgroup-manager=cgroupfs")
            .arg("--tmpdir")
            .arg(self.dir.join("tmp"))
            .args(args)
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("podman")
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(o.status.success(), "podman {args:?}: {}", out_str(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.run(&["rm", "-a", "-f", "-t", "0"]);
        unmount_under(&self.dir);
        let _ = fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn podman_runs_busybox_on_rpc_runc() {
    let Some(p) = Podman::new() else { return };
    assert_eq!(p.ok(&["run", "--rm", "--network", "none", IMG, "echo", "hi"]), "hi\n");
    let o = p.run(&["run", "--rm", "--network", "none", IMG, "sh", "-c", "exit 3"]);
    assert_eq!(o.status.code(), Some(3), "{}", out_str(&o));

    // stdin through conmon
    let mut child = p
        .cmd(&["run", "--rm", "-i", "--network", "none", IMG, "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("podman");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"through conmon\n").expect("write");
    }
    let o = child.wait_with_output().expect("podman");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "through conmon\n", "{}", out_str(&o));

    // detached, exec, stop
    let id = p.ok(&["run", "-d", "--network", "none", IMG, "sleep", "1000"]).trim().to_string();
    let o = p.run(&["exec", &id, "sh", "-c", "echo in-exec; exit 4"]);
    assert_eq!(o.status.code(), Some(4), "{}", out_str(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "in-exec\n");
    let st = p.ok(&["inspect", "--format", "{{.State.Status}}", &id]);
    assert_eq!(st.trim(), "running");
    p.ok(&["pause", &id]);
    assert_eq!(p.ok(&["inspect", "--format", "{{.State.Status}}", &id]).trim(), "paused");
    p.ok(&["unpause", &id]);
    p.ok(&["stop", "-t", "0", &id]);
    assert_eq!(p.ok(&["inspect", "--format", "{{.State.Status}}", &id]).trim(), "exited");
    p.ok(&["rm", &id]);
    assert!(p.ok(&["ps", "-a", "-q"]).trim().is_empty());
}
