//! e2e: a preview's output applied as it is, the way GitOps tools and rendered-manifest
//! pipelines use a chart (`helm template … --post-renderer zkscale | kubectl apply
//! --server-side -f -`). Whatever zkscale prints must move a live ensemble by no step: the
//! preview keeps the live size and server list, notes the pending change in an annotation, and
//! every member keeps its data through later pod deletions (drains, evictions).
//!
//! Real Helm 4.1.4 with the `zkscale` plugin, real kubectl 1.33 server-side apply, the real
//! control plane of the bed and real ZooKeeper 3.9.3, the shared bitnami fixture charts.

mod support;

use std::time::Duration;

use support::bed::Bed;
use support::chart::*;
use support::helm::{text, Helm, BIN};
use support::scenario::{render, render_and_apply};

const R1: &str = "bitnami-zookeeper-13.7.4-replicas-1";
const R3: &str = "bitnami-zookeeper-13.7.4-replicas-3";
const R5: &str = "bitnami-zookeeper-13.7.4-replicas-5";
const BUMP: &str = "bitnami-zookeeper-13.7.4-replicas-3-image-bump";

/// The applied StatefulSet settles and keeps `n` pods: no member added, none removed.
fn still_n_pods(bed: &Bed, ns: &str, n: usize) {
    support::bed::wait_for("the controller saw the applied spec", SETTLE, || {
        let generation = sts_field(bed, ns, ".metadata.generation");
        let observed = sts_field(bed, ns, ".status.observedGeneration");
        if generation == observed {
            Ok(())
        } else {
            Err(format!("{observed} of {generation}"))
        }
    });
    // Give the controller time to act on it, as the reproduction did (pods 1 and 2
    // were up within seconds there).
    std::thread::sleep(Duration::from_secs(8));
    let pods = bed.kubectl(&["get", "pods", "-n", ns, "-o", "name"]);
    assert_eq!(
        pods.lines().count(),
        n,
        "applying the preview changed the size: {pods}"
    );
    assert_eq!(sts_field(bed, ns, ".spec.replicas"), n.to_string());
    assert_eq!(sts_field(bed, ns, ".spec.updateStrategy.type"), "OnDelete");
}

fn pending(bed: &Bed, ns: &str) -> String {
    sts_field(bed, ns, ".metadata.annotations.zkscale\\.io/pending")
}

async fn all_members_keep(bed: &Bed, ns: &str, n: usize, znodes: usize) {
    let counts = znodes_on_each_member(bed, ns, n).await;
    eprintln!("znodes on each member: {counts:?}");
    assert_eq!(counts, vec![znodes; n], "a member lost data");
}

/// The reproduction: 1 member with 200 znodes, then the 3-member chart previewed and
/// applied. Nothing grows; every member keeps 200 through a restart of each pod. Then the
/// StatefulSet is deleted (its claim stays, as after `helm uninstall`): re-rendering at 3 is
/// refused (two empty members beside one with data), at 1 it comes back with its data.
#[tokio::test(flavor = "multi_thread")]
async fn e2e_gitops_preview_of_1_to_3_applied_loses_nothing() {
    let Some(bed) = Bed::get() else { return };
    let zk = bed.ensemble("go-a").members(1).applied(Helm::v4).up().await;
    let (ns, helm) = (zk.ns(), zk.helm());
    let sts = bed.kubectl(&["get", "statefulset", "-n", ns, STS, "-o", "yaml"]);
    assert!(sts.contains("type: OnDelete"), "{sts}");

    let rendered = render_and_apply(&bed, helm, ns, R3);
    assert!(rendered.contains("replicas: 1"), "{rendered}");
    still_n_pods(&bed, ns, 1);
    let note = pending(&bed, ns);
    assert!(
        note.contains("1 → 3 member(s)") && note.contains("1→2, 2→3"),
        "{note}"
    );
    assert!(
        helm.log_text().contains("plan: 1→2, 2→3"),
        "{}",
        helm.log_text()
    );
    delete_each_pod_in_turn(&bed, ns, 1, 1).await;
    all_members_keep(&bed, ns, 1, 200).await;

    bed.kubectl(&[
        "delete",
        "statefulset",
        "-n",
        ns,
        STS,
        "--cascade=foreground",
        "--wait=true",
    ]);
    let claims = bed.kubectl(&["get", "pvc", "-n", ns, "-o", "name"]);
    assert_eq!(claims.lines().count(), 1, "{claims}");
    let refused =
        render(&bed, helm, ns, R3).expect_err("a fresh 3 beside a claim with data rendered");
    let log = helm.log_text();
    assert!(
        log.contains("PersistentVolumeClaims left by an earlier install"),
        "{log}"
    );
    assert!(log.contains("replicaCount=1"), "{log}");
    eprintln!("refused as it should: {refused}");
    render_and_apply(&bed, helm, ns, R1);
    wait_rolled(&bed, ns, 1);
    wait_healthy(&bed, ns, 1).await;
    all_members_keep(&bed, ns, 1, 200).await;
}

