//! Server-list parsing and formatting against every `ZOO_SERVERS` the real bitnami chart
//! rendered (fixtures), plus generated lists in every form the image accepts.
//!
//! Fixtures: `$ZKSCALE_FIXTURES` (default `../shared/fixtures` next to the crate); the fixture
//! tests print a message and pass when the directory is absent.

use std::path::PathBuf;

use proptest::prelude::*;
use serde::Deserialize;
use zkscale::model::{ordinal_of, Addressing, Member, ModelError, Role, ServerList};

struct Fixture {
    file: String,
    sts: String,
    replicas: u32,
    min_server_id: u32,
    /// The value as the YAML parser gives it to Kubernetes (no trailing blank).
    parsed: String,
    /// The text after `value: ` in the rendered file (with the chart's trailing space).
    raw: String,
}

fn fixtures() -> Option<Vec<Fixture>> {
    let dir = std::env::var_os("ZKSCALE_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures"))
        .join("bitnami-zookeeper");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!("skipping: no fixture directory {}", dir.display());
        return None;
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    paths.sort();
    let mut out = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).unwrap();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let lines: Vec<&str> = text.lines().collect();
        let at = lines
            .iter()
            .position(|l| l.trim() == "- name: ZOO_SERVERS")
            .unwrap_or_else(|| panic!("{file}: no ZOO_SERVERS"));
        let raw = lines[at + 1]
            .trim_start()
            .strip_prefix("value: ")
            .unwrap_or_else(|| panic!("{file}: ZOO_SERVERS value not on the next line"))
            .to_string();
        let min_server_id = text
            .split("ORD + ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.trim_end_matches(')').parse().ok())
            .unwrap_or_else(|| panic!("{file}: no `ORD + N` in setup.sh"));
        let mut sts = None;
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let v = serde_yaml::Value::deserialize(doc).unwrap();
            if v["kind"].as_str() == Some("StatefulSet") {
                sts = Some(v);
            }
        }
        let sts = sts.unwrap_or_else(|| panic!("{file}: no StatefulSet"));
        let env = sts["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_sequence()
            .unwrap();
        let parsed = env
            .iter()
            .find(|e| e["name"].as_str() == Some("ZOO_SERVERS"))
            .and_then(|e| e["value"].as_str())
            .unwrap()
            .to_string();
        out.push(Fixture {
            file,
            sts: sts["metadata"]["name"].as_str().unwrap().to_string(),
            replicas: sts["spec"]["replicas"].as_u64().unwrap() as u32,
            min_server_id,
            parsed,
            raw,
        });
    }
    assert!(!out.is_empty(), "no fixtures in {}", dir.display());
    Some(out)
}

fn pairs(l: &ServerList, sts: &str) -> Vec<(u32, Member)> {
    l.members()
        .iter()
        .map(|m| (ordinal_of(m, sts).expect("pod DNS host"), m.clone()))
        .collect()
}

#[test]
fn every_fixture_value_parses_and_round_trips() {
    let Some(fx) = fixtures() else { return };
    for f in &fx {
        for value in [&f.parsed, &f.raw] {
            let l = ServerList::parse_env(value).unwrap_or_else(|e| panic!("{}: {e}", f.file));
            assert_eq!(&l.to_env(), value, "{}", f.file);
            assert_eq!(l.len() as u32, f.replicas, "{}", f.file);
            assert_eq!(l.is_standalone(), f.replicas == 1, "{}", f.file);
            assert!(l.has_explicit_ids());
            let ids: Vec<u32> = l.members().iter().map(|m| m.id).collect();
            let want: Vec<u32> = (0..f.replicas).map(|o| o + f.min_server_id).collect();
            assert_eq!(ids, want, "{}", f.file);
            assert_eq!(
                l.infer_min_server_id(&f.sts),
                Ok(f.min_server_id),
                "{}",
                f.file
            );
            let p = pairs(&l, &f.sts);
            let refs: Vec<(u32, &Member)> = p.iter().map(|(o, m)| (*o, m)).collect();
            let a = Addressing::infer(&refs, &f.sts).unwrap();
            assert!(a.is_pod_own_address(), "{}", f.file);
            for (o, m) in &p {
                assert_eq!(a.address_for(*o), m.host);
                assert_eq!((m.peer_port, m.election_port, m.role), (2888, 3888, None));
            }
            let cfg = l.image_zoo_cfg_lines(2181);
            assert_eq!(
                cfg.len(),
                if f.replicas == 1 {
                    0
                } else {
                    f.replicas as usize
                }
            );
            if f.replicas > 1 {
                let back = ServerList::parse_zoo_cfg(&cfg.join("\n")).unwrap();
                assert!(back.same_ensemble(&l));
                assert!(back
                    .members()
                    .iter()
                    .all(|m| m.client.as_deref() == Some("2181")));
            }
        }
        assert_eq!(
            f.raw.trim_end(),
            f.parsed,
            "{}: YAML drops the trailing blank",
            f.file
        );
    }
    if fx.iter().any(|f| f.file.contains("minid10")) {
        let f = fx.iter().find(|f| f.file.contains("minid10")).unwrap();
        assert_eq!((f.sts.as_str(), f.min_server_id), ("coord", 10));
        let l = ServerList::parse_env(&f.parsed).unwrap();
        assert!(l.members()[0].host.ends_with(".svc.corp.example"));
    }
}

