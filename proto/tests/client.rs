//! The host client against a fake agent on a socketpair (a thread).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rpc_proto::client::{Client, HELLO_ID};
use rpc_proto::frame::{encode, read_frame, write_frame};
use rpc_proto::msg::{ErrorBody, ErrorCode, Event, Kind, Reply, Request, Role, Which, PROTO};
use rpc_proto::Error;

fn secs(n: u64) -> Instant {
    Instant::now() + Duration::from_secs(n)
}

/// A fake agent running `f` on its end of a socketpair.
fn agent(f: impl FnOnce(UnixStream) + Send + 'static) -> (UnixStream, JoinHandle<()>) {
    let (host, guest) = UnixStream::pair().expect("socketpair");
    (host, std::thread::spawn(move || f(guest)))
}

/// Reads the Hello and answers the Welcome of `proto`.
fn welcome(s: &mut UnixStream, proto: u32) -> Request {
    let f = read_frame(&*s, secs(5)).expect("hello");
    assert_eq!((f.kind, f.id), (Kind::Request, HELLO_ID));
    let hello = f.request().expect("hello decodes");
    let w = Reply::Welcome { proto, agent: "fake 0.1".into(), features: vec!["stats".into()] };
    write_frame(s, Kind::Reply, HELLO_ID, &w).expect("welcome");
    hello
}

fn connect(host: UnixStream) -> Result<(Client, rpc_proto::client::Welcome), Error> {
    Client::connect(host, Role::Control, "test-host", secs(5))
}

#[test]
fn hello_ok_then_a_call() {
    let (host, t) = agent(|mut s| {
        let hello = welcome(&mut s, PROTO);
        assert_eq!(hello, Request::Hello { proto: [PROTO, PROTO], role: Role::Control, client: "test-host".into() });
        let f = read_frame(&s, secs(5)).expect("ping");
        assert_eq!(f.request().expect("ping"), Request::Ping);
        write_frame(&mut s, Kind::Reply, f.id, &Reply::Pong).expect("pong");
    });
    let (mut c, w) = connect(host).expect("connect");
    assert_eq!(w.proto, PROTO);
    assert_eq!(w.agent, "fake 0.1");
    assert_eq!(w.features, ["stats"]);
    assert_eq!(c.call(&Request::Ping, Duration::from_secs(5)).expect("call"), Reply::Pong);
    t.join().expect("agent");
}

#[test]
fn version_mismatch_names_both_versions() {
    let (host, t) = agent(|mut s| {
        welcome(&mut s, 99);
    });
    let e = connect(host).expect_err("version");
    assert_eq!(e.to_string(), "agent speaks protocol 99, we speak 1");
    t.join().expect("agent");

    let (host, t) = agent(|mut s| {
        read_frame(&s, secs(5)).expect("hello");
        let body = ErrorBody { code: ErrorCode::Version, msg: "agent speaks protocol 2..=3, client 1..=1".into() };
        write_frame(&mut s, Kind::Error, HELLO_ID, &body).expect("error");
    });
    let e = connect(host).expect_err("version");
    assert_eq!(e.to_string(), "agent speaks protocol 2..=3, we speak 1");
    t.join().expect("agent");
}

#[test]
fn pipelined_calls_get_their_own_replies() {
    let (host, t) = agent(|mut s| {
        welcome(&mut s, PROTO);
        let ids: Vec<u32> = (0..3).map(|_| read_frame(&s, secs(5)).expect("request").id).collect();
        // Answer in reverse, with an event in between.
        write_frame(&mut s, Kind::Event, 0, &Event::Oom { count: 1 }).expect("event");
        for (n, id) in ids.iter().rev().enumerate() {
            write_frame(&mut s, Kind::Reply, *id, &Reply::Created { guest_pid: n as i32 }).expect("reply");
        }
    });
    let (mut c, _) = connect(host).expect("connect");
    let ids: Vec<u32> = (0..3).map(|_| c.send(&Request::Ping, secs(5)).expect("send")).collect();
    assert_eq!(ids, [1, 2, 3]);
    assert_eq!(c.recv(1, "ping", secs(5)).expect("1"), Reply::Created { guest_pid: 2 });
    assert_eq!(c.recv(3, "ping", secs(5)).expect("3"), Reply::Created { guest_pid: 0 });
    assert_eq!(c.recv(2, "ping", secs(5)).expect("2"), Reply::Created { guest_pid: 1 });
    assert!(matches!(c.recv(2, "ping", secs(5)), Err(Error::NotPending(2))));
    assert_eq!(c.next_event(secs(5)).expect("event"), Some(Event::Oom { count: 1 }));
    t.join().expect("agent");
}

