//! A real containerd daemon for the shim tests: private config, root,
//! state and sockets under a temp dir, our shim binaries (and rpc-runc)
//! first on its PATH, and a busybox image built here from busybox-static
//! and imported with `ctr images import`.
//!
//! Dropping a [`Daemon`] kills what is left of its tasks, stops containerd
//! and its shims, unmounts and removes the temp dir, so a failing test
//! leaves nothing behind.
#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const IMAGE: &str = "docker.io/rpc/busybox:test";
/// Same busybox, whose default command sleeps: a pause image for CRI.
pub const PAUSE_IMAGE: &str = "docker.io/rpc/pause:test";
pub const RUNTIME: &str = "io.containerd.rpc-runc.v2";

/// `let d = daemon!("name");`: a started daemon, or return from the test
/// (after printing why) when the test cannot run here.
#[macro_export]
macro_rules! daemon {
    ($name:expr) => {
        match $crate::common::Daemon::start($name, false) {
            Some(d) => d,
            None => return,
        }
    };
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Built binaries: the shim (cargo builds it for the tests) and rpc-runc
/// (see [`runc_bin`]).
pub fn shim_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_containerd-shim-rpc-v2"))
}

/// rpc-runc of the same build as the shim under test (cargo profile and
/// target dir: `make test` builds the `ci` profile, `make build`
/// `release`), so the runtime the tests drive is never a binary of another
/// profile left from an older build. A workspace test run builds it beside
/// the shim (rpc-runc's own tests need it); a run of the shim's tests alone
/// asks cargo for it once. `RPC_RUNC` overrides.
pub fn runc_bin() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("RPC_RUNC") {
            return PathBuf::from(p);
        }
        let shim = shim_bin();
        let dir = shim.parent().expect("the shim binary's directory");
        let bin = dir.join("rpc-runc");
        if bin.is_file() {
            return bin;
        }
        // TARGET_DIR/TRIPLE/PROFILE (.cargo/config.toml names the target);
        // cargo's dev profile builds into "debug".
        let profile = match dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => "dev",
            Some(p) => p,
        };
        let target_dir = dir.ancestors().nth(2).expect("the cargo target dir");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let built = Command::new(cargo)
            .args(["build", "-p", "rpc-runc", "--profile", profile, "--target-dir"])
            .arg(target_dir)
            .current_dir(&ws)
            .stdin(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(built && bin.is_file(), "building rpc-runc (cargo build -p rpc-runc --profile {profile}) did not give {}", bin.display());
        bin
    })
    .clone()
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

pub struct Daemon {
    pub dir: PathBuf,
    pub sock: PathBuf,
    pub ns: String,
    /// rpc-runc's --root for this test (`ctr run --runc-root`).
    pub runc_root: PathBuf,
    pub bin: PathBuf,
    pub fifo_dir: PathBuf,
    child: Option<Child>,
}

