//! The floor plan of `host/src` holds: every `crate::…` path in a module names
//! a module its row of `docs/design.md` ("Where things live") allows, and the
//! allowed imports form no circle. Needs no services.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

/// The table between `<!-- layers:begin -->` and `<!-- layers:end -->`:
/// module → the modules it may import.
fn allowed(design: &str) -> Result<Graph, String> {
    let begin = design
        .find("<!-- layers:begin -->")
        .ok_or("docs/design.md: no `<!-- layers:begin -->` marker")?;
    let end = design
        .find("<!-- layers:end -->")
        .ok_or("docs/design.md: no `<!-- layers:end -->` marker")?;
    let mut plan = Graph::new();
    for line in design[begin..end].lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let [module, _job, imports] = cells[..] else {
            return Err(format!("docs/design.md: a row needs 3 cells: {line}"));
        };
        let names = |s: &str| -> BTreeSet<String> {
            s.split(',')
                .map(|n| n.trim().trim_matches('`').trim_end_matches('/').to_owned())
                .filter(|n| !n.is_empty() && n != "—")
                .collect()
        };
        let module = names(module).into_iter().next().unwrap_or_default();
        plan.insert(module, names(imports));
    }
    Ok(plan)
}

/// Top-level module → the crate modules its code names (`crate::x`), from
/// `(path relative to src, source)` pairs. Comments are ignored.
fn imports(files: &[(String, String)]) -> Graph {
    let mut graph = Graph::new();
    for (path, text) in files {
        if path == "lib.rs" || path == "main.rs" {
            continue;
        }
        let top = path
            .split('/')
            .next()
            .unwrap_or(path)
            .trim_end_matches(".rs")
            .to_owned();
        let edges = graph.entry(top.clone()).or_default();
        for line in text.lines() {
            let code = line.split("//").next().unwrap_or("");
            for (i, _) in code.match_indices("crate::") {
                let rest = &code[i + "crate::".len()..];
                // `crate::{a, b::C}` names `a` and `b`.
                let heads: Vec<&str> = match rest.strip_prefix('{') {
                    Some(group) => group.split('}').next().unwrap_or("").split(',').collect(),
                    None => vec![rest],
                };
                for head in heads {
                    let name: String = head
                        .trim()
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() && name != "self" && name != top {
                        edges.insert(name);
                    }
                }
            }
        }
    }
    graph
}

/// A circle of `graph`, as `a → b → a`, if it has one.
fn circle(graph: &Graph) -> Option<String> {
    fn visit<'a>(
        graph: &'a Graph,
        node: &'a str,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<String> {
        if let Some(at) = path.iter().position(|n| *n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node);
            return Some(cycle.join(" → "));
        }
        if !done.insert(node) {
            return None;
        }
        path.push(node);
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(graph, next, path, done) {
                return Some(c);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(graph, n, &mut Vec::new(), &mut done))
}

/// Every way `actual` breaks `plan`.
fn violations(plan: &Graph, actual: &Graph) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(c) = circle(plan) {
        out.push(format!("the floor plan itself has a circle: {c}"));
    }
    if let Some(c) = circle(actual) {
        out.push(format!("import circle: {c}"));
    }
    for (module, uses) in actual {
        let Some(may) = plan.get(module) else {
            out.push(format!(
                "`{module}` has no row in docs/design.md (Where things live)"
            ));
            continue;
        };
        for u in uses.difference(may) {
            out.push(format!(
                "`{module}` imports `crate::{u}`, which its row in docs/design.md does not allow"
            ));
        }
    }
    for module in plan.keys().filter(|m| !actual.contains_key(*m)) {
        out.push(format!(
            "docs/design.md has a row for `{module}`, which is not a module of host/src"
        ));
    }
    out
}

fn sources(dir: &Path, base: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).expect("read host/src") {
        let path: PathBuf = entry.expect("dir entry").path();
        if path.is_dir() {
            sources(&path, base, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(base).expect("under src");
            let text = std::fs::read_to_string(&path).expect("read source");
            out.push((rel.to_string_lossy().replace('\\', "/"), text));
        }
    }
}

#[test]
fn host_src_follows_the_floor_plan() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let design = std::fs::read_to_string(root.join("../docs/design.md")).expect("docs/design.md");
    let plan = allowed(&design).unwrap();
    let src = root.join("src");
    let mut files = Vec::new();
    sources(&src, &src, &mut files);
    let actual = imports(&files);
    let v = violations(&plan, &actual);
    assert!(
        v.is_empty(),
        "host/src breaks its floor plan:\n  {}",
        v.join("\n  ")
    );
}

const PLAN: &str = "<!-- layers:begin -->
| module | job | may import |
|---|---|---|
| `config/` | settings | — |
| `sink/` | writes | `config` |
| `app` | wiring | `config`, `sink` |
<!-- layers:end -->";

fn files(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(p, t)| (p.to_string(), t.to_string()))
        .collect()
}

#[test]
fn a_plan_abiding_tree_passes() {
    let tree = files(&[
        ("config/mod.rs", "pub struct Config;"),
        (
            "sink/mod.rs",
            "use crate::config::Config; // crate::app in a comment",
        ),
        (
            "app.rs",
            "use crate::{config, sink};\nuse crate::sink::Sink;",
        ),
    ]);
    let actual = imports(&tree);
    assert_eq!(
        actual["app"].len(),
        2,
        "a grouped import names both modules"
    );
    let v = violations(&allowed(PLAN).unwrap(), &actual);
    assert!(v.is_empty(), "{v:?}");
}

#[test]
fn an_upward_import_fails() {
    let tree = files(&[
        ("config/mod.rs", "use crate::sink::uri;"),
        ("sink/mod.rs", "use crate::config::Config;"),
        ("app.rs", "use crate::sink::Sink;"),
    ]);
    let v = violations(&allowed(PLAN).unwrap(), &imports(&tree));
    assert!(
        v.iter()
            .any(|m| m.contains("`config` imports `crate::sink`")),
        "{v:?}"
    );
    assert!(v.iter().any(|m| m.contains("import circle")), "{v:?}");
}

#[test]
fn a_module_without_a_row_fails() {
    let tree = files(&[
        ("config/mod.rs", ""),
        ("sink/mod.rs", ""),
        ("app.rs", ""),
        ("stray.rs", "use crate::config::Config;"),
    ]);
    let v = violations(&allowed(PLAN).unwrap(), &imports(&tree));
    assert!(v.iter().any(|m| m.contains("`stray` has no row")), "{v:?}");
}

#[test]
fn a_circle_in_the_plan_fails() {
    let plan = PLAN.replace(
        "| `config/` | settings | — |",
        "| `config/` | settings | `app` |",
    );
    let v = violations(&allowed(&plan).unwrap(), &Graph::new());
    assert!(
        v.iter()
            .any(|m| m.contains("floor plan itself has a circle")),
        "{v:?}"
    );
}
