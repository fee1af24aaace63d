//! Table, JSON and markdown output.

use crate::expected::ExpectedList;
use crate::verdict::{Rule, Verdict};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// One case on one runtime.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    #[serde(flatten)]
    pub verdict: Verdict,
    pub ms: u64,
    /// Reason from the expected-failures list, when the case is listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RuntimeInfo {
    pub name: String,
    pub path: String,
    pub version: String,
    pub note: Option<String>,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CaseInfo {
    pub name: String,
    pub section: String,
    pub summary: String,
}

#[derive(Debug, Clone, Default)]
pub struct Counts {
    pub pass: usize,
    pub pass_spec: usize,
    pub pass_runc: usize,
    pub fail: usize,
    pub xfail: usize,
    pub skip: usize,
}

impl Counts {
    pub fn line(&self) -> String {
        let mut s = format!("{} passed, {} failed, {} skipped", self.pass, self.fail + self.xfail, self.skip);
        if self.xfail > 0 {
            s.push_str(&format!(" ({} of the failures expected)", self.xfail));
        }
        s
    }
}

#[derive(Debug, Clone)]
pub struct Report {
    pub host: Vec<String>,
    pub runtimes: Vec<RuntimeInfo>,
    pub cases: Vec<CaseInfo>,
    /// outcomes[case][runtime]
    pub outcomes: Vec<Vec<Outcome>>,
}

impl Report {
    /// Mark failures listed in `exp`.
    pub fn apply_expected(&mut self, exp: &ExpectedList) {
        for (ci, c) in self.cases.iter().enumerate() {
            for (ri, r) in self.runtimes.iter().enumerate() {
                let o = &mut self.outcomes[ci][ri];
                o.expected = exp.find(&r.name, &c.name).map(|e| e.reason.clone());
            }
        }
    }

    pub fn counts(&self, ri: usize) -> Counts {
        let mut c = Counts::default();
        for row in &self.outcomes {
            let o = &row[ri];
            match &o.verdict {
                Verdict::Pass => c.pass += 1,
                Verdict::PassAs(Rule::Spec, _) => {
                    c.pass += 1;
                    c.pass_spec += 1
                }
                Verdict::PassAs(Rule::Runc, _) => {
                    c.pass += 1;
                    c.pass_runc += 1
                }
                Verdict::Fail(_) if o.expected.is_some() => c.xfail += 1,
                Verdict::Fail(_) => c.fail += 1,
                Verdict::Skip(_) => c.skip += 1,
            }
        }
        c
    }

    /// Failures of runtime `ri` not in the expected list: (case, reason).
    pub fn unexpected_failures(&self, ri: usize) -> Vec<(String, String)> {
        self.cases
            .iter()
            .zip(&self.outcomes)
            .filter(|(_, row)| row[ri].verdict.is_fail() && row[ri].expected.is_none())
            .map(|(c, row)| (c.name.clone(), row[ri].verdict.detail().to_string()))
            .collect()
    }

    /// Expected failures of runtime `ri` that did not fail.
    pub fn stale_expected(&self, ri: usize) -> Vec<String> {
        self.cases
            .iter()
            .zip(&self.outcomes)
            .filter(|(_, row)| row[ri].expected.is_some() && !row[ri].verdict.is_fail())
            .map(|(c, row)| format!("{} ({})", c.name, row[ri].verdict.word()))
            .collect()
    }

    fn cell(o: &Outcome) -> String {
        match (&o.verdict, &o.expected) {
            (Verdict::Fail(_), Some(_)) => "FAIL (expected)".into(),
            (v, _) => v.word().into(),
        }
    }

