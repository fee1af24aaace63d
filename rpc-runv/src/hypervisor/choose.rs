//! Which hypervisor runs a VM, and with which accelerator.
//!
//! `auto` takes rpc-vmm where KVM runs guests in hardware: /dev/kvm opens
//! *and* the CPU has VMX or SVM. A KVM without them (nested setups like
//! this project's CI host) emulates guest ring 0 instruction by
//! instruction: Linux boots there in 20-45 s, while QEMU's TCG boots the
//! same kernel in ~2 s, so `auto` takes QEMU/TCG. The choice comes from,
//! strongest first: the bundle's annotation, the `--hypervisor` flag, the
//! environment.

use super::spec::Accel;
use super::{Error, Result};

pub const ANNOTATION: &str = "io.rpc-runv.hypervisor";
pub const ENV: &str = "RPC_RUNV_HYPERVISOR";

/// The values a setting may take.
pub const VALUES: &str = "auto, qemu, qemu-tcg, qemu-kvm, rpc-vmm";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hypervisor {
    Qemu,
    RpcVmm,
}

impl Hypervisor {
    pub fn as_str(self) -> &'static str {
        match self {
            Hypervisor::Qemu => "qemu",
            Hypervisor::RpcVmm => "rpc-vmm",
        }
    }
}

impl std::fmt::Display for Hypervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub hypervisor: Hypervisor,
    pub accel: Accel,
    /// One sentence for `features` and `--debug`: what decided, and why.
    pub reason: String,
}

/// What the host offers, probed once (parameters of [`choose_on`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// Err: why /dev/kvm cannot be used.
    pub kvm: std::result::Result<(), String>,
    /// /proc/cpuinfo's flags hold vmx or svm.
    pub vmx_svm: bool,
}

impl Host {
    pub fn probe() -> Host {
        let kvm = std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm").map(drop).map_err(|e| format!("/dev/kvm: {e}"));
        let vmx_svm = std::fs::read_to_string("/proc/cpuinfo").map(|c| cpu_has_vmx_svm(&c)).unwrap_or(false);
        Host { kvm, vmx_svm }
    }
}

fn cpu_has_vmx_svm(cpuinfo: &str) -> bool {
    cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_once(':').is_some_and(|(_, f)| f.split_whitespace().any(|f| f == "vmx" || f == "svm")))
}

/// The choice for this host: `annotation` (io.rpc-runv.hypervisor) over
/// `flag` (--hypervisor) over the environment (RPC_RUNV_HYPERVISOR).
pub fn choose(flag: Option<&str>, annotation: Option<&str>) -> Result<Choice> {
    let env = std::env::var(ENV).ok();
    choose_on(&Host::probe(), flag, annotation, env.as_deref())
}

