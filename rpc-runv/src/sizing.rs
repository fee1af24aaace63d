//! How big a container's VM is: vCPUs and guest RAM from its config,
//! annotations and the environment, and the host cgroup limits that then
//! bound the VM's host processes.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};

/// Guest RAM when the config sets no memory limit (MiB).
pub const DEFAULT_MEM_MIB: u64 = 256;
/// Guest RAM never goes below this (MiB): the kernel, the agent, rpc-runc.
pub const MIN_MEM_MIB: u64 = 128;
/// Guest RAM above the container's limit, for the guest's own kernel and
/// agent (MiB); `RPC_RUNV_GUEST_OVERHEAD` overrides.
pub const GUEST_OVERHEAD_MIB: u64 = 48;
/// Host memory above guest RAM for the hypervisor and its helpers (MiB);
/// `RPC_RUNV_HOST_OVERHEAD` overrides.
pub const HOST_OVERHEAD_MIB: u64 = 96;
/// The most vCPUs a VM gets.
pub const MAX_VCPUS: u64 = 8;
/// The most guest RAM an annotation or variable may ask for (MiB).
pub const MAX_MEM_MIB: u64 = 64 * 1024;

pub const ANN_VCPUS: &str = "io.rpc-runv.vm.vcpus";
pub const ANN_MEMORY: &str = "io.rpc-runv.vm.memory";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Size {
    pub vcpus: u32,
    pub mem_mib: u32,
    /// Host cgroup memory limit (bytes), when the config had a limit.
    pub host_mem_limit: Option<i64>,
}

fn env_u64(name: &str) -> Result<Option<u64>> {
    match std::env::var(name) {
        Ok(v) => v.trim().parse().map(Some).map_err(|_| Error::Invalid(format!("{name}={v:?} is not a number"))),
        Err(_) => Ok(None),
    }
}

fn ann_u64(config: &Value, key: &str, max: u64) -> Result<Option<u64>> {
    let Some(v) = config.pointer("/annotations").and_then(|a| a.get(key)).and_then(Value::as_str) else { return Ok(None) };
    match v.trim().parse::<u64>() {
        Ok(n) if (1..=max).contains(&n) => Ok(Some(n)),
        _ => Err(Error::Invalid(format!("annotation {key}={v:?}: want a number from 1 to {max}"))),
    }
}

/// CPUs named by a cpuset list ("0-3,6").
fn cpuset_count(s: &str) -> Option<u64> {
    let mut n = 0;
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        n += match part.split_once('-') {
            Some((a, b)) => b.parse::<u64>().ok()?.checked_sub(a.parse::<u64>().ok()?)? + 1,
            None => {
                part.parse::<u64>().ok()?;
                1
            }
        };
    }
    (n > 0).then_some(n)
}

/// The size of the VM for `config` (the container's config.json).
pub fn of(config: &Value, host_cpus: u64) -> Result<Size> {
    let res = config.pointer("/linux/resources");
    let quota = res.and_then(|r| r.pointer("/cpu/quota")).and_then(Value::as_i64).filter(|q| *q > 0);
    let period = res.and_then(|r| r.pointer("/cpu/period")).and_then(Value::as_u64).filter(|p| *p > 0).unwrap_or(100_000);
    let cpus = res.and_then(|r| r.pointer("/cpu/cpus")).and_then(Value::as_str).and_then(cpuset_count);
    let mut vcpus = match (quota, cpus) {
        (Some(q), _) => (q as u64).div_ceil(period),
        (None, Some(n)) => n,
        _ => 1,
    };
    if let Some(n) = ann_u64(config, ANN_VCPUS, MAX_VCPUS)? {
        vcpus = n;
    }
    let vcpus = vcpus.clamp(1, MAX_VCPUS.min(host_cpus.max(1)));

    let limit = res.and_then(|r| r.pointer("/memory/limit")).and_then(Value::as_i64).filter(|l| *l > 0);
    let guest_overhead = env_u64("RPC_RUNV_GUEST_OVERHEAD")?.unwrap_or(GUEST_OVERHEAD_MIB);
    let mut mem = match limit {
        Some(l) => (l as u64).div_ceil(1 << 20) + guest_overhead,
        None => env_u64("RPC_RUNV_VM_MEMORY")?.unwrap_or(DEFAULT_MEM_MIB),
    };
    if let Some(m) = ann_u64(config, ANN_MEMORY, MAX_MEM_MIB)? {
        mem = m;
    }
    let mem = mem.clamp(MIN_MEM_MIB, MAX_MEM_MIB);
    let host_overhead = env_u64("RPC_RUNV_HOST_OVERHEAD")?.unwrap_or(HOST_OVERHEAD_MIB);
    let host_mem_limit = limit.map(|_| ((mem + host_overhead) << 20) as i64);
    Ok(Size { vcpus: vcpus as u32, mem_mib: mem as u32, host_mem_limit })
}

