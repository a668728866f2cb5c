//! The shared bitnami fixtures (`$ZKSCALE_FIXTURES`, default `../shared/fixtures` next to the
//! crate). Tests that read them skip, saying so, when the directory is absent. The project's own
//! renders (`tests/fixtures`: the same chart with `nameOverride`, and as an aliased subchart)
//! are always there.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub fn fixtures_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("ZKSCALE_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures"));
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "skipping: fixtures dir {} not found (set ZKSCALE_FIXTURES)",
            dir.display()
        );
        None
    }
}

/// The project's own real chart output (see `tests/fixtures/README.md`).
pub fn own_fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Every YAML manifest file of the shared fixtures (when present) and of the project's own.
pub fn all_fixture_files() -> Vec<PathBuf> {
    let mut files = fixtures_dir()
        .map(|d| fixture_files(&d))
        .unwrap_or_default();
    files.extend(fixture_files(&own_fixtures_dir()));
    files
}

/// Every YAML manifest file under `dir` (chart metadata `Chart.yaml` excluded), sorted.
pub fn fixture_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml")
                && path.file_name().is_some_and(|n| n != "Chart.yaml")
            {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}
