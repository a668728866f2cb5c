//! Safety defects of issue 23 on the test bed (real control plane, real ZooKeeper 3.9.3):
//!
//! - persistence off (`persistence.enabled=false`: the data volume is an emptyDir, which in a
//!   cluster and now on the bed dies with its pod): a pod deleted comes back empty; 1→3 is
//!   refused with nothing changed, by `kubectl zkscale --to` and by `helm upgrade
//!   --post-renderer zkscale`; 3→5 is carried out with every znode on every member;
//! - a stale `zkscale.io/operation` annotation does not let a new pod template in on an
//!   ensemble with a member down.

mod support;

use support::bed::Bed;
use support::chart::*;
use support::cli::{run, zkscale};
use support::helm::{text, Helm};

const R1: &str = "bitnami-zookeeper-13.7.4-replicas-1";
const R3: &str = "bitnami-zookeeper-13.7.4-replicas-3";
const R5: &str = "bitnami-zookeeper-13.7.4-replicas-5";
const BUMP: &str = "bitnami-zookeeper-13.7.4-replicas-3-image-bump";

/// The fixture chart `fixture` for `ns` as the real chart renders it with
/// `persistence.enabled=false`: no `volumeClaimTemplates`, and the `data` volume (mounted at
/// `/bitnami/zookeeper`) an emptyDir among the pod's volumes (bitnami/charts
/// `zookeeper/templates/statefulset.yaml`: `{{- else if not .Values.persistence.enabled }}
/// - name: data emptyDir: {}`).
fn persistence_off(bed: &Bed, fixture: &str, ns: &str) -> std::path::PathBuf {
    let dir = bed.chart(fixture, ns);
    let manifest = dir.join("templates").join("manifest.yaml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let (head, claims) = text
        .split_once("  volumeClaimTemplates:\n")
        .expect("the fixture has volumeClaimTemplates");
    // The StatefulSet is the last document; its claim templates end the file.
    assert!(
        !claims.contains("\n---"),
        "documents after the claim templates"
    );
    let scripts = "            name: zk-zookeeper-scripts\n            defaultMode: 493\n";
    assert!(head.contains(scripts), "no scripts volume in {fixture}");
    let off = head.replace(
        scripts,
        &format!("{scripts}        - name: data\n          emptyDir: {{}}\n"),
    );
    std::fs::write(&manifest, off).unwrap();
    dir
}

fn install(bed: &Bed, chart: &std::path::Path, ns: &str) {
    bed.helm(&["install", "zk", chart.to_str().unwrap(), "-n", ns]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_persistence_off_1_to_3_refused_3_to_5_keeps_every_znode() {
    let Some(bed) = Bed::get() else { return };

    // One member, persistence off, 200 znodes.
    let ns1 = bed.namespace("ephem-1");
    let ns = ns1.name.as_str();
    install(&bed, &persistence_off(&bed, R1, ns), ns);
    wait_rolled(&bed, ns, 1);
    wait_healthy(&bed, ns, 1).await;
    assert_eq!(sts_field(&bed, ns, ".spec.volumeClaimTemplates"), "");
    write_znodes(&bed, ns, 200).await;
    assert_eq!(count_znodes(&bed, ns).await, 200);

    // 1→3: refused (exit 3), nothing changed: same size, same pod, every znode.
    let uid = pod_uid(&bed, ns, &format!("{STS}-0"));
    let out = run(zkscale(&bed, ns, &["--to", "3"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("keep no data across a restart"), "{stderr}");
    assert!(stderr.contains("1→2"), "{stderr}");
    // The post-renderer refuses the same (Helm aborts, nothing applied).
    let helm = Helm::v4(&bed);
    let out = helm.with_chart("upgrade", &persistence_off(&bed, R3, ns), ns, &[]);
    assert!(!out.status.success(), "helm upgrade 1→3: {}", text(&out));
    assert!(
        helm.log_text().contains("keep no data across a restart"),
        "{}",
        helm.log_text()
    );
    assert_eq!(sts_field(&bed, ns, ".spec.replicas"), "1");
    assert_eq!(pod_uid(&bed, ns, &format!("{STS}-0")), uid);
    assert_eq!(count_znodes(&bed, ns).await, 200);

    // The bed now behaves as a cluster: the emptyDir dies with its pod, so the member comes
    // back empty (the runner kept it under the pod's name before: 200 survived).
    recreate_pod(&bed, ns, &format!("{STS}-0"));
    wait_healthy(&bed, ns, 1).await;
    assert_eq!(
        count_znodes(&bed, ns).await,
        0,
        "an emptyDir outlived its pod"
    );
    drop(ns1);

    // Three members, persistence off: 3→5 restarts each member once, one at a time, each
    // resyncing from the others; nothing is lost.
    let ns3 = bed.namespace("ephem-3");
    let ns = ns3.name.as_str();
    install(&bed, &persistence_off(&bed, R3, ns), ns);
    wait_rolled(&bed, ns, 3);
    wait_healthy(&bed, ns, 3).await;
    write_znodes(&bed, ns, 200).await;
    let before = pod_uids(&bed, ns);
    let start = std::time::Instant::now();
    let out = run(zkscale(&bed, ns, &["--to", "5"]));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let took = start.elapsed();
    wait_healthy(&bed, ns, 5).await;
    let counts = znodes_on_each_member(&bed, ns, 5).await;
    eprintln!("persistence off 3→5: {took:?}, znodes per member {counts:?}");
    assert_eq!(counts, [200; 5]);
    // Every original member did restart (so each came back empty and resynced).
    let after = pod_uids(&bed, ns);
    for uid in before.split_whitespace() {
        assert!(!after.contains(uid), "pod {uid} was never restarted");
    }
    // The post-renderer agrees: the chart at 5 through it changes nothing more.
    let helm = Helm::v4(&bed);
    let out = helm.with_chart("upgrade", &persistence_off(&bed, R5, ns), ns, &[]);
    assert!(out.status.success(), "helm upgrade at 5: {}", text(&out));
    assert_eq!(znodes_on_each_member(&bed, ns, 5).await, [200; 5]);
}

/// Issue 23, defect 3: with one member down and a stale `zkscale.io/operation` annotation, a
/// new pod template through the post-renderer is refused before anything changes (main
/// 77ec877 skipped the gate when the annotation was set, wrote the template and ended saying
/// the ensemble was whole).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_stale_operation_does_not_skip_the_template_gate() {
    let Some(bed) = Bed::get() else { return };
    let zk = bed
        .ensemble("stale-op")
        .members(3)
        .znodes(200)
        .with(Helm::v4)
        .up()
        .await;
    let ns = zk.ns();
    let stale =
        r#"{"target":3,"step":"3→4","holder":"a run long gone","at":"2026-01-01T00:00:00Z"}"#;
    bed.kubectl(&[
        "annotate",
        "statefulset",
        "-n",
        ns,
        STS,
        &format!("zkscale.io/operation={stale}"),
    ]);
    // Server 2 down: its pod cannot start again.
    let down = format!("{STS}-1");
    bed.block_pod_start(ns, &down, "issue 23 defect 3: a member down");
    bed.kubectl(&["delete", "pod", "-n", ns, &down, "--wait=true"]);
    let image_before = sts_field(&bed, ns, ".spec.template.spec.containers[0].image");
    let generation = sts_field(&bed, ns, ".metadata.generation");

    let helm = zk.helm();
    let out = helm.with_chart("upgrade", &bed.chart(BUMP, ns), ns, &[]);
    let log = helm.log_text();
    bed.unblock_pod_start(ns, &down);
    assert!(
        !out.status.success(),
        "the bump went through: {}",
        text(&out)
    );
    assert!(log.contains("not healthy"), "{log}");
    assert!(!log.contains("apply the new pod template"), "{log}");
    assert_eq!(
        sts_field(&bed, ns, ".spec.template.spec.containers[0].image"),
        image_before
    );
    assert_eq!(sts_field(&bed, ns, ".metadata.generation"), generation);
    // Once the member is back, the same upgrade goes through.
    wait_healthy(&bed, ns, 3).await;
    let out = helm.with_chart("upgrade", &bed.chart(BUMP, ns), ns, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(znodes_on_each_member(&bed, ns, 3).await, [200; 3]);
}

// ---------------------------------------------------------------------------------------------
// Issue 23, defect 5: an API error right after a migration's source member was stopped.

fn service_host(ns: &str, id: u32) -> String {
    format!("{STS}-member-{id}.{ns}.svc.cluster.local")
}

/// Three source members with 200 znodes whose lists name the Services (created by a first,
/// refused, run of zkscale), leader 3: `e2e_migrate`'s opening, shortened.
async fn sources_ready(bed: &Bed, ns: &str) -> support::sources::Sources {
    use support::sources::{wait_resolves, Sources};
    let ids = [1, 2, 3];
    let src = Sources::new(bed, &ids);
    for id in ids {
        src.configure(id, |s| src.ip(s).to_string());
    }
    for id in ids.iter().rev() {
        src.start(*id);
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    src.wait_healthy().await;
    src.write_znodes(1, 200).await;
    let out = run(zkscale(
        bed,
        ns,
        &[
            "migrate",
            "--from",
            &src.entries_arg(),
            "--host-ip",
            &src.host_ip_arg(),
        ],
    ));
    assert_eq!(out.status.code(), Some(3), "the lists name the hosts");
    for id in ids {
        wait_resolves(bed, &service_host(ns, id), &src.ip(id).to_string());
    }
    for id in ids {
        src.stop(id);
        src.configure(id, |s| service_host(ns, s));
        src.start(id);
        src.wait_healthy().await;
    }
    src
}

/// Right after source 1 is stopped (inside `--stop-cmd`), the API server starts refusing
/// every StatefulSet write in the namespace (a ValidatingAdmissionPolicy): the StatefulSet
/// cannot grow, so no pod is created. zkscale must not leave server 1 stopped with only the
/// API's error: its Service goes back to the host, the source starts again, the ensemble is
/// gated whole, exit 4 saying so; once the API accepts writes again, the same command moves
/// everyone, nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_migrate_api_error_after_stop_moves_the_member_back() {
    let Some(bed) = Bed::get() else { return };
    let ns = bed.namespace("mig-api");
    let ns = ns.name.as_str();
    install_empty_release(&bed, ns);
    let src = sources_ready(&bed, ns).await;
    let policy = format!("zkscale-test-fault-{ns}");
    let fault = src.root().join("deny-statefulset-writes.yaml");
    std::fs::write(
        &fault,
        format!(
            "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicy\n\
             metadata: {{name: {policy}}}\nspec:\n  failurePolicy: Fail\n  matchConstraints:\n    \
             namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: {ns}}}}}\n    \
             resourceRules:\n    - {{apiGroups: [apps], apiVersions: [v1], operations: [UPDATE], \
             resources: [statefulsets]}}\n  validations:\n  - {{expression: 'false', message: \
             'test fault: StatefulSet writes refused'}}\n---\n\
             apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicyBinding\n\
             metadata: {{name: {policy}}}\nspec: {{policyName: {policy}, validationActions: [Deny]}}\n"
        ),
    )
    .unwrap();
    // The stop command stops the source, then turns the fault on (and gives the API server a
    // moment to load the policy).
    let stop_then_fault = format!(
        "{} && KUBECONFIG={} {} apply -f {} >&2 && sleep 3",
        src.cmd("stop"),
        bed.kubeconfig.display(),
        bed.kubectl.display(),
        fault.display()
    );
    let (starts, stops) = (src.count(1, "start"), src.count(1, "stop"));
    let from = src.entries_arg();
    let host_ips = src.host_ip_arg();
    let (stop_cmd, start_cmd) = (src.cmd("stop"), src.cmd("start"));
    let args = |stop: &str| -> Vec<String> {
        [
            "migrate",
            "--from",
            &from,
            "--host-ip",
            &host_ips,
            "--stop-cmd",
            stop,
            "--start-cmd",
            &start_cmd,
            "--timeout",
            "60s",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let a = args(&stop_then_fault);
    let out = run(zkscale(
        &bed,
        ns,
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    let _ = bed.kubectl_try(&["delete", "-f", fault.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("test fault"), "the cause is said: {err}");
    assert!(
        err.contains("server 1 was not moved")
            && err.contains(&format!("runs on {} again", src.ip(1))),
        "{err}"
    );
    assert_eq!(src.count(1, "stop") - stops, 1, "source 1 stopped once");
    assert_eq!(src.count(1, "start") - starts, 1, "source 1 started again");
    assert_eq!(sts_field(&bed, ns, ".spec.replicas"), "0");
    let v = src.wait_healthy().await;
    eprintln!("after the fault: {}", v.summary());

    // The API accepts writes again (the policy may take a moment to go): the same command
    // finishes the migration.
    let a = args(&stop_cmd);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let mut done = None;
    for _ in 0..5 {
        let out = run(zkscale(&bed, ns, &a));
        if out.status.code() == Some(0) {
            done = Some(out);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    }
    assert!(
        done.is_some(),
        "the migration never finished after the fault"
    );
    wait_healthy(&bed, ns, 3).await;
    assert_eq!(znodes_on_each_member(&bed, ns, 3).await, [200; 3]);
}
