//! The `process` section of config.json, checked from inside the container.
#[macro_use]
mod common;

use common::*;
use serde_json::json;

#[test]
fn pid_is_1_in_a_pid_namespace() {
    let mut t = harness!("pr-pid1");
    t.sh("echo $$");
    assert_eq!(t.run_ok(), "1\n");
}

#[test]
fn args_are_passed_verbatim() {
    let mut t = harness!("pr-args");
    t.args(&["sh", "-c", "for a in \"$@\"; do echo \"[$a]\"; done", "argv0", "a b", "", "c'd\"e", "$HOME"]);
    assert_eq!(t.run_ok(), "[a b]\n[]\n[c'd\"e]\n[$HOME]\n");
}

#[test]
fn argv0_is_passed() {
    let mut t = harness!("pr-argv0");
    t.args(&["sh", "-c", "echo $0", "my-zero"]);
    assert_eq!(t.run_ok(), "my-zero\n");
}

#[test]
fn absolute_args0() {
    let mut t = harness!("pr-abs-argv");
    t.args(&["/bin/echo", "hello", "world"]);
    assert_eq!(t.run_ok(), "hello world\n");
}

#[test]
fn args0_looked_up_in_container_path() {
    // PATH from process.env is used to find args[0] inside the rootfs
    let mut t = harness!("pr-path-lookup");
    std::fs::create_dir_all(t.rootfs.join("opt/tools")).unwrap();
    write_file(&t.rootfs.join("opt/tools/mytool"), "#!/bin/sh\necho mytool-ran \"$@\"\n");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(t.rootfs.join("opt/tools/mytool"), std::fs::Permissions::from_mode(0o755)).unwrap();
    t.config["process"]["env"] = json!(["PATH=/opt/tools:/bin"]);
    t.args(&["mytool", "x"]);
    assert_eq!(t.run_ok(), "mytool-ran x\n");
}

#[test]
fn env_is_set_exactly() {
    let mut t = harness!("pr-env");
    t.config["process"]["env"] = json!(["PATH=/bin", "FOO=bar baz", "EMPTY=", "WITH_EQ=a=b=c", "HOME=/custom-home"]);
    t.args(&["env"]);
    let out = t.run_ok();
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    // busybox sh is not involved: `env` prints the process environment as exec'd
    assert_eq!(lines, ["EMPTY=", "FOO=bar baz", "HOME=/custom-home", "PATH=/bin", "WITH_EQ=a=b=c"], "container environment:\n{out}");
}

#[test]
fn home_defaults_from_passwd() {
    // runc sets HOME from the container's /etc/passwd when env has none
    let mut t = harness!("pr-home");
    t.config["process"]["env"] = json!(["PATH=/bin"]);
    t.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    t.sh("echo \"$HOME\"");
    assert_eq!(t.run_ok(), "/home/tester\n");
}

#[test]
fn cwd_is_used() {
    let mut t = harness!("pr-cwd");
    std::fs::create_dir_all(t.rootfs.join("work/dir")).unwrap();
    t.config["process"]["cwd"] = json!("/work/dir");
    t.args(&["pwd"]);
    assert_eq!(t.run_ok(), "/work/dir\n");
}

#[test]
fn missing_cwd_is_created() {
    // runc creates a cwd that does not exist in the rootfs
    let mut t = harness!("pr-cwd-create");
    t.config["process"]["cwd"] = json!("/does/not/exist");
    t.sh("pwd; stat -c %F .");
    assert_eq!(t.run_ok(), "/does/not/exist\ndirectory\n");
}

#[test]
fn user_uid_gid() {
    let mut t = harness!("pr-uid-gid");
    t.config["process"]["user"] = json!({"uid": 1000, "gid": 2000});
    t.sh("id -u; id -g; grep -E '^(Uid|Gid):' /proc/self/status");
    let out = t.run_ok();
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l[0], "1000", "{out}");
    assert_eq!(l[1], "2000", "{out}");
    assert_eq!(l[2].split_whitespace().collect::<Vec<_>>(), ["Uid:", "1000", "1000", "1000", "1000"]);
    assert_eq!(l[3].split_whitespace().collect::<Vec<_>>(), ["Gid:", "2000", "2000", "2000", "2000"]);
}