#[test]
fn an_error_frame_is_an_agent_error() {
    let (host, t) = agent(|mut s| {
        welcome(&mut s, PROTO);
        let f = read_frame(&s, secs(5)).expect("start");
        let body = ErrorBody { code: ErrorCode::NotFound, msg: "container \"x\" does not exist".into() };
        write_frame(&mut s, Kind::Error, f.id, &body).expect("error");
    });
    let (mut c, _) = connect(host).expect("connect");
    let e = c.call(&Request::Start { id: "x".into() }, Duration::from_secs(5)).expect_err("error");
    assert_eq!(e.to_string(), "guest: container \"x\" does not exist");
    assert!(matches!(e, Error::Agent { code: ErrorCode::NotFound, .. }), "{e:?}");
    t.join().expect("agent");
}

#[test]
fn a_reply_with_a_wrong_id_is_an_error() {
    let (host, t) = agent(|mut s| {
        welcome(&mut s, PROTO);
        read_frame(&s, secs(5)).expect("ping");
        write_frame(&mut s, Kind::Reply, 42, &Reply::Pong).expect("reply");
    });
    let (mut c, _) = connect(host).expect("connect");
    let e = c.call(&Request::Ping, Duration::from_secs(5)).expect_err("wrong id");
    assert_eq!(e.to_string(), "reply of id 42 to the request of id 1");
    t.join().expect("agent");
}

#[test]
fn an_oversized_length_is_refused_at_once() {
    let (host, t) = agent(|mut s| {
        read_frame(&s, secs(5)).expect("hello");
        s.write_all(&u32::MAX.to_le_bytes()).expect("len");
        // Stay open: the client must not wait for the 4 GiB.
        std::thread::sleep(Duration::from_secs(2));
    });
    let t0 = Instant::now();
    let e = connect(host).expect_err("too long");
    assert_eq!(e.to_string(), "frame of 4294967295 bytes over the 4 MiB limit");
    assert!(t0.elapsed() < Duration::from_secs(1));
    t.join().expect("agent");
}

#[test]
fn a_close_mid_frame_is_an_error() {
    let (host, t) = agent(|mut s| {
        welcome(&mut s, PROTO);
        let f = read_frame(&s, secs(5)).expect("create");
        let wire = encode(Kind::Reply, f.id, &Reply::Created { guest_pid: 7 }).expect("encode");
        s.write_all(&wire[..12]).expect("half");
    });
    let (mut c, _) = connect(host).expect("connect");
    let e = c.call(&Request::Ping, Duration::from_secs(5)).expect_err("mid-frame");
    assert!(e.to_string().starts_with("closed the connection mid-frame (12 of "), "{e}");
    t.join().expect("agent");
}

#[test]
fn a_silent_agent_times_out_within_a_second_of_the_deadline() {
    // Silent before the Welcome.
    let (host, t) = agent(|s| {
        std::thread::sleep(Duration::from_secs(3));
        drop(s);
    });
    let t0 = Instant::now();
    let e = Client::connect(host, Role::Control, "h", t0 + Duration::from_millis(500)).expect_err("timeout");
    let took = t0.elapsed();
    assert!(matches!(e, Error::Timeout { .. }), "{e}");
    assert!(e.to_string().starts_with("no Welcome within"), "{e}");
    assert!(took >= Duration::from_millis(500) && took < Duration::from_millis(1500), "{took:?}");
    t.join().expect("agent");

    // Half a reply, then silence.
    let (host, t) = agent(|mut s| {
        welcome(&mut s, PROTO);
        let f = read_frame(&s, secs(5)).expect("start");
        let wire = encode(Kind::Reply, f.id, &Reply::Ok).expect("encode");
        s.write_all(&wire[..7]).expect("half");
        std::thread::sleep(Duration::from_secs(3));
    });
    let (mut c, _) = connect(host).expect("connect");
    let t0 = Instant::now();
    let e = c.call(&Request::Start { id: "c1".into() }, Duration::from_millis(500)).expect_err("timeout");
    let took = t0.elapsed();
    assert!(e.to_string().starts_with("no reply to start (id 1) within"), "{e}");
    assert!(took >= Duration::from_millis(500) && took < Duration::from_millis(1500), "{took:?}");
    t.join().expect("agent");
}

