//! The dispatcher with the fake executor, where the order of exits is the
//! test's to choose: what real runtimes make a race.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Instant;

use common::{Fake, Spawns};
use rpc_agent::{Agent, Config};
use rpc_proto::frame::{encode, Frame, FrameReader};
use rpc_proto::msg::{Event, Kind, Reply, Request, Role};
use serde_json::json;

struct Peer {
    s: UnixStream,
    reader: FrameReader,
}

impl Peer {
    fn new(agent: &mut Agent, role: Role) -> Peer {
        let (a, b) = UnixStream::pair().unwrap();
        agent.adopt(a.into()).unwrap();
        b.set_nonblocking(true).unwrap();
        let mut p = Peer { s: b, reader: FrameReader::new() };
        p.send(1, &Request::Hello { proto: [1, 1], role, client: "test".into() });
        let w = p.next(agent).expect("a Welcome");
        assert!(matches!(w.reply().unwrap(), Reply::Welcome { proto: 1, .. }));
        p
    }

    fn send(&mut self, id: u32, r: &Request) {
        self.s.write_all(&encode(Kind::Request, id, r).unwrap()).unwrap();
    }

    /// The next frame, turning the agent meanwhile (None: nothing came).
    fn next(&mut self, agent: &mut Agent) -> Option<Frame> {
        let t0 = Instant::now();
        let mut buf = [0u8; 4096];
        while t0.elapsed().as_millis() < 500 {
            agent.turn(10).unwrap();
            match self.s.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => {
                    let (used, f) = self.reader.push(&buf[..n]).unwrap();
                    assert_eq!(used, n, "one frame at a time in these tests");
                    if f.is_some() {
                        return f;
                    }
                }
                Err(_) => {}
            }
        }
        None
    }
}

fn agent(name: &str, spawned: &Spawns) -> (Agent, PathBuf) {
    let dir = std::env::temp_dir().join(format!("rpc-agent-dispatch-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cfg = Config { runtime: "/nonexistent/rpc-runc".into(), root: dir.join("root"), state: dir.join("state") };
    let mut fake = Fake::new(spawned.clone());
    fake.flaky = false;
    (Agent::new(cfg, Box::new(fake)).unwrap(), dir)
}

fn create(id: &str) -> Request {
    Request::Create {
        id: id.into(),
        config: json!({ "process": { "args": ["sh"] }, "root": { "path": "/" } }),
        sandbox: false,
        ns_from_sandbox: vec![],
        sandbox_id: None,
        terminal: false,
    }
}

/// The container's init ends before create's runtime call does (before
/// its pid file is read): the exit is held, not lost.
#[test]
fn an_exit_before_the_pid_file_is_read_is_held() {
    let spawned = Spawns::default();
    let (mut a, dir) = agent("held", &spawned);
    let mut c = Peer::new(&mut a, Role::Control);
    let mut w = Peer::new(&mut a, Role::Wait { container: "c".into(), exec: None });
    c.send(2, &create("c"));
    assert!(c.next(&mut a).is_none(), "no reply while the runtime runs");
    let runtime_pid = spawned.borrow_mut().pop().unwrap();
    // 2_000_000 + 1: the pid the fake's first call wrote in its pid file.
    a.child_exited(2_000_001, (9, None));
    a.child_exited(runtime_pid, (0, None));
    let r = c.next(&mut a).unwrap();
    assert_eq!(r.reply().unwrap(), Reply::Created { guest_pid: 2_000_001 });
    let e = w.next(&mut a).expect("the Exit of the init");
    assert_eq!(e.event().unwrap(), Event::Exit { status: 9, signal: None });
    // Once nothing is in flight, unknown exits are not kept: an exit
    // before the exec was even asked for is no exit of the exec.
    c.send(3, &create("d"));
    assert!(c.next(&mut a).is_none());
    let runtime_pid = spawned.borrow_mut().pop().unwrap();
    a.child_exited(runtime_pid, (0, None));
    assert_eq!(c.next(&mut a).unwrap().reply().unwrap(), Reply::Created { guest_pid: 2_000_002 });
    a.child_exited(2_000_003, (1, None));
    c.send(4, &Request::Exec { id: "d".into(), exec_id: "e".into(), process: json!({ "args": ["true"] }), terminal: false });
    assert!(c.next(&mut a).is_none());
    let runtime_pid = spawned.borrow_mut().pop().unwrap();
    a.child_exited(runtime_pid, (0, None));
    assert_eq!(c.next(&mut a).unwrap().reply().unwrap(), Reply::Execed { guest_pid: 2_000_003 });
    let mut we = Peer::new(&mut a, Role::Wait { container: "d".into(), exec: Some("e".into()) });
    assert!(we.next(&mut a).is_none(), "an exit from before the exec was taken for its own");
    let _ = std::fs::remove_dir_all(dir);
}

/// Several requests in flight on one connection: the replies come as the
/// runtime's calls end, each with its request's id.
#[test]
fn calls_in_flight_complete_out_of_order() {
    let spawned = Spawns::default();
    let (mut a, dir) = agent("order", &spawned);
    let mut c = Peer::new(&mut a, Role::Control);
    c.send(2, &create("x"));
    c.send(3, &create("y"));
    c.send(4, &Request::Ping);
    assert_eq!(c.next(&mut a).unwrap().id, 4, "a ping is not held up by the creates");
    let pids: Vec<i32> = spawned.borrow_mut().drain(..).collect();
    assert_eq!(pids.len(), 2);
    a.child_exited(pids[1], (0, None));
    assert_eq!(c.next(&mut a).unwrap().id, 3);
    a.child_exited(pids[0], (1, None));
    let f = c.next(&mut a).unwrap();
    assert_eq!((f.id, f.kind), (2, Kind::Error));
    assert_eq!(f.error().unwrap().msg, "fake: error", "the runtime's own words (its stderr, no log here)");
    let _ = std::fs::remove_dir_all(dir);
}