/// Growing or shrinking one chart rendering gives exactly the chart's rendering for the other
/// replica count: the lists the planner builds look like what Helm would apply.
#[test]
fn adding_and_removing_members_reproduces_the_chart() {
    let Some(fx) = fixtures() else { return };
    let plain: Vec<&Fixture> = fx
        .iter()
        .filter(|f| {
            f.file
                .strip_suffix(".yaml")
                .is_some_and(|s| s.ends_with(&format!("replicas-{}", f.replicas)))
        })
        .collect();
    let mut compared = 0;
    for a in &plain {
        for b in &plain {
            let version = |f: &Fixture| f.file.split('-').next().unwrap().to_string();
            if version(a) != version(b) || b.replicas <= a.replicas {
                continue;
            }
            for (va, vb) in [(&a.raw, &b.raw), (&a.parsed, &b.parsed)] {
                let small = ServerList::parse_env(va).unwrap();
                let p = pairs(&small, &a.sts);
                let refs: Vec<(u32, &Member)> = p.iter().map(|(o, m)| (*o, m)).collect();
                let addr = Addressing::infer(&refs, &a.sts).unwrap();
                let mut grown = small.clone();
                for o in a.replicas..b.replicas {
                    let m = Member::new(o + a.min_server_id, addr.address_for(o), 2888, 3888);
                    grown = grown.with_member_added(m).unwrap();
                }
                assert_eq!(&grown.to_env(), vb, "{} → {}", a.file, b.file);
                let mut shrunk = ServerList::parse_env(vb).unwrap();
                for o in (a.replicas..b.replicas).rev() {
                    shrunk = shrunk.without_member(o + a.min_server_id).unwrap();
                }
                assert_eq!(&shrunk.to_env(), va, "{} → {}", b.file, a.file);
                compared += 1;
            }
        }
    }
    assert!(compared >= 4, "only {compared} comparisons");
}

#[test]
fn hand_written_forms() {
    let ok = [
        "",
        "   ",
        "zk-0:2888:3888",
        "zk-0:2888:3888::1",
        "zk-0:2888:3888::1 ",
        "a:1:2::1,b:1:2::2",
        "a:1:2::1;b:1:2::2;",
        "a:1:2::1 ,; b:1:2::2",
        "\ta:1:2::1\t b:1:2::2\n",
        "a:1:2:participant::1 b:1:2:observer::2",
        "a:1:2:observer,b:1:2,c:1:2",
        "192.168.0.10:2888:3888::4 192.168.0.11:2888:3888::9",
        "[2001:db8:0:0:0:0:0:7]:2888:3888::1",
        "a:2888:3888::001 b:2888:3888::2",
    ];
    for s in ok {
        let l = ServerList::parse_env(s).unwrap_or_else(|e| panic!("{s:?}: {e}"));
        assert_eq!(l.to_env(), s);
    }
    let l = ServerList::parse_env("a:1:2:observer,b:1:2,c:1:2").unwrap();
    assert_eq!(l.members()[0].role, Some(Role::Observer));
    assert_eq!(
        l.members().iter().map(|m| m.id).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(
        ServerList::parse_env("a:2888:3888::001").unwrap().members()[0].id,
        1
    );
    type IsExpected = fn(&ModelError) -> bool;
    let bad: [(&str, IsExpected); 12] = [
        ("a:1:2::1 b:1:2", |e| {
            matches!(e, ModelError::MixedIdStyles { .. })
        }),
        ("a:1:2 b:1:2::2", |e| {
            matches!(
                e,
                ModelError::MixedIdStyles {
                    positional: 1,
                    explicit: 2,
                    ..
                }
            )
        }),
        ("a:1:2::0", |e| matches!(e, ModelError::BadId { .. })),
        ("a:1:2::one", |e| matches!(e, ModelError::BadId { .. })),
        ("a:1:2::1::2", |e| matches!(e, ModelError::BadEntry { .. })),
        ("a:1:2::1 b:1:2::01", |e| {
            matches!(e, ModelError::DuplicateId { id: 1 })
        }),
        ("a:1:2::1 a:1:2::2", |e| {
            matches!(e, ModelError::DuplicateAddress { .. })
        }),
        ("a:1:99999::1", |e| matches!(e, ModelError::BadPort { .. })),
        ("a:1::1", |e| matches!(e, ModelError::BadEntry { .. })),
        (":1:2::1", |e| matches!(e, ModelError::BadEntry { .. })),
        ("a:1:2:leader::1", |e| {
            matches!(e, ModelError::BadEntry { .. })
        }),
        ("a:1:2::1\nb:1:2::2", |e| {
            matches!(e, ModelError::MultiLine { .. })
        }),
    ];
    for (s, is) in bad {
        let e = ServerList::parse_env(s).expect_err(s);
        assert!(is(&e), "{s:?}: {e:?}");
        assert!(!e.to_string().is_empty());
    }
    let e = ServerList::parse_env("a:1:2::1 b:1:x::2").unwrap_err();
    assert!(
        e.to_string().contains("entry 2") && e.to_string().contains("`x`"),
        "{e}"
    );
}

// ---------------------------------------------------------------------------------------------
// Generated lists

/// host, peer port, election port, role, id
type GenMember = (String, u16, u16, Option<Role>, u32);

#[derive(Debug, Clone)]
struct Gen {
    members: Vec<GenMember>,
    explicit: bool,
    seps: Vec<String>,
    leading: String,
    trailing: String,
}

fn sep() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[ ,;\t]{1,3}").unwrap()
}

