//! Guest physical memory layout (x86_64), close to Firecracker's.
//!
//! ```text
//! 0x0000_0500  GDT            0x0000_0520  IDT (empty)
//! 0x0000_6000  PVH start_info (+ memmap at 0x6040)
//! 0x0000_7000  Linux zero page (boot_params)
//! 0x0000_8ff0  boot stack (grows down)
//! 0x0000_9000  PML4, 0xa000 PDPT, 0xb000..0xf000 four page directories
//!              (identity map of the first 4 GiB with 2 MiB pages)
//! 0x0002_0000  kernel command line (up to 64 KiB)
//! 0x0009_fc00  EBDA: MP floating pointer and table
//! 0x0010_0000  kernel (ELF segments or bzImage protected-mode part)
//! ...          initrd at the top of low RAM
//! 0xd000_0000  MMIO gap: virtio-mmio devices, 4 KiB each, IRQ 5..
//! 0xfec0_0000  IOAPIC, 0xfee0_0000 local APICs
//! 4 GiB        RAM above the gap when memory exceeds 0xd000_0000
//! ```

pub const GDT_START: u64 = 0x500;
pub const IDT_START: u64 = 0x520;
pub const PVH_INFO_START: u64 = 0x6000;
pub const PVH_MEMMAP_START: u64 = 0x6040;
pub const PVH_MEMMAP_MAX: usize = 8;
pub const ZERO_PAGE_START: u64 = 0x7000;
pub const BOOT_STACK_POINTER: u64 = 0x8ff0;
pub const PML4_START: u64 = 0x9000;
pub const PDPT_START: u64 = 0xa000;
pub const PD_START: u64 = 0xb000;
pub const CMDLINE_START: u64 = 0x2_0000;
pub const CMDLINE_MAX_SIZE: usize = 0x1_0000;
pub const EBDA_START: u64 = 0x9_fc00;
pub const HIMEM_START: u64 = 0x10_0000;
pub const MMIO_GAP_START: u64 = 0xd000_0000;
pub const MMIO_GAP_END: u64 = 0x1_0000_0000;
pub const VIRTIO_MMIO_BASE: u64 = MMIO_GAP_START;
pub const VIRTIO_MMIO_SIZE: u64 = 0x1000;
/// First IRQ (IOAPIC pin / GSI) given to virtio-mmio devices.
pub const VIRTIO_IRQ_BASE: u32 = 5;
/// The highest IRQ a device may get (the IOAPIC has 24 pins).
pub const IRQ_MAX: u32 = 23;
pub const IOAPIC_ADDR: u32 = 0xfec0_0000;
pub const APIC_ADDR: u32 = 0xfee0_0000;
/// Address KVM needs for its TSS on Intel (3 pages below the BIOS area).
pub const KVM_TSS_ADDRESS: usize = 0xfffb_d000;

/// The serial port (COM1) and its IRQ.
pub const SERIAL_PORT: u16 = 0x3f8;
pub const SERIAL_IRQ: u32 = 4;
/// i8042 data and command ports.
pub const I8042_DATA_PORT: u16 = 0x60;
pub const I8042_COMMAND_PORT: u16 = 0x64;
/// rpc-vmm's exit-status port: a byte written here stops the VM and
/// becomes the exit status of rpc-vmm (test guests, ring-0 agents).
pub const EXIT_PORT: u16 = 0x510;
