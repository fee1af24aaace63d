//! Fuzz target `agent_dispatch` (testkit's harness, stable toolchain):
//! the agent's dispatcher fed mutated frame sequences on a connection,
//! with a fake executor that starts nothing (its calls end as the fuzzer
//! says, its pid files name processes that do not exist). Requests before
//! the Hello, unknown ids and types, duplicate ids, streams and waits for
//! anything: the agent must never panic, and must still answer a Ping on
//! a new connection afterwards.
//!
//! An input is JSON `[[kind, id, body], ...]` (each becomes a frame, its
//! body's JSON text as is; a kind outside 1..=4 too); input that is not
//! that goes to the connection as raw bytes.
//!
//! `cargo test --profile ci -p rpc-agent --test fuzz`: 2 s with a fixed seed;
//! `RPC_FUZZ_SECS`, `RPC_FUZZ_SEED=time` for longer runs.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Instant;

mod common;

use common::{Fake, Spawns};
use rpc_agent::{Agent, Config};
use rpc_proto::msg::{Kind, Reply, Request, Role, Which};
use serde_json::{json, Value};
use testkit::fuzz::{self, Budget, Mutator};

fn frame(kind: u8, id: u32, body: &[u8]) -> Vec<u8> {
    let mut v = ((5 + body.len()) as u32).to_le_bytes().to_vec();
    v.push(kind);
    v.extend_from_slice(&id.to_le_bytes());
    v.extend_from_slice(body);
    v
}

/// The bytes an input stands for.
fn wire(input: &[u8]) -> Vec<u8> {
    let Ok(Value::Array(frames)) = serde_json::from_slice::<Value>(input) else { return input.to_vec() };
    let mut out = Vec::new();
    for f in frames {
        let kind = f.get(0).and_then(Value::as_u64).unwrap_or(1) as u8;
        let id = f.get(1).and_then(Value::as_u64).unwrap_or(0) as u32;
        let body = f.get(2).map(|b| b.to_string()).unwrap_or_default();
        out.extend(frame(kind, id, body.as_bytes()));
    }
    out
}

/// Runs one connection's bytes through a fresh agent; the fake's calls
/// end (status by `seed`), some made-up processes exit.
fn run_one(dir: &Path, input: &[u8]) -> bool {
    let spawned = Spawns::default();
    let cfg = Config { runtime: "/nonexistent/rpc-runc".into(), root: dir.join("root"), state: dir.join("state") };
    let mut agent = Agent::new(cfg, Box::new(Fake::new(spawned.clone()))).unwrap();
    let (a, mut b) = UnixStream::pair().unwrap();
    agent.adopt(a.into()).unwrap();
    b.set_nonblocking(true).unwrap();
    let bytes = wire(input);
    // As much as the socket takes (inputs are small; the rest is dropped).
    let mut off = 0;
    while off < bytes.len() {
        match b.write(&bytes[off..]) {
            Ok(n) => off += n,
            Err(_) => break,
        }
        agent.turn(0).unwrap();
    }
    let _ = b.shutdown(std::net::Shutdown::Write);
    let mut got = Vec::new();
    let mut sink = [0u8; 65536];
    let mut status = input.len() as i32;
    for round in 0..32 {
        agent.turn(0).unwrap();
        let pids: Vec<i32> = spawned.borrow_mut().drain(..).collect();
        for pid in pids {
            status = status.wrapping_mul(31).wrapping_add(pid);
            agent.child_exited(pid, ((status & 3) * (status & 1), None));
        }
        // Processes of the pid files end now and then.
        if round % 4 == 3 {
            for n in 0..16 {
                agent.child_exited(2_000_000 + n, (n % 3, None));
            }
        }
        while let Ok(n) = b.read(&mut sink) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&sink[..n]);
        }
    }
    // Still serving: a new connection gets its Pong.
    let (a2, mut b2) = UnixStream::pair().unwrap();
    agent.adopt(a2.into()).unwrap();
    let hello = Request::Hello { proto: [1, 1], role: Role::Control, client: "fuzz".into() };
    b2.write_all(&rpc_proto::frame::encode(Kind::Request, 1, &hello).unwrap()).unwrap();
    b2.write_all(&rpc_proto::frame::encode(Kind::Request, 2, &Request::Ping).unwrap()).unwrap();
    let mut reader = rpc_proto::frame::FrameReader::new();
    let mut frames = Vec::new();
    let t0 = Instant::now();
    b2.set_nonblocking(true).unwrap();
    while frames.len() < 2 {
        assert!(t0.elapsed().as_secs() < 5, "no Pong on a new connection");
        agent.turn(0).unwrap();
        if let Ok(n) = b2.read(&mut sink) {
            frames.extend(reader.feed(&sink[..n]).unwrap());
        }
    }
    assert_eq!(frames[1].reply().unwrap(), Reply::Pong);
    // Accepted: the agent answered something beyond errors.
    let mut r = rpc_proto::frame::FrameReader::new();
    r.feed(&got).map(|fs| fs.iter().any(|f| f.kind == Kind::Reply)).unwrap_or(false)
}

