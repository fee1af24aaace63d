//! `terminal: true` with `--console-socket`: the runtime sends the pty master
//! over the unix socket (SCM_RIGHTS); the test reads/writes the container's
//! terminal through it.
#[macro_use]
mod common;

use common::*;
use serde_json::json;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::io::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);

/// Receive one fd sent with SCM_RIGHTS.
fn recv_fd(sock: &UnixStream) -> std::io::Result<RawFd> {
    recv_fd_msg(sock).map(|(_, fd)| fd)
}

/// Listen on a socket in the harness dir; a thread accepts one connection and
/// returns the received fd.
fn console_listener(t: &Harness) -> (PathBuf, std::thread::JoinHandle<std::io::Result<File>>) {
    let path = t.dir.join("console.sock");
    let l = UnixListener::bind(&path).expect("bind console socket");
    l.set_nonblocking(true).unwrap();
    let h = std::thread::spawn(move || {
        let deadline = Instant::now() + T;
        loop {
            match l.accept() {
                Ok((s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    s.set_read_timeout(Some(T)).unwrap();
                    let fd = recv_fd(&s)?;
                    // SAFETY: recv_fd returns a new fd of ours, owned by nothing else.
                    return Ok(unsafe { File::from_raw_fd(fd) });
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() > deadline {
                        return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "no connection"));
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(e),
            }
        }
    });
    (path, h)
}

/// Read from the pty master until `until` shows up, EIO/EOF, or timeout.
fn read_master(master: &mut File, until: &str) -> String {
    let fd = master.as_raw_fd();
    // SAFETY: fcntl on an fd `master` keeps open; F_GETFL/F_SETFL touch no memory.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
    let deadline = Instant::now() + T;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match master.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if String::from_utf8_lossy(&out).contains(until) {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() > deadline {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(_) => break, // EIO: the slave side is closed
        }
    }
    String::from_utf8_lossy(&out).replace("\r\n", "\n")
}

/// create with a console socket, start, and read the terminal until DONE.
fn run_on_console(t: &mut Harness, script: &str) -> (String, File) {
    t.config["process"]["terminal"] = json!(true);
    t.sh(&format!("{script}; echo DONE; sleep 5"));
    let (sock, h) = console_listener(t);
    let o = t.create_id(&t.id.clone(), &["--console-socket", sock.to_str().unwrap()]);
    o.assert_ok();
    let mut master = h.join().unwrap().expect("pty master fd received");
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
    let (sock, h) = console_listener(&t);
    t.create_id(&t.id.clone(), &["--console-socket", sock.to_str().unwrap()]).assert_ok();
    let mut master = h.join().unwrap().expect("pty master");
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
    let (sock, h) = console_listener(&t);
    t.run_with(&["-d", "--console-socket", sock.to_str().unwrap()]).assert_ok();
    let _master = h.join().unwrap().expect("pty master");
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
    let (sock, h) = console_listener(&t);
    t.create_id(&t.id.clone(), &["--console-socket", sock.to_str().unwrap()]).assert_ok();
    let _master = h.join().unwrap().expect("pty master");
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
    let (sock, h) = console_listener(&t);
    t.create_id(&t.id.clone(), &["--console-socket", sock.to_str().unwrap()]).assert_ok();
    let _master = h.join().unwrap().expect("pty master");
}

#[test]
fn terminal_exit_code_and_state() {
    let mut t = harness!("co-exit");
    t.config["process"]["terminal"] = json!(true);
    t.sh("echo bye; exit 0");
    let (sock, h) = console_listener(&t);
    t.create_id(&t.id.clone(), &["--console-socket", sock.to_str().unwrap()]).assert_ok();
    let mut master = h.join().unwrap().expect("pty master");
    assert_eq!(t.status().as_deref(), Some("created"));
    t.start().assert_ok();
    let out = read_master(&mut master, "bye");
    assert!(out.contains("bye"), "{out:?}");
    assert!(t.wait_status("stopped", T), "{:?}", t.status());
}
