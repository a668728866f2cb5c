//! The manifest pipeline on every real chart output in the fixtures dir (`ZKSCALE_FIXTURES`,
//! default `<crate>/../shared/fixtures`): one ZooKeeper StatefulSet each, with the values the
//! file name says; byte-identical pass-through (also as CRLF and as Helm 4's annotated stream);
//! edits that touch only their document and keep Helm's annotation.

use std::path::{Path, PathBuf};

use jsonptr::PointerBuf;
use k8s_openapi::api::apps::v1::{RollingUpdateStatefulSetStrategy, StatefulSetUpdateStrategy};
mod support;

use support::fixtures::all_fixture_files;
use zkscale::manifest::{
    post_render, Edit, ManifestError, PostRenderOptions, Stream, FILENAME_ANNOTATION,
};

fn fixtures() -> Vec<(PathBuf, Vec<u8>)> {
    let files = all_fixture_files();
    assert!(!files.is_empty(), "no fixtures");
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

/// What the fixture's path says about it: replicas, StatefulSet name, minServerId.
struct Expected {
    replicas: Option<i32>,
    name: &'static str,
    min_id: u32,
    listen_all_ips: &'static str,
    /// The StatefulSet's template file, as `# Source:` and Helm 4's annotation name it.
    source: &'static str,
}

fn expected(path: &Path) -> Expected {
    let p = path.to_string_lossy();
    let replicas = p.split("replicas-").nth(1).and_then(|rest| {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    });
    Expected {
        replicas,
        // `nameOverride`, `fullnameOverride` and a subchart's alias rename everything.
        name: if p.contains("fullname") {
            "coord"
        } else if p.contains("name-coord") {
            "zk-coord"
        } else if p.contains("alias-coordination") {
            "zk-coordination"
        } else {
            "zk-zookeeper"
        },
        min_id: if p.contains("minid10") { 10 } else { 1 },
        listen_all_ips: if p.contains("listen-all-ips") {
            "yes"
        } else {
            "no"
        },
        source: if p.contains("umbrella") {
            "platform/charts/coordination/templates/statefulset.yaml"
        } else {
            "zookeeper/templates/statefulset.yaml"
        },
    }
}

#[test]
fn every_fixture_has_exactly_one_zookeeper_statefulset() {
    for (path, bytes) in fixtures() {
        let stream = Stream::parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let zks = stream.zookeepers();
        assert_eq!(zks.len(), 1, "{}", path.display());
        let zk = &zks[0];
        let want = expected(&path);
        let ctx = path.display();
        let replicas = zk.replicas.expect("chart writes spec.replicas");
        if let Some(n) = want.replicas {
            assert_eq!(replicas, n, "{ctx}");
        }
        assert_eq!(zk.servers.members().len(), replicas as usize, "{ctx}");
        assert_eq!(zk.name, want.name, "{ctx}");
        assert_eq!(zk.namespace.as_deref(), Some("zk-test"), "{ctx}");
        assert_eq!(zk.min_server_id, Some(want.min_id), "{ctx}");
        let ids: Vec<u32> = zk.servers.members().iter().map(|m| m.id).collect();
        let want_ids: Vec<u32> = (want.min_id..want.min_id + replicas as u32).collect();
        assert_eq!(ids, want_ids, "{ctx}");
        assert_eq!(
            zk.service_name,
            Some(format!("{}-headless", want.name)),
            "{ctx}"
        );
        assert_eq!(
            zk.pod_management_policy.as_deref(),
            Some("Parallel"),
            "{ctx}"
        );
        let strategy = zk.update_strategy.as_ref().expect("updateStrategy");
        assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"), "{ctx}");
        assert_eq!(zk.container, "zookeeper", "{ctx}");
        assert!(
            zk.image
                .as_deref()
                .is_some_and(|i| i.starts_with("docker.io/bitnami/zookeeper:")),
            "{ctx}"
        );
        assert_eq!(
            zk.listen_all_ips.as_deref(),
            Some(want.listen_all_ips),
            "{ctx}"
        );
        assert!(
            zk.pod_template.pointer("/spec/containers/0/env").is_some(),
            "{ctx}"
        );
        assert!(zk.scripts_doc_index.is_some(), "{ctx}");
        assert!(
            stream.warnings().is_empty(),
            "{ctx}: {:?}",
            stream.warnings()
        );
        let doc = &stream.documents()[zk.doc_index];
        assert_eq!(doc.kind(), Some("StatefulSet"));
        assert!(
            doc.text().contains(&format!("# Source: {}", want.source)),
            "{ctx}"
        );
    }
}

#[test]
fn every_fixture_passes_through_byte_identical() {
    for (path, bytes) in fixtures() {
        let ctx = path.display();
        let out = post_render(&bytes, &PostRenderOptions::default())
            .unwrap_or_else(|e| panic!("{ctx}: {e}"));
        assert!(out == bytes, "{ctx}: output differs from input");
        let stream = Stream::parse(&bytes).unwrap();
        let joined: Vec<u8> = stream
            .documents()
            .iter()
            .flat_map(|d| d.text().bytes())
            .collect();
        assert!(joined == bytes, "{ctx}: documents do not cover the input");

        let crlf = String::from_utf8(bytes.clone())
            .unwrap()
            .replace('\n', "\r\n")
            .into_bytes();
        assert!(
            post_render(&crlf, &PostRenderOptions::default()).unwrap() == crlf,
            "{ctx}: CRLF"
        );

        let helm4 = helm4_stream(&bytes);
        assert!(
            post_render(&helm4, &PostRenderOptions::default()).unwrap() == helm4,
            "{ctx}: Helm 4"
        );
    }
}

/// The stream as Helm 4 hands it to a post-renderer: no `# Source:` comments, no leading `---`,
/// each document annotated with the template file it came from.
fn helm4_stream(bytes: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(bytes).unwrap();
    let mut docs = Vec::new();
    for chunk in text.split("---\n").filter(|c| !c.trim().is_empty()) {
        let mut source = String::new();
        let mut doc = String::new();
        for line in chunk.lines() {
            if let Some(s) = line.strip_prefix("# Source: ") {
                source = s.to_string();
                continue;
            }
            doc.push_str(line);
            doc.push('\n');
            if line == "metadata:" {
                doc.push_str(&format!(
                    "  annotations:\n    {FILENAME_ANNOTATION}: '{source}'\n"
                ));
            }
        }
        docs.push(doc);
    }
    docs.join("---\n").into_bytes()
}

/// Edits of replicas, ZOO_SERVERS and updateStrategy for the stream's ZooKeeper StatefulSet.
fn test_edits(stream: &Stream) -> (usize, Vec<Edit>, String) {
    let zk = &stream.zookeepers()[0];
    let mut servers = zk.servers_env.trim().to_string();
    let n = zk.servers.members().len();
    let last_id = zk.servers.members().last().unwrap().id;
    servers.push_str(&format!(
        " {}-{n}.{}:2888:3888::{}",
        zk.name,
        zk.service_name.as_deref().unwrap(),
        last_id + 1
    ));
    let strategy = StatefulSetUpdateStrategy {
        type_: Some("RollingUpdate".into()),
        rolling_update: Some(RollingUpdateStatefulSetStrategy {
            partition: Some(n as i32),
            ..Default::default()
        }),
    };
    let edits = vec![
        zk.set_replicas(n as i32 + 1),
        zk.set_servers_env(servers.clone()),
        zk.set_update_strategy(&strategy),
    ];
    (zk.doc_index, edits, servers)
}

#[test]
fn edits_change_only_the_target_document() {
    for (path, bytes) in fixtures() {
        let ctx = path.display();
        let stream = Stream::parse(&bytes).unwrap();
        let (index, edits, servers) = test_edits(&stream);
        let rewritten = stream
            .apply(&edits)
            .unwrap_or_else(|e| panic!("{ctx}: {e}"));
        assert_eq!(rewritten.changed, [index], "{ctx}");

        let out = Stream::parse(&rewritten.output).unwrap_or_else(|e| panic!("{ctx}: {e}"));
        assert_eq!(out.documents().len(), stream.documents().len(), "{ctx}");
        for (before, after) in stream.documents().iter().zip(out.documents()) {
            if before.index() == index {
                assert_ne!(before.text(), after.text(), "{ctx}");
                // The `---` line and the `# Source:` comment are kept.
                let head = format!("---\n# Source: {}\n", expected(&path).source);
                assert!(after.text().starts_with(&head), "{ctx}");
            } else {
                assert_eq!(
                    before.text(),
                    after.text(),
                    "{ctx}: document {}",
                    before.index()
                );
            }
        }
        let zk = &out.zookeepers()[0];
        let old = &stream.zookeepers()[0];
        assert_eq!(zk.replicas, Some(old.replicas.unwrap() + 1), "{ctx}");
        assert_eq!(zk.servers_env, servers, "{ctx}");
        assert_eq!(zk.servers.members().len(), old.servers.members().len() + 1);
        let strategy = zk.update_strategy.as_ref().unwrap();
        let partition = strategy.rolling_update.as_ref().and_then(|r| r.partition);
        assert_eq!(partition, Some(old.servers.members().len() as i32), "{ctx}");
        // Everything not edited is the same value as before, in the same key order.
        assert_eq!(zk.image, old.image);
        assert_eq!(zk.listen_all_ips, old.listen_all_ips);
        let before = stream.documents()[index].value().unwrap();
        let after = out.documents()[index].value().unwrap();
        assert_eq!(keys(before), keys(after), "{ctx}");
        assert_eq!(
            template_without_servers(before),
            template_without_servers(after),
            "{ctx}"
        );
        assert!(out.warnings().is_empty(), "{ctx}");
        // YAML 1.1 readers (Kubernetes) must still see strings where the chart wrote strings.
        let text = after_text(&out, index);
        assert!(
            text.contains("value: \"no\"") || text.contains("value: \"yes\""),
            "{ctx}"
        );
        assert!(
            !text.contains(": no\n") && !text.contains(": yes\n"),
            "{ctx}"
        );
    }
}

/// `spec.template` with the ZOO_SERVERS value blanked, for comparing the rest of it.
fn template_without_servers(v: &serde_yaml::Value) -> serde_yaml::Value {
    let mut t = v["spec"]["template"].clone();
    let env = t["spec"]["containers"][0]["env"].as_sequence_mut().unwrap();
    for e in env.iter_mut() {
        if e["name"] == "ZOO_SERVERS" {
            e["value"] = serde_yaml::Value::Null;
        }
    }
    t
}

fn after_text<'a>(s: &'a Stream, index: usize) -> &'a str {
    s.documents()[index].text()
}