#[test]
fn user_additional_gids() {
    let mut t = harness!("pr-addgids");
    t.config["process"]["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [5, 100, 4242]});
    t.sh("grep '^Groups:' /proc/self/status; id");
    let out = t.run_ok();
    let mut l = out.lines();
    let mut groups: Vec<u32> = l.next().unwrap().trim_start_matches("Groups:").split_whitespace().map(|g| g.parse().unwrap()).collect();
    groups.sort();
    // exactly the additional gids (the primary gid is not added by runc)
    assert_eq!(groups, [5, 100, 4242], "{out}");
    let id = l.next().unwrap();
    assert!(id.starts_with("uid=1000(tester) gid=1000(tester)"), "{id}");
    for g in ["5(tty)", "100(users)", "4242"] {
        assert!(id.contains(g), "id output {id:?} lacks {g}");
    }
}

#[test]
fn root_user_has_no_supplementary_groups() {
    let mut t = harness!("pr-root-groups");
    t.sh("grep '^Groups:' /proc/self/status; id -u");
    let out = t.run_ok();
    let mut l = out.lines();
    assert_eq!(l.next().unwrap().trim_start_matches("Groups:").trim(), "", "{out}");
    assert_eq!(l.next(), Some("0"));
}

#[test]
fn umask_is_applied() {
    let mut t = harness!("pr-umask");
    t.config["process"]["user"]["umask"] = json!(0o027);
    t.sh("umask; touch /tmp/f; mkdir /tmp/d; stat -c %a /tmp/f /tmp/d");
    assert_eq!(t.run_ok(), "0027\n640\n750\n");
}

#[test]
fn default_umask_is_0022() {
    let mut t = harness!("pr-umask-default");
    t.sh("umask");
    assert_eq!(t.run_ok(), "0022\n");
}

#[test]
fn rlimit_nofile() {
    let mut t = harness!("pr-rlimit-nofile");
    let host_hard = host_nofile_hard();
    let hard = host_hard.min(4096) - 7; // some value below the host's hard limit
    let soft = hard / 2;
    t.config["process"]["rlimits"] = json!([{ "type": "RLIMIT_NOFILE", "hard": hard, "soft": soft }]);
    t.sh("ulimit -n; ulimit -Hn; grep 'Max open files' /proc/self/limits");
    let out = t.run_ok();
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l[0], soft.to_string(), "{out}");
    assert_eq!(l[1], hard.to_string(), "{out}");
    let f: Vec<&str> = l[2].split_whitespace().collect();
    assert_eq!(f[3..5], [soft.to_string().as_str(), hard.to_string().as_str()], "{out}");
}

#[test]
fn several_rlimits() {
    let mut t = harness!("pr-rlimits");
    // all values at or below the host's hard limits (no CAP_SYS_RESOURCE)
    let hard = host_nofile_hard().min(2048);
    let nproc_hard = host_rlimit(libc::RLIMIT_NPROC).1.min(5000);
    let nproc_soft = nproc_hard - 1000.min(nproc_hard / 2);
    let stack_hard = host_rlimit(libc::RLIMIT_STACK).1.min(16777216);
    let stack_soft = stack_hard / 2;
    t.config["process"]["rlimits"] = json!([
        { "type": "RLIMIT_NOFILE", "hard": hard, "soft": 100 },
        { "type": "RLIMIT_CORE", "hard": 0, "soft": 0 },
        { "type": "RLIMIT_NPROC", "hard": nproc_hard, "soft": nproc_soft },
        { "type": "RLIMIT_STACK", "hard": stack_hard, "soft": stack_soft }
    ]);
    t.sh("cat /proc/self/limits");
    let out = t.run_ok();
    let get = |name: &str| -> (String, String) {
        let line = out.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name}: {out}"));
        let f: Vec<&str> = line[name.len()..].split_whitespace().collect();
        (f[0].to_string(), f[1].to_string())
    };
    assert_eq!(get("Max open files"), ("100".into(), hard.to_string()));
    assert_eq!(get("Max core file size"), ("0".into(), "0".into()));
    assert_eq!(get("Max processes"), (nproc_soft.to_string(), nproc_hard.to_string()));
    assert_eq!(get("Max stack size"), (stack_soft.to_string(), stack_hard.to_string()));
}

fn nnp(name: &str, on: bool) {
    let mut t = harness!(name);
    t.config["process"]["noNewPrivileges"] = json!(on);
    t.sh("grep NoNewPrivs /proc/self/status");
    let out = t.run_ok();
    let v = status_field(&out, "NoNewPrivs").unwrap_or_default();
    assert_eq!(v, if on { "1" } else { "0" }, "{out}");
}

#[test]
fn no_new_privileges_true() {
    nnp("pr-nnp-on", true);
}