#[test]
fn an_agent_that_stops_reading_cannot_block_a_send() {
    let (host, t) = agent(|mut s| {
        welcome(&mut s, PROTO);
        std::thread::sleep(Duration::from_secs(3));
    });
    let (mut c, _) = connect(host).expect("connect");
    // Bigger than any socket buffer, smaller than a frame's limit.
    let config = serde_json::Value::String("x".repeat(3 << 20));
    let req = Request::Create { id: "c".into(), config, sandbox: false, ns_from_sandbox: vec![], sandbox_id: None, terminal: false };
    let t0 = Instant::now();
    let e = c.call(&req, Duration::from_millis(500)).expect_err("timeout");
    assert!(e.to_string().starts_with("no room to send create within"), "{e}");
    assert!(t0.elapsed() < Duration::from_millis(1500));
    t.join().expect("agent");
}

#[test]
fn a_stream_fd_keeps_the_bytes_after_the_welcome() {
    let (host, t) = agent(|mut s| {
        let hello = welcome(&mut s, PROTO);
        assert!(matches!(hello, Request::Hello { role: Role::Stream { which: Which::Stdout, .. }, .. }));
        s.write_all(b"container output").expect("raw");
    });
    let role = Role::Stream { container: "c".into(), exec: None, which: Which::Stdout };
    let (c, _) = Client::connect(host, role, "h", secs(5)).expect("connect");
    let mut raw = UnixStream::from(c.into_fd().expect("fd"));
    t.join().expect("agent");
    let mut out = String::new();
    raw.read_to_string(&mut out).expect("read blocking");
    assert_eq!(out, "container output");
}

#[test]
fn wait_gets_the_exit_then_none() {
    let (host, t) = agent(|mut s| {
        welcome(&mut s, PROTO);
        write_frame(&mut s, Kind::Event, 0, &Event::Exit { status: 130, signal: Some(2) }).expect("exit");
    });
    let role = Role::Wait { container: "c".into(), exec: Some("e1".into()) };
    let (mut c, _) = Client::connect(host, role, "h", secs(5)).expect("connect");
    assert_eq!(c.next_event(secs(5)).expect("exit"), Some(Event::Exit { status: 130, signal: Some(2) }));
    assert_eq!(c.next_event(secs(5)).expect("closed"), None);
    t.join().expect("agent");
}

#[test]
fn welcome_of_checks_what_an_event_loop_read() {
    use rpc_proto::client::{reply_timeout, welcome_of, CREATE_TIMEOUT, REPLY_TIMEOUT};
    use rpc_proto::frame::FrameReader;
    let frame = |kind, id, body: &dyn erased_body::B| {
        let (_, f) = FrameReader::new().push(&body.enc(kind, id)).expect("push");
        f.expect("frame")
    };
    let w = Reply::Welcome { proto: PROTO, agent: "a".into(), features: vec![] };
    assert_eq!(welcome_of(&frame(Kind::Reply, HELLO_ID, &w)).expect("welcome").agent, "a");
    let e = welcome_of(&frame(Kind::Reply, 3, &w)).expect_err("id");
    assert_eq!(e.to_string(), "reply of id 3 to the request of id 0");
    let e = welcome_of(&frame(Kind::Reply, HELLO_ID, &Reply::Pong)).expect_err("pong");
    assert_eq!(e.to_string(), "unexpected reply to Hello: Pong");
    let body = ErrorBody { code: ErrorCode::Busy, msg: "too many connections".into() };
    let e = welcome_of(&frame(Kind::Error, HELLO_ID, &body)).expect_err("error");
    assert_eq!(e.to_string(), "guest: too many connections");
    assert_eq!(reply_timeout(&Request::Ping), REPLY_TIMEOUT);
    let create = Request::Create {
        id: "c".into(),
        config: serde_json::json!({}),
        sandbox: false,
        ns_from_sandbox: vec![],
        sandbox_id: None,
        terminal: false,
    };
    assert_eq!(reply_timeout(&create), CREATE_TIMEOUT);
}

mod erased_body {
    pub trait B {
        fn enc(&self, kind: rpc_proto::msg::Kind, id: u32) -> Vec<u8>;
    }
    impl<T: serde::Serialize> B for T {
        fn enc(&self, kind: rpc_proto::msg::Kind, id: u32) -> Vec<u8> {
            rpc_proto::frame::encode(kind, id, self).expect("encode")
        }
    }
}
