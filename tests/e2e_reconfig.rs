//! Scaling through dynamic reconfiguration on the test bed: a bitnami release with
//! `ZOO_RECONFIG_ENABLED=yes` and a superDigest in `JVMFLAGS` (the chart's `extraEnvVars`), the
//! superuser's password in a Secret, real ZooKeeper 3.9.3, a client writing throughout.
//!
//! What is checked: existing members are never restarted (pod UIDs and restart counts), no
//! election where the leader stays (the leader's epoch), the StatefulSet's list equals the
//! committed configuration after every run, nothing acknowledged is lost, and a killed run
//! resumes from the committed configuration.

mod support;

use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use support::bed::{wait_for, Bed};
use support::chart::*;
use support::cli::zkscale;
use support::writer::{self, Writer};
use support::zk_client::ZkClient;
use zkscale::model::ServerList;

const SECRET: &str = "zk-super";
const PASSWORD: &str = "s3cret-for-the-bed";

/// Everything the runs printed, for [`secrets_never_shown`].
static PRINTED: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());

fn run(c: Command) -> Output {
    let out = support::cli::run(c);
    if let Ok(mut p) = PRINTED.lock() {
        p.push_str(&String::from_utf8_lossy(&out.stdout));
        p.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    out
}

fn ok(out: &Output, what: &str) {
    assert_eq!(out.status.code(), Some(0), "{what} failed");
}

/// A reconfig-enabled release of `members` with 200 znodes, and the superuser's Secret.
async fn release<'b>(
    bed: &'b Bed,
    prefix: &str,
    members: usize,
) -> support::scenario::TestEnsemble<'b> {
    let digest = support::zk_ensemble::digest("super", PASSWORD);
    let zk = bed
        .ensemble(prefix)
        .members(members)
        .znodes(200)
        .env("ZOO_RECONFIG_ENABLED", "yes")
        .env(
            "JVMFLAGS",
            &format!("-Dzookeeper.DigestAuthenticationProvider.superDigest={digest}"),
        )
        .up()
        .await;
    bed.kubectl(&[
        "create",
        "secret",
        "generic",
        SECRET,
        "-n",
        zk.ns(),
        &format!("--from-literal=password={PASSWORD}"),
    ]);
    zk
}

/// Neither the ZooKeeper superuser's password nor the kubeconfig's client key shows in what
/// the runs printed, the StatefulSet's annotations, the Events, or `status -o json`.
fn secrets_never_shown(bed: &Bed, ns: &str) {
    let key = std::fs::read_to_string(bed.kubeconfig.parent().unwrap().join("pki/admin.key"))
        .unwrap_or_default();
    let key_line = key.lines().nth(1).unwrap_or("no key").to_string();
    let status = run(zkscale(
        bed,
        ns,
        &["status", "-o", "json", "--zk-auth-secret", SECRET],
    ));
    let mut places = vec![
        ("output", PRINTED.lock().unwrap().clone()),
        (
            "status",
            String::from_utf8_lossy(&status.stdout).into_owned(),
        ),
    ];
    places.extend(left_in_cluster(bed, ns));
    for (what, text) in places {
        assert!(
            !text.is_empty() || what == "annotations",
            "nothing in {what}"
        );
        assert!(!text.contains(PASSWORD), "the password in {what}");
        assert!(!text.contains(&key_line), "the client key in {what}");
    }
}

/// `(uid, restart count)` of every pod by name.
fn pods(bed: &Bed, ns: &str) -> BTreeMap<String, (String, String)> {
    bed.kubectl(&[
        "get",
        "pods",
        "-n",
        ns,
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.metadata.uid} {.status.containerStatuses[0].restartCount}{\"\\n\"}{end}",
    ])
    .lines()
    .filter_map(|l| {
        let mut f = l.split_whitespace();
        Some((
            f.next()?.to_string(),
            (f.next()?.to_string(), f.next().unwrap_or("0").to_string()),
        ))
    })
    .collect()
}

/// The pods of `before` still run as the same pods, never restarted.
fn not_restarted(
    before: &BTreeMap<String, (String, String)>,
    after: &BTreeMap<String, (String, String)>,
) {
    for (name, (uid, restarts)) in before {
        let (now_uid, now_restarts) = after
            .get(name)
            .unwrap_or_else(|| panic!("pod {name} is gone"));
        assert_eq!(uid, now_uid, "pod {name} was recreated");
        assert_eq!(restarts, now_restarts, "pod {name}'s ZooKeeper restarted");
    }
}

