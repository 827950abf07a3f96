//! The proxy's modules depend on each other in one direction only:
//! `run → server → routes → state → forward → (selection, accounts, sessions,
//! shared_health, response, metrics) → config`, with `upstream` (the backend's
//! connections) below `forward` and `response`. This reads every `crate::`
//! path under `src/`, builds the graph of top-level modules and fails, naming
//! the loop, when one module reaches back to another that depends on it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Graph = BTreeMap<String, BTreeSet<String>>;

#[test]
fn top_level_modules_form_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = module_graph(&src);
    assert!(
        graph.len() > 10,
        "expected the proxy's modules, read {graph:?}"
    );
    if let Some(cycle) = find_cycle(&graph) {
        panic!("module cycle: {}", cycle.join(" → "));
    }
}

/// The issue that asked for this named these edges; they must stay gone.
#[test]
fn forward_does_not_reach_the_whole_state() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = module_graph(&src);
    for (from, to) in [
        ("forward", "state"),
        ("forward", "routes"),
        ("response", "forward"),
        ("refresh", "state"),
        ("keys_file", "state"),
    ] {
        assert!(
            !graph.get(from).is_some_and(|deps| deps.contains(to)),
            "{from} depends on {to}"
        );
    }
}

#[test]
fn the_check_finds_a_cycle() {
    fn edge(graph: &mut Graph, a: &str, b: &str) {
        graph.entry(a.into()).or_default().insert(b.into());
    }
    let mut graph = Graph::new();
    edge(&mut graph, "routes", "forward");
    edge(&mut graph, "forward", "selection");
    edge(&mut graph, "selection", "config");
    assert_eq!(find_cycle(&graph), None);
    edge(&mut graph, "selection", "routes");
    let cycle = find_cycle(&graph).expect("a cycle");
    assert_eq!(cycle.first(), cycle.last());
    assert!(cycle.contains(&"forward".to_string()), "{cycle:?}");
    assert_eq!(
        crate_paths(
            "use crate::a::B;\n// crate::not_code\nlet x = crate::b::f(); use crate::{c::D, e};"
        ),
        ["a", "b", "c", "e"].map(String::from).into_iter().collect()
    );
}

/// Top-level module → the top-level modules its files name through `crate::`.
fn module_graph(src: &Path) -> Graph {
    let mut graph = Graph::new();
    for file in rust_files(src) {
        let relative = file.strip_prefix(src).expect("under src");
        let first = relative.components().next().expect("a path");
        let module = first.as_os_str().to_string_lossy();
        let module = module.trim_end_matches(".rs").to_string();
        if module == "lib" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("readable source");
        let deps = graph.entry(module.clone()).or_default();
        deps.extend(crate_paths(&text).into_iter().filter(|d| *d != module));
    }
    graph
}

fn rust_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("readable src") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// The first segment of every `crate::…` path outside line comments,
/// including each item of `crate::{a::B, c}`.
fn crate_paths(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        for (index, _) in code.match_indices("crate::") {
            let rest = &code[index + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let group = group.split('}').next().unwrap_or("");
                found.extend(group.split(',').filter_map(|item| first_ident(item.trim())));
            } else {
                found.extend(first_ident(rest));
            }
        }
    }
    found
}

fn first_ident(text: &str) -> Option<String> {
    let ident: String = text
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!ident.is_empty()).then_some(ident)
}

/// A path `a → b → … → a` when the graph has a cycle.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    fn visit(
        node: &str,
        graph: &Graph,
        marks: &mut BTreeMap<String, Mark>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Visiting) => {
                let start = stack.iter().position(|n| n == node).unwrap_or(0);
                let mut cycle = stack[start..].to_vec();
                cycle.push(node.to_string());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(node.to_string(), Mark::Visiting);
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, marks, stack) {
                return Some(cycle);
            }
        }
        stack.pop();
        marks.insert(node.to_string(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut marks, &mut Vec::new()))
}
