//! Reading files a command does not fully trust (state.json, `update -r`):
//! never through a symlink, never blocking in open (a FIFO), only a
//! regular file, and at most a given size, so a file swapped for
//! /dev/zero, a FIFO or a huge file is an error naming it, not a hang or
//! an exhausted memory.

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Why a bounded read failed.
#[derive(Debug)]
pub enum ReadError {
    /// The open or read failed (NotFound among them).
    Io(std::io::Error),
    /// The path is a symlink (not followed).
    Symlink,
    /// Not a regular file: the kind found ("a FIFO", "a directory", ...).
    NotRegular(&'static str),
    /// Larger than the limit.
    TooBig(u64),
}

impl ReadError {
    pub fn not_found(&self) -> bool {
        matches!(self, ReadError::Io(e) if e.kind() == std::io::ErrorKind::NotFound)
    }
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "{e}"),
            ReadError::Symlink => f.write_str("is a symbolic link (not followed)"),
            ReadError::NotRegular(k) => write!(f, "is {k}, not a regular file"),
            ReadError::TooBig(limit) => write!(f, "is larger than {}", human(*limit)),
        }
    }
}

fn human(n: u64) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else {
        format!("{n} bytes")
    }
}

fn kind(t: std::fs::FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// Read the regular file at `path` (its last component not a symlink),
/// at most `limit` bytes.
pub fn read_file(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    read_regular(path, limit, false)
}

/// As [`read_file`], following a symlink at the end when `follow` (a
/// bundle's config.json, as runc). Either way a FIFO or a device is
/// refused by fstat, never waited on.
pub fn read_regular(path: &Path, limit: u64, follow: bool) -> Result<Vec<u8>, ReadError> {
    // O_NONBLOCK: opening a FIFO must not wait for a writer (it is
    // refused below); it means nothing for a regular file. O_NOCTTY: a
    // terminal device does not become ours on the way to being refused.
    let nofollow = if follow { 0 } else { libc::O_NOFOLLOW };
    let f = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nofollow | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(ReadError::Symlink),
        Err(e) => return Err(ReadError::Io(e)),
    };
    let meta = f.metadata().map_err(ReadError::Io)?;
    if !meta.file_type().is_file() {
        return Err(ReadError::NotRegular(kind(meta.file_type())));
    }
    if meta.len() > limit {
        return Err(ReadError::TooBig(limit));
    }
    read_limited(f, meta.len() as usize, limit)
}

/// Read a file the user named (`update -r FILE`), at most `limit` bytes:
/// opened as given (a symlink, `<(...)`'s /dev/fd/N or a FIFO are the
/// user's choice), only the size is bounded (/dev/zero is an error).
pub fn read_named(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let f = std::fs::File::open(path).map_err(ReadError::Io)?;
    let hint = f.metadata().map(|m| m.len().min(limit) as usize).unwrap_or(0);
    read_limited(f, hint, limit)
}

/// Read `r` to its end, at most `limit` bytes (stdin for `update -r -`).
pub fn read_limited(r: impl Read, hint: usize, limit: u64) -> Result<Vec<u8>, ReadError> {
    let mut data = Vec::with_capacity(hint.saturating_add(1));
    // One byte over the limit tells "exactly the limit" from "more"
    // (the file may grow after the fstat).
    r.take(limit.saturating_add(1)).read_to_end(&mut data).map_err(ReadError::Io)?;
    if data.len() as u64 > limit {
        return Err(ReadError::TooBig(limit));
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_is_not_a_small_regular_file() {
        let d = std::env::temp_dir().join(format!("rpc-bounded-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let f = d.join("f");
        std::fs::write(&f, b"12345").unwrap();
        assert_eq!(read_file(&f, 5).unwrap(), b"12345");
        assert!(matches!(read_file(&f, 4), Err(ReadError::TooBig(4))));
        std::os::unix::fs::symlink("/dev/zero", d.join("zero")).unwrap();
        assert!(matches!(read_file(&d.join("zero"), 1 << 20), Err(ReadError::Symlink)));
        assert!(matches!(read_file(Path::new("/dev/zero"), 1 << 20), Err(ReadError::NotRegular("a character device"))));
        nix::unistd::mkfifo(&d.join("fifo"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert!(matches!(read_file(&d.join("fifo"), 1 << 20), Err(ReadError::NotRegular("a FIFO"))));
        assert!(matches!(read_file(&d, 1 << 20), Err(ReadError::NotRegular("a directory"))));
        assert!(read_file(&d.join("missing"), 1).unwrap_err().not_found());
        assert!(matches!(read_limited(std::io::repeat(0), 0, 1 << 20), Err(ReadError::TooBig(_))));
        assert!(matches!(read_named(Path::new("/dev/zero"), 1 << 20), Err(ReadError::TooBig(_))));
        assert_eq!(read_named(&d.join("zero").with_file_name("f"), 5).unwrap(), b"12345");
        assert_eq!(read_file(&f, 5).map_err(|e| e.to_string()).unwrap().len(), 5);
        assert_eq!(ReadError::TooBig(1 << 20).to_string(), "is larger than 1 MiB");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