    pub fn text(&self) -> String {
        let mut out = String::new();
        for h in &self.host {
            out.push_str(&format!("host: {h}\n"));
        }
        for r in &self.runtimes {
            out.push_str(&format!(
                "runtime {}: {} ({}){}\n",
                r.name,
                r.path,
                if r.version.is_empty() { "version unknown" } else { &r.version },
                r.note.as_ref().map(|n| format!("; {n}")).unwrap_or_default()
            ));
        }
        out.push('\n');
        let mut head = vec!["CASE".to_string(), "SECTION".to_string()];
        head.extend(self.runtimes.iter().map(|r| r.name.clone()));
        let mut rows = vec![head];
        for (c, row) in self.cases.iter().zip(&self.outcomes) {
            let mut r = vec![c.name.clone(), c.section.clone()];
            r.extend(row.iter().map(Self::cell));
            rows.push(r);
        }
        let ncol = rows[0].len();
        let widths: Vec<usize> = (0..ncol).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
        for (n, r) in rows.iter().enumerate() {
            let mut line = String::new();
            for (i, cell) in r.iter().enumerate() {
                if i + 1 == ncol {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{:w$}  ", cell, w = widths[i]));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
            if n == 0 {
                out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * (ncol - 1)));
                out.push('\n');
            }
        }
        out.push('\n');
        for (ri, r) in self.runtimes.iter().enumerate() {
            let mut any = false;
            for (c, row) in self.cases.iter().zip(&self.outcomes) {
                let o = &row[ri];
                let label = match (&o.verdict, &o.expected) {
                    (Verdict::Fail(_), Some(_)) => "FAIL (expected)",
                    (Verdict::Fail(_), None) => "FAIL",
                    (Verdict::Skip(_), _) => "skip",
                    (Verdict::PassAs(..), _) => o.verdict.word(),
                    _ => continue,
                };
                if !any {
                    out.push_str(&format!("{}:\n", r.name));
                    any = true;
                }
                out.push_str(&format!("  {label:<22} {}: {}", c.name, o.verdict.detail()));
                if let Some(e) = &o.expected {
                    out.push_str(&format!(" [expected: {e}]"));
                }
                out.push('\n');
            }
        }
        out.push('\n');
        for (ri, r) in self.runtimes.iter().enumerate() {
            out.push_str(&format!("{}: {}\n", r.name, self.counts(ri).line()));
            let stale = self.stale_expected(ri);
            if !stale.is_empty() {
                out.push_str(&format!("  listed as expected failures but did not fail: {}\n", stale.join(", ")));
            }
        }
        out
    }

    pub fn json(&self) -> Value {
        let runtimes: Vec<Value> = self
            .runtimes
            .iter()
            .enumerate()
            .map(|(ri, r)| {
                let c = self.counts(ri);
                json!({
                    "name": r.name, "path": r.path, "version": r.version, "note": r.note,
                    "seconds": (r.seconds * 10.0).round() / 10.0,
                    "counts": {"pass": c.pass, "pass_spec": c.pass_spec, "pass_runc": c.pass_runc,
                               "fail": c.fail, "expected_fail": c.xfail, "skip": c.skip},
                })
            })
            .collect();
        let cases: Vec<Value> = self
            .cases
            .iter()
            .zip(&self.outcomes)
            .map(|(c, row)| {
                let mut results = serde_json::Map::new();
                for (r, o) in self.runtimes.iter().zip(row) {
                    let (verdict, rule) = match &o.verdict {
                        Verdict::Pass => ("pass", None),
                        Verdict::PassAs(Rule::Spec, _) => ("pass", Some("spec")),
                        Verdict::PassAs(Rule::Runc, _) => ("pass", Some("runc")),
                        Verdict::Fail(_) => ("fail", None),
                        Verdict::Skip(_) => ("skip", None),
                    };
                    results.insert(
                        r.name.clone(),
                        json!({"verdict": verdict, "rule": rule, "detail": o.verdict.detail(), "expected_failure": o.expected, "ms": o.ms}),
                    );
                }
                json!({"case": c.name, "section": c.section, "summary": c.summary, "results": results})
            })
            .collect();
        json!({"host": self.host, "runtimes": runtimes, "cases": cases})
    }

