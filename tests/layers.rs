//! The two import rules that keep volley's layers apart (docs/ARCHITECTURE.md, "The rule that
//! keeps the layers apart"): `src/protocol/` imports nothing of the crate outside itself, and
//! `src/runtime/` never imports the front door (`src/server.rs`). Checked on the source text, as
//! the grep commands in the docs do, so a violation fails `cargo test`.

use std::fs;
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `(file, line number, line)` under `dir` containing `needle` and none of `allowed`.
fn offending(dir: &str, needle: &str, allowed: &[&str]) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(!files.is_empty(), "no sources under {dir}");
    let mut found = Vec::new();
    for f in files {
        for (i, line) in fs::read_to_string(&f).unwrap().lines().enumerate() {
            let mut rest = line;
            while let Some(at) = rest.find(needle) {
                let tail = &rest[at..];
                if !allowed.iter().any(|a| tail.starts_with(a)) {
                    found.push(format!("{}:{}: {}", f.display(), i + 1, line.trim()));
                    break;
                }
                rest = &rest[at + needle.len()..];
            }
        }
    }
    found
}

#[test]
fn protocol_is_a_leaf() {
    let bad = offending("src/protocol", "crate::", &["crate::protocol"]);
    assert!(
        bad.is_empty(),
        "protocol/ reaches outside itself:\n{}",
        bad.join("\n")
    );
}

#[test]
fn runtime_never_imports_the_front_door() {
    let bad = offending("src/runtime", "crate::server", &[]);
    assert!(
        bad.is_empty(),
        "runtime/ imports server.rs:\n{}",
        bad.join("\n")
    );
}

// ---- import circles ------------------------------------------------------------------------

/// The modules of one crate (by path from its root) and the files they live in.
struct Crate {
    /// (module path, file path relative to the crate's source root, source text).
    files: Vec<(Vec<String>, String, String)>,
}

impl Crate {
    /// Every `.rs` file under `src`; `root` names the crate root file (lib.rs or main.rs).
    fn read(src: &Path) -> Crate {
        let mut paths = Vec::new();
        rust_files(src, &mut paths);
        paths.sort();
        let files = paths
            .into_iter()
            .map(|p| {
                let rel = p
                    .strip_prefix(src)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                let mut module: Vec<String> = rel
                    .trim_end_matches(".rs")
                    .split('/')
                    .map(str::to_string)
                    .collect();
                let last = module.last().map(String::as_str);
                if matches!(last, Some("mod" | "lib" | "main")) {
                    module.pop();
                }
                (module, rel, fs::read_to_string(&p).unwrap())
            })
            .collect();
        Crate { files }
    }

    fn file_of(&self, module: &[String]) -> Option<usize> {
        self.files.iter().position(|(m, _, _)| m == module)
    }
}

