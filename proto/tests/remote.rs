//! RemoteProcess's Inner methods against a fake agent (threads).

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rpc_proto::client::{Client, HELLO_ID};
use rpc_proto::frame::{encode, read_frame, write_frame};
use rpc_proto::msg::{ErrorBody, ErrorCode, Event, Kind, Reply, Request, Role, PROTO};
use rpc_proto::remote::{Dial, RemoteProcess};
use runtime_core::proxy::{Exit, Inner, Stdio};

fn secs(n: u64) -> Instant {
    Instant::now() + Duration::from_secs(n)
}

fn welcome(s: &mut UnixStream) -> Request {
    let f = read_frame(&*s, secs(5)).expect("hello");
    let w = Reply::Welcome { proto: PROTO, agent: "fake".into(), features: vec![] };
    write_frame(s, Kind::Reply, HELLO_ID, &w).expect("welcome");
    f.request().expect("hello")
}

/// A Wait connection past its Welcome, and the agent's end of it.
fn wait_conn() -> (Client, UnixStream) {
    let (host, mut guest) = UnixStream::pair().expect("pair");
    let t = std::thread::spawn(move || {
        let hello = welcome(&mut guest);
        assert!(matches!(hello, Request::Hello { role: Role::Wait { .. }, .. }));
        guest
    });
    let role = Role::Wait { container: "c1".into(), exec: Some("e1".into()) };
    let (c, _) = Client::connect(host, role, "test", secs(5)).expect("connect");
    (c, t.join().expect("agent"))
}

fn no_dial() -> Dial {
    Box::new(|| panic!("no control connection expected"))
}

/// Polls `exit()` until it is not Ok(None), at most 5 s.
fn exit_of(p: &mut RemoteProcess) -> runtime_core::error::Result<Option<Exit>> {
    let deadline = secs(5);
    loop {
        match p.exit() {
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            r => return r,
        }
    }
}

#[test]
fn exit_is_none_until_the_exit_event() {
    let (wait, mut agent) = wait_conn();
    let mut p = RemoteProcess::new("c1", Some("e1"), Stdio::default(), wait, no_dial()).expect("new");
    assert!(p.wake_fd().is_some());
    assert_eq!(p.exit().expect("running"), None);
    // Half the frame: still running.
    let wire = encode(Kind::Event, 0, &Event::Exit { status: 137, signal: Some(9) }).expect("encode");
    agent.write_all(&wire[..10]).expect("half");
    assert_eq!(p.exit().expect("running"), None);
    agent.write_all(&wire[10..]).expect("rest");
    assert_eq!(p.exit().expect("exit"), Some(Exit::Signal(9)));
    drop(agent);
    // Once known it stays known, even with the connection gone.
    assert_eq!(p.exit().expect("exit"), Some(Exit::Signal(9)));
    assert_eq!(Exit::Signal(9).status(), 137);
}

#[test]
fn exit_code() {
    let (wait, mut agent) = wait_conn();
    let mut p = RemoteProcess::new("c1", None, Stdio::default(), wait, no_dial()).expect("new");
    write_frame(&mut agent, Kind::Event, 0, &Event::Oom { count: 1 }).expect("oom");
    write_frame(&mut agent, Kind::Event, 0, &Event::Exit { status: 3, signal: None }).expect("exit");
    assert_eq!(exit_of(&mut p).expect("exit"), Some(Exit::Code(3)));
}

#[test]
fn a_wait_connection_closed_without_exit_is_lost() {
    let (wait, agent) = wait_conn();
    let mut p = RemoteProcess::new("c1", Some("e1"), Stdio::default(), wait, no_dial()).expect("new");
    drop(agent);
    let e = exit_of(&mut p).expect_err("lost");
    assert_eq!(e.to_string(), "the agent closed the wait connection of c1 exec e1 without its exit");

    let (wait, mut agent) = wait_conn();
    let mut p = RemoteProcess::new("c1", None, Stdio::default(), wait, no_dial()).expect("new");
    let wire = encode(Kind::Event, 0, &Event::Exit { status: 0, signal: None }).expect("encode");
    agent.write_all(&wire[..wire.len() - 1]).expect("all but one byte");
    drop(agent);
    let e = exit_of(&mut p).expect_err("lost");
    assert!(e.to_string().starts_with("waiting for c1: closed the connection mid-frame"), "{e}");

    let (wait, mut agent) = wait_conn();
    let mut p = RemoteProcess::new("c1", None, Stdio::default(), wait, no_dial()).expect("new");
    agent.write_all(&u32::MAX.to_le_bytes()).expect("garbage");
    let e = exit_of(&mut p).expect_err("garbage");
    assert_eq!(e.to_string(), "waiting for c1: frame of 4294967295 bytes over the 4 MiB limit");
}

