//! The fuzz targets' checks (`fuzz/checks.rs`) over their seed corpora and every input that
//! ever made one fail (`fuzz/regressions/TARGET/`), on stable Rust: a bug the fuzzer found
//! stays fixed. The fuzzing itself is `scripts/fuzz.sh` (nightly, libFuzzer).

#[path = "../fuzz/checks.rs"]
mod checks;

use std::path::Path;

fn inputs(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect()
}

#[test]
fn seeds_and_regressions_pass_every_check() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut ran = 0;
    for (target, check) in checks::TARGETS {
        let seeds = inputs(&root.join("seeds").join(target));
        assert!(!seeds.is_empty(), "no seeds for fuzz target {target}");
        for (name, data) in seeds
            .into_iter()
            .chain(inputs(&root.join("regressions").join(target)))
        {
            let r = std::panic::catch_unwind(|| check(&data));
            assert!(r.is_ok(), "fuzz check {target} fails on {name}");
            ran += 1;
        }
    }
    eprintln!("{ran} inputs checked");
}
