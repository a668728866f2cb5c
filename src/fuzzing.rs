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

/// The characters a checked source host may hold: letters, digits, `-`, `.` and, in an IPv6
/// literal, `:` (never a shell metacharacter, a blank or a quote).
fn host_chars_ok(host: &str) -> bool {
    !host.starts_with('-')
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':'))
}

/// What `sh` reads back from words written by `shell_quote`: the single-quoted words of
/// `line` (outside quotes only `\'` and blanks are expected), or `None` for anything else.
fn sh_words(line: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut cur: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' => {
                if let Some(w) = cur.take() {
                    words.push(w);
                }
            }
            '\'' => {
                let w = cur.get_or_insert_with(String::new);
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => w.push(c),
                    }
                }
            }
            '\\' => cur.get_or_insert_with(String::new).push(chars.next()?),
            _ => return None,
        }
    }
    words.extend(cur);
    Some(words)
}

/// The properties every accepted source holds, wherever it came from: its host is a checked
/// name or address (no shell syntax, no leading `-`), the command line a template gives reads
/// back in `sh` as exactly the values, its client address is one `host:port` (an IPv6 host in
/// brackets once), and the ids and ports are in range.
fn source_holds(s: &crate::plan::migrate::Source) {
    use crate::plan::migrate::{check_host, source_command, MAX_SERVER_ID};
    assert!(check_host(&s.host).is_ok(), "{s:?}");
    assert!(host_chars_ok(&s.host), "{s:?}");
    assert!((1..=MAX_SERVER_ID).contains(&s.id), "{s:?}");
    assert!(
        s.quorum_port > 0 && s.election_port > 0 && s.client_port > 0,
        "{s:?}"
    );
    let line = source_command("{host} {id}", s);
    assert_eq!(
        sh_words(&line),
        Some(vec![s.host.clone(), s.id.to_string()]),
        "{line}"
    );
    let addr = s.client_addr();
    assert!(!addr.contains("[["), "{addr}");
    if let Ok(ip) = s.host.parse::<std::net::IpAddr>() {
        assert_eq!(
            addr.parse::<std::net::SocketAddr>().ok(),
            Some(std::net::SocketAddr::new(ip, s.client_port)),
            "{addr}"
        );
    }
}

/// `migrate --from` entries, then (after a NUL) `--host-ip` entries: reading them never
/// panics; every source that passes the checks holds [`source_holds`]; and what passes the
/// checks also passes the layout's (the run's) checks, or is refused by them with a message.
pub fn from_entries(data: &[u8]) {
    use crate::plan::migrate::{check_sources, parse_from, with_cluster_ips, Layout};
    let text = String::from_utf8_lossy(data);
    let (from, host_ip) = text.split_once('\0').unwrap_or((&text, ""));
    let Ok(sources) = parse_from(&[from.to_string()]) else {
        return;
    };
    let Ok(sources) = with_cluster_ips(sources, &[host_ip.to_string()]) else {
        return;
    };
    if check_sources(&sources).is_err() {
        return;
    }
    for s in &sources {
        source_holds(s);
        if let Some(ip) = s.cluster_ip {
            assert!(
                crate::plan::migrate::endpoint_refusal(ip).is_none(),
                "{s:?}"
            );
        }
    }
    if let Ok(l) = Layout::new(sources, "zk", "default", "cluster.local") {
        assert!(
            l.size() >= 3 && l.size() <= crate::plan::MAX_ENSEMBLE,
            "{l:?}"
        );
        for w in l.ids.windows(2) {
            assert_eq!(w[0] + 1, w[1]);
        }
    }
}

/// A `--from-zoo-cfg` file: reading it never panics, every source read holds
/// [`source_holds`], and the ids are those of the file's `server.N` lines.
pub fn zoo_cfg(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(sources) = crate::plan::migrate::sources_from_zoo_cfg(text) else {
        return;
    };
    let list = ServerList::parse_zoo_cfg(text).expect("the sources came from this list");
    assert_eq!(
        sources.iter().map(|s| s.id).collect::<Vec<_>>(),
        list.members().iter().map(|m| m.id).collect::<Vec<_>>()
    );
    for s in &sources {
        source_holds(s);
    }
}

/// The annotations zkscale reads back (`zkscale.io/operation`, `zkscale.io/pending`):
/// parsing never panics, and what a message or table shows of them is one bounded line
/// without a control character.
pub fn annotations(data: &[u8]) {
    use crate::engine::annotation::{parse_operation, shown, MigrateOp, RebuildOp, SHOWN_LEN};
    let text = String::from_utf8_lossy(data);
    let _ = parse_operation::<MigrateOp>(&text);
    let _ = parse_operation::<RebuildOp>(&text);
    let _ = parse_operation::<serde_json::Value>(&text);
    let s = shown(&text);
    assert!(!s.chars().any(char::is_control), "{s:?}");
    assert!(s.chars().count() <= 10 * SHOWN_LEN + 1, "{}", s.len());
    if text.chars().count() <= SHOWN_LEN && !text.chars().any(char::is_control) {
        assert_eq!(s, text);
    }
}
