//! Properties the fuzz targets (`fuzz/`, `make fuzz`) check on untrusted text, and the
//! regression tests replay on every crasher kept (`tests/fuzz_regressions/`). Each function
//! panics when a property does not hold; returning means the input was handled.
#![doc(hidden)]

use crate::manifest::{rewrite, Declared, LiveState, ParseOptions, Stream};
use crate::model::ServerList;
use crate::zk::{parse_mntr, parse_srvr};

/// The manifest stream: parsing never panics; when it succeeds, a rewrite (as for a fresh
/// install, and declaring one member of each ensemble) either fails cleanly or gives a
/// stream that parses again, with every document it did not change byte for byte, and the
/// declared values read back exactly (YAML 1.1 as Kubernetes reads it is checked by the emitter
/// itself, which re-reads what it wrote).
pub fn manifest_stream(data: &[u8]) {
    for check_syntax in [false, true] {
        let Ok(stream) = Stream::parse_with(data, &ParseOptions { check_syntax }) else {
            continue;
        };
        let mut live = LiveState::default();
        for z in stream.zookeepers() {
            if let Some(first) = z.servers.members().first() {
                let servers_env = format!("{}:2888:3888::{}", first.host, first.id);
                let declared = Declared {
                    replicas: 1,
                    servers_env,
                    pending: Some("1 → 3 member(s): yes, no, 0644".into()),
                    operation: Some(r#"{"target":3,"step":"1→2"}"#.into()),
                };
                live.ensembles.insert(z.name.clone(), declared);
            }
        }
        for state in [LiveState::default(), live] {
            let Ok(out) = rewrite(&stream, Some(&state)) else {
                continue;
            };
            let again = Stream::parse_with(&out.output, &ParseOptions { check_syntax })
                .unwrap_or_else(|e| panic!("a rewrite does not parse again: {e}"));
            assert_eq!(again.documents().len(), stream.documents().len());
            for (before, after) in stream.documents().iter().zip(again.documents()) {
                if !out.changed.contains(&before.index()) {
                    assert_eq!(before.text(), after.text(), "an unchanged document changed");
                }
            }
            for z in again.zookeepers() {
                if let Some(d) = state.ensembles.get(&z.name) {
                    assert_eq!(z.replicas, Some(d.replicas));
                    assert_eq!(z.servers_env, d.servers_env);
                }
            }
        }
    }
}

/// Server lists: parsing never panics; a list that parses writes back to text that parses
/// to the same ensemble.
pub fn server_list(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(list) = ServerList::parse_env(text) {
        let again = ServerList::parse_env(&list.to_env())
            .unwrap_or_else(|e| panic!("to_env of {text:?} does not parse: {e}"));
        assert!(again.same_ensemble(&list), "{text:?}");
    }
    if let Ok(list) = ServerList::parse_zoo_cfg(text) {
        let cfg = list.to_zoo_cfg_lines().join("\n");
        let again = ServerList::parse_zoo_cfg(&cfg)
            .unwrap_or_else(|e| panic!("zoo.cfg lines of {text:?} do not parse: {e}"));
        assert!(again.same_ensemble(&list), "{text:?}");
    }
}

/// Four-letter-word answers: parsing never panics.
pub fn four_letter(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = parse_srvr(&text);
    let _ = parse_mntr(&text);
}

/// A helm command line (NUL-separated, as /proc gives it): reading it never panics, and a
/// `--dry-run` other than `none`/`false` is never a real upgrade.
pub fn helm_argv(data: &[u8]) {
    let argv: Vec<String> = data
        .split(|b| *b == 0)
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    if let Some(c) = crate::postrender::parse_helm_argv(1, &argv) {
        if c.dry_run {
            assert_ne!(c.intent(), crate::postrender::Intent::Execute, "{argv:?}");
        }
    }
}
