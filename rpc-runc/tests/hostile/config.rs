//! The hostile config.json table: every field of the runtime spec we
//! read, broken. A row is a patch of the default config and the words the
//! error must name.

use serde_json::{json, Value};

use super::patch::*;

/// One hostile config.
pub struct Row {
    pub name: &'static str,
    pub patch: Patch,
    /// Words the error must contain (all of them, case-insensitively; `a|b`
    /// is either).
    pub want: Vec<&'static str>,
    /// Issue 19's defect whose fix this row waits for.
    pub after: Option<u32>,
    /// Only `create` (a foreground `run` has a terminal, say).
    pub create_only: bool,
}

fn row(name: &'static str, patch: Patch, want: &[&'static str]) -> Row {
    Row { name, patch, want: want.to_vec(), after: None, create_only: false }
}

impl Row {
    /// Fails today because of issue 19's defect `n`, fixed elsewhere.
    fn after(mut self, n: u32) -> Row {
        self.after = Some(n);
        self
    }
    fn create_only(mut self) -> Row {
        self.create_only = true;
        self
    }
}

/// A user namespace mapping the kernel refuses (the rest of the config is
/// fine).
fn userns(uid: Value) -> Patch {
    All(vec![
        push("/linux/namespaces", json!({"type": "user"})),
        set("/linux/uidMappings", uid),
        set("/linux/gidMappings", json!([{"containerID": 0, "hostID": 100000, "size": 65536}])),
    ])
}

fn seccomp(v: Value) -> Patch {
    set("/linux/seccomp", v)
}

fn syscall_rule(rule: Value) -> Patch {
    seccomp(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule]}))
}

/// A device entry, `over` replacing members of a good one.
fn device(over: Value) -> Patch {
    let mut d = json!({"path": "/dev/hostile", "type": "c", "major": 1, "minor": 3, "fileMode": 438, "uid": 0, "gid": 0});
    for (k, v) in over.as_object().unwrap() {
        d[k] = v.clone();
    }
    push("/linux/devices", d)
}

/// A mount entry appended to the default ones: it is `mounts[7]`.
fn mount(m: Value) -> Patch {
    push("/mounts", m)
}

fn hook(kind: &'static str, h: Value) -> Patch {
    Set(
        match kind {
            "prestart" => "/hooks/prestart",
            "createRuntime" => "/hooks/createRuntime",
            "createContainer" => "/hooks/createContainer",
            "startContainer" => "/hooks/startContainer",
            "poststart" => "/hooks/poststart",
            _ => "/hooks/poststop",
        },
        json!([h]),
    )
}

