//! Every input kept under `tests/fuzz_regressions/<target>/` (crashers and edge cases found by
//! `make fuzz`, and hand-picked ones) replayed through the same property as the fuzz target,
//! plus every shared fixture through the manifest property.

mod support;

use std::path::Path;

fn replay(target: &str, property: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_regressions")
        .join(target);
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let ok = std::panic::catch_unwind(|| property(&data));
        assert!(ok.is_ok(), "{}: property failed", path.display());
        n += 1;
    }
    n
}

#[test]
fn kept_inputs_hold_their_properties() {
    use zkscale::fuzzing::*;
    let n = replay("manifest_stream", manifest_stream)
        + replay("server_list", server_list)
        + replay("four_letter", four_letter)
        + replay("helm_argv", helm_argv)
        + replay("from_entries", from_entries)
        + replay("zoo_cfg", zoo_cfg)
        + replay("annotations", annotations);
    assert!(n > 0);
}

#[test]
fn fixtures_hold_the_manifest_property() {
    let Some(dir) = support::fixtures::fixtures_dir() else {
        return;
    };
    for path in support::fixtures::fixture_files(&dir) {
        zkscale::fuzzing::manifest_stream(&std::fs::read(&path).unwrap());
    }
}
