//! The hostile state.json table: files a crash, a full disk or a hand
//! left in the state dir.

use serde_json::{json, Value};
use std::fs;

use crate::common::Harness;

/// How a row makes a container's state.json.
pub enum StateFile {
    /// These bytes.
    Bytes(Vec<u8>),
    /// A good state with members replaced (`{}` to keep it as is).
    Good(Value),
    /// A symlink to this path.
    Symlink(&'static str),
    /// A FIFO nobody writes.
    Fifo,
    /// A directory.
    Dir,
    /// No state.json at all (a create killed before it wrote one).
    Missing,
}

/// What `state ID` must say.
pub enum Expect {
    /// Fail, naming these words.
    Fail(&'static [&'static str]),
    /// Succeed with this status.
    Status(&'static str),
}

pub struct StateRow {
    pub name: &'static str,
    pub file: StateFile,
    pub state: Expect,
    pub after: Option<u32>,
}

fn srow(name: &'static str, file: StateFile, state: Expect) -> StateRow {
    StateRow { name, file, state, after: None }
}

impl StateRow {
    fn after(mut self, n: u32) -> StateRow {
        self.after = Some(n);
        self
    }
}

/// A state.json as create writes it, for a container that made no cgroup
/// (so that no row can point `delete --force` at a cgroup of the host).
fn good_state(id: &str, t: &Harness) -> Value {
    json!({
        "id": id, "backend": "native", "bundle": t.bundle, "rootfs": t.rootfs,
        "status": "created", "init": null, "created": "2026-01-01T00:00:00Z", "owner": "root",
        "annotations": {}, "cgroups": [], "private_pid_ns": true, "hooks": {}
    })
}

/// A directory shaped like a cgroup whose cgroup.procs names `victim`.
fn fake_cgroup(victim: i32) -> String {
    let d = format!("/tmp/rpct-fake-cgroup-{victim}");
    fs::create_dir_all(&d).unwrap();
    fs::write(format!("{d}/cgroup.procs"), format!("{victim}\n")).unwrap();
    d
}

pub fn state_rows(victim: i32) -> Vec<StateRow> {
    use Expect::*;
    use StateFile::*;
    let huge = {
        let mut v = b"{\"id\": \"".to_vec();
        v.resize(64 << 20, b'a');
        v.extend_from_slice(b"\"}");
        v
    };
    vec![
        // #9: a corrupt state.json hides the container from `list` (no
        // warning) and `delete --force` cannot remove it.
        srow("state.json empty", Bytes(vec![]), Fail(&["state.json"])).after(9),
        srow("state.json truncated", Bytes(br#"{"id": "x", "backend": "native", "bundle": "/tm"#.to_vec()), Fail(&["state.json"])).after(9),
        srow("state.json not json", Bytes(b"garbage".to_vec()), Fail(&["state.json"])).after(9),
        srow("state.json null", Bytes(b"null".to_vec()), Fail(&["state.json"])).after(9),
        srow("state.json an array", Bytes(b"[]".to_vec()), Fail(&["state.json"])).after(9),
        srow("state.json invalid utf-8", Bytes(b"{\"id\": \"\xff\xfe\"}".to_vec()), Fail(&["state.json"])).after(9),
        srow("state.json status a number", Good(json!({"status": 5})), Fail(&["state.json"])).after(9),
        srow("state.json status unknown", Good(json!({"status": "exploded"})), Fail(&["state.json"])).after(9),
        srow("state.json init.pid a string", Good(json!({"init": {"pid": "1", "start_time": 1}})), Fail(&["state.json"])).after(9),
        srow("state.json init.pid 2^31", Good(json!({"init": {"pid": 2147483648u64, "start_time": 1}})), Fail(&["state.json"])).after(9),
        srow("state.json cgroups a string", Good(json!({"cgroups": "/sys/fs/cgroup"})), Fail(&["state.json"])).after(9),
        srow("state.json missing members", Bytes(b"{}".to_vec()), Fail(&["state.json"])).after(9),
        // delete --force kills what the recorded cgroups hold: a directory
        // that is not a container's cgroup (here a fake one holding the
        // victim) must make the file corrupt, not a target.
        srow(
            "state.json cgroup outside every hierarchy",
            Good(json!({"cgroups": [fake_cgroup(victim)]})),
            Fail(&["not below a cgroup hierarchy"]),
        ),
        srow(
            "state.json cgroup with ..",
            Good(json!({"cgroups": ["/sys/fs/cgroup/pids/rpct-none/.."]})),
            Fail(&["not below a cgroup hierarchy"]),
        ),
        // Pids that are not ours: the start time does not match, so
        // nothing may be signalled (the victim must survive).
        srow("state.json init is a stranger", Good(json!({"init": {"pid": victim, "start_time": 1}})), Status("stopped")),
        srow("state.json init is pid 1", Good(json!({"init": {"pid": 1, "start_time": 1}})), Status("stopped")),
        srow("state.json init pid -1", Good(json!({"init": {"pid": -1, "start_time": 0}})), Status("stopped")),
        srow("state.json init pid 0", Good(json!({"init": {"pid": 0, "start_time": 0}})), Status("stopped")),
        srow(
            "state.json creating, stranger init",
            Good(json!({"status": "creating", "init": {"pid": victim, "start_time": 1}})),
            Status("stopped"),
        ),
        srow("state.json missing", Missing, Fail(&["does not exist"])),
        srow("state.json a directory", Dir, Fail(&["state.json"])).after(9),
        // #9: also read following symlinks, with no size limit, and a FIFO
        // blocks every command.
        srow("state.json symlink to /dev/zero", Symlink("/dev/zero"), Fail(&["state.json"])).after(9),
        srow("state.json symlink to /etc/passwd", Symlink("/etc/passwd"), Fail(&["state.json"])).after(9),
        srow("state.json a FIFO", Fifo, Fail(&["state.json"])).after(9),
        srow("state.json 64 MiB", Bytes(huge), Fail(&["state.json"])).after(9),
    ]
}

pub fn write_state(t: &Harness, id: &str, f: &StateFile) {
    let dir = t.root.join(id);
    fs::create_dir_all(&dir).unwrap();
    let p = dir.join("state.json");
    match f {
        StateFile::Bytes(b) => fs::write(&p, b).unwrap(),
        StateFile::Good(over) => {
            let mut v = good_state(id, t);
            for (k, x) in over.as_object().unwrap() {
                v[k] = x.clone();
            }
            fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
        }
        StateFile::Symlink(to) => std::os::unix::fs::symlink(to, &p).unwrap(),
        StateFile::Fifo => {
            let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
            // SAFETY: a valid C string.
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo {}", p.display());
        }
        StateFile::Dir => fs::create_dir(&p).unwrap(),
        StateFile::Missing => {}
    }
}
