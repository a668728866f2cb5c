//! e2e for `kubectl zkscale` on the test bed (real control plane, real ZooKeeper 3.9.3, bitnami
//! fixture charts installed with real Helm 4), with a client writing throughout every run.
//!
//! Run alone with `make e2e`. Serial: each ensemble is several JVMs on a 2-core machine.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::bed::{wait_for, Bed};
use support::chart::*;
use support::cli::{run, zkscale, BIN};
use support::writer::{self, Writer};

fn start_writer(bed: &Bed, ns: &str) -> Writer {
    Writer::start(pod_addrs(bed, ns))
}

/// Scales with the binary while the writer runs; asserts success, health, nothing lost.
async fn scale_checked(bed: &Bed, ns: &str, to: usize) {
    let w = start_writer(bed, ns);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = Instant::now();
    let out = run(zkscale(bed, ns, &["--to", &to.to_string()]));
    let took = started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let report = w.stop();
    assert_eq!(
        out.status.code(),
        Some(0),
        "kubectl zkscale --to {to} failed"
    );
    let v = wait_healthy(bed, ns, to).await;
    assert_eq!(v.voters.len(), to);
    let addr = member_addrs(bed, ns, to).remove(0);
    let lost = writer::lost(&addr, &report).await;
    eprintln!(
        "--to {to}: {:.1}s, {} acknowledged writes, {} errors, longest gap {:.1}s, lost {}",
        took.as_secs_f64(),
        report.acked.len(),
        report.errors,
        report.longest_gap.as_secs_f64(),
        lost.len()
    );
    assert!(
        lost.is_empty(),
        "acknowledged writes lost scaling to {to}: {lost:?}"
    );
    assert!(
        !report.acked.is_empty(),
        "the writer never got a write through"
    );
    assert_eq!(
        count_znodes(bed, ns).await,
        200,
        "znodes under /data lost scaling to {to}"
    );
    assert_eq!(sts_field(bed, ns, ".spec.replicas"), to.to_string());
}

/// 1→3, 3→3 (no-op), 3→5, 5→3, 3→1 on one release, writing all along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_scale_chain_keeps_every_write() {
    let Some(bed) = Bed::get() else { return };
    let zk = bed.ensemble("e2e-chain").members(1).znodes(200).up().await;
    let ns = zk.ns();
    for to in [3, 3, 5, 3, 1] {
        scale_checked(&bed, ns, to).await;
    }
    // Scale-down deleted the removed members' claims: nothing stale left to rejoin later.
    let claims = bed.kubectl(&["get", "pvc", "-n", ns, "-o", "name"]);
    assert_eq!(claims.lines().count(), 1, "claims left: {claims}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_scale_1_to_5() {
    let Some(bed) = Bed::get() else { return };
    let zk = bed.ensemble("e2e-1to5").members(1).znodes(200).up().await;
    let ns = zk.ns();
    scale_checked(&bed, ns, 5).await;
}

/// A second run is refused while the first holds the lease; the first is killed with SIGKILL
/// mid-step; once the dead run's lease expires, the same command converges with nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_kill_mid_step_then_rerun_converges() {
    let Some(bed) = Bed::get() else { return };
    let zk = bed.ensemble("e2e-kill").members(1).znodes(200).up().await;
    let ns = zk.ns();
    let w = start_writer(&bed, ns);

    let mut first = zkscale(&bed, ns, &["--to", "3"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(first.stderr.take().unwrap()).lines();
    // Wait until it is inside step 2→3 (after the first restart of that step began).
    let mut seen_step2 = false;
    for line in lines.by_ref() {
        let line = line.unwrap();
        eprintln!("first run: {line}");
        if line.contains("step 2→3") {
            seen_step2 = true;
        }
        if seen_step2 && line.contains("restart ") {
            break;
        }
    }
    assert!(seen_step2, "first run ended before step 2→3");

    let second = run(zkscale(&bed, ns, &["--to", "3"]));
    assert_eq!(
        second.status.code(),
        Some(3),
        "a concurrent run must be refused"
    );
    let msg = String::from_utf8_lossy(&second.stderr);
    assert!(
        msg.contains("holds the lock") && msg.contains("since"),
        "{msg}"
    );

    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    std::thread::spawn(move || for _ in lines {});

    // The dead run's lease is still fresh at first: refused with exit 3 until it expires.
    wait_for(
        "rerun after the killed run's lease expires",
        Duration::from_secs(300),
        || {
            let out = run(zkscale(&bed, ns, &["--to", "3"]));
            match out.status.code() {
                Some(0) => Ok(()),
                Some(3) if String::from_utf8_lossy(&out.stderr).contains("holds the lock") => {
                    Err("lock held".into())
                }
                other => panic!("rerun failed with {other:?}"),
            }
        },
    );
    let report = w.stop();
    wait_healthy(&bed, ns, 3).await;
    let addr = member_addrs(&bed, ns, 3).remove(0);
    let lost = writer::lost(&addr, &report).await;
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    assert_eq!(count_znodes(&bed, ns).await, 200);
    let op = sts_field(&bed, ns, ".metadata.annotations.zkscale\\.io/operation");
    assert!(op.is_empty(), "operation annotation left behind: {op}");
}

/// A new member that never starts: the run rolls back to the last safe size, exit 4.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_member_that_cannot_start_stops_at_safe_size() {
    let Some(bed) = Bed::get() else { return };
    let zk = bed.ensemble("e2e-block").members(1).znodes(200).up().await;
    let ns = zk.ns();
    bed.block_pod_start(ns, &format!("{STS}-1"), "e2e: member 1 must never start");
    let out = run(zkscale(&bed, ns, &["--to", "3", "--timeout", "40s"]));
    assert_eq!(
        out.status.code(),
        Some(4),
        "expected exit 4 (stopped at a safe size)"
    );
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(msg.contains("stopped at 1 member"), "{msg}");
    assert!(msg.contains("re-run"), "{msg}");
    assert_eq!(sts_field(&bed, ns, ".spec.replicas"), "1");
    let op = sts_field(&bed, ns, ".metadata.annotations.zkscale\\.io/operation");
    assert!(
        op.is_empty(),
        "a rolled-back step is no operation in progress: {op}"
    );
    let v = wait_healthy(&bed, ns, 1).await;
    assert!(v.healthy);
    assert_eq!(count_znodes(&bed, ns).await, 200);
    let claims = bed.kubectl(&["get", "pvc", "-n", ns, "-o", "name"]);
    assert_eq!(
        claims.lines().count(),
        1,
        "the failed member's claim must not be left to rejoin: {claims}"
    );
}

