//! e2e for the Helm post-renderer on the test bed: real Helm 4.1.4 with the `zkscale` plugin
//! (and Helm 3.17 with the executable), the shared bitnami fixture charts, real ZooKeeper.
//!
//! Run alone with `make e2e`. Serial: each ensemble is several JVMs on a 2-core machine.

mod support;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use support::bed::{wait_for, Bed};
use support::chart::*;
use support::helm::{text, Helm, BIN};
use support::writer::{self, Writer};
use zkscale::zk::{observe_all_tcp, Mode, Probe, Timeouts};

const R3: &str = "bitnami-zookeeper-13.7.4-replicas-3";
const R5: &str = "bitnami-zookeeper-13.7.4-replicas-5";
const BUMP: &str = "bitnami-zookeeper-13.7.4-replicas-3-image-bump";

fn ok(out: &Output, what: &str) {
    assert!(out.status.success(), "{what} failed: {}", text(out));
}

fn release_status(helm: &Helm, ns: &str) -> (String, u64) {
    let out = helm.query(&["status", "zk", "-n", ns, "-o", "json"]);
    ok(&out, "helm status");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        v["info"]["status"].as_str().unwrap_or_default().to_string(),
        v["version"].as_u64().unwrap_or(0),
    )
}

fn live_sts(bed: &Bed, ns: &str) -> serde_json::Value {
    serde_json::from_str(&bed.kubectl(&["get", "statefulset", "-n", ns, STS, "-o", "json"]))
        .unwrap()
}

