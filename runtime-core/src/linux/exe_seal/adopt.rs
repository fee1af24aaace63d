//! Sealing without a second exec: the runtime takes the sealed view of its
//! binary as its own image, in place.
//!
//! What a container can reach through `/proc/<pid>/exe` of a fork of ours
//! is the process's `mm->exe_file`. Re-executing through the view replaced
//! it at the price of a whole second start of the runtime (execve, page
//! faults, relocation of the static PIE: 0.7-1.3 ms CPU per create, run
//! or exec on the benchmark VM, most of the seal's cost; this costs ~0.3
//! ms, mostly the 56 pages of RELRO and data copied). The kernel also lets
//! a process name another file as its image (prctl `PR_SET_MM_MAP` with
//! `exe_fd`, 3.18+, as CRIU restores processes; CAP_SYS_ADMIN or
//! CAP_CHECKPOINT_RESTORE in the process's user namespace), once no mapping
//! of the old file is left. So each mapping of the binary is replaced first
//! by one with the same bytes that does not name it:
//! - the segments never written (code, read-only data) are mapped again
//!   through the view (the same page-cache pages: no copy);
//! - the writable ones (RELRO, which startup relocated, `.data`, `.bss`)
//!   are copied into anonymous memory.
//!
//! Each replacement is made at a fresh address and moved over the old one
//! with mremap, which swaps the mapping in one step: a failure before the
//! move changes nothing, and the code running during the move (it lives in
//! one of these mappings) finds the same bytes under it. Anything refused
//! (older kernel, no capability, a mapping of the binary left) is an error,
//! and the caller re-executes through the view as before.

use std::os::fd::RawFd;

use crate::error::{Error, Result};

const PR_SET_MM: libc::c_int = 35;
const PR_SET_MM_MAP: libc::c_ulong = 14;
const PT_LOAD: u32 = 1;
const PT_PHDR: u32 = 6;
const PT_GNU_RELRO: u32 = 0x6474_e552;

/// `struct prctl_mm_map` (linux/prctl.h).
#[repr(C)]
struct MmMap {
    start_code: u64,
    end_code: u64,
    start_data: u64,
    end_data: u64,
    start_brk: u64,
    brk: u64,
    start_stack: u64,
    arg_start: u64,
    arg_end: u64,
    env_start: u64,
    env_end: u64,
    auxv: *mut u64,
    auxv_size: u32,
    exe_fd: u32,
}

/// A range of addresses, [start, end).
type Span = (usize, usize);

/// One PT_LOAD segment of our image, in whole pages.
struct Segment {
    start: usize,
    len: usize,
    prot: libc::c_int,
    offset: libc::off_t,
    writable: bool,
}

fn err(what: &str) -> Error {
    Error::Io { context: format!("sealing the runtime image in place: {what}"), source: std::io::Error::last_os_error() }
}

fn refused(what: &str) -> Error {
    Error::Container(format!("sealing the runtime image in place: {what}"))
}

/// Make `view`, a read-only (not O_PATH) handle of our own binary through a
/// sealed view, the image of this process: every mapping of the binary
/// replaced, and `/proc/self/exe` naming the view. The process must be
/// single-threaded (checked): another thread could write the writable
/// segments between their copy and the move.
pub(super) fn adopt(view: RawFd) -> Result<()> {
    let exe_fd = u32::try_from(view).map_err(|_| refused("bad handle"))?;
    let (segments, relro) = segments()?;
    let mut map = mm_map()?;
    map.exe_fd = exe_fd;
    // The replacements, at fresh addresses.
    let mut fresh: Vec<usize> = Vec::with_capacity(segments.len());
    for s in &segments {
        // SAFETY: new mappings at addresses the kernel picks; nothing of
        // ours is touched.
        let p = unsafe {
            if s.writable {
                libc::mmap(
                    std::ptr::null_mut(),
                    s.len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                    -1,
                    0,
                )
            } else {
                libc::mmap(std::ptr::null_mut(), s.len, s.prot, libc::MAP_PRIVATE, view, s.offset)
            }
        };
        if p == libc::MAP_FAILED {
            let e = err("mapping a segment through the sealed view");
            unmap(&segments, &fresh, 0);
            return Err(e);
        }
        fresh.push(p as usize);
    }
    // From the first copy to its move nothing may write the writable
    // segments: no allocation, and no signal handler.
    // SAFETY: sigset_t is plain data, filled by sigfillset.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid sigset pointers.
    unsafe {
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
    }
    let r = swap(&segments, &fresh, relro, &mut map);
    // SAFETY: restores the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    r
}

/// Copy and move the replacements over the image, then name the view as
/// the image.
fn swap(segments: &[Segment], fresh: &[usize], relro: Option<Span>, map: &mut MmMap) -> Result<()> {
    for (i, (s, &p)) in segments.iter().zip(fresh).enumerate() {
        if s.writable {
            // SAFETY: both ranges are mapped, readable (the image's
            // segment) and writable (ours), `len` long, and disjoint.
            unsafe { std::ptr::copy_nonoverlapping(s.start as *const u8, p as *mut u8, s.len) };
        }
        // SAFETY: moves our fresh mapping over the segment, which holds the
        // same bytes; the old mapping goes away in the same call.
        let moved =
            unsafe { libc::mremap(p as *mut _, s.len, s.len, libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED, s.start as *mut libc::c_void) };
        if moved == libc::MAP_FAILED {
            let e = err("moving a segment into place");
            unmap(segments, fresh, i);
            return Err(e);
        }
    }
    // RELRO was read-only (the startup code protected it after relocating).
    if let Some((a, b)) = relro {
        // SAFETY: a range of our own writable segment, now anonymous.
        if unsafe { libc::mprotect(a as *mut _, b - a, libc::PROT_READ) } != 0 {
            return Err(err("protecting RELRO again"));
        }
    }
    // SAFETY: brk(0) only reports the current break.
    map.brk = unsafe { libc::syscall(libc::SYS_brk, 0usize) } as u64;
    // SAFETY: a valid prctl_mm_map of our own values; the kernel refuses
    // (EBUSY) while a mapping of the old image is left.
    let r = unsafe { libc::prctl(PR_SET_MM, PR_SET_MM_MAP, map as *mut MmMap, std::mem::size_of::<MmMap>(), 0usize) };
    if r != 0 {
        return Err(err("naming the sealed view as the image (prctl PR_SET_MM_MAP)"));
    }
    Ok(())
}

