//! e2e: a ZooKeeper is recognised by what it runs, not by its name (issue: with `nameOverride`,
//! `helm upgrade --post-renderer zkscale` passed a 1→3 jump through and 200 of 200 znodes were
//! lost). Real chart output rendered with `nameOverride=coord`, and as a subchart under the
//! alias `coordination` (`tests/fixtures`), on the bed, 200 znodes and a client writing.

mod support;

use std::time::{Duration, Instant};

use support::bed::Bed;
use support::chart::*;
use support::cli::{run, zkscale};
use support::guard::Guard;
use support::helm::{text, Helm};
use support::writer::{self, Writer};

const NAMED_R1: &str = "bitnami-zookeeper-13.8.8-name-coord-replicas-1";
const NAMED_R3: &str = "bitnami-zookeeper-13.8.8-name-coord-replicas-3";
const ALIAS_R1: &str = "umbrella-13.8.8-alias-coordination-replicas-1";
const ALIAS_R3: &str = "umbrella-13.8.8-alias-coordination-replicas-3";

/// `helm upgrade --post-renderer zkscale` from 1 member to the 3-member chart with a writer:
/// every acknowledged write kept, 200 znodes on every member.
async fn post_render_1_to_3(bed: &Bed, ns: &str, helm: &Helm, r3: &str) {
    let w = Writer::start(pod_addrs(bed, ns));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let start = Instant::now();
    let out = helm.with_chart("upgrade", &bed.chart(r3, ns), ns, &[]);
    let took = start.elapsed();
    assert!(out.status.success(), "helm upgrade: {}", text(&out));
    wait_healthy(bed, ns, 3).await;
    let report = w.stop();
    let lost = writer::lost(&member_addrs(bed, ns, 3)[0], &report).await;
    let counts = znodes_on_each_member(bed, ns, 3).await;
    eprintln!(
        "{r3}: helm upgrade 1→3 through the post-renderer in {:.1}s; {} acknowledged writes, {} lost, longest gap {:.1}s; znodes per member {counts:?}",
        took.as_secs_f64(),
        report.acked.len(),
        lost.len(),
        report.longest_gap.as_secs_f64()
    );
    assert!(
        !report.acked.is_empty(),
        "the writer never got a write through"
    );
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    assert_eq!(counts, vec![200; 3]);
    let log = helm.log_text();
    assert!(
        log.contains("step 1→2") && log.contains("step 2→3"),
        "{log}"
    );
}

/// Case 1 and 2: `nameOverride`: the post-renderer's 1→3, then `status`, `plan` and `--to 5`
/// find the release with no `--statefulset`.
#[tokio::test(flavor = "multi_thread")]
async fn e2e_identity_name_override_post_render_then_to_5() {
    let Some(bed) = Bed::get() else { return };
    let zk = bed
        .ensemble("id-name")
        .fixture(NAMED_R1)
        .members(1)
        .with(Helm::v4)
        .up()
        .await;
    let ns = zk.ns();
    assert_eq!(sts(ns), "zk-coord");
    assert_eq!(
        bed.kubectl(&[
            "get",
            "sts",
            "zk-coord",
            "-n",
            ns,
            "-o",
            "jsonpath={.metadata.labels.app\\.kubernetes\\.io/name}"
        ]),
        "coord"
    );
    post_render_1_to_3(&bed, ns, zk.helm(), NAMED_R3).await;

    let out = run(zkscale(&bed, ns, &["status"]));
    assert!(out.status.success(), "status: {}", text(&out));
    assert!(text(&out).contains("zk-coord"), "{}", text(&out));
    let out = run(zkscale(&bed, ns, &["--release", "zk", "plan", "--to", "5"]));
    assert!(out.status.success(), "plan: {}", text(&out));
    assert!(
        text(&out).contains("3→4") && text(&out).contains("4→5"),
        "{}",
        text(&out)
    );

    let w = Writer::start(pod_addrs(&bed, ns));
    let out = run(zkscale(&bed, ns, &["--to", "5"]));
    assert!(out.status.success(), "--to 5: {}", text(&out));
    wait_healthy(&bed, ns, 5).await;
    let report = w.stop();
    let lost = writer::lost(&member_addrs(&bed, ns, 5)[0], &report).await;
    let counts = znodes_on_each_member(&bed, ns, 5).await;
    eprintln!(
        "nameOverride --to 5: {} acknowledged writes, {} lost; znodes per member {counts:?}",
        report.acked.len(),
        lost.len()
    );
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    assert_eq!(counts, vec![200; 5]);
}

