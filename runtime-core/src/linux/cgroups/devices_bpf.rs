//! Devices on cgroup v2: the v1 device-cgroup semantics (a default action
//! and exceptions, the last rule wins) are emulated, then compiled by hand
//! into a BPF_PROG_TYPE_CGROUP_DEVICE program and attached to the
//! container's cgroup with BPF_PROG_ATTACH (BPF_CGROUP_DEVICE,
//! BPF_F_ALLOW_MULTI), as runc and crun do. Programs attached before (a
//! re-applied or reused cgroup) are detached once the new one is in.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use crate::error::{Error, Result};

/// One device rule in v1 terms. `kind` is 'a', 'b' or 'c'; -1 is a wildcard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub allow: bool,
    pub kind: char,
    pub major: i64,
    pub minor: i64,
    /// Bits: 1 = mknod, 2 = read, 4 = write (BPF_DEVCG_ACC_*).
    pub access: u32,
}

pub const ACC_MKNOD: u32 = 1;
pub const ACC_READ: u32 = 2;
pub const ACC_WRITE: u32 = 4;

/// "rwm" -> access bits; anything else is an error.
pub fn parse_access(s: &str) -> Result<u32> {
    if s.is_empty() {
        return Ok(ACC_MKNOD | ACC_READ | ACC_WRITE);
    }
    let mut a = 0;
    for c in s.chars() {
        a |= match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            _ => return Err(Error::Usage(format!("invalid device access {s:?}: only r, w and m are allowed"))),
        };
    }
    Ok(a)
}

/// The effective rule set after applying rules in order, as the v1 device
/// cgroup computes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emulated {
    pub default_allow: bool,
    /// Exceptions to the default: each has the opposite action.
    pub exceptions: Vec<Rule>,
}

impl Emulated {
    /// A new cgroup: everything is allowed (v1 inherits "a *:* rwm").
    pub fn new() -> Emulated {
        Emulated { default_allow: true, exceptions: vec![] }
    }

    pub fn apply(&mut self, r: Rule) {
        if r.kind == 'a' {
            // "a" resets: the whole list goes, the default flips.
            self.default_allow = r.allow;
            self.exceptions.clear();
            return;
        }
        if r.allow == self.default_allow {
            // Takes back access from an exact exception (dev_exception_rm).
            for e in self.exceptions.iter_mut() {
                if e.kind == r.kind && e.major == r.major && e.minor == r.minor {
                    e.access &= !r.access;
                }
            }
            self.exceptions.retain(|e| e.access != 0);
            return;
        }
        if let Some(e) = self.exceptions.iter_mut().find(|e| e.kind == r.kind && e.major == r.major && e.minor == r.minor) {
            e.access |= r.access;
        } else {
            self.exceptions.push(Rule { allow: !self.default_allow, ..r });
        }
    }

    /// Would the rules allow `access` on a device? (What the program does.)
    pub fn allows(&self, kind: char, major: i64, minor: i64, access: u32) -> bool {
        for e in &self.exceptions {
            if e.kind == kind && (e.major < 0 || e.major == major) && (e.minor < 0 || e.minor == minor) && access & !e.access == 0 {
                return e.allow;
            }
        }
        self.default_allow
    }
}

impl Default for Emulated {
    fn default() -> Self {
        Self::new()
    }
}

/// A raw BPF instruction (struct bpf_insn).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    /// dst_reg in the low nibble, src_reg in the high one.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;