    pub fn markdown(&self, command: &str) -> String {
        let esc = |s: &str| s.replace('|', "\\|").replace('\n', " ");
        let mut o = String::new();
        o.push_str("# OCI runtime conformance results\n\n");
        o.push_str(&format!("Made by `{command}` (see [README.md](README.md)). Each case checks, from inside the container or from the host's view of it, what the OCI runtime spec promises, driving every runtime through its command line only.\n\n"));
        o.push_str("## Host\n\n");
        for h in &self.host {
            o.push_str(&format!("- {}\n", esc(h)));
        }
        o.push_str("\n## Summary\n\n| runtime | version | pass | of which spec / runc rule | fail | skip | time |\n|---|---|---|---|---|---|---|\n");
        for (ri, r) in self.runtimes.iter().enumerate() {
            let c = self.counts(ri);
            let fail = if c.xfail > 0 { format!("{} ({} expected)", c.fail + c.xfail, c.xfail) } else { c.fail.to_string() };
            o.push_str(&format!(
                "| {} | {}{} | {} | {} / {} | {} | {} | {:.0} s |\n",
                r.name,
                esc(&r.version),
                r.note.as_ref().map(|n| format!(" ({})", esc(n))).unwrap_or_default(),
                c.pass,
                c.pass_spec,
                c.pass_runc,
                fail,
                c.skip,
                r.seconds
            ));
        }
        o.push_str("\n\"pass (spec)\" / \"pass (runc behaviour)\": the spec and runc differ on this point and the runtime follows the rule named (both accepted). \"skip\": the host cannot express the case, or the runtime declares an older spec than the feature needs; never counted as a pass.\n");
        o.push_str("\n## Results\n\n| case | spec section |");
        for r in &self.runtimes {
            o.push_str(&format!(" {} |", r.name));
        }
        o.push_str("\n|---|---|");
        for _ in &self.runtimes {
            o.push_str("---|");
        }
        o.push('\n');
        for (c, row) in self.cases.iter().zip(&self.outcomes) {
            o.push_str(&format!("| `{}` | {} |", c.name, esc(&c.section)));
            for x in row {
                let cell = Self::cell(x);
                let cell = if x.verdict.is_fail() { format!("**{cell}**") } else { cell };
                o.push_str(&format!(" {cell} |"));
            }
            o.push('\n');
        }
        for (ri, r) in self.runtimes.iter().enumerate() {
            let mut fails = String::new();
            let mut skips = String::new();
            let mut rules = String::new();
            for (c, row) in self.cases.iter().zip(&self.outcomes) {
                let x = &row[ri];
                match &x.verdict {
                    Verdict::Fail(d) => {
                        fails.push_str(&format!("- `{}`: {}", c.name, esc(d)));
                        if let Some(e) = &x.expected {
                            fails.push_str(&format!(" *(expected: {})*", esc(e)));
                        }
                        fails.push('\n');
                    }
                    Verdict::Skip(d) => skips.push_str(&format!("- `{}`: {}\n", c.name, esc(d))),
                    Verdict::PassAs(_, d) => rules.push_str(&format!("- `{}` — {}: {}\n", c.name, x.verdict.word(), esc(d))),
                    Verdict::Pass => {}
                }
            }
            o.push_str(&format!("\n## {}\n\n", r.name));
            if !fails.is_empty() {
                o.push_str(&format!("### Failures\n\n{fails}\n"));
            }
            if !rules.is_empty() {
                o.push_str(&format!("### Where the spec and runc differ\n\n{rules}\n"));
            }
            if !skips.is_empty() {
                o.push_str(&format!("### Skipped\n\n{skips}\n"));
            }
            if fails.is_empty() && skips.is_empty() && rules.is_empty() {
                o.push_str("Every case passed.\n");
            }
        }
        o.push_str("\n## Cases\n\n| case | what is checked |\n|---|---|\n");
        for c in &self.cases {
            o.push_str(&format!("| `{}` | {} |\n", c.name, esc(&c.summary)));
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expected::ExpectedList;

    fn sample() -> Report {
        let rt =
            |n: &str| RuntimeInfo { name: n.into(), path: format!("/usr/bin/{n}"), version: format!("{n} 1.0"), note: None, seconds: 1.0 };
        let case = |n: &str| CaseInfo { name: n.into(), section: "runtime.md#x".into(), summary: format!("checks {n}") };
        let o = |v: Verdict| Outcome { verdict: v, ms: 5, expected: None };
        Report {
            host: vec!["kernel 6".into()],
            runtimes: vec![rt("runc"), rt("ours")],
            cases: vec![case("a.one"), case("b.two"), case("c.three")],
            outcomes: vec![
                vec![o(Verdict::Pass), o(Verdict::Fail("boom | bad".into()))],
                vec![o(Verdict::PassAs(Rule::Runc, "deletes it".into())), o(Verdict::PassAs(Rule::Spec, "refuses".into()))],
                vec![o(Verdict::Skip("no hugetlb".into())), o(Verdict::Fail("nope".into()))],
            ],
        }
    }

    #[test]
    fn text_table_has_rows_reasons_and_counts() {
        let mut r = sample();
        r.apply_expected(&ExpectedList::parse("ours c.three # not yet\n").unwrap());
        let t = r.text();
        let header = t.lines().find(|l| l.starts_with("CASE")).unwrap();
        assert!(header.contains("SECTION") && header.contains("runc") && header.contains("ours"));
        let row = t.lines().find(|l| l.starts_with("b.two")).unwrap();
        assert!(row.contains("pass (runc behaviour)") && row.contains("pass (spec)"), "{row}");
        assert!(t.lines().any(|l| l.starts_with("c.three") && l.contains("FAIL (expected)")));
        assert!(t.contains("a.one: boom | bad"));
        assert!(t.contains("[expected: not yet]"));
        assert!(t.contains("no hugetlb"));
        assert!(t.contains("ours: 1 passed, 2 failed, 0 skipped (1 of the failures expected)"), "{t}");
        assert!(t.contains("runc: 2 passed, 0 failed, 1 skipped"));
        // Columns line up: the runtime column starts at the same offset.
        let rows: Vec<&str> = t.lines().filter(|l| l.starts_with("a.one") || l.starts_with("b.two")).collect();
        assert_eq!(rows[0].find("pass"), rows[1].find("pass"));
    }

    #[test]
    fn unexpected_failures_respect_the_list() {
        let mut r = sample();
        assert_eq!(r.unexpected_failures(1).len(), 2);
        r.apply_expected(&ExpectedList::parse("ours c.three # x\nours b.two # stale\n").unwrap());
        let u = r.unexpected_failures(1);
        assert_eq!(u, vec![("a.one".to_string(), "boom | bad".to_string())]);
        assert_eq!(r.stale_expected(1), vec!["b.two (pass (spec))".to_string()]);
        assert!(r.unexpected_failures(0).is_empty());
    }

    #[test]
    fn json_and_markdown() {
        let r = sample();
        let j = r.json();
        assert_eq!(j["cases"][1]["results"]["runc"]["rule"], "runc");
        assert_eq!(j["cases"][0]["results"]["ours"]["verdict"], "fail");
        assert_eq!(j["runtimes"][1]["counts"]["fail"], 2);
        let m = r.markdown("rpc-conformance --runtime runc");
        assert!(m.contains("| `a.one` | runtime.md#x | pass | **FAIL** |"), "{m}");
        assert!(m.contains("boom \\| bad"));
        assert!(m.contains("## ours"));
        // Outcome round-trips through the child-process JSON.
        let o = Outcome { verdict: Verdict::PassAs(Rule::Spec, "x".into()), ms: 3, expected: None };
        let s = serde_json::to_string(&o).unwrap();
        let back: Outcome = serde_json::from_str(&s).unwrap();
        assert_eq!(back.verdict, o.verdict);
    }
}
