//! e2e on the test bed (real kube-apiserver, controller-manager, scheduler, kwok node, real
//! ZooKeeper processes, real Helm 4) with the shared bitnami fixture charts. No zkscale involved:
//! these prove the bed reproduces what the field saw, so later tests can trust it.
//!
//! Run alone with `make e2e` (brings the bed up). Serial by design: each ensemble is several JVMs.

mod support;

use support::bed::{wait_for, Bed};
use support::chart::*;

/// Acceptance 1 (control): the field report's plain `helm upgrade` 1→3 loses the data on the bed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_plain_helm_jump_1_to_3_loses_data() {
    let Some(bed) = Bed::get() else { return };
    let zk = bed
        .ensemble("e2e-control")
        .members(1)
        .znodes(200)
        .up()
        .await;
    let ns = zk.ns();
    assert_eq!(count_znodes(&bed, ns).await, 200);

    upgrade(&bed, ns, "bitnami-zookeeper-13.7.4-replicas-3");
    wait_rolled(&bed, ns, 3);
    let v = wait_healthy(&bed, ns, 3).await;
    let left = count_znodes(&bed, ns).await;
    eprintln!(
        "after plain helm upgrade 1→3: {left} of 200 znodes left; {}",
        v.summary()
    );
    assert_eq!(
        left, 0,
        "the bed did not reproduce bitnami/charts#32542: expected the two new empty members to win and \
         truncate the old one"
    );
}

/// Acceptance 2: stepping 1→2→3 by hand, waiting for every member to sync in between, keeps it all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_manual_single_steps_keep_data() {
    let Some(bed) = Bed::get() else { return };
    let zk = bed.ensemble("e2e-steps").members(1).znodes(200).up().await;
    let ns = zk.ns();

    for (n, fixture) in [
        (2, "bitnami-zookeeper-13.7.4-replicas-2"),
        (3, "bitnami-zookeeper-13.7.4-replicas-3"),
    ] {
        upgrade(&bed, ns, fixture);
        wait_rolled(&bed, ns, n);
        let v = wait_healthy(&bed, ns, n).await;
        assert!(v.leader.is_some());
        assert_eq!(
            count_znodes(&bed, ns).await,
            200,
            "znodes lost stepping to {n}"
        );
    }
}

/// Acceptance 3: a deleted pod comes back on the same claim with the same data and id, and rejoins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_deleted_pod_rejoins_with_its_data() {
    let Some(bed) = Bed::get() else { return };
    let zk = bed.ensemble("e2e-delete").members(3).znodes(50).up().await;
    let ns = zk.ns();
    let before = wait_healthy(&bed, ns, 3).await;

    let pod = format!("{STS}-1");
    let uid = bed.kubectl(&[
        "get",
        "pod",
        "-n",
        ns,
        &pod,
        "-o",
        "jsonpath={.metadata.uid}",
    ]);
    let pv = bed.kubectl(&[
        "get",
        "pvc",
        "-n",
        ns,
        &format!("data-{pod}"),
        "-o",
        "jsonpath={.spec.volumeName}",
    ]);
    bed.kubectl(&["delete", "pod", "-n", ns, &pod]);
    wait_for("pod recreated", SETTLE, || {
        let now = bed.kubectl_try(&[
            "get",
            "pod",
            "-n",
            ns,
            &pod,
            "-o",
            "jsonpath={.metadata.uid}",
        ]);
        match now {
            Ok(u) if !u.is_empty() && u != uid => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    wait_rolled(&bed, ns, 3);
    let after = wait_healthy(&bed, ns, 3).await;
    assert!(
        after.znode_count >= before.znode_count,
        "{} vs {}",
        after.summary(),
        before.summary()
    );
    let pv_after = bed.kubectl(&[
        "get",
        "pvc",
        "-n",
        ns,
        &format!("data-{pod}"),
        "-o",
        "jsonpath={.spec.volumeName}",
    ]);
    assert_eq!(pv, pv_after, "the claim kept its volume");
    let myid = std::fs::read_to_string(
        bed.runner_state
            .join("pv")
            .join(ns)
            .join(format!("data-{pod}"))
            .join("data/myid"),
    )
    .expect("myid on the claim's volume");
    assert_eq!(myid.trim(), "2", "ordinal 1 keeps server id 2");
    assert_eq!(count_znodes(&bed, ns).await, 50);
}