/// An `update` must fit the VM it runs in: guest RAM is fixed at create.
pub fn check_update(id: &str, size: &Size, mem_limit: Option<i64>, quota: Option<i64>, period: Option<u64>) -> Result<()> {
    let overhead = env_u64("RPC_RUNV_GUEST_OVERHEAD")?.unwrap_or(GUEST_OVERHEAD_MIB);
    let room = u64::from(size.mem_mib).saturating_sub(overhead);
    if let Some(l) = mem_limit.filter(|l| *l > 0) {
        let want = (l as u64).div_ceil(1 << 20);
        if want > room {
            return Err(Error::Invalid(format!(
                "container {id}: memory limit {want} MiB exceeds the VM's {} MiB of RAM ({room} MiB for containers; set {ANN_MEMORY} at create)",
                size.mem_mib
            )));
        }
    }
    if let Some(q) = quota.filter(|q| *q > 0) {
        let p = period.filter(|p| *p > 0).unwrap_or(100_000);
        if q as u64 > u64::from(size.vcpus) * p {
            return Err(Error::Invalid(format!(
                "container {id}: CPU quota {q}/{p} exceeds the VM's {} vCPUs (set {ANN_VCPUS} at create)",
                size.vcpus
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn size_follows_the_config() {
        let s = of(&json!({}), 2).expect("size");
        assert_eq!((s.vcpus, s.mem_mib, s.host_mem_limit), (1, 256, None));
        let c = json!({"linux": {"resources": {"memory": {"limit": 64 << 20}, "cpu": {"quota": 150000, "period": 100000}}}});
        let s = of(&c, 4).expect("size");
        assert_eq!((s.vcpus, s.mem_mib), (2, 128));
        assert_eq!(s.host_mem_limit, Some((128 + 96) << 20));
        let c = json!({"linux": {"resources": {"memory": {"limit": 512 << 20}, "cpu": {"cpus": "0-2,5"}}}});
        let s = of(&c, 2).expect("size");
        assert_eq!((s.vcpus, s.mem_mib), (2, 560), "clamped to the host's CPUs");
    }

    #[test]
    fn annotations_override_and_are_checked() {
        let c = json!({"annotations": {ANN_VCPUS: "2", ANN_MEMORY: "300"}});
        let s = of(&c, 8).expect("size");
        assert_eq!((s.vcpus, s.mem_mib), (2, 300));
        let bad = json!({"annotations": {ANN_MEMORY: "lots"}});
        let e = of(&bad, 8).expect_err("bad annotation").to_string();
        assert!(e.contains(ANN_MEMORY) && e.contains("lots"), "{e}");
    }

    #[test]
    fn updates_past_the_vm_are_refused() {
        let s = Size { vcpus: 1, mem_mib: 304, host_mem_limit: None };
        assert!(check_update("c", &s, Some(200 << 20), None, None).is_ok());
        let e = check_update("c", &s, Some(2048 << 20), None, None).expect_err("too big").to_string();
        assert!(e.contains("container c") && e.contains("2048 MiB") && e.contains("304 MiB"), "{e}");
        assert!(check_update("c", &s, None, Some(200_000), Some(100_000)).is_err());
    }
}
