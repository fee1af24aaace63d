//! Container state under `--root`: one directory per container holding
//! `state.json` (written atomically: temp file + rename) and the socket
//! a created container's init waits on.
//! A flock on the directory serialises commands on one id. State is written
//! ahead: what create is about to make is recorded before it is made, so
//! `delete --force` can clean up after a runtime killed at any point.
//!
//! Beside it, written once by create, the snapshot: the first state and
//! config.json as create read it. A container's isolation (namespaces,
//! seccomp, the process defaults exec inherits) is fixed at create: exec
//! takes it from the snapshot, never from the bundle, which may have been
//! changed or removed since (runc keeps the whole config in its state for
//! the same reason). And `delete --force` finds the cgroups there when
//! state.json is lost or corrupt.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};

pub const STATE_FILE: &str = "state.json";
/// Where a created container's init waits for `start`: a listening unix
/// socket it holds (no directory of the host does it hold while parked).
pub const EXEC_SOCK: &str = "exec.sock";
pub const SNAPSHOT: &str = "create.snapshot";
/// state.json is a few hundred bytes: anything near this is not ours.
pub const MAX_STATE: u64 = 1 << 20;
/// The snapshot holds config.json (a big seccomp profile is ~1 MiB).
pub const MAX_SNAPSHOT: u64 = 64 << 20;

/// The status we record. What `state` reports is derived from it and from
/// the process (see `lifecycle::status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Recorded {
    Creating,
    Created,
}

/// A process we started, identified by pid and start time (clock ticks
/// since boot, field 22 of /proc/PID/stat) so a recycled pid is never signalled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcRef {
    pub pid: i32,
    pub start_time: u64,
}

impl ProcRef {
    /// The process `pid` as it is now (None when it is gone).
    pub fn of(pid: i32) -> Option<ProcRef> {
        crate::linux::process::start_time(pid).map(|start_time| ProcRef { pid, start_time })
    }

    /// It exists, is the one recorded, and has not exited.
    pub fn alive(&self) -> bool {
        crate::linux::process::alive(self.pid, self.start_time)
    }

    /// Signal it, and only it (never a recycled pid): ESRCH when gone.
    pub fn signal(&self, sig: i32) -> std::io::Result<()> {
        crate::linux::process::signal_checked(self.pid, self.start_time, sig)
    }
}

/// Hooks that run after create returns (kept from the config).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LateHooks {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub poststart: Vec<oci_spec::runtime::Hook>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub poststop: Vec<oci_spec::runtime::Hook>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub id: String,
    /// Which backend made it ("native", "compat", "microvm").
    pub backend: String,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub status: Recorded,
    /// The container's init (or its proxy for the VM/compat backends).
    pub init: Option<ProcRef>,
    pub created: String,
    pub owner: String,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub hooks: LateHooks,
    /// The backend's own record (the native backend's cgroup directories,
    /// a VMM's pid and sockets...): every other key of state.json. The
    /// lifecycle writes it and never reads it; the backend checks it on
    /// every load (`Backend::check`). Its keys must not be the names above.
    #[serde(flatten)]
    pub payload: serde_json::Map<String, serde_json::Value>,
    /// The container's state directory (not written: where it was read
    /// from), for backends that keep files of their own there.
    #[serde(skip)]
    pub dir: PathBuf,
}

/// The fields of `State` itself: a backend's payload may not use them.
pub const CORE_KEYS: [&str; 10] = ["id", "backend", "bundle", "rootfs", "status", "init", "created", "owner", "annotations", "hooks"];

/// A locked container directory.
pub struct Dir {
    pub id: String,
    pub path: PathBuf,
    dir: File,
}

pub struct Store {
    pub root: PathBuf,
}

