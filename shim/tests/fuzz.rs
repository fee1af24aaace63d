//! Fuzz targets of the shim (issue 19, "the suite"): everything it decodes
//! from containerd and from the runtime, with `testkit::fuzz` on the
//! stable toolchain. The task API requests as ttrpc delivers them
//! (protobuf), the runc `Options` in a Create's `Any`, `binary://` log
//! URIs, the runtime's `events --stats` JSON (to containerd's v1 and v2
//! metrics), its JSON log lines, and the options it saves in the bundle.
//!
//! `cargo test -p shim --test fuzz`: 2 s a target with a fixed seed;
//! `make fuzz` runs longer (`RPC_FUZZ_SECS`, `RPC_FUZZ_SEED=time`).

use std::path::{Path, PathBuf};

use containerd_shim::api::{CreateTaskRequest, ExecProcessRequest, KillRequest, Options, UpdateTaskRequest};
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::{Message, MessageField};
use containerd_shim::protos::shim::shim::{DeleteRequest, ResizePtyRequest, StartRequest, StateRequest, WaitRequest};
use containerd_shim::protos::types::mount::Mount;
use testkit::fuzz::{self, Budget, Kind, Mutator};

const MAX_LEN: usize = 64 << 10;

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-corpus").join(target)
}

fn budget() -> Budget {
    Budget::from_env(2.0)
}

fn options_seed() -> Vec<u8> {
    Options {
        binary_name: "/usr/local/bin/rpc-runc".into(),
        root: "/run/containerd/rpc-runc".into(),
        systemd_cgroup: true,
        no_pivot_root: true,
        no_new_keyring: true,
        shim_cgroup: "/shim".into(),
        io_uid: 1000,
        io_gid: 1000,
        criu_image_path: "/var/lib/criu".into(),
        task_api_address: "unix:///run/x.sock".into(),
        ..Default::default()
    }
    .write_to_bytes()
    .unwrap()
}

/// The Create request containerd sends, as ttrpc hands it over.
fn create_seed() -> Vec<u8> {
    CreateTaskRequest {
        id: "c1".into(),
        bundle: "/run/containerd/io.containerd.runtime.v2.task/default/c1".into(),
        rootfs: vec![Mount {
            type_: "overlay".into(),
            source: "overlay".into(),
            options: vec!["lowerdir=/a:/b".into(), "upperdir=/u".into(), "workdir=/w".into()],
            ..Default::default()
        }],
        terminal: false,
        stdin: "/run/fifo/stdin".into(),
        stdout: "binary:///bin/logger?a=b&c=%20d".into(),
        stderr: "file:///var/log/c1.log".into(),
        options: MessageField::some(Any { type_url: "containerd.runc.v1.Options".into(), value: options_seed(), ..Default::default() }),
        ..Default::default()
    }
    .write_to_bytes()
    .unwrap()
}

