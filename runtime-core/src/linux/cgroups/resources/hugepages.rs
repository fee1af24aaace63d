//! Huge page sizes: the spec's names ("2MB"), the kernel's (kB) and the
//! host's.

/// "2MB" -> 2048 (kB)
pub fn hugepage_kb(size: &str) -> Option<u64> {
    let s = size.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().ok()?;
    let mul = match unit {
        "KB" | "kB" | "K" => 1,
        "MB" | "M" => 1024,
        "GB" | "G" => 1024 * 1024,
        _ => return None,
    };
    Some(n * mul)
}

/// Page sizes of this host in the spec's form ("2MB", "1GB").
pub fn host_hugepage_sizes() -> Vec<String> {
    let mut v: Vec<u64> = std::fs::read_dir("/sys/kernel/mm/hugepages")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.strip_prefix("hugepages-"))
                        .and_then(|n| n.strip_suffix("kB"))
                        .and_then(|n| n.parse().ok())
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v.into_iter().map(kb_to_name).collect()
}

pub fn kb_to_name(kb: u64) -> String {
    if kb >= 1024 * 1024 && kb.is_multiple_of(1024 * 1024) {
        format!("{}GB", kb / (1024 * 1024))
    } else if kb >= 1024 && kb.is_multiple_of(1024) {
        format!("{}MB", kb / 1024)
    } else {
        format!("{kb}KB")
    }
}

/// The spec's page size in the kernel's file names ("2MB").
pub fn hugepage_file_name(size: &str) -> String {
    hugepage_kb(size).map(kb_to_name).unwrap_or_else(|| size.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hugepage_names() {
        assert_eq!(hugepage_kb("2MB"), Some(2048));
        assert_eq!(hugepage_kb("1GB"), Some(1048576));
        assert_eq!(hugepage_kb("64KB"), Some(64));
        assert_eq!(hugepage_kb("2XB"), None);
        assert_eq!(kb_to_name(2048), "2MB");
        assert_eq!(kb_to_name(1048576), "1GB");
    }
}
