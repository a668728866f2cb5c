//! e2e: the admission guard (charts/zkscale-guard, a ValidatingAdmissionPolicy) enforced by
//! the bed's real kube-apiserver v1.33: every unsafe path is refused for every client, every
//! zkscale write passes, other StatefulSets are never touched; the override annotation lets
//! one change through and its reason lands in the audit log; Warn mode warns.
//!
//! The guard is cluster-scoped: the test binds it to its own namespace only (a label) and
//! removes it when done, so other tests never meet it.

mod support;

use std::process::Command;
use std::time::Instant;

use support::bed::Bed;
use support::chart::*;
use support::guard::{guard_chart, Guard};
use support::helm::{text, Helm, BIN};

const R2: &str = "bitnami-zookeeper-13.7.4-replicas-2";
const R3: &str = "bitnami-zookeeper-13.7.4-replicas-3";

fn refused(what: &str, out: Result<String, String>) -> String {
    let e = out.expect_err(&format!("{what} went through the guard"));
    assert!(
        e.contains("zkscale guard"),
        "{what}: not the guard's refusal: {e}"
    );
    eprintln!(
        "{what}: refused: {}",
        e.lines()
            .find(|l| l.contains("zkscale guard"))
            .unwrap_or(&e)
    );
    e
}

fn zkscale(bed: &Bed, ns: &str, to: u32) {
    let out = Command::new(BIN)
        .args(["-n", ns, "--to", &to.to_string(), "--timeout", "150s"])
        .env("KUBECONFIG", &bed.kubeconfig)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl zkscale --to {to} under the guard: {}",
        text(&out)
    );
}

async fn unchanged(bed: &Bed, ns: &str, n: usize) {
    assert_eq!(sts_field(bed, ns, ".spec.replicas"), n.to_string());
    let pods = bed.kubectl(&["get", "pods", "-n", ns, "-o", "name"]);
    let zk = pods.lines().filter(|l| l.contains(STS)).count();
    assert_eq!(zk, n, "{pods}");
    assert_eq!(znodes_on_each_member(bed, ns, n).await, vec![200; n]);
}

