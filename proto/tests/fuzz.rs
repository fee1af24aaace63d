//! Fuzz targets of rpc-proto (testkit's harness on the stable toolchain):
//! everything a guest (or a host) can put on the wire.
//!
//! - `frame_bytes`: arbitrary bytes in random chunkings through
//!   FrameReader (and the same bytes through a socket and `read_from`):
//!   no panic, the same frames and error either way, memory bounded by
//!   the frame limit.
//! - `frame_json`: valid bodies of every message mutated as JSON, decoded
//!   as each kind and by the agent's Session: never a panic, and what
//!   decodes re-encodes to the same message.
//! - `host_client`: the host Client against a fake agent that answers with
//!   mutated frames (kinds, ids, lengths, bodies, cuts): every step ends
//!   by its deadline (+1 s), never a panic.
//!
//! `cargo test --profile ci -p rpc-proto --test fuzz`: 2 s a target with
//! a fixed seed; longer with `RPC_FUZZ_SECS`, `RPC_FUZZ_SEED=time`.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rpc_proto::client::{Client, HELLO_ID};
use rpc_proto::frame::{encode, Frame, FrameReader, HEADER};
use rpc_proto::msg::{ErrorBody, ErrorCode, Event, Iface, Kind, Reply, Request, Role, Route, SandboxNs, Which, MAX_FRAME, PROTO};
use rpc_proto::server::{Incoming, Session};
use rpc_proto::Error;
use serde_json::{json, Value};
use testkit::fuzz::{self, Budget, Kind as MKind, Mutator};

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-corpus").join(target)
}

fn budget() -> Budget {
    Budget::from_env(2.0)
}

fn requests() -> Vec<Request> {
    let c = || "c1".to_string();
    vec![
        Request::Hello { proto: [PROTO, PROTO], role: Role::Control, client: "rpc-runv 0.1".into() },
        Request::Hello {
            proto: [1, 3],
            role: Role::Stream { container: c(), exec: Some("e1".into()), which: Which::Tty },
            client: "rpc-vmm".into(),
        },
        Request::Hello { proto: [1, 1], role: Role::Wait { container: c(), exec: None }, client: "x".into() },
        Request::Hello { proto: [1, 1], role: Role::Events { container: c() }, client: "x".into() },
        Request::Ping,
        Request::ConfigureNetwork {
            ifaces: vec![Iface { name: "eth0".into(), mac: "aa:bb:cc:dd:ee:ff".into(), mtu: 1500, addrs: vec!["10.88.0.5/16".into()] }],
            routes: vec![Route { dest: "default".into(), gateway: Some("10.88.0.1".into()), dev: "eth0".into() }],
            dns: Some(vec!["nameserver 10.0.0.2".into()]),
        },
        Request::Create {
            id: c(),
            config: json!({"ociVersion": "1.0.2", "process": {"args": ["sh"], "cwd": "/"}, "root": {"path": "/run/rpc/shared/c1/rootfs"}}),
            sandbox: true,
            ns_from_sandbox: vec![SandboxNs::Ipc, SandboxNs::Uts, SandboxNs::Pid],
            sandbox_id: Some("pod".into()),
            terminal: false,
        },
        Request::Start { id: c() },
        Request::Exec { id: c(), exec_id: "e1".into(), process: json!({"args": ["ls"], "env": ["A=b"]}), terminal: true },
        Request::Signal { id: c(), exec_id: Some("e1".into()), sig: 15, all: true },
        Request::Resize { id: c(), exec_id: None, rows: 24, cols: 80 },
        Request::CloseStdin { id: c(), exec_id: None },
        Request::Stats { id: c() },
        Request::Update { id: c(), resources: json!({"memory": {"limit": 1048576}}) },
        Request::Pause { id: c() },
        Request::Resume { id: c() },
        Request::Pids { id: c() },
        Request::Ps { id: c(), args: vec!["-ef".into()] },
        Request::Delete { id: c(), force: true },
        Request::Shutdown { status: 0 },
    ]
}

