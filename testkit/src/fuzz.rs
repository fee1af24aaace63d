//! A fuzzing harness for the stable toolchain (cargo-fuzz needs nightly):
//! a seeded PRNG, a mutator that knows JSON's tokens as well as bytes, and
//! a loop with an iteration and time budget that runs inside `cargo test`.
//!
//! Each target is a `#[test]` that calls [`run`] with seed inputs and a
//! function over one input. The loop runs the seeds and the target's
//! regression corpus (`tests/fuzz-corpus/<target>/`: every crash found,
//! kept as a file) first, then mutations of the pool (the seeds and the
//! mutants the target accepted, so mutations stack on inputs that got
//! deep) until the budget is spent.
//!
//! A panic stops the run: the input is written to `RPC_FUZZ_CRASH_DIR`
//! (default `$TMPDIR/rpc-fuzz-crashes`) and the test fails naming the file
//! and the seed. An input that runs longer than `RPC_FUZZ_HANG_SECS`
//! (default 20) is written there too and the process aborts (a hang in a
//! parser cannot be interrupted).
//!
//! Environment: `RPC_FUZZ_SECS` (time budget per target, default 2 s: the
//! bounded pass of `cargo test`), `RPC_FUZZ_ITERS` (iteration cap),
//! `RPC_FUZZ_SEED` (default: fixed, so the CI pass is reproducible; `time`
//! for a new one each run), `RPC_FUZZ_SAVE_EACH=1` (write each input to
//! the crash dir before running it, to catch what kills the process, e.g.
//! a fault in C code).

use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// xorshift64*: small, fast, and the same sequence for the same seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        // splitmix64 of the seed, so that 0 and nearby seeds are fine.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng((z ^ (z >> 31)) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in `0..n` (0 when n is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }
    /// True one time in `n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }
    pub fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
    /// A number that is often at an edge: 0, 1, a power of two and its
    /// neighbours, all-ones.
    pub fn edgy_u64(&mut self) -> u64 {
        match self.below(6) {
            0 => self.below(4) as u64,
            1 => u64::MAX - self.below(2) as u64,
            2 => {
                let p = 1u64 << self.below(64);
                p.wrapping_add(self.below(3) as u64).wrapping_sub(1)
            }
            3 => self.below(256) as u64,
            _ => self.next_u64(),
        }
    }
}

/// JSON values a mutation puts in place of another.
const JSON_VALUES: &[&str] = &[
    "null",
    "true",
    "false",
    "0",
    "-1",
    "1",
    "1.5",
    "-0",
    "1e400",
    "255",
    "256",
    "65535",
    "65536",
    "2147483647",
    "2147483648",
    "-2147483649",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "\"\"",
    "\"\\u0000\"",
    "\"a\\u0000b\"",
    "\"..\"",
    "\"../../../../etc/passwd\"",
    "\"/\"",
    "\"/proc/self/exe\"",
    "\"relative\"",
    "\"\\ud800\"",
    "\"\\n\"",
    "\"%s%n\"",
    "[]",
    "{}",
    "[null]",
    "[[[[[[[[]]]]]]]]",
    "{\"\":{}}",
];

/// What a `Mutator` works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Raw bytes.
    Bytes,
    /// JSON text: most mutations replace, swap, copy or drop whole tokens
    /// and values, so that the result still parses and reaches the code
    /// behind the parser.
    Json,
}

/// One lexical token of JSON text: its byte range and first byte.
#[derive(Debug, Clone, Copy)]
struct Tok {
    start: usize,
    end: usize,
    first: u8,
}

/// Tokens of (possibly broken) JSON text: strings, numbers and literals,
/// and the punctuation. Garbage is skipped.
fn lex(s: &[u8]) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        let start = i;
        match c {
            b'"' => {
                i += 1;
                while i < s.len() && s[i] != b'"' {
                    i += if s[i] == b'\\' { 2 } else { 1 };
                }
                i = (i + 1).min(s.len());
            }
            b'{' | b'}' | b'[' | b']' | b':' | b',' => i += 1,
            b'-' | b'0'..=b'9' | b't' | b'f' | b'n' => {
                while i < s.len() && (s[i].is_ascii_alphanumeric() || matches!(s[i], b'-' | b'+' | b'.')) {
                    i += 1;
                }
            }
            _ => {
                i += 1;
                continue;
            }
        }
        out.push(Tok { start, end: i, first: c });
    }
    out
}

/// The byte range of the value starting at token `t` (a whole container
/// for `{` and `[`).
fn value_span(toks: &[Tok], t: usize) -> (usize, usize) {
    let open = toks[t].first;
    if open != b'{' && open != b'[' {
        return (toks[t].start, toks[t].end);
    }
    let mut depth = 0i32;
    for tok in &toks[t..] {
        match tok.first {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return (toks[t].start, tok.end);
                }
            }
            _ => {}
        }
    }
    (toks[t].start, toks.last().map(|x| x.end).unwrap_or(toks[t].end))
}

