//! The ZooKeeper adapter (`zkscale::zk`) against real ZooKeeper 3.9 and 3.8 ensembles on loopback.
//!
//! Needs the jars from `tests/bed/install.sh zookeeper zookeeper-debian`; fails without them
//! unless `ZKSCALE_SKIP_REAL_ZK=1`. Run with `--nocapture` to see what members report at each
//! moment of a step.

mod support;

use std::time::{Duration, Instant};

use support::zk_ensemble::{describe, mode_of, skip_real_zk, Ensemble, ZkVersion};
use zkscale::zk::{
    self, Baseline, Failure, FourLetter, Gate, MemberObservation, Mode, Probe, ServerId, Verdict,
};

const SETTLE: Duration = Duration::from_secs(40);

fn gate(ids: impl IntoIterator<Item = ServerId>) -> Gate {
    Gate::new(ids)
}

fn has(v: &Verdict, pred: impl Fn(&Failure) -> bool) -> bool {
    v.failures.iter().any(pred)
}

fn show(label: &str, e: &Ensemble, obs: &[MemberObservation], v: &Verdict) {
    println!(
        "[zk{} {label}]\n{}\n  verdict: {v}",
        e.version().label(),
        describe(obs)
    );
}

async fn observe_and_judge(
    e: &Ensemble,
    ids: &[ServerId],
    g: &Gate,
    label: &str,
) -> (Vec<MemberObservation>, Verdict) {
    let obs = e.observe_ids(ids).await;
    let v = zk::verdict(g, &obs);
    show(label, e, &obs, &v);
    (obs, v)
}

fn serving(obs: &[MemberObservation], id: ServerId) -> bool {
    obs.iter()
        .any(|o| o.id == id && matches!(o.probe, Probe::Serving { .. }))
}

/// Znode count through a client on every listed member.
async fn counts(e: &Ensemble, ids: &[ServerId], parent: &str) -> Vec<usize> {
    let mut out = Vec::new();
    for &id in ids {
        out.push(e.count_znodes(id, parent).await.unwrap());
    }
    out
}

// ---------------------------------------------------------------------------------------------

async fn standalone(version: ZkVersion) {
    let t0 = Instant::now();
    let mut e = Ensemble::new(version);
    e.start_all(1);
    let v = e.assert_healthy(&gate([1]), SETTLE).await;
    assert_eq!(v.leader, Some(1));
    assert_eq!(
        v.znode_count,
        Some(5),
        "fresh tree: /, /zookeeper, /zookeeper/{{config,quota}}, …"
    );
    let ruok = zk::query_addr(
        e.client_addr(1),
        FourLetter::Ruok,
        Duration::from_secs(2),
        Duration::from_secs(2),
    );
    assert!(zk::parse_ruok(&ruok.await.unwrap()));

    e.write_znodes(1, "/data", 10).await.unwrap();
    let v = e
        .assert_healthy(&gate([1]).with_baseline(v.baseline().unwrap()), SETTLE)
        .await;
    assert_eq!(v.znode_count, Some(5 + 1 + 10));
    assert!(
        v.summary()
            .starts_with("healthy: standalone member 1 at zxid 0x"),
        "{v}"
    );
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(json["members"][0]["state"], "standalone");

    // Judged as a member of a 3-voter ensemble, a standalone server is wrong.
    let (_, v3) =
        observe_and_judge(&e, &[1, 2, 3], &gate([1, 2, 3]), "standalone judged as 3").await;
    assert!(!v3.healthy);
    assert!(
        has(&v3, |f| matches!(
            f,
            Failure::NotVoting {
                id: 1,
                mode: Mode::Standalone
            }
        )),
        "{v3}"
    );
    assert!(
        has(&v3, |f| matches!(f, Failure::Unreachable { id: 2, .. })),
        "{v3}"
    );
    assert!(has(&v3, |f| matches!(f, Failure::NoLeader)), "{v3}");
    println!("standalone {}: {:?}", version.label(), t0.elapsed());
}

/// One real-ZooKeeper test per scenario and version (skipped with `ZKSCALE_SKIP_REAL_ZK=1`).
macro_rules! real_zk_tests {
    ($($test:ident: $scenario:expr;)+) => {$(
        #[tokio::test]
        async fn $test() {
            if skip_real_zk() {
                return;
            }
            $scenario.await;
        }
    )+};
}

