//! What makes a StatefulSet a ZooKeeper ensemble for zkscale is what its pods run (a container
//! with `ZOO_SERVERS`), never a label or name that a chart value can set. Property: starting
//! from real chart output, no renaming of what `nameOverride`, `fullnameOverride`, an alias,
//! `commonLabels`, `podLabels`, `commonAnnotations`, `image.*`, the container list (sidecars)
//! or the namespace can change changes whether it is recognised, what list it is read with, or
//! that a preview of a jump declares the live size (never the jump).

use proptest::prelude::*;
use serde_yaml::{Mapping, Value};

mod support;

use support::fixtures::own_fixtures_dir;
use zkscale::manifest::{rewrite, Declared, LiveState, Stream};

/// The StatefulSet document of a real render (`nameOverride=coord`, 3 replicas).
fn real_statefulset() -> Value {
    let path = own_fixtures_dir().join("bitnami-zookeeper/13.8.8-name-coord-replicas-3.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    text.split("\n---")
        .find(|d| d.contains("kind: StatefulSet"))
        .map(|d| serde_yaml::from_str(d).unwrap())
        .expect("a StatefulSet in the fixture")
}

fn dns_label() -> impl Strategy<Value = String> {
    "[a-z]([a-z0-9-]{0,20}[a-z0-9])?"
}

fn label_map() -> impl Strategy<Value = Vec<(String, String)>> {
    let key = prop_oneof![
        Just("app.kubernetes.io/name".to_string()),
        Just("app.kubernetes.io/instance".to_string()),
        Just("app.kubernetes.io/component".to_string()),
        Just("helm.sh/chart".to_string()),
        Just("role".to_string()),
        "[a-z]{1,8}(\\.[a-z]{1,8})?/[a-z]{1,10}",
    ];
    let value = prop_oneof![
        Just("zookeeper".to_string()),
        Just("zookeeper-13.8.8".to_string()),
        "[a-z0-9]([a-z0-9.-]{0,15}[a-z0-9])?",
    ];
    proptest::collection::vec((key, value), 0..6)
}

fn mapping(pairs: &[(String, String)]) -> Value {
    let mut m = Mapping::new();
    for (k, v) in pairs {
        m.insert(k.clone().into(), v.clone().into());
    }
    Value::Mapping(m)
}

/// Everything a chart value can rename, renamed.
#[derive(Debug, Clone)]
struct Renaming {
    name: String,
    namespace: String,
    labels: Vec<(String, String)>,
    annotations: Vec<(String, String)>,
    selector: Vec<(String, String)>,
    pod_labels: Vec<(String, String)>,
    service_name: String,
    container: String,
    image: String,
    sidecar_first: bool,
    sidecar_after: bool,
}

fn renaming() -> impl Strategy<Value = Renaming> {
    (
        (dns_label(), dns_label(), label_map(), label_map()),
        (label_map(), label_map(), dns_label(), dns_label()),
        (
            "[a-z0-9.:-]{1,20}/[a-z0-9/-]{1,20}:[a-z0-9.-]{1,12}",
            any::<bool>(),
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                (name, namespace, labels, annotations),
                (selector, pod_labels, service_name, container),
                (image, sidecar_first, sidecar_after),
            )| Renaming {
                name,
                namespace,
                labels,
                annotations,
                selector,
                pod_labels,
                service_name,
                container,
                image,
                sidecar_first,
                sidecar_after,
            },
        )
}

fn apply(r: &Renaming) -> Value {
    let mut sts = real_statefulset();
    sts["metadata"]["name"] = r.name.clone().into();
    sts["metadata"]["namespace"] = r.namespace.clone().into();
    sts["metadata"]["labels"] = mapping(&r.labels);
    sts["metadata"]["annotations"] = mapping(&r.annotations);
    sts["spec"]["selector"]["matchLabels"] = mapping(&r.selector);
    sts["spec"]["template"]["metadata"]["labels"] = mapping(&r.pod_labels);
    sts["spec"]["serviceName"] = r.service_name.clone().into();
    let containers = sts["spec"]["template"]["spec"]["containers"]
        .as_sequence_mut()
        .unwrap();
    containers[0]["name"] = r.container.clone().into();
    containers[0]["image"] = r.image.clone().into();
    // A sidecar (metrics, log shipper) without ZOO_SERVERS, before or after ZooKeeper's.
    let sidecar: Value = serde_yaml::from_str(
        "{name: sidecar, image: example/sidecar:1, env: [{name: ZOO_PORT, value: '2181'}]}",
    )
    .unwrap();
    if r.sidecar_first {
        containers.insert(0, sidecar.clone());
    }
    if r.sidecar_after {
        containers.push(sidecar);
    }
    sts
}

/// As JSON (YAML too): every string quoted, so no plain `no` reads as a boolean.
fn stream_of(sts: &Value) -> String {
    format!("---\n{}\n", serde_json::to_string_pretty(sts).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn no_chart_name_changes_recognition(r in renaming()) {
        let original_text = stream_of(&real_statefulset());
        let original = Stream::parse(original_text.as_bytes()).unwrap();
        let want = original.zookeepers()[0].servers.clone();

        let text = stream_of(&apply(&r));
        let stream = Stream::parse(text.as_bytes()).unwrap();
        let zks = stream.zookeepers();
        prop_assert_eq!(zks.len(), 1, "not recognised after {:?}", r);
        prop_assert_eq!(&zks[0].servers, &want);
        prop_assert_eq!(&zks[0].name, &r.name);

        // The same from the cluster's side (what discovery and `status` use).
        let live: k8s_openapi::api::apps::v1::StatefulSet =
            serde_yaml::from_str(&text).unwrap();
        let z = zkscale::manifest::recognise_live(&live).unwrap();
        prop_assert!(z.is_some(), "live StatefulSet not recognised after {:?}", r);

        // A preview against a 1-member live ensemble declares 1 member, never the chart's 3.
        let one = want.members()[0].clone();
        let env = zkscale::model::ServerList::from_members(vec![one]).unwrap().to_env();
        let mut live = LiveState::default();
        live.ensembles.insert(r.name.clone(), Declared::live(1, env.clone()));
        let out = rewrite(&stream, Some(&live)).unwrap();
        let after = Stream::parse(&out.output).unwrap();
        let z = &after.zookeepers()[0];
        prop_assert_eq!(z.replicas, Some(1));
        prop_assert_eq!(&z.servers_env, &env);
    }

    /// The converse: without `ZOO_SERVERS`, no label makes a StatefulSet ours (the chart label
    /// only explains why one that lost it is refused).
    #[test]
    fn labels_alone_never_make_one(r in renaming()) {
        let mut sts = apply(&r);
        let has_chart_label = r
            .labels
            .iter()
            .rev()
            .find(|(k, _)| k == "helm.sh/chart")
            .is_some_and(|(_, v)| v.starts_with("zookeeper-"));
        for c in sts["spec"]["template"]["spec"]["containers"].as_sequence_mut().unwrap() {
            for e in c["env"].as_sequence_mut().into_iter().flatten() {
                if e["name"] == "ZOO_SERVERS" {
                    e["name"] = "NOT_ZOO_SERVERS".into();
                }
            }
        }
        let text = stream_of(&sts);
        let parsed = Stream::parse(text.as_bytes());
        if has_chart_label {
            prop_assert!(parsed.is_err());
        } else {
            prop_assert!(parsed.unwrap().zookeepers().is_empty());
        }
    }
}