/// The source without comments (line comments, doc comments and block comments).
fn strip_comments(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let mut rest = src;
    while !rest.is_empty() {
        if rest.starts_with("//") {
            let end = rest.find('\n').unwrap_or(rest.len());
            rest = &rest[end..];
        } else if rest.starts_with("/*") {
            let end = rest.find("*/").map_or(rest.len(), |e| e + 2);
            rest = &rest[end..];
        } else if rest.starts_with('"') {
            // A string literal: skipped whole (it may hold `//` or `crate::`).
            let mut end = 1;
            let b = rest.as_bytes();
            while end < b.len() && b[end] != b'"' {
                end += if b[end] == b'\\' { 2 } else { 1 };
            }
            out.push_str("\"\"");
            rest = &rest[(end + 1).min(rest.len())..];
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// The code without its inline `#[cfg(test)] mod … { … }` blocks: tests may reach anywhere,
/// and inside them `super` names the file's own module.
fn strip_test_modules(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "#[cfg(test)]".len()..];
        let item = after.trim_start();
        let block = item.starts_with("mod ")
            && item
                .find('{')
                .is_some_and(|b| item.find(';').is_none_or(|s| b < s));
        if !block {
            out.push_str("#[cfg(test)]");
            rest = after;
            continue;
        }
        let open = item.find('{').unwrap_or(0);
        let mut depth = 0;
        let mut end = item.len();
        for (i, ch) in item[open..].char_indices() {
            match ch {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &item[end..];
    }
    out.push_str(rest);
    out
}

/// Expand one `use` tree (`a::{b, c::{d, self}}`) into whole paths.
fn expand_use(tree: &str, prefix: &[String], out: &mut Vec<Vec<String>>) {
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let head: Vec<String> = tree[..open]
            .split("::")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        let mut base = prefix.to_vec();
        base.extend(head);
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        let (mut depth, mut start) = (0, 0);
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand_use(&inner[start..i], &base, out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        expand_use(&inner[start..], &base, out);
        return;
    }
    let tree = tree.split(" as ").next().unwrap_or("").trim();
    if tree.is_empty() || tree == "*" {
        return;
    }
    let mut path = prefix.to_vec();
    for seg in tree.split("::").map(str::trim) {
        if seg != "self" && seg != "*" {
            path.push(seg.to_string());
        }
    }
    out.push(path);
}

/// Make a path written in `module` absolute from the crate root: `crate::`, `super::`,
/// `self::` and child modules are followed; `None` for paths into other crates.
fn absolute(c: &Crate, module: &[String], path: &[String]) -> Option<Vec<String>> {
    let mut base: Vec<String> = module.to_vec();
    let mut segs = path;
    match segs.first().map(String::as_str) {
        Some("crate") => {
            base.clear();
            segs = &segs[1..];
        }
        Some("self") => segs = &segs[1..],
        Some("super") => {
            while segs.first().map(String::as_str) == Some("super") {
                base.pop();
                segs = &segs[1..];
            }
        }
        Some(first) => {
            let mut child = base.clone();
            child.push(first.to_string());
            c.file_of(&child)?;
        }
        None => return None,
    }
    base.extend(segs.iter().cloned());
    Some(base)
}

/// Every file's imports, as (file, file) edges: `use` trees and `crate::`/`super::` paths in
/// code, resolved to the module that defines the item (re-exports are followed).
fn import_edges(c: &Crate) -> Vec<(usize, usize)> {
    // Each module's `use` paths, and its re-exports (`pub use`, `pub(crate) use`) by name.
    let mut uses: Vec<Vec<Vec<String>>> = Vec::new();
    let mut reexports: std::collections::HashMap<(Vec<String>, String), Vec<String>> =
        Default::default();
    for (module, _, src) in &c.files {
        let code = strip_test_modules(&strip_comments(src));
        let mut paths = Vec::new();
        for stmt in code.split(';') {
            let s = stmt.trim_start();
            let public = s.starts_with("pub ") || s.starts_with("pub(");
            let Some(at) = s.find("use ") else { continue };
            let before = &s[..at];
            let is_use = before.trim().is_empty()
                || before.trim_end().ends_with(')') && public
                || before.trim() == "pub"
                || before.trim_start().starts_with("#[");
            if !is_use || s[..at].contains('{') || s[..at].contains('=') {
                continue;
            }
            let mut expanded = Vec::new();
            expand_use(&s[at + 4..], &[], &mut expanded);
            for p in expanded {
                let Some(abs) = absolute(c, module, &p) else {
                    continue;
                };
                if public {
                    let name = s[at + 4..]
                        .rsplit(" as ")
                        .next()
                        .filter(|_| s.contains(" as "))
                        .map(|n| n.trim().to_string())
                        .unwrap_or_else(|| abs.last().cloned().unwrap_or_default());
                    reexports.insert((module.clone(), name), abs.clone());
                }
                paths.push(abs);
            }
        }
        // Paths written in code: `crate::a::b` and `super::a`.
        for prefix in ["crate::", "super::"] {
            let mut rest = code.as_str();
            while let Some(at) = rest.find(prefix) {
                let ok_before = at == 0
                    || !rest[..at]
                        .chars()
                        .next_back()
                        .is_some_and(|ch| ch.is_alphanumeric() || ch == '_' || ch == ':');
                let tail = &rest[at..];
                let end = tail
                    .find(|ch: char| !(ch.is_alphanumeric() || ch == '_' || ch == ':'))
                    .unwrap_or(tail.len());
                // (A prefix ending in `::` opens a `use` group, which `expand_use` follows.)
                if ok_before && !tail[..end].ends_with("::") {
                    let p: Vec<String> = tail[..end]
                        .split("::")
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect();
                    if let Some(abs) = absolute(c, module, &p) {
                        paths.push(abs);
                    }
                }
                rest = &tail[end.max(1)..];
            }
        }
        uses.push(paths);
    }
    let resolve = |path: &[String]| -> Option<usize> {
        let mut path = path.to_vec();
        for _ in 0..8 {
            let mut module = Vec::new();
            let mut followed = None;
            for (i, seg) in path.iter().enumerate() {
                let mut child = module.clone();
                child.push(seg.clone());
                if c.file_of(&child).is_some() {
                    module = child;
                    continue;
                }
                if let Some(target) = reexports.get(&(module.clone(), seg.clone())) {
                    let mut p = target.clone();
                    p.extend(path[i + 1..].iter().cloned());
                    if p != path {
                        followed = Some(p);
                    }
                }
                break;
            }
            match followed {
                Some(p) => path = p,
                None => return c.file_of(&module),
            }
        }
        None
    };
    let mut edges = Vec::new();
    for (from, paths) in uses.iter().enumerate() {
        for p in paths {
            if let Some(to) = resolve(p) {
                if to != from && !edges.contains(&(from, to)) {
                    edges.push((from, to));
                }
            }
        }
    }
    edges
}

/// The import circles (strongly connected components of more than one file) whose files lie
/// in more than one folder, each as its files' paths.
fn circles_across_folders(c: &Crate) -> Vec<Vec<String>> {
    let edges = import_edges(c);
    let n = c.files.len();
    let reach = |from: usize| {
        let mut seen = vec![false; n];
        let mut stack = vec![from];
        while let Some(f) = stack.pop() {
            for &(a, b) in &edges {
                if a == f && !seen[b] {
                    seen[b] = true;
                    stack.push(b);
                }
            }
        }
        seen
    };
    let reachable: Vec<Vec<bool>> = (0..n).map(reach).collect();
    let mut done = vec![false; n];
    let mut circles = Vec::new();
    for a in 0..n {
        if done[a] || !reachable[a][a] {
            continue;
        }
        let members: Vec<usize> = (0..n)
            .filter(|&b| reachable[a][b] && reachable[b][a])
            .collect();
        for &m in &members {
            done[m] = true;
        }
        let folder = |f: usize| {
            c.files[f]
                .1
                .rsplit_once('/')
                .map_or("", |(d, _)| d)
                .to_string()
        };
        if members.iter().any(|&m| folder(m) != folder(members[0])) {
            circles.push(members.iter().map(|&m| c.files[m].1.clone()).collect());
        }
    }
    circles
}

fn assert_no_circle_across_folders(dir: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let circles = circles_across_folders(&Crate::read(&root));
    let list: Vec<String> = circles.iter().map(|c| c.join(" <-> ")).collect();
    assert!(
        circles.is_empty(),
        "import circles across folders of {dir}:\n{}",
        list.join("\n")
    );
}

#[test]
fn no_import_circle_crosses_a_folder_of_src() {
    assert_no_circle_across_folders("src");
}

#[test]
fn no_import_circle_crosses_a_folder_of_the_loadtest() {
    assert_no_circle_across_folders("loadtest/src");
}

/// The check itself: a circle through two folders is found (through a `use` tree, a path in
/// code and a re-export), one inside a folder is tolerated, and a one-way import is no circle.
#[test]
fn the_circle_check_trips_on_a_new_circle() {
    let dir = std::env::temp_dir().join(format!("volley-layers-{}", std::process::id()));
    let write = |rel: &str, text: &str| {
        let p = dir.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    };
    write("lib.rs", "mod a;\nmod b;\npub use a::thing::Thing;\n");
    write("a/mod.rs", "pub mod thing;\npub mod other;\n");
    write(
        "a/thing.rs",
        "use crate::b::{x::{self, X}};\npub struct Thing;\n",
    );
    write("a/other.rs", "use super::thing::Thing;\n");
    write("b/mod.rs", "pub mod x;\n");
    write("b/x.rs", "pub struct X;\n");
    let one_way = circles_across_folders(&Crate::read(&dir));
    assert!(one_way.is_empty(), "{one_way:?}");
    // b/x.rs now names the re-exported `crate::Thing` in code: a circle a/thing <-> b/x.
    write("b/x.rs", "pub struct X(crate::Thing);\n");
    let found = circles_across_folders(&Crate::read(&dir));
    assert_eq!(
        found,
        vec![vec!["a/thing.rs".to_string(), "b/x.rs".to_string()]]
    );
    // The same circle inside one folder is not reported.
    write("b/x.rs", "pub struct X;\n");
    write("a/other.rs", "use super::thing::Thing;\npub struct O;\n");
    write(
        "a/thing.rs",
        "// use crate::b::x::X;\npub struct Thing(super::other::O);\n",
    );
    write("a/other.rs", "use super::thing::Thing;\npub struct O;\n");
    let inside = circles_across_folders(&Crate::read(&dir));
    assert!(inside.is_empty(), "{inside:?}");
    fs::remove_dir_all(&dir).unwrap();
}
