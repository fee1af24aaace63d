//! Loading a kernel (ELF vmlinux or bzImage, by linux-loader), its initrd
//! and command line, and the boot information it reads: the Linux zero
//! page with an e820 map, or a PVH start_info with a memory map.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use linux_loader::cmdline::Cmdline;
use linux_loader::loader::bootparam::{boot_e820_entry, boot_params};
use linux_loader::loader::elf::start_info::{hvm_memmap_table_entry, hvm_modlist_entry, hvm_start_info};
use linux_loader::loader::{load_cmdline, BzImage, Elf, KernelLoader, PvhBootCapability};
use vm_memory::{Address, Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryRegion};

use super::regs::EntryMode;
use crate::layout::*;
use crate::memory::{low_ram_end, GuestMemoryMmap};
use crate::{Error, Result};

const E820_RAM: u32 = 1;
const E820_RESERVED: u32 = 2;
const KERNEL_BOOT_FLAG_MAGIC: u16 = 0xaa55;
const KERNEL_HDR_MAGIC: u32 = 0x5372_6448;
const KERNEL_LOADER_OTHER: u8 = 0xff;
const KERNEL_MIN_ALIGNMENT_BYTES: u32 = 0x0100_0000;
const XEN_HVM_START_MAGIC_VALUE: u32 = 0x336e_c578;
/// Initrds are kept below this address (Linux's default initrd_addr_max).
const INITRD_ADDR_MAX: u64 = 0x3800_0000;

/// Where and how the boot vCPU starts.
#[derive(Clone, Copy, Debug)]
pub struct BootEntry {
    pub entry: u64,
    pub mode: EntryMode,
    /// `%rsi` (zero page) or `%ebx` (start_info).
    pub boot_info: u64,
}

struct Loaded {
    entry: u64,
    pvh_entry: Option<u64>,
    /// The first address past the kernel (and the room it needs).
    kernel_end: u64,
    setup_header: Option<linux_loader::loader::bootparam::setup_header>,
}

fn is_elf(file: &mut File) -> std::io::Result<bool> {
    let mut magic = [0u8; 4];
    file.seek(SeekFrom::Start(0))?;
    let n = file.read(&mut magic)?;
    file.seek(SeekFrom::Start(0))?;
    Ok(n == 4 && &magic == b"\x7fELF")
}

fn load_kernel(mem: &GuestMemoryMmap, path: &Path) -> Result<Loaded> {
    let file_err = |source| Error::File { path: path.to_owned(), source };
    let mut file = File::open(path).map_err(file_err)?;
    let load_err = |source| Error::KernelLoad { path: path.to_owned(), source };
    if is_elf(&mut file).map_err(file_err)? {
        let r = Elf::load(mem, None, &mut file, Some(GuestAddress(HIMEM_START))).map_err(load_err)?;
        let pvh_entry = match r.pvh_boot_cap {
            PvhBootCapability::PvhEntryPresent(addr) => Some(addr.raw_value()),
            _ => None,
        };
        Ok(Loaded { entry: r.kernel_load.raw_value(), pvh_entry, kernel_end: r.kernel_end, setup_header: None })
    } else {
        let r = BzImage::load(mem, None, &mut file, Some(GuestAddress(HIMEM_START))).map_err(load_err)?;
        // A bzImage decompresses in place: it needs init_size bytes from
        // its load address, more than the image.
        let init_end = r.kernel_load.raw_value() + r.setup_header.map(|h| u64::from(h.init_size)).unwrap_or(0);
        let kernel_end = r.kernel_end.max(init_end);
        // The 64-bit entry point of a bzImage is 0x200 past its start.
        Ok(Loaded { entry: r.kernel_load.raw_value() + 0x200, pvh_entry: None, kernel_end, setup_header: r.setup_header })
    }
}

/// Loads the initrd at the top of low RAM, above `kernel_end`; returns
/// (address, size).
fn load_initrd(mem: &GuestMemoryMmap, path: &Path, kernel_end: u64) -> Result<(u64, u64)> {
    let err = |msg: String| Error::Initrd { path: path.to_owned(), msg };
    let mut file = File::open(path).map_err(|e| err(e.to_string()))?;
    let size = file.metadata().map_err(|e| err(e.to_string()))?.len();
    let top = low_ram_end(mem).min(INITRD_ADDR_MAX);
    let addr = top
        .checked_sub(size)
        .map(|a| a & !0xfff)
        .filter(|a| *a >= kernel_end)
        .ok_or_else(|| err(format!("{size} bytes do not fit in guest memory")))?;
    let mut buf = Vec::new();
    file.read_to_end(&mut buf).map_err(|e| err(e.to_string()))?;
    mem.write_slice(&buf, GuestAddress(addr)).map_err(|source| Error::GuestMemoryAccess { addr, source })?;
    Ok((addr, size))
}

