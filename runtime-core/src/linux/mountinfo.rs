//! The escaping of /proc/PID/mountinfo (and /proc/mounts): the kernel
//! writes space, tab, newline and backslash in paths as `\ooo` octal
//! (`\040`, `\011`, `\012`, `\134`). Undone once here; the cgroup probe,
//! testkit and the conformance runner use it.

use std::borrow::Cow;

/// A mountinfo field with the kernel's `\ooo` escapes undone. A backslash
/// not followed by three octal digits is kept as it is.
pub fn unescape(s: &str) -> Cow<'_, str> {
    if !s.contains('\\') {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = |c: &u8| (b'0'..=b'7').contains(c);
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(octal) {
            // Three octal digits can exceed a byte (\777); the kernel never
            // writes those, and wrapping keeps this total.
            out.push(((b[i + 1] - b'0') as u32 * 64 + (b[i + 2] - b'0') as u32 * 8 + (b[i + 3] - b'0') as u32) as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_four_escapes_and_plain_text() {
        assert_eq!(unescape(r"/a\040b\011c\012d\134e"), "/a b\tc\nd\\e");
        assert_eq!(unescape("/plain"), "/plain");
        assert!(matches!(unescape("/plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn a_short_or_non_octal_escape_stays() {
        assert_eq!(unescape(r"/plain\04"), r"/plain\04");
        assert_eq!(unescape(r"/x\08y"), r"/x\08y");
        assert_eq!(unescape("\\"), "\\");
        // at the very end
        assert_eq!(unescape(r"/end\040"), "/end ");
    }
}
