//! The process: args, env, cwd, user, umask, rlimits, capabilities,
//! noNewPrivileges, oomScoreAdj, terminal (config.md#process).

use super::{status_caps, status_field, Case};
use crate::console::{self, ConsoleSocket};
use crate::host::{cap_mask, fmt_limit, CAP_SYS_RESOURCE};
use crate::runner::{cut, kv, Ctx, LEAK_VAR};
use crate::verdict::{Rule, Verdict, R};
use crate::{case, check, check_eq, need};
use serde_json::json;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

const T5: Duration = Duration::from_secs(5);

pub fn cases() -> Vec<Case> {
    vec![
        case!("process.args", "config.md#process", "args reach the program as argv, unsplit (spaces, empty strings)", args),
        case!("process.args.path-lookup", "config.md#process", "args[0] without a slash is looked up in the PATH of process.env", args_lookup),
        case!("process.args.not-found", "runtime.md#start", "a program that does not exist makes create or start fail", args_not_found),
        case!("process.env", "config.md#process", "the environment is process.env; the runtime's own environment does not leak in", env),
        case!("process.cwd", "config.md#process", "the program starts in cwd", cwd),
        case!("process.user", "config.md#posix-platform-user", "uid and gid (real, effective, saved, fs) are user.uid and user.gid", user),
        case!("process.user.additional-gids", "config.md#posix-platform-user", "additionalGids are the supplementary groups", additional_gids),
        case!("process.umask", "config.md#posix-platform-user", "user.umask is the process's umask", umask, "1.1.0"),
        case!("process.rlimits", "config.md#posix-process", "rlimits (NOFILE, CORE, MSGQUEUE, STACK) are set, soft and hard", rlimits),
        case!("process.rlimits.above-host", "config.md#posix-process", "a hard limit above the runtime's own is set (needs CAP_SYS_RESOURCE)", rlimits_above_host),
        case!("process.rlimits.invalid", "config.md#posix-process", "an rlimit type the kernel has no mapping for is an error", rlimits_invalid),
        case!("process.capabilities", "config.md#linux-process", "bounding, effective, permitted, inheritable sets are as configured (root)", caps_root),
        case!("process.capabilities.ambient", "config.md#linux-process", "ambient capabilities reach a non-root process (all five sets as configured)", caps_ambient),
        case!("process.capabilities.enforced", "config.md#linux-process", "a capability left out is not held: chown without CAP_CHOWN and mount without CAP_SYS_ADMIN fail", caps_enforced),
        case!(
            "process.capabilities.unknown",
            "config.md#linux-process",
            "spec: a capability that cannot be mapped to a kernel interface MUST make the runtime fail; runc 1.1: warns and ignores unknown capabilities",
            caps_unknown
        ),
        case!("process.no-new-privileges", "config.md#linux-process", "noNewPrivileges true sets no_new_privs; false leaves it clear", nnp),
        case!("process.oom-score-adj", "config.md#linux-process", "oomScoreAdj is the process's oom_score_adj", oom),
        case!("process.oom-score-adj.negative", "config.md#linux-process", "a negative oomScoreAdj is set (needs CAP_SYS_RESOURCE)", oom_negative),
        case!("process.terminal", "config.md#process", "terminal: the runtime sends a pty master on --console-socket; the program's stdio is that terminal", terminal),
        case!("process.terminal.input", "config.md#process", "terminal: what is written to the pty master is the program's stdin", terminal_input),
        case!("process.terminal.dev-console", "config-linux.md#default-devices", "terminal: /dev/console is the container's pty", terminal_console),
        case!("process.terminal.controlling", "config.md#process", "terminal: the pty is the program's controlling terminal", terminal_ctty),
        case!("process.terminal.size", "config.md#process", "consoleSize sets the terminal's rows and columns", terminal_size),
        case!("process.terminal.no-socket", "runc CLI (create --console-socket)", "create with terminal true and no --console-socket fails", terminal_no_socket),
        case!("process.apparmor", "config.md#linux-process", "apparmorProfile is the process's AppArmor profile", apparmor),
        case!("process.selinux", "config.md#linux-process", "selinuxLabel is the process's SELinux label", selinux),
    ]
}