/// 3 members: the 5-member chart previewed and applied changes no size; the image bump
/// previewed and applied puts the template in place without restarting anything, and pods
/// deleted one by one come back on the new image; 200 znodes on every member throughout.
#[tokio::test(flavor = "multi_thread")]
async fn e2e_gitops_previews_of_3_to_5_and_image_bump_applied() {
    let Some(bed) = Bed::get() else { return };
    let zk = bed.ensemble("go-b").members(3).applied(Helm::v4).up().await;
    let (ns, helm) = (zk.ns(), zk.helm());

    let rendered = render_and_apply(&bed, helm, ns, R5);
    assert!(rendered.contains("replicas: 3"), "{rendered}");
    still_n_pods(&bed, ns, 3);
    assert!(
        pending(&bed, ns).contains("3 → 5 member(s)"),
        "{}",
        pending(&bed, ns)
    );
    delete_each_pod_in_turn(&bed, ns, 3, 3).await;
    all_members_keep(&bed, ns, 3, 200).await;

    let uids = pod_uids(&bed, ns);
    render_and_apply(&bed, helm, ns, BUMP);
    still_n_pods(&bed, ns, 3);
    let note = pending(&bed, ns);
    assert!(
        note.contains("new pod template") && note.contains("roll-out at 3"),
        "{note}"
    );
    let now = pod_uids(&bed, ns);
    assert_eq!(now, uids, "applying the template restarted a member");
    delete_each_pod_in_turn(&bed, ns, 3, 3).await;
    let images = bed.kubectl(&[
        "get",
        "pods",
        "-n",
        ns,
        "-o",
        "jsonpath={.items[*].spec.containers[0].image}",
    ]);
    assert_eq!(images.matches("3.9.3-debian-12-r9").count(), 3, "{images}");
    all_members_keep(&bed, ns, 3, 200).await;
}

/// 5 members: the 3-member chart previewed and applied removes no member; after pod deletions
/// all 5 keep their data. Then the documented way on: `kubectl zkscale --to 3`, and the same
/// render applied again declares exactly the live state (nothing pending, generation unchanged).
#[tokio::test(flavor = "multi_thread")]
async fn e2e_gitops_preview_of_5_to_3_applied_then_zkscale() {
    let Some(bed) = Bed::get() else { return };
    let zk = bed.ensemble("go-c").members(5).applied(Helm::v4).up().await;
    let (ns, helm) = (zk.ns(), zk.helm());

    let rendered = render_and_apply(&bed, helm, ns, R3);
    assert!(rendered.contains("replicas: 5"), "{rendered}");
    still_n_pods(&bed, ns, 5);
    assert!(
        pending(&bed, ns).contains("5 → 3 member(s)"),
        "{}",
        pending(&bed, ns)
    );
    delete_each_pod_in_turn(&bed, ns, 5, 5).await;
    all_members_keep(&bed, ns, 5, 200).await;

    let out = std::process::Command::new(BIN)
        .args(["-n", ns, "--to", "3"])
        .env("KUBECONFIG", &bed.kubeconfig)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl zkscale --to 3: {}",
        text(&out)
    );
    wait_healthy(&bed, ns, 3).await;
    let generation = sts_field(&bed, ns, ".metadata.generation");
    let rendered = render_and_apply(&bed, helm, ns, R3);
    assert!(rendered.contains("replicas: 3"), "{rendered}");
    assert!(!rendered.contains("zkscale.io/pending"), "{rendered}");
    assert_eq!(
        pending(&bed, ns),
        "",
        "the note outlived the change it named"
    );
    assert_eq!(sts_field(&bed, ns, ".metadata.generation"), generation);
    all_members_keep(&bed, ns, 3, 200).await;
}
