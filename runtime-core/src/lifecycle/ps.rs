//! `ps`: the container's processes. `--format json` prints the pid list;
//! the table runs `ps` with the given arguments (default `-ef`) and keeps
//! the lines whose PID is the container's (as its backend lists them).

use std::io::Write;

use super::Runtime;
use crate::error::{Error, Result};

pub fn pids(rt: &Runtime, id: &str) -> Result<Vec<i32>> {
    crate::id::validate(id)?;
    let dir = rt.store.open(id, false)?;
    let st = rt.load(&dir)?;
    rt.backend.pids(&st)
}

/// Keep the header and the lines of `ps` output whose PID column is in `pids`.
pub fn filter(text: &str, pids: &[i32]) -> Result<Vec<String>> {
    let mut lines = text.lines();
    let head = lines.next().unwrap_or("");
    let col =
        head.split_whitespace().position(|c| c == "PID").ok_or_else(|| Error::Container("couldn't find PID field in ps output".into()))?;
    let mut out = vec![head.to_string()];
    for l in lines.filter(|l| !l.trim().is_empty()) {
        let p: i32 = l
            .split_whitespace()
            .nth(col)
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| Error::Container(format!("unable to parse pid in {l:?}")))?;
        if pids.contains(&p) {
            out.push(l.to_string());
        }
    }
    Ok(out)
}

pub fn ps(rt: &Runtime, id: &str, format: &str, args: &[String], out: &mut dyn Write) -> Result<()> {
    if format != "json" && format != "table" {
        return Err(Error::Usage(format!("invalid format option {format:?}")));
    }
    let pids = pids(rt, id)?;
    let w = |out: &mut dyn Write, s: &str| writeln!(out, "{s}").map_err(|e| Error::Io { context: "writing ps output".into(), source: e });
    if format == "json" {
        return w(out, &serde_json::to_string(&pids).unwrap_or_else(|_| "[]".into()));
    }
    let args: Vec<String> = if args.is_empty() { vec!["-ef".into()] } else { args.to_vec() };
    let o = std::process::Command::new("ps").args(&args).output().map_err(|e| Error::Io { context: "running ps".into(), source: e })?;
    if !o.status.success() {
        return Err(Error::Container(format!(
            "ps {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr).trim()
        )));
    }
    for l in filter(&String::from_utf8_lossy(&o.stdout), &pids)? {
        w(out, &l)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_by_pid_column() {
        let t = "UID          PID    PPID  C STIME TTY          TIME CMD\nroot           1       0  0 10:00 ?        00:00:01 init\nroot          42       1  0 10:00 ?        00:00:00 sleep 100\n";
        assert_eq!(filter(t, &[42]).unwrap(), vec![t.lines().next().unwrap().to_string(), t.lines().nth(2).unwrap().to_string()]);
        assert!(filter("USER CMD\nroot x\n", &[1]).is_err());
    }
}
