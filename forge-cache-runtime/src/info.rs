//! Memory information from `INFO memory`, or the in-memory backend's own.

use crate::error::{Error, Result};

/// Memory figures from `INFO memory` (or the in-memory backend's own count).
///
/// On a Redis Cluster the figures are summed over every primary (the
/// fragmentation ratio is averaged, weighted by memory in use), and
/// [`nodes`](Self::nodes) holds each primary's own figures.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> forge_cache_runtime::Result<()> {
/// use forge_cache_runtime::{CacheManager, RedisSettings};
/// let cache = CacheManager::new(RedisSettings::memory())?;
/// let info = cache.memory_info().await?;
/// println!("{} in use", info.used_memory_human);
/// for node in &info.nodes {
///     println!("{}: {}", node.address, node.info.used_memory_human);
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct MemoryInfo {
    /// Bytes in use.
    pub used_memory: u64,
    /// Peak bytes in use (`used_memory_peak`).
    pub used_memory_peak: u64,
    /// `used_memory_human`, e.g. `1.02M`.
    pub used_memory_human: String,
    /// `used_memory_peak_human`.
    pub used_memory_peak_human: String,
    /// `mem_fragmentation_ratio` (1.0 for the in-memory backend).
    pub mem_fragmentation_ratio: f64,
    /// Live keys (in-memory backend) or `None` (Redis: see `DBSIZE`).
    pub keys: Option<u64>,
    /// Each primary's figures on a Redis Cluster, by address; empty on
    /// other backends.
    pub nodes: Vec<NodeMemory>,
}

/// The memory figures of one Redis Cluster primary, in [`MemoryInfo::nodes`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct NodeMemory {
    /// The node's `host:port`.
    pub address: String,
    /// Its figures (with no `nodes` of its own).
    pub info: MemoryInfo,
}

impl MemoryInfo {
    pub(crate) fn parse_info(text: &str) -> Result<Self> {
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
                .map(|v| v.trim().to_owned())
        };
        let missing = || Error::Protocol("INFO memory reply lacks used_memory".into());
        let used_memory = field("used_memory")
            .and_then(|v| v.parse().ok())
            .ok_or_else(missing)?;
        let used_memory_peak = field("used_memory_peak")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        Ok(MemoryInfo {
            used_memory,
            used_memory_peak,
            used_memory_human: field("used_memory_human").unwrap_or_else(|| human(used_memory)),
            used_memory_peak_human: field("used_memory_peak_human")
                .unwrap_or_else(|| human(used_memory_peak)),
            mem_fragmentation_ratio: field("mem_fragmentation_ratio")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0),
            keys: field(crate::backend::memory::MEMORY_ENTRIES_FIELD).and_then(|v| v.parse().ok()),
            nodes: Vec::new(),
        })
    }

    /// Sums `INFO memory` replies of several nodes, given as
    /// `(address, reply)`, keeping each node's figures.
    pub(crate) fn from_nodes(replies: Vec<(String, String)>) -> Result<Self> {
        let mut nodes = replies
            .into_iter()
            .map(|(address, text)| {
                Ok(NodeMemory {
                    address,
                    info: MemoryInfo::parse_info(&text)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        nodes.sort_by(|a, b| a.address.cmp(&b.address));
        let used: u64 = nodes.iter().map(|n| n.info.used_memory).sum();
        let peak: u64 = nodes.iter().map(|n| n.info.used_memory_peak).sum();
        let weighted: f64 = nodes
            .iter()
            .map(|n| n.info.mem_fragmentation_ratio * n.info.used_memory as f64)
            .sum();
        Ok(MemoryInfo {
            used_memory: used,
            used_memory_peak: peak,
            used_memory_human: human(used),
            used_memory_peak_human: human(peak),
            mem_fragmentation_ratio: if used == 0 {
                0.0
            } else {
                weighted / used as f64
            },
            keys: None,
            nodes,
        })
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
    fn sums_nodes_and_keeps_each() {
        let reply = |used: u64, ratio: f64| {
            format!(
                "used_memory:{used}\r\nused_memory_peak:{}\r\nmem_fragmentation_ratio:{ratio}\r\n",
                used * 2
            )
        };
        let info = MemoryInfo::from_nodes(vec![
            ("127.0.0.1:7001".into(), reply(3072, 2.0)),
            ("127.0.0.1:7000".into(), reply(1024, 1.0)),
        ])
        .unwrap();
        assert_eq!(info.used_memory, 4096);
        assert_eq!(info.used_memory_peak, 8192);
        assert_eq!(info.used_memory_human, "4.00K");
        assert_eq!(info.mem_fragmentation_ratio, 1.75);
        assert_eq!(info.nodes.len(), 2);
        assert_eq!(info.nodes[0].address, "127.0.0.1:7000");
        assert_eq!(info.nodes[0].info.used_memory, 1024);
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(10), "10B");
        assert_eq!(human(1536), "1.50K");
    }
}