#[tokio::test(flavor = "multi_thread")]
async fn e2e_guard_refuses_unsafe_changes_from_every_client() {
    let Some(bed) = Bed::get() else { return };
    let zk = bed.ensemble("gd").members(1).znodes(200).up().await;
    let ns = zk.ns();
    let guard = Guard::install(&bed, ns, "Deny");
    let chart = |f: &str| bed.chart(f, ns).to_str().unwrap().to_string();

    // Plain Helm: the field report's jump.
    refused(
        "helm upgrade r1→r3",
        bed.helm_try(&["upgrade", "zk", &chart(R3), "-n", ns]),
    );
    unchanged(&bed, ns, 1).await;
    // As a GitOps controller does it: the chart rendered and applied.
    // (Only its StatefulSet: the objects it would take over from Helm are not the point.)
    let plain: String = bed
        .helm(&["template", "zk", &chart(R3), "-n", ns])
        .split_inclusive("\n---")
        .filter(|d| d.contains("kind: StatefulSet"))
        .collect::<String>()
        .trim_end_matches("---")
        .to_string();
    refused(
        "kubectl apply --server-side of r3",
        // A controller takes the fields over (`--force-conflicts`, as Argo CD's server-side
        // apply does), so only the guard can stop it.
        bed.kubectl_stdin(
            &[
                "apply",
                "--server-side",
                "--force-conflicts",
                "-n",
                ns,
                "-f",
                "-",
            ],
            plain.as_bytes(),
        ),
    );
    // kubectl scale: the scale subresource, ZOO_SERVERS left behind.
    refused(
        "kubectl scale --replicas=2",
        bed.kubectl_try(&["scale", "sts", STS, "-n", ns, "--replicas=2"]),
    );
    unchanged(&bed, ns, 1).await;

    // One member at a time with a list that follows: allowed, even by plain Helm.
    bed.helm(&["upgrade", "zk", &chart(R2), "-n", ns]);
    wait_rolled(&bed, ns, 2);
    wait_healthy(&bed, ns, 2).await;
    // zkscale's own writes pass: through Helm's post-renderer (2→3) and the plugin (3→5→4).
    let helm = Helm::v4(&bed);
    let out = helm.with_chart("upgrade", &bed.chart(R3, ns), ns, &[]);
    assert!(
        out.status.success(),
        "helm upgrade --post-renderer zkscale under the guard: {}",
        text(&out)
    );
    wait_healthy(&bed, ns, 3).await;
    assert_eq!(znodes_on_each_member(&bed, ns, 3).await, vec![200; 3]);
    // helm rollback runs no post-renderer: back to revision 1 (one member) is a jump.
    // (Helm 4's server-side apply already stops at zkscale owning replicas and ZOO_SERVERS;
    // `--force-conflicts` takes them over, and then only the guard stands in the way.)
    assert!(bed.helm_try(&["rollback", "zk", "1", "-n", ns]).is_err());
    refused(
        "helm rollback --force-conflicts to the 1-member revision",
        bed.helm_try(&["rollback", "zk", "1", "-n", ns, "--force-conflicts"]),
    );
    unchanged(&bed, ns, 3).await;
    zkscale(&bed, ns, 5);
    zkscale(&bed, ns, 4);
    wait_healthy(&bed, ns, 4).await;
    assert_eq!(znodes_on_each_member(&bed, ns, 4).await, vec![200; 4]);
    // A server list that moves an existing member is refused too.
    let servers = sts_env(&bed, ns, "ZOO_SERVERS");
    let moved = servers.replacen("::1", "::9", 1);
    let patch = format!(
        r#"{{"spec":{{"template":{{"spec":{{"containers":[{{"name":"zookeeper","env":[{{"name":"ZOO_SERVERS","value":"{moved}"}}]}}]}}}}}}}}"#
    );
    refused(
        "a server id given another address",
        bed.kubectl_try(&[
            "patch",
            "sts",
            STS,
            "-n",
            ns,
            "--type",
            "strategic",
            "-p",
            &patch,
        ]),
    );

    // Another app's StatefulSet scales freely.
    bed.kubectl_stdin(
        &["apply", "-n", ns, "-f", "-"],
        br#"{"apiVersion":"apps/v1","kind":"StatefulSet","metadata":{"name":"other","labels":{"app":"other"}},
            "spec":{"replicas":1,"selector":{"matchLabels":{"app":"other"}},"serviceName":"other",
            "template":{"metadata":{"labels":{"app":"other"}},"spec":{"containers":[{"name":"c","image":"busybox"}]}}}}"#,
    )
    .unwrap();
    bed.kubectl(&["scale", "sts", "other", "-n", ns, "--replicas=5"]);

    // Latency of 200 StatefulSet updates with and without the policy (printed, not asserted).
    let updates = |label: &str| {
        let start = Instant::now();
        for i in 0..200 {
            bed.kubectl(&[
                "annotate",
                "sts",
                STS,
                "-n",
                ns,
                "--overwrite",
                &format!("zkscale.io/bench={label}{i}"),
            ]);
        }
        start.elapsed()
    };
    let with = updates("with");

    // The override annotation forces one change through, and its reason reaches the audit log.
    let force = r#"{"metadata":{"annotations":{"zkscale.io/allow-unsafe":"e2e: forced on purpose"}},"spec":{"replicas":6}}"#;
    bed.kubectl(&[
        "patch", "sts", STS, "-n", ns, "--type", "merge", "-p", force,
    ]);
    assert_eq!(sts_field(&bed, ns, ".spec.replicas"), "6");
    // Only one: the same annotation again forces nothing.
    refused(
        "a second jump with the same override",
        bed.kubectl_try(&[
            "patch",
            "sts",
            STS,
            "-n",
            ns,
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"replicas":2}}"#,
        ]),
    );
    let audit = std::fs::read_to_string(bed.kubeconfig.parent().unwrap().join("logs/audit.log"))
        .unwrap_or_default();
    assert!(
        audit.contains("zkscale guard overridden: e2e: forced on purpose"),
        "no audit annotation"
    );

    // Warn: the change goes through and the client shows the warning.
    drop(guard);
    let guard = Guard::install(&bed, ns, "Warn");
    let out = Command::new(&bed.kubectl)
        .args(["scale", "sts", STS, "-n", ns, "--replicas=1"])
        .env("KUBECONFIG", &bed.kubeconfig)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("Warning") && text(&out).contains("zkscale guard"),
        "{}",
        text(&out)
    );
    // `status` says whether it is covered.
    let st = Command::new(BIN)
        .args(["-n", ns, "guard", "--check"])
        .env("KUBECONFIG", &bed.kubeconfig)
        .output()
        .unwrap();
    assert_eq!(st.status.code(), Some(5), "{}", text(&st));
    assert!(text(&st).contains("on trial (Warn)"), "{}", text(&st));
    drop(guard);
    let st = Command::new(BIN)
        .args(["-n", ns, "guard", "--check"])
        .env("KUBECONFIG", &bed.kubeconfig)
        .output()
        .unwrap();
    assert_eq!(st.status.code(), Some(5), "{}", text(&st));
    assert!(text(&st).contains("not covered"), "{}", text(&st));
    let without = updates("without");
    eprintln!(
        "200 StatefulSet updates: {:.2}s with the guard, {:.2}s without: ratio {:.2}",
        with.as_secs_f64(),
        without.as_secs_f64(),
        with.as_secs_f64() / without.as_secs_f64()
    );
}