/// Mutates inputs. `dict` holds words of the target (enum names, keys),
/// to which the strings of the seeds are added.
pub struct Mutator {
    pub kind: Kind,
    pub max_len: usize,
    dict: Vec<Vec<u8>>,
}

impl Mutator {
    pub fn new(kind: Kind, max_len: usize, dict: &[&str], seeds: &[Vec<u8>]) -> Mutator {
        // JSON words are strings; bytes take them as they are.
        let mut d: Vec<Vec<u8>> =
            dict.iter().map(|w| if kind == Kind::Json { format!("\"{w}\"").into_bytes() } else { w.as_bytes().to_vec() }).collect();
        if kind == Kind::Json {
            for s in seeds {
                for t in lex(s) {
                    if t.first == b'"' && t.end - t.start < 64 {
                        d.push(s[t.start..t.end].to_vec());
                    }
                }
            }
        }
        d.sort();
        d.dedup();
        Mutator { kind, max_len, dict: d }
    }

    /// 1 to 4 mutations of `input`, `other` a second input for splicing.
    pub fn mutate(&self, rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
        let mut v = input.to_vec();
        for _ in 0..1 + rng.below(4) {
            if self.kind == Kind::Json && !rng.one_in(5) {
                self.json_step(rng, &mut v, other);
            } else {
                self.byte_step(rng, &mut v, other);
            }
        }
        v.truncate(self.max_len);
        v
    }

    fn byte_step(&self, rng: &mut Rng, v: &mut Vec<u8>, other: &[u8]) {
        let n = v.len();
        match rng.below(9) {
            0 if n > 0 => {
                let i = rng.below(n);
                v[i] ^= 1 << rng.below(8);
            }
            1 if n > 0 => {
                let i = rng.below(n);
                v[i] = *rng.pick(&[0u8, 0xff, 0x7f, 0x80, b'"', b'\\', b'{', b'[', b'0', b'\n']);
            }
            2 => {
                let i = rng.below(n + 1);
                let k = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..k).map(|_| rng.next_u64() as u8).collect();
                v.splice(i..i, bytes);
            }
            3 if n > 0 => {
                let i = rng.below(n);
                let k = 1 + rng.below((n - i).min(64));
                v.drain(i..i + k);
            }
            4 if n > 0 => {
                let i = rng.below(n);
                let k = 1 + rng.below((n - i).min(256));
                let copy = v[i..i + k].to_vec();
                let at = rng.below(n + 1);
                v.splice(at..at, copy);
            }
            5 if !other.is_empty() => {
                // splice: our head, the other's tail
                let i = rng.below(n + 1);
                let j = rng.below(other.len());
                v.truncate(i);
                v.extend_from_slice(&other[j..]);
            }
            6 if n >= 8 => {
                // an edgy little-endian integer over some bytes
                let w = *rng.pick(&[1usize, 2, 4, 8]);
                let i = rng.below(n - w + 1);
                let x = rng.edgy_u64().to_le_bytes();
                v[i..i + w].copy_from_slice(&x[..w]);
            }
            7 if !self.dict.is_empty() => {
                let w = rng.pick(&self.dict).clone();
                let i = rng.below(n + 1);
                v.splice(i..i, w);
            }
            _ => {
                if n > 0 {
                    let i = rng.below(n);
                    v[i] = rng.next_u64() as u8;
                } else {
                    v.push(rng.next_u64() as u8);
                }
            }
        }
    }

    fn json_step(&self, rng: &mut Rng, v: &mut Vec<u8>, other: &[u8]) {
        let toks = lex(v);
        if toks.is_empty() {
            return self.byte_step(rng, v, other);
        }
        // Value tokens: where a value starts.
        let values: Vec<usize> = (0..toks.len())
            .filter(|&i| !matches!(toks[i].first, b'}' | b']' | b':' | b','))
            .filter(|&i| toks.get(i + 1).is_none_or(|n| n.first != b':'))
            .collect();
        let keys: Vec<usize> =
            (0..toks.len()).filter(|&i| toks[i].first == b'"' && toks.get(i + 1).is_some_and(|n| n.first == b':')).collect();
        if values.is_empty() {
            return self.byte_step(rng, v, other);
        }
        let t = *rng.pick(&values);
        let (s, e) = value_span(&toks, t);
        match rng.below(8) {
            // a value replaced by an edge value
            0 | 1 => {
                let new = rng.pick(JSON_VALUES).as_bytes().to_vec();
                v.splice(s..e, new);
            }
            // a value replaced by a word of the target
            2 if !self.dict.is_empty() => {
                let new = rng.pick(&self.dict).clone();
                v.splice(s..e, new);
            }
            // a number replaced by an edgy one, maybe negative
            3 => {
                let mut n = rng.edgy_u64().to_string();
                if rng.one_in(3) {
                    n.insert(0, '-');
                }
                v.splice(s..e, n.into_bytes());
            }
            // a value copied next to itself (arrays grow, objects get a
            // duplicate member)
            4 => {
                let copy = v[s..e].to_vec();
                let mut ins = b",".to_vec();
                if let Some(k) = keys.iter().rev().find(|&&k| toks[k].end <= s && t == k + 2) {
                    ins.extend_from_slice(&v[toks[*k].start..s]);
                }
                ins.extend_from_slice(&copy);
                v.splice(e..e, ins);
            }
            // a member removed, with its comma
            5 if !keys.is_empty() => {
                let k = *rng.pick(&keys);
                let (_, ve) = if k + 2 < toks.len() { value_span(&toks, k + 2) } else { (0, toks[k].end) };
                let mut end = ve;
                if let Some(c) = toks.iter().find(|x| x.start >= ve) {
                    if c.first == b',' {
                        end = c.end;
                    }
                }
                v.drain(toks[k].start..end.max(toks[k].start));
            }
            // a key renamed to another word
            6 if !keys.is_empty() && !self.dict.is_empty() => {
                let k = *rng.pick(&keys);
                let new = rng.pick(&self.dict).clone();
                v.splice(toks[k].start..toks[k].end, new);
            }
            // a value replaced by a value of another input
            _ => {
                let ot = lex(other);
                if ot.is_empty() {
                    return;
                }
                let (os, oe) = value_span(&ot, rng.below(ot.len()));
                let new = other[os..oe].to_vec();
                v.splice(s..e, new);
            }
        }
    }
}

