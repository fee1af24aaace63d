//! Reports of guest misbehaviour: counted per kind, the first few of each
//! kind printed on stderr as `rpc-vmm: guest: ...`, and a summary when the
//! VM stops. None of this is an error of the VMM.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// How many reports of one kind are printed before they are only counted.
const PRINT_LIMIT: u64 = 5;

/// Counts of guest faults by kind, shared by the vCPUs and devices.
#[derive(Debug, Default)]
pub struct Reporter {
    counts: Mutex<BTreeMap<&'static str, u64>>,
    verbose: bool,
}

impl Reporter {
    pub fn new(verbose: bool) -> Self {
        Reporter { counts: Mutex::new(BTreeMap::new()), verbose }
    }

    /// Records a guest fault of `kind`, printing it if it is among the
    /// first of its kind (or always, when verbose).
    pub fn guest_fault(&self, kind: &'static str, detail: std::fmt::Arguments<'_>) {
        let n = {
            let mut counts = crate::lock(&self.counts);
            let n = counts.entry(kind).or_insert(0);
            *n += 1;
            *n
        };
        if self.verbose || n <= PRINT_LIMIT {
            eprintln!("rpc-vmm: guest: {kind}: {detail}");
        } else if n == PRINT_LIMIT + 1 {
            eprintln!("rpc-vmm: guest: {kind}: more of these are only counted");
        }
    }

    /// Records an access the VMM ignores quietly (probes of absent
    /// hardware are normal during a Linux boot), printed only when verbose.
    pub fn quiet(&self, kind: &'static str, detail: std::fmt::Arguments<'_>) {
        let mut counts = crate::lock(&self.counts);
        *counts.entry(kind).or_insert(0) += 1;
        if self.verbose {
            eprintln!("rpc-vmm: guest: {kind}: {detail}");
        }
    }

    pub fn verbose(&self) -> bool {
        self.verbose
    }

    /// Total of the counts of `kind`.
    pub fn count(&self, kind: &str) -> u64 {
        let counts = crate::lock(&self.counts);
        counts.get(kind).copied().unwrap_or(0)
    }

    /// One line: `kind=N, kind=N` (empty if nothing was reported).
    pub fn summary(&self) -> String {
        let counts = crate::lock(&self.counts);
        counts.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
    }
}

/// Reports a guest fault: `guest_fault!(reporter, "kind", "fmt", args...)`.
#[macro_export]
macro_rules! guest_fault {
    ($r:expr, $kind:expr, $($arg:tt)*) => {
        $r.guest_fault($kind, format_args!($($arg)*))
    };
}