fn args(c: &mut Ctx) -> R {
    c.config["process"]["args"] = json!(["sh", "-c", "printf '[%s]' \"$0\" \"$@\"", "zero", "one", "two words", ""]);
    let id = c.new_id();
    let o = c.run_fg(&id, &[])?;
    check!(o.ok(), "run failed: {}", o.brief());
    check_eq!(o.stdout.as_str(), "[zero][one][two words][]", "argv");
    Ok(Verdict::Pass)
}

fn args_lookup(c: &mut Ctx) -> R {
    let d = c.rootfs.join("custom-bin");
    fs::create_dir_all(&d).map_err(|e| Verdict::Fail(e.to_string()))?;
    fs::write(d.join("mytool"), "#!/bin/sh\necho lookup-ok\n").map_err(|e| Verdict::Fail(e.to_string()))?;
    fs::set_permissions(d.join("mytool"), fs::Permissions::from_mode(0o755)).map_err(|e| Verdict::Fail(e.to_string()))?;
    c.config["process"]["args"] = json!(["mytool"]);
    c.config["process"]["env"] = json!(["PATH=/custom-bin:/bin"]);
    let id = c.new_id();
    let o = c.run_fg(&id, &[])?;
    check!(o.ok() && o.stdout.contains("lookup-ok"), "mytool in PATH=/custom-bin:/bin did not run: {}", o.brief());
    Ok(Verdict::Pass)
}

fn args_not_found(c: &mut Ctx) -> R {
    c.config["process"]["args"] = json!(["/no/such/program"]);
    let id = c.new_id();
    let o = c.try_create(&id, &[])?;
    if !o.ok() {
        return Ok(Verdict::Pass);
    }
    let o = c.rt(&["start", &id]);
    check!(!o.ok(), "create and start both succeeded for a program that does not exist");
    Ok(Verdict::Pass)
}

fn env(c: &mut Ctx) -> R {
    c.config["process"]["env"] = json!(["PATH=/bin", "A=1", "B=two words", "C="]);
    let out = c.run_sh("env")?;
    for want in ["A=1", "B=two words", "C=", "PATH=/bin"] {
        check!(out.lines().any(|l| l == want), "{want:?} missing from the environment: {:?}", cut(&out, 300));
    }
    check!(!out.contains(LEAK_VAR), "the runtime's environment leaked into the container ({LEAK_VAR})");
    Ok(Verdict::Pass)
}

fn cwd(c: &mut Ctx) -> R {
    fs::create_dir_all(c.rootfs.join("tmp/work dir")).map_err(|e| Verdict::Fail(e.to_string()))?;
    c.config["process"]["cwd"] = json!("/tmp/work dir");
    let out = c.run_sh("pwd")?;
    check_eq!(out.trim(), "/tmp/work dir", "working directory");
    Ok(Verdict::Pass)
}

fn user(c: &mut Ctx) -> R {
    c.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    let out = c.run_sh("cat /proc/self/status")?;
    let norm = |s: Option<&str>| s.map(|v| v.split_whitespace().collect::<Vec<_>>().join(" ")).unwrap_or_default();
    check_eq!(norm(status_field(&out, "Uid:")), "1000 1000 1000 1000", "Uid (real, effective, saved, fs)");
    check_eq!(norm(status_field(&out, "Gid:")), "1000 1000 1000 1000", "Gid (real, effective, saved, fs)");
    Ok(Verdict::Pass)
}