fn flock(f: &File, op: libc::c_int) -> std::io::Result<()> {
    loop {
        // SAFETY: valid fd.
        if unsafe { libc::flock(f.as_raw_fd(), op) } == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

fn open_dir(p: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new().read(true).custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC).open(p)
}

impl Store {
    pub fn new(root: impl Into<PathBuf>) -> Store {
        Store { root: root.into() }
    }

    /// Make the directory for a new container and lock it. Fails with
    /// `Exists` when the id is taken. The id must be validated already.
    pub fn create(&self, id: &str) -> Result<Dir> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(&self.root)
            .with_ctx(|| format!("creating state root {}", self.root.display()))?;
        let path = self.root.join(id);
        match std::fs::DirBuilder::new().mode(0o711).create(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(Error::Exists(id.to_string())),
            Err(e) => return Err(e).with_ctx(|| format!("creating {}", path.display())),
        }
        let dir = open_dir(&path).with_ctx(|| format!("opening {}", path.display()))?;
        flock(&dir, libc::LOCK_EX).ctx("locking the state directory")?;
        Ok(Dir { id: id.to_string(), path, dir })
    }

    /// Open and lock an existing container directory.
    pub fn open(&self, id: &str, exclusive: bool) -> Result<Dir> {
        let path = self.root.join(id);
        let dir = match open_dir(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::NotExist(id.to_string())),
            Err(e) => return Err(e).with_ctx(|| format!("opening {}", path.display())),
        };
        flock(&dir, if exclusive { libc::LOCK_EX } else { libc::LOCK_SH }).ctx("locking the state directory")?;
        // The directory may have been removed while we waited for the lock.
        if !path.exists() {
            return Err(Error::NotExist(id.to_string()));
        }
        Ok(Dir { id: id.to_string(), path, dir })
    }

    /// Open without waiting: `None` when another command holds the lock
    /// (a create in progress).
    pub fn try_open_shared(&self, id: &str) -> Result<Option<Dir>> {
        let path = self.root.join(id);
        let dir = match open_dir(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::NotExist(id.to_string())),
            Err(e) => return Err(e).with_ctx(|| format!("opening {}", path.display())),
        };
        match flock(&dir, libc::LOCK_SH | libc::LOCK_NB) {
            Ok(()) => Ok(Some(Dir { id: id.to_string(), path, dir })),
            Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(None),
            Err(e) => Err(e).ctx("locking the state directory"),
        }
    }

    /// Read the state of a container without locking (a snapshot).
    pub fn peek(&self, id: &str) -> Result<State> {
        read_state(&self.root.join(id), id)
    }

    /// Ids of all containers, sorted.
    pub fn list(&self) -> Result<Vec<String>> {
        let rd = match std::fs::read_dir(&self.root) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(e).with_ctx(|| format!("reading {}", self.root.display())),
        };
        let mut ids: Vec<String> = rd
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|id| crate::id::validate(id).is_ok())
            .collect();
        ids.sort();
        Ok(ids)
    }
}

/// What create recorded for good (see the module's comment).
pub struct Snapshot {
    /// The state as first written, before anything was made: the
    /// cgroups, hooks and namespaces' kind, with no init yet.
    pub state: State,
    data: Vec<u8>,
    config_at: usize,
}

impl Snapshot {
    /// config.json's bytes as create read them.
    pub fn config(&self) -> &[u8] {
        &self.data[self.config_at..]
    }
}

/// Bounded, no symlink followed, no FIFO waited on: a state directory's
/// files may have been tampered with, and `list` reads every one.
fn read_file(p: &Path, limit: u64, id: &str) -> Result<Vec<u8>> {
    crate::bounded::read_file(p, limit).map_err(|e| {
        if e.not_found() {
            Error::NotExist(id.to_string())
        } else {
            Error::State { path: p.to_path_buf(), msg: e.to_string() }
        }
    })
}

fn encode(s: &State) -> Result<Vec<u8>> {
    serde_json::to_vec(s).map_err(|e| Error::Container(format!("encoding state: {e}")))
}

fn read_state(dir: &Path, id: &str) -> Result<State> {
    let p = dir.join(STATE_FILE);
    let d = read_file(&p, MAX_STATE, id)?;
    let mut st: State = serde_json::from_slice(&d).map_err(|e| Error::State { path: p, msg: format!("corrupt: {e}") })?;
    st.dir = dir.to_path_buf();
    Ok(st)
}

impl Dir {
    pub fn load(&self) -> Result<State> {
        read_state(&self.path, &self.id)
    }

    /// Write state.json atomically.
    pub fn save(&self, s: &State) -> Result<()> {
        self.save_encoded(&encode(s)?, false)
    }

    /// `first`: no state.json yet (create's first write), nothing to
    /// exchange with.
    fn save_encoded(&self, data: &[u8], first: bool) -> Result<()> {
        let tmp = self.path.join(".state.json.tmp");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(&tmp)
            .with_ctx(|| format!("writing {}", tmp.display()))?;
        f.write_all(data).with_ctx(|| format!("writing {}", tmp.display()))?;
        drop(f);
        self.replace(c".state.json.tmp", c"state.json", first).ctx("renaming state file")
    }