/// A claim left by an earlier scale-down (kept on purpose) blocks the next scale-up until
/// deleted: a member must never join with stale data unnoticed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_stale_claim_refused_then_cleaned_with_flag() {
    let Some(bed) = Bed::get() else { return };
    let zk = bed.ensemble("e2e-stale").members(3).znodes(200).up().await;
    let ns = zk.ns();
    let down = run(zkscale(&bed, ns, &["--to", "2", "--keep-removed-claims"]));
    assert_eq!(down.status.code(), Some(0));
    let up = run(zkscale(&bed, ns, &["--to", "3"]));
    assert_eq!(
        up.status.code(),
        Some(3),
        "scale-up onto a stale claim must be refused"
    );
    assert!(String::from_utf8_lossy(&up.stderr).contains(&format!("data-{STS}-2")));
    assert_eq!(
        sts_field(&bed, ns, ".spec.replicas"),
        "2",
        "refused means unchanged"
    );
    let up = run(zkscale(&bed, ns, &["--to", "3", "--delete-stale-claims"]));
    assert_eq!(up.status.code(), Some(0));
    wait_healthy(&bed, ns, 3).await;
    assert_eq!(count_znodes(&bed, ns).await, 200);
}

/// `status` and a scale run as a ServiceAccount bound to exactly the documented Role.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_runs_with_the_minimal_role() {
    let Some(bed) = Bed::get() else { return };
    let zk = bed.ensemble("e2e-rbac").members(1).znodes(200).up().await;
    let ns = zk.ns();
    let role = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/rbac/role.yaml");
    bed.kubectl(&["apply", "-n", ns, "-f", role.to_str().unwrap()]);
    bed.kubectl(&["create", "serviceaccount", "-n", ns, "zkscale"]);
    bed.kubectl(&[
        "create",
        "rolebinding",
        "-n",
        ns,
        "zkscale",
        "--role=kubectl-zkscale",
        &format!("--serviceaccount={}:zkscale", ns),
    ]);
    let token = bed.kubectl(&["create", "token", "-n", ns, "zkscale"]);
    let server = bed.kubectl(&[
        "config",
        "view",
        "--minify",
        "-o",
        "jsonpath={.clusters[0].cluster.server}",
    ]);
    let ca = bed.kubectl(&[
        "config",
        "view",
        "--minify",
        "-o",
        "jsonpath={.clusters[0].cluster.certificate-authority}",
    ]);
    let kc = std::env::temp_dir().join(format!("zkscale-sa-{}.kubeconfig", ns));
    std::fs::write(
        &kc,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: bed, cluster: {{server: '{server}', certificate-authority: '{ca}'}}}}]\n\
             users: [{{name: sa, user: {{token: '{}'}}}}]\n\
             contexts: [{{name: sa, context: {{cluster: bed, user: sa, namespace: '{}'}}}}]\ncurrent-context: sa\n",
            token.trim(),
            ns
        ),
    )
    .unwrap();
    let printed = std::cell::RefCell::new(String::new());
    let as_sa = |args: &[&str]| {
        let mut c = Command::new(BIN);
        c.arg("--kubeconfig").arg(&kc).args(args);
        let out = run(c);
        let mut p = printed.borrow_mut();
        p.push_str(&String::from_utf8_lossy(&out.stdout));
        p.push_str(&String::from_utf8_lossy(&out.stderr));
        out
    };
    // The ServiceAccount cannot do more than the Role allows.
    let forbidden = Command::new(&bed.kubectl)
        .args(["--kubeconfig", kc.to_str().unwrap(), "get", "secrets"])
        .output()
        .unwrap();
    assert!(
        !forbidden.status.success(),
        "the Role must not grant secrets"
    );
    assert_eq!(as_sa(&["status"]).status.code(), Some(0));
    // With the debug trail on (-vv: zkscale at trace, kube at debug).
    assert_eq!(
        as_sa(&["--to", "2", "--timeout", "150s", "-vv"])
            .status
            .code(),
        Some(0)
    );
    wait_healthy(&bed, ns, 2).await;
    assert_eq!(count_znodes(&bed, ns).await, 200);
    // The bearer token shows nowhere: not in what the runs printed, the debug trail included,
    // nor in the annotations and Events they left.
    let token = token.trim();
    assert!(token.len() > 20, "a token: {token}");
    let mut places = vec![("output", printed.borrow().clone())];
    places.extend(left_in_cluster(&bed, ns));
    for (what, text) in places {
        assert!(!text.is_empty(), "nothing in {what}");
        assert!(!text.contains(token), "the bearer token in {what}");
    }
}