static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl Daemon {
    /// Starts containerd (with the CRI plugin when `cri`), imports the image.
    pub fn start(name: &str, cri: bool) -> Option<Daemon> {
        if testkit::skip::unless_root(env!("CARGO_PKG_NAME"), &format!("{name}: containerd, mounts, namespaces")) {
            return None;
        }
        assert!(which("containerd").is_some(), "containerd is not installed: `make deps` (apt-get install containerd) first");
        assert!(which("ctr").is_some(), "ctr is not installed (Debian's containerd package ships it)");
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = PathBuf::from(format!("/tmp/rpc-shim-{}-{}-{n}", name, std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("temp dir");
        let mut d = Daemon {
            sock: dir.join("c.sock"),
            // CRI works in the k8s.io namespace
            ns: if cri { "k8s.io".to_string() } else { format!("t{}x{n}", std::process::id()) },
            runc_root: dir.join("runc-root"),
            bin: dir.join("bin"),
            fifo_dir: dir.join("fifo"),
            dir,
            child: None,
        };
        d.install_bins();
        let cfg = d.dir.join("config.toml");
        let disabled = if cri { "" } else { r#""io.containerd.grpc.v1.cri", "# };
        fs::write(
            &cfg,
            format!(
                r#"version = 2
root = "{dir}/root"
state = "{dir}/state"
disabled_plugins = [{disabled}"io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[debug]
  address = "{dir}/debug.sock"
  level = "debug"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{dir}/opt"
"#,
                dir = d.dir.display(),
                sock = d.sock.display(),
            ) + &if cri { cri_config(&d.dir) } else { String::new() },
        )
        .expect("config");
        d.launch();
        d.import_image(IMAGE, &["/bin/sh"]);
        if cri {
            d.import_image(PAUSE_IMAGE, &["/bin/sleep", "2147483647"]);
        }
        Some(d)
    }

    /// Starts containerd on this daemon's config and waits for it.
    fn launch(&mut self) {
        let containerd = which("containerd").expect("containerd");
        let log = fs::OpenOptions::new().create(true).append(true).open(self.dir.join("containerd.log")).expect("log");
        let path = format!("{}:{}", self.bin.display(), std::env::var("PATH").unwrap_or_default());
        let child = Command::new(containerd)
            .arg("--config")
            .arg(self.dir.join("config.toml"))
            .env("PATH", path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("starting containerd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.sock.exists() && self.ctr(&["version"]).status.success() {
                break;
            }
            assert!(Instant::now() < deadline, "containerd did not come up:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops containerd (SIGTERM; shims and tasks live on) and starts it
    /// again on the same state.
    pub fn restart(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), nix::sys::signal::Signal::SIGTERM);
            let _ = c.wait();
        }
        let _ = fs::remove_file(&self.sock);
        self.launch();
    }

    fn install_bins(&self) {
        fs::create_dir_all(&self.bin).expect("bin dir");
        let shim = shim_bin();
        for name in ["containerd-shim-rpc-runc-v2", "containerd-shim-rpc-runlxc-v2", "containerd-shim-rpc-runv-v2"] {
            fs::copy(&shim, self.bin.join(name)).expect("copy shim");
        }
        symlink(runc_bin(), self.bin.join("rpc-runc")).expect("link rpc-runc");
        // rpc-runv of the same build, when there is one (a workspace build).
        let runv = runc_bin().with_file_name("rpc-runv");
        if runv.is_file() {
            symlink(runv, self.bin.join("rpc-runv")).expect("link rpc-runv");
        }
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default()
    }

    /// `ctr -a SOCK -n NS ARGS`, waited for.
    pub fn ctr(&self, args: &[&str]) -> Output {
        self.ctr_cmd(args).stdin(Stdio::null()).output().expect("running ctr")
    }

    pub fn ctr_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ctr");
        c.arg("-a").arg(&self.sock).arg("-n").arg(&self.ns).args(args);
        c
    }

    /// ctr that must succeed; returns stdout.
    pub fn ctr_ok(&self, args: &[&str]) -> String {
        let out = self.ctr(args);
        assert!(
            out.status.success(),
            "ctr {args:?} failed ({:?}): {}{}\n--- containerd log tail:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            tail(&self.log(), 40)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `ctr run --runtime RUNTIME`, with ctr's fifos in our temp dir.
    pub fn run_args<'a>(&'a self, runtime: &'a str) -> Vec<&'a str> {
        vec!["run", "--fifo-dir", self.fifo_dir.to_str().expect("utf-8 path"), "--runtime", runtime]
    }

    /// `ctr task exec` with ctr's fifos in our temp dir.
    pub fn exec_args<'a>(&'a self, extra: &[&'a str]) -> Vec<&'a str> {
        let mut a = vec!["task", "exec", "--fifo-dir", self.fifo_dir.to_str().expect("utf-8 path")];
        a.extend_from_slice(extra);
        a
    }

    /// Our shim's runtime root for this daemon's namespace (ctr sends no
    /// runc options to a non-runc runtime type, so the default applies).
    pub fn runtime_root(&self) -> PathBuf {
        PathBuf::from("/run/containerd/rpc-runc").join(&self.ns)
    }

    /// Status column of `ctr task ls` for `id` (None: no task).
    pub fn task_status(&self, id: &str) -> Option<String> {
        let out = self.ctr_ok(&["task", "ls"]);
        out.lines().skip(1).find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.first() == Some(&id)).then(|| f.get(2).map(|s| s.to_string()).unwrap_or_default())
        })
    }

    pub fn task_pid(&self, id: &str) -> Option<i32> {
        let out = self.ctr_ok(&["task", "ls"]);
        out.lines().skip(1).find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.first() == Some(&id) {
                f.get(1).and_then(|p| p.parse().ok())
            } else {
                None
            }
        })
    }

    pub fn wait_status(&self, id: &str, want: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let st = self.task_status(id);
            if st.as_deref() == Some(want) {
                return;
            }
            assert!(Instant::now() < deadline, "task {id}: status {st:?}, want {want}\n{}", tail(&self.log(), 40));
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Pids of live processes whose command line mentions this daemon's
    /// socket and that run the given program (shims).
    pub fn shim_pids(&self) -> Vec<i32> {
        processes_matching(|cmdline| cmdline.contains("containerd-shim") && cmdline.contains(self.sock.to_str().unwrap_or("\u{0}")))
    }

    /// Waits until no shim of this daemon is left.
    pub fn assert_no_shims(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let pids = self.shim_pids();
            if pids.is_empty() {
                return;
            }
            assert!(Instant::now() < deadline, "shim processes left: {pids:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Builds an OCI image tarball of busybox-static and imports it.
    fn import_image(&self, name: &str, cmd: &[&str]) {
        let tarball = build_image(&self.dir.join("image"), name, cmd);
        self.ctr_ok(&["images", "import", tarball.to_str().expect("utf-8")]);
        let ls = self.ctr_ok(&["images", "ls", "-q"]);
        assert!(ls.lines().any(|l| l == name), "image not imported: {ls}");
    }

    /// Kills and deletes every task and container of this namespace.
    fn cleanup_tasks(&self) {
        let out = self.ctr(&["containers", "ls", "-q"]);
        for id in String::from_utf8_lossy(&out.stdout).lines() {
            let _ = self.ctr(&["task", "kill", "-a", "-s", "SIGKILL", id]);
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if self.ctr(&["task", "delete", id]).status.success() {
                    break;
                }
                let _ = self.ctr(&["task", "delete", "-f", id]);
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.ctr(&["containers", "delete", id]);
        }
    }
}

/// Builds an OCI image tarball (image layout, one uncompressed layer) of
/// busybox-static named `name` with default command `cmd`, under `dir`.
pub fn build_image(dir: &Path, name: &str, cmd: &[&str]) -> PathBuf {
    let img = dir.join(name.rsplit(':').next().unwrap_or("x"));
    let layer = img.join("layer");
    for d in ["proc", "sys", "dev", "tmp", "etc", "root"] {
        fs::create_dir_all(layer.join(d)).expect("layer dir");
    }
    fs::write(layer.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").expect("passwd");
    fs::write(layer.join("etc/group"), "root:x:0:\n").expect("group");
    testkit::Busybox::find().and_then(|b| b.install(&layer)).expect("busybox rootfs layer");
    let blobs = img.join("oci/blobs/sha256");
    fs::create_dir_all(&blobs).expect("blobs");
    let layer_tar = img.join("layer.tar");
    run_ok(
        Command::new("tar")
            .arg("--numeric-owner")
            .arg("--owner=0")
            .arg("--group=0")
            .arg("-C")
            .arg(&layer)
            .arg("-cf")
            .arg(&layer_tar)
            .arg("."),
    );
    let layer_digest = sha256(&layer_tar);
    let layer_size = fs::metadata(&layer_tar).expect("layer").len();
    fs::rename(&layer_tar, blobs.join(&layer_digest)).expect("layer blob");
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/bin"], "Cmd": cmd, "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{layer_digest}")]},
    });
    let (config_digest, config_size) = write_blob(&blobs, &serde_json::to_vec(&config).expect("json"));
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": format!("sha256:{config_digest}"), "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": format!("sha256:{layer_digest}"), "size": layer_size}],
    });
    let (man_digest, man_size) = write_blob(&blobs, &serde_json::to_vec(&manifest).expect("json"));
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{man_digest}"),
            "size": man_size,
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": "test"},
        }],
    });
    fs::write(img.join("oci/index.json"), serde_json::to_vec(&index).expect("json")).expect("index");
    fs::write(img.join("oci/oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).expect("layout");
    let tarball = img.join("busybox.tar");
    run_ok(Command::new("tar").arg("-C").arg(img.join("oci")).arg("-cf").arg(&tarball).arg("."));
    tarball
}

pub fn cri_config(dir: &Path) -> String {
    format!(
        r#"[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  disable_apparmor = true
  disable_cgroup = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "rpc-runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.rpc-runc]
      runtime_type = "{RUNTIME}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{dir}/cni-bin"
    conf_dir = "{dir}/cni-conf"
"#,
        dir = dir.display()
    )
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.cleanup_tasks();
        }
        // Containers whose shim died: force-delete through the runtime.
        for rt in [self.runc_root.join(&self.ns), self.runtime_root()] {
            if !rt.is_dir() {
                continue;
            }
            // testkit's runtime-CLI driver, as rpc-runc's tests use it.
            let runc = runc_bin();
            for id in testkit::cli::list_ids(&runc, &rt) {
                let _ = testkit::cli::delete_force(&runc, &rt, &[] as &[&str], &id, Duration::from_secs(10));
            }
            let _ = fs::remove_dir_all(&rt);
        }
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), nix::sys::signal::Signal::SIGTERM);
            // killed if it does not stop within 5 s
            let _ = testkit::cli::wait_child(&mut c, Duration::from_secs(5));
        }
        for pid in self.shim_pids() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
        unmount_under(&self.dir);
        let _ = fs::remove_dir_all(&self.dir);
    }
}

#[allow(unused_imports)] // each test binary uses its own part
pub use testkit::{pid_alive as alive, processes_matching, unmount_under};

fn run_ok(cmd: &mut Command) {
    let out = cmd.output().expect("spawn");
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn sha256(p: &Path) -> String {
    let out = Command::new("sha256sum").arg(p).output().expect("sha256sum");
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().expect("digest").to_string()
}

fn write_blob(dir: &Path, data: &[u8]) -> (String, u64) {
    let tmp = dir.join("tmp");
    fs::write(&tmp, data).expect("blob");
    let d = sha256(&tmp);
    fs::rename(&tmp, dir.join(&d)).expect("blob");
    (d, data.len() as u64)
}

pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

pub fn out_str(o: &Output) -> String {
    format!("status {:?}\nstdout: {}\nstderr: {}", o.status, String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}