    /// Put `tmp` in the place of `name` atomically (a reader sees the old
    /// or the new file, never neither nor a part). Where `name` exists the
    /// two are exchanged (renameat2 RENAME_EXCHANGE) and the old one is
    /// unlinked: renaming over an existing file makes ext4 (auto_da_alloc,
    /// on by default) write the new file's data out at once and free the
    /// blocks of the old one, block I/O on every state change of a
    /// container whose --root is on disk (0.3-0.4 ms CPU of a `run` on the
    /// benchmark VM). Crash safety of the contents is not lost: state in
    /// --root describes processes that do not survive a reboot.
    fn replace(&self, tmp: &std::ffi::CStr, name: &std::ffi::CStr, first: bool) -> std::io::Result<()> {
        let d = self.dir.as_raw_fd();
        if !first {
            // SAFETY: valid directory fd and C strings.
            if unsafe { libc::renameat2(d, tmp.as_ptr(), d, name.as_ptr(), libc::RENAME_EXCHANGE) } == 0 {
                // SAFETY: as above. A leftover (a kill between the two
                // calls) is replaced by the next write and goes with the
                // directory.
                unsafe { libc::unlinkat(d, tmp.as_ptr(), 0) };
                return Ok(());
            }
            match std::io::Error::last_os_error().raw_os_error() {
                // No `name` (removed under us), or a filesystem or kernel
                // without the exchange (before 3.15; seccomp filters).
                Some(libc::ENOENT | libc::EINVAL | libc::ENOSYS | libc::EPERM) => {}
                _ => return Err(std::io::Error::last_os_error()),
            }
        }
        // SAFETY: as above.
        if unsafe { libc::renameat(d, tmp.as_ptr(), d, name.as_ptr()) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// create's first write: the snapshot (this state and config.json as
    /// read), then state.json, from one encoding of the state. The
    /// snapshot goes first, so every state.json has one.
    pub fn save_first(&self, st: &State, config: &[u8]) -> Result<()> {
        let p = self.path.join(SNAPSHOT);
        let state = encode(st)?;
        let mut data = Vec::with_capacity(state.len() + 1 + config.len());
        data.extend_from_slice(&state);
        // The state's compact JSON has no raw newline: it ends the line.
        data.push(b'\n');
        data.extend_from_slice(config);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(&p)
            .with_ctx(|| format!("writing {}", p.display()))?;
        f.write_all(&data).with_ctx(|| format!("writing {}", p.display()))?;
        drop(f);
        self.save_encoded(&state, true)
    }

    /// The snapshot; None for a container made by a runtime that wrote
    /// none (or a create killed before it did).
    pub fn load_snapshot(&self) -> Result<Option<Snapshot>> {
        let p = self.path.join(SNAPSHOT);
        let data = match read_file(&p, MAX_SNAPSHOT, &self.id) {
            Ok(d) => d,
            Err(Error::NotExist(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let corrupt = |m: String| Error::State { path: p.clone(), msg: format!("corrupt: {m}") };
        let nl = data.iter().position(|&b| b == b'\n').ok_or_else(|| corrupt("no state line".into()))?;
        let mut state: State = serde_json::from_slice(&data[..nl]).map_err(|e| corrupt(e.to_string()))?;
        state.dir = self.path.clone();
        Ok(Some(Snapshot { state, data, config_at: nl + 1 }))
    }

    /// The fd holding the lock: children of create must close it, or the
    /// lock lives as long as they do.
    pub fn lock_fd(&self) -> i32 {
        self.dir.as_raw_fd()
    }

    /// A second, unlocked handle on the directory (for the parent's
    /// trampoline fallback; children close it).
    pub fn open_handle(&self) -> Result<File> {
        open_dir(&self.path).with_ctx(|| format!("opening {}", self.path.display()))
    }

    pub fn exec_sock_path(&self) -> PathBuf {
        self.path.join(EXEC_SOCK)
    }

    /// The exec socket's address for bind/connect: its path, or, past what
    /// a sockaddr_un holds, the same through our handle on the directory.
    pub fn exec_sock_addr(&self) -> PathBuf {
        let p = self.exec_sock_path();
        if p.as_os_str().len() < 100 {
            return p;
        }
        PathBuf::from(format!("/proc/self/fd/{}/{EXEC_SOCK}", self.dir.as_raw_fd()))
    }

    /// Remove the directory and everything in it.
    pub fn destroy(self) -> Result<()> {
        match std::fs::remove_dir_all(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_ctx(|| format!("removing {}", self.path.display())),
        }
    }
}

/// Write a file atomically (temp in the same directory, then rename): the
/// pid file must never be seen half-written.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, data).with_ctx(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_ctx(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp() -> PathBuf {
        let p = std::env::temp_dir().join(format!("rpc-state-test-{}-{:?}", std::process::id(), std::thread::current().id()));
        let _ = std::fs::remove_dir_all(&p);
        p
    }

    fn state(id: &str) -> State {
        State {
            id: id.into(),
            backend: "native".into(),
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            status: Recorded::Creating,
            init: None,
            created: crate::log::rfc3339_now(),
            owner: "root".into(),
            annotations: Default::default(),
            hooks: Default::default(),
            payload: Default::default(),
            dir: PathBuf::new(),
        }
    }

    #[test]
    fn create_save_load_destroy() {
        let root = tmp();
        let store = Store::new(&root);
        let d = store.create("c1").unwrap();
        assert!(matches!(store.create("c1"), Err(Error::Exists(_))));
        assert!(matches!(d.load(), Err(Error::NotExist(_))));
        d.save(&state("c1")).unwrap();
        assert_eq!(d.load().unwrap().id, "c1");
        assert_eq!(store.list().unwrap(), vec!["c1".to_string()]);
        // a second locker would block; a non-blocking shared open reports it
        assert!(store.try_open_shared("c1").unwrap().is_none());
        d.destroy().unwrap();
        assert!(matches!(store.open("c1", false), Err(Error::NotExist(_))));
        assert!(store.list().unwrap().is_empty());
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// Each save replaces state.json whole (exchanged with the new file):
    /// a reader that opened the old one reads it whole, nothing else is
    /// left in the directory, and a temporary left by a kill between the
    /// exchange and its unlink does not stop the next save.
    #[test]
    fn saves_replace_the_state_whole_and_leave_nothing_beside_it() {
        use std::io::Read;
        let root = tmp();
        let store = Store::new(&root);
        let d = store.create("c4").unwrap();
        let mut st = state("c4");
        d.save(&st).unwrap();
        let mut old = std::fs::File::open(d.path.join(STATE_FILE)).unwrap();
        st.owner = "x".repeat(4096);
        d.save(&st).unwrap();
        let mut was = Vec::new();
        old.read_to_end(&mut was).unwrap();
        assert_eq!(serde_json::from_slice::<State>(&was).unwrap().owner, "root");
        assert_eq!(d.load().unwrap().owner, st.owner);
        let names = || {
            let mut v: Vec<String> = std::fs::read_dir(&d.path).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
            v.sort();
            v
        };
        assert_eq!(names(), vec![STATE_FILE.to_string()]);
        std::fs::write(d.path.join(".state.json.tmp"), b"left by a kill").unwrap();
        st.owner = "root".into();
        d.save(&st).unwrap();
        assert_eq!(d.load().unwrap().owner, "root");
        assert_eq!(names(), vec![STATE_FILE.to_string()]);
        d.destroy().unwrap();
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn state_files_are_read_bounded_and_never_through_a_symlink() {
        let root = tmp();
        let store = Store::new(&root);
        let d = store.create("c2").unwrap();
        let p = d.path.join(STATE_FILE);
        std::os::unix::fs::symlink("/dev/zero", &p).unwrap();
        let e = d.load().unwrap_err();
        assert!(matches!(&e, Error::State { path, .. } if path == &p), "{e}");
        assert!(e.to_string().contains("symbolic link"), "{e}");
        std::fs::remove_file(&p).unwrap();
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert!(d.load().unwrap_err().to_string().contains("FIFO"));
        std::fs::remove_file(&p).unwrap();
        std::fs::write(&p, vec![b' '; MAX_STATE as usize + 1]).unwrap();
        assert!(d.load().unwrap_err().to_string().contains("larger than 1 MiB"));
        std::fs::write(&p, b"{not json").unwrap();
        assert!(d.load().unwrap_err().to_string().contains("corrupt"));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn snapshot_round_trip() {
        let root = tmp();
        let store = Store::new(&root);
        let d = store.create("c3").unwrap();
        assert!(d.load_snapshot().unwrap().is_none());
        let mut st = state("c3");
        // The backend's payload goes through as it was.
        st.payload.insert("cgroups".into(), serde_json::json!(["/sys/fs/cgroup/pids/x"]));
        d.save_first(&st, b"{\n  \"ociVersion\": \"1.0.2\"\n}\n").unwrap();
        assert_eq!(d.load().unwrap().payload, st.payload);
        let s = d.load_snapshot().unwrap().unwrap();
        assert_eq!(s.state.payload, st.payload);
        assert_eq!(s.config(), b"{\n  \"ociVersion\": \"1.0.2\"\n}\n");
        // Written once: a second create of it fails rather than replace it.
        assert!(d.save_first(&st, b"{}").is_err());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn atomic_write() {
        let root = tmp();
        std::fs::create_dir_all(&root).unwrap();
        let p = root.join("pid");
        write_atomic(&p, b"42").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "42");
        assert_eq!(std::fs::read_dir(&root).unwrap().count(), 1);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
