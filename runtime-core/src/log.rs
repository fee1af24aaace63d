//! `--log` / `--log-format`: one line per event, in runc's shape.
//! JSON lines carry exactly `level`, `msg` and `time` (RFC 3339), which is
//! what containerd decodes to show the last `error` line of a failed call.
//! Lines written by the container-side child go to the same file: the
//! logger's fd is inherited across fork and opened with O_APPEND.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Mutex;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warning",
            Level::Error => "error",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

struct Logger {
    file: Option<File>,
    format: Format,
    min: Level,
}

static LOGGER: Mutex<Logger> = Mutex::new(Logger { file: None, format: Format::Text, min: Level::Warn });

/// Configure the process-wide logger. Without a file, warnings and errors
/// go to stderr as text.
pub fn init(path: Option<&std::path::Path>, format: Format, debug: bool) -> std::io::Result<()> {
    let file = match path {
        Some(p) => Some(std::fs::OpenOptions::new().create(true).append(true).mode(0o644).custom_flags(libc::O_CLOEXEC).open(p)?),
        None => None,
    };
    let mut l = LOGGER.lock().unwrap_or_else(|e| e.into_inner());
    l.file = file;
    l.format = format;
    l.min = if debug { Level::Debug } else { Level::Info };
    Ok(())
}

pub fn log(level: Level, msg: &str) {
    let mut l = LOGGER.lock().unwrap_or_else(|e| e.into_inner());
    if level < l.min && !(l.file.is_none() && level >= Level::Warn) {
        return;
    }
    let line = match l.format {
        Format::Json => {
            let v = serde_json::json!({"level": level.as_str(), "msg": msg, "time": rfc3339_now()});
            format!("{v}\n")
        }
        Format::Text => format!("time=\"{}\" level={} msg={:?}\n", rfc3339_now(), level.as_str(), msg),
    };
    match l.file.as_mut() {
        Some(f) => {
            let _ = f.write_all(line.as_bytes());
        }
        // Errors are printed by the binary itself when there is no log file.
        None if level == Level::Warn => {
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
        None => {}
    }
}

pub fn debug(msg: &str) {
    log(Level::Debug, msg)
}
pub fn info(msg: &str) {
    log(Level::Info, msg)
}
pub fn warn(msg: &str) {
    log(Level::Warn, msg)
}
pub fn error(msg: &str) {
    log(Level::Error, msg)
}

/// Current time as RFC 3339 with nanoseconds in UTC, e.g. `2024-01-02T03:04:05.123456789Z`.
/// The `msg` of each error, fatal or panic line of a runtime's JSON log
/// (runc's shape: level, msg, time, as this module writes it): what a
/// caller of the runtime (the shim, rpc-runv's agent) reports as the
/// failure, in order.
pub fn error_messages(text: &str) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Line {
        #[serde(default)]
        level: String,
        #[serde(default)]
        msg: String,
    }
    text.lines()
        .filter_map(|l| serde_json::from_str::<Line>(l).ok())
        .filter(|l| matches!(l.level.as_str(), "error" | "fatal" | "panic") && !l.msg.is_empty())
        .map(|l| l.msg)
        .collect()
}

pub fn rfc3339_now() -> String {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    rfc3339(ts.tv_sec, ts.tv_nsec as u32)
}

pub fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z", rem / 3600, (rem % 3600) / 60, rem % 60)
}

/// Howard Hinnant's days-to-civil conversion.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(1_700_000_000, 5), "2023-11-14T22:13:20.000000005Z");
        assert_eq!(rfc3339(951_782_400, 0), "2000-02-29T00:00:00.000000000Z");
    }
}
