//! CPUID for each vCPU: KVM_GET_SUPPORTED_CPUID, filtered.

use kvm_bindings::{CpuId, KVM_MAX_CPUID_ENTRIES};
use kvm_ioctls::Kvm;

use crate::{Error, Result};

const ECX_HYPERVISOR: u32 = 1 << 31;
const EDX_HTT: u32 = 1 << 28;
const ECX_TSC_DEADLINE: u32 = 1 << 24;

/// The CPUID KVM supports, fetched once per VM.
pub fn supported(kvm: &Kvm) -> Result<CpuId> {
    kvm.get_supported_cpuid(KVM_MAX_CPUID_ENTRIES).map_err(Error::kvm("KVM_GET_SUPPORTED_CPUID"))
}

/// Our tweaks of the supported CPUID for vCPU `id` of `count`:
/// - leaf 1: the hypervisor bit; the initial APIC id; the logical
///   processor count and HTT when there is more than one vCPU; no TSC
///   deadline timer unless KVM has it (it reports it separately);
/// - leaf 4: cores per package = vCPU count, one thread each;
/// - leaf 6 (thermal and power) and 0xa (PMU): empty, we emulate neither;
/// - leaf 0xb: x2APIC topology, one thread per core;
/// - leaves 0x8000_0008 and 0x8000_001e (AMD topology): `count` cores,
///   one thread each, one node;
/// - the brand string is left as the host's.
pub fn for_vcpu(base: &CpuId, id: u8, count: u8, tsc_deadline: bool) -> CpuId {
    let mut cpuid = base.clone();
    for e in cpuid.as_mut_slice().iter_mut() {
        match e.function {
            0x1 => {
                e.ecx |= ECX_HYPERVISOR;
                if !tsc_deadline {
                    e.ecx &= !ECX_TSC_DEADLINE;
                }
                e.ebx = (e.ebx & 0x0000_ffff) | (u32::from(id) << 24) | (u32::from(count) << 16);
                if count > 1 {
                    e.edx |= EDX_HTT;
                } else {
                    e.edx &= !EDX_HTT;
                }
            }
            0x4 => {
                // eax[31:26]: cores per package - 1; eax[25:14]: threads
                // sharing this cache - 1 (one).
                e.eax = (e.eax & 0x3fff) | ((u32::from(count).saturating_sub(1) & 0x3f) << 26);
            }
            0x6 | 0xa => {
                e.eax = 0;
                e.ebx = 0;
                e.ecx = 0;
                e.edx = 0;
            }
            0xb => {
                // Level 0: SMT (1 thread), level 1: core (count).
                e.edx = u32::from(id);
                match e.index {
                    0 => {
                        e.eax = 0;
                        e.ebx = 1;
                        e.ecx = 1 << 8;
                    }
                    1 => {
                        e.eax = bits_for(count);
                        e.ebx = u32::from(count);
                        e.ecx = (2 << 8) | 1;
                    }
                    _ => {
                        e.eax = 0;
                        e.ebx = 0;
                        e.ecx = e.index;
                    }
                }
            }
            // AMD: core count and APIC id size, and the extended APIC
            // id / core id (one thread per core, one node).
            0x8000_0008 => {
                e.ecx = (e.ecx & !0xf0ff) | (bits_for(count) << 12) | u32::from(count).saturating_sub(1);
            }
            0x8000_001e => {
                e.eax = u32::from(id);
                e.ebx = u32::from(id) & 0xff;
                e.ecx = 0;
            }
            _ => {}
        }
    }
    cpuid
}

/// Bits needed to number `count` processors (x2APIC id shift).
fn bits_for(count: u8) -> u32 {
    let mut bits = 0;
    while (1u32 << bits) < u32::from(count) {
        bits += 1;
    }
    bits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits() {
        assert_eq!(bits_for(1), 0);
        assert_eq!(bits_for(2), 1);
        assert_eq!(bits_for(3), 2);
        assert_eq!(bits_for(8), 3);
    }
}