fn ins(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn { code, regs: (src << 4) | (dst & 0xf), off, imm }
}
/// dst = *(u32 *)(src + off)
fn ldx_w(dst: u8, src: u8, off: i16) -> Insn {
    ins(0x61, dst, src, off, 0)
}
/// dst &= imm (32 bit)
fn and32_k(dst: u8, imm: i32) -> Insn {
    ins(0x54, dst, 0, 0, imm)
}
/// dst >>= imm (32 bit)
fn rsh32_k(dst: u8, imm: i32) -> Insn {
    ins(0x74, dst, 0, 0, imm)
}
/// dst = src (32 bit)
fn mov32_x(dst: u8, src: u8) -> Insn {
    ins(0xbc, dst, src, 0, 0)
}
/// dst = imm (32 bit)
fn mov32_k(dst: u8, imm: i32) -> Insn {
    ins(0xb4, dst, 0, 0, imm)
}
/// if dst != imm goto +off (32-bit compare, JMP32)
fn jne32_k(dst: u8, imm: i32, off: i16) -> Insn {
    ins(0x56, dst, 0, off, imm)
}
/// if dst != src goto +off (32-bit compare, JMP32)
fn jne32_x(dst: u8, src: u8, off: i16) -> Insn {
    ins(0x5e, dst, src, off, 0)
}
fn exit() -> Insn {
    ins(0x95, 0, 0, 0, 0)
}

/// Compile the emulated rule set. The context is struct bpf_cgroup_dev_ctx
/// { u32 access_type (access << 16 | type); u32 major; u32 minor; }.
pub fn compile(e: &Emulated) -> Vec<Insn> {
    let mut p = vec![
        ldx_w(R2, R1, 0),
        and32_k(R2, 0xffff), // type: 1 block, 2 char
        ldx_w(R3, R1, 0),
        rsh32_k(R3, 16), // access bits
        ldx_w(R4, R1, 4),
        ldx_w(R5, R1, 8),
    ];
    for r in &e.exceptions {
        let mut block = vec![];
        // Jump offsets are filled once the block's length is known.
        let bpf_type = if r.kind == 'b' { 1 } else { 2 };
        block.push(jne32_k(R2, bpf_type, 0));
        if r.access != ACC_MKNOD | ACC_READ | ACC_WRITE {
            block.push(mov32_x(R1, R3));
            block.push(and32_k(R1, r.access as i32));
            block.push(jne32_x(R1, R3, 0));
        }
        if r.major >= 0 {
            block.push(jne32_k(R4, r.major as i32, 0));
        }
        if r.minor >= 0 {
            block.push(jne32_k(R5, r.minor as i32, 0));
        }
        block.push(mov32_k(R0, r.allow as i32));
        block.push(exit());
        let n = block.len();
        for (i, insn) in block.iter_mut().enumerate() {
            if insn.code == 0x56 || insn.code == 0x5e {
                // to the first instruction after this block
                insn.off = (n - i - 1) as i16;
            }
        }
        p.extend(block);
    }
    p.push(mov32_k(R0, e.default_allow as i32));
    p.push(exit());
    p
}

/// A tiny interpreter of the programs `compile` makes, for tests.
pub fn interpret(p: &[Insn], kind: char, major: u32, minor: u32, access: u32) -> u32 {
    let ctx = [(access << 16) | if kind == 'b' { 1 } else { 2 }, major, minor];
    let mut r = [0u64; 11];
    let mut pc = 0usize;
    while pc < p.len() {
        let i = p[pc];
        let (d, s) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
        pc += 1;
        match i.code {
            0x61 => r[d] = ctx[i.off as usize / 4] as u64,
            0x54 => r[d] = (r[d] as u32 & i.imm as u32) as u64,
            0x74 => r[d] = ((r[d] as u32) >> i.imm) as u64,
            0xbc => r[d] = r[s] as u32 as u64,
            0xb4 => r[d] = i.imm as u32 as u64,
            0x56 => {
                if r[d] as u32 != i.imm as u32 {
                    pc += i.off as usize
                }
            }
            0x5e => {
                if r[d] as u32 != r[s] as u32 {
                    pc += i.off as usize
                }
            }
            0x95 => return r[0] as u32,
            c => panic!("unknown opcode {c:#x}"),
        }
    }
    panic!("fell off the program")
}