fn seq(frames: &[(u8, u32, Value)]) -> Vec<u8> {
    serde_json::to_vec(&frames.iter().map(|(k, i, b)| json!([k, i, b])).collect::<Vec<_>>()).unwrap()
}

fn hello(role: Value) -> Value {
    let mut h = json!({ "type": "hello", "proto": [1, 1], "client": "fuzz" });
    if let (Some(h), Some(r)) = (h.as_object_mut(), role.as_object()) {
        h.extend(r.clone());
    }
    h
}

#[test]
fn fuzz_agent_dispatch() {
    let dir = std::env::temp_dir().join(format!("rpc-agent-fuzz-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = json!({ "ociVersion": "1.0.2", "process": { "args": ["sh"], "cwd": "/" }, "root": { "path": "/" }, "linux": {} });
    let ctl = hello(json!({ "role": "control" }));
    let create = |id: &str, terminal: bool| json!({ "type": "create", "id": id, "config": config, "sandbox": false, "ns_from_sandbox": [], "sandbox_id": null, "terminal": terminal });
    let seeds = vec![
        seq(&[
            (1, 1, ctl.clone()),
            (1, 2, create("c", false)),
            (1, 3, json!({ "type": "start", "id": "c" })),
            (1, 4, json!({ "type": "exec", "id": "c", "exec_id": "e", "process": { "args": ["true"] }, "terminal": false })),
            (1, 5, json!({ "type": "signal", "id": "c", "exec_id": "e", "sig": 15, "all": false })),
            (1, 6, json!({ "type": "stats", "id": "c" })),
            (1, 7, json!({ "type": "pids", "id": "c" })),
            (1, 8, json!({ "type": "ps", "id": "c", "args": ["-ef"] })),
            (1, 9, json!({ "type": "update", "id": "c", "resources": { "memory": { "limit": 1048576 } } })),
            (1, 10, json!({ "type": "pause", "id": "c" })),
            (1, 11, json!({ "type": "resume", "id": "c" })),
            (1, 12, json!({ "type": "close_stdin", "id": "c", "exec_id": null })),
            (1, 13, json!({ "type": "resize", "id": "c", "exec_id": null, "rows": 24, "cols": 80 })),
            (1, 14, json!({ "type": "delete", "id": "c", "force": true })),
            (1, 15, json!({ "type": "ping" })),
        ]),
        seq(&[
            (1, 1, ctl.clone()),
            (1, 2, create("t", true)),
            (1, 2, create("c2", false)),
            (
                1,
                3,
                json!({ "type": "create", "id": "p", "config": config, "sandbox": false, "ns_from_sandbox": ["ipc", "pid"], "sandbox_id": "c2", "terminal": false }),
            ),
            (1, 4, json!({ "type": "configure_network", "ifaces": [], "routes": [], "dns": null })),
            (1, 5, json!({ "type": "shutdown", "status": 3 })),
            (2, 6, json!({ "type": "pong" })),
        ]),
        seq(&[(
            1,
            0,
            hello(json!({ "role": "stream", "container": "c", "exec": null, "which": serde_json::to_value(Which::Stdin).unwrap() })),
        )]),
        seq(&[(1, 7, hello(json!({ "role": "wait", "container": "c", "exec": "e" })))]),
        seq(&[(1, 7, hello(json!({ "role": "events", "container": "c" })))]),
        seq(&[(1, 1, json!({ "type": "ping" })), (1, 1, ctl)]),
        frame(1, 1, b"{\"type\":\"hello\",\"proto\":[1,1],\"role\":\"control\",\"client\":\"x\"}"),
    ];
    let m = Mutator::new(
        fuzz::Kind::Json,
        16 << 10,
        &[
            "hello", "control", "stream", "wait", "events", "stdin", "stdout", "stderr", "tty", "create", "exec", "kill", "delete", "ipc",
            "uts", "pid",
        ],
        &seeds,
    );
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-corpus/agent_dispatch");
    fuzz::run("agent_dispatch", &corpus, &seeds, &m, &Budget::from_env(2.0), |input| run_one(&dir, input));
    let _ = std::fs::remove_dir_all(&dir);
}