#[test]
fn no_new_privileges_false() {
    nnp("pr-nnp-off", false);
}

struct Caps {
    inh: u64,
    prm: u64,
    eff: u64,
    bnd: u64,
    amb: u64,
}

fn read_caps(t: &Harness) -> Caps {
    let o = t.run();
    assert!(o.ok(), "{}", o.describe());
    let f = |k: &str| parse_hex(&status_field(&o.stdout, k).unwrap_or_else(|| panic!("{k}: {}", o.stdout)));
    Caps { inh: f("CapInh"), prm: f("CapPrm"), eff: f("CapEff"), bnd: f("CapBnd"), amb: f("CapAmb") }
}

const CAP_SCRIPT: &str = "grep ^Cap /proc/self/status";

#[test]
fn capabilities_default_set_for_root() {
    let mut t = harness!("pr-caps-default");
    t.sh(CAP_SCRIPT);
    let c = read_caps(&t);
    let set = cap_mask(&["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    assert_eq!(c.bnd, set, "CapBnd {:x}", c.bnd);
    assert_eq!(c.eff, set, "CapEff {:x}", c.eff);
    assert_eq!(c.prm, set, "CapPrm {:x}", c.prm);
    assert_eq!(c.inh, 0, "CapInh {:x}", c.inh);
    // The default spec lists ambient caps but no inheritable ones. The kernel
    // only allows raising an ambient cap that is both permitted and
    // inheritable, so runc ends up with an empty ambient set here.
    assert_eq!(c.amb, 0, "CapAmb {:x}", c.amb);
}

fn root_caps(name: &str, nnp: bool) {
    let mut t = harness!(name);
    let bounding = ["CAP_CHOWN", "CAP_NET_RAW", "CAP_SYS_ADMIN", "CAP_KILL"];
    let permitted = ["CAP_CHOWN", "CAP_NET_RAW", "CAP_KILL"];
    let inheritable = ["CAP_NET_RAW", "CAP_KILL"];
    t.config["process"]["noNewPrivileges"] = json!(nnp);
    t.config["process"]["capabilities"] = json!({
        "bounding": bounding,
        "effective": ["CAP_CHOWN", "CAP_KILL"],
        "permitted": permitted,
        "inheritable": inheritable,
        "ambient": ["CAP_NET_RAW"]
    });
    t.sh(CAP_SCRIPT);
    let c = read_caps(&t);
    assert_eq!(c.bnd, cap_mask(&bounding), "CapBnd {:x}", c.bnd);
    assert_eq!(c.inh, cap_mask(&inheritable), "CapInh {:x}", c.inh);
    assert_eq!(c.amb, cap_mask(&["CAP_NET_RAW"]), "CapAmb {:x}", c.amb);
    // uid 0 execs a file as if it had all file caps: P' = bounding | inheritable,
    // E' = P'. With no_new_privs the kernel caps P' at the permitted set held
    // before execve (the configured one). Either way the configured effective
    // set is not what the process sees after execve.
    let want = if nnp { cap_mask(&permitted) } else { cap_mask(&bounding) | cap_mask(&inheritable) };
    assert_eq!(c.prm, want, "CapPrm {:x}", c.prm);
    assert_eq!(c.eff, want, "CapEff {:x}", c.eff);
}

#[test]
fn capabilities_custom_sets_for_root_with_nnp() {
    root_caps("pr-caps-root-nnp", true);
}

#[test]
fn capabilities_custom_sets_for_root_without_nnp() {
    root_caps("pr-caps-root", false);
}

#[test]
fn capabilities_non_root_with_ambient() {
    // For a non-root user exec'ing a file without file caps, the permitted and
    // effective sets after execve are exactly the ambient set.
    let mut t = harness!("pr-caps-ambient");
    t.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    let bounding = ["CAP_CHOWN", "CAP_NET_RAW", "CAP_NET_BIND_SERVICE", "CAP_KILL"];
    t.config["process"]["capabilities"] = json!({
        "bounding": bounding,
        "effective": ["CAP_CHOWN", "CAP_NET_RAW", "CAP_NET_BIND_SERVICE"],
        "permitted": ["CAP_CHOWN", "CAP_NET_RAW", "CAP_NET_BIND_SERVICE"],
        "inheritable": ["CAP_NET_RAW", "CAP_NET_BIND_SERVICE"],
        "ambient": ["CAP_NET_RAW", "CAP_NET_BIND_SERVICE"]
    });
    t.sh(CAP_SCRIPT);
    let c = read_caps(&t);
    let amb = cap_mask(&["CAP_NET_RAW", "CAP_NET_BIND_SERVICE"]);
    assert_eq!(c.bnd, cap_mask(&bounding), "CapBnd {:x}", c.bnd);
    assert_eq!(c.inh, amb, "CapInh {:x}", c.inh);
    assert_eq!(c.amb, amb, "CapAmb {:x}", c.amb);
    assert_eq!(c.prm, amb, "CapPrm {:x}", c.prm);
    assert_eq!(c.eff, amb, "CapEff {:x}", c.eff);
}

#[test]
fn capabilities_non_root_without_ambient_has_none() {
    let mut t = harness!("pr-caps-nonroot");
    t.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    t.config["process"]["capabilities"] = json!({
        "bounding": ["CAP_CHOWN", "CAP_KILL"],
        "effective": ["CAP_CHOWN", "CAP_KILL"],
        "permitted": ["CAP_CHOWN", "CAP_KILL"]
    });
    t.sh(CAP_SCRIPT);
    let c = read_caps(&t);
    assert_eq!(c.bnd, cap_mask(&["CAP_CHOWN", "CAP_KILL"]), "CapBnd {:x}", c.bnd);
    assert_eq!((c.inh, c.prm, c.eff, c.amb), (0, 0, 0, 0));
}

#[test]
fn capabilities_are_enforced() {
    // without CAP_CHOWN root cannot chown a file it does not own... root owns
    // it, so use CAP_DAC_OVERRIDE: without it root cannot write a 0400 file of
    // another user.
    let mut t = harness!("pr-caps-enforced");
    write_file(&t.rootfs.join("tmp/locked"), "x");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(t.rootfs.join("tmp/locked"), std::fs::Permissions::from_mode(0o400)).unwrap();
    std::os::unix::fs::chown(t.rootfs.join("tmp/locked"), Some(1000), Some(1000)).unwrap();
    t.sh("if echo y >> /tmp/locked 2>/dev/null; then echo wrote; else echo denied; fi");
    assert_eq!(t.run_ok(), "denied\n", "root without CAP_DAC_OVERRIDE wrote a 0400 file");

    let mut t = harness!("pr-caps-enforced2");
    write_file(&t.rootfs.join("tmp/locked"), "x");
    std::fs::set_permissions(t.rootfs.join("tmp/locked"), std::fs::Permissions::from_mode(0o400)).unwrap();
    std::os::unix::fs::chown(t.rootfs.join("tmp/locked"), Some(1000), Some(1000)).unwrap();
    let all = ["CAP_DAC_OVERRIDE", "CAP_KILL"];
    t.config["process"]["capabilities"] = json!({"bounding": all, "effective": all, "permitted": all});
    t.sh("if echo y >> /tmp/locked 2>/dev/null; then echo wrote; else echo denied; fi");
    assert_eq!(t.run_ok(), "wrote\n", "root with CAP_DAC_OVERRIDE could not write");
}

#[test]
fn oom_score_adj() {
    let mut t = harness!("pr-oom");
    t.config["process"]["oomScoreAdj"] = json!(100);
    t.args(&["cat", "/proc/self/oom_score_adj"]);
    assert_eq!(t.run_ok(), "100\n");
}

#[test]
fn oom_score_adj_other_value() {
    let mut t = harness!("pr-oom2");
    t.config["process"]["oomScoreAdj"] = json!(537);
    t.args(&["cat", "/proc/self/oom_score_adj"]);
    assert_eq!(t.run_ok(), "537\n");
}

#[test]
fn stdout_and_stderr_are_separate() {
    let mut t = harness!("pr-stdio");
    t.sh("echo out; echo err >&2; echo out2");
    let o = t.run();
    o.assert_ok();
    assert_eq!(o.stdout, "out\nout2\n");
    assert_eq!(o.stderr, "err\n");
}

#[test]
fn stdin_is_passed_to_a_foreground_run() {
    let mut t = harness!("pr-stdin");
    t.args(&["cat"]);
    t.write_config();
    t.track(&t.id);
    let input = t.dir.join("input.txt");
    std::fs::write(&input, "line one\nline two\n").unwrap();
    let b = t.bundle_str();
    let mut c = t.command(&["run", "--bundle", &b, &t.id]);
    c.stdin(std::fs::File::open(&input).unwrap());
    let o = t.exec(c, CMD_TIMEOUT);
    o.assert_ok();
    assert_eq!(o.stdout, "line one\nline two\n");
}