fn additional_gids(c: &mut Ctx) -> R {
    c.config["process"]["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [5, 2000]});
    let out = c.run_sh("cat /proc/self/status")?;
    let groups: Vec<&str> = status_field(&out, "Groups:").unwrap_or("").split_whitespace().collect();
    check!(groups.contains(&"5") && groups.contains(&"2000"), "supplementary groups are {groups:?}, want 5 and 2000 among them");
    Ok(Verdict::Pass)
}

fn umask(c: &mut Ctx) -> R {
    c.config["process"]["user"]["umask"] = json!(0o027);
    let out = c.run_kv("echo umask=$(umask); touch /tmp/f; echo mode=$(stat -c %a /tmp/f)")?;
    check_eq!(out.get("umask").map(|s| s.as_str()), Some("0027"), "umask");
    check_eq!(out.get("mode").map(|s| s.as_str()), Some("640"), "mode of a new file");
    Ok(Verdict::Pass)
}

/// (soft, hard) from /proc/self/limits text for the row starting with `label`.
fn limits_row(text: &str, label: &str) -> Option<(String, String)> {
    let line = text.lines().find(|l| l.starts_with(label))?;
    let rest: Vec<&str> = line[label.len()..].split_whitespace().collect();
    Some((rest.first()?.to_string(), rest.get(1)?.to_string()))
}

fn rlimits(c: &mut Ctx) -> R {
    let h = c.host;
    let want: Vec<(&str, &str, u64, u64)> = vec![
        ("RLIMIT_NOFILE", "Max open files", 512, 1000.min(h.hard_limit("RLIMIT_NOFILE"))),
        ("RLIMIT_CORE", "Max core file size", 1024, 2048.min(h.hard_limit("RLIMIT_CORE"))),
        ("RLIMIT_MSGQUEUE", "Max msgqueue size", 4096, 8192.min(h.hard_limit("RLIMIT_MSGQUEUE"))),
        ("RLIMIT_STACK", "Max stack size", 4194304, 16777216.min(h.hard_limit("RLIMIT_STACK"))),
    ];
    let list: Vec<serde_json::Value> = want.iter().map(|(t, _, s, hd)| json!({"type": t, "soft": (*s).min(*hd), "hard": hd})).collect();
    c.config["process"]["rlimits"] = json!(list);
    let out = c.run_sh("cat /proc/self/limits")?;
    for (t, label, s, hd) in want {
        let got = limits_row(&out, label);
        let exp = (fmt_limit(s.min(hd)), fmt_limit(hd));
        check_eq!(got, Some(exp), "{t} (soft, hard)");
    }
    Ok(Verdict::Pass)
}

fn rlimits_above_host(c: &mut Ctx) -> R {
    let hard = c.host.hard_limit("RLIMIT_NOFILE");
    need!(
        c.host.has_cap(CAP_SYS_RESOURCE),
        "host root lacks CAP_SYS_RESOURCE, so no process here can raise RLIMIT_NOFILE above its hard limit {}",
        fmt_limit(hard)
    );
    let nr_open: u64 = crate::host::read("/proc/sys/fs/nr_open").trim().parse().unwrap_or(1048576);
    need!(hard < nr_open, "RLIMIT_NOFILE hard limit is already fs.nr_open");
    let want = (hard + 1000).min(nr_open);
    c.config["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": want, "hard": want}]);
    let out = c.run_sh("cat /proc/self/limits")?;
    check_eq!(limits_row(&out, "Max open files"), Some((want.to_string(), want.to_string())), "RLIMIT_NOFILE");
    Ok(Verdict::Pass)
}

fn rlimits_invalid(c: &mut Ctx) -> R {
    c.config["process"]["rlimits"] = json!([{"type": "RLIMIT_NOSUCHTHING", "soft": 1, "hard": 1}]);
    c.set_script("echo RAN");
    let id = c.new_id();
    let o = c.run_fg(&id, &[])?;
    check!(!o.ok() && !o.stdout.contains("RAN"), "the container ran with an rlimit of type RLIMIT_NOSUCHTHING");
    Ok(Verdict::Pass)
}

fn set_caps(c: &mut Ctx, sets: &[(&str, &[&str])]) {
    let mut m = serde_json::Map::new();
    for (k, v) in sets {
        m.insert(k.to_string(), json!(v));
    }
    c.config["process"]["capabilities"] = serde_json::Value::Object(m);
}

fn check_caps(out: &str, key: &str, want: u64) -> Result<(), Verdict> {
    let got = status_caps(out, key);
    check!(got == Some(want), "{key} is {:016x}, want {want:016x}", got.unwrap_or(u64::MAX));
    Ok(())
}

fn caps_root(c: &mut Ctx) -> R {
    let set: &[&str] = &["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"];
    set_caps(c, &[("bounding", set), ("effective", set), ("permitted", set), ("inheritable", &[])]);
    let out = c.run_sh("cat /proc/self/status")?;
    let m = cap_mask(set);
    check_caps(&out, "CapBnd:", m)?;
    check_caps(&out, "CapPrm:", m)?;
    check_caps(&out, "CapEff:", m)?;
    check_caps(&out, "CapInh:", 0)?;
    Ok(Verdict::Pass)
}

