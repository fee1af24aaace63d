//! `update`: change the resource limits of a created, running or paused
//! container. Everything is validated first and the writes are rolled
//! back if the kernel refuses one, so a failed update changes nothing.

use std::path::Path;

use oci_spec::runtime::LinuxResources;

use super::{Runtime, Status};
use crate::error::{Error, Op, Result};
use crate::linux::cgroups::resources::Res;

/// The most `update -r` reads.
pub const MAX_RESOURCES: u64 = crate::state::MAX_STATE;

/// runc's update flags, as given (None: not given).
#[derive(Debug, Default, Clone, clap::Args)]
pub struct UpdateFlags {
    /// LinuxResources JSON file, or "-" for stdin (the flags are then ignored).
    #[arg(short = 'r', long)]
    pub resources: Option<String>,
    /// Block I/O weight (10 to 1000).
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    /// CPU CFS period (microseconds).
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<u64>,
    /// CPU CFS quota (microseconds), -1 for none.
    #[arg(long = "cpu-quota", allow_negative_numbers = true)]
    pub cpu_quota: Option<i64>,
    /// CPU CFS burst (microseconds).
    #[arg(long = "cpu-burst")]
    pub cpu_burst: Option<u64>,
    /// CPU shares (relative weight).
    #[arg(long = "cpu-share")]
    pub cpu_share: Option<u64>,
    /// CPU realtime period (microseconds).
    #[arg(long = "cpu-rt-period")]
    pub cpu_rt_period: Option<u64>,
    /// CPU realtime runtime (microseconds).
    #[arg(long = "cpu-rt-runtime", allow_negative_numbers = true)]
    pub cpu_rt_runtime: Option<i64>,
    /// SCHED_IDLE for the cgroup (0 or 1).
    #[arg(long = "cpu-idle", allow_negative_numbers = true)]
    pub cpu_idle: Option<i64>,
    /// CPUs to use (e.g. 0-1).
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes to use.
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// Memory limit (bytes, or 512m, 1g; -1 for none).
    #[arg(long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// Memory reservation (soft limit).
    #[arg(long = "memory-reservation", allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    /// Memory plus swap limit; -1 for unlimited swap.
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Obsolete: kernel memory limit.
    #[arg(long = "kernel-memory", allow_hyphen_values = true)]
    pub kernel_memory: Option<String>,
    /// Obsolete: kernel TCP buffer limit.
    #[arg(long = "kernel-memory-tcp", allow_hyphen_values = true)]
    pub kernel_memory_tcp: Option<String>,
    /// Maximum number of pids, -1 for none.
    #[arg(long = "pids-limit", allow_negative_numbers = true)]
    pub pids_limit: Option<i64>,
    /// Intel RDT L3 cache schema.
    #[arg(long = "l3-cache-schema")]
    pub l3_cache_schema: Option<String>,
    /// Intel RDT memory bandwidth schema.
    #[arg(long = "mem-bw-schema")]
    pub mem_bw_schema: Option<String>,
}

/// Docker's RAMInBytes: "512m", "1g", "1024", "-1" (units of 1024).
pub fn parse_bytes(flag: &str, s: &str) -> Result<i64> {
    let t = s.trim();
    if t == "-1" {
        return Ok(-1);
    }
    let bad = || Error::Usage(format!("invalid value {s:?} for --{flag}: a size such as 512m, 1g or 1073741824 (-1 for unlimited)"));
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| bad())?;
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let mul: f64 = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => return Err(bad()),
    };
    let v = n * mul;
    if !(0.0..9.2e18).contains(&v) {
        return Err(bad());
    }
    Ok(v as i64)
}