fn replies() -> Vec<Reply> {
    vec![
        Reply::Welcome { proto: PROTO, agent: "rpc-agent 0.1".into(), features: vec!["stats".into()] },
        Reply::Ok,
        Reply::Pong,
        Reply::Created { guest_pid: 42 },
        Reply::Execed { guest_pid: 43 },
        Reply::Stats { stats: Default::default() },
        Reply::Pids { pids: vec![1, 2, 3] },
        Reply::Ps { lines: vec!["PID CMD".into(), "1 sh".into()] },
    ]
}

fn events() -> Vec<Event> {
    vec![Event::Exit { status: 137, signal: Some(9) }, Event::Exit { status: 0, signal: None }, Event::Oom { count: 3 }]
}

fn errors() -> Vec<ErrorBody> {
    [ErrorCode::NotFound, ErrorCode::Invalid, ErrorCode::Failed, ErrorCode::Unsupported, ErrorCode::Busy, ErrorCode::Version]
        .into_iter()
        .map(|code| ErrorBody { code, msg: "exec: \"x\": executable file not found in $PATH".into() })
        .collect()
}

const DICT: &[&str] = &[
    "hello",
    "control",
    "stream",
    "wait",
    "events",
    "stdin",
    "stdout",
    "stderr",
    "tty",
    "welcome",
    "ok",
    "pong",
    "created",
    "execed",
    "stats",
    "pids",
    "ps",
    "exit",
    "oom",
    "not_found",
    "invalid",
    "failed",
    "unsupported",
    "busy",
    "version",
    "type",
    "role",
    "which",
    "proto",
    "id",
    "exec_id",
    "guest_pid",
    "status",
    "signal",
    "code",
    "msg",
];

/// Arbitrary bytes in chunkings taken from the input itself: the frames
/// and the error must not depend on how reads split the stream.
#[test]
fn frame_bytes() {
    let mut seeds = Vec::new();
    let mut all = Vec::new();
    for (i, r) in requests().iter().enumerate() {
        let f = encode(Kind::Request, i as u32, r).expect("encode");
        all.extend_from_slice(&f);
        seeds.push(f);
    }
    for r in replies() {
        all.extend(encode(Kind::Reply, 7, &r).expect("encode"));
    }
    for e in events() {
        all.extend(encode(Kind::Event, 0, &e).expect("encode"));
    }
    for e in errors() {
        all.extend(encode(Kind::Error, 9, &e).expect("encode"));
    }
    seeds.push(all);
    seeds.push(u32::MAX.to_le_bytes().to_vec());
    seeds.push([&(MAX_FRAME).to_le_bytes()[..], &[2, 1, 0, 0, 0], b"{}"].concat());
    let m = Mutator::new(MKind::Bytes, 32 << 10, DICT, &seeds);
    fuzz::run("proto-frame-bytes", &corpus("frame_bytes"), &seeds, &m, &budget(), |data| {
        let whole = read_all(data, &[data.len().max(1)]);
        // Chunk sizes from the data's own bytes: 1..=16, and some large.
        let sizes: Vec<usize> =
            data.iter().take(64).map(|b| if b & 0x80 != 0 { 1 + (*b as usize) * 31 } else { 1 + (*b as usize & 15) }).collect();
        let chunked = read_all(data, if sizes.is_empty() { &[1] } else { &sizes });
        assert_eq!(whole, chunked, "frames depend on the chunking");
        let sock = read_socket(data);
        assert_eq!(whole, sock, "read_from differs from push");
        whole.0.iter().for_each(decode_every_way);
        !whole.0.is_empty()
    });
}

/// (the frames, the error's text or "" at a clean end)
type Outcome = (Vec<Frame>, String);

fn read_all(data: &[u8], sizes: &[usize]) -> Outcome {
    let mut r = FrameReader::new();
    let mut frames = Vec::new();
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes[i % sizes.len()].min(rest.len());
        i += 1;
        let mut chunk = &rest[..n];
        rest = &rest[n..];
        while !chunk.is_empty() {
            match r.push(chunk) {
                Ok((taken, f)) => {
                    assert!(taken > 0 && taken <= chunk.len());
                    chunk = &chunk[taken..];
                    assert!(r.held() <= HEADER + MAX_FRAME as usize, "holds {}", r.held());
                    if let Some(f) = f {
                        assert!(f.body.len() + 5 <= MAX_FRAME as usize);
                        frames.push(f);
                    }
                }
                Err(e) => return (frames, e.to_string()),
            }
        }
    }
    let end = r.finish().err().map(|e| e.to_string()).unwrap_or_default();
    (frames, end)
}

