//! process.scheduler (sched_setattr), process.ioPriority (ioprio_set) and
//! execCPUAffinity (sched_setaffinity) for init and exec'd processes.

use oci_spec::runtime::{IOPriorityClass, LinuxIOPriority, LinuxSchedulerFlag, LinuxSchedulerPolicy, Scheduler};

use crate::error::{Error, Result};

#[repr(C)]
#[derive(Default)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
}

pub fn apply_scheduler(s: &Scheduler) -> Result<()> {
    use LinuxSchedulerPolicy::*;
    let policy = match s.policy() {
        SchedOther => 0,
        SchedFifo => 1,
        SchedRr => 2,
        SchedBatch => 3,
        SchedIso => 4,
        SchedIdle => 5,
        SchedDeadline => 6,
    };
    let mut flags = 0u64;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            LinuxSchedulerFlag::SchedResetOnFork => 0x01,
            LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
            LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
            LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
            LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
            LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
            LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
        };
    }
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy,
        flags,
        nice: s.nice().unwrap_or(0),
        priority: s.priority().unwrap_or(0).max(0) as u32,
        runtime: s.runtime().unwrap_or(0),
        deadline: s.deadline().unwrap_or(0),
        period: s.period().unwrap_or(0),
    };
    // SAFETY: a valid sched_attr for the calling thread.
    if unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) } != 0 {
        let source = std::io::Error::last_os_error();
        // The policy as the config spells it (SCHED_FIFO).
        let policy = serde_json::to_value(s.policy()).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        return Err(Error::Io { context: format!("process.scheduler (policy {policy})"), source });
    }
    Ok(())
}

pub fn apply_io_priority(p: &LinuxIOPriority) -> Result<()> {
    let class = match p.class() {
        IOPriorityClass::IoprioClassRt => 1,
        IOPriorityClass::IoprioClassBe => 2,
        IOPriorityClass::IoprioClassIdle => 3,
    };
    if !(0..=7).contains(&p.priority()) {
        return Err(Error::Container(format!("process.ioPriority.priority {} is not in 0..7", p.priority())));
    }
    let value = (class << 13) | p.priority() as libc::c_long;
    // SAFETY: plain syscall (IOPRIO_WHO_PROCESS = 1, self).
    if unsafe { libc::syscall(libc::SYS_ioprio_set, 1, 0, value) } != 0 {
        return Err(Error::Io { context: "process.ioPriority".into(), source: std::io::Error::last_os_error() });
    }
    Ok(())
}

/// Parse a cpu list like "0-2,5".
pub fn parse_cpus(list: &str) -> Result<Vec<usize>> {
    let bad = || Error::Container(format!("execCPUAffinity: invalid cpu list {list:?}"));
    let mut out = vec![];
    for part in list.split(',').filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse::<usize>().map_err(|_| bad())?, b.trim().parse::<usize>().map_err(|_| bad())?),
            None => {
                let a = part.trim().parse::<usize>().map_err(|_| bad())?;
                (a, a)
            }
        };
        if a > b || b >= libc::CPU_SETSIZE as usize {
            return Err(bad());
        }
        out.extend(a..=b);
    }
    Ok(out)
}

pub fn set_affinity(list: &str) -> Result<()> {
    let cpus = parse_cpus(list)?;
    // SAFETY: cpu_set_t is plain data; the macros index within it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for c in cpus {
            libc::CPU_SET(c, &mut set);
        }
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(Error::Io { context: format!("execCPUAffinity {list:?}"), source: std::io::Error::last_os_error() });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn cpu_lists() {
        assert_eq!(super::parse_cpus("0-2,5").unwrap(), vec![0, 1, 2, 5]);
        assert!(super::parse_cpus("3-1").is_err());
        assert!(super::parse_cpus("x").is_err());
    }
}
