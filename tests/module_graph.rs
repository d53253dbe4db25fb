//! The crate's modules form layers without a circle (STYLE.md rule 11): no two top-level modules
//! import each other, directly or around a loop; the shared vocabulary imports nothing of the
//! engine but `time`; and the tooling (generators, eval, rule tests, lint) sits on top of the
//! engine, imported by none of its modules.
//!
//! The graph is read from the source text, the way `shared/hooks/module_cycles.py` reads it: the
//! top-level modules are `src/*.rs` and `src/*/` (besides `lib.rs` and `main.rs`), and module `a`
//! depends on module `b` when a file of `a` names `crate::b` (also inside `crate::{...}`) on a
//! line that is not a comment. Unit tests are left out: everything after a file's first
//! `#[cfg(test)]`, and files whose name contains `test`. The same rules apply one level down to
//! the children of `src/tooling/`, whose paths name each other as `crate::tooling::x`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Why `a` depends on `b`: the first place a file of `a` names `b`.
type Edges = BTreeMap<String, BTreeMap<String, String>>;

/// Modules of the engine that form the bottom of every layer: `time`, `vocab` and `cores` may
/// import nothing else of the crate.
const LEAVES: [(&str, &[&str]); 3] = [("time", &[]), ("vocab", &["time"]), ("cores", &[])];

/// The module tree on top of the engine.
const TOOLING: &str = "tooling";

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The modules directly under `dir`: `x.rs` files and directories (not `lib.rs`, `main.rs`,
/// `mod.rs`), each with the files that belong to it.
fn modules(dir: &Path) -> BTreeMap<String, Vec<PathBuf>> {
    let mut out: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if path.is_dir() {
            let files = out.entry(name).or_default();
            walk(&path, files);
        } else if let Some(stem) = name.strip_suffix(".rs")
            && !matches!(stem, "lib" | "main" | "mod")
        {
            out.entry(stem.to_string()).or_default().push(path);
        }
    }
    out
}

/// Every `.rs` file under `dir` whose name does not contain `test`.
fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, files);
        } else {
            let name = path.file_name().unwrap().to_str().unwrap();
            if name.ends_with(".rs") && !name.contains("test") {
                files.push(path);
            }
        }
    }
}

/// The code of a file that counts: before its first `#[cfg(test)]`, comment lines blanked (so
/// line numbers stay those of the file).
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap();
    text.lines()
        .map(|line| {
            if line.trim_start().starts_with("//") {
                ""
            } else {
                line
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The names that follow `prefix` in `code`: `prefix` then `x`, or `prefix` then `{x, y::z}`;
/// each with the line it is on.
fn named_after(code: &str, prefix: &str) -> Vec<(String, usize)> {
    let mut names: Vec<(String, usize)> = Vec::new();
    let mut from = 0;
    while let Some(at) = code[from..].find(prefix) {
        let start = from + at;
        from = start + prefix.len();
        if code[..start].chars().next_back().is_some_and(is_ident) {
            continue; // `mycrate::`, not `crate::`
        }
        let rest = &code[from..];
        let line = code[..start].matches('\n').count() + 1;
        let mut found = Vec::new();
        if let Some(group) = rest.strip_prefix('{') {
            // The first segment of each path at the group's top level.
            let mut depth = 0;
            let mut segment = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => found.extend(first_segment(&std::mem::take(&mut segment))),
                    c if depth == 0 => segment.push(c),
                    _ => {}
                }
            }
            found.extend(first_segment(&segment));
        } else {
            found.extend(first_segment(rest));
        }
        names.extend(found.into_iter().map(|name| (name, line)));
    }
    names
}

/// The identifier a path starts with (`alpha` of ` alpha::X as Y`), if any.
fn first_segment(path: &str) -> Option<String> {
    let name: String = path
        .trim_start()
        .chars()
        .take_while(|&c| is_ident(c))
        .collect();
    (!name.is_empty()).then_some(name)
}

/// The dependencies between the modules under `dir`, whose paths start with `prefix`.
fn graph(dir: &Path, prefix: &str) -> Edges {
    let modules = modules(dir);
    let mut edges: Edges = modules
        .keys()
        .map(|m| (m.clone(), BTreeMap::new()))
        .collect();
    for (module, files) in &modules {
        for file in files {
            let code = code(&fs::read_to_string(file).unwrap());
            for (name, line) in named_after(&code, prefix) {
                if modules.contains_key(&name) && name != *module {
                    let rel = file.strip_prefix(src()).unwrap_or(file).display();
                    let at = format!("src/{rel}:{line}");
                    edges.get_mut(module).unwrap().entry(name).or_insert(at);
                }
            }
        }
    }
    edges
}

/// The strongly connected components with more than one module (Tarjan), each a cycle.
fn cycles(edges: &Edges) -> Vec<Vec<String>> {
    struct Tarjan<'a> {
        edges: &'a Edges,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, v: &'a str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.edges[v].keys() {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.on_stack.contains(w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                loop {
                    let w = self.stack.pop().unwrap();
                    self.on_stack.remove(w);
                    component.push(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.out.push(component);
                }
            }
        }
    }
    let mut t = Tarjan {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !t.index.contains_key(v.as_str()) {
            t.visit(v);
        }
    }
    t.out
}

/// Fails listing each cycle with the edges inside it and where each comes from.
fn assert_acyclic(edges: &Edges, what: &str) {
    let found = cycles(edges);
    let mut report = String::new();
    for cycle in &found {
        report.push_str(&format!("cycle among {}:\n", cycle.join(", ")));
        for a in cycle {
            for (b, at) in &edges[a] {
                if cycle.contains(b) {
                    report.push_str(&format!("  {a} -> {b} ({at})\n"));
                }
            }
        }
    }
    assert!(found.is_empty(), "{what} import each other:\n{report}");
}

/// The modules `lib.rs` declares: the library, as opposed to the binary's own (`src/cli`).
fn library_modules() -> BTreeSet<String> {
    let lib = fs::read_to_string(src().join("lib.rs")).unwrap();
    lib.lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|l| l.trim_end_matches(';').to_string())
        .collect()
}

