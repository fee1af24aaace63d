//! The agent side's Session: Hello checks, request decoding, the bounded
//! queue; and the host Client against a Session-served agent.

use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use rpc_proto::client::{hello_bytes, Client, HELLO_ID};
use rpc_proto::frame::{encode, encode_raw, read_frame, Frame, FrameReader};
use rpc_proto::msg::{ErrorCode, Event, Kind, Reply, Request, Role, Which, PROTO};
use rpc_proto::server::{decode_request, negotiate, Greeted, Incoming, Session, WriteQueue};
use rpc_proto::Error;

fn frame(bytes: &[u8]) -> Frame {
    let (n, f) = FrameReader::new().push(bytes).expect("push");
    assert_eq!(n, bytes.len());
    f.expect("one frame")
}

fn hello_frame(proto: [u32; 2]) -> Frame {
    frame(&encode(Kind::Request, HELLO_ID, &Request::Hello { proto, role: Role::Control, client: "t".into() }).expect("encode"))
}

/// The frames a session queued.
fn queued(s: &mut Session) -> Vec<Frame> {
    let (a, b) = UnixStream::pair().expect("pair");
    assert!(s.flush(&a).expect("flush"));
    drop(a);
    let mut out = Vec::new();
    loop {
        match read_frame(&b, Instant::now() + Duration::from_secs(5)) {
            Ok(f) => out.push(f),
            Err(Error::Closed) => return out,
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn negotiate_takes_the_highest_common_version() {
    assert_eq!(negotiate([1, 5], [2, 3]), Ok(3));
    assert_eq!(negotiate([1, 1], [1, 1]), Ok(1));
    let e = negotiate([99, 99], [1, 1]).expect_err("none in common");
    assert_eq!((e.code, e.msg.as_str()), (ErrorCode::Version, "agent speaks protocol 1, client 99"));
    let e = negotiate([4, 2], [1, 3]).expect_err("inverted range");
    assert_eq!(e.msg, "agent speaks protocol 1..=3, client 4..=2");
}

#[test]
fn hello_is_welcomed_then_requests_flow() {
    let mut s = Session::new("agent 0.1", &["stats"], 1 << 20);
    let got = s.take(hello_frame([PROTO, PROTO])).expect("hello");
    assert_eq!(got, Incoming::Hello(Greeted { role: Role::Control, client: "t".into(), proto: PROTO }));
    let got = s.take(frame(&encode(Kind::Request, 5, &Request::Start { id: "c".into() }).expect("e"))).expect("start");
    assert_eq!(got, Incoming::Request { id: 5, req: Request::Start { id: "c".into() } });
    s.reply(5, &Reply::Ok).expect("reply");
    s.event(&Event::Oom { count: 2 }).expect("event");
    let out = queued(&mut s);
    assert_eq!(out.len(), 3);
    assert_eq!(out[0].id, HELLO_ID);
    assert_eq!(
        out[0].reply().expect("welcome"),
        Reply::Welcome { proto: PROTO, agent: "agent 0.1".into(), features: vec!["stats".into()] }
    );
    assert_eq!((out[1].id, out[1].reply().expect("ok")), (5, Reply::Ok));
    assert_eq!((out[2].id, out[2].event().expect("event")), (0, Event::Oom { count: 2 }));
}

#[test]
fn bad_hellos_are_refused_and_closed() {
    let mut s = Session::new("a", &[], 1 << 20);
    assert!(matches!(s.take(hello_frame([7, 9])).expect("take"), Incoming::Close(m) if m == "agent speaks protocol 1, client 7..=9"));
    let e = queued(&mut s).remove(0).error().expect("error");
    assert_eq!(e.code, ErrorCode::Version);

    let mut s = Session::new("a", &[], 1 << 20);
    let start = frame(&encode(Kind::Request, 1, &Request::Start { id: "c".into() }).expect("e"));
    assert_eq!(s.take(start).expect("take"), Incoming::Close("start before Hello".into()));
    assert!(s.greeted().is_none());

    let mut s = Session::new("a", &[], 1 << 20);
    let garbage = frame(&encode_raw(Kind::Request, 0, b"{not json").expect("e"));
    assert!(matches!(s.take(garbage).expect("take"), Incoming::Close(m) if m.starts_with("bad request: ")));
    assert_eq!(queued(&mut s).remove(0).error().expect("error").code, ErrorCode::Invalid);
}

#[test]
fn unknown_requests_are_unsupported_bad_ones_invalid() {
    let f = frame(&encode_raw(Kind::Request, 3, br#"{"type":"frobnicate","x":1}"#).expect("e"));
    assert_eq!(decode_request(&f).expect_err("unknown").code, ErrorCode::Unsupported);
    let f = frame(&encode_raw(Kind::Request, 3, br#"{"type":"start","id":5}"#).expect("e"));
    assert_eq!(decode_request(&f).expect_err("bad").code, ErrorCode::Invalid);
    let f = frame(&encode_raw(Kind::Reply, 3, br#"{"type":"ok"}"#).expect("e"));
    let e = decode_request(&f).expect_err("kind");
    assert_eq!((e.code, e.msg.as_str()), (ErrorCode::Invalid, "expected a request frame, got a reply frame"));

    let mut s = Session::new("a", &[], 1 << 20);
    s.take(hello_frame([1, 1])).expect("hello");
    let f = frame(&encode_raw(Kind::Request, 9, br#"{"type":"frobnicate"}"#).expect("e"));
    assert!(matches!(s.take(f).expect("take"), Incoming::Refused { id: 9, .. }));
    assert!(matches!(s.take(hello_frame([1, 1])).expect("take"), Incoming::Refused { id: 0, .. }));
    let out = queued(&mut s);
    assert_eq!((out[1].id, out[1].error().expect("e").code), (9, ErrorCode::Unsupported));
    assert_eq!(out[2].error().expect("e").msg, "a second Hello on one connection");
}

#[test]
fn an_oversized_frame_gets_an_error_then_close() {
    let (a, b) = UnixStream::pair().expect("pair");
    a.set_nonblocking(true).expect("nonblock");
    let mut s = Session::new("a", &[], 1 << 20);
    nix::unistd::write(&b, &u32::MAX.to_le_bytes()).expect("write");
    let got = s.read(&a).expect("read");
    assert_eq!(got, Some(Incoming::Close("frame of 4294967295 bytes over the 4 MiB limit".into())));
    assert!(s.flush(&a).expect("flush"));
    let e = read_frame(&b, Instant::now() + Duration::from_secs(5)).expect("error").error().expect("body");
    assert_eq!(e.code, ErrorCode::Invalid);
}

#[test]
fn the_write_queue_is_bounded() {
    let mut q = WriteQueue::new(10);
    q.push(b"12345678").expect("fits");
    let e = q.push(b"abc").expect_err("full");
    assert_eq!(e.to_string(), "write queue full (8 + 3 bytes over its 10): the peer stopped reading");
    assert_eq!(q.len(), 8);
    let (a, b) = UnixStream::pair().expect("pair");
    assert!(q.flush(&a).expect("flush"));
    let mut buf = [0u8; 16];
    assert_eq!(nix::unistd::read(&b, &mut buf).expect("read"), 8);
    drop(b);
    q.push(b"x").expect("push");
    assert!(q.flush(&a).is_err(), "EPIPE, not SIGPIPE");
}

/// A Session-served agent in a thread: one connection, Ping → Pong,
/// Stats → an unsupported error.
#[test]
fn client_and_session_agree() {
    let (host, guest) = UnixStream::pair().expect("pair");
    let t = std::thread::spawn(move || {
        guest.set_nonblocking(true).expect("nonblock");
        let mut s = Session::new("agent 0.1", &[], 1 << 20);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            match s.read(&guest) {
                Ok(Some(Incoming::Request { id, req: Request::Ping })) => s.reply(id, &Reply::Pong).expect("reply"),
                Ok(Some(Incoming::Request { id, .. })) => s.error(id, ErrorCode::Unsupported, "not here").expect("error"),
                Ok(Some(_)) | Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(Error::Closed) => return,
                Err(e) => panic!("{e}"),
            }
            s.flush(&guest).expect("flush");
        }
        panic!("the host never closed");
    });
    let (mut c, w) = Client::connect(host, Role::Control, "host", Instant::now() + Duration::from_secs(5)).expect("connect");
    assert_eq!(w.agent, "agent 0.1");
    assert_eq!(c.call(&Request::Ping, Duration::from_secs(5)).expect("ping"), Reply::Pong);
    let e = c.call(&Request::Stats { id: "x".into() }, Duration::from_secs(5)).expect_err("stats");
    assert!(matches!(e, Error::Agent { code: ErrorCode::Unsupported, .. }), "{e}");
    drop(c);
    t.join().expect("agent");
}

/// A version mismatch as the host sees it from a real Session.
#[test]
fn client_reads_a_sessions_version_error() {
    let (host, guest) = UnixStream::pair().expect("pair");
    let t = std::thread::spawn(move || {
        let f = read_frame(&guest, Instant::now() + Duration::from_secs(5)).expect("hello");
        let mut bad = f.request().expect("hello");
        if let Request::Hello { proto, .. } = &mut bad {
            *proto = [2, 3];
        }
        let mut s = Session::new("a", &[], 1 << 20);
        let f = frame(&encode(Kind::Request, 0, &bad).expect("e"));
        assert!(matches!(s.take(f).expect("take"), Incoming::Close(_)));
        s.flush(&guest).expect("flush");
    });
    let e = Client::connect(host, Role::Control, "h", Instant::now() + Duration::from_secs(5)).expect_err("version");
    assert_eq!(e.to_string(), "agent speaks protocol 1, we speak 1");
    t.join().expect("agent");
    // The pre-encoded Hello the VMM's links send is the Client's own.
    let role = Role::Stream { container: "c".into(), exec: None, which: Which::Stdin };
    let f = frame(&hello_bytes(role.clone(), "rpc-vmm").expect("hello"));
    assert_eq!(f.request().expect("hello"), Request::Hello { proto: [PROTO, PROTO], role, client: "rpc-vmm".into() });
}

#[test]
fn a_huge_error_message_is_cut_at_a_char_boundary() {
    let mut s = Session::new("a", &[], 1 << 20);
    let msg = "é".repeat(100_000);
    s.error(3, ErrorCode::Failed, &msg).expect("queued");
    let e = queued(&mut s).remove(0).error().expect("error");
    assert!(e.msg.len() <= 64 << 10 && e.msg.len() > 60_000, "{}", e.msg.len());
    assert!(e.msg.chars().all(|c| c == 'é'));
}

#[test]
fn roles_are_checked() {
    let hello =
        |role: Role| frame(&encode(Kind::Request, HELLO_ID, &Request::Hello { proto: [1, 1], role, client: "t".into() }).expect("e"));
    let mut s = Session::new("a", &[], 1 << 20).only_roles(&["control", "wait"]);
    let stream = Role::Stream { container: "c".into(), exec: None, which: Which::Stdout };
    assert_eq!(s.take(hello(stream)).expect("take"), Incoming::Close("stream connections are not served here".into()));
    assert_eq!(queued(&mut s).remove(0).error().expect("error").code, ErrorCode::Unsupported);
    let mut s = Session::new("a", &[], 1 << 20).only_roles(&["control", "wait"]);
    assert!(matches!(s.take(hello(Role::Wait { container: "c".into(), exec: None })).expect("take"), Incoming::Hello(_)));

    let mut s = Session::new("a", &[], 1 << 20);
    let e = s.take(hello(Role::Events { container: String::new() })).expect("take");
    assert_eq!(e, Incoming::Close("events connection without a container id".into()));
    let mut s = Session::new("a", &[], 1 << 20);
    let e = s.take(hello(Role::Wait { container: "c".into(), exec: Some(String::new()) })).expect("take");
    assert_eq!(e, Incoming::Close("wait connection of container \"c\" with an empty exec id".into()));
}