/// Unmap the replacements from `from` on (not moved yet).
fn unmap(segments: &[Segment], fresh: &[usize], from: usize) {
    for (s, &p) in segments.iter().zip(fresh).skip(from) {
        // SAFETY: a mapping we made and did not move.
        unsafe { libc::munmap(p as *mut _, s.len) };
    }
}

/// Our PT_LOAD segments in whole pages, and the RELRO range (in the pages
/// glibc protected: from its first page to the page its end falls in).
#[cfg(target_pointer_width = "64")]
fn segments() -> Result<(Vec<Segment>, Option<Span>)> {
    // SAFETY: getauxval only reads the auxiliary vector.
    let (phdr, phnum, page) = unsafe {
        (libc::getauxval(libc::AT_PHDR) as usize, libc::getauxval(libc::AT_PHNUM) as usize, libc::getauxval(libc::AT_PAGESZ) as usize)
    };
    if phdr == 0 || phnum == 0 || !page.is_power_of_two() {
        return Err(refused("no program headers in the auxiliary vector"));
    }
    // SAFETY: the kernel maps our program headers for the life of the
    // image and gives their address and number in AT_PHDR and AT_PHNUM.
    let hs = unsafe { std::slice::from_raw_parts(phdr as *const libc::Elf64_Phdr, phnum) };
    let Some(bias) = hs.iter().find(|h| h.p_type == PT_PHDR).map(|h| phdr.wrapping_sub(h.p_vaddr as usize)) else {
        return Err(refused("no PT_PHDR"));
    };
    let down = |a: usize| a & !(page - 1);
    let up = |a: usize| (a + page - 1) & !(page - 1);
    let mut v = Vec::new();
    let mut relro = None;
    for h in hs {
        let addr = bias.wrapping_add(h.p_vaddr as usize);
        if h.p_type == PT_GNU_RELRO {
            let (a, b) = (down(addr), down(addr + h.p_memsz as usize));
            relro = (a < b).then_some((a, b));
        }
        if h.p_type != PT_LOAD || h.p_memsz == 0 {
            continue;
        }
        let start = down(addr);
        let lead = addr - start;
        let Some(offset) = (h.p_offset as usize).checked_sub(lead) else {
            return Err(refused("segment offset and address disagree"));
        };
        let mut prot = 0;
        if h.p_flags & libc::PF_R != 0 {
            prot |= libc::PROT_READ;
        }
        if h.p_flags & libc::PF_W != 0 {
            prot |= libc::PROT_WRITE;
        }
        if h.p_flags & libc::PF_X != 0 {
            prot |= libc::PROT_EXEC;
        }
        let offset = libc::off_t::try_from(offset).map_err(|_| refused("segment offset"))?;
        v.push(Segment { start, len: up(addr + h.p_memsz as usize) - start, prot, offset, writable: h.p_flags & libc::PF_W != 0 });
    }
    // Writable segments first: their copies must be taken before anything
    // else runs, and the code we run is in a read-only one.
    v.sort_by_key(|s| !s.writable);
    Ok((v, relro))
}

#[cfg(not(target_pointer_width = "64"))]
fn segments() -> Result<(Vec<Segment>, Option<Span>)> {
    Err(refused("64-bit images only"))
}

/// The kernel's own values for our mm (/proc/self/stat), to hand back
/// unchanged with the new exe_fd; checks that we are single-threaded.
fn mm_map() -> Result<MmMap> {
    let stat = std::fs::read("/proc/self/stat").map_err(|e| Error::Io { context: "reading /proc/self/stat".into(), source: e })?;
    // Fields after the command name, which may hold blanks and ')'.
    let Some(close) = stat.iter().rposition(|&b| b == b')') else {
        return Err(refused("unreadable /proc/self/stat"));
    };
    let rest = String::from_utf8_lossy(&stat[close + 1..]).into_owned();
    // (field numbers of proc(5): the state, field 3, comes first)
    let f: Vec<&str> = rest.split_ascii_whitespace().collect();
    let field = |n: usize| f.get(n - 3).and_then(|s| s.parse::<u64>().ok()).ok_or_else(|| refused("short /proc/self/stat"));
    if field(20)? != 1 {
        return Err(refused("more than one thread"));
    }
    Ok(MmMap {
        start_code: field(26)?,
        end_code: field(27)?,
        start_stack: field(28)?,
        start_data: field(45)?,
        end_data: field(46)?,
        start_brk: field(47)?,
        brk: 0,
        arg_start: field(48)?,
        arg_end: field(49)?,
        env_start: field(50)?,
        env_end: field(51)?,
        auxv: std::ptr::null_mut(),
        auxv_size: 0,
        exe_fd: u32::MAX,
    })
}