const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_ATTACH: libc::c_int = 8;
const BPF_PROG_DETACH: libc::c_int = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_int = 13;
const BPF_PROG_QUERY: libc::c_int = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// union bpf_attr is 120+ bytes; we fill the prefix each command uses.
#[repr(C, align(8))]
struct Attr([u8; 128]);

impl Attr {
    fn new() -> Attr {
        Attr([0; 128])
    }
    fn u32(&mut self, off: usize, v: u32) {
        self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
    }
    fn u64(&mut self, off: usize, v: u64) {
        self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
    }
    fn get_u32(&self, off: usize) -> u32 {
        u32::from_ne_bytes(self.0[off..off + 4].try_into().unwrap_or([0; 4]))
    }
}

fn bpf(cmd: libc::c_int, attr: &mut Attr) -> std::io::Result<i64> {
    // SAFETY: attr is a valid, large enough buffer for every command we use.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.0.as_mut_ptr(), std::mem::size_of::<Attr>()) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(r)
}

/// Load a program; on a verifier error the message names the log.
pub fn load(p: &[Insn]) -> Result<OwnedFd> {
    let license = c"Apache";
    let mut log = vec![0u8; 64 * 1024];
    let mut a = Attr::new();
    a.u32(0, BPF_PROG_TYPE_CGROUP_DEVICE);
    a.u32(4, p.len() as u32);
    a.u64(8, p.as_ptr() as u64);
    a.u64(16, license.as_ptr() as u64);
    a.u32(24, 1); // log_level
    a.u32(28, log.len() as u32);
    a.u64(32, log.as_mut_ptr() as u64);
    match bpf(BPF_PROG_LOAD, &mut a) {
        // SAFETY: the kernel returned a new fd.
        Ok(fd) => Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) }),
        Err(e) => {
            let end = log.iter().position(|b| *b == 0).unwrap_or(0);
            let msg = String::from_utf8_lossy(&log[..end]);
            Err(Error::Container(format!(
                "loading the eBPF device filter: {e}{}",
                if msg.trim().is_empty() { String::new() } else { format!(": {}", msg.trim()) }
            )))
        }
    }
}

/// Ids of the device programs attached to a cgroup.
pub fn query(cg: &OwnedFd) -> Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    let mut a = Attr::new();
    a.u32(0, cg.as_raw_fd() as u32); // target_fd
    a.u32(4, BPF_CGROUP_DEVICE); // attach_type
    a.u32(8, 0); // query_flags
    a.u64(16, ids.as_mut_ptr() as u64); // prog_ids
    a.u32(24, ids.len() as u32); // prog_cnt
    bpf(BPF_PROG_QUERY, &mut a).map_err(|e| Error::Container(format!("querying eBPF device programs: {e}")))?;
    let n = a.get_u32(24) as usize;
    ids.truncate(n.min(64));
    Ok(ids)
}

fn open_cgroup(dir: &Path) -> Result<OwnedFd> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)
        .map_err(|e| Error::Cgroup { path: dir.to_path_buf(), msg: format!("open: {e}") })?;
    Ok(OwnedFd::from(f))
}

use std::os::unix::fs::OpenOptionsExt;

