//! A follower that real ZooKeeper 3.9.3 leaves with another tree than its leader, and what
//! zkscale's gate makes of it (`zkscale::zk::Divergence`), on loopback JVMs (no cluster).
//!
//! The sequence is ZOOKEEPER-4925's (3.9.3 only; fixed in 3.9.4): a follower that syncs by DIFF
//! applies the transactions of its synchronisation phase without adding them to its in-memory
//! committed log, so that log has a hole; once it leads, a stale member that syncs from it by
//! DIFF misses the transactions in the hole, for good, at the same zxid as everyone else. With
//! five members (as the upstream test): F2 stopped, 10 writes; F1 stopped, 10 writes; F1 back
//! (its DIFF is the second 10); the leader stopped, F2 back: F1 leads, F2 syncs from it.
//!
//! This is how `faults_new_member_killed_while_joining` once ended ("member 3 has 8974 znodes,
//! leader 2 has 8975", never healthy again): a member that had synced while writes went on,
//! leading after the step's last restart, and a member killed while joining (so stale, not
//! empty) syncing from it. Run with `--ignored --nocapture`.

mod support;

use std::time::Duration;

use support::zk_ensemble::{skip_real_zk, Ensemble, ZkVersion};
use zkscale::zk::{self, Divergence, Finding, Gate, Probe};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "five JVMs: run by hand (zk-4925 research)"]
async fn zk_393_stale_diff_sync_diverges_and_the_gate_names_the_member() {
    if skip_real_zk() {
        return;
    }
    let mut e = Ensemble::new(ZkVersion::V3_9);
    e.start_all(5);
    let all = Gate::new(1..=5);
    let v = e.assert_healthy(&all, Duration::from_secs(90)).await;
    let leader = v.leader.expect("a leader");
    let mut followers: Vec<u32> = (1..=5).filter(|&id| id != leader).collect();
    followers.sort_unstable_by(|a, b| b.cmp(a));
    let (f1, f2) = (followers[0], followers[1]);
    let c = e.client(leader, Duration::from_secs(20)).await;
    e.stop(f2);
    for i in 0..10 {
        c.create(&format!("/foo{i}"), b"x").await.expect("create");
    }
    e.stop(f1);
    for i in 0..10 {
        c.create(&format!("/bar{i}"), b"x").await.expect("create");
    }
    e.start(f1, &[1, 2, 3, 4, 5]);
    let without_f2: Vec<u32> = (1..=5).filter(|&id| id != f2).collect();
    e.assert_healthy(
        &Gate::new(without_f2).with_config_size(5),
        Duration::from_secs(90),
    )
    .await;
    drop(c);
    e.stop(leader);
    e.start(f2, &[1, 2, 3, 4, 5]);
    let rest: Vec<u32> = (1..=5).filter(|&id| id != leader).collect();
    let quiet_gate = Gate::new(rest.clone()).with_config_size(5);
    // Quiet (nobody writes): every member at the same zxid.
    let v = e.wait_healthy(&quiet_gate, Duration::from_secs(90)).await;
    println!(
        "after F2 ({f2}) synced from the new leader: {}",
        v.summary()
    );
    // A few writes, so that ZooKeeper's own digest check runs on every member.
    let new_leader = e
        .observe_ids(&rest)
        .await
        .iter()
        .find_map(|o| match &o.probe {
            Probe::Serving { srvr, .. } if srvr.mode == zk::Mode::Leader => Some(o.id),
            _ => None,
        })
        .expect("a leader among the rest");
    let c = e.client(new_leader, Duration::from_secs(20)).await;
    let mut d = Divergence::new();
    let mut finding = Finding::Clear;
    for round in 0..6 {
        c.create(&format!("/after{round}"), b"x")
            .await
            .expect("create");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let obs = e.observe_ids(&rest).await;
        for o in &obs {
            if let Probe::Serving { srvr, mntr } = &o.probe {
                println!(
                    "  look {round}: server {} {} zxid {} znodes {} digest mismatches {:?}",
                    o.id,
                    srvr.mode,
                    srvr.zxid,
                    srvr.node_count,
                    zk::divergence::digest_mismatches(mntr)
                );
            }
        }
        finding = d.look(Some(new_leader), &obs, None);
        println!("  finding: {finding:?}");
        if matches!(finding, Finding::Diverged(_)) {
            break;
        }
    }
    let missing = {
        let c2 = e.client(f2, Duration::from_secs(20)).await;
        let mut missing = Vec::new();
        for i in 0..10 {
            for p in [format!("/foo{i}"), format!("/bar{i}")] {
                if !c2.exists(&p).await.unwrap_or(false) {
                    missing.push(p);
                }
            }
        }
        missing
    };
    println!("F1 {f1} led after the old leader {leader}; F2 {f2} misses {missing:?}");
    if missing.is_empty() {
        // ZooKeeper synced it whole (a later release, or the hole not reached): nothing to
        // find, and the gate must not find anything.
        assert!(!matches!(finding, Finding::Diverged(_)), "{finding:?}");
    } else {
        let Finding::Diverged(x) = finding else {
            panic!("F2 misses {missing:?}, the gate did not confirm it: {finding:?}")
        };
        assert_eq!(x.id, f2, "{x:?}");
        if std::env::var_os("ZKSCALE_EVIDENCE").is_some() {
            let keep = std::path::PathBuf::from(std::env::var_os("ZKSCALE_EVIDENCE").unwrap())
                .join(format!("zk4925-{}", std::process::id()));
            let _ = std::process::Command::new("cp")
                .arg("-a")
                .arg(e.dir())
                .arg(&keep)
                .status();
            println!("data kept in {}", keep.display());
        }
    }
}
