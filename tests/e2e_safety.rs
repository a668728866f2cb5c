//! Safety defects of issue 23 on the test bed (real control plane, real ZooKeeper 3.9.3):
//!
//! - persistence off (`persistence.enabled=false`: the data volume is an emptyDir, which in a
//!   cluster and now on the bed dies with its pod): a pod deleted comes back empty; 1→3 is
//!   refused with nothing changed, by `kubectl zkscale --to` and by `helm upgrade
//!   --post-renderer zkscale`; 3→5 is carried out with every znode on every member;
//! - a stale `zkscale.io/operation` annotation does not let a new pod template in on an
//!   ensemble with a member down.

mod support;

use support::bed::{wait_for, Bed};
use support::chart::*;
use support::cli::{run, zkscale};
use support::helm::{text, Helm};

const R1: &str = "bitnami-zookeeper-13.7.4-replicas-1";
const R3: &str = "bitnami-zookeeper-13.7.4-replicas-3";
const R5: &str = "bitnami-zookeeper-13.7.4-replicas-5";
const BUMP: &str = "bitnami-zookeeper-13.7.4-replicas-3-image-bump";

/// The fixture chart `fixture` for `ns` as the real chart renders it with
/// `persistence.enabled=false`: no `volumeClaimTemplates`, and the `data` volume (mounted at
/// `/bitnami/zookeeper`) an emptyDir among the pod's volumes (bitnami/charts
/// `zookeeper/templates/statefulset.yaml`: `{{- else if not .Values.persistence.enabled }}
/// - name: data emptyDir: {}`).
fn persistence_off(bed: &Bed, fixture: &str, ns: &str) -> std::path::PathBuf {
    let dir = bed.chart(fixture, ns);
    let manifest = dir.join("templates").join("manifest.yaml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let (head, claims) = text
        .split_once("  volumeClaimTemplates:\n")
        .expect("the fixture has volumeClaimTemplates");
    // The StatefulSet is the last document; its claim templates end the file.
    assert!(
        !claims.contains("\n---"),
        "documents after the claim templates"
    );
    let scripts = "            name: zk-zookeeper-scripts\n            defaultMode: 493\n";
    assert!(head.contains(scripts), "no scripts volume in {fixture}");
    let off = head.replace(
        scripts,
        &format!("{scripts}        - name: data\n          emptyDir: {{}}\n"),
    );
    std::fs::write(&manifest, off).unwrap();
    dir
}

fn install(bed: &Bed, chart: &std::path::Path, ns: &str) {
    bed.helm(&["install", "zk", chart.to_str().unwrap(), "-n", ns]);
}

fn pod_uid(bed: &Bed, ns: &str, pod: &str) -> String {
    bed.kubectl(&[
        "get",
        "pod",
        "-n",
        ns,
        pod,
        "-o",
        "jsonpath={.metadata.uid}",
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_persistence_off_1_to_3_refused_3_to_5_keeps_every_znode() {
    let Some(bed) = Bed::get() else { return };

    // One member, persistence off, 200 znodes.
    let ns1 = bed.namespace("ephem-1");
    let ns = ns1.name.as_str();
    install(&bed, &persistence_off(&bed, R1, ns), ns);
    wait_rolled(&bed, ns, 1);
    wait_healthy(&bed, ns, 1).await;
    assert_eq!(sts_field(&bed, ns, ".spec.volumeClaimTemplates"), "");
    write_znodes(&bed, ns, 200).await;
    assert_eq!(count_znodes(&bed, ns).await, 200);

    // 1→3: refused (exit 3), nothing changed: same size, same pod, every znode.
    let uid = pod_uid(&bed, ns, &format!("{STS}-0"));
    let out = run(zkscale(&bed, ns, &["--to", "3"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("keep no data across a restart"), "{stderr}");
    assert!(stderr.contains("1→2"), "{stderr}");
    // The post-renderer refuses the same (Helm aborts, nothing applied).
    let helm = Helm::v4(&bed);
    let out = helm.with_chart("upgrade", &persistence_off(&bed, R3, ns), ns, &[]);
    assert!(!out.status.success(), "helm upgrade 1→3: {}", text(&out));
    assert!(
        helm.log_text().contains("keep no data across a restart"),
        "{}",
        helm.log_text()
    );
    assert_eq!(sts_field(&bed, ns, ".spec.replicas"), "1");
    assert_eq!(pod_uid(&bed, ns, &format!("{STS}-0")), uid);
    assert_eq!(count_znodes(&bed, ns).await, 200);

    // The bed now behaves as a cluster: the emptyDir dies with its pod, so the member comes
    // back empty (the runner kept it under the pod's name before: 200 survived).
    bed.kubectl(&[
        "delete",
        "pod",
        "-n",
        ns,
        &format!("{STS}-0"),
        "--wait=true",
    ]);
    wait_for("pod 0 recreated", SETTLE, || {
        let now = bed
            .kubectl_try(&[
                "get",
                "pod",
                "-n",
                ns,
                &format!("{STS}-0"),
                "-o",
                "jsonpath={.metadata.uid} {.status.phase}",
            ])
            .unwrap_or_default();
        match now.split_once(' ') {
            Some((u, "Running")) if u != uid => Ok(()),
            _ => Err(now),
        }
    });
    wait_healthy(&bed, ns, 1).await;
    assert_eq!(
        count_znodes(&bed, ns).await,
        0,
        "an emptyDir outlived its pod"
    );
    drop(ns1);

    // Three members, persistence off: 3→5 restarts each member once, one at a time, each
    // resyncing from the others; nothing is lost.
    let ns3 = bed.namespace("ephem-3");
    let ns = ns3.name.as_str();
    install(&bed, &persistence_off(&bed, R3, ns), ns);
    wait_rolled(&bed, ns, 3);
    wait_healthy(&bed, ns, 3).await;
    write_znodes(&bed, ns, 200).await;
    let before = pod_uids(&bed, ns);
    let start = std::time::Instant::now();
    let out = run(zkscale(&bed, ns, &["--to", "5"]));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let took = start.elapsed();
    wait_healthy(&bed, ns, 5).await;
    let counts = znodes_on_each_member(&bed, ns, 5).await;
    eprintln!("persistence off 3→5: {took:?}, znodes per member {counts:?}");
    assert_eq!(counts, [200; 5]);
    // Every original member did restart (so each came back empty and resynced).
    let after = pod_uids(&bed, ns);
    for uid in before.split_whitespace() {
        assert!(!after.contains(uid), "pod {uid} was never restarted");
    }
    // The post-renderer agrees: the chart at 5 through it changes nothing more.
    let helm = Helm::v4(&bed);
    let out = helm.with_chart("upgrade", &persistence_off(&bed, R5, ns), ns, &[]);
    assert!(out.status.success(), "helm upgrade at 5: {}", text(&out));
    assert_eq!(znodes_on_each_member(&bed, ns, 5).await, [200; 5]);
}

/// Issue 23, defect 3: with one member down and a stale `zkscale.io/operation` annotation, a
/// new pod template through the post-renderer is refused before anything changes (main
/// 77ec877 skipped the gate when the annotation was set, wrote the template and ended saying
/// the ensemble was whole).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_stale_operation_does_not_skip_the_template_gate() {
    let Some(bed) = Bed::get() else { return };
    let zk = bed
        .ensemble("stale-op")
        .members(3)
        .znodes(200)
        .with(Helm::v4)
        .up()
        .await;
    let ns = zk.ns();
    let stale =
        r#"{"target":3,"step":"3→4","holder":"a run long gone","at":"2026-01-01T00:00:00Z"}"#;
    bed.kubectl(&[
        "annotate",
        "statefulset",
        "-n",
        ns,
        STS,
        &format!("zkscale.io/operation={stale}"),
    ]);
    // Server 2 down: its pod cannot start again.
    let down = format!("{STS}-1");
    bed.block_pod_start(ns, &down, "issue 23 defect 3: a member down");
    bed.kubectl(&["delete", "pod", "-n", ns, &down, "--wait=true"]);
    let image_before = sts_field(&bed, ns, ".spec.template.spec.containers[0].image");
    let generation = sts_field(&bed, ns, ".metadata.generation");

    let helm = zk.helm();
    let out = helm.with_chart("upgrade", &bed.chart(BUMP, ns), ns, &[]);
    let log = helm.log_text();
    bed.unblock_pod_start(ns, &down);
    assert!(
        !out.status.success(),
        "the bump went through: {}",
        text(&out)
    );
    assert!(log.contains("not healthy"), "{log}");
    assert!(!log.contains("apply the new pod template"), "{log}");
    assert_eq!(
        sts_field(&bed, ns, ".spec.template.spec.containers[0].image"),
        image_before
    );
    assert_eq!(sts_field(&bed, ns, ".metadata.generation"), generation);
    // Once the member is back, the same upgrade goes through.
    wait_healthy(&bed, ns, 3).await;
    let out = helm.with_chart("upgrade", &bed.chart(BUMP, ns), ns, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(znodes_on_each_member(&bed, ns, 3).await, [200; 3]);
}
