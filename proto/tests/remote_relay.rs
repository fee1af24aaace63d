//! RemoteProcess under runtime-core's real proxy: a forked proxy relays a
//! fake agent's stdout stream, forwards SIGTERM as a Signal request, and
//! exits with the Exit event's status, or LOST (255) when the Wait
//! connection closes without one. A plain main (no test harness): the
//! proxy is forked, and fork wants a single-threaded caller.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use rpc_proto::client::{Client, HELLO_ID};
use rpc_proto::frame::{read_frame, write_frame};
use rpc_proto::msg::{Event, Kind, Reply, Request, Role, PROTO};
use rpc_proto::remote::RemoteProcess;
use runtime_core::proxy::Stdio;

#[derive(Clone, Copy, Debug)]
enum Scenario {
    /// Output, then Exit{7}.
    Exit,
    /// The Wait connection closes without an Exit.
    Lost,
    /// SIGTERM to the proxy becomes Signal{15}; the agent then sends
    /// Exit{143, 15}.
    Signal,
}

fn secs(n: u64) -> Instant {
    Instant::now() + Duration::from_secs(n)
}

fn welcome(s: &mut UnixStream) -> Request {
    let f = read_frame(&*s, secs(10)).expect("hello");
    let w = Reply::Welcome { proto: PROTO, agent: "fake".into(), features: vec![] };
    write_frame(s, Kind::Reply, HELLO_ID, &w).expect("welcome");
    f.request().expect("hello")
}

/// The fake agent (a forked child): serves the scenario, then returns.
fn agent(sc: Scenario, mut wait: UnixStream, mut out: UnixStream, control: UnixListener) {
    welcome(&mut wait);
    out.write_all(b"hello from the guest\n").expect("stdout");
    drop(out);
    match sc {
        Scenario::Exit => {
            std::thread::sleep(Duration::from_millis(100));
            write_frame(&mut wait, Kind::Event, 0, &Event::Exit { status: 7, signal: None }).expect("exit");
        }
        Scenario::Lost => drop(wait),
        Scenario::Signal => {
            let (mut c, _) = control.accept().expect("accept");
            welcome(&mut c);
            let f = read_frame(&c, secs(10)).expect("signal");
            let req = f.request().expect("request");
            assert_eq!(req, Request::Signal { id: "c1".into(), exec_id: Some("e1".into()), sig: 15, all: false });
            write_frame(&mut c, Kind::Reply, f.id, &Reply::Ok).expect("ok");
            write_frame(&mut wait, Kind::Event, 0, &Event::Exit { status: 143, signal: Some(15) }).expect("exit");
        }
    }
}

/// Redirects fd `to` into a new pipe until `restore`; the read end.
struct Capture {
    to: i32,
    saved: OwnedFd,
    read: OwnedFd,
}

impl Capture {
    fn new(to: i32) -> Capture {
        let (read, write) = nix::unistd::pipe().expect("pipe");
        // SAFETY: dup of a fd we own; the result is ours.
        let saved = unsafe { OwnedFd::from_raw_fd(libc::dup(to)) };
        // SAFETY: dup2 onto our own stdio fd.
        assert!(unsafe { libc::dup2(write.as_raw_fd(), to) } == to);
        Capture { to, saved, read }
    }

    fn restore(&self) {
        // SAFETY: dup2 of our saved copy back onto our stdio fd.
        assert!(unsafe { libc::dup2(self.saved.as_raw_fd(), self.to) } == self.to);
    }

    fn text(self) -> String {
        let mut s = String::new();
        std::fs::File::from(self.read).read_to_string(&mut s).expect("read capture");
        s
    }
}

fn wait_for(pid: Pid, within: Duration) -> WaitStatus {
    let deadline = Instant::now() + within;
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)).expect("waitpid") {
            WaitStatus::StillAlive if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            WaitStatus::StillAlive => {
                let _ = kill(pid, Signal::SIGKILL);
                panic!("pid {pid} did not end within {within:?}");
            }
            s => return s,
        }
    }
}

/// Runs one scenario: the proxy's status, stdout and stderr.
fn run(sc: Scenario) -> (i32, String, String) {
    let dir = PathBuf::from(format!("/tmp/rpc-proto-relay-{}-{sc:?}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let sock = dir.join("agent.sock");
    let control = UnixListener::bind(&sock).expect("bind");
    let (wait_host, wait_guest) = UnixStream::pair().expect("pair");
    let (out_host, out_guest) = UnixStream::pair().expect("pair");
    // SAFETY: single-threaded here (no harness); the child only runs the
    // fake agent and _exits.
    let agent_pid = match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            drop((wait_host, out_host));
            agent(sc, wait_guest, out_guest, control);
            // SAFETY: leave the forked child without the parent's atexit.
            unsafe { libc::_exit(0) };
        }
        ForkResult::Parent { child } => child,
    };
    drop((wait_guest, out_guest, control));

    let role = Role::Wait { container: "c1".into(), exec: Some("e1".into()) };
    let (wait, _) = Client::connect(wait_host, role, "relay-test", secs(10)).expect("wait connection");
    let dial_sock = sock.clone();
    let dial = Box::new(move || {
        let s = UnixStream::connect(&dial_sock).map_err(|e| rpc_proto::Error::Io { op: "dial".into(), source: e })?;
        Ok(Client::connect(s, Role::Control, "relay-test", secs(10))?.0)
    });
    let stdio = Stdio { stdin: None, stdout: Some(out_host.into()), stderr: None, terminal: false };
    let mut remote = RemoteProcess::new("c1", Some("e1"), stdio, wait, dial).expect("remote");

    let out = Capture::new(1);
    let err = Capture::new(2);
    let spawned = runtime_core::proxy::spawn(&mut remote);
    out.restore();
    err.restore();
    drop(remote);
    let pid = Pid::from_raw(spawned.expect("spawn"));
    if let Scenario::Signal = sc {
        std::thread::sleep(Duration::from_millis(300));
        kill(pid, Signal::SIGTERM).expect("kill");
    }
    let status = match wait_for(pid, Duration::from_secs(20)) {
        WaitStatus::Exited(_, s) => s,
        other => panic!("proxy ended as {other:?}"),
    };
    assert!(matches!(wait_for(agent_pid, Duration::from_secs(10)), WaitStatus::Exited(_, 0)), "the fake agent failed");
    let _ = std::fs::remove_dir_all(&dir);
    (status, out.text(), err.text())
}

fn main() {
    // `cargo test -- --list` and filters: nothing to list, run all.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let (status, out, err) = run(Scenario::Exit);
    assert_eq!((status, out.as_str()), (7, "hello from the guest\n"), "stderr: {err}");
    println!("test exit_status_and_output_through_the_proxy ... ok");

    let (status, out, err) = run(Scenario::Lost);
    assert_eq!(status, runtime_core::proxy::LOST);
    assert_eq!(out, "hello from the guest\n");
    assert!(err.contains("lost the process") && err.contains("without its exit"), "stderr: {err}");
    println!("test a_lost_wait_connection_is_status_255 ... ok");

    let (status, _, err) = run(Scenario::Signal);
    assert_eq!(status, 143, "stderr: {err}");
    println!("test sigterm_is_forwarded_as_a_signal_request ... ok");
}
