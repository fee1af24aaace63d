//! The `--console-socket` side: testkit's, shared with rpc-runc's tests.

pub use testkit::console::{is_pty_master, read_until, ConsoleSocket};

use std::fs::File;
use std::io::{self, Write};

pub fn write_all(master: &mut File, s: &str) -> io::Result<()> {
    master.write_all(s.as_bytes())
}
