//! The built `kubectl-zkscale` run against the bed, as a user runs it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};

use super::bed::Bed;

pub const BIN: &str = env!("CARGO_BIN_EXE_kubectl-zkscale");

/// `kubectl-zkscale -n <ns> --timeout 150s <args>` with the bed's kubeconfig.
pub fn zkscale(bed: &Bed, ns: &str, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(["-n", ns, "--timeout", "150s"])
        .args(args)
        .env("KUBECONFIG", &bed.kubeconfig);
    c
}

/// Runs it to the end; the exit code and everything it printed go to the test's log.
pub fn run(mut c: Command) -> Output {
    let out = c.output().expect("run kubectl-zkscale");
    eprintln!(
        "--- kubectl-zkscale exit {:?}\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    out
}

/// Runs `c` (which must print JSON events: `-o json`) and kills it (-9) at the first event
/// `at` accepts; panics if the run ends before that.
pub fn kill_at(mut c: Command, at: impl Fn(&serde_json::Value) -> bool) {
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start kubectl-zkscale");
    let out = child.stdout.take().expect("its stdout");
    let mut hit = false;
    for line in BufReader::new(out).lines().map_while(Result::ok) {
        let Ok(e) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if at(&e) {
            eprintln!("killing the run at {e}");
            hit = true;
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(hit, "the run ended before the kill point");
}

/// A kubeconfig for a new ServiceAccount `zkscale` in `ns` bound to exactly the Roles in
/// `roles` (files of `charts/rbac`, applied to `ns`), with its own token: a run with it can do
/// what those Roles grant and nothing more.
pub fn service_account(bed: &Bed, ns: &str, roles: &[&str]) -> std::path::PathBuf {
    bed.kubectl(&["create", "serviceaccount", "-n", ns, "zkscale"]);
    for file in roles {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("charts/rbac")
            .join(file);
        let name = bed.kubectl(&[
            "apply",
            "-n",
            ns,
            "-f",
            path.to_str().unwrap(),
            "-o",
            "jsonpath={.metadata.name}",
        ]);
        bed.kubectl(&[
            "create",
            "rolebinding",
            "-n",
            ns,
            &format!("zkscale-{name}"),
            &format!("--role={name}"),
            &format!("--serviceaccount={ns}:zkscale"),
        ]);
    }
    let token = bed.kubectl(&["create", "token", "-n", ns, "zkscale"]);
    let view = |path: &str| {
        bed.kubectl(&[
            "config",
            "view",
            "--minify",
            "-o",
            &format!("jsonpath={{.clusters[0].cluster.{path}}}"),
        ])
    };
    let (server, ca) = (view("server"), view("certificate-authority"));
    let kc = std::env::temp_dir().join(format!("zkscale-sa-{ns}.kubeconfig"));
    std::fs::write(
        &kc,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: bed, cluster: {{server: '{server}', certificate-authority: '{ca}'}}}}]\n\
             users: [{{name: sa, user: {{token: '{}'}}}}]\n\
             contexts: [{{name: sa, context: {{cluster: bed, user: sa, namespace: '{ns}'}}}}]\ncurrent-context: sa\n",
            token.trim()
        ),
    )
    .unwrap();
    kc
}

/// [`zkscale`] with another kubeconfig (a ServiceAccount's).
pub fn zkscale_with(kubeconfig: &std::path::Path, ns: &str, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(["-n", ns, "--timeout", "150s"])
        .args(args)
        .env("KUBECONFIG", kubeconfig);
    c
}
