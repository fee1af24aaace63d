//! Registers at entry: general registers, segments and control registers
//! for 64-bit long mode (Linux 64-bit boot protocol) or 32-bit protected
//! mode without paging (PVH), the FPU, and the local APIC's LINT pins.

use kvm_bindings::{kvm_fpu, kvm_regs, kvm_segment, kvm_sregs};
use kvm_ioctls::VcpuFd;
use vm_memory::{Bytes, GuestAddress};

use crate::layout::{BOOT_STACK_POINTER, GDT_START, IDT_START, PDPT_START, PD_START, PML4_START, ZERO_PAGE_START};
use crate::memory::GuestMemoryMmap;
use crate::{Error, Result};

const X86_CR0_PE: u64 = 0x1;
const X86_CR0_ET: u64 = 0x10;
const X86_CR0_PG: u64 = 0x8000_0000;
const X86_CR4_PAE: u64 = 0x20;
const EFER_LME: u64 = 0x100;
const EFER_LMA: u64 = 0x400;

/// How the boot vCPU enters the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryMode {
    /// 64-bit long mode, identity-mapped first 4 GiB, `%rsi` = zero page.
    Linux64,
    /// 32-bit protected mode, paging off, `%ebx` = PVH start_info.
    Pvh,
}

/// A GDT entry from flags, base and limit.
const fn gdt_entry(flags: u16, base: u32, limit: u32) -> u64 {
    ((base as u64 & 0xff00_0000) << 32)
        | ((base as u64 & 0x00ff_ffff) << 16)
        | (limit as u64 & 0x0000_ffff)
        | (((limit as u64 & 0x000f_0000) >> 16) << 48)
        | ((flags as u64 & 0x0000_f0ff) << 40)
}

/// The KVM segment for GDT entry `index`.
fn segment(entry: u64, index: u16) -> kvm_segment {
    let flags = |shift: u32, mask: u64| ((entry >> shift) & mask) as u8;
    kvm_segment {
        base: ((entry >> 16) & 0x00ff_ffff) | ((entry >> 32) & 0xff00_0000),
        limit: {
            let raw = ((entry & 0xffff) | ((entry >> 32) & 0x000f_0000)) as u32;
            if flags(55, 1) == 1 {
                (raw << 12) | 0xfff
            } else {
                raw
            }
        },
        selector: index * 8,
        type_: flags(40, 0xf),
        present: flags(47, 1),
        dpl: flags(45, 3),
        db: flags(54, 1),
        s: flags(44, 1),
        l: flags(53, 1),
        g: flags(55, 1),
        avl: flags(52, 1),
        unusable: 0,
        padding: 0,
    }
}

fn write<T: vm_memory::ByteValued>(mem: &GuestMemoryMmap, val: T, addr: u64) -> Result<()> {
    mem.write_obj(val, GuestAddress(addr)).map_err(|source| Error::GuestMemoryAccess { addr, source })
}

/// Identity-maps the first 4 GiB with 2 MiB pages: one PML4 entry, four
/// PDPT entries, four page directories.
fn setup_page_tables(mem: &GuestMemoryMmap) -> Result<()> {
    write(mem, PDPT_START | 0x03, PML4_START)?;
    for pd in 0..4u64 {
        let pd_addr = PD_START + pd * 0x1000;
        write(mem, pd_addr | 0x03, PDPT_START + pd * 8)?;
        for i in 0..512u64 {
            let phys = (pd << 30) | (i << 21);
            write(mem, phys | 0x83, pd_addr + i * 8)?;
        }
    }
    Ok(())
}