/// The budget of one target's run.
#[derive(Debug, Clone)]
pub struct Budget {
    pub time: Duration,
    pub iters: u64,
    pub seed: u64,
}

impl Budget {
    /// From the environment (see the module doc), `default_secs` when
    /// `RPC_FUZZ_SECS` is unset.
    pub fn from_env(default_secs: f64) -> Budget {
        let secs = std::env::var("RPC_FUZZ_SECS").ok().and_then(|s| s.parse::<f64>().ok()).unwrap_or(default_secs);
        let iters = std::env::var("RPC_FUZZ_ITERS").ok().and_then(|s| s.parse().ok()).unwrap_or(u64::MAX);
        let seed = match std::env::var("RPC_FUZZ_SEED").ok().as_deref() {
            Some("time") => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1),
            Some(s) => s.parse().unwrap_or(1),
            None => 0x5eed_0019,
        };
        Budget { time: Duration::from_secs_f64(secs.max(0.0)), iters, seed }
    }
}

/// What one run did.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub iters: u64,
    pub accepted: u64,
    pub pool: usize,
    pub corpus: usize,
}

/// Where crash inputs go.
pub fn crash_dir() -> PathBuf {
    std::env::var_os("RPC_FUZZ_CRASH_DIR").map(PathBuf::from).unwrap_or_else(|| std::env::temp_dir().join("rpc-fuzz-crashes"))
}

fn save(name: &str, tag: &str, input: &[u8]) -> PathBuf {
    let dir = crash_dir();
    let _ = std::fs::create_dir_all(&dir);
    // FNV-1a: a stable name for the same input.
    let h = input.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3));
    let p = dir.join(format!("{name}-{tag}-{h:016x}"));
    let _ = std::fs::write(&p, input);
    p
}