real_zk_tests! {
    standalone_39: standalone(ZkVersion::V3_9);
    standalone_38: standalone(ZkVersion::V3_8);
    forming_39: forming(ZkVersion::V3_9);
    forming_38: forming(ZkVersion::V3_8);
    healthy_3_and_follower_down_39: healthy_then_follower_down(ZkVersion::V3_9, 3);
    healthy_3_and_follower_down_38: healthy_then_follower_down(ZkVersion::V3_8, 3);
    healthy_5_and_follower_down_39: healthy_then_follower_down(ZkVersion::V3_9, 5);
}

/// Members started one by one: no quorum, then a quorum short of one, then healthy.
async fn forming(version: ZkVersion) {
    let t0 = Instant::now();
    let mut e = Ensemble::new(version);
    let all = [1, 2, 3];
    let g = gate(all);
    e.start(1, &all);
    e.wait_until("member 1 answers", SETTLE, |obs| {
        obs.iter()
            .any(|o| o.id == 1 && !matches!(o.probe, Probe::Unreachable { .. }))
    })
    .await;
    let (_, v) = observe_and_judge(&e, &all, &g, "1 of 3 started").await;
    assert!(!v.healthy);
    assert_eq!(v.leader, None);
    assert!(has(&v, |f| *f == Failure::NotServing { id: 1 }), "{v}");
    assert!(
        has(&v, |f| matches!(f, Failure::Unreachable { id: 2, .. })),
        "{v}"
    );
    assert!(
        has(&v, |f| matches!(f, Failure::Unreachable { id: 3, .. })),
        "{v}"
    );
    assert!(has(&v, |f| *f == Failure::NoLeader), "{v}");

    e.start(2, &all);
    e.wait_until("a leader among 1 and 2", SETTLE, |obs| {
        [1, 2]
            .iter()
            .any(|&id| mode_of(obs, id) == Some(Mode::Leader))
    })
    .await;
    let (_, v) = observe_and_judge(&e, &all, &g, "2 of 3 started").await;
    assert!(!v.healthy);
    assert!(v.leader.is_some(), "{v}");
    assert!(
        has(&v, |f| matches!(f, Failure::Unreachable { id: 3, .. })),
        "{v}"
    );

    e.start(3, &all);
    let v = e.assert_healthy(&g, SETTLE).await;
    println!("{v}");
    assert!(v.leader.is_some());
    println!("forming {}: {:?}", version.label(), t0.elapsed());
}