fn caps_ambient(c: &mut Ctx) -> R {
    let set: &[&str] = &["CAP_CHOWN", "CAP_NET_BIND_SERVICE"];
    c.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    set_caps(c, &[("bounding", set), ("effective", set), ("permitted", set), ("inheritable", set), ("ambient", set)]);
    let out = c.run_sh("cat /proc/self/status")?;
    let m = cap_mask(set);
    for k in ["CapBnd:", "CapPrm:", "CapEff:", "CapInh:", "CapAmb:"] {
        check_caps(&out, k, m)?;
    }
    Ok(Verdict::Pass)
}

fn caps_enforced(c: &mut Ctx) -> R {
    let set: Vec<&str> = crate::bundle::DEFAULT_CAPS.iter().copied().filter(|c| *c != "CAP_CHOWN").collect();
    set_caps(c, &[("bounding", &set), ("effective", &set), ("permitted", &set)]);
    let out = c.run_kv(
        "touch /tmp/f; chown 1000 /tmp/f 2>/dev/null && echo chown=allowed || echo chown=denied; \
         mount -t tmpfs t /mnt 2>/dev/null && echo mount=allowed || echo mount=denied",
    )?;
    check_eq!(out.get("chown").map(|s| s.as_str()), Some("denied"), "chown without CAP_CHOWN");
    check_eq!(out.get("mount").map(|s| s.as_str()), Some("denied"), "mount without CAP_SYS_ADMIN");
    Ok(Verdict::Pass)
}

fn caps_unknown(c: &mut Ctx) -> R {
    let set: &[&str] = &["CAP_CHOWN", "CAP_NO_SUCH_CAPABILITY"];
    set_caps(c, &[("bounding", set), ("effective", set), ("permitted", set)]);
    c.set_script("cat /proc/self/status");
    let id = c.new_id();
    let o = c.run_fg(&id, &[])?;
    if !o.ok() {
        check!(!o.stdout.contains("CapEff"), "the program ran but run failed: {}", o.brief());
        return Ok(Verdict::PassAs(Rule::Spec, "refuses to run with an unknown capability".into()));
    }
    check_caps(&o.stdout, "CapEff:", cap_mask(&["CAP_CHOWN"]))?;
    Ok(Verdict::PassAs(Rule::Runc, "ignores the unknown capability and runs with the others".into()))
}

fn nnp(c: &mut Ctx) -> R {
    c.config["process"]["noNewPrivileges"] = json!(true);
    let on = c.run_sh("cat /proc/self/status")?;
    check_eq!(status_field(&on, "NoNewPrivs:"), Some("1"), "NoNewPrivs with noNewPrivileges true");
    c.config["process"]["noNewPrivileges"] = json!(false);
    let off = c.run_sh("cat /proc/self/status")?;
    check_eq!(status_field(&off, "NoNewPrivs:"), Some("0"), "NoNewPrivs with noNewPrivileges false");
    Ok(Verdict::Pass)
}

fn oom(c: &mut Ctx) -> R {
    c.config["process"]["oomScoreAdj"] = json!(500);
    let out = c.run_sh("cat /proc/self/oom_score_adj")?;
    check_eq!(out.trim(), "500", "oom_score_adj");
    Ok(Verdict::Pass)
}

fn oom_negative(c: &mut Ctx) -> R {
    need!(c.host.oom_min <= -500, "host root lacks CAP_SYS_RESOURCE: no process here may lower oom_score_adj below {}", c.host.oom_min);
    c.config["process"]["oomScoreAdj"] = json!(-500);
    let out = c.run_sh("cat /proc/self/oom_score_adj")?;
    check_eq!(out.trim(), "-500", "oom_score_adj");
    Ok(Verdict::Pass)
}

/// Create with terminal true and a console socket, start, optionally type
/// `input`, and read the terminal until `until`.
fn on_terminal(c: &mut Ctx, script: &str, input: Option<&str>, until: &str) -> Result<String, Verdict> {
    c.config["process"]["terminal"] = json!(true);
    c.set_script(script);
    let sock = c.dir.join("console.sock");
    let mut cs = ConsoleSocket::listen(&sock, Duration::from_secs(10)).map_err(|e| Verdict::Fail(format!("console socket: {e}")))?;
    let id = c.new_id();
    let s = sock.to_string_lossy().into_owned();
    let o = c.try_create(&id, &["--console-socket", &s])?;
    check!(o.ok(), "create --console-socket failed: {}", o.brief());
    let mut master = cs.master().map_err(|e| Verdict::Fail(format!("no pty master received on the console socket: {e}")))?;
    check!(console::is_pty_master(&master), "the fd received on the console socket is not a pty master");
    c.start(&id)?;
    if let Some(i) = input {
        console::write_all(&mut master, i).map_err(|e| Verdict::Fail(format!("write to the pty master: {e}")))?;
    }
    let out = console::read_until(&mut master, until, T5);
    check!(out.contains(until), "terminal output ended without {until:?}: {:?}", cut(&out, 200));
    Ok(out)
}

