//! Reports of guest misbehaviour: counted per kind, the first few of each
//! kind printed on stderr as `rpc-vmm: guest: ...`, and a summary when the
//! VM stops. None of this is an error of the VMM.
//!
//! Failures on the host side that do not stop the VM (a device backend
//! such as virtiofsd failing, host I/O errors, running out of file
//! descriptors) are counted apart, printed as `rpc-vmm: host: ...` and
//! summed up on their own line, so that the guest is not blamed for them.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// How many reports of one kind are printed before they are only counted.
const PRINT_LIMIT: u64 = 5;

/// Counts of guest faults and host errors by kind, shared by the vCPUs,
/// the devices and the event loop.
#[derive(Debug, Default)]
pub struct Reporter {
    counts: Mutex<BTreeMap<&'static str, u64>>,
    host_counts: Mutex<BTreeMap<&'static str, u64>>,
    verbose: bool,
}

/// Counts one more of `kind` in `counts`; returns the new count.
fn bump(counts: &Mutex<BTreeMap<&'static str, u64>>, kind: &'static str) -> u64 {
    let mut counts = crate::lock(counts);
    let n = counts.entry(kind).or_insert(0);
    *n += 1;
    *n
}

fn summarize(counts: &Mutex<BTreeMap<&'static str, u64>>) -> String {
    let counts = crate::lock(counts);
    counts.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
}

impl Reporter {
    pub fn new(verbose: bool) -> Self {
        Reporter { counts: Mutex::new(BTreeMap::new()), host_counts: Mutex::new(BTreeMap::new()), verbose }
    }

    /// Records a guest fault of `kind`, printing it if it is among the
    /// first of its kind (or always, when verbose).
    pub fn guest_fault(&self, kind: &'static str, detail: std::fmt::Arguments<'_>) {
        self.print("guest", bump(&self.counts, kind), kind, detail);
    }

    /// Records a failure of the host side (not the guest's doing) of
    /// `kind`, printing it if it is among the first of its kind.
    pub fn host_error(&self, kind: &'static str, detail: std::fmt::Arguments<'_>) {
        self.print("host", bump(&self.host_counts, kind), kind, detail);
    }

    fn print(&self, who: &str, n: u64, kind: &str, detail: std::fmt::Arguments<'_>) {
        if self.verbose || n <= PRINT_LIMIT {
            eprintln!("rpc-vmm: {who}: {kind}: {detail}");
        } else if n == PRINT_LIMIT + 1 {
            eprintln!("rpc-vmm: {who}: {kind}: more of these are only counted");
        }
    }

    /// Records an access the VMM ignores quietly (probes of absent
    /// hardware are normal during a Linux boot), printed only when verbose.
    pub fn quiet(&self, kind: &'static str, detail: std::fmt::Arguments<'_>) {
        bump(&self.counts, kind);
        if self.verbose {
            eprintln!("rpc-vmm: guest: {kind}: {detail}");
        }
    }

    pub fn verbose(&self) -> bool {
        self.verbose
    }

    /// Total of the guest faults of `kind`.
    pub fn count(&self, kind: &str) -> u64 {
        crate::lock(&self.counts).get(kind).copied().unwrap_or(0)
    }

    /// Total of the host errors of `kind`.
    pub fn host_count(&self, kind: &str) -> u64 {
        crate::lock(&self.host_counts).get(kind).copied().unwrap_or(0)
    }

    /// The guest faults in one line: `kind=N, kind=N` (empty if nothing
    /// was reported).
    pub fn summary(&self) -> String {
        summarize(&self.counts)
    }

    /// The host errors in one line, like [`Reporter::summary`].
    pub fn host_summary(&self) -> String {
        summarize(&self.host_counts)
    }
}

/// Reports a guest fault: `guest_fault!(reporter, "kind", "fmt", args...)`.
#[macro_export]
macro_rules! guest_fault {
    ($r:expr, $kind:expr, $($arg:tt)*) => {
        $r.guest_fault($kind, format_args!($($arg)*))
    };
}
