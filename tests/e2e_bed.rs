//! e2e on the test bed (real kube-apiserver, controller-manager, scheduler, kwok node, real
//! ZooKeeper processes, real Helm 4) with the shared bitnami fixture charts. No zkscale involved:
//! these prove the bed reproduces what the field saw, so later tests can trust it.
//!
//! Run alone with `make e2e` (brings the bed up). Serial by design: each ensemble is several JVMs.

mod support;

use std::time::Duration;

use support::bed::{wait_for, Bed};
use support::zk_client::ZkClient;
use zkscale::zk::{observe_all_tcp, verdict, Gate, Timeouts, Verdict};

const STS: &str = "zk-zookeeper";
const SETTLE: Duration = Duration::from_secs(240);

fn sts_field(bed: &Bed, ns: &str, path: &str) -> String {
    bed.kubectl_try(&["get", "statefulset", "-n", ns, STS, "-o", &format!("jsonpath={{{path}}}")])
        .unwrap_or_default()
}

/// The StatefulSet controller has finished: `n` pods, all Ready, all on the update revision.
fn wait_rolled(bed: &Bed, ns: &str, n: usize) {
    wait_for(&format!("StatefulSet rolled out with {n} ready pods"), SETTLE, || {
        let ready = sts_field(bed, ns, ".status.readyReplicas");
        let updated = sts_field(bed, ns, ".status.updatedReplicas");
        let cur = sts_field(bed, ns, ".status.currentRevision");
        let upd = sts_field(bed, ns, ".status.updateRevision");
        let want = n.to_string();
        if ready == want && updated == want && cur == upd {
            Ok(())
        } else {
            Err(format!("ready={ready} updated={updated} current={cur} update={upd}"))
        }
    })
}

/// Observes members `0..n` directly at their pod IPs and returns the verdict for voters 1..=n.
async fn observe(bed: &Bed, ns: &str, n: usize) -> Verdict {
    let members: Vec<(u32, String)> = (0..n)
        .map(|o| {
            let ip = bed.pod_ip(ns, &format!("{STS}-{o}")).unwrap_or_else(|| "127.0.0.255".into());
            (o as u32 + 1, format!("{ip}:2181"))
        })
        .collect();
    let obs = observe_all_tcp(&members, Timeouts::default()).await;
    verdict(&Gate::new(1..=n as u32), &obs)
}

