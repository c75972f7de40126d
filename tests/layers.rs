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