/// `kubectl zkscale guard` prints what the chart renders (real Helm 4), for the defaults and
/// for other values; `guard --check` says covered (exit 0) once applied.
#[tokio::test(flavor = "multi_thread")]
async fn e2e_guard_command_prints_the_chart() {
    let Some(bed) = Bed::get() else { return };
    // The same objects (Helm orders them by kind).
    let docs = |text: &str| -> Vec<serde_yaml::Value> {
        let mut v: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(text)
            .map(|d| serde::Deserialize::deserialize(d).unwrap())
            .filter(|v: &serde_yaml::Value| !v.is_null())
            .collect();
        v.sort_by_key(|d| format!("{:?}/{:?}", d["kind"], d["metadata"]["name"]));
        v
    };
    let ours = |args: &[&str]| {
        let o = Command::new(BIN).arg("guard").args(args).output().unwrap();
        assert!(o.status.success(), "{}", text(&o));
        String::from_utf8(o.stdout).unwrap()
    };
    let chart = guard_chart();
    assert_eq!(
        docs(&ours(&[])),
        docs(&bed.helm(&["template", "g", &chart]))
    );
    assert_eq!(
        docs(&ours(&[
            "--actions",
            "warn,audit",
            "--namespace-labels",
            "team=zk",
            "--override-annotation",
            "x.io/force"
        ])),
        docs(&bed.helm(&[
            "template",
            "g",
            &chart,
            "--set",
            "validationActions={Warn,Audit}",
            "--set-json",
            r#"namespaceSelector={"matchLabels":{"team":"zk"}}"#,
            "--set",
            "overrideAnnotation=x.io/force",
        ]))
    );
    let ns = bed.namespace("gc");
    bed.kubectl(&["label", "ns", &ns.name, "gc=yes"]);
    let manifests = ours(&["--namespace-labels", "gc=yes"]);
    bed.kubectl_stdin(&["apply", "-f", "-"], manifests.as_bytes())
        .unwrap();
    let st = Command::new(BIN)
        .args(["-n", &ns.name, "guard", "--check"])
        .env("KUBECONFIG", &bed.kubeconfig)
        .output()
        .unwrap();
    let said = text(&st);
    bed.kubectl_stdin(&["delete", "-f", "-"], manifests.as_bytes())
        .unwrap();
    assert_eq!(st.status.code(), Some(0), "{said}");
    assert!(said.contains("covered (Deny)"), "{said}");
}
