//! Issue 23 on the test bed: what only a real API server shows. `migrate plan` with a source
//! that does not answer (77ec877 said "elections expected: 0" and exited 0: the run it
//! planned would be refused), and a plan that cannot be made said as one (not "stopped at N
//! member(s) … re-run to resume", exit 4).

mod support;

use std::process::Command;

use support::bed::Bed;
use support::chart::install_empty_release;
use support::cli::run;
use support::sources::Sources;

/// The binary under test; `ZKSCALE_TEST_BIN` runs the same checks against another build (how
/// this test was shown to fail on 77ec877).
fn zkscale(bed: &Bed, ns: &str, args: &[&str]) -> Command {
    let bin = std::env::var("ZKSCALE_TEST_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_kubectl-zkscale").to_string());
    let mut c = Command::new(bin);
    c.args(["-n", ns, "--timeout", "150s"])
        .args(args)
        .env("KUBECONFIG", &bed.kubeconfig);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_hostile_plans_refuse_what_the_run_would_refuse() {
    let Some(bed) = Bed::get() else { return };
    let ns = bed.namespace("hostile");
    let ns = ns.name.as_str();
    install_empty_release(&bed, ns);
    // Three source members that were never started: nothing answers.
    let src = Sources::new(&bed, &[1, 2, 3]);
    let from = src.entries_arg();
    let host_ips = src.host_ip_arg();
    let out = run(zkscale(
        &bed,
        ns,
        &["migrate", "plan", "--from", &from, "--host-ip", &host_ips],
    ));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("no source member leads a quorum"), "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("elections"));

    // A plan on a StatefulSet with no member to ask: refused in a plan's words.
    for args in [&["plan", "--to", "3"][..], &["--to", "3", "--dry-run"]] {
        let mut line = vec!["--timeout", "10s"];
        line.extend(args);
        let out = run(zkscale(&bed, ns, &line));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(4), "{args:?}: {err}");
        assert!(
            !err.contains("re-run the same command to resume"),
            "{args:?}: {err}"
        );
    }
}