fn keys(v: &serde_yaml::Value) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(v: &serde_yaml::Value, path: &str, out: &mut Vec<String>) {
        match v {
            serde_yaml::Value::Mapping(m) => {
                for (k, v) in m {
                    let p = format!("{path}/{}", k.as_str().unwrap_or("?"));
                    out.push(p.clone());
                    walk(v, &p, out);
                }
            }
            serde_yaml::Value::Sequence(s) => {
                for (i, v) in s.iter().enumerate() {
                    walk(v, &format!("{path}/{i}"), out);
                }
            }
            _ => {}
        }
    }
    walk(v, "", &mut out);
    out.retain(|k| !k.contains("/updateStrategy"));
    out
}

#[test]
fn edits_keep_helm4_annotation() {
    for (path, bytes) in fixtures() {
        let ctx = path.display();
        let helm4 = helm4_stream(&bytes);
        let stream = Stream::parse(&helm4).unwrap_or_else(|e| panic!("{ctx}: {e}"));
        let zk = &stream.zookeepers()[0];
        let source = expected(&path).source;
        assert_eq!(zk.postrender_filename.as_deref(), Some(source), "{ctx}");
        let (index, edits, _) = test_edits(&stream);
        let rewritten = stream
            .apply(&edits)
            .unwrap_or_else(|e| panic!("{ctx}: {e}"));
        let out = Stream::parse(&rewritten.output).unwrap();
        assert_eq!(
            out.zookeepers()[0].postrender_filename.as_deref(),
            Some(source),
            "{ctx}"
        );
        assert_eq!(out.documents()[index].postrender_filename(), Some(source));
        for (before, after) in stream.documents().iter().zip(out.documents()) {
            if before.index() != index {
                assert_eq!(before.text(), after.text(), "{ctx}");
            }
        }
        // Helm 4 would file a document without its annotation under a made-up name: refused.
        let mut annotations = PointerBuf::parse("/metadata/annotations").unwrap();
        annotations.push_back(FILENAME_ANNOTATION);
        let err = stream
            .apply(&[Edit::remove(index, annotations)])
            .unwrap_err();
        assert!(
            matches!(err, ManifestError::AnnotationChanged { .. }),
            "{ctx}: {err}"
        );
    }
}