/// The fields zkscale and the chart both set, from a StatefulSet as JSON.
fn key_fields(sts: &serde_json::Value) -> (i64, String, String, String) {
    let c = &sts["spec"]["template"]["spec"]["containers"][0];
    let servers = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|e| e["name"] == "ZOO_SERVERS")
        .map(|e| e["value"].as_str().unwrap().to_string())
        .unwrap();
    (
        sts["spec"]["replicas"].as_i64().unwrap_or(1),
        servers,
        c["image"].as_str().unwrap().to_string(),
        sts["spec"]["updateStrategy"]["type"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

/// `helm get manifest` declares what the cluster has: replicas, ZOO_SERVERS, image, OnDelete.
fn manifest_matches_live(bed: &Bed, helm: &Helm, ns: &str) {
    let out = helm.query(&["get", "manifest", "zk", "-n", ns]);
    ok(&out, "helm get manifest");
    let text = String::from_utf8_lossy(&out.stdout);
    let sts = text
        .split("\n---")
        .filter_map(|d| serde_yaml::from_str::<serde_json::Value>(d).ok())
        .find(|v| v["kind"] == "StatefulSet")
        .expect("a StatefulSet in the release manifest");
    let declared = key_fields(&sts);
    let live = key_fields(&live_sts(bed, ns));
    assert_eq!(declared, live, "release manifest vs live StatefulSet");
    assert_eq!(live.3, "OnDelete");
}

/// What a preview must leave alone: the StatefulSet's generation and every pod's UID.
fn snapshot(bed: &Bed, ns: &str) -> (String, String) {
    (
        sts_field(bed, ns, ".metadata.generation"),
        bed.kubectl(&[
            "get",
            "pods",
            "-n",
            ns,
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}={.metadata.uid} {end}",
        ]),
    )
}

/// A preview through the post-renderer (`helm template`, `--dry-run`): it succeeds and leaves
/// the ensemble as `snap` found it.
fn preview(
    bed: &Bed,
    helm: &Helm,
    ns: &str,
    snap: &(String, String),
    verb: &str,
    chart: &Path,
    extra: &[&str],
) -> Output {
    let what = format!("helm{} {verb} {}", helm.major, extra.join(" "));
    let out = helm.with_chart(verb, chart, ns, extra);
    ok(&out, &what);
    assert_eq!(&snapshot(bed, ns), snap, "{what} changed the ensemble");
    out
}

fn pod_images(bed: &Bed, ns: &str) -> String {
    bed.kubectl(&[
        "get",
        "pods",
        "-n",
        ns,
        "-o",
        "jsonpath={range .items[*]}{.spec.containers[0].image} {end}",
    ])
}

/// `(leader id, epoch)` asked of the members at their pod IPs.
async fn leader_epoch(bed: &Bed, ns: &str, n: usize) -> (u32, u32) {
    let members: Vec<(u32, String)> = member_addrs(bed, ns, n)
        .into_iter()
        .zip(1..)
        .map(|(a, id)| (id, a))
        .collect();
    for m in observe_all_tcp(&members, Timeouts::default()).await {
        if let Probe::Serving { srvr, .. } = &m.probe {
            if matches!(srvr.mode, Mode::Leader | Mode::Standalone) {
                return (m.id, srvr.zxid.epoch());
            }
        }
    }
    panic!("no leader among {members:?}");
}

/// Upgrades with the post-renderer and checks the outcome the issue asks for.
async fn upgrade_checked(bed: &Bed, helm: &Helm, ns: &str, fixture: &str, n: usize) -> Duration {
    let chart = bed.chart(fixture, ns);
    let (_, rev0) = release_status(helm, ns);
    let start = Instant::now();
    let out = helm.with_chart("upgrade", &chart, ns, &[]);
    let took = start.elapsed();
    ok(&out, &format!("helm{} upgrade to {fixture}", helm.major));
    let v = wait_healthy(bed, ns, n).await;
    assert_eq!(v.voters.len(), n);
    assert_eq!(
        count_znodes(bed, ns).await,
        200,
        "znodes lost upgrading to {fixture}"
    );
    let (status, rev) = release_status(helm, ns);
    assert_eq!((status.as_str(), rev), ("deployed", rev0 + 1));
    manifest_matches_live(bed, helm, ns);
    eprintln!(
        "helm{} upgrade → {fixture}: {:.1}s",
        helm.major,
        took.as_secs_f64()
    );
    took
}

#[tokio::test(flavor = "multi_thread")]
async fn e2e_post_render_helm4_1_to_3_then_image_bump() {
    let Some(bed) = Bed::get() else { return };
    let zk = bed.ensemble("pr-a").members(1).with(Helm::v4).up().await;
    let (ns, helm) = (zk.ns(), zk.helm());
    // A client writes throughout: no acknowledged write may be lost either.
    let w = Writer::start(pod_addrs(&bed, ns));
    tokio::time::sleep(Duration::from_secs(1)).await;
    upgrade_checked(&bed, helm, ns, R3, 3).await;
    let report = w.stop();
    let lost = writer::lost(&member_addrs(&bed, ns, 3)[0], &report).await;
    eprintln!(
        "r1→r3 with a writer: {} acknowledged writes, longest gap {:.1}s, lost {}",
        report.acked.len(),
        report.longest_gap.as_secs_f64(),
        lost.len()
    );
    assert!(
        !report.acked.is_empty(),
        "the writer never got a write through"
    );
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    let log = helm.log_text();
    assert!(
        log.contains("step 1→2") && log.contains("step 2→3"),
        "{log}"
    );
    // The size steps restarted every member, so the r1 → r3 template change (the r1 chart's pod
    // has fewer ports) needs no roll-out of its own.
    assert!(log.contains("apply the new pod template"), "{log}");
    assert!(!log.contains("roll-out at"), "{log}");

    // The same upgrade again: nothing left to do, the StatefulSet is not even touched.
    let gen = sts_field(&bed, ns, ".metadata.generation");
    upgrade_checked(&bed, helm, ns, R3, 3).await;
    assert_eq!(sts_field(&bed, ns, ".metadata.generation"), gen);

    // Image bump: a roll-out at 3, followers first, the leader last, at most one election.
    let (leader, epoch) = leader_epoch(&bed, ns, 3).await;
    let before = std::fs::metadata(&helm.log).map(|m| m.len()).unwrap_or(0) as usize;
    upgrade_checked(&bed, helm, ns, BUMP, 3).await;
    let (_, epoch_after) = leader_epoch(&bed, ns, 3).await;
    assert!(
        epoch_after <= epoch + 1,
        "{} elections during the image bump",
        epoch_after - epoch
    );
    let images = pod_images(&bed, ns);
    assert_eq!(images.matches("3.9.3-debian-12-r9").count(), 3, "{images}");
    let log = helm.log_text()[before..].to_string();
    let restarts: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split("restart ").nth(1))
        .collect();
    assert_eq!(restarts.len(), 3, "{log}");
    assert_eq!(
        restarts[2].trim(),
        format!("{STS}-{}", leader - 1),
        "the leader (server {leader}) must restart last: {restarts:?}"
    );
    eprintln!("image bump: epoch {epoch} → {epoch_after}, restarts {restarts:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn e2e_post_render_helm4_1_to_5_then_5_to_3() {
    let Some(bed) = Bed::get() else { return };
    let zk = bed.ensemble("pr-b").members(1).with(Helm::v4).up().await;
    let (ns, helm) = (zk.ns(), zk.helm());
    upgrade_checked(&bed, helm, ns, R5, 5).await;
    upgrade_checked(&bed, helm, ns, R3, 3).await;
    // The removed members' claims are gone: a later scale-up starts them empty.
    let claims = bed.kubectl(&["get", "pvc", "-n", ns, "-o", "name"]);
    assert_eq!(claims.lines().count(), 3, "{claims}");
}

#[tokio::test(flavor = "multi_thread")]
async fn e2e_post_render_helm3_1_to_3_and_template() {
    let Some(bed) = Bed::get() else { return };
    let zk = bed.ensemble("pr-3").members(1).with(Helm::v3).up().await;
    let (ns, helm) = (zk.ns(), zk.helm());
    let snap = snapshot(&bed, ns);
    let chart = bed.chart(R3, ns);
    let out = preview(&bed, helm, ns, &snap, "template", &chart, &[]);
    // A preview declares the live size (applied as is, it moves nothing) and notes the change.
    let rendered = String::from_utf8_lossy(&out.stdout);
    assert!(rendered.contains("replicas: 1"), "{rendered}");
    assert!(rendered.contains("zkscale.io/pending"), "{rendered}");
    preview(&bed, helm, ns, &snap, "upgrade", &chart, &["--dry-run"]);
    upgrade_checked(&bed, helm, ns, R3, 3).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn e2e_post_render_previews_change_nothing() {
    let Some(bed) = Bed::get() else { return };
    let zk = bed.ensemble("pr-p").members(3).with(Helm::v4).up().await;
    let (ns, helm) = (zk.ns(), zk.helm());
    let snap = snapshot(&bed, ns);
    let chart5 = bed.chart(R5, ns);

    // helm template: the live size is printed with the pending change noted; the plan goes to
    // the log; nothing changes.
    let out = preview(&bed, helm, ns, &snap, "template", &chart5, &[]);
    let rendered = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(rendered.contains("replicas: 3"), "{rendered}");
    assert!(!rendered.contains("replicas: 5"), "{rendered}");
    assert!(rendered.contains("type: OnDelete"), "{rendered}");
    assert!(
        rendered.contains("zkscale.io/pending") && rendered.contains("3 → 5 member(s)"),
        "{rendered}"
    );
    assert!(helm.log_text().contains("preview"), "{}", helm.log_text());
    assert!(helm.log_text().contains("3→4, 4→5"), "{}", helm.log_text());

    for dry in ["--dry-run", "--dry-run=server", "--dry-run=client"] {
        preview(&bed, helm, ns, &snap, "upgrade", &chart5, &[dry]);
    }
    // An image bump previewed: a roll-out is planned, nothing restarts.
    let bump = bed.chart(BUMP, ns);
    preview(&bed, helm, ns, &snap, "upgrade", &bump, &["--dry-run"]);
    assert!(
        helm.log_text().contains("roll-out at 3"),
        "{}",
        helm.log_text()
    );
    let (status, rev) = release_status(helm, ns);
    assert_eq!((status.as_str(), rev), ("deployed", 1));

    // Without a helm process above it and without --execute/--plan-only, a change to a running
    // ensemble is refused (it may be applied by whatever runs us): exit 3, nothing on stdout.
    let plain = helm.query(&["template", "zk", chart5.to_str().unwrap(), "-n", ns]);
    ok(&plain, "helm template without post-renderer");
    let direct = |args: &[&str]| {
        let mut c = std::process::Command::new(BIN);
        c.args(["post-render", "-n", ns, "--log-file", "-"])
            .args(args)
            .env("KUBECONFIG", &bed.kubeconfig)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(&plain.stdout)
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let out = direct(&[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--execute"));
    let out = direct(&["--plan-only"]);
    ok(&out, "post-render --plan-only");
    assert!(String::from_utf8_lossy(&out.stdout).contains("replicas: 3"));
    assert_eq!(snapshot(&bed, ns), snap, "a preview changed the ensemble");

    // `--plan-only` under a real upgrade would let Helm record a release that does not scale:
    // refused.
    let out = helm.with_chart(
        "upgrade",
        &chart5,
        ns,
        &["--post-renderer-args", "--plan-only"],
    );
    assert!(
        !out.status.success(),
        "helm upgrade with --plan-only applied a jump"
    );
    assert!(
        helm.log_text()
            .contains("with --plan-only Helm would record a release that does not do it"),
        "{}",
        helm.log_text()
    );
    assert_eq!(snapshot(&bed, ns), snap);
    assert_eq!(release_status(helm, ns), ("deployed".into(), 1));

    // Explicit args win over the detection: `helm template … --execute` carries a change out.
    let out = helm.with_chart(
        "template",
        &bump,
        ns,
        &["--post-renderer-args", "--execute"],
    );
    ok(&out, "helm template --execute");
    wait_healthy(&bed, ns, 3).await;
    let images = pod_images(&bed, ns);
    assert_eq!(images.matches("3.9.3-debian-12-r9").count(), 3, "{images}");
    assert_eq!(count_znodes(&bed, ns).await, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn e2e_post_render_interrupted_upgrade_resumes() {
    let Some(bed) = Bed::get() else { return };
    let zk = bed.ensemble("pr-k").members(1).with(Helm::v4).up().await;
    let (ns, helm) = (zk.ns(), zk.helm());
    let chart = bed.chart(R3, ns);
    let args = helm.chart_args("upgrade", &chart, ns, &[]);
    let mut child = helm.spawn(&args);
    // Kill Helm in the middle of the first step (the new member exists, the old one not yet
    // restarted into the 2-list).
    wait_for(
        "step 1→2 under way",
        Duration::from_secs(120),
        || match sts_field(&bed, ns, ".spec.replicas").as_str() {
            "2" => Ok(()),
            r => Err(format!("replicas {r}")),
        },
    );
    child.kill().unwrap();
    let _ = child.wait();
    eprintln!("killed helm mid-step");
    let (status, rev) = release_status(helm, ns);
    assert_eq!((status.as_str(), rev), ("deployed", 1));
    // The same command again converges (waiting for the orphaned run to stop at a safe size).
    upgrade_checked(&bed, helm, ns, R3, 3).await;
    let log = helm.log_text();
    assert!(
        log.contains("is gone"),
        "the orphaned run did not notice: {log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn e2e_post_render_failures_change_nothing_or_stop_safely() {
    let Some(bed) = Bed::get() else { return };
    let zk = bed.ensemble("pr-f").members(1).with(Helm::v4).up().await;
    let (ns, helm) = (zk.ns(), zk.helm());
    let snap = snapshot(&bed, ns);

    // Bad manifests: a ZOO_SERVERS listing server 1 twice. Helm fails, nothing changes.
    let bad = bed.chart(R3, ns);
    let tpl = std::fs::read_dir(bad.join("templates"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "yaml"))
        .unwrap();
    let text0 = std::fs::read_to_string(&tpl).unwrap();
    std::fs::write(&tpl, text0.replace(":2888:3888::2", ":2888:3888::1")).unwrap();
    let out = helm.with_chart("upgrade", &bad, ns, &[]);
    assert!(!out.status.success(), "helm accepted a bad manifest");
    assert!(
        helm.log_text()
            .contains("ZOO_SERVERS lists server id 1 more than once"),
        "{}",
        helm.log_text()
    );
    assert_eq!(
        snapshot(&bed, ns),
        snap,
        "bad manifests changed the ensemble"
    );
    assert_eq!(release_status(helm, ns), ("deployed".into(), 1));

    // A gate that fails mid-way: member 3 cannot start. Run under a terminal (`script`), as a
    // person would: Helm 4 drops the plugin's stderr, the terminal still shows where it stopped.
    bed.block_pod_start(ns, &format!("{STS}-2"), "e2e: member 3 never starts");
    let chart = bed.chart(R3, ns);
    let mut args = helm.chart_args("upgrade", &chart, ns, &[]);
    args.extend(["--post-renderer-args".into(), "--timeout=40s".into()]);
    let line = std::iter::once(helm.bin.to_str().unwrap().to_string())
        .chain(args.iter().cloned())
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let helm_env = helm.command(&[]);
    let script = std::process::Command::new("script")
        .args(["-qefc", &line, "/dev/null"])
        .envs(
            helm_env
                .get_envs()
                .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned()))),
        )
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .expect("script");
    let shown = text(&script);
    eprintln!("--- terminal:\n{shown}");
    assert!(!script.status.success(), "the upgrade should fail");
    assert!(
        shown.contains("stopped at 2 member(s)"),
        "terminal: {shown}"
    );
    assert!(shown.contains("resumes"), "terminal: {shown}");
    assert_eq!(
        sts_field(&bed, ns, ".spec.replicas"),
        "2",
        "not left at the last safe size"
    );
    let v = wait_healthy(&bed, ns, 2).await;
    assert_eq!(v.voters.len(), 2);
    assert!(
        sts_field(&bed, ns, ".metadata.annotations.zkscale\\.io/status").starts_with("stopped")
    );
    let events = bed.kubectl(&[
        "get",
        "events",
        "-n",
        ns,
        "--field-selector",
        &format!("involvedObject.name={STS}"),
        "-o",
        "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}",
    ]);
    assert!(events.contains("Stopped: stopped at 2"), "{events}");
    assert_eq!(release_status(helm, ns), ("deployed".into(), 1));

    // Fixed: the same upgrade resumes from 2.
    bed.unblock_pod_start(ns, &format!("{STS}-2"));
    upgrade_checked(&bed, helm, ns, R3, 3).await;
}