/// The leader's epoch (the high 32 bits of its zxid).
async fn epoch(bed: &Bed, ns: &str, n: usize) -> u32 {
    wait_healthy(bed, ns, n)
        .await
        .baseline()
        .expect("a baseline")
        .leader_zxid
        .epoch()
}

/// The committed configuration equals the StatefulSet's `ZOO_SERVERS`.
async fn committed_is_the_template(bed: &Bed, ns: &str) -> ServerList {
    let pf = bed.port_forward(ns, &format!("{STS}-0"), 2181);
    let c = ZkClient::connect(&pf.addr(), Duration::from_secs(10))
        .await
        .expect("connect");
    let text = c.config().await.expect("/zookeeper/config");
    c.close().await.ok();
    let committed = ServerList::parse_zoo_cfg(&text).expect("committed configuration");
    let template = ServerList::parse_env(&sts_field(
        bed,
        ns,
        ".spec.template.spec.containers[0].env[?(@.name==\"ZOO_SERVERS\")].value",
    ))
    .expect("ZOO_SERVERS");
    assert!(
        committed.same_ensemble(&template),
        "committed `{text}` but the StatefulSet lists `{}`",
        template.to_env()
    );
    committed
}

/// How many voters the committed configuration has (the StatefulSet may list one more: an
/// addition under way).
async fn committed_is_the_template_or_one_short(bed: &Bed, ns: &str) -> usize {
    let pf = bed.port_forward(ns, &format!("{STS}-0"), 2181);
    let c = ZkClient::connect(&pf.addr(), Duration::from_secs(10))
        .await
        .expect("connect");
    let text = c.config().await.expect("/zookeeper/config");
    c.close().await.ok();
    ServerList::parse_zoo_cfg(&text)
        .expect("committed configuration")
        .len()
}