/// Writes the GDT and sets segments and control registers for `mode`.
pub fn setup_sregs(mem: &GuestMemoryMmap, vcpu: &VcpuFd, mode: EntryMode) -> Result<()> {
    let gdt: [u64; 4] = match mode {
        EntryMode::Linux64 => {
            [gdt_entry(0, 0, 0), gdt_entry(0xa09b, 0, 0xfffff), gdt_entry(0xc093, 0, 0xfffff), gdt_entry(0x808b, 0, 0xfffff)]
        }
        EntryMode::Pvh => {
            [gdt_entry(0, 0, 0), gdt_entry(0xc09b, 0, 0xffff_ffff), gdt_entry(0xc093, 0, 0xffff_ffff), gdt_entry(0x008b, 0, 0x67)]
        }
    };
    for (i, e) in gdt.iter().enumerate() {
        write(mem, *e, GDT_START + i as u64 * 8)?;
    }
    write(mem, 0u64, IDT_START)?;

    let mut sregs: kvm_sregs = vcpu.get_sregs().map_err(Error::kvm("KVM_GET_SREGS"))?;
    let code = segment(gdt[1], 1);
    let data = segment(gdt[2], 2);
    let tss = segment(gdt[3], 3);
    sregs.gdt.base = GDT_START;
    sregs.gdt.limit = (std::mem::size_of_val(&gdt) - 1) as u16;
    sregs.idt.base = IDT_START;
    sregs.idt.limit = 7;
    sregs.cs = code;
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    sregs.tr = tss;
    match mode {
        EntryMode::Linux64 => {
            setup_page_tables(mem)?;
            sregs.cr3 = PML4_START;
            sregs.cr4 |= X86_CR4_PAE;
            sregs.cr0 |= X86_CR0_PE | X86_CR0_PG | X86_CR0_ET;
            sregs.efer |= EFER_LME | EFER_LMA;
        }
        EntryMode::Pvh => {
            sregs.cr0 = X86_CR0_PE | X86_CR0_ET;
            sregs.cr4 = 0;
            sregs.efer = 0;
        }
    }
    vcpu.set_sregs(&sregs).map_err(Error::kvm("KVM_SET_SREGS"))
}

/// General registers of the boot vCPU.
pub fn setup_regs(vcpu: &VcpuFd, entry: u64, mode: EntryMode, boot_info: u64) -> Result<()> {
    let mut regs = kvm_regs { rflags: 0x2, rip: entry, ..Default::default() };
    match mode {
        EntryMode::Linux64 => {
            regs.rsp = BOOT_STACK_POINTER;
            regs.rbp = BOOT_STACK_POINTER;
            regs.rsi = if boot_info == 0 { ZERO_PAGE_START } else { boot_info };
        }
        EntryMode::Pvh => regs.rbx = boot_info,
    }
    vcpu.set_regs(&regs).map_err(Error::kvm("KVM_SET_REGS"))
}

/// x87 control word and MXCSR at their reset values.
pub fn setup_fpu(vcpu: &VcpuFd) -> Result<()> {
    let fpu = kvm_fpu { fcw: 0x37f, mxcsr: 0x1f80, ..Default::default() };
    vcpu.set_fpu(&fpu).map_err(Error::kvm("KVM_SET_FPU"))
}

const APIC_LVT0: usize = 0x350;
const APIC_LVT1: usize = 0x360;
const APIC_MODE_NMI: u32 = 0x4;
const APIC_MODE_EXTINT: u32 = 0x7;

fn set_delivery_mode(reg: u32, mode: u32) -> u32 {
    (reg & !0x700) | (mode << 8)
}

/// LINT0 as ExtINT (the PIC) and LINT1 as NMI, as a BIOS leaves them.
pub fn setup_lapic(vcpu: &VcpuFd) -> Result<()> {
    let mut lapic = vcpu.get_lapic().map_err(Error::kvm("KVM_GET_LAPIC"))?;
    for (off, mode) in [(APIC_LVT0, APIC_MODE_EXTINT), (APIC_LVT1, APIC_MODE_NMI)] {
        let mut b = [0u8; 4];
        for (i, byte) in b.iter_mut().enumerate() {
            *byte = lapic.regs[off + i] as u8;
        }
        let v = set_delivery_mode(u32::from_le_bytes(b), mode).to_le_bytes();
        for (i, byte) in v.iter().enumerate() {
            lapic.regs[off + i] = *byte as _;
        }
    }
    vcpu.set_lapic(&lapic).map_err(Error::kvm("KVM_SET_LAPIC"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gdt_code64() {
        let e = gdt_entry(0xa09b, 0, 0xfffff);
        assert_eq!(e, 0x00af_9b00_0000_ffff);
        let s = segment(e, 1);
        assert_eq!((s.l, s.db, s.type_, s.present, s.g, s.selector), (1, 0, 0xb, 1, 1, 8));
        assert_eq!(s.limit, 0xffff_ffff);
    }

    #[test]
    fn lint_modes() {
        assert_eq!(set_delivery_mode(0x0001_0000, APIC_MODE_EXTINT), 0x0001_0700);
        assert_eq!(set_delivery_mode(0x0001_0700, APIC_MODE_NMI), 0x0001_0400);
    }
}