/// Every protobuf the shim takes from containerd: a Create's `Options`,
/// and the task API requests.
#[test]
fn fuzz_shim_protobuf_decoding() {
    let exec = ExecProcessRequest {
        id: "c1".into(),
        exec_id: "e1".into(),
        terminal: true,
        spec: MessageField::some(Any {
            type_url: "types.containerd.io/opencontainers/runtime-spec/1/Process".into(),
            value: br#"{"args":["sh"],"cwd":"/"}"#.to_vec(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let update = UpdateTaskRequest {
        id: "c1".into(),
        resources: MessageField::some(Any {
            type_url: "x".into(),
            value: br#"{"memory":{"limit":1048576}}"#.to_vec(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let seeds = vec![
        options_seed(),
        create_seed(),
        exec.write_to_bytes().unwrap(),
        update.write_to_bytes().unwrap(),
        KillRequest { id: "c1".into(), exec_id: "e1".into(), signal: 9, all: true, ..Default::default() }.write_to_bytes().unwrap(),
        ResizePtyRequest { id: "c1".into(), exec_id: "e1".into(), width: 80, height: 24, ..Default::default() }.write_to_bytes().unwrap(),
    ];
    let m = Mutator::new(Kind::Bytes, MAX_LEN, &["containerd.runc.v1.Options", "/", "binary://", "file://"], &seeds);
    fuzz::run("shim-protobuf", &corpus("protobuf"), &seeds, &m, &budget(), |data| {
        let mut ok = false;
        for url in ["containerd.runc.v1.Options", "type.googleapis.com/containerd.runc.v1.Options"] {
            let any = Any { type_url: url.into(), value: data.to_vec(), ..Default::default() };
            ok |= shim::service::decode_options(Some(&any)).is_ok();
        }
        // CRI's options of other runtime types are not decoded at all.
        let any = Any { type_url: "runtimeoptions.v1.Options".into(), value: data.to_vec(), ..Default::default() };
        assert!(shim::service::decode_options(Some(&any)).is_ok());
        if let Ok(req) = CreateTaskRequest::parse_from_bytes(data) {
            ok = true;
            let _ = shim::service::decode_options(req.options.as_ref());
            for uri in [&req.stdout, &req.stderr] {
                let _ = shim::io::parse_binary_uri(uri);
            }
        }
        ok |= ExecProcessRequest::parse_from_bytes(data).is_ok();
        ok |= UpdateTaskRequest::parse_from_bytes(data).is_ok();
        ok |= KillRequest::parse_from_bytes(data).is_ok();
        ok |= ResizePtyRequest::parse_from_bytes(data).is_ok();
        let _ = StartRequest::parse_from_bytes(data);
        let _ = DeleteRequest::parse_from_bytes(data);
        let _ = StateRequest::parse_from_bytes(data);
        let _ = WaitRequest::parse_from_bytes(data);
        ok
    });
}

/// `binary://` log URIs (a Create's stdout and stderr).
#[test]
fn fuzz_shim_binary_uri() {
    let seeds: Vec<Vec<u8>> = ["binary:///bin/logger?a=b&c=%20d", "binary:///usr/bin/x?id=%2F%2e%2E&+=+", "binary:///p", "binary://rel?x"]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
    let m = Mutator::new(Kind::Bytes, 4096, &["%", "%2", "%zz", "%ff", "&", "=", "?", "+", "binary://", "é"], &seeds);
    fuzz::run("shim-binary-uri", &corpus("binary-uri"), &seeds, &m, &budget(), |data| {
        let s = String::from_utf8_lossy(data);
        shim::io::parse_binary_uri(&s).is_ok()
    });
}

/// The runtime's `events --stats` output (mapped to containerd's metrics)
/// and its JSON log lines (a failure's message for containerd).
#[test]
fn fuzz_shim_runtime_output() {
    let stats = br#"{"type":"stats","id":"c1","data":{"cpu":{"usage":{"total":1000,"percpu":[500,500],"kernel":100,"user":900},"throttling":{"periods":1,"throttledPeriods":1,"throttledTime":5}},"memory":{"usage":{"limit":1048576,"usage":4096,"max":8192,"failcnt":0},"swap":{"limit":0,"usage":0},"kernel":{"usage":1},"kernelTCP":{"usage":0},"raw":{"cache":1,"rss":2,"pgfault":3}},"pids":{"current":2,"limit":100},"blkio":{"ioServiceBytesRecursive":[{"major":8,"minor":0,"op":"Read","value":4096}]},"hugetlb":{"2MB":{"usage":0,"max":0,"failcnt":0}}}}"#.to_vec();
    let log = br#"{"level":"error","msg":"container_linux.go: starting container process caused: exec: \"x\": executable file not found in $PATH","time":"2026-01-01T00:00:00Z"}
{"level":"warning","msg":"w","time":"t"}
{"level":"fatal","msg":"boom"}
"#
    .to_vec();
    let seeds = vec![stats, log];
    let m = Mutator::new(Kind::Json, MAX_LEN, &["stats", "oom", "error", "fatal", "panic", "usage", "percpu", "hugetlb"], &seeds);
    fuzz::run("shim-runtime-output", &corpus("runtime-output"), &seeds, &m, &budget(), |data| {
        let a = shim::metrics::from_runtime_stats(data).is_ok();
        let b = shim::metrics::from_runtime_stats_v2(data).is_ok();
        let c = !shim::runtime::log_errors(&String::from_utf8_lossy(data)).is_empty();
        a || b || c
    });
}

/// The runtime options the shim saves in the bundle and reads back (a
/// bundle dir containerd made; the file may have been tampered with), and
/// the annotation that groups a pod's containers in one shim.
#[test]
fn fuzz_shim_saved_options() {
    let dir = std::env::temp_dir().join(format!("rpc-fuzz-shim-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let seeds = vec![
        br#"{"binary":"/usr/bin/rpc-runc","root":"/run/containerd/rpc-runc/default","systemd_cgroup":false,"no_pivot_root":false,"no_new_keyring":false,"log":"/b/log.json","io_owner":[1000,1000]}"#.to_vec(),
        br#"{"binary":"rpc-runc","root":"/r","log":"/l","io_owner":null}"#.to_vec(),
    ];
    let m = Mutator::new(Kind::Json, MAX_LEN, &["binary", "root", "log", "io_owner", "systemd_cgroup"], &seeds);
    fuzz::run("shim-saved-options", &corpus("saved-options"), &seeds, &m, &budget(), |data| {
        std::fs::write(dir.join(shim::runtime::SAVED), data).unwrap();
        shim::runtime::Runtime::load(&dir).is_ok()
    });
    let _ = std::fs::remove_dir_all(&dir);
}