/// 1→5 and 5→3 on a reconfig-enabled release: 1→2 restarts (a standalone member cannot be
/// reconfigured), then no member restarts and no election; a deleted pod comes back with the
/// committed list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_reconfig_1_to_5_and_5_to_3_without_restarts() {
    let Some(bed) = Bed::get() else { return };
    let zk = release(&bed, "e2e-rc", 1).await;
    let ns = zk.ns();

    // Without an identity the run is refused before anything changes (beyond 2 members the
    // ensemble can only be changed by reconfig).
    let out = run(zkscale(&bed, ns, &["plan", "--to", "3"]));
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--zk-auth-secret"));
    let out = run(zkscale(
        &bed,
        ns,
        &["plan", "--to", "5", "--zk-auth-secret", SECRET],
    ));
    ok(&out, "plan");
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(plan.contains("step 1→2 by restart"), "{plan}");
    for s in ["2→3", "3→4", "4→5"] {
        assert!(plan.contains(&format!("step {s} by reconfig")), "{plan}");
    }
    assert!(!plan.contains(PASSWORD));

    let w = Writer::start(pod_addrs(&bed, ns));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let t = Instant::now();
    let out = run(zkscale(
        &bed,
        ns,
        &["--to", "2", "--zk-auth-secret", SECRET],
    ));
    ok(&out, "--to 2");
    let one_to_two = t.elapsed();
    let at2 = pods(&bed, ns);
    let epoch2 = epoch(&bed, ns, 2).await;

    let t = Instant::now();
    let out = run(zkscale(
        &bed,
        ns,
        &["--to", "5", "--zk-auth-secret", SECRET],
    ));
    ok(&out, "--to 5");
    let two_to_five = t.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("reconfig: add server.").count(),
        3,
        "{stderr}"
    );
    assert!(!stderr.contains("restart zk-"), "{stderr}");
    assert!(!stderr.contains(PASSWORD));
    not_restarted(&at2, &pods(&bed, ns));
    assert_eq!(epoch(&bed, ns, 5).await, epoch2, "an election during 2→5");
    assert_eq!(committed_is_the_template(&bed, ns).await.len(), 5);

    // A pod deleted after a reconfig step comes back with the template's list and rejoins.
    // It is the leader's: the election that follows makes another member the leader, most
    // likely the highest (equal zxids, then the higher id), so 5→3 below removes the leader.
    let leader_at5 = wait_healthy(&bed, ns, 5).await.leader.expect("a leader");
    bed.kubectl(&[
        "delete",
        "pod",
        "-n",
        ns,
        &format!("{STS}-{}", leader_at5 - 1),
        "--wait=true",
    ]);
    // (Not "rolled out": after reconfig steps the other pods keep the revision they started
    // with, which differs only in ZOO_SERVERS.)
    wait_for(
        "5 ready pods",
        Duration::from_secs(240),
        || match sts_field(&bed, ns, ".status.readyReplicas").as_str() {
            "5" => Ok(()),
            r => Err(format!("{r} ready")),
        },
    );
    wait_healthy(&bed, ns, 5).await;
    assert_eq!(committed_is_the_template(&bed, ns).await.len(), 5);
    let at5 = pods(&bed, ns);
    let epoch5 = epoch(&bed, ns, 5).await;
    let leader5 = wait_healthy(&bed, ns, 5).await.leader.expect("a leader");

    let t = Instant::now();
    let out = run(zkscale(
        &bed,
        ns,
        &["--to", "3", "--zk-auth-secret", SECRET],
    ));
    ok(&out, "--to 3");
    let five_to_three = t.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("reconfig: remove server").count(),
        2,
        "{stderr}"
    );
    let survivors: BTreeMap<_, _> = at5
        .into_iter()
        .filter(|(n, _)| !n.ends_with("-3") && !n.ends_with("-4"))
        .collect();
    not_restarted(&survivors, &pods(&bed, ns));
    let v = wait_healthy(&bed, ns, 3).await;
    // A leader that stays costs no election; a removed leader hands over to a synced voter
    // at the commit: at most one new epoch per removed member.
    let elections = epoch(&bed, ns, 3)
        .await
        .checked_sub(epoch5)
        .expect("the epoch went back");
    if leader5 <= 3 {
        assert_eq!(
            elections, 0,
            "an election during 5→3 with leader {leader5} staying"
        );
    } else {
        assert!(elections <= 2, "{elections} new epochs for 2 removals");
    }
    assert_eq!(committed_is_the_template(&bed, ns).await.len(), 3);
    let claims = bed.kubectl(&["get", "pvc", "-n", ns, "-o", "name"]);
    assert_eq!(
        claims.lines().count(),
        3,
        "claims of removed members: {claims}"
    );

    let report = w.stop();
    let addr = member_addrs(&bed, ns, 3).remove(0);
    let lost = writer::lost(&addr, &report).await;
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    assert_eq!(count_znodes(&bed, ns).await, 200);
    secrets_never_shown(&bed, ns);
    eprintln!(
        "reconfig: 1→2 (restart) {:.1}s, 2→5 {:.1}s, 5→3 {:.1}s (leader {leader5} before, {:?} after, epoch +{elections}); {} acknowledged writes, longest gap {:.1}s, lost 0",
        one_to_two.as_secs_f64(),
        two_to_five.as_secs_f64(),
        five_to_three.as_secs_f64(),
        v.leader,
        report.acked.len(),
        report.longest_gap.as_secs_f64()
    );
}

/// `kubectl zkscale --to N -o json`, killed (-9) at the first event `at` accepts.
fn kill_at(bed: &Bed, ns: &str, to: u32, at: impl Fn(&serde_json::Value) -> bool) {
    let to = to.to_string();
    let args = ["--to", &to, "-o", "json", "--zk-auth-secret", SECRET];
    support::cli::kill_at(zkscale(bed, ns, &args), at);
}

/// Re-runs `--to N` until the killed run's lease has expired; its output.
fn rerun(bed: &Bed, ns: &str, to: u32) -> Output {
    wait_for("the rerun", Duration::from_secs(300), || {
        let out = run(zkscale(
            bed,
            ns,
            &["--to", &to.to_string(), "--zk-auth-secret", SECRET],
        ));
        match out.status.code() {
            Some(0) => Ok(out),
            Some(3) if String::from_utf8_lossy(&out.stderr).contains("holds the lock") => {
                Err("lock held".into())
            }
            other => panic!("rerun failed with {other:?}"),
        }
    })
}

fn action(e: &serde_json::Value, starts: &str) -> bool {
    e["event"] == "action"
        && e["description"]
            .as_str()
            .is_some_and(|d| d.trim_start().starts_with(starts))
}

