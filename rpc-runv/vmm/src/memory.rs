//! Guest RAM: anonymous mmap regions (vm-memory's mmap backend) laid out
//! around the MMIO gap, registered with KVM as memory slots.

use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::VmFd;
use vm_memory::{Address, GuestAddress, GuestMemoryBackend, GuestMemoryRegion};

use crate::layout::{MMIO_GAP_END, MMIO_GAP_START};
use crate::{Error, Result};

/// The guest's memory.
pub type GuestMemoryMmap = vm_memory::GuestMemoryMmap<()>;

/// The RAM ranges of a guest of `size` bytes: below the MMIO gap, and
/// above 4 GiB for what does not fit below it.
pub fn ram_ranges(size: u64) -> Vec<(GuestAddress, usize)> {
    if size <= MMIO_GAP_START {
        vec![(GuestAddress(0), size as usize)]
    } else {
        vec![(GuestAddress(0), MMIO_GAP_START as usize), (GuestAddress(MMIO_GAP_END), (size - MMIO_GAP_START) as usize)]
    }
}

/// Maps `mem_mib` MiB of guest RAM.
pub fn create(mem_mib: u64) -> Result<GuestMemoryMmap> {
    if mem_mib < 8 {
        return Err(Error::Config(format!("memory: {mem_mib} MiB, need at least 8")));
    }
    let size = mem_mib.checked_mul(1 << 20).ok_or_else(|| Error::Config(format!("memory: {mem_mib} MiB is too large")))?;
    GuestMemoryMmap::from_ranges(&ram_ranges(size)).map_err(|e| Error::Memory(e.to_string()))
}

/// Registers every region of `mem` as a KVM memory slot.
pub fn register(vm: &VmFd, mem: &GuestMemoryMmap) -> Result<()> {
    for (slot, region) in mem.iter().enumerate() {
        let host = mem.get_host_address(region.start_addr()).map_err(|e| Error::Memory(e.to_string()))?;
        let desc = kvm_userspace_memory_region {
            slot: slot as u32,
            flags: 0,
            guest_phys_addr: region.start_addr().raw_value(),
            memory_size: region.len(),
            userspace_addr: host as u64,
        };
        // SAFETY: the region is a live mapping owned by `mem`, which the
        // VM keeps alive for as long as the VM fd exists.
        unsafe { vm.set_user_memory_region(desc) }.map_err(Error::kvm("KVM_SET_USER_MEMORY_REGION"))?;
    }
    Ok(())
}

/// The end of RAM below the MMIO gap (exclusive).
pub fn low_ram_end(mem: &GuestMemoryMmap) -> u64 {
    mem.iter().filter(|r| r.start_addr().raw_value() < MMIO_GAP_START).map(|r| r.start_addr().raw_value() + r.len()).max().unwrap_or(0)
}