/// The same bytes through a socketpair and `read_from` (the peer closed).
fn read_socket(data: &[u8]) -> Outcome {
    let (a, mut b) = UnixStream::pair().expect("pair");
    b.write_all(data).expect("fits in the socket buffer");
    drop(b);
    a.set_nonblocking(true).expect("nonblock");
    let mut r = FrameReader::new();
    let mut frames = Vec::new();
    loop {
        match r.read_from(&a) {
            Ok(Some(f)) => frames.push(f),
            Ok(None) => panic!("EAGAIN on a closed socketpair"),
            Err(Error::Closed) => return (frames, String::new()),
            Err(e) => return (frames, e.to_string()),
        }
    }
}

/// Decoding a frame any way: no panic; what decodes re-encodes to the
/// same message (floats within an ulp or two: serde_json's default float
/// parsing is not exactly round-trip).
fn decode_every_way(f: &Frame) {
    fn again<T: serde::Serialize + serde::de::DeserializeOwned>(m: &T, kind: Kind, id: u32, dec: fn(&Frame) -> rpc_proto::Result<T>) {
        let bytes = encode(kind, id, m).expect("a decoded message encodes");
        let (n, back) = FrameReader::new().push(&bytes).expect("re-read");
        assert_eq!(n, bytes.len());
        let back = dec(&back.expect("one frame")).expect("round trip decodes");
        let (a, b) = (serde_json::to_value(m).expect("value"), serde_json::to_value(&back).expect("value"));
        assert!(same(&a, &b), "round trip changed {a} into {b}");
    }
    for kind in [Kind::Request, Kind::Reply, Kind::Event, Kind::Error] {
        let g = Frame { kind, id: f.id, body: f.body.clone() };
        if let Ok(r) = g.request() {
            again(&r, kind, f.id, Frame::request);
        }
        if let Ok(r) = g.reply() {
            again(&r, kind, f.id, Frame::reply);
        }
        if let Ok(e) = g.event() {
            again(&e, kind, f.id, Frame::event);
        }
        if let Ok(e) = g.error() {
            again(&e, kind, f.id, Frame::error);
        }
        // The agent's side: before and after a Hello.
        let mut s = Session::new("fuzz", &[], 1 << 20);
        if let Ok(Incoming::Hello(_)) = s.take(g.clone()) {
            let _ = s.take(g.clone());
        }
    }
}

/// Equal JSON, floats within a relative 1e-14.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y || ((x - y) / x.abs().max(y.abs())).abs() < 1e-14,
            _ => false,
        },
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y)),
        (Value::Object(x), Value::Object(y)) => x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w))),
        _ => a == b,
    }
}

/// Valid bodies of every message, mutated token-wise: decoding (and the
/// agent's Session) never panics, and what decodes round-trips.
#[test]
fn frame_json() {
    let mut seeds: Vec<Vec<u8>> = Vec::new();
    seeds.extend(requests().iter().map(|r| serde_json::to_vec(r).expect("json")));
    seeds.extend(replies().iter().map(|r| serde_json::to_vec(r).expect("json")));
    seeds.extend(events().iter().map(|r| serde_json::to_vec(r).expect("json")));
    seeds.extend(errors().iter().map(|r| serde_json::to_vec(r).expect("json")));
    let m = Mutator::new(MKind::Json, 64 << 10, DICT, &seeds);
    fuzz::run("proto-frame-json", &corpus("frame_json"), &seeds, &m, &budget(), |body| {
        let f = Frame { kind: Kind::Request, id: 5, body: body.to_vec() };
        decode_every_way(&f);
        f.request().is_ok() || f.reply().is_ok() || f.event().is_ok() || f.error().is_ok()
    });
}

