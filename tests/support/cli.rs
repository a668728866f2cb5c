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