/// Healthy ensemble of `n`, with data; then a follower down (named), and back.
async fn healthy_then_follower_down(version: ZkVersion, n: ServerId) {
    let t0 = Instant::now();
    let mut e = Ensemble::new(version);
    e.start_all(n);
    let ids: Vec<ServerId> = (1..=n).collect();
    let g = gate(ids.clone());
    let v = e.assert_healthy(&g, SETTLE).await;
    let leader = v.leader.unwrap();
    e.write_znodes(leader % n + 1, "/data", 20).await.unwrap();
    e.assert_healthy(&g, SETTLE).await;
    let (obs, v) = observe_and_judge(&e, &ids, &g, &format!("healthy {n}")).await;
    assert!(v.healthy, "{v}");
    assert_eq!(v.leader, Some(leader), "no election without cause");
    let zxids: Vec<_> = obs
        .iter()
        .map(|o| match &o.probe {
            Probe::Serving { srvr, .. } => srvr.zxid,
            other => panic!("{other:?}"),
        })
        .collect();
    assert!(
        zxids.iter().all(|z| *z == zxids[0]),
        "quiet ensemble after writes: one zxid {zxids:?}"
    );
    assert_eq!(zxids[0].epoch(), 1);
    let leader_obs = v.members.iter().find(|m| m.id == leader).unwrap();
    assert_eq!(leader_obs.synced_followers, Some(n as u64 - 1));
    assert_eq!(v.znode_count, Some(5 + 1 + 20));

    let follower = leader % n + 1;
    e.kill(follower);
    let (_, v) =
        observe_and_judge(&e, &ids, &g, &format!("follower {follower} of {n} killed")).await;
    assert!(!v.healthy);
    assert!(
        has(
            &v,
            |f| matches!(f, Failure::Unreachable { id, .. } if *id == follower)
        ),
        "{v}"
    );
    assert!(
        v.summary()
            .contains(&format!("member {follower} unreachable")),
        "{v}"
    );
    // The leader notices the lost follower within syncLimit × tickTime.
    let v = loop {
        let v = e.verdict(&g).await;
        if has(&v, |f| matches!(f, Failure::SyncedFollowers { .. }))
            || t0.elapsed() > Duration::from_secs(60)
        {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!("  later: {v}");
    assert!(
        has(&v, |f| *f
            == Failure::SyncedFollowers {
                leader,
                synced: n as u64 - 2,
                expected: n as u64 - 1
            }),
        "{v}"
    );
    e.restart(follower);
    let v = e.assert_healthy(&g, SETTLE).await;
    assert_eq!(v.leader, Some(leader));
    println!(
        "healthy {n} + follower down {}: {:?}",
        version.label(),
        t0.elapsed()
    );
}

/// Leader killed: the verdict names it, a new leader is elected, the old one rejoins as follower.
#[tokio::test]
async fn leader_killed_and_reelected_39() {
    if skip_real_zk() {
        return;
    }
    let t0 = Instant::now();
    let mut e = Ensemble::new(ZkVersion::V3_9);
    e.start_all(3);
    let g = gate([1, 2, 3]);
    e.assert_healthy(&g, SETTLE).await;
    e.write_znodes(1, "/data", 20).await.unwrap();
    let before = e.assert_healthy(&g, SETTLE).await;
    let old = before.leader.unwrap();
    let base = before.baseline().unwrap();

    e.kill(old);
    let mut saw_no_leader = false;
    let new = loop {
        let obs = e.observe_ids(&[1, 2, 3]).await;
        let v = zk::verdict(&g.clone().with_baseline(base), &obs);
        assert!(!v.healthy, "{v}");
        assert!(
            has(
                &v,
                |f| matches!(f, Failure::Unreachable { id, .. } if *id == old)
            ),
            "{v}"
        );
        if v.leader.is_none() {
            assert!(has(&v, |f| *f == Failure::NoLeader), "{v}");
            if !saw_no_leader {
                show("leader killed", &e, &obs, &v);
            }
            saw_no_leader = true;
        }
        if let Some(l) = v.leader {
            show("new leader", &e, &obs, &v);
            break l;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "no new leader: {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_ne!(new, old);
    println!("  no-leader window observed: {saw_no_leader}");

    e.start(old, &[1, 2, 3]);
    let v = e
        .assert_healthy(&g.clone().with_baseline(base), SETTLE)
        .await;
    let (_, v2) = observe_and_judge(&e, &[1, 2, 3], &g, "old leader back").await;
    assert_eq!(v.leader, Some(new));
    assert_eq!(
        v2.members.iter().find(|m| m.id == old).unwrap().state,
        "follower"
    );
    assert!(
        v.zxid.unwrap().epoch() > base.leader_zxid.epoch(),
        "new epoch"
    );
    assert_eq!(counts(&e, &[1, 2, 3], "/data").await, [20, 20, 20]);
    println!("leader killed 3.9: {:?}", t0.elapsed());
}

/// One step 3 → 4: member 4 starts with the 4-list while 1–3 still have the 3-list; then
/// followers restart with the 4-list, the leader last.
#[tokio::test]
async fn mixed_config_step_3_to_4_39() {
    if skip_real_zk() {
        return;
    }
    let t0 = Instant::now();
    let mut e = Ensemble::new(ZkVersion::V3_9);
    e.start_all(3);
    let old_gate = gate([1, 2, 3]);
    e.assert_healthy(&old_gate, SETTLE).await;
    e.write_znodes(1, "/data", 30).await.unwrap();
    let before = e.assert_healthy(&old_gate, SETTLE).await;
    let base = before.baseline().unwrap();
    let leader = before.leader.unwrap();
    let four = [1, 2, 3, 4];
    let new_gate = gate(four).with_baseline(base);

    e.start(4, &four);
    let obs = e
        .wait_until("member 4 serving", SETTLE, |obs| serving(obs, 4))
        .await;
    let v = zk::verdict(&new_gate, &obs);
    show("4 started with the 4-list", &e, &obs, &v);
    // Member 4 says `Mode: follower`, but leader (3-list) syncs it as a non-voting follower.
    assert_eq!(mode_of(&obs, 4), Some(Mode::Follower));
    assert_eq!(v.leader, Some(leader), "no election: {v}");
    assert!(!v.healthy);
    assert!(
        has(&v, |f| *f
            == Failure::SyncedFollowers {
                leader,
                synced: 2,
                expected: 3
            }),
        "{v}"
    );
    assert!(
        has(&v, |f| *f
            == Failure::NonVotingFollowers { leader, count: 1 }),
        "{v}"
    );
    for id in [1, 2, 3] {
        assert!(
            has(&v, |f| *f
                == Failure::QuorumSize {
                    id,
                    voters: 3,
                    expected: 4
                }),
            "{v}"
        );
    }
    let v_old = zk::verdict(&old_gate, &obs);
    println!("  against the old voters: {v_old}");
    assert_eq!(
        v_old.failures,
        [Failure::NonVotingFollowers { leader, count: 1 }]
    );

    let followers: Vec<ServerId> = [1, 2, 3].into_iter().filter(|&id| id != leader).collect();
    for &f in &followers {
        e.restart_with(f, &four);
        let obs = e
            .wait_until(&format!("member {f} serving again"), SETTLE, |obs| {
                serving(obs, f)
            })
            .await;
        let v = zk::verdict(&new_gate, &obs);
        show(
            &format!("follower {f} restarted with the 4-list"),
            &e,
            &obs,
            &v,
        );
        assert!(!v.healthy, "{v}");
        assert_eq!(v.leader, Some(leader), "{v}");
        assert!(
            has(&v, |f| *f
                == Failure::SyncedFollowers {
                    leader,
                    synced: 2,
                    expected: 3
                }),
            "{v}"
        );
        assert!(
            !has(
                &v,
                |x| matches!(x, Failure::QuorumSize { id, .. } if *id == f)
            ),
            "{v}"
        );
    }
    e.restart_with(leader, &four);
    e.assert_healthy(&new_gate, SETTLE).await;
    let (_, v) = observe_and_judge(&e, &four, &new_gate, "all on the 4-list").await;
    assert!(v.healthy, "{v}");
    let l = v.leader.unwrap();
    assert_eq!(
        v.members
            .iter()
            .find(|m| m.id == l)
            .unwrap()
            .synced_followers,
        Some(3)
    );
    assert_eq!(counts(&e, &four, "/data").await, [30, 30, 30, 30]);
    println!("mixed config 3→4 3.9: {:?}", t0.elapsed());
}

/// Standalone with data, snapshot-free baseline; returns the baseline.
async fn standalone_with_data(e: &mut Ensemble, n: usize) -> Baseline {
    e.start_all(1);
    e.assert_healthy(&gate([1]), SETTLE).await;
    e.write_znodes(1, "/data", n).await.unwrap();
    let v = e.assert_healthy(&gate([1]), SETTLE).await;
    v.baseline().unwrap()
}

/// 1 → 3 in one jump: two empty members with the 3-list and the old one restarted with it at
/// the same moment. Whoever wins, the verdict must agree with the data clients see.
#[tokio::test]
async fn jump_1_to_3_parallel_39() {
    if skip_real_zk() {
        return;
    }
    let t0 = Instant::now();
    let mut e = Ensemble::new(ZkVersion::V3_9);
    let base = standalone_with_data(&mut e, 50).await;
    let three = [1, 2, 3];
    e.stop(1);
    e.start(2, &three);
    e.start(3, &three);
    e.start(1, &three);
    let g = gate(three).with_baseline(base);
    let obs = e
        .wait_until("all three serving", SETTLE, |obs| {
            three.iter().all(|&id| serving(obs, id))
        })
        .await;
    let v = zk::verdict(&g, &obs);
    show("1→3 jump", &e, &obs, &v);
    let seen = counts(&e, &three, "/data").await;
    println!("  /data children per member: {seen:?}");
    if seen.iter().any(|&c| c < 50) {
        assert!(!v.healthy, "data lost but healthy: {v}");
        assert!(
            has(&v, |f| matches!(f, Failure::ZnodeCountBelowBaseline { .. })),
            "{v}"
        );
    } else {
        let v = e.assert_healthy(&g, SETTLE).await;
        assert!(v.znode_count.unwrap() >= base.znode_count);
    }
    println!("jump 1→3 parallel 3.9: {:?}", t0.elapsed());
}

/// 1 → 3 where the empty pair forms a quorum first (the old member's pod is slower): data loss,
/// and the verdict names it although the leader's zxid went *up* (new epoch).
#[tokio::test]
async fn jump_1_to_3_empty_pair_first_39() {
    if skip_real_zk() {
        return;
    }
    let t0 = Instant::now();
    let mut e = Ensemble::new(ZkVersion::V3_9);
    let base = standalone_with_data(&mut e, 50).await;
    let three = [1, 2, 3];
    e.stop(1);
    e.start(2, &three);
    e.start(3, &three);
    e.wait_until("a leader among the empty pair", SETTLE, |obs| {
        [2, 3]
            .iter()
            .any(|&id| mode_of(obs, id) == Some(Mode::Leader))
    })
    .await;
    e.start(1, &three);
    let g = gate(three).with_baseline(base);
    let obs = e
        .wait_until("all three serving", SETTLE, |obs| {
            three.iter().all(|&id| serving(obs, id))
        })
        .await;
    let v = zk::verdict(&g, &obs);
    show("empty pair first", &e, &obs, &v);
    let seen = counts(&e, &three, "/data").await;
    println!("  /data children per member: {seen:?}");
    assert_eq!(seen, [0, 0, 0], "the old member's data is gone");
    assert!(!v.healthy);
    assert!(
        has(&v, |f| matches!(
            f,
            Failure::ZnodeCountBelowBaseline { count: 5, .. }
        )),
        "{v}"
    );
    assert!(
        !has(&v, |f| matches!(f, Failure::LeaderZxidBelowBaseline { .. })),
        "new epoch: zxid is higher"
    );
    // Without the baseline the same ensemble looks healthy: the baseline is what catches it.
    assert!(e.wait_healthy(&gate(three), SETTLE).await.healthy);
    println!("jump 1→3 empty pair first 3.9: {:?}", t0.elapsed());
}

/// 1 → 2 → 3, one voter per step, each step gated on a healthy verdict with the baseline.
#[tokio::test]
async fn step_1_2_3_keeps_data_39() {
    if skip_real_zk() {
        return;
    }
    let t0 = Instant::now();
    let mut e = Ensemble::new(ZkVersion::V3_9);
    let base = standalone_with_data(&mut e, 50).await;

    let two = [1, 2];
    e.start(2, &two);
    e.restart_with(1, &two);
    let v = e
        .assert_healthy(&gate(two).with_baseline(base), SETTLE)
        .await;
    println!("step to 2: {v}");
    assert_eq!(
        v.leader,
        Some(1),
        "the member with the data wins the election"
    );
    let base = v.baseline().unwrap();

    let three = [1, 2, 3];
    e.start(3, &three);
    let obs = e
        .wait_until("member 3 serving", SETTLE, |obs| serving(obs, 3))
        .await;
    let v = zk::verdict(&gate(three).with_baseline(base), &obs);
    show("3 started with the 3-list", &e, &obs, &v);
    assert!(!v.healthy);
    assert!(
        has(&v, |f| *f
            == Failure::SyncedFollowers {
                leader: 1,
                synced: 1,
                expected: 2
            }),
        "{v}"
    );
    assert!(
        has(&v, |f| *f
            == Failure::NonVotingFollowers {
                leader: 1,
                count: 1
            }),
        "{v}"
    );
    e.restart_with(2, &three);
    e.wait_until("member 2 serving again", SETTLE, |obs| serving(obs, 2))
        .await;
    e.restart_with(1, &three);
    let v = e
        .assert_healthy(&gate(three).with_baseline(base), SETTLE)
        .await;
    println!("step to 3: {v}");
    assert_eq!(counts(&e, &three, "/data").await, [50, 50, 50]);
    println!("steps 1→2→3 3.9: {:?}", t0.elapsed());
}

/// Dynamic reconfiguration through `zkscale::zk::session` on real ZooKeeper: the probe, the
/// identity check, a join and a leave without an election, the refusals zkscale maps, and a
/// member restarted with a stale static list adopting the committed configuration (why the
/// restart method cannot change such an ensemble's membership).
async fn reconfig(version: ZkVersion) {
    use zkscale::model::ServerList;
    use zkscale::zk::session::{self, Change, Identity, Permission, Reconfigurable, Refusal};
    use zkscale::zk::ZkError;

    let t0 = Instant::now();
    let mut e = Ensemble::new(version);
    let digest = e.digest("super", "s3cret");
    e.extra_cfg = "reconfigEnabled=true\n".into();
    e.jvm_flags = vec![format!(
        "-Dzookeeper.DigestAuthenticationProvider.superDigest={digest}"
    )];
    e.start_all(3);
    let v = e.assert_healthy(&gate([1, 2, 3]), SETTLE).await;
    let leader = v.leader.unwrap();
    e.write_znodes(leader, "/data", 50).await.unwrap();
    let v = e.assert_healthy(&gate([1, 2, 3]), SETTLE).await;
    let epoch = v.baseline().unwrap().leader_zxid.epoch();
    let addr = e.client_addr(leader);
    let wait = Duration::from_secs(10);
    let root = Identity::digest("super", "s3cret");

    let c = session::connect(&addr, Some(&root), wait).await.unwrap();
    assert_eq!(
        session::reconfigurable(&c, &addr).await.unwrap(),
        Reconfigurable::Yes
    );
    assert_eq!(
        session::permission(&c, &addr).await.unwrap(),
        Permission::Super
    );
    let committed = session::committed(&c, &addr).await.unwrap();
    assert_eq!(committed.servers.ids(), [1, 2, 3].into());
    println!(
        "committed {:#x}: {:?}",
        committed.version,
        committed.servers.to_zoo_cfg_lines()
    );

    // Anonymous: may not, and ZooKeeper says NoAuth.
    let anon = session::connect(&addr, None, wait).await.unwrap();
    assert!(matches!(
        session::permission(&anon, &addr).await.unwrap(),
        Permission::No { .. }
    ));
    // A wrong password ends the session at once.
    let wrong = Identity::digest("super", "nope");
    match session::connect(&addr, Some(&wrong), wait).await {
        Ok(c) => assert!(!matches!(
            session::permission(&c, &addr).await,
            Ok(Permission::Super)
        )),
        Err(err) => println!("wrong password: {err}"),
    }

    // Join: member 4 starts with the committed list plus itself, follows without a vote.
    e.start(4, &[1, 2, 3, 4]);
    e.wait_until("member 4 follows", SETTLE, |obs| {
        mode_of(obs, 4) == Some(Mode::Follower)
    })
    .await;
    let member = ServerList::parse_env(&format!("{}:2888:3888::4 ", e.ip(4)))
        .unwrap()
        .members()[0]
        .clone();
    let ip4 = e.ip(4).to_string();
    let entry = session::join_entry(&member, &committed.servers, Some(&ip4), 2181).unwrap();
    let join = Change::Join { id: 4, entry };
    let r = session::reconfig(&anon, &addr, &join, committed.version).await;
    assert!(
        matches!(r, Err(ZkError::Reconfig(Refusal::NoAuth))),
        "anonymous reconfig: {r:?}"
    );
    assert!(matches!(
        session::reconfig(&c, &addr, &join, committed.version - 1).await,
        Err(ZkError::Reconfig(Refusal::BadVersion))
    ));
    let t = Instant::now();
    let four = session::reconfig(&c, &addr, &join, committed.version)
        .await
        .unwrap();
    println!("join took {:?}", t.elapsed());
    assert_eq!(four.servers.ids(), [1, 2, 3, 4].into());
    assert!(join.done_in(&four.servers));
    let v = e.assert_healthy(&gate([1, 2, 3, 4]), SETTLE).await;
    assert_eq!(v.leader, Some(leader), "a join changes no leader");
    assert_eq!(
        v.baseline().unwrap().leader_zxid.epoch(),
        epoch,
        "a join costs no election"
    );
    assert_eq!(counts(&e, &[1, 2, 3, 4], "/data").await, [50; 4]);

    // A follower restarted with its old static list (version 0) adopts the committed one.
    let follower = [1, 2, 3].into_iter().find(|&i| i != leader).unwrap();
    e.restart_with(follower, &[1, 2, 3]);
    let v = e.assert_healthy(&gate([1, 2, 3, 4]), SETTLE).await;
    assert_eq!(v.leader, Some(leader));
    let after = session::committed(&c, &addr).await.unwrap();
    assert_eq!(
        after.servers.ids(),
        [1, 2, 3, 4].into(),
        "still four voters"
    );

    let addr = e.client_addr(leader);
    let now = session::committed(&c, &addr).await.unwrap();
    // Leave: the highest goes; it stays a non-voting follower until stopped.
    let epoch = v.baseline().unwrap().leader_zxid.epoch();
    let leave = Change::Leave { id: 4 };
    let three = session::reconfig(&c, &addr, &leave, now.version)
        .await
        .unwrap();
    assert_eq!(three.servers.ids(), [1, 2, 3].into());
    e.stop(4);
    let v = e.assert_healthy(&gate([1, 2, 3]), SETTLE).await;
    println!("after leave: {v}");
    if leader != 4 {
        assert_eq!(v.baseline().unwrap().leader_zxid.epoch(), epoch);
    }
    assert_eq!(counts(&e, &[1, 2, 3], "/data").await, [50; 3]);

    // NewConfigNoQuorum: one of three down (the rest still a quorum), a fifth server that is
    // not running: the new configuration of four has 2 synced of the 3 it needs.
    let leader = v.leader.unwrap();
    let addr = e.client_addr(leader);
    let c = session::connect(&addr, Some(&root), wait).await.unwrap();
    let follower = [1, 2, 3].into_iter().find(|&i| i != leader).unwrap();
    e.stop(follower);
    let rest: Vec<ServerId> = [1, 2, 3].into_iter().filter(|&i| i != follower).collect();
    e.wait_until("the other two serve", SETTLE, |obs| {
        rest.iter().all(|&i| serving(obs, i))
    })
    .await;
    let now = session::committed(&c, &addr).await.unwrap();
    let five = ServerList::parse_env(&format!("{}:2888:3888::5 ", e.ip(5)))
        .unwrap()
        .members()[0]
        .clone();
    let add5 = Change::Join {
        id: 5,
        entry: session::join_entry(&five, &now.servers, Some(&e.ip(5).to_string()), 2181).unwrap(),
    };
    let r = session::reconfig(&c, &addr, &add5, now.version).await;
    assert!(
        matches!(r, Err(ZkError::Reconfig(Refusal::NoQuorum))),
        "reconfig without a synced quorum of the new configuration: {r:?}"
    );
    let after = session::committed(&c, &addr).await.unwrap();
    assert_eq!(after.servers.ids(), [1, 2, 3].into(), "nothing committed");
    println!("reconfig {}: {:?}", version.label(), t0.elapsed());
}

#[tokio::test]
async fn reconfig_39() {
    if skip_real_zk() {
        return;
    }
    reconfig(ZkVersion::V3_9).await;
}

#[tokio::test]
async fn reconfig_38() {
    if skip_real_zk() {
        return;
    }
    reconfig(ZkVersion::V3_8).await;
}

/// Without `reconfigEnabled` the probe says so and a reconfig is refused as disabled.
#[tokio::test]
async fn reconfig_disabled_39() {
    use zkscale::zk::session::{self, Reconfigurable};
    if skip_real_zk() {
        return;
    }
    let mut e = Ensemble::new(ZkVersion::V3_9);
    e.start_all(3);
    let v = e.assert_healthy(&gate([1, 2, 3]), SETTLE).await;
    let addr = e.client_addr(v.leader.unwrap());
    let c = session::connect(&addr, None, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(
        session::reconfigurable(&c, &addr).await.unwrap(),
        Reconfigurable::Disabled
    );
}
