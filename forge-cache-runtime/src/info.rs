//! Memory information, as the guide's `get_redis_info` reports it.

use crate::error::{Error, Result};

/// Memory figures from `INFO memory` (or the in-memory backend's own count).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct MemoryInfo {
    /// Bytes in use.
    pub used_memory: u64,
    /// `used_memory_human`, e.g. `1.02M`.
    pub used_memory_human: String,
    /// `used_memory_peak_human`.
    pub used_memory_peak_human: String,
    /// `mem_fragmentation_ratio` (1.0 for the in-memory backend).
    pub mem_fragmentation_ratio: f64,
    /// Live keys (in-memory backend) or `None` (Redis: see `DBSIZE`).
    pub keys: Option<u64>,
}

impl MemoryInfo {
    pub(crate) fn parse_info(text: &str) -> Result<Self> {
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
                .map(|v| v.trim().to_owned())
        };
        let missing = || Error::Protocol("INFO memory reply lacks used_memory".into());
        Ok(MemoryInfo {
            used_memory: field("used_memory")
                .and_then(|v| v.parse().ok())
                .ok_or_else(missing)?,
            used_memory_human: field("used_memory_human").unwrap_or_default(),
            used_memory_peak_human: field("used_memory_peak_human").unwrap_or_default(),
            mem_fragmentation_ratio: field("mem_fragmentation_ratio")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0),
            keys: None,
        })
    }

    pub(crate) fn from_memory(entries: usize, bytes: usize, peak: usize) -> Self {
        MemoryInfo {
            used_memory: bytes as u64,
            used_memory_human: human(bytes as u64),
            used_memory_peak_human: human(peak as u64),
            mem_fragmentation_ratio: 1.0,
            keys: Some(entries as u64),
        }
    }
}

/// Formats bytes the way Redis does (`512B`, `1.50K`, `2.00M`).
fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["K", "M", "G", "T"];
    if bytes < 1024 {
        return format!("{bytes}B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.2}{}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_info_memory() {
        let info = MemoryInfo::parse_info(
            "# Memory\r\nused_memory:1048576\r\nused_memory_human:1.00M\r\nused_memory_peak_human:2.00M\r\nmem_fragmentation_ratio:1.5\r\n",
        )
        .unwrap();
        assert_eq!(info.used_memory, 1_048_576);
        assert_eq!(info.used_memory_human, "1.00M");
        assert_eq!(info.mem_fragmentation_ratio, 1.5);
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(10), "10B");
        assert_eq!(human(1536), "1.50K");
    }
}
