//! `terminal: true` with `--console-socket`: the runtime sends the pty master
//! over the unix socket (SCM_RIGHTS); the test reads/writes the container's
//! terminal through it.
#[macro_use]
mod common;

use common::*;
use serde_json::json;
use std::fs::File;
use std::io::Write;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::time::Duration;
use testkit::console::ConsoleSocket;

const T: Duration = Duration::from_secs(10);

/// A console socket in the harness dir (`testkit::console`): the runtime
/// connects to it and sends the pty master.
fn console_listener(t: &Harness) -> (PathBuf, ConsoleSocket) {
    let path = t.dir.join("console.sock");
    let s = ConsoleSocket::listen(&path, T).expect("bind console socket");
    (path, s)
}

/// Read from the pty master until `until` shows up, EIO/EOF, or timeout.
fn read_master(master: &mut File, until: &str) -> String {
    testkit::console::read_until(master, until, T)
}

/// create with a console socket, start, and read the terminal until DONE.
fn run_on_console(t: &mut Harness, script: &str) -> (String, File) {
    t.config["process"]["terminal"] = json!(true);
    t.sh(&format!("{script}; echo DONE; sleep 5"));
    let (sock, mut h) = console_listener(t);
    let o = t.create_id(&t.id.clone(), &["--console-socket", sock.to_str().unwrap()]);
    o.assert_ok();
    let mut master = h.master().expect("pty master fd received");
    t.start().assert_ok();
    let out = read_master(&mut master, "DONE");
    (out, master)
}

#[test]
fn console_socket_receives_the_pty_master() {
    let mut t = harness!("co-tty");
    let (out, _m) =
        run_on_console(&mut t, "tty; test -t 0 && echo stdin-is-tty; test -t 1 && echo stdout-is-tty; test -t 2 && echo stderr-is-tty");
    assert_eq!(out, "/dev/pts/0\nstdin-is-tty\nstdout-is-tty\nstderr-is-tty\nDONE\n", "terminal output: {out:?}");
}

#[test]
fn console_input_reaches_the_container() {
    let mut t = harness!("co-input");
    t.config["process"]["terminal"] = json!(true);
    t.sh("stty -echo; echo READY; read line; echo \"got:$line\"; sleep 5");
    let (sock, mut h) = console_listener(&t);
    t.create_id(&t.id.clone(), &["--console-socket", sock.to_str().unwrap()]).assert_ok();
    let mut master = h.master().expect("pty master");
    t.start().assert_ok();
    let first = read_master(&mut master, "READY");
    assert!(first.contains("READY"), "{first:?}");
    master.write_all(b"hello console\n").unwrap();
    let rest = read_master(&mut master, "got:hello console");
    assert!(rest.contains("got:hello console"), "{rest:?}");
}

#[test]
fn console_is_a_controlling_terminal_and_dev_console() {
    let mut t = harness!("co-ctty");
    // /dev/tty opens only when there is a controlling terminal
    let (out, _m) =
        run_on_console(&mut t, "echo via-dev-tty > /dev/tty && echo ctty-ok; stat -c '%F %t' /dev/console; stat -c %t /dev/pts/0");
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l[0], "via-dev-tty", "{out:?}");
    assert_eq!(l[1], "ctty-ok", "{out:?}");
    // /dev/console is the pty slave (a devpts node, major 136 = 0x88)
    assert_eq!(l[2], "character special file 88", "{out:?}");
    assert_eq!(l[3], "88", "{out:?}");
}

#[test]
fn console_size() {
    let mut t = harness!("co-size");
    t.config["process"]["consoleSize"] = json!({"height": 40, "width": 123});
    let (out, _m) = run_on_console(&mut t, "stty size");
    assert_eq!(out.lines().next(), Some("40 123"), "{out:?}");
}

#[test]
fn terminal_with_run_detached_and_no_console_socket_fails() {
    let mut t = harness!("co-run-d-nosock");
    let marker = format!("marker-{}", t.id);
    t.config["process"]["terminal"] = json!(true);
    t.marked_sleep(&marker);
    let o = t.run_detached();
    o.assert_fail();
    t.assert_no_leftovers(&t.id, &marker);
    // control: with a console socket the same run -d works
    let (sock, mut h) = console_listener(&t);
    t.run_with(&["-d", "--console-socket", sock.to_str().unwrap()]).assert_ok();
    let _master = h.master().expect("pty master");
    assert_eq!(t.status().as_deref(), Some("running"));
}

#[test]
fn console_socket_without_terminal_fails() {
    let mut t = harness!("co-sock-noterm");
    let marker = format!("marker-{}", t.id);
    t.marked_sleep(&marker);
    let sock = t.dir.join("console.sock");
    let l = UnixListener::bind(&sock).unwrap();
    let o = t.create_id(&t.id.clone(), &["--console-socket", sock.to_str().unwrap()]);
    o.assert_fail();
    t.assert_no_leftovers(&t.id, &marker);
    drop(l);
    std::fs::remove_file(&sock).unwrap();
    // control: the same with terminal: true works
    t.config["process"]["terminal"] = json!(true);
    let (sock, mut h) = console_listener(&t);
    t.create_id(&t.id.clone(), &["--console-socket", sock.to_str().unwrap()]).assert_ok();
    let _master = h.master().expect("pty master");
}

#[test]
fn console_socket_that_does_not_exist_fails() {
    let mut t = harness!("co-sock-missing");
    let marker = format!("marker-{}", t.id);
    t.config["process"]["terminal"] = json!(true);
    t.marked_sleep(&marker);
    let sock = t.dir.join("nobody-listens.sock");
    let o = t.create_id(&t.id.clone(), &["--console-socket", sock.to_str().unwrap()]);
    o.assert_fail();
    t.assert_no_leftovers(&t.id, &marker);
    // control: with a listener it works
    let (sock, mut h) = console_listener(&t);
    t.create_id(&t.id.clone(), &["--console-socket", sock.to_str().unwrap()]).assert_ok();
    let _master = h.master().expect("pty master");
}

#[test]
fn terminal_exit_code_and_state() {
    let mut t = harness!("co-exit");
    t.config["process"]["terminal"] = json!(true);
    t.sh("echo bye; exit 0");
    let (sock, mut h) = console_listener(&t);
    t.create_id(&t.id.clone(), &["--console-socket", sock.to_str().unwrap()]).assert_ok();
    let mut master = h.master().expect("pty master");
    assert_eq!(t.status().as_deref(), Some("created"));
    t.start().assert_ok();
    let out = read_master(&mut master, "bye");
    assert!(out.contains("bye"), "{out:?}");
    assert!(t.wait_status("stopped", T), "{:?}", t.status());
}
