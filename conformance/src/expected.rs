//! The checked-in list of expected failures:
//!
//! ```text
//! # comment
//! runtime-name case-name  # reason (required)
//! ```
//!
//! `*` as the runtime name matches every runtime.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub runtime: String,
    pub case: String,
    pub reason: String,
    pub line: usize,
}

#[derive(Debug, Clone, Default)]
pub struct ExpectedList {
    pub entries: Vec<Expected>,
}

impl ExpectedList {
    pub fn parse(text: &str) -> Result<ExpectedList, String> {
        let mut entries = Vec::new();
        let mut errors = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (body, reason) = match line.split_once('#') {
                Some((b, r)) => (b.trim(), r.trim()),
                None => (line, ""),
            };
            let words: Vec<&str> = body.split_whitespace().collect();
            if words.len() != 2 {
                errors.push(format!("line {n}: want `runtime-name case-name  # reason`, got {raw:?}"));
                continue;
            }
            if reason.is_empty() {
                errors.push(format!("line {n}: {} {} has no reason (add `# why`)", words[0], words[1]));
                continue;
            }
            if entries.iter().any(|e: &Expected| e.runtime == words[0] && e.case == words[1]) {
                errors.push(format!("line {n}: duplicate entry {} {}", words[0], words[1]));
                continue;
            }
            entries.push(Expected { runtime: words[0].to_string(), case: words[1].to_string(), reason: reason.to_string(), line: n });
        }
        if errors.is_empty() {
            Ok(ExpectedList { entries })
        } else {
            Err(errors.join("\n"))
        }
    }

    pub fn load(path: &std::path::Path) -> Result<ExpectedList, String> {
        let t = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        ExpectedList::parse(&t).map_err(|e| format!("{}:\n{e}", path.display()))
    }

    pub fn find(&self, runtime: &str, case: &str) -> Option<&Expected> {
        self.entries
            .iter()
            .find(|e| e.case == case && e.runtime == runtime)
            .or_else(|| self.entries.iter().find(|e| e.case == case && e.runtime == "*"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_entries_and_comments() {
        let l = ExpectedList::parse("# header\n\n rpc-runc  ns.time.new   # kernel too old\n* cgroups.x # nobody has it\n").unwrap();
        assert_eq!(l.entries.len(), 2);
        assert_eq!(l.entries[0].runtime, "rpc-runc");
        assert_eq!(l.entries[0].case, "ns.time.new");
        assert_eq!(l.entries[0].reason, "kernel too old");
        assert_eq!(l.entries[0].line, 3);
        assert!(l.find("rpc-runc", "ns.time.new").is_some());
        assert!(l.find("runc", "ns.time.new").is_none());
        assert_eq!(l.find("crun", "cgroups.x").unwrap().reason, "nobody has it");
    }

    #[test]
    fn reason_is_required() {
        let e = ExpectedList::parse("rpc-runc a.b\n").unwrap_err();
        assert!(e.contains("line 1") && e.contains("no reason"), "{e}");
        let e = ExpectedList::parse("rpc-runc a.b #   \n").unwrap_err();
        assert!(e.contains("no reason"), "{e}");
    }

    #[test]
    fn malformed_and_duplicates() {
        let e = ExpectedList::parse("just-one-word # r\n").unwrap_err();
        assert!(e.contains("want"), "{e}");
        let e = ExpectedList::parse("a b c # r\n").unwrap_err();
        assert!(e.contains("line 1"), "{e}");
        let e = ExpectedList::parse("a b # r\na b # again\n").unwrap_err();
        assert!(e.contains("duplicate"), "{e}");
    }
}