/// The resources to change: from `-r FILE|-` (LinuxResources JSON, the
/// flags are then ignored, as runc does) or from the flags.
pub fn resources_from(f: &UpdateFlags) -> Result<Res> {
    if f.l3_cache_schema.is_some() || f.mem_bw_schema.is_some() {
        return Err(Error::Unsupported("Intel RDT (--l3-cache-schema, --mem-bw-schema)".into()));
    }
    if let Some(src) = &f.resources {
        // Bounded as state.json is: a LinuxResources object is small.
        let data = if src == "-" {
            crate::bounded::read_limited(std::io::stdin().lock(), 0, MAX_RESOURCES)
        } else {
            crate::bounded::read_named(Path::new(src), MAX_RESOURCES)
        }
        .map_err(|e| Error::Usage(format!("--resources {}: {e}", if src == "-" { "(stdin)" } else { src })))?;
        let v: serde_json::Value = serde_json::from_slice(&data).map_err(|e| Error::Usage(format!("--resources {src}: {e}")))?;
        let r: LinuxResources = crate::bundle::typed(Path::new(src), &v).map_err(|e| Error::Usage(format!("--resources {e}")))?;
        return Ok(Res::from_oci(&r));
    }
    let bytes = |flag: &str, v: &Option<String>| -> Result<Option<i64>> {
        v.as_deref().map(|s| parse_bytes(flag, s)).transpose().map(|o| o.filter(|x| *x != 0))
    };
    let r = Res {
        blkio_weight: f.blkio_weight.filter(|w| *w != 0),
        cpu_period: f.cpu_period.filter(|x| *x != 0),
        cpu_quota: f.cpu_quota.filter(|x| *x != 0),
        cpu_burst: f.cpu_burst,
        cpu_shares: f.cpu_share.filter(|x| *x != 0),
        cpu_rt_period: f.cpu_rt_period.filter(|x| *x != 0),
        cpu_rt_runtime: f.cpu_rt_runtime.filter(|x| *x != 0),
        cpu_idle: f.cpu_idle,
        cpus: f.cpuset_cpus.clone().filter(|s| !s.is_empty()),
        mems: f.cpuset_mems.clone().filter(|s| !s.is_empty()),
        mem_limit: bytes("memory", &f.memory)?,
        mem_reservation: bytes("memory-reservation", &f.memory_reservation)?,
        mem_swap: bytes("memory-swap", &f.memory_swap)?,
        pids_limit: f.pids_limit.filter(|x| *x != 0),
        // Kept for old kernels; the writer warns where the kernel refuses.
        mem_kernel: bytes("kernel-memory", &f.kernel_memory)?,
        mem_kernel_tcp: bytes("kernel-memory-tcp", &f.kernel_memory_tcp)?,
        ..Default::default()
    };
    Ok(r)
}

pub fn update(rt: &Runtime, id: &str, res: &Res) -> Result<()> {
    crate::id::validate(id)?;
    let dir = rt.store.open(id, true)?;
    let st = rt.load(&dir)?;
    match rt.status(&st, false) {
        Status::Created | Status::Running | Status::Paused => {}
        s => return Err(Error::Transition { op: Op::Update, id: id.to_string(), status: s.as_str() }),
    }
    rt.backend.update(&st, res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_bytes("memory", "1024").unwrap(), 1024);
        assert_eq!(parse_bytes("memory", "512m").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("memory", "1G").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("memory", "1.5k").unwrap(), 1536);
        assert_eq!(parse_bytes("memory", "2MiB").unwrap(), 2 << 20);
        assert_eq!(parse_bytes("memory", "-1").unwrap(), -1);
        assert!(parse_bytes("memory", "-5").is_err());
        assert!(parse_bytes("memory", "12x").is_err());
    }

    #[test]
    fn flags_to_resources() {
        let f = UpdateFlags { memory: Some("64m".into()), cpu_quota: Some(50000), pids_limit: Some(0), ..Default::default() };
        let r = resources_from(&f).unwrap();
        assert_eq!(r.mem_limit, Some(64 << 20));
        assert_eq!(r.cpu_quota, Some(50000));
        assert_eq!(r.pids_limit, None);
        assert!(resources_from(&UpdateFlags { l3_cache_schema: Some("L3:0=f".into()), ..Default::default() }).is_err());
    }
}