async fn wait_healthy(bed: &Bed, ns: &str, n: usize) -> Verdict {
    let start = std::time::Instant::now();
    loop {
        let v = observe(bed, ns, n).await;
        if v.healthy {
            eprintln!("[{:>5.1}s] {}", start.elapsed().as_secs_f64(), v.summary());
            return v;
        }
        assert!(start.elapsed() < SETTLE, "ensemble never healthy: {}", v.summary());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Writes `/data/n0..n{count}` through `kubectl port-forward` to pod 0.
async fn write_znodes(bed: &Bed, ns: &str, count: usize) {
    let pf = bed.port_forward(ns, &format!("{STS}-0"), 2181);
    let mut c = ZkClient::connect(&pf.addr(), Duration::from_secs(10)).await.expect("connect");
    c.ensure("/data").await.expect("create /data");
    let paths: Vec<String> = (0..count).map(|i| format!("/data/n{i}")).collect();
    c.create_many(&paths, b"payload").await.expect("create znodes");
    c.close().await.ok();
}

/// Children of `/data` through a port-forward to pod 0 (0 when `/data` itself is gone).
async fn count_znodes(bed: &Bed, ns: &str) -> usize {
    let pf = bed.port_forward(ns, &format!("{STS}-0"), 2181);
    let mut c = ZkClient::connect(&pf.addr(), Duration::from_secs(10)).await.expect("connect");
    let n = if c.exists("/data").await.expect("exists") {
        c.get_children("/data").await.expect("children").len()
    } else {
        0
    };
    c.close().await.ok();
    n
}

fn install(bed: &Bed, ns: &str, fixture: &str) {
    let chart = bed.chart(fixture, ns);
    bed.helm(&["install", "zk", chart.to_str().unwrap(), "-n", ns]);
}

fn upgrade(bed: &Bed, ns: &str, fixture: &str) {
    let chart = bed.chart(fixture, ns);
    bed.helm(&["upgrade", "zk", chart.to_str().unwrap(), "-n", ns]);
}

/// Acceptance 1 (control): the field report's plain `helm upgrade` 1→3 loses the data on the bed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_plain_helm_jump_1_to_3_loses_data() {
    let Some(bed) = Bed::get() else { return };
    let ns = bed.namespace("e2e-control");
    install(&bed, &ns.name, "bitnami-zookeeper-13.7.4-replicas-1");
    wait_rolled(&bed, &ns.name, 1);
    wait_healthy(&bed, &ns.name, 1).await;
    write_znodes(&bed, &ns.name, 200).await;
    assert_eq!(count_znodes(&bed, &ns.name).await, 200);

    upgrade(&bed, &ns.name, "bitnami-zookeeper-13.7.4-replicas-3");
    wait_rolled(&bed, &ns.name, 3);
    let v = wait_healthy(&bed, &ns.name, 3).await;
    let left = count_znodes(&bed, &ns.name).await;
    eprintln!("after plain helm upgrade 1→3: {left} of 200 znodes left; {}", v.summary());
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
    let ns = bed.namespace("e2e-steps");
    install(&bed, &ns.name, "bitnami-zookeeper-13.7.4-replicas-1");
    wait_rolled(&bed, &ns.name, 1);
    wait_healthy(&bed, &ns.name, 1).await;
    write_znodes(&bed, &ns.name, 200).await;

    for (n, fixture) in [(2, "bitnami-zookeeper-13.7.4-replicas-2"), (3, "bitnami-zookeeper-13.7.4-replicas-3")] {
        upgrade(&bed, &ns.name, fixture);
        wait_rolled(&bed, &ns.name, n);
        let v = wait_healthy(&bed, &ns.name, n).await;
        assert_eq!(v.leader.is_some(), true);
        assert_eq!(count_znodes(&bed, &ns.name).await, 200, "znodes lost stepping to {n}");
    }
}

/// Acceptance 3: a deleted pod comes back on the same claim with the same data and id, and rejoins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_deleted_pod_rejoins_with_its_data() {
    let Some(bed) = Bed::get() else { return };
    let ns = bed.namespace("e2e-delete");
    install(&bed, &ns.name, "bitnami-zookeeper-13.7.4-replicas-3");
    wait_rolled(&bed, &ns.name, 3);
    wait_healthy(&bed, &ns.name, 3).await;
    write_znodes(&bed, &ns.name, 50).await;
    let before = wait_healthy(&bed, &ns.name, 3).await;

    let pod = format!("{STS}-1");
    let uid = bed.kubectl(&["get", "pod", "-n", &ns.name, &pod, "-o", "jsonpath={.metadata.uid}"]);
    let pv = bed.kubectl(&["get", "pvc", "-n", &ns.name, &format!("data-{pod}"), "-o", "jsonpath={.spec.volumeName}"]);
    bed.kubectl(&["delete", "pod", "-n", &ns.name, &pod]);
    wait_for("pod recreated", SETTLE, || {
        let now = bed.kubectl_try(&["get", "pod", "-n", &ns.name, &pod, "-o", "jsonpath={.metadata.uid}"]);
        match now {
            Ok(u) if !u.is_empty() && u != uid => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    wait_rolled(&bed, &ns.name, 3);
    let after = wait_healthy(&bed, &ns.name, 3).await;
    assert!(after.znode_count >= before.znode_count, "{} vs {}", after.summary(), before.summary());
    let pv_after =
        bed.kubectl(&["get", "pvc", "-n", &ns.name, &format!("data-{pod}"), "-o", "jsonpath={.spec.volumeName}"]);
    assert_eq!(pv, pv_after, "the claim kept its volume");
    let myid = std::fs::read_to_string(
        bed.runner_state.join("pv").join(&ns.name).join(format!("data-{pod}")).join("data/myid"),
    )
    .expect("myid on the claim's volume");
    assert_eq!(myid.trim(), "2", "ordinal 1 keeps server id 2");
    assert_eq!(count_znodes(&bed, &ns.name).await, 50);
}