/// Killed (-9) between the new pod's start and the `reconfig`, then between the `reconfig` and
/// the gate: the same command finishes from the committed configuration, no member restarted,
/// nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_reconfig_resumes_after_kill() {
    let Some(bed) = Bed::get() else { return };
    let zk = release(&bed, "e2e-rck", 2).await;
    let ns = zk.ns();
    let w = Writer::start(pod_addrs(&bed, ns));
    let at2 = pods(&bed, ns);
    let epoch2 = epoch(&bed, ns, 2).await;

    // The new pod runs as a learner; the reconfig (half a second later) is not made yet.
    kill_at(&bed, ns, 3, |e| {
        e["event"] == "gate"
            && e["passed"] == true
            && e["name"]
                .as_str()
                .is_some_and(|n| n.contains("server 3 follows the leader without a vote"))
    });
    let committed = committed_is_the_template_or_one_short(&bed, ns).await;
    assert_eq!(committed, 2, "the kill came after the reconfig");
    let out = rerun(&bed, ns, 3);
    assert!(String::from_utf8_lossy(&out.stderr).contains("resuming"));
    wait_healthy(&bed, ns, 3).await;
    assert_eq!(committed_is_the_template(&bed, ns).await.len(), 3);

    kill_at(&bed, ns, 4, |e| action(e, "reconfig: add server.4"));
    rerun(&bed, ns, 4);
    wait_healthy(&bed, ns, 4).await;
    assert_eq!(committed_is_the_template(&bed, ns).await.len(), 4);

    // The same through the Helm 4 post-renderer: `helm upgrade` to the 5-member chart runs
    // 4→5 by reconfig before Helm applies (the identity from ZKSCALE_ZK_AUTH_SECRET).
    let helm = support::helm::Helm::v4(&bed);
    let chart = bed.chart_with_env(
        "bitnami-zookeeper-13.7.4-replicas-5",
        ns,
        &[
            ("ZOO_RECONFIG_ENABLED".into(), "yes".into()),
            (
                "JVMFLAGS".into(),
                format!(
                    "-Dzookeeper.DigestAuthenticationProvider.superDigest={}",
                    support::zk_ensemble::digest("super", PASSWORD)
                ),
            ),
        ],
    );
    let args = helm.chart_args("upgrade", &chart, ns, &[]);
    let out = helm
        .command(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .env("ZKSCALE_ZK_AUTH_SECRET", SECRET)
        .output()
        .unwrap();
    let log = helm.log_text();
    eprintln!(
        "--- helm upgrade → {:?}\n{}\n{log}",
        out.status.code(),
        support::helm::text(&out)
    );
    assert!(out.status.success(), "helm upgrade with the post-renderer");
    assert!(log.contains("reconfig: add server.5"), "{log}");
    assert!(!log.contains(PASSWORD));
    wait_healthy(&bed, ns, 5).await;
    assert_eq!(committed_is_the_template(&bed, ns).await.len(), 5);

    not_restarted(&at2, &pods(&bed, ns));
    assert_eq!(
        epoch(&bed, ns, 5).await,
        epoch2,
        "an election while resuming"
    );
    let report = w.stop();
    let addr = member_addrs(&bed, ns, 5).remove(0);
    let lost = writer::lost(&addr, &report).await;
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    assert_eq!(count_znodes(&bed, ns).await, 200);
    let op = sts_field(&bed, ns, ".metadata.annotations.zkscale\\.io/operation");
    assert!(op.is_empty(), "operation annotation left behind: {op}");
}

/// `auto` on a release without reconfiguration plans restarts, and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_auto_on_a_static_release_restarts() {
    let Some(bed) = Bed::get() else { return };
    let zk = bed.ensemble("e2e-rcs").members(2).znodes(0).up().await;
    let ns = zk.ns();
    let out = run(zkscale(&bed, ns, &["plan", "--to", "3"]));
    ok(&out, "plan");
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(plan.contains("reconfigEnabled=false"), "{plan}");
    assert!(plan.contains("step 2→3 by restart"), "{plan}");
    let out = run(zkscale(
        &bed,
        ns,
        &["plan", "--to", "3", "--method", "reconfig"],
    ));
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ZOO_RECONFIG_ENABLED"));
    let out = run(zkscale(&bed, ns, &["status"]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("membership: static configuration"));
}