/// A control agent serving `n` connections in turn; each answers
/// requests until its `serve` says to drop the connection.
fn control_agent(
    conns: usize,
    serve: impl Fn(usize, Request) -> Option<Result<Reply, ErrorBody>> + Send + Sync + 'static,
) -> (Dial, Arc<AtomicUsize>) {
    let dials = Arc::new(AtomicUsize::new(0));
    let serve = Arc::new(serve);
    let counter = dials.clone();
    let dial: Dial = Box::new(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        assert!(n < conns, "dialled {} times", n + 1);
        let (host, mut guest) = UnixStream::pair().expect("pair");
        let serve = serve.clone();
        std::thread::spawn(move || {
            welcome(&mut guest);
            while let Ok(f) = read_frame(&guest, secs(10)) {
                match serve(n, f.request().expect("request")) {
                    Some(Ok(r)) => write_frame(&mut guest, Kind::Reply, f.id, &r).expect("reply"),
                    Some(Err(e)) => write_frame(&mut guest, Kind::Error, f.id, &e).expect("error"),
                    None => return,
                }
            }
        });
        Ok(Client::connect(host, Role::Control, "test", secs(5))?.0)
    });
    (dial, dials)
}

#[test]
fn signals_and_resizes_go_on_one_control_connection() {
    let (dial, dials) = control_agent(1, |_, req| {
        match req {
            Request::Signal { id, exec_id, sig: 15, all: false } => {
                assert_eq!((id.as_str(), exec_id.as_deref()), ("c1", Some("e1")));
            }
            Request::Resize { rows: 40, cols: 120, .. } => {}
            other => panic!("{other:?}"),
        }
        Some(Ok(Reply::Ok))
    });
    let (wait, _agent) = wait_conn();
    let mut p = RemoteProcess::new("c1", Some("e1"), Stdio::default(), wait, dial).expect("new");
    p.signal(15).expect("signal");
    p.resize(40, 120).expect("resize");
    p.signal(15).expect("signal again");
    assert_eq!(dials.load(Ordering::SeqCst), 1);
}

#[test]
fn a_broken_control_connection_is_dialled_again_once() {
    // The first connection drops at its first request; the second serves.
    let (dial, dials) = control_agent(2, |n, _| (n == 1).then_some(Ok(Reply::Ok)));
    let (wait, _agent) = wait_conn();
    let mut p = RemoteProcess::new("c1", None, Stdio::default(), wait, dial).expect("new");
    p.signal(2).expect("signal on the second connection");
    assert_eq!(dials.load(Ordering::SeqCst), 2);

    // Both drop: an error after the second try, not a loop.
    let (dial, dials) = control_agent(2, |_, _| None);
    let (wait, _agent) = wait_conn();
    let mut p = RemoteProcess::new("c1", None, Stdio::default(), wait, dial).expect("new");
    let e = p.signal(2).expect_err("both broke");
    assert_eq!(e.to_string(), "signal 2 to c1: closed the connection");
    assert_eq!(dials.load(Ordering::SeqCst), 2);
}

#[test]
fn an_agent_error_is_the_signals_error() {
    let (dial, dials) = control_agent(1, |_, _| Some(Err(ErrorBody { code: ErrorCode::NotFound, msg: "no process e1".into() })));
    let (wait, _agent) = wait_conn();
    let mut p = RemoteProcess::new("c1", Some("e1"), Stdio::default(), wait, dial).expect("new");
    let e = p.signal(9).expect_err("error");
    assert_eq!(e.to_string(), "signal 9 to c1 exec e1: guest: no process e1");
    // The connection stays: no second dial.
    let _ = p.signal(9);
    assert_eq!(dials.load(Ordering::SeqCst), 1);
}

#[test]
fn open_stdio_dials_one_stream_per_fd_or_one_tty() {
    use rpc_proto::remote::open_stdio;
    use std::io::Read;
    let mut seen = Vec::new();
    let mut dial = |role: Role| -> rpc_proto::Result<Client> {
        seen.push(role.clone());
        let (host, mut guest) = UnixStream::pair().expect("pair");
        std::thread::spawn(move || {
            let hello = welcome(&mut guest);
            if let Request::Hello { role: Role::Stream { which, .. }, .. } = hello {
                let _ = guest.write_all(format!("{which:?}").as_bytes());
            }
        });
        Ok(Client::connect(host, role, "test", secs(5))?.0)
    };
    let stdio = open_stdio(&mut dial, "c1", Some("e1"), false).expect("stdio");
    let mut out = String::new();
    std::fs::File::from(stdio.stdout.expect("stdout")).read_to_string(&mut out).expect("read");
    assert_eq!(out, "Stdout");
    assert!(stdio.stdin.is_some() && stdio.stderr.is_some() && !stdio.terminal);
    let stdio = open_stdio(&mut dial, "c1", None, true).expect("tty");
    assert!(stdio.terminal && stdio.stderr.is_none());
    let mut out = String::new();
    std::fs::File::from(stdio.stdout.expect("stdout")).read_to_string(&mut out).expect("read");
    assert_eq!(out, "Tty");
    let whiches: Vec<String> = seen
        .iter()
        .map(|r| match r {
            Role::Stream { container, exec, which } => format!("{container}/{exec:?}/{which:?}"),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(whiches, ["c1/Some(\"e1\")/Stdin", "c1/Some(\"e1\")/Stdout", "c1/Some(\"e1\")/Stderr", "c1/None/Tty"]);
}