fn gen() -> impl Strategy<Value = Gen> {
    let host = prop_oneof![
        "[a-z][a-z0-9-]{0,10}(\\.[a-z0-9-]{1,8}){0,4}",
        (0u8..=255, 0u8..=255, 0u8..=255, 1u8..=254)
            .prop_map(|(a, b, c, d)| format!("{a}.{b}.{c}.{d}")),
    ];
    let role = prop_oneof![
        Just(None),
        Just(Some(Role::Participant)),
        Just(Some(Role::Observer))
    ];
    let member = (host, 1u16..=65535, 1u16..=65535, role);
    (
        proptest::collection::vec(member, 0..8),
        any::<bool>(),
        proptest::collection::vec(sep(), 8),
        proptest::string::string_regex("[ ,;\t]{0,2}").unwrap(),
        proptest::string::string_regex("[ ,;\t]{0,2}\n?").unwrap(),
        proptest::collection::vec(1u32..1000, 8),
    )
        .prop_map(|(ms, explicit, seps, leading, trailing, ids)| {
            let mut used = std::collections::BTreeSet::new();
            let mut hosts = std::collections::BTreeSet::new();
            let members: Vec<_> = ms
                .into_iter()
                .zip(ids)
                .filter(|((h, p, e, _), id)| used.insert(*id) && hosts.insert((h.clone(), *p, *e)))
                .enumerate()
                .map(|(i, ((h, p, e, r), id))| {
                    (h, p, e, r, if explicit { id } else { i as u32 + 1 })
                })
                .collect();
            Gen {
                members,
                explicit,
                seps,
                leading,
                trailing,
            }
        })
}

impl Gen {
    fn text(&self) -> String {
        let mut s = self.leading.clone();
        for (i, (h, p, e, r, id)) in self.members.iter().enumerate() {
            if i > 0 {
                s.push_str(&self.seps[i - 1]);
            }
            s.push_str(&format!("{h}:{p}:{e}"));
            if let Some(r) = r {
                s.push_str(&format!(":{}", r.as_str()));
            }
            if self.explicit {
                s.push_str(&format!("::{id}"));
            }
        }
        s + &self.trailing
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn generated_lists_parse_as_written(g in gen()) {
        let text = g.text();
        let l = ServerList::parse_env(&text).map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
        prop_assert_eq!(l.to_env(), text.clone());
        prop_assert_eq!(l.len(), g.members.len());
        for (m, (h, p, e, r, id)) in l.members().iter().zip(&g.members) {
            prop_assert_eq!(&m.host, h);
            prop_assert_eq!((m.peer_port, m.election_port, m.role, m.id), (*p, *e, *r, *id));
        }
        // derived lists keep the spelling of every untouched entry
        if let Some(last) = l.members().last() {
            let fewer = l.without_member(last.id).unwrap();
            let again = fewer.with_member_added(last.clone()).unwrap();
            prop_assert!(again.same_ensemble(&l));
            for (a, b) in fewer.members().iter().zip(l.members()) {
                prop_assert_eq!(a, b);
                prop_assert!(fewer.to_env().contains(&b.quorum_address()));
            }
            let reparsed = ServerList::parse_env(&again.to_env()).unwrap();
            prop_assert!(reparsed.same_ensemble(&l));
        }
        // zoo.cfg lines read back as the same ensemble
        let cfg = ServerList::parse_zoo_cfg(&l.to_zoo_cfg_lines().join("\n")).unwrap();
        prop_assert!(cfg.same_ensemble(&l));
    }

    #[test]
    fn arbitrary_text_never_panics_and_round_trips_when_accepted(s in "[a-z0-9:;, .\\[\\]\t\n-]{0,60}") {
        if let Ok(l) = ServerList::parse_env(&s) {
            prop_assert_eq!(l.to_env(), s);
            let ids = l.ids();
            prop_assert_eq!(ids.len(), l.len());
            prop_assert!(!ids.contains(&0));
        }
    }
}