/// [`choose`] with the host and the environment given.
pub fn choose_on(host: &Host, flag: Option<&str>, annotation: Option<&str>, env: Option<&str>) -> Result<Choice> {
    let (value, from) = match (annotation, flag, env) {
        (Some(a), _, _) => (a, format!("annotation {ANNOTATION}")),
        (None, Some(f), _) => (f, "--hypervisor".to_string()),
        (None, None, Some(e)) => (e, format!("environment {ENV}")),
        (None, None, None) => ("auto", "default".to_string()),
    };
    let bad = |why: String| Err(Error::BadChoice { source_name: from.clone(), why });
    let hw = if host.vmx_svm { "the CPU has VMX/SVM" } else { "this host's KVM has no VMX/SVM" };
    match value.trim() {
        "auto" | "" => Ok(match (&host.kvm, host.vmx_svm) {
            (Ok(()), true) => Choice {
                hypervisor: Hypervisor::RpcVmm,
                accel: Accel::Kvm,
                reason: format!("{from} auto: /dev/kvm opens and the CPU has VMX/SVM: rpc-vmm on KVM"),
            },
            (Ok(()), false) => Choice {
                hypervisor: Hypervisor::Qemu,
                accel: Accel::Tcg,
                reason: format!("{from} auto: {hw}: guest ring 0 would be emulated, QEMU/TCG is ~10x faster here"),
            },
            (Err(e), _) => {
                Choice { hypervisor: Hypervisor::Qemu, accel: Accel::Tcg, reason: format!("{from} auto: no usable KVM ({e}): QEMU/TCG") }
            }
        }),
        "qemu" => {
            // Asked for QEMU, not for an accelerator: the faster one here.
            let kvm = host.kvm.is_ok() && host.vmx_svm;
            let accel = if kvm { Accel::Kvm } else { Accel::Tcg };
            Ok(Choice { hypervisor: Hypervisor::Qemu, accel, reason: format!("{from} qemu: {hw}: QEMU/{}", accel.as_str().to_uppercase()) })
        }
        "qemu-tcg" => Ok(Choice { hypervisor: Hypervisor::Qemu, accel: Accel::Tcg, reason: format!("{from} qemu-tcg") }),
        "qemu-kvm" | "rpc-vmm" => {
            let hypervisor = if value.trim() == "rpc-vmm" { Hypervisor::RpcVmm } else { Hypervisor::Qemu };
            if let Err(e) = &host.kvm {
                return bad(format!("{value} needs KVM: {e}"));
            }
            let slow = if host.vmx_svm { "" } else { " (this host's KVM has no VMX/SVM: guest ring 0 is emulated, boots take 20-45 s)" };
            Ok(Choice { hypervisor, accel: Accel::Kvm, reason: format!("{from} {value}{slow}") })
        }
        other => bad(format!("unknown hypervisor {other:?} (expected one of {VALUES})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NESTED: Host = Host { kvm: Ok(()), vmx_svm: false };
    const HW: Host = Host { kvm: Ok(()), vmx_svm: true };

    fn no_kvm() -> Host {
        Host { kvm: Err("/dev/kvm: No such file or directory".into()), vmx_svm: true }
    }

    #[test]
    fn auto_follows_the_hardware() {
        let c = choose_on(&HW, None, None, None).unwrap();
        assert_eq!((c.hypervisor, c.accel), (Hypervisor::RpcVmm, Accel::Kvm));
        let c = choose_on(&NESTED, None, None, None).unwrap();
        assert_eq!((c.hypervisor, c.accel), (Hypervisor::Qemu, Accel::Tcg));
        assert!(
            c.reason.contains("this host's KVM has no VMX/SVM: guest ring 0 would be emulated, QEMU/TCG is ~10x faster here"),
            "{}",
            c.reason
        );
        let c = choose_on(&no_kvm(), Some("auto"), None, None).unwrap();
        assert_eq!((c.hypervisor, c.accel), (Hypervisor::Qemu, Accel::Tcg));
        assert!(c.reason.contains("No such file"), "{}", c.reason);
    }

    #[test]
    fn annotation_over_flag_over_env() {
        let c = choose_on(&HW, Some("qemu-tcg"), Some("rpc-vmm"), Some("qemu")).unwrap();
        assert_eq!(c.hypervisor, Hypervisor::RpcVmm);
        assert!(c.reason.starts_with("annotation io.rpc-runv.hypervisor"), "{}", c.reason);
        let c = choose_on(&HW, Some("qemu-tcg"), None, Some("rpc-vmm")).unwrap();
        assert_eq!((c.hypervisor, c.accel), (Hypervisor::Qemu, Accel::Tcg));
        let c = choose_on(&HW, None, None, Some("qemu")).unwrap();
        assert_eq!((c.hypervisor, c.accel), (Hypervisor::Qemu, Accel::Kvm));
        assert!(c.reason.starts_with("environment RPC_RUNV_HYPERVISOR"), "{}", c.reason);
        let c = choose_on(&NESTED, None, None, Some("qemu")).unwrap();
        assert_eq!(c.accel, Accel::Tcg);
    }

    #[test]
    fn bad_values_name_their_source() {
        let e = choose_on(&HW, Some("qemu"), Some("firecracker"), None).unwrap_err().to_string();
        assert!(e.contains("annotation io.rpc-runv.hypervisor") && e.contains("\"firecracker\"") && e.contains(VALUES), "{e}");
        let e = choose_on(&HW, Some("kvm"), None, None).unwrap_err().to_string();
        assert!(e.contains("--hypervisor") && e.contains("\"kvm\""), "{e}");
        let e = choose_on(&no_kvm(), None, None, Some("rpc-vmm")).unwrap_err().to_string();
        assert!(e.contains("environment RPC_RUNV_HYPERVISOR") && e.contains("needs KVM"), "{e}");
        assert!(choose_on(&no_kvm(), None, None, Some("qemu-kvm")).is_err());
        // Forced onto an emulating KVM: allowed, and the reason warns.
        let c = choose_on(&NESTED, Some("rpc-vmm"), None, None).unwrap();
        assert!(c.reason.contains("20-45 s"), "{}", c.reason);
    }

    #[test]
    fn cpuinfo_flags() {
        assert!(cpu_has_vmx_svm("processor\t: 0\nflags\t\t: fpu vme vmx sse\n"));
        assert!(cpu_has_vmx_svm("flags\t\t: fpu svm\n"));
        assert!(!cpu_has_vmx_svm("flags\t\t: fpu vmxsomething\nvmx flags\t: ept\n"));
    }
}