/// The hostile config.json table.
pub fn config_rows() -> Vec<Row> {
    let big = "x".repeat(300);
    let long_host = "h".repeat(65);
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let mut rules = Vec::new();
    for i in 0..10_000u32 {
        rules.push(json!({"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": i, "op": "SCMP_CMP_EQ"}]}));
    }
    let many_maps: Vec<Value> = (0..400).map(|i| json!({"containerID": i, "hostID": 100000 + i, "size": 1})).collect();
    vec![
        // ----- the file itself -----
        row("config empty file", text(""), &["config.json", "line 1"]),
        row("config not json", text("{ociVersion: 1.0.2}"), &["config.json", "line 1"]),
        row("config truncated", text("{\"ociVersion\": \"1.0.2\", \"process\": {"), &["config.json", "line 1"]),
        row("config null", text("null"), &["config.json"]),
        row("config array", text("[1,2,3]"), &["config.json"]),
        row("config string", text("\"hello\""), &["config.json"]),
        row("config invalid utf-8", Bytes(b"{\"ociVersion\": \"1.0.2\xff\xfe\"}".to_vec()), &["config.json", "line 1"]),
        row("config nested 100000 deep", text(&deep), &["config.json", "recursion"]),
        row("config with a BOM", Bytes([&[0xefu8, 0xbb, 0xbf][..], b"{}"].concat()), &["config.json", "line 1"]),
        row("config is a directory", ConfigDir, &["config.json"]),
        row("config trailing garbage", text("{\"ociVersion\": \"1.0.2\"} x"), &["config.json", "line 1"]),
        // ----- ociVersion -----
        row("ociVersion number", set("/ociVersion", json!(1)), &["ociVersion"]),
        row("ociVersion empty", set("/ociVersion", json!("")), &["ociVersion"]),
        row("ociVersion major 2", set("/ociVersion", json!("2.0.0")), &["ociVersion"]),
        row("ociVersion not semver", set("/ociVersion", json!("1.0")), &["ociVersion"]),
        row("ociVersion letters", set("/ociVersion", json!("x.y.z")), &["ociVersion"]),
        row("ociVersion missing", del("/ociVersion"), &["ociVersion"]),
        // ----- root -----
        row("root missing", del("/root"), &["root"]),
        row("root not an object", set("/root", json!("rootfs")), &["root"]),
        row("root.path empty", set("/root/path", json!("")), &["root.path"]),
        row("root.path missing dir", set("/root/path", json!("no-such-rootfs")), &["root.path", "no-such-rootfs"]),
        row("root.path number", set("/root/path", json!(5)), &["root.path"]),
        row("root.path a file", set("/root/path", json!("/etc/hostname")), &["root.path", "not a directory"]),
        row("root.path with NUL", set("/root/path", json!("rootfs\u{0}x")), &["root.path"]),
        row("root.readonly string", set("/root/readonly", json!("yes")), &["root.readonly"]),
        // ----- process -----
        row("process missing", del("/process"), &["process"]),
        row("process an array", set("/process", json!([])), &["process"]),
        row("process.args empty", set("/process/args", json!([])), &["process.args"]),
        row("process.args missing", del("/process/args"), &["process.args"]),
        row("process.args a string", set("/process/args", json!("sh")), &["process.args"]),
        row("process.args[0] number", set("/process/args", json!([1])), &["process.args[0]"]),
        row("process.args[0] with NUL", set("/process/args", json!(["sh\u{0}x"])), &["process.args[0]"]),
        row("process.args[0] not found", set("/process/args", json!(["no-such-binary-xyz"])), &["no-such-binary-xyz", "not found"]),
        row("process.args[0] a directory", set("/process/args", json!(["/etc"])), &["/etc"]),
        row("process.cwd relative", set("/process/cwd", json!("relative/dir")), &["process.cwd"]),
        row("process.cwd empty", set("/process/cwd", json!("")), &["process.cwd"]),
        row("process.cwd number", set("/process/cwd", json!(7)), &["process.cwd"]),
        row("process.cwd missing", del("/process/cwd"), &["process.cwd"]),
        row("process.cwd a file", set("/process/cwd", json!("/etc/passwd")), &["/etc/passwd"]),
        row("process.cwd with NUL", set("/process/cwd", json!("/tmp\u{0}x")), &["process.cwd"]),
        row("process.env a string", set("/process/env", json!("PATH=/bin")), &["process.env"]),
        row("process.env[0] no =", set("/process/env", json!(["NOEQUALS"])), &["process.env[0]"]),
        row("process.env[1] number", set("/process/env", json!(["A=1", 5])), &["process.env[1]"]),
        row("process.env[0] with NUL", set("/process/env", json!(["A=b\u{0}c"])), &["process.env[0]"]),
        row("process.env[0] empty key", set("/process/env", json!(["=value"])), &["process.env[0]"]),
        row("process.terminal string", set("/process/terminal", json!("true")), &["process.terminal"]),
        row("process.terminal without console socket", set("/process/terminal", json!(true)), &["console socket"]).create_only(),
        row("process.user missing", del("/process/user"), &["process.user"]),
        row("process.user.uid negative", set("/process/user/uid", json!(-1)), &["process.user.uid"]),
        row("process.user.uid 2^32", set("/process/user/uid", json!(4294967296u64)), &["process.user.uid"]),
        row("process.user.uid string", set("/process/user/uid", json!("0")), &["process.user.uid"]),
        row("process.user.uid float", set("/process/user/uid", json!(1.5)), &["process.user.uid"]),
        row("process.user.gid negative", set("/process/user/gid", json!(-1)), &["process.user.gid"]),
        row(
            "process.user.additionalGids[0] negative",
            set("/process/user/additionalGids", json!([-5])),
            &["process.user.additionalGids[0]"],
        ),
        row("process.user.additionalGids string", set("/process/user/additionalGids", json!("1")), &["process.user.additionalGids"]),
        row("process.user.umask negative", set("/process/user/umask", json!(-1)), &["process.user.umask"]),
        row("process.user.umask 2^32", set("/process/user/umask", json!(4294967296u64)), &["process.user.umask"]),
        row("process.user.username number", set("/process/user/username", json!(3)), &["process.user.username"]),
        row("process.capabilities string", set("/process/capabilities", json!("all")), &["process.capabilities"]),
        row(
            "process.capabilities.bounding string",
            set("/process/capabilities/bounding", json!("CAP_KILL")),
            &["process.capabilities.bounding"],
        ),
        row(
            "process.capabilities.effective[0] number",
            set("/process/capabilities/effective", json!([5])),
            &["process.capabilities.effective"],
        ),
        row("process.rlimits object", set("/process/rlimits", json!({})), &["process.rlimits"]),
        row(
            "process.rlimits[0].type unknown",
            set("/process/rlimits", json!([{"type": "RLIMIT_NOPE", "hard": 1, "soft": 1}])),
            &["process.rlimits[0]", "RLIMIT_NOPE"],
        ),
        row(
            "process.rlimits[0].type number",
            set("/process/rlimits", json!([{"type": 7, "hard": 1, "soft": 1}])),
            &["process.rlimits[0].type"],
        ),
        row("process.rlimits[0].type missing", set("/process/rlimits", json!([{"hard": 1, "soft": 1}])), &["process.rlimits[0]", "type"]),
        row(
            "process.rlimits[0] soft above hard",
            set("/process/rlimits", json!([{"type": "RLIMIT_NOFILE", "hard": 10, "soft": 20}])),
            &["process.rlimits[0]", "soft"],
        ),
        row(
            "process.rlimits[0].hard negative",
            set("/process/rlimits", json!([{"type": "RLIMIT_NOFILE", "hard": -1, "soft": 1}])),
            &["process.rlimits[0].hard"],
        ),
        row(
            "process.rlimits[0].hard 2^64",
            set(
                "/process/rlimits",
                Value::Array(vec![serde_json::from_str(r#"{"type":"RLIMIT_NOFILE","hard":18446744073709551616,"soft":1}"#).unwrap()]),
            ),
            &["process.rlimits[0].hard"],
        ),
        row(
            "process.rlimits[1] duplicate",
            set(
                "/process/rlimits",
                json!([{"type": "RLIMIT_NOFILE", "hard": 10, "soft": 10}, {"type": "RLIMIT_NOFILE", "hard": 20, "soft": 20}]),
            ),
            &["process.rlimits[1]", "duplicate"],
        ),
        row(
            "process.rlimits[0] above the host's hard limit",
            set("/process/rlimits", json!([{"type": "RLIMIT_NOFILE", "hard": 1u64 << 40, "soft": 1u64 << 40}])),
            &["process.rlimits[0]", "RLIMIT_NOFILE"],
        ),
        row("process.noNewPrivileges string", set("/process/noNewPrivileges", json!("yes")), &["process.noNewPrivileges"]),
        row("process.oomScoreAdj 5000", set("/process/oomScoreAdj", json!(5000)), &["oomScoreAdj"]),
        row("process.oomScoreAdj -5000", set("/process/oomScoreAdj", json!(-5000)), &["oomScoreAdj"]),
        row("process.oomScoreAdj string", set("/process/oomScoreAdj", json!("1")), &["process.oomScoreAdj"]),
        row("process.oomScoreAdj 2^31", set("/process/oomScoreAdj", json!(2147483648u64)), &["process.oomScoreAdj"]),
        row("process.apparmorProfile number", set("/process/apparmorProfile", json!(5)), &["process.apparmorProfile"]),
        row("process.selinuxLabel number", set("/process/selinuxLabel", json!(5)), &["process.selinuxLabel"]),
        row(
            "process.consoleSize.height negative",
            set("/process/consoleSize", json!({"height": -1, "width": 80})),
            &["process.consoleSize.height"],
        ),
        row(
            "process.ioPriority.class unknown",
            set("/process/ioPriority", json!({"class": "IOPRIO_CLASS_NOPE", "priority": 0})),
            &["process.ioPriority.class"],
        ),
        row(
            "process.ioPriority.priority 8",
            set("/process/ioPriority", json!({"class": "IOPRIO_CLASS_BE", "priority": 8})),
            &["process.ioPriority.priority"],
        ),
        row(
            "process.ioPriority.priority negative",
            set("/process/ioPriority", json!({"class": "IOPRIO_CLASS_BE", "priority": -1})),
            &["process.ioPriority.priority"],
        ),
        row("process.scheduler.policy unknown", set("/process/scheduler", json!({"policy": "SCHED_NOPE"})), &["process.scheduler.policy"]),
        row("process.scheduler.policy missing", set("/process/scheduler", json!({"nice": 1})), &["process.scheduler", "policy"]),
        row(
            "process.scheduler.nice 100",
            set("/process/scheduler", json!({"policy": "SCHED_OTHER", "nice": 100})),
            &["process.scheduler.nice"],
        ),
        row(
            "process.scheduler.priority for SCHED_OTHER",
            set("/process/scheduler", json!({"policy": "SCHED_OTHER", "priority": 50})),
            &["process.scheduler"],
        ),
        row(
            "process.scheduler.priority negative",
            set("/process/scheduler", json!({"policy": "SCHED_FIFO", "priority": -1})),
            &["process.scheduler", "SCHED_FIFO"],
        ),
        row(
            "process.scheduler.flags[0] unknown",
            set("/process/scheduler", json!({"policy": "SCHED_OTHER", "flags": ["SCHED_FLAG_NOPE"]})),
            &["process.scheduler.flags[0]"],
        ),
        row(
            "process.scheduler deadline runtime above deadline",
            set("/process/scheduler", json!({"policy": "SCHED_DEADLINE", "runtime": 2000000, "deadline": 1000000, "period": 1000000})),
            &["process.scheduler"],
        ),
        // ----- hostname, domainname, annotations -----
        row("hostname number", set("/hostname", json!(5)), &["hostname"]),
        row("hostname 65 bytes", set("/hostname", json!(long_host)), &["hostname"]),
        row("hostname with NUL", set("/hostname", json!("a\u{0}b")), &["hostname"]),
        row(
            "hostname without a UTS namespace",
            All(vec![set("/linux/namespaces", json!([{"type": "mount"}, {"type": "pid"}]))]),
            &["hostname", "UTS"],
        ),
        row("domainname 300 bytes", set("/domainname", json!(big)), &["domainname"]),
        row(
            "domainname without a UTS namespace",
            All(vec![del("/hostname"), set("/domainname", json!("example.com")), set("/linux/namespaces", json!([{"type": "mount"}]))]),
            &["domainname", "UTS"],
        ),
        row("annotations an array", set("/annotations", json!(["a"])), &["annotations"]),
        row("annotations value number", set("/annotations", json!({"a": 5})), &["annotations"]),
        // ----- mounts -----
        row("mounts an object", set("/mounts", json!({})), &["mounts"]),
        row("mounts[7] a string", mount(json!("/mnt")), &["mounts[7]"]),
        row(
            "mounts[7].destination relative",
            mount(json!({"destination": "mnt", "type": "tmpfs", "source": "tmpfs"})),
            &["mounts[7].destination"],
        ),
        row(
            "mounts[7].destination empty",
            mount(json!({"destination": "", "type": "tmpfs", "source": "tmpfs"})),
            &["mounts[7].destination"],
        ),
        row("mounts[7].destination missing", mount(json!({"type": "tmpfs", "source": "tmpfs"})), &["mounts[7]", "destination"]),
        row("mounts[7].destination number", mount(json!({"destination": 5, "type": "tmpfs"})), &["mounts[7].destination"]),
        row(
            "mounts[7].destination with NUL",
            mount(json!({"destination": "/mnt\u{0}x", "type": "tmpfs", "source": "tmpfs"})),
            &["mounts[7]"],
        ),
        row("mounts[7].type unknown", mount(json!({"destination": "/mnt", "type": "nosuchfs", "source": "none"})), &["/mnt", "nosuchfs"]),
        row("mounts[7].type number", mount(json!({"destination": "/mnt", "type": 3, "source": "none"})), &["mounts[7].type"]),
        row(
            "mounts[7].source missing bind source",
            mount(json!({"destination": "/mnt", "type": "bind", "source": "/no/such/source", "options": ["rbind"]})),
            &["/no/such/source"],
        ),
        row(
            "mounts[7].source relative missing",
            mount(json!({"destination": "/mnt", "type": "bind", "source": "no-such-relative", "options": ["bind"]})),
            &["no-such-relative"],
        ),
        row(
            "mounts[7].options a string",
            mount(json!({"destination": "/mnt", "type": "tmpfs", "source": "tmpfs", "options": "ro"})),
            &["mounts[7].options"],
        ),
        row(
            "mounts[7].options[0] number",
            mount(json!({"destination": "/mnt", "type": "tmpfs", "source": "tmpfs", "options": [5]})),
            &["mounts[7].options[0]"],
        ),
        row(
            "mounts[7].options bad tmpfs option",
            mount(json!({"destination": "/mnt", "type": "tmpfs", "source": "tmpfs", "options": ["size=lots"]})),
            &["/mnt"],
        ),
        row("mounts[7] tmpfs over /proc", mount(json!({"destination": "/proc", "type": "tmpfs", "source": "tmpfs"})), &["/proc"]),
        row(
            "mounts[7] tmpfs inside /proc",
            mount(json!({"destination": "/proc/sys/kernel", "type": "tmpfs", "source": "tmpfs"})),
            &["/proc"],
        ),
        row(
            "mounts[7] bind onto /proc/self",
            mount(json!({"destination": "/proc/self/attr", "type": "bind", "source": "/tmp", "options": ["bind"]})),
            &["/proc"],
        ),
        row(
            "mounts[7].uidMappings string",
            mount(json!({"destination": "/mnt", "type": "tmpfs", "source": "tmpfs", "uidMappings": "x"})),
            &["mounts[7].uidMappings"],
        ),
        // ----- hooks -----
        row("hooks an array", set("/hooks", json!(["x"])), &["hooks"]),
        row("hooks.prestart an object", set("/hooks/prestart", json!({})), &["hooks.prestart"]),
        row("hooks.prestart[0].path relative", hook("prestart", json!({"path": "bin/true"})), &["hooks.prestart[0].path"]),
        row("hooks.startContainer[0].path empty", hook("startContainer", json!({"path": ""})), &["hooks.startContainer[0].path"]),
        row(
            "hooks.createRuntime[0].path missing",
            hook("createRuntime", json!({"path": "/no/such/hook"})),
            &["createRuntime[0]", "/no/such/hook"],
        ),
        row("hooks.createRuntime[0].path a directory", hook("createRuntime", json!({"path": "/"})), &["createRuntime[0]"]),
        row("hooks.createRuntime[0] fails", hook("createRuntime", json!({"path": "/bin/false"})), &["createRuntime[0]", "/bin/false"]),
        row(
            "hooks.createRuntime[0] times out",
            hook("createRuntime", json!({"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1})),
            &["createRuntime[0]", "timed out"],
        ),
        row(
            "hooks.createRuntime[0].args a string",
            hook("createRuntime", json!({"path": "/bin/true", "args": "x"})),
            &["hooks.createRuntime[0].args"],
        ),
        row("hooks.poststart[0].timeout 0", hook("poststart", json!({"path": "/bin/true", "timeout": 0})), &["hooks.poststart[0].timeout"]),
        row(
            "hooks.createContainer[0].timeout negative",
            hook("createContainer", json!({"path": "/bin/true", "timeout": -1})),
            &["hooks.createContainer[0].timeout"],
        ),
        row(
            "hooks.poststop[0].timeout string",
            hook("poststop", json!({"path": "/bin/true", "timeout": "1"})),
            &["hooks.poststop[0].timeout"],
        ),
        row("hooks.prestart[0].path missing member", hook("prestart", json!({"args": ["x"]})), &["hooks.prestart[0]", "path"]),
        // ----- linux -----
        row("linux an array", set("/linux", json!([])), &["linux"]),
        row("linux.namespaces an object", set("/linux/namespaces", json!({})), &["linux.namespaces"]),
        row("linux.namespaces[0].type unknown", set("/linux/namespaces/0/type", json!("nope")), &["linux.namespaces[0].type"]),
        row("linux.namespaces[0].type number", set("/linux/namespaces/0/type", json!(5)), &["linux.namespaces[0].type"]),
        row(
            "linux.namespaces[0].type missing",
            set("/linux/namespaces/0", json!({"path": "/proc/self/ns/pid"})),
            &["linux.namespaces[0]", "type"],
        ),
        row("linux.namespaces[5] duplicate", push("/linux/namespaces", json!({"type": "pid"})), &["linux.namespaces[5]", "duplicate"]),
        row("linux.namespaces[1].path relative", set("/linux/namespaces/1/path", json!("proc/self/ns/net")), &["linux.namespaces[1].path"]),
        row(
            "linux.namespaces[1].path missing",
            set("/linux/namespaces/1/path", json!("/proc/999999999/ns/net")),
            &["/proc/999999999/ns/net"],
        ),
        row("linux.namespaces[1].path not a namespace", set("/linux/namespaces/1/path", json!("/etc/hostname")), &["/etc/hostname"]),
        row(
            "linux.namespaces[1].path of another type",
            set("/linux/namespaces/1/path", json!("/proc/self/ns/uts")),
            &["/proc/self/ns/uts"],
        ),
        row(
            "linux.namespaces[1].path with NUL",
            set("/linux/namespaces/1/path", json!("/proc/self/ns/net\u{0}")),
            &["linux.namespaces[1].path"],
        ),
        row(
            "linux.namespaces without mount",
            set("/linux/namespaces", json!([{"type": "pid"}, {"type": "uts"}])),
            &["linux.namespaces", "mount"],
        ),
        row(
            "linux.namespaces time with a path and offsets",
            All(vec![
                push("/linux/namespaces", json!({"type": "time", "path": "/proc/self/ns/time"})),
                set("/linux/timeOffsets", json!({"monotonic": {"secs": 1, "nanosecs": 0}})),
            ]),
            &["linux.timeOffsets"],
        ),
        row(
            "linux.timeOffsets without a time namespace",
            set("/linux/timeOffsets", json!({"monotonic": {"secs": 1, "nanosecs": 0}})),
            &["linux.timeOffsets"],
        ),
        row(
            "linux.timeOffsets secs string",
            set("/linux/timeOffsets", json!({"monotonic": {"secs": "x"}})),
            &["linux.timeOffsets.monotonic.secs"],
        ),
        // ----- user namespace mappings -----
        row(
            "linux.uidMappings without a user namespace",
            set("/linux/uidMappings", json!([{"containerID": 0, "hostID": 1000, "size": 1}])),
            &["linux.uidMappings"],
        ),
        row("linux.uidMappings missing with a user namespace", push("/linux/namespaces", json!({"type": "user"})), &["linux.uidMappings"]),
        row("linux.uidMappings an object", userns(json!({})), &["linux.uidMappings"]),
        row(
            "linux.uidMappings[0].hostID negative",
            userns(json!([{"containerID": 0, "hostID": -1, "size": 1}])),
            &["linux.uidMappings[0].hostID"],
        ),
        row(
            "linux.uidMappings[0].size string",
            userns(json!([{"containerID": 0, "hostID": 1, "size": "1"}])),
            &["linux.uidMappings[0].size"],
        ),
        // #2: the kernel refuses these maps; create hangs today.
        row("linux.uidMappings[0].size 0", userns(json!([{"containerID": 0, "hostID": 100000, "size": 0}])), &["linux.uidMappings[0]"])
            .after(2),
        row(
            "linux.uidMappings overlapping",
            userns(json!([{"containerID": 0, "hostID": 100000, "size": 10}, {"containerID": 5, "hostID": 200000, "size": 10}])),
            &["linux.uidMappings"],
        )
        .after(2),
        row(
            "linux.uidMappings overflow",
            userns(json!([{"containerID": 4294967295u64, "hostID": 100000, "size": 10}])),
            &["linux.uidMappings[0]"],
        )
        .after(2),
        row("linux.uidMappings 400 lines", userns(Value::Array(many_maps)), &["linux.uidMappings"]).after(2),
        // ----- seccomp -----
        row("linux.seccomp a string", seccomp(json!("default")), &["linux.seccomp"]),
        row("linux.seccomp.defaultAction unknown", seccomp(json!({"defaultAction": "SCMP_ACT_NOPE"})), &["linux.seccomp.defaultAction"]),
        row("linux.seccomp.defaultAction missing", seccomp(json!({"syscalls": []})), &["linux.seccomp", "defaultAction"]),
        row(
            "linux.seccomp.defaultErrnoRet string",
            seccomp(json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": "x"})),
            &["linux.seccomp.defaultErrnoRet"],
        ),
        row(
            "linux.seccomp.architectures[0] unknown",
            seccomp(json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_NOPE"]})),
            &["linux.seccomp.architectures[0]"],
        ),
        row(
            "linux.seccomp.flags[0] unknown",
            seccomp(json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_NOPE"]})),
            &["linux.seccomp.flags[0]"],
        ),
        row(
            "linux.seccomp.syscalls an object",
            seccomp(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": {}})),
            &["linux.seccomp.syscalls"],
        ),
        row(
            "linux.seccomp.syscalls[0].action unknown",
            syscall_rule(json!({"names": ["read"], "action": "SCMP_ACT_NOPE"})),
            &["linux.seccomp.syscalls[0].action"],
        ),
        row(
            "linux.seccomp.syscalls[0].names a string",
            syscall_rule(json!({"names": "read", "action": "SCMP_ACT_ERRNO"})),
            &["linux.seccomp.syscalls[0].names"],
        ),
        row(
            "linux.seccomp.syscalls[0].names missing",
            syscall_rule(json!({"action": "SCMP_ACT_ERRNO"})),
            &["linux.seccomp.syscalls[0]", "names"],
        ),
        row(
            "linux.seccomp.syscalls[0].errnoRet negative",
            syscall_rule(json!({"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": -1})),
            &["linux.seccomp.syscalls[0].errnoRet"],
        ),
        row(
            "linux.seccomp.syscalls[0].args[0].op unknown",
            syscall_rule(json!({"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_NOPE"}]})),
            &["linux.seccomp.syscalls[0].args[0].op"],
        ),
        row(
            "linux.seccomp.syscalls[0].args[0].index 6",
            syscall_rule(json!({"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]})),
            &["linux.seccomp.syscalls[0].args"],
        ),
        row(
            "linux.seccomp.syscalls[0].args[0].value negative",
            syscall_rule(json!({"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": -1, "op": "SCMP_CMP_EQ"}]})),
            &["linux.seccomp.syscalls[0].args[0].value"],
        ),
        row(
            "linux.seccomp NOTIFY without listenerPath",
            syscall_rule(json!({"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"})),
            &["linux.seccomp", "listenerPath"],
        ),
        row(
            "linux.seccomp.listenerPath missing socket",
            seccomp(
                json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/no/such/agent.sock", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}),
            ),
            &["/no/such/agent.sock"],
        ),
        // #4: the program is written to a pipe only its writer reads.
        row(
            "linux.seccomp 10000 rules",
            seccomp(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules})),
            &["linux.seccomp", "instructions"],
        )
        .after(4),
        // ----- devices -----
        row("linux.devices an object", set("/linux/devices", json!({})), &["linux.devices"]),
        row("linux.devices[0].path relative", device(json!({"path": "dev/x"})), &["linux.devices[0].path"]),
        row("linux.devices[0].path outside /dev", device(json!({"path": "/etc/x"})), &["linux.devices[0].path"]),
        row("linux.devices[0].path /dev prefix", device(json!({"path": "/devx/null2"})), &["linux.devices[0].path"]),
        // #10: ".." passes the "under /dev" check today.
        row("linux.devices[0].path /dev/../etc/x", device(json!({"path": "/dev/../etc/x"})), &["linux.devices[0].path"]).after(10),
        row("linux.devices[0].path with NUL", device(json!({"path": "/dev/x\u{0}y"})), &["linux.devices[0].path"]),
        row("linux.devices[0].type unknown", device(json!({"type": "x"})), &["linux.devices[0].type"]),
        row(
            "linux.devices[0].type missing",
            set("/linux/devices", json!([{"path": "/dev/x", "major": 1, "minor": 3}])),
            &["linux.devices[0]", "type"],
        ),
        row("linux.devices[0].major negative", device(json!({"major": -1})), &["linux.devices[0].major|/dev/hostile"]),
        // #10: truncated to 32 bits today.
        row("linux.devices[0].major 2^32+1", device(json!({"major": 4294967297u64})), &["linux.devices[0].major"]).after(10),
        row("linux.devices[0].fileMode string", device(json!({"fileMode": "rw"})), &["linux.devices[0].fileMode"]),
        row("linux.devices[0].uid negative", device(json!({"uid": -1})), &["linux.devices[0].uid"]),
        // ----- resources and cgroups -----
        row("linux.resources an array", set("/linux/resources", json!(["x"])), &["linux.resources"]),
        row(
            "linux.resources.memory.limit string",
            set("/linux/resources/memory", json!({"limit": "1G"})),
            &["linux.resources.memory.limit"],
        ),
        row("linux.resources.memory.limit -5", set("/linux/resources/memory", json!({"limit": -5})), &["memory"]),
        row(
            "linux.resources.memory.swap below limit",
            set("/linux/resources/memory", json!({"limit": 67108864, "swap": 33554432})),
            &["memory", "swap"],
        ),
        row("linux.resources.memory.swappiness 101", set("/linux/resources/memory", json!({"swappiness": 101})), &["swappiness"]),
        row(
            "linux.resources.memory.reservation float",
            set("/linux/resources/memory", json!({"reservation": 1.5})),
            &["linux.resources.memory.reservation"],
        ),
        row("linux.resources.cpu.shares string", set("/linux/resources/cpu", json!({"shares": "x"})), &["linux.resources.cpu.shares"]),
        row("linux.resources.cpu.quota -5", set("/linux/resources/cpu", json!({"quota": -5, "period": 100000})), &["cpu"]),
        row("linux.resources.cpu.period 1", set("/linux/resources/cpu", json!({"quota": 1000, "period": 1})), &["cpu"]),
        row("linux.resources.cpu.cpus 999", set("/linux/resources/cpu", json!({"cpus": "999"})), &["cpus"]),
        row("linux.resources.cpu.cpus letters", set("/linux/resources/cpu", json!({"cpus": "abc"})), &["cpus"]),
        row("linux.resources.cpu.mems 99", set("/linux/resources/cpu", json!({"mems": "99"})), &["mems"]),
        row("linux.resources.pids.limit string", set("/linux/resources/pids", json!({"limit": "x"})), &["linux.resources.pids.limit"]),
        row(
            "linux.resources.hugepageLimits[0].pageSize unknown",
            set("/linux/resources/hugepageLimits", json!([{"pageSize": "3MB", "limit": 0}])),
            &["3MB"],
        ),
        row(
            "linux.resources.devices[1].access unknown",
            push("/linux/resources/devices", json!({"allow": true, "access": "xyz"})),
            &["linux.resources.devices", "xyz"],
        ),
        row(
            "linux.resources.devices[1].type unknown",
            push("/linux/resources/devices", json!({"allow": true, "type": "q", "access": "r"})),
            &["linux.resources.devices[1].type"],
        ),
        row(
            "linux.resources.network.classID string",
            set("/linux/resources/network", json!({"classID": "x"})),
            &["linux.resources.network.classID"],
        ),
        row(
            "linux.resources.unified key with ..",
            set("/linux/resources/unified", json!({"../../cgroup.procs": "1"})),
            &["linux.resources.unified"],
        ),
        row(
            "linux.resources.unified key with /",
            set("/linux/resources/unified", json!({"a/memory.max": "1"})),
            &["linux.resources.unified"],
        ),
        row("linux.resources.unified value number", set("/linux/resources/unified", json!({"pids.max": 5})), &["linux.resources.unified"]),
        row("linux.cgroupsPath number", set("/linux/cgroupsPath", json!(5)), &["linux.cgroupsPath"]),
        row("linux.cgroupsPath with ..", set("/linux/cgroupsPath", json!("/../../escape")), &["linux.cgroupsPath"]),
        row("linux.cgroupsPath with NUL", set("/linux/cgroupsPath", json!("/a\u{0}b")), &["linux.cgroupsPath"]),
        // ----- sysctl -----
        row("linux.sysctl an array", set("/linux/sysctl", json!([])), &["linux.sysctl"]),
        row("linux.sysctl host-wide key", set("/linux/sysctl", json!({"kernel.panic": "1"})), &["linux.sysctl.kernel.panic"]),
        row(
            "linux.sysctl net key without netns",
            All(vec![
                set("/linux/namespaces", json!([{"type": "mount"}, {"type": "uts"}])),
                set("/linux/sysctl", json!({"net.ipv4.ip_forward": "1"})),
            ]),
            &["linux.sysctl.net.ipv4.ip_forward"],
        ),
        row("linux.sysctl key with ..", set("/linux/sysctl", json!({"net/../../kernel/panic": "1"})), &["linux.sysctl"]),
        row("linux.sysctl absolute key", set("/linux/sysctl", json!({"/proc/sys/kernel/panic": "1"})), &["linux.sysctl"]),
        row("linux.sysctl unknown net key", set("/linux/sysctl", json!({"net.ipv4.no_such_knob": "1"})), &["net.ipv4.no_such_knob"]),
        row("linux.sysctl bad value", set("/linux/sysctl", json!({"net.ipv4.ip_forward": "abc"})), &["net.ipv4.ip_forward"]),
        row("linux.sysctl value number", set("/linux/sysctl", json!({"net.ipv4.ip_forward": 1})), &["linux.sysctl"]),
        // ----- the rest of linux -----
        row("linux.rootfsPropagation unknown", set("/linux/rootfsPropagation", json!("bogus")), &["linux.rootfsPropagation"]),
        row("linux.maskedPaths a string", set("/linux/maskedPaths", json!("/proc/kcore")), &["linux.maskedPaths"]),
        row("linux.readonlyPaths[0] number", set("/linux/readonlyPaths", json!([5])), &["linux.readonlyPaths[0]"]),
        row("linux.mountLabel number", set("/linux/mountLabel", json!(5)), &["linux.mountLabel"]),
        row("linux.personality.domain unknown", set("/linux/personality", json!({"domain": "LINUX_NOPE"})), &["linux.personality.domain"]),
        row(
            "linux.personality.flags string",
            set("/linux/personality", json!({"domain": "LINUX", "flags": "x"})),
            &["linux.personality.flags"],
        ),
        row("linux.intelRdt.closID with ..", set("/linux/intelRdt", json!({"closID": "../../x"})), &["intelRdt"]),
    ]
}