/// The fake agent's answer, described as JSON so that the JSON mutator
/// changes kinds, ids, lengths and bodies rather than breaking framing
/// at random only: `frames: [{kind, id, body, len_delta?}], cut, open`.
fn agent_bytes(script: &Value) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    for f in script.get("frames").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]) {
        let kind = f.get("kind").and_then(Value::as_u64).unwrap_or(2) as u8;
        let id = f.get("id").and_then(Value::as_u64).unwrap_or(0) as u32;
        let body = match f.get("body") {
            Some(Value::String(s)) => s.as_bytes().to_vec(),
            Some(v) => serde_json::to_vec(v).unwrap_or_default(),
            None => Vec::new(),
        };
        let delta = f.get("len_delta").and_then(Value::as_i64).unwrap_or(0);
        let len = (5 + body.len() as i64 + delta) as u32;
        out.extend_from_slice(&len.to_le_bytes());
        out.push(kind);
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(&body);
    }
    let cut = script.get("cut").and_then(Value::as_u64).unwrap_or(0) as usize;
    out.truncate(out.len().saturating_sub(cut));
    out.truncate(64 << 10);
    (out, script.get("open").and_then(Value::as_bool).unwrap_or(false))
}

/// Runs `f`, asserting it ended by `deadline` + 1 s.
fn timed<T>(deadline: Instant, f: impl FnOnce() -> T) -> T {
    let r = f();
    let late = Instant::now().saturating_duration_since(deadline);
    assert!(late < Duration::from_secs(1), "returned {late:?} after its deadline");
    r
}

#[test]
fn host_client() {
    let frame = |kind: u8, id: u32, body: Value| json!({"kind": kind, "id": id, "body": body});
    let welcome = frame(2, HELLO_ID, serde_json::to_value(&replies()[0]).expect("json"));
    let mut seeds = Vec::new();
    let mut script = vec![welcome.clone()];
    for (i, r) in replies().iter().enumerate().skip(1) {
        script.push(frame(2, i as u32, serde_json::to_value(r).expect("json")));
        script.push(frame(3, 0, serde_json::to_value(&events()[i % 3]).expect("json")));
    }
    seeds.push(json!({"frames": script, "cut": 0, "open": false}));
    seeds.push(json!({"frames": [welcome, frame(4, 1, serde_json::to_value(&errors()[0]).expect("json"))], "cut": 0, "open": true}));
    seeds.push(json!({"frames": [frame(4, 0, serde_json::to_value(&errors()[5]).expect("json"))], "cut": 3, "open": false}));
    seeds.push(json!({"frames": [{"kind": 2, "id": 0, "body": "{\"type\":\"welcome\"", "len_delta": 1_000_000}], "open": false}));
    let seeds: Vec<Vec<u8>> = seeds.iter().map(|s| serde_json::to_vec(s).expect("json")).collect();
    let m = Mutator::new(MKind::Json, 16 << 10, DICT, &seeds);
    fuzz::run("proto-host-client", &corpus("host_client"), &seeds, &m, &budget(), |input| {
        let Ok(script) = serde_json::from_slice::<Value>(input) else { return false };
        let (bytes, open) = agent_bytes(&script);
        let (host, mut agent) = UnixStream::pair().expect("pair");
        agent.write_all(&bytes).expect("fits in the socket buffer");
        // The agent stays (it never reads: our few requests fit in the
        // socket buffer); closed means its side shut for writing, so the
        // client reads the bytes and then an end of file.
        if !open {
            agent.shutdown(std::net::Shutdown::Write).expect("shutdown");
        }
        let wait = Duration::from_millis(if open { 30 } else { 2000 });
        let deadline = Instant::now() + wait;
        let Ok((mut c, _)) = timed(deadline, || Client::connect(host, Role::Control, "fuzz", deadline)) else { return false };
        let mut accepted = true;
        for _ in 0..3 {
            let deadline = Instant::now() + wait;
            accepted &= timed(deadline, || c.call(&Request::Ping, wait)).is_ok();
            let deadline = Instant::now() + wait;
            let _ = timed(deadline, || c.next_event(deadline));
        }
        drop(agent);
        accepted
    });
}
