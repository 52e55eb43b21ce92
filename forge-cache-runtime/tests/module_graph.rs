//! The runtime's module graph has no cycles, and the layers below the
//! features know none of them: the manager, the backends, the breaker and
//! telemetry never name a feature's module. Checked on the source, so a new
//! dependency that closes a cycle fails here with the path it closes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The modules every feature builds on; none of them may use a feature.
const FOUNDATION: &[&str] = &[
    "backend",
    "breaker",
    "cluster_url",
    "codec",
    "error",
    "format",
    "glob",
    "info",
    "key",
    "manager",
    "random",
    "secret",
    "settings",
    "telemetry",
];

/// Modules that must not depend on any other module of the crate.
const LEAVES: &[&str] = &["telemetry"];

/// Top-level module -> the top-level modules its code names (`crate::x`),
/// tests excluded.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut modules = BTreeSet::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if name != "lib" {
            modules.insert(name);
        }
    }
    let mut graph = BTreeMap::new();
    for module in &modules {
        let mut files = Vec::new();
        collect(&src.join(module), &mut files);
        collect(&src.join(format!("{module}.rs")), &mut files);
        let mut uses = BTreeSet::new();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for line in text.lines() {
                let code = line.trim_start();
                if code.starts_with("#[cfg(test)]") {
                    break;
                }
                if code.starts_with("//") {
                    continue;
                }
                for (i, _) in code.match_indices("crate::") {
                    let rest = &code[i + "crate::".len()..];
                    let name: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if name.is_empty() || name == *module {
                        continue;
                    }
                    assert!(
                        modules.contains(&name),
                        "{}: `crate::{name}` names a root re-export; name its module instead",
                        file.display()
                    );
                    uses.insert(name);
                }
            }
        }
        graph.insert(module.clone(), uses);
    }
    graph
}

fn collect(path: &Path, out: &mut Vec<std::path::PathBuf>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            collect(&entry.unwrap().path(), out);
        }
    } else if path.is_file() && path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_owned());
    }
}

/// A cycle through `from`, if any, as the list of modules on it.
fn cycle_from(
    graph: &BTreeMap<String, BTreeSet<String>>,
    from: &str,
    path: &mut Vec<String>,
) -> Option<Vec<String>> {
    if let Some(i) = path.iter().position(|m| m == from) {
        let mut cycle = path[i..].to_vec();
        cycle.push(from.to_owned());
        return Some(cycle);
    }
    path.push(from.to_owned());
    for next in graph.get(from).into_iter().flatten() {
        if let Some(c) = cycle_from(graph, next, path) {
            return Some(c);
        }
    }
    path.pop();
    None
}

#[test]
fn the_module_graph_has_no_cycle() {
    let graph = graph();
    for module in graph.keys() {
        if let Some(cycle) = cycle_from(&graph, module, &mut Vec::new()) {
            panic!("module cycle: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn the_foundation_uses_no_feature() {
    let graph = graph();
    for module in FOUNDATION {
        for used in &graph[*module] {
            assert!(
                FOUNDATION.contains(&used.as_str()),
                "`{module}` uses the feature module `{used}`"
            );
        }
    }
    for leaf in LEAVES {
        assert!(graph[*leaf].is_empty(), "`{leaf}` uses {:?}", graph[*leaf]);
    }
}

#[test]
fn the_check_sees_real_dependencies() {
    let graph = graph();
    assert!(graph["cache"].contains("drive"));
    assert!(graph["drive"].contains("manager"));
}