/// The RAM map: base memory up to the EBDA, then everything from 1 MiB.
fn ram_map(mem: &GuestMemoryMmap) -> Vec<(u64, u64, u32)> {
    let mut map = vec![(0, EBDA_START, E820_RAM), (EBDA_START, 0xa_0000 - EBDA_START, E820_RESERVED)];
    for region in mem.iter() {
        let start = region.start_addr().raw_value().max(HIMEM_START);
        let end = region.start_addr().raw_value() + region.len();
        if end > start {
            map.push((start, end - start, E820_RAM));
        }
    }
    map
}

/// Loads the kernel, initrd and command line and writes the boot
/// information. `cmdline` is complete (device declarations included).
pub fn load(mem: &GuestMemoryMmap, kernel: &Path, initrd: Option<&Path>, cmdline: &Cmdline, allow_pvh: bool) -> Result<BootEntry> {
    let loaded = load_kernel(mem, kernel)?;
    load_cmdline(mem, GuestAddress(CMDLINE_START), cmdline).map_err(|source| Error::KernelLoad { path: kernel.to_owned(), source })?;
    let cmdline_len = cmdline.as_cstring().map(|c| c.as_bytes().len()).unwrap_or(0) as u32;
    let initrd = match initrd {
        Some(p) => Some(load_initrd(mem, p, loaded.kernel_end.max(HIMEM_START))?),
        None => None,
    };

    if let (true, Some(pvh_entry)) = (allow_pvh, loaded.pvh_entry) {
        let map = ram_map(mem);
        if map.len() > PVH_MEMMAP_MAX {
            return Err(Error::Config("PVH memory map too long".into()));
        }
        let mut info = hvm_start_info {
            magic: XEN_HVM_START_MAGIC_VALUE,
            version: 1,
            cmdline_paddr: CMDLINE_START,
            memmap_paddr: PVH_MEMMAP_START,
            memmap_entries: map.len() as u32,
            ..Default::default()
        };
        for (i, (addr, size, type_)) in map.iter().enumerate() {
            let e = hvm_memmap_table_entry { addr: *addr, size: *size, type_: *type_, reserved: 0 };
            let at = PVH_MEMMAP_START + (i * std::mem::size_of::<hvm_memmap_table_entry>()) as u64;
            mem.write_obj(e, GuestAddress(at)).map_err(|source| Error::GuestMemoryAccess { addr: at, source })?;
        }
        if let Some((addr, size)) = initrd {
            let modlist = PVH_MEMMAP_START + (PVH_MEMMAP_MAX * std::mem::size_of::<hvm_memmap_table_entry>()) as u64;
            let m = hvm_modlist_entry { paddr: addr, size, ..Default::default() };
            mem.write_obj(m, GuestAddress(modlist)).map_err(|source| Error::GuestMemoryAccess { addr: modlist, source })?;
            info.nr_modules = 1;
            info.modlist_paddr = modlist;
        }
        mem.write_obj(info, GuestAddress(PVH_INFO_START)).map_err(|source| Error::GuestMemoryAccess { addr: PVH_INFO_START, source })?;
        return Ok(BootEntry { entry: pvh_entry, mode: EntryMode::Pvh, boot_info: PVH_INFO_START });
    }

    let mut params = boot_params::default();
    if let Some(hdr) = loaded.setup_header {
        params.hdr = hdr;
    }
    params.hdr.type_of_loader = KERNEL_LOADER_OTHER;
    params.hdr.boot_flag = KERNEL_BOOT_FLAG_MAGIC;
    params.hdr.header = KERNEL_HDR_MAGIC;
    params.hdr.cmd_line_ptr = CMDLINE_START as u32;
    params.hdr.cmdline_size = cmdline_len;
    if params.hdr.kernel_alignment == 0 {
        params.hdr.kernel_alignment = KERNEL_MIN_ALIGNMENT_BYTES;
    }
    if let Some((addr, size)) = initrd {
        params.hdr.ramdisk_image = addr as u32;
        params.hdr.ramdisk_size = size as u32;
    }
    let map = ram_map(mem);
    if map.len() > params.e820_table.len() {
        return Err(Error::Config("e820 map too long".into()));
    }
    for (i, (addr, size, type_)) in map.iter().enumerate() {
        params.e820_table[i] = boot_e820_entry { addr: *addr, size: *size, r#type: *type_ };
    }
    params.e820_entries = map.len() as u8;
    mem.write_obj(params, GuestAddress(ZERO_PAGE_START)).map_err(|source| Error::GuestMemoryAccess { addr: ZERO_PAGE_START, source })?;
    Ok(BootEntry { entry: loaded.entry, mode: EntryMode::Linux64, boot_info: ZERO_PAGE_START })
}