#[test]
fn no_two_top_level_modules_import_each_other() {
    let edges = graph(&src(), "crate::");
    assert_acyclic(&edges, "top-level modules of src/");
}

#[test]
fn no_two_tooling_modules_import_each_other() {
    let edges = graph(&src().join(TOOLING), "crate::tooling::");
    assert!(edges.contains_key("generator"), "{edges:?}");
    assert_acyclic(&edges, "modules of src/tooling/");
}

#[test]
fn the_vocabulary_and_time_import_nothing_of_the_engine() {
    let edges = graph(&src(), "crate::");
    for (leaf, allowed) in LEAVES {
        let extra: Vec<String> = edges[leaf]
            .iter()
            .filter(|(to, _)| !allowed.contains(&to.as_str()))
            .map(|(to, at)| format!("{leaf} -> {to} ({at})"))
            .collect();
        assert!(
            extra.is_empty(),
            "a leaf imports the engine:\n{}",
            extra.join("\n")
        );
    }
}

#[test]
fn no_engine_module_imports_the_tooling() {
    let edges = graph(&src(), "crate::");
    let library = library_modules();
    assert!(
        library.contains(TOOLING) && library.contains("pipeline"),
        "{library:?}"
    );
    let wrong: Vec<String> = library
        .iter()
        .filter(|m| *m != TOOLING)
        .filter_map(|m| {
            edges[m]
                .get(TOOLING)
                .map(|at| format!("{m} -> {TOOLING} ({at})"))
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "the engine imports the tooling:\n{}",
        wrong.join("\n")
    );
}

/// The reader itself: a cycle is found, grouped imports count, comments and tests do not.
#[test]
fn the_graph_reader_sees_what_it_must() {
    let text = "use crate::{alpha::X as W, beta::{Y, Z},\n gamma};\n// crate::delta\nmycrate::eps\n\
                crate::zeta::f();\n#[cfg(test)]\nuse crate::eta;";
    let names = |code: &str| -> Vec<String> {
        named_after(code, "crate::")
            .into_iter()
            .map(|(n, _)| n)
            .collect()
    };
    assert_eq!(
        names(text),
        ["alpha", "beta", "gamma", "delta", "zeta", "eta"]
    );
    assert_eq!(names(&code(text)), ["alpha", "beta", "gamma", "zeta"]);
    assert_eq!(
        named_after(&code(text), "crate::")[3],
        ("zeta".to_string(), 5)
    );

    let mut edges: Edges = BTreeMap::new();
    for (a, b) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d"), ("d", "d2")] {
        edges
            .entry(a.into())
            .or_default()
            .insert(b.into(), String::new());
        edges.entry(b.into()).or_default();
    }
    assert_eq!(cycles(&edges), [["a", "b", "c"]]);
}
