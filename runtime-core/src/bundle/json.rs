//! Type errors of config.json reported by their JSON path: the value is
//! printed pretty, one member per line, and serde's line number mapped
//! back to the member.

use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Result};

/// Deserialize into an oci-spec type, reporting a type error by its JSON
/// path. The value is printed pretty (one member per line) and parsed from
/// that text, so the error's line number maps back to a path; one code
/// path for success and failure keeps the binary small.
pub fn typed<T: serde::de::DeserializeOwned>(path: &Path, v: &Value) -> Result<T> {
    let text = serde_json::to_vec_pretty(v).map_err(|e| Error::config(path, "", e.to_string()))?;
    serde_json::from_slice(&text).map_err(|e| {
        let msg = e.to_string();
        let msg = msg.rsplit_once(" at line ").map(|(m, _)| m.to_string()).unwrap_or(msg);
        let mut at = path_at_line(&text, e.line());
        // serde reports a missing member at the end of its object, whose
        // path `path_at_line` gives: name the member itself.
        if let Some(field) = msg.strip_prefix("missing field `").and_then(|m| m.strip_suffix('`')) {
            at = if at.is_empty() { field.to_string() } else { format!("{at}.{field}") };
        }
        Error::config(path, at, msg)
    })
}

/// The JSON path of the member on `line` (1-based) of pretty-printed JSON;
/// on a closing line, the path of the container it closes.
fn path_at_line(text: &[u8], line: usize) -> String {
    // Each open container: its name in the path and, for arrays, the
    // index of the next element.
    let mut stack: Vec<(String, Option<usize>)> = Vec::new();
    let mut here = String::new();
    for (n, raw) in String::from_utf8_lossy(text).lines().enumerate() {
        let l = raw.trim();
        let closing = l.starts_with('}') || l.starts_with(']');
        if closing {
            if n + 1 >= line {
                return dotted(&stack);
            }
            stack.pop();
            continue;
        }
        let (name, rest) = if let Some(r) = l.strip_prefix('"').and_then(|r| r.split_once("\": ")) {
            (r.0.to_string(), r.1)
        } else {
            match stack.last_mut() {
                Some((_, Some(i))) => {
                    let s = format!("[{i}]");
                    *i += 1;
                    (s, l)
                }
                _ => (String::new(), l),
            }
        };
        let prefix = dotted(&stack);
        here = if prefix.is_empty() {
            name.clone()
        } else if name.starts_with('[') {
            format!("{prefix}{name}")
        } else if name.is_empty() {
            prefix.clone()
        } else {
            format!("{prefix}.{name}")
        };
        if n + 1 >= line {
            break;
        }
        let rest = rest.trim_end_matches(',');
        if rest.ends_with('{') {
            stack.push((name, None));
        } else if rest.ends_with('[') {
            stack.push((name, Some(0)));
        }
    }
    here
}

/// `a.b[1].c` from the names of the open containers.
fn dotted(stack: &[(String, Option<usize>)]) -> String {
    stack.iter().map(|(k, _)| k.as_str()).filter(|k| !k.is_empty()).fold(String::new(), |acc, k| {
        if acc.is_empty() || k.starts_with('[') {
            acc + k
        } else {
            acc + "." + k
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_from_pretty_lines() {
        let v: Value = serde_json::from_str(r#"{"a":{"b":[1,{"c":2}],"d":3},"e":[[1],[2]]}"#).unwrap();
        let t = serde_json::to_vec_pretty(&v).unwrap();
        let text = String::from_utf8_lossy(&t).into_owned();
        let line = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
        assert_eq!(path_at_line(&t, line("\"c\"")), "a.b[1].c");
        assert_eq!(path_at_line(&t, line("\"d\"")), "a.d");
        let v: Value = serde_json::from_str(r#"{"m":[{"x":1},{"y":"bad"}]}"#).unwrap();
        let t = serde_json::to_vec_pretty(&v).unwrap();
        let text = String::from_utf8_lossy(&t).into_owned();
        let l = text.lines().position(|l| l.contains("bad")).unwrap() + 1;
        assert_eq!(path_at_line(&t, l), "m[1].y");
    }
}
