//! Guest RAM: mmap regions (vm-memory's mmap backend) laid out around
//! the MMIO gap, registered with KVM as memory slots. Anonymous private
//! memory by default; with a vhost-user device (`--fs`) each region is a
//! MAP_SHARED mapping of its own memfd, which the backend maps too (the
//! fds go to it in VHOST_USER_SET_MEM_TABLE).

use std::fs::File;
use std::os::fd::FromRawFd;

use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::VmFd;
use vm_memory::{Address, FileOffset, GuestAddress, GuestMemoryBackend, GuestMemoryRegion};

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

/// Maps `mem_mib` MiB of guest RAM: anonymous private memory, or, when
/// `shared`, one memfd per region mapped MAP_SHARED (for vhost-user
/// backends, which map the same fds).
pub fn create(mem_mib: u64, shared: bool) -> Result<GuestMemoryMmap> {
    if mem_mib < 8 {
        return Err(Error::Config(format!("memory: {mem_mib} MiB, need at least 8")));
    }
    let size = mem_mib.checked_mul(1 << 20).ok_or_else(|| Error::Config(format!("memory: {mem_mib} MiB is too large")))?;
    if !shared {
        return GuestMemoryMmap::from_ranges(&ram_ranges(size)).map_err(|e| Error::Memory(e.to_string()));
    }
    let mut ranges = Vec::new();
    for (i, (addr, len)) in ram_ranges(size).into_iter().enumerate() {
        ranges.push((addr, len, Some(FileOffset::new(shared_file(i, len as u64)?, 0))));
    }
    GuestMemoryMmap::from_ranges_with_files(ranges).map_err(|e| Error::Memory(e.to_string()))
}

/// A file of `len` bytes for shared guest memory: a memfd, or, on kernels
/// without memfd_create (before 3.17, or without CONFIG_MEMFD_CREATE), an
/// unlinked file in /dev/shm (tmpfs) opened with O_TMPFILE.
fn shared_file(index: usize, len: u64) -> Result<File> {
    let name = format!("rpc-vmm-ram{index}\0");
    // SAFETY: `name` is NUL-terminated; the returned fd, if any, is new
    // and owned by the File.
    let fd = unsafe { libc::memfd_create(name.as_ptr().cast(), libc::MFD_CLOEXEC) };
    let file = if fd >= 0 {
        // SAFETY: see above.
        unsafe { File::from_raw_fd(fd) }
    } else {
        let memfd_err = std::io::Error::last_os_error();
        shm_tmpfile().map_err(|tmp_err| Error::SharedMemory(format!("memfd_create: {memfd_err}; O_TMPFILE in /dev/shm: {tmp_err}")))?
    };
    file.set_len(len).map_err(|e| Error::SharedMemory(format!("sizing a {len}-byte memory file: {e}")))?;
    Ok(file)
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

/// The fallback of [`shared_file`]: an unlinked tmpfs file.
fn shm_tmpfile() -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().read(true).write(true).custom_flags(libc::O_TMPFILE | libc::O_CLOEXEC).open("/dev/shm")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{FileExt, MetadataExt};
    use vm_memory::Bytes;

    #[test]
    fn shared_memory_is_file_backed_and_shared() {
        let mem = create(16, true).expect("shared memory");
        let region = mem.iter().next().expect("a region");
        let file = region.file_offset().expect("a file-backed region").file();
        assert_eq!(file.metadata().unwrap().len(), 16 << 20);
        // What the guest writes, the backend (another mapping of the
        // same fd) reads.
        mem.write_slice(b"seen by the backend", GuestAddress(0x1000)).unwrap();
        let mut buf = [0u8; 19];
        file.read_exact_at(&mut buf, 0x1000).unwrap();
        assert_eq!(&buf, b"seen by the backend");
    }

    #[test]
    fn shm_fallback_is_an_unlinked_file() {
        // Where /dev/shm is missing the fallback fails, with the reason.
        if let Ok(f) = shm_tmpfile() {
            f.set_len(4096).unwrap();
            assert_eq!(f.metadata().unwrap().nlink(), 0);
        }
    }

    #[test]
    fn private_memory_by_default() {
        let mem = create(16, false).expect("memory");
        assert!(mem.iter().all(|r| r.file_offset().is_none()));
    }
}