/// Inputs of a regression corpus directory (crashes found before), sorted.
pub fn corpus(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().filter_map(|e| std::fs::read(e.path()).ok().map(|b| (e.path(), b))).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Runs `target` on the regression corpus in `corpus_dir`, the seeds, then
/// mutants until `budget` is spent. `target` returns whether it accepted
/// the input (it parsed, so mutants of it go deeper); it must not panic.
/// Panics (failing the test) on the first input that makes it panic.
pub fn run(name: &str, corpus_dir: &Path, seeds: &[Vec<u8>], m: &Mutator, budget: &Budget, mut target: impl FnMut(&[u8]) -> bool) -> Stats {
    let save_each = std::env::var_os("RPC_FUZZ_SAVE_EACH").is_some();
    let hang = Duration::from_secs(std::env::var("RPC_FUZZ_HANG_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(20));
    // The watchdog: the input in flight and when it started.
    let current: Arc<Mutex<Vec<u8>>> = Arc::new(Mutex::new(Vec::new()));
    let started = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    {
        let (current, started, done, name) = (current.clone(), started.clone(), done.clone(), name.to_string());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                let s = started.load(Ordering::Relaxed);
                if s != 0 && t0.elapsed().saturating_sub(Duration::from_millis(s)) > hang {
                    let input = current.lock().map(|c| c.clone()).unwrap_or_default();
                    let p = save(&name, "hang", &input);
                    eprintln!("fuzz {name}: an input ran over {hang:?}; saved as {}", p.display());
                    std::process::abort();
                }
            }
        });
    }
    let mut one = |input: &[u8], tag: &str| -> bool {
        if let Ok(mut c) = current.lock() {
            c.clear();
            c.extend_from_slice(input);
        }
        if save_each {
            save(name, "current", input);
        }
        started.store(t0.elapsed().as_millis().max(1) as u64, Ordering::Relaxed);
        let r = catch_unwind(AssertUnwindSafe(|| target(input)));
        started.store(0, Ordering::Relaxed);
        match r {
            Ok(accepted) => accepted,
            Err(e) => {
                done.store(true, Ordering::Relaxed);
                let msg =
                    e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
                let p = save(name, "crash", input);
                let shown = String::from_utf8_lossy(&input[..input.len().min(400)]).into_owned();
                panic!(
                    "fuzz {name}: {tag} input panicked: {msg}\n  saved as {} (seed {}); add it to {} as a regression input\n  input: {shown:?}",
                    p.display(),
                    budget.seed,
                    corpus_dir.display()
                );
            }
        }
    };
    let mut stats = Stats::default();
    for (p, input) in corpus(corpus_dir) {
        one(&input, &format!("corpus {}", p.display()));
        stats.corpus += 1;
    }
    let mut pool: Vec<Vec<u8>> = seeds.to_vec();
    for s in seeds {
        one(s, "seed");
    }
    if pool.is_empty() {
        pool.push(Vec::new());
    }
    let mut rng = Rng::new(budget.seed ^ name.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b))));
    let start = Instant::now();
    while stats.iters < budget.iters && start.elapsed() < budget.time {
        let a = rng.below(pool.len());
        let b = rng.below(pool.len());
        let input = m.mutate(&mut rng, &pool[a], &pool[b]);
        stats.iters += 1;
        if one(&input, "mutated") {
            stats.accepted += 1;
            // Keep some accepted mutants, so mutations stack; the seeds stay.
            if pool.len() < 512 {
                pool.push(input);
            } else if rng.one_in(4) {
                let i = seeds.len() + rng.below(pool.len() - seeds.len().min(pool.len()));
                if i < pool.len() {
                    pool[i] = input;
                }
            }
        }
    }
    done.store(true, Ordering::Relaxed);
    stats.pool = pool.len();
    let _ = writeln!(
        std::io::stderr(),
        "fuzz {name}: {} inputs in {:.1} s ({} accepted), {} regression inputs, seed {}",
        stats.iters,
        start.elapsed().as_secs_f64(),
        stats.accepted,
        stats.corpus,
        budget.seed
    );
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_mutants() {
        let seeds = vec![br#"{"a": [1, 2, {"b": "c"}], "d": null}"#.to_vec()];
        let m = Mutator::new(Kind::Json, 1 << 16, &["x"], &seeds);
        let run = |seed| {
            let mut r = Rng::new(seed);
            (0..50).map(|_| m.mutate(&mut r, &seeds[0], &seeds[0])).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn json_mutants_mostly_stay_json_like() {
        let seeds = vec![br#"{"a": [1, 2, {"b": "c"}], "d": null, "e": "f"}"#.to_vec()];
        let m = Mutator::new(Kind::Json, 1 << 16, &[], &seeds);
        let mut r = Rng::new(1);
        let balanced = (0..200)
            .filter(|_| {
                let v = m.mutate(&mut r, &seeds[0], &seeds[0]);
                let opens = v.iter().filter(|&&c| c == b'{' || c == b'[').count();
                let closes = v.iter().filter(|&&c| c == b'}' || c == b']').count();
                opens == closes
            })
            .count();
        assert!(balanced > 100, "{balanced} of 200");
    }

    #[test]
    fn a_panicking_target_is_caught_and_saved() {
        let dir = std::env::temp_dir().join(format!("rpc-fuzz-selftest-{}", std::process::id()));
        std::env::set_var("RPC_FUZZ_CRASH_DIR", &dir);
        let seeds = vec![b"ok".to_vec()];
        let m = Mutator::new(Kind::Bytes, 64, &[], &seeds);
        let b = Budget { time: Duration::from_secs(5), iters: 10_000, seed: 3 };
        let r = catch_unwind(AssertUnwindSafe(|| {
            run("selftest", Path::new("/nonexistent"), &seeds, &m, &b, |i| i.len() < 4 || panic!("long"))
        }));
        let msg = r.unwrap_err().downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(msg.contains("panicked: long") && msg.contains("saved as"), "{msg}");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