/// Case 4: an umbrella chart with bitnami/zookeeper under an alias (which renames the chart
/// label too): the post-renderer's 1→3, and `status --release` finds it.
#[tokio::test(flavor = "multi_thread")]
async fn e2e_identity_aliased_subchart_post_render() {
    let Some(bed) = Bed::get() else { return };
    let zk = bed
        .ensemble("id-alias")
        .fixture(ALIAS_R1)
        .members(1)
        .with(Helm::v4)
        .up()
        .await;
    let ns = zk.ns();
    assert_eq!(sts(ns), "zk-coordination");
    post_render_1_to_3(&bed, ns, zk.helm(), ALIAS_R3).await;
    let out = run(zkscale(&bed, ns, &["--release", "zk", "status"]));
    assert!(out.status.success(), "status: {}", text(&out));
    assert!(text(&out).contains("zk-coordination"), "{}", text(&out));
}

/// Case 3 and 4: with the guard installed, a plain `helm upgrade` jump and `kubectl scale` of a
/// renamed release and of an aliased subchart are refused, and nothing changes.
#[tokio::test(flavor = "multi_thread")]
async fn e2e_identity_guard_refuses_renamed_and_aliased() {
    let Some(bed) = Bed::get() else { return };
    for (prefix, r1, r3) in [("id-gn", NAMED_R1, NAMED_R3), ("id-ga", ALIAS_R1, ALIAS_R3)] {
        let zk = bed
            .ensemble(prefix)
            .fixture(r1)
            .members(1)
            .znodes(200)
            .up()
            .await;
        let ns = zk.ns();
        let name = sts(ns);
        let guard = Guard::install(&bed, ns, "Deny");
        guard.wait_refusing_scale(&name, 3);
        let chart = bed.chart(r3, ns);
        let e = bed
            .helm_try(&["upgrade", "zk", chart.to_str().unwrap(), "-n", ns])
            .expect_err("plain helm upgrade 1→3 went through the guard");
        assert!(e.contains("zkscale guard"), "{r3}: not the guard: {e}");
        let e = bed
            .kubectl_try(&["scale", "sts", &name, "-n", ns, "--replicas=3"])
            .expect_err("kubectl scale went through the guard");
        assert!(e.contains("zkscale guard"), "{name}: not the guard: {e}");
        assert_eq!(sts_field(&bed, ns, ".spec.replicas"), "1");
        assert_eq!(znodes_on_each_member(&bed, ns, 1).await, vec![200]);
        // Another StatefulSet in the same namespace scales freely: the scale policy acts only
        // on the one whose parameter runs ZooKeeper.
        bed.kubectl_stdin(
            &["apply", "-n", ns, "-f", "-"],
            br#"{"apiVersion":"apps/v1","kind":"StatefulSet","metadata":{"name":"other"},
               "spec":{"replicas":0,"serviceName":"other","selector":{"matchLabels":{"app":"other"}},
               "template":{"metadata":{"labels":{"app":"other"}},
               "spec":{"containers":[{"name":"c","image":"example/other:1"}]}}}}"#,
        )
        .unwrap();
        bed.kubectl(&["scale", "sts", "other", "-n", ns, "--replicas=0"]);
        bed.kubectl(&["scale", "sts", "other", "-n", ns, "--replicas=2"]);
        bed.kubectl(&["scale", "sts", "other", "-n", ns, "--replicas=0"]);
        eprintln!("{prefix}: guard refused the plain jump and kubectl scale of {name}");
    }
}