/// Compile, load and attach the filter for `rules` (applied in order on a
/// fresh allow-all cgroup) to the cgroup2 directory `dir`, replacing the
/// programs attached there before.
pub fn apply(dir: &Path, rules: &[Rule]) -> Result<()> {
    let mut e = Emulated::new();
    for r in rules {
        e.apply(*r);
    }
    let prog = load(&compile(&e))?;
    let cg = open_cgroup(dir)?;
    let old = query(&cg).unwrap_or_default();
    let mut a = Attr::new();
    a.u32(0, cg.as_raw_fd() as u32);
    a.u32(4, prog.as_raw_fd() as u32);
    a.u32(8, BPF_CGROUP_DEVICE);
    a.u32(12, BPF_F_ALLOW_MULTI);
    bpf(BPF_PROG_ATTACH, &mut a)
        .map_err(|e| Error::Cgroup { path: dir.to_path_buf(), msg: format!("attaching the eBPF device filter: {e}") })?;
    for id in old {
        let mut g = Attr::new();
        g.u32(0, id);
        let Ok(fd) = bpf(BPF_PROG_GET_FD_BY_ID, &mut g) else {
            continue;
        };
        // SAFETY: the kernel returned a new fd.
        let old_fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        let mut d = Attr::new();
        d.u32(0, cg.as_raw_fd() as u32);
        d.u32(4, old_fd.as_raw_fd() as u32);
        d.u32(8, BPF_CGROUP_DEVICE);
        if let Err(e) = bpf(BPF_PROG_DETACH, &mut d) {
            crate::log::warn(&format!("detaching old eBPF device program {id} from {}: {e}", dir.display()));
        }
    }
    Ok(())
}

/// Number of device programs attached to `dir` (for tests and checks).
pub fn attached(dir: &Path) -> Result<usize> {
    Ok(query(&open_cgroup(dir)?)?.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(allow: bool, kind: char, major: i64, minor: i64, acc: &str) -> Rule {
        Rule { allow, kind, major, minor, access: parse_access(acc).unwrap() }
    }

    fn default_rules() -> Vec<Rule> {
        let mut v = vec![r(false, 'a', -1, -1, "rwm")];
        for (t, ma, mi, acc) in crate::linux::cgroups::resources::default_device_rules() {
            v.push(r(true, t, ma, mi, acc));
        }
        v
    }

    #[test]
    fn emulation_deny_all_then_allow() {
        let mut e = Emulated::new();
        for x in default_rules() {
            e.apply(x);
        }
        assert!(!e.default_allow);
        assert!(e.allows('c', 1, 3, ACC_READ | ACC_WRITE));
        assert!(e.allows('c', 136, 4, ACC_READ));
        assert!(e.allows('b', 8, 0, ACC_MKNOD));
        assert!(!e.allows('b', 8, 0, ACC_READ));
        assert!(!e.allows('c', 1, 1, ACC_READ));
        // a later deny takes back access from the exact exception
        e.apply(r(false, 'c', 1, 3, "w"));
        assert!(e.allows('c', 1, 3, ACC_READ));
        assert!(!e.allows('c', 1, 3, ACC_WRITE));
        // "a" resets everything
        e.apply(r(true, 'a', -1, -1, "rwm"));
        assert!(e.exceptions.is_empty() && e.default_allow);
    }

    #[test]
    fn program_matches_the_emulation() {
        let mut rules = default_rules();
        rules.push(r(true, 'b', 8, -1, "r"));
        rules.push(r(true, 'c', 10, 229, "rw"));
        let mut e = Emulated::new();
        for x in &rules {
            e.apply(*x);
        }
        let p = compile(&e);
        for kind in ['b', 'c'] {
            for major in [0u32, 1, 5, 8, 10, 136, 254] {
                for minor in [0u32, 1, 2, 3, 5, 7, 8, 9, 200, 229] {
                    for acc in 1..8 {
                        let want = e.allows(kind, major as i64, minor as i64, acc) as u32;
                        assert_eq!(interpret(&p, kind, major, minor, acc), want, "{kind} {major}:{minor} acc {acc}");
                    }
                }
            }
        }
        // allow-list mode with a deny exception
        let mut e = Emulated::new();
        e.apply(r(false, 'c', 1, 1, "rwm"));
        let p = compile(&e);
        assert_eq!(interpret(&p, 'c', 1, 1, ACC_READ), 0);
        assert_eq!(interpret(&p, 'c', 1, 3, ACC_READ), 1);
    }

    #[test]
    fn access_strings() {
        assert_eq!(parse_access("rwm").unwrap(), 7);
        assert_eq!(parse_access("m").unwrap(), 1);
        assert!(parse_access("rx").is_err());
    }
}
