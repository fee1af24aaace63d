//! x86_64 specifics: CPUID, MSRs, registers and long mode, the MP table
//! and the Linux boot protocols.

pub mod boot;
pub mod cpuid;
pub mod mptable;
pub mod msr;
pub mod regs;
