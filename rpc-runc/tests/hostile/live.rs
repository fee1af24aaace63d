//! What containerd sends a running container: `exec --process` files
//! and `update -r` resources, broken.

use serde_json::json;

use super::patch::*;

/// A bad input for a running container and the words its error must name.
pub struct LiveRow {
    pub name: &'static str,
    pub file: Patch,
    pub want: Vec<&'static str>,
    pub after: Option<u32>,
    /// Read this path instead of a file the row writes.
    pub path: Option<&'static str>,
}

fn live(name: &'static str, file: Patch, want: &[&'static str]) -> LiveRow {
    LiveRow { name, file, want: want.to_vec(), after: None, path: None }
}

impl LiveRow {
    fn after(mut self, n: u32) -> LiveRow {
        self.after = Some(n);
        self
    }
    fn path(mut self, p: &'static str) -> LiveRow {
        self.path = Some(p);
        self
    }
}

pub fn exec_rows() -> Vec<LiveRow> {
    vec![
        live("process.json empty", text(""), &["process.json", "line 1"]),
        live("process.json not json", text("{args: sh}"), &["process.json", "line 1"]),
        live("process.json an array", text("[]"), &["process.json"]),
        live("process.json is a directory", ConfigDir, &["process.json"]),
        live("args empty", set("/args", json!([])), &["args"]),
        live("args missing", del("/args"), &["args"]),
        live("args a string", set("/args", json!("sh")), &["args"]),
        live("args[1] with NUL", set("/args", json!(["sh", "-c\u{0}x"])), &["args[1]", "NUL"]),
        live("args[0] not found", set("/args", json!(["no-such-binary-xyz"])), &["no-such-binary-xyz", "not found"]),
        live("cwd relative", set("/cwd", json!("tmp")), &["cwd"]),
        live("cwd missing", del("/cwd"), &["cwd"]),
        live("env[0] no =", set("/env", json!(["NOEQUALS"])), &["env[0]"]),
        live("env[0] empty name", set("/env", json!(["=x"])), &["env[0]"]),
        live("env a string", set("/env", json!("A=b")), &["env"]),
        live("user.uid negative", set("/user/uid", json!(-1)), &["user.uid"]),
        live("user.uid string", set("/user/uid", json!("0")), &["user.uid"]),
        live("user missing", del("/user"), &["user"]),
        live("capabilities.bounding a string", set("/capabilities", json!({"bounding": "CAP_KILL"})), &["capabilities.bounding"]),
        live("rlimits[0].type unknown", set("/rlimits", json!([{"type": "RLIMIT_NOPE", "hard": 1, "soft": 1}])), &["rlimits[0]"]),
        live("rlimits[0] soft above hard", set("/rlimits", json!([{"type": "RLIMIT_NOFILE", "hard": 1, "soft": 2}])), &["rlimits[0]"]),
        live("noNewPrivileges string", set("/noNewPrivileges", json!("yes")), &["noNewPrivileges"]),
        live("oomScoreAdj string", set("/oomScoreAdj", json!("1")), &["oomScoreAdj"]),
        live("scheduler.nice 100", set("/scheduler", json!({"policy": "SCHED_OTHER", "nice": 100})), &["scheduler.nice"]),
        live("apparmorProfile number", set("/apparmorProfile", json!(5)), &["apparmorProfile"]),
    ]
}

pub fn update_rows() -> Vec<LiveRow> {
    vec![
        live("resources empty file", text(""), &["resources"]),
        live("resources not json", text("{memory"), &["resources"]),
        live("resources an array", text("[1]"), &["resources"]),
        live("memory.limit a string", set("/memory", json!({"limit": "1G"})), &["memory.limit"]),
        live("memory.limit float", set("/memory", json!({"limit": 1.5})), &["memory.limit"]),
        live("memory.limit -5", set("/memory", json!({"limit": -5})), &["memory"]),
        live("memory.swap below the limit", set("/memory", json!({"limit": 67108864, "swap": 1048576})), &["memory"]),
        live("cpu.shares a string", set("/cpu", json!({"shares": "x"})), &["cpu.shares"]),
        live("cpu.quota -5", set("/cpu", json!({"quota": -5, "period": 100000})), &["cpu"]),
        live("cpu.cpus 999", set("/cpu", json!({"cpus": "999"})), &["cpus"]),
        live("cpu.mems letters", set("/cpu", json!({"mems": "abc"})), &["mems"]),
        live("pids.limit a string", set("/pids", json!({"limit": "x"})), &["pids.limit"]),
        live("blockIO.weight a string", set("/blockIO", json!({"weight": "x"})), &["blockIO.weight"]),
        live("unified key with ..", set("/unified", json!({"../../cgroup.procs": "1"})), &["unified"]),
        // #9: `update -r` reads without bound.
        live("resources from /dev/zero", Bytes(vec![]), &["/dev/zero"]).path("/dev/zero").after(9),
    ]
}
