//! A fake executor for the dispatcher's tests and fuzz target: it starts
//! nothing; its calls "run" until the test ends them with
//! `Agent::child_exited`, their pid files name processes that exist
//! nowhere (2_000_000 + n for the n-th call, 1_000_000 + n being the
//! call's own pid), and their output is canned.
#![allow(dead_code)]

use std::cell::RefCell;
use std::ffi::OsString;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::rc::Rc;

use rpc_agent::runtime::{CallStdio, Spawned};
use rpc_agent::Executor;

/// Runtime calls that "ran": their pids, for the harness to end.
pub type Spawns = Rc<RefCell<Vec<i32>>>;

pub struct Fake {
    pub spawned: Spawns,
    next: i32,
    /// Every 7th spawn fails.
    pub flaky: bool,
}

impl Fake {
    pub fn new(spawned: Spawns) -> Fake {
        Fake { spawned, next: 0, flaky: true }
    }
}

fn arg_after(args: &[OsString], flag: &str) -> Option<PathBuf> {
    let i = args.iter().position(|a| a == flag)?;
    args.get(i + 1).map(PathBuf::from)
}

/// A pipe whose reader gets `bytes` and then EOF.
fn canned(bytes: &[u8]) -> std::io::Result<OwnedFd> {
    let (r, w) = rpc_agent::runtime::pipe()?;
    let mut w = std::fs::File::from(w);
    w.write_all(bytes)?;
    rpc_agent::runtime::set_nonblocking(&r)?;
    Ok(r)
}

impl Executor for Fake {
    fn spawn(&mut self, args: &[OsString], stdio: CallStdio) -> std::io::Result<Spawned> {
        self.next += 1;
        if self.flaky && self.next % 7 == 0 {
            return Err(std::io::Error::other("fake: cannot run"));
        }
        let pid = 1_000_000 + self.next;
        if let Some(p) = arg_after(args, "--pid-file") {
            // Pids that exist nowhere: the harness "ends" some of them.
            let text = if self.flaky && self.next % 5 == 0 { "garbage".to_string() } else { (2_000_000 + self.next).to_string() };
            let _ = std::fs::write(p, text);
        }
        let out: &[u8] = if args.iter().any(|a| a == "events") {
            br#"{"type":"stats","id":"c","data":{"memory":{"usage":{"usage":4096}}}}"#
        } else if args.iter().any(|a| a == "json") {
            b"[1,2,3]"
        } else {
            b"PID CMD\n1 sh\n"
        };
        drop(stdio);
        self.spawned.borrow_mut().push(pid);
        Ok(Spawned { pid, stdout: Some(canned(out)?), stderr: Some(canned(b"fake: error\n")?) })
    }

    fn kill(&mut self, _pid: i32, _sig: i32) -> std::io::Result<()> {
        Ok(())
    }
}