fn terminal(c: &mut Ctx) -> R {
    let out = on_terminal(c, "echo tty=$(tty); for f in 0 1 2; do [ -t $f ] && echo fd$f=tty; done; echo END", None, "END")?;
    let m = kv(&out);
    check!(m.get("tty").map(|t| t.starts_with("/dev/pts/")).unwrap_or(false), "tty says {:?}", m.get("tty"));
    for f in ["fd0", "fd1", "fd2"] {
        check!(m.get(f).map(|v| v == "tty").unwrap_or(false), "{f} is not a terminal");
    }
    Ok(Verdict::Pass)
}

fn terminal_input(c: &mut Ctx) -> R {
    let out = on_terminal(c, "read x; echo got=$x; echo END", Some("hello conformance\n"), "END")?;
    check!(out.contains("got=hello conformance"), "the program did not read what was typed: {:?}", cut(&out, 200));
    Ok(Verdict::Pass)
}

fn terminal_console(c: &mut Ctx) -> R {
    let out = on_terminal(c, "echo console=$(stat -c %t:%T /dev/console); echo tty=$(stat -L -c %t:%T $(tty)); echo END", None, "END")?;
    let m = kv(&out);
    let con = m.get("console").cloned().unwrap_or_default();
    check!(!con.is_empty() && con != ":", "no /dev/console: {:?}", cut(&out, 200));
    check_eq!(con, m.get("tty").cloned().unwrap_or_default(), "device of /dev/console vs the terminal's");
    Ok(Verdict::Pass)
}

fn terminal_ctty(c: &mut Ctx) -> R {
    let out = on_terminal(c, "echo ttynr=$(cut -d' ' -f7 /proc/self/stat); echo END", None, "END")?;
    let n: i64 = kv(&out).get("ttynr").and_then(|v| v.parse().ok()).unwrap_or(0);
    check!(n != 0, "the program has no controlling terminal");
    Ok(Verdict::Pass)
}

fn terminal_size(c: &mut Ctx) -> R {
    c.config["process"]["consoleSize"] = json!({"height": 37, "width": 91});
    let out = on_terminal(c, "echo size=$(stty size); echo END", None, "END")?;
    check_eq!(kv(&out).get("size").cloned().unwrap_or_default(), "37 91", "stty size");
    Ok(Verdict::Pass)
}

fn terminal_no_socket(c: &mut Ctx) -> R {
    c.config["process"]["terminal"] = json!(true);
    c.set_script("sleep 1000");
    let id = c.new_id();
    let o = c.try_create(&id, &[])?;
    check!(!o.ok(), "create with terminal true and no --console-socket succeeded");
    Ok(Verdict::Pass)
}

fn apparmor(c: &mut Ctx) -> R {
    need!(
        c.host.apparmor,
        "AppArmor is not enabled on this host (LSMs: {})",
        if c.host.lsms.is_empty() { "none".into() } else { c.host.lsms.join(", ") }
    );
    c.config["process"]["apparmorProfile"] = json!("unconfined");
    let out = c.run_sh("cat /proc/self/attr/current")?;
    check!(out.trim().starts_with("unconfined"), "AppArmor profile is {:?}", out.trim());
    Ok(Verdict::Pass)
}

fn selinux(c: &mut Ctx) -> R {
    need!(
        c.host.selinux,
        "SELinux is not enabled on this host (LSMs: {})",
        if c.host.lsms.is_empty() { "none".into() } else { c.host.lsms.join(", ") }
    );
    let label = "system_u:system_r:container_t:s0:c1,c2";
    c.config["process"]["selinuxLabel"] = json!(label);
    let out = c.run_sh("cat /proc/self/attr/current")?;
    check_eq!(out.trim_end_matches('\0').trim(), label, "SELinux label");
    Ok(Verdict::Pass)
}
