//! How a row changes the bundle (or a file): a JSON patch, or the bytes.

use serde_json::{json, Value};

/// How a row changes the bundle.
pub enum Patch {
    /// Set the value at a JSON pointer (objects are made along the way).
    Set(&'static str, Value),
    /// Remove the member at a JSON pointer.
    Del(&'static str),
    /// Append to the array at a JSON pointer.
    Push(&'static str, Value),
    /// Several patches in order.
    All(Vec<Patch>),
    /// config.json is exactly these bytes.
    Bytes(Vec<u8>),
    /// config.json is a directory.
    ConfigDir,
}

pub use Patch::*;

pub fn set(p: &'static str, v: Value) -> Patch {
    Set(p, v)
}
pub fn del(p: &'static str) -> Patch {
    Del(p)
}
pub fn push(p: &'static str, v: Value) -> Patch {
    Push(p, v)
}
pub fn text(s: &str) -> Patch {
    Bytes(s.as_bytes().to_vec())
}

/// Set `v` at JSON pointer `ptr` in `root`, making objects on the way (an
/// array index equal to the length appends).
pub fn set_ptr(root: &mut Value, ptr: &str, v: Value) {
    let parts: Vec<String> = ptr.split('/').skip(1).map(|s| s.replace("~1", "/").replace("~0", "~")).collect();
    let mut cur = root;
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        if cur.is_array() {
            let arr = cur.as_array_mut().unwrap();
            let idx: usize = part.parse().unwrap_or_else(|_| panic!("{ptr}: {part} is not an index"));
            if idx == arr.len() {
                arr.push(Value::Null);
            }
            if last {
                arr[idx] = v;
                return;
            }
            cur = &mut arr[idx];
            continue;
        }
        if !cur.is_object() {
            *cur = json!({});
        }
        let obj = cur.as_object_mut().unwrap();
        if last {
            obj.insert(part.clone(), v);
            return;
        }
        cur = obj.entry(part.clone()).or_insert_with(|| json!({}));
    }
}

pub fn del_ptr(root: &mut Value, ptr: &str) {
    let (parent, key) = ptr.rsplit_once('/').unwrap();
    let p = if parent.is_empty() { Some(root) } else { root.pointer_mut(parent) };
    match p {
        Some(Value::Object(o)) => {
            o.remove(key);
        }
        Some(Value::Array(a)) => {
            a.remove(key.parse::<usize>().unwrap());
        }
        _ => panic!("{ptr}: no such member"),
    }
}

pub fn apply(p: &Patch, cfg: &mut Value) {
    match p {
        Set(ptr, v) => set_ptr(cfg, ptr, v.clone()),
        Del(ptr) => del_ptr(cfg, ptr),
        Push(ptr, v) => {
            if cfg.pointer(ptr).is_none() {
                set_ptr(cfg, ptr, json!([]));
            }
            cfg.pointer_mut(ptr).and_then(Value::as_array_mut).unwrap_or_else(|| panic!("{ptr} is not an array")).push(v.clone())
        }
        All(ps) => ps.iter().for_each(|p| apply(p, cfg)),
        Bytes(_) | ConfigDir => {}
    }
}
