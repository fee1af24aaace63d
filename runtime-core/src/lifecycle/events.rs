//! `events`: runc's event stream. `--stats` prints one stats event; else
//! a stats event every `--interval` and an `oom` event for each OOM kill,
//! one JSON object a line, until the container stops.

use std::io::Write;
use std::time::{Duration, Instant};

use super::{Runtime, Status};
use crate::backend::Notice;
use crate::error::Op;
use crate::error::{Error, Result};

/// Go's limit: a duration is an int64 count of nanoseconds (~292 years).
const MAX_SECS: f64 = i64::MAX as f64 / 1e9;

/// A Go duration: "5s", "100ms", "1m30s", "1.5s", "250us". What Go's
/// time.ParseDuration refuses (out of its range) is refused here too,
/// never handed on to arithmetic that would overflow.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let bad = || Error::Usage(format!("invalid duration {s:?} (e.g. 5s, 500ms, 1m)"));
    let t = s.trim();
    let (negative, t) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = t;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let n_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
        let n: f64 = rest[..n_end].parse().map_err(|_| bad())?;
        rest = &rest[n_end..];
        let u_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let mul = match &rest[..u_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += n * mul;
        rest = &rest[u_end..];
    }
    if !total.is_finite() || total > MAX_SECS {
        return Err(Error::Usage(format!("invalid duration {s:?}: out of range (at most 2562047h)")));
    }
    if negative && total > 0.0 {
        return Err(Error::Usage(format!("invalid duration {s:?}: must not be negative")));
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

fn emit(out: &mut dyn Write, v: &serde_json::Value) -> Result<()> {
    let line = serde_json::to_string(v).map_err(|e| Error::Container(e.to_string()))?;
    writeln!(out, "{line}").and_then(|_| out.flush()).map_err(|e| Error::Io { context: "writing events".into(), source: e })
}

pub fn events(rt: &Runtime, id: &str, once: bool, interval: Duration, out: &mut dyn Write) -> Result<()> {
    crate::id::validate(id)?;
    // Read the state and let go of the lock: a stream must not block delete.
    let st = {
        let dir = rt.store.open(id, false)?;
        rt.load(&dir)?
    };
    if rt.status(&st, false) == Status::Stopped {
        return Err(Error::Transition { op: Op::Events, id: id.to_string(), status: "stopped" });
    }
    if once {
        return emit(out, &rt.backend.stats(&st)?.event(id));
    }
    if interval.is_zero() {
        return Err(Error::Usage("--interval must be above zero".into()));
    }
    let mut oom = match rt.backend.oom_events(&st) {
        Ok(w) => w,
        Err(e) => {
            crate::log::warn(&format!("OOM events unavailable: {e}"));
            None
        }
    };
    let alive = || st.init.is_some_and(|p| p.alive());
    let too_long = || Error::Usage(format!("--interval {interval:?}: too long"));
    let mut next = Instant::now().checked_add(interval).ok_or_else(too_long)?;
    loop {
        let now = Instant::now();
        if now >= next {
            if !alive() {
                return Ok(());
            }
            emit(out, &rt.backend.stats(&st)?.event(id))?;
            next = next.checked_add(interval).ok_or_else(too_long)?;
            if next < now {
                next = now.checked_add(interval).ok_or_else(too_long)?;
            }
            continue;
        }
        // Wake at least every 250ms to notice the container is gone.
        let wait = (next - now).min(Duration::from_millis(250));
        let notice = match oom.as_mut() {
            Some(w) => w.wait(wait.as_millis().max(1) as i32),
            None => {
                std::thread::sleep(wait);
                Notice::Nothing
            }
        };
        match notice {
            Notice::Oom(n) => {
                for _ in 0..n {
                    emit(out, &serde_json::json!({ "type": "oom", "id": id }))?;
                }
            }
            Notice::Gone => oom = None,
            Notice::Nothing => {}
        }
        if !alive() {
            // A last look: an OOM kill of init itself arrives with its death.
            if let Some(w) = oom.as_mut() {
                if let Notice::Oom(n) = w.wait(0) {
                    for _ in 0..n {
                        emit(out, &serde_json::json!({ "type": "oom", "id": id }))?;
                    }
                }
            }
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("100ms").unwrap(), Duration::from_millis(100));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("").is_err());
        // Out of Go's range, negative, or not a number: an error, no panic.
        for bad in ["18446744073709551615s", "2562048h", "1e400s", "-5s", "-", ".s", "9".repeat(400).as_str()] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_duration("2562047h").unwrap(), Duration::from_secs(2562047 * 3600));
        assert_eq!(parse_duration("+1s").unwrap(), Duration::from_secs(1));
        assert_eq!(parse_duration("-0").unwrap(), Duration::ZERO);
        assert!(parse_duration("98999999899999999h").is_err());
    }
}
