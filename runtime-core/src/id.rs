//! Container id validation: 1-1024 chars of `[A-Za-z0-9_.+-]`, not `.` or `..`.
//! Checked before anything is created, so a bad id never touches the disk.

use crate::error::{Error, Result};

pub const MAX_ID_LEN: usize = 1024;

pub fn validate(id: &str) -> Result<()> {
    let bad = |reason| Err(Error::InvalidId { id: id.to_string(), reason });
    if id.is_empty() {
        return bad("must not be empty");
    }
    if id.len() > MAX_ID_LEN {
        return bad("longer than 1024 characters");
    }
    if id == "." || id == ".." {
        return bad("must not be \".\" or \"..\"");
    }
    if let Some(c) = id.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '+' | '-'))) {
        return if c == '/' {
            bad("must not contain '/'")
        } else if c.is_control() {
            bad("must not contain control characters")
        } else {
            bad("may only contain [A-Za-z0-9_.+-]")
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_runc_style_ids() {
        for id in ["a", "abc-123", "x.y_z+1", &"a".repeat(1024), "..a", "a.."] {
            assert!(validate(id).is_ok(), "{id}");
        }
    }

    #[test]
    fn refuses_bad_ids() {
        for id in ["", ".", "..", "a/b", "../x", "a\nb", "a\tb", "a b", "é", &"a".repeat(1025), "a\0b"] {
            assert!(validate(id).is_err(), "{id:?}");
        }
    }
}
