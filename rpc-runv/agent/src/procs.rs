//! The registry of the processes the agent started: each container's init
//! and its exec'd processes, with their stdio relays and the connections
//! waiting for their exit.

use std::collections::{BTreeMap, HashMap};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::poller::Token;
use crate::relay::Relay;

/// A process: its container and exec id (None: the init).
pub type Key = (String, Option<String>);

/// How long an Exit waits for the process's output to reach its attached
/// streams (a daemonized child may hold the pipe open for ever).
pub const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// An exit: the status as a shell says it, and the killing signal.
pub type ExitStatus = (i32, Option<i32>);

pub struct Proc {
    /// None while its create or exec runs.
    pub pid: Option<i32>,
    pub exit: Option<ExitStatus>,
    pub exited_at: Option<Instant>,
    pub terminal: bool,
    /// The pty master (Resize); the relays hold their own copies.
    pub tty: Option<OwnedFd>,
    pub stdin: Relay,
    pub stdout: Relay,
    pub stderr: Relay,
    /// Wait (and Events) connections.
    pub waiters: Vec<Token>,
    /// The Exit went to the waiters there were.
    pub exit_sent: bool,
}

impl Proc {
    pub fn new(terminal: bool, stdin: Relay, stdout: Relay, stderr: Relay) -> Proc {
        Proc { pid: None, exit: None, exited_at: None, terminal, tty: None, stdin, stdout, stderr, waiters: Vec::new(), exit_sent: false }
    }

    pub fn relays(&self) -> [&Relay; 3] {
        [&self.stdin, &self.stdout, &self.stderr]
    }

    pub fn relays_mut(&mut self) -> [&mut Relay; 3] {
        [&mut self.stdin, &mut self.stdout, &mut self.stderr]
    }

    /// Whether the Exit may go: the process ended and what it wrote has
    /// reached the streams attached (or the grace time is over).
    pub fn exit_ready(&self, now: Instant) -> bool {
        let Some(at) = self.exited_at else { return false };
        self.exit.is_some() && (now >= at + DRAIN_GRACE || [&self.stdout, &self.stderr].iter().all(|r| r.conn.is_none() || r.drained()))
    }
}

pub struct Container {
    pub init: Proc,
    pub execs: BTreeMap<String, Proc>,
    /// `delete` succeeded; kept until every process is reaped and waited.
    pub deleted: bool,
    /// BUNDLES_DIR/<id>.
    pub dir: PathBuf,
}

#[derive(Default)]
pub struct Procs {
    pub containers: HashMap<String, Container>,
}

impl Procs {
    pub fn get(&self, key: &Key) -> Option<&Proc> {
        let c = self.containers.get(&key.0)?;
        match &key.1 {
            None => Some(&c.init),
            Some(e) => c.execs.get(e),
        }
    }

    pub fn get_mut(&mut self, key: &Key) -> Option<&mut Proc> {
        let c = self.containers.get_mut(&key.0)?;
        match &key.1 {
            None => Some(&mut c.init),
            Some(e) => c.execs.get_mut(e),
        }
    }

    /// The running process of pid `pid`.
    pub fn find_pid(&self, pid: i32) -> Option<Key> {
        for (id, c) in &self.containers {
            if c.init.pid == Some(pid) && c.init.exit.is_none() {
                return Some((id.clone(), None));
            }
            for (e, p) in &c.execs {
                if p.pid == Some(pid) && p.exit.is_none() {
                    return Some((id.clone(), Some(e.clone())));
                }
            }
        }
        None
    }

    pub fn keys(&self) -> Vec<Key> {
        let mut v = Vec::new();
        for (id, c) in &self.containers {
            v.push((id.clone(), None));
            v.extend(c.execs.keys().map(|e| (id.clone(), Some(e.clone()))));
        }
        v
    }
}
