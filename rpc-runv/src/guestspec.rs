//! The container's config as the guest's rpc-runc gets it: the rootfs and
//! bind sources where the agent sees the shared tree, the network
//! namespace gone (the VM's own network is the container's), the host's
//! hooks gone (they ran on the host), a guest-local cgroup path.

use serde_json::{json, Value};

use crate::error::{Error, Result};

/// Hooks that run on the host (the lifecycle runs them there); the others
/// (createContainer, startContainer) run in the guest's container.
const HOST_HOOKS: [&str; 4] = ["prestart", "createRuntime", "poststart", "poststop"];

/// A bind mount of the config: its index among the binds (the shared
/// tree's `m<N>`) and host source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub n: usize,
    pub source: String,
    pub file: bool,
}

fn is_bind(m: &Value) -> bool {
    m.get("type").and_then(Value::as_str) == Some("bind")
        || m.get("options").and_then(Value::as_array).is_some_and(|o| o.iter().any(|x| x == "bind" || x == "rbind"))
}

/// The binds of `config`, in order.
pub fn binds(config: &Value) -> Vec<Bind> {
    let mounts = config.get("mounts").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
    mounts
        .iter()
        .filter(|m| is_bind(m))
        .filter_map(|m| m.get("source").and_then(Value::as_str))
        .enumerate()
        .map(|(n, s)| Bind { n, source: s.to_string(), file: std::fs::metadata(s).is_ok_and(|m| !m.is_dir()) })
        .collect()
}

/// `config` rewritten for container `id` in the guest, whose shared tree
/// (mounted at `shared`, [`rpc_proto::guest::SHARED_DIR`]) holds
/// `<id>/rootfs` and `<id>/m<N>`.
pub fn rewrite(id: &str, config: &Value, shared: &str) -> Result<Value> {
    let mut c = config.clone();
    let base = format!("{shared}/{id}");
    let obj = c.as_object_mut().ok_or_else(|| Error::Invalid("config.json: not an object".into()))?;
    let readonly = obj.get("root").and_then(|r| r.get("readonly")).cloned().unwrap_or(Value::Bool(false));
    obj.insert("root".into(), json!({ "path": format!("{base}/rootfs"), "readonly": readonly }));
    if let Some(mounts) = obj.get_mut("mounts").and_then(Value::as_array_mut) {
        for (n, m) in mounts.iter_mut().filter(|m| is_bind(m)).enumerate() {
            m["source"] = Value::String(format!("{base}/m{n}"));
        }
    }
    if let Some(hooks) = obj.get_mut("hooks").and_then(Value::as_object_mut) {
        for h in HOST_HOOKS {
            hooks.remove(h);
        }
    }
    if let Some(linux) = obj.get_mut("linux").and_then(Value::as_object_mut) {
        if let Some(ns) = linux.get_mut("namespaces").and_then(Value::as_array_mut) {
            // The VM's network is the container's; a namespace path names
            // a host namespace, which no VM can join.
            if let Some(p) = ns.iter().find(|n| n.get("type") != Some(&json!("network")) && n.get("path").is_some_and(|p| p != "")) {
                return Err(Error::Invalid(format!(
                    "container {id}: linux.namespaces: {} namespace path {}: a host namespace cannot be joined from a VM",
                    p.get("type").and_then(Value::as_str).unwrap_or("?"),
                    p.get("path").unwrap_or(&Value::Null)
                )));
            }
            ns.retain(|n| n.get("type") != Some(&json!("network")));
        }
        linux.insert("cgroupsPath".into(), Value::String(format!("/rpc/{id}")));
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rootfs_binds_network_hooks_and_cgroup_are_rewritten() {
        let c = json!({
            "root": {"path": "rootfs", "readonly": true},
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/data", "type": "bind", "source": "/srv/data", "options": ["rbind"]},
                {"destination": "/etc/x", "source": "/etc/hostname", "options": ["bind", "ro"]}
            ],
            "hooks": {"prestart": [{"path": "/h"}], "createContainer": [{"path": "/c"}]},
            "linux": {"namespaces": [{"type": "pid"}, {"type": "network"}], "cgroupsPath": "system.slice:x:y"},
            "process": {"args": ["sh"]}
        });
        let g = rewrite("c1", &c, "/run/rpc/shared").expect("rewrite");
        assert_eq!(g["root"], json!({"path": "/run/rpc/shared/c1/rootfs", "readonly": true}));
        assert_eq!(g["mounts"][0]["source"], "proc");
        assert_eq!(g["mounts"][1]["source"], "/run/rpc/shared/c1/m0");
        assert_eq!(g["mounts"][2]["source"], "/run/rpc/shared/c1/m1");
        assert!(g["hooks"].get("prestart").is_none() && g["hooks"].get("createContainer").is_some());
        assert_eq!(g["linux"]["namespaces"], json!([{"type": "pid"}]));
        assert_eq!(g["linux"]["cgroupsPath"], "/rpc/c1");
        assert_eq!(g["process"], c["process"]);
        let b = binds(&c);
        assert_eq!(b.iter().map(|b| (b.n, b.source.as_str())).collect::<Vec<_>>(), vec![(0, "/srv/data"), (1, "/etc/hostname")]);
        assert!(b[1].file);
    }

    #[test]
    fn a_host_namespace_path_is_refused() {
        let c = json!({"linux": {"namespaces": [{"type": "ipc", "path": "/proc/1/ns/ipc"}]}});
        let e = rewrite("c1", &c, "/s").expect_err("host ns").to_string();
        assert!(e.contains("container c1") && e.contains("ipc") && e.contains("/proc/1/ns/ipc"), "{e}");
    }
}
