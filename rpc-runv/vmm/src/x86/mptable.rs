//! The Intel MultiProcessor table at the EBDA, so Linux finds the vCPUs,
//! the IOAPIC and the ISA interrupt routing without ACPI or a BIOS scan.

use vm_memory::{Bytes, GuestAddress};

use crate::layout::{APIC_ADDR, EBDA_START, IOAPIC_ADDR, IRQ_MAX};
use crate::memory::GuestMemoryMmap;
use crate::{Error, Result};

const APIC_VERSION: u8 = 0x14;
const CPU_STEPPING: u32 = 0x600;
const CPU_FEATURE_APIC: u32 = 0x200;
const CPU_FEATURE_FPU: u32 = 0x001;
const MP_PROCESSOR: u8 = 0;
const MP_BUS: u8 = 1;
const MP_IOAPIC: u8 = 2;
const MP_INTSRC: u8 = 3;
const MP_LINTSRC: u8 = 4;
const MP_INT: u8 = 0;
const MP_NMI: u8 = 1;
const MP_EXTINT: u8 = 3;
const CPU_ENABLED: u8 = 1;
const CPU_BOOTPROCESSOR: u8 = 2;
const MPC_APIC_USABLE: u8 = 1;
/// Room the table may use: from the EBDA start to the end of base memory.
const MPTABLE_MAX: usize = 0xa_0000 - EBDA_START as usize;

fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b)).wrapping_neg()
}

/// The MP floating pointer and configuration table for `vcpus` processors,
/// as the bytes to place at [`EBDA_START`].
pub fn build(vcpus: u8) -> Result<Vec<u8>> {
    let ioapic_id = vcpus.checked_add(1).ok_or(Error::MpTable("too many vCPUs"))?;
    let table_addr = EBDA_START as u32 + 16;

    let mut t: Vec<u8> = Vec::with_capacity(512);
    // Header, patched below: signature, length, spec, checksum, OEM and
    // product ids, OEM table pointer and size, entry count, LAPIC address.
    t.extend_from_slice(b"PCMP");
    t.extend_from_slice(&[0, 0, 4, 0]);
    t.extend_from_slice(b"RPCVMM  ");
    t.extend_from_slice(b"000000000000");
    t.extend_from_slice(&0u32.to_le_bytes());
    t.extend_from_slice(&0u16.to_le_bytes());
    t.extend_from_slice(&0u16.to_le_bytes());
    t.extend_from_slice(&APIC_ADDR.to_le_bytes());
    t.extend_from_slice(&0u32.to_le_bytes());
    let mut entries: u16 = 0;
    for cpu in 0..vcpus {
        let flags = CPU_ENABLED | if cpu == 0 { CPU_BOOTPROCESSOR } else { 0 };
        t.extend_from_slice(&[MP_PROCESSOR, cpu, APIC_VERSION, flags]);
        t.extend_from_slice(&CPU_STEPPING.to_le_bytes());
        t.extend_from_slice(&(CPU_FEATURE_APIC | CPU_FEATURE_FPU).to_le_bytes());
        t.extend_from_slice(&[0u8; 8]);
        entries += 1;
    }
    t.extend_from_slice(&[MP_BUS, 0]);
    t.extend_from_slice(b"ISA   ");
    entries += 1;
    t.extend_from_slice(&[MP_IOAPIC, ioapic_id, APIC_VERSION, MPC_APIC_USABLE]);
    t.extend_from_slice(&IOAPIC_ADDR.to_le_bytes());
    entries += 1;
    for irq in 0..=IRQ_MAX as u8 {
        t.extend_from_slice(&[MP_INTSRC, MP_INT, 0, 0, 0, irq, ioapic_id, irq]);
        entries += 1;
    }
    t.extend_from_slice(&[MP_LINTSRC, MP_EXTINT, 0, 0, 0, 0, 0, 0]);
    t.extend_from_slice(&[MP_LINTSRC, MP_NMI, 0, 0, 0, 0, 0xff, 1]);
    entries += 2;

    let len = u16::try_from(t.len()).map_err(|_| Error::MpTable("table length"))?;
    t[4..6].copy_from_slice(&len.to_le_bytes());
    t[34..36].copy_from_slice(&entries.to_le_bytes());
    t[7] = checksum(&t);

    let mut mpf = Vec::with_capacity(16 + t.len());
    mpf.extend_from_slice(b"_MP_");
    mpf.extend_from_slice(&table_addr.to_le_bytes());
    mpf.extend_from_slice(&[1, 4, 0, 0, 0, 0, 0, 0]);
    mpf[10] = checksum(&mpf);
    mpf.extend_from_slice(&t);
    if mpf.len() > MPTABLE_MAX {
        return Err(Error::MpTable("past the end of base memory"));
    }
    Ok(mpf)
}

/// Writes the MP table for `vcpus` processors into guest memory.
pub fn setup(mem: &GuestMemoryMmap, vcpus: u8) -> Result<()> {
    let bytes = build(vcpus)?;
    mem.write_slice(&bytes, GuestAddress(EBDA_START)).map_err(|source| Error::GuestMemoryAccess { addr: EBDA_START, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_and_counts() {
        let b = build(2).unwrap();
        assert_eq!(&b[0..4], b"_MP_");
        assert_eq!(b[..16].iter().fold(0u8, |a, x| a.wrapping_add(*x)), 0);
        let t = &b[16..];
        assert_eq!(&t[0..4], b"PCMP");
        let len = u16::from_le_bytes([t[4], t[5]]) as usize;
        assert_eq!(len, t.len());
        assert_eq!(t.iter().fold(0u8, |a, x| a.wrapping_add(*x)), 0);
        // 2 cpus + bus + ioapic + 24 irqs + 2 lints
        assert_eq!(u16::from_le_bytes([t[34], t[35]]), 30);
        let phys = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
        assert_eq!(phys as u64, EBDA_START + 16);
    }

    #[test]
    fn refuses_255_vcpus() {
        assert!(build(255).is_err());
        assert!(build(254).is_err());
    }
}
