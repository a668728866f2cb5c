//! `kubectl zkscale rebuild` on the test bed (real control plane, real ZooKeeper 3.9.3, a
//! client writing throughout): a member recreated on a new, empty claim with its own server id
//! syncs the whole tree from the leader; a follower costs no election, the leader one at most;
//! a run killed after the deletions resumes without deleting the new claim; nothing
//! acknowledged is lost and every member's own copy holds the 200 znodes.

mod support;

use std::time::{Duration, Instant};

use support::bed::Bed;
use support::chart::*;
use support::cli::{kill_at, run, zkscale};
use support::writer::{self, Writer};

fn pod(id: u32) -> String {
    format!("{STS}-{}", id - 1)
}

fn claim_uid(bed: &Bed, ns: &str, id: u32) -> String {
    bed.kubectl(&[
        "get",
        "pvc",
        "-n",
        ns,
        &format!("data-{}", pod(id)),
        "-o",
        "jsonpath={.metadata.uid}",
    ])
}

/// The leader and its epoch once the ensemble of 3 is whole.
async fn leader_and_epoch(bed: &Bed, ns: &str) -> (u32, u32) {
    let v = wait_healthy(bed, ns, 3).await;
    (
        v.leader.expect("a leader"),
        v.baseline().expect("a baseline").leader_zxid.epoch(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_rebuild_a_follower_then_the_leader() {
    let Some(bed) = Bed::get() else { return };
    let zk = bed.ensemble("rb").members(3).znodes(200).up().await;
    let ns = zk.ns();

    // Names that are not members are refused before anything changes.
    for (name, says) in [
        ("zk-zookeeper-7", "not a member"),
        ("other-0", "not a pod of StatefulSet"),
    ] {
        let out = run(zkscale(&bed, ns, &["rebuild", name]));
        assert_eq!(out.status.code(), Some(3), "{name}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(says),
            "{name}"
        );
    }

    let (leader, epoch0) = leader_and_epoch(&bed, ns).await;
    let follower = (1..=3).find(|&i| i != leader).unwrap();
    // The order: followers first, the leader last, whatever the command line's.
    let out = run(zkscale(
        &bed,
        ns,
        &["rebuild", "--dry-run", &pod(leader), &pod(follower)],
    ));
    assert_eq!(out.status.code(), Some(0));
    let order = String::from_utf8_lossy(&out.stdout);
    let (f, l) = (
        order.find(&pod(follower)).expect("the follower"),
        order.find(&pod(leader)).expect("the leader"),
    );
    assert!(f < l, "leader not last: {order}");

    let w = Writer::start(pod_addrs(&bed, ns));
    tokio::time::sleep(Duration::from_secs(1)).await;

    // A follower: a new claim, its own copy whole again, no election.
    let before = claim_uid(&bed, ns, follower);
    let t = Instant::now();
    let out = run(zkscale(&bed, ns, &["rebuild", &pod(follower)]));
    assert_eq!(out.status.code(), Some(0), "rebuild of follower {follower}");
    let follower_secs = t.elapsed().as_secs_f64();
    assert_ne!(
        claim_uid(&bed, ns, follower),
        before,
        "the claim was not replaced"
    );
    let (leader_now, epoch1) = leader_and_epoch(&bed, ns).await;
    assert_eq!(
        (leader_now, epoch1),
        (leader, epoch0),
        "an election for a follower"
    );
    assert_eq!(znodes_on_each_member(&bed, ns, 3).await, [200; 3]);

    // The leader: one election at most.
    let before = claim_uid(&bed, ns, leader);
    let t = Instant::now();
    let out = run(zkscale(&bed, ns, &["rebuild", &pod(leader)]));
    assert_eq!(out.status.code(), Some(0), "rebuild of leader {leader}");
    let leader_secs = t.elapsed().as_secs_f64();
    assert_ne!(
        claim_uid(&bed, ns, leader),
        before,
        "the claim was not replaced"
    );
    let (_, epoch2) = leader_and_epoch(&bed, ns).await;
    assert!(epoch2 <= epoch1 + 1, "{} elections", epoch2 - epoch1);
    assert_eq!(znodes_on_each_member(&bed, ns, 3).await, [200; 3]);

    // Killed after the deletions: the same command again goes on with the waits and leaves
    // the new claim alone.
    let other = (1..=3).find(|&i| i != follower && i != leader).unwrap();
    let before = claim_uid(&bed, ns, other);
    // Killed once its claim has been replaced (after the deletions).
    kill_at(
        zkscale(&bed, ns, &["rebuild", &pod(other), "-o", "json"]),
        |e| {
            e["event"] == "gate"
                && e["name"]
                    .as_str()
                    .unwrap_or("")
                    .contains("new, empty claim")
        },
    );
    // The dead run's lease would expire in 30 s; e2e_engine covers that wait.
    let _ = bed.kubectl_try(&["delete", "lease", "-n", ns, &format!("{STS}-zkscale")]);
    let replaced = claim_uid(&bed, ns, other);
    assert_ne!(replaced, before);
    let out = run(zkscale(&bed, ns, &["rebuild", &pod(other)]));
    assert_eq!(out.status.code(), Some(0), "the resumed rebuild");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("deleted by an earlier run"),
        "the re-run did not resume"
    );
    assert_eq!(
        claim_uid(&bed, ns, other),
        replaced,
        "the new claim deleted again"
    );
    assert_eq!(znodes_on_each_member(&bed, ns, 3).await, [200; 3]);

    let report = w.stop();
    let addr = member_addrs(&bed, ns, 3).remove(0);
    let lost = writer::lost(&addr, &report).await;
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    eprintln!(
        "rebuild: follower {follower} {follower_secs:.1}s (no election), leader {leader} {leader_secs:.1}s \
         (epoch +{}); {} acknowledged writes, longest gap {:.1}s, lost 0",
        epoch2 - epoch1,
        report.acked.len(),
        report.longest_gap.as_secs_f64()
    );
}