#[test]
fn edits_that_change_nothing_keep_the_bytes() {
    for (path, bytes) in fixtures() {
        let stream = Stream::parse(&bytes).unwrap();
        let zk = &stream.zookeepers()[0];
        let same = [
            zk.set_replicas(zk.replicas.unwrap()),
            zk.set_servers_env(zk.servers_env.clone()),
        ];
        let rewritten = stream.apply(&same).unwrap();
        assert!(rewritten.changed.is_empty(), "{}", path.display());
        assert!(rewritten.output == bytes, "{}", path.display());
    }
}

/// What the post-renderer hands Helm after a real upgrade: every fixture (as `helm template`
/// text and as Helm 4's annotated stream) rewritten with a declared size and list. Only the
/// StatefulSet's document changes; it declares exactly that, `OnDelete`, and keeps Helm 4's
/// annotation; a second rewrite changes nothing (Helm's apply then finds nothing to do).
#[test]
fn declared_state_rewrites_only_the_statefulset() {
    use zkscale::manifest::{rewrite, Declared, LiveState, PENDING_ANNOTATION};
    for (path, bytes) in fixtures() {
        for (form, input) in [("text", bytes.clone()), ("helm4", helm4_stream(&bytes))] {
            let ctx = format!("{} ({form})", path.display());
            let stream = Stream::parse(&input).unwrap();
            let zk = &stream.zookeepers()[0];
            let first = zk.servers.members().first().unwrap();
            let declared = Declared {
                replicas: 1,
                servers_env: format!("{}:2888:3888::{}", first.host, first.id),
                pending: Some("1 → 3 member(s): yes, no, 0644 and `quotes: \"x\"`".into()),
            };
            let live = LiveState {
                ensembles: [(zk.name.clone(), declared.clone())].into(),
            };
            let r = rewrite(&stream, Some(&live)).unwrap_or_else(|e| panic!("{ctx}: {e}"));
            assert_eq!(r.changed, [zk.doc_index], "{ctx}");
            let out = Stream::parse(&r.output).unwrap();
            for (before, after) in stream.documents().iter().zip(out.documents()) {
                if before.index() != zk.doc_index {
                    assert_eq!(before.text(), after.text(), "{ctx}");
                }
            }
            let z = &out.zookeepers()[0];
            assert_eq!(z.replicas, Some(1), "{ctx}");
            assert_eq!(z.servers_env, declared.servers_env, "{ctx}");
            let strategy = z.update_strategy.as_ref().unwrap();
            assert_eq!(strategy.type_.as_deref(), Some("OnDelete"), "{ctx}");
            assert_eq!(z.postrender_filename, zk.postrender_filename, "{ctx}");
            assert_eq!(z.image, zk.image, "{ctx}");
            // The pending note reads back as the same string (YAML 1.1 words quoted).
            let annotations =
                &out.documents()[zk.doc_index].value().unwrap()["metadata"]["annotations"];
            assert_eq!(
                annotations[PENDING_ANNOTATION].as_str(),
                declared.pending.as_deref(),
                "{ctx}"
            );
            assert_eq!(
                rewrite(&out, Some(&live)).unwrap().output,
                r.output,
                "{ctx}"
            );
        }
    }
}
