//! `cargo bench --bench scale` (needs the test bed: `make testbed-up`; `make bench` does it):
//! scales the bitnami 1-replica fixture 1→5 and then 5→3 with `kubectl zkscale` by restarts
//! (four-letter words through the API server's port-forward, the default, and again straight
//! to the pod IPs, `--connect direct`) and by dynamic reconfiguration (a release with
//! `ZOO_RECONFIG_ENABLED=yes` and a superuser), and for comparison with plain Helm stepping
//! r1→r2→r3 (waiting for the ensemble between upgrades), while a client writes and every
//! member's `srvr` is polled.
//! Prints a table per step: wall time, leader elections observed (changes of the leader's
//! epoch), member restarts, and for zkscale the members' own start+sync time (the time its
//! waits spent on pods coming back and members catching up) and the step's total against it;
//! then one line per run and direction: total time, elections, restarts, the longest time
//! without an acknowledged write. Prints figures; asserts nothing about time.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::bed::Bed;
use support::chart::*;
use support::writer::Writer;
use zkscale::zk::{observe_all_tcp, Mode, Probe, Timeouts};

/// Leader epochs seen over time: `(t, epoch)` whenever the serving leader's epoch changes.
struct Elections {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<(Instant, u32)>>>,
    handle: std::thread::JoinHandle<()>,
}

impl Elections {
    fn watch(bed: &Bed, ns: &str) -> Elections {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (s, v) = (stop.clone(), seen.clone());
        let addrs = pod_addrs(bed, ns);
        let handle = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            while !s.load(Ordering::SeqCst) {
                let members: Vec<(u32, String)> = addrs()
                    .into_iter()
                    .enumerate()
                    .map(|(i, a)| (i as u32, a))
                    .collect();
                let t = Timeouts {
                    connect: Duration::from_millis(500),
                    read: Duration::from_millis(800),
                };
                let obs = rt.block_on(observe_all_tcp(&members, t));
                let epochs: BTreeSet<u32> = obs
                    .iter()
                    .filter_map(|o| match &o.probe {
                        Probe::Serving { srvr, .. }
                            if matches!(srvr.mode, Mode::Leader | Mode::Standalone) =>
                        {
                            Some(srvr.zxid.epoch())
                        }
                        _ => None,
                    })
                    .collect();
                if let Some(&e) = epochs.iter().next_back() {
                    let mut v = v.lock().unwrap();
                    if v.last().map(|(_, last)| *last) != Some(e) {
                        v.push((Instant::now(), e));
                    }
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        Elections { stop, seen, handle }
    }

    fn finish(self) -> Vec<(Instant, u32)> {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().unwrap();
        Arc::try_unwrap(self.seen).unwrap().into_inner().unwrap()
    }
}

fn writer(bed: &Bed, ns: &str) -> Writer {
    Writer::start(pod_addrs(bed, ns))
}

struct Row {
    how: &'static str,
    step: String,
    secs: f64,
    elections: usize,
    restarts: Option<usize>,
    own_secs: Option<f64>,
}

/// One direction of one run, in total.
struct Total {
    how: &'static str,
    way: String,
    secs: f64,
    elections: usize,
    restarts: usize,
    gap: Duration,
}

fn elections_between(seen: &[(Instant, u32)], from: Instant, to: Instant) -> usize {
    seen.iter().filter(|(t, _)| *t > from && *t <= to).count()
}

/// How a run changes membership.
#[derive(Clone, Copy)]
enum How {
    Restart { connect: &'static str },
    Reconfig,
}

impl How {
    fn label(self) -> &'static str {
        match self {
            How::Restart { connect: "direct" } => "zkscale direct",
            How::Restart { .. } => "zkscale restart",
            How::Reconfig => "zkscale reconfig",
        }
    }
}

const SECRET: &str = "zk-super";
const PASSWORD: &str = "bench-password";

/// `kubectl zkscale --to <to>`; a row per step, and the total.
async fn zkscale_to(bed: &Bed, ns: &str, to: u32, how: How, rows: &mut Vec<Row>) -> Total {
    let w = writer(bed, ns);
    let el = Elections::watch(bed, ns);
    std::thread::sleep(Duration::from_secs(1));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubectl-zkscale"));
    cmd.args(["-n", ns, "--to", &to.to_string(), "--output", "json"])
        .args(["--timeout", "5m"])
        .env("KUBECONFIG", &bed.kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    match how {
        How::Restart { connect } => cmd.args(["--connect", connect, "--method", "restart"]),
        How::Reconfig => cmd.args(["--zk-auth-secret", SECRET, "--method", "auto"]),
    };
    let mut child = cmd.spawn().unwrap();
    let started = Instant::now();
    // (step name, started, member start+sync seconds, restarts)
    let mut steps: Vec<(String, Instant, f64, usize)> = Vec::new();
    let mut end = Instant::now();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let v: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap_or_default();
        match v["event"].as_str() {
            Some("step") => {
                steps.push((format!("{}→{}", v["from"], v["to"]), Instant::now(), 0.0, 0))
            }
            Some("action") => {
                let d = v["description"].as_str().unwrap_or("").trim_start();
                if d.starts_with("restart ") {
                    if let Some(s) = steps.last_mut() {
                        s.3 += 1;
                    }
                }
            }
            Some("gate") => {
                let name = v["name"].as_str().unwrap_or("");
                let own = [
                    "recreated",
                    "up (waits",
                    "follows the leader",
                    "after the election",
                    "serves standalone",
                    "removed",
                    "without a vote",
                    "a leader other than",
                ];
                if own.iter().any(|o| name.contains(o)) {
                    if let Some(s) = steps.last_mut() {
                        s.2 += v["elapsed_ms"].as_f64().unwrap_or(0.0) / 1000.0;
                    }
                }
            }
            Some("done") | Some("result") => end = Instant::now(),
            _ => {}
        }
    }
    assert!(
        child.wait().unwrap().success(),
        "kubectl zkscale --to {to} failed"
    );
    std::thread::sleep(Duration::from_secs(1));
    let seen = el.finish();
    let report = w.stop();
    let from = steps
        .first()
        .map(|s| s.0.split('→').next().unwrap_or("?").to_string());
    let mut total = Total {
        how: how.label(),
        way: format!("{}→{to}", from.unwrap_or_default()),
        secs: (end - started).as_secs_f64(),
        elections: elections_between(&seen, started, end),
        restarts: 0,
        gap: report.longest_gap,
    };
    for (i, (name, start, own, restarts)) in steps.iter().enumerate() {
        let stop = steps.get(i + 1).map(|s| s.1).unwrap_or(end);
        total.restarts += restarts;
        rows.push(Row {
            how: how.label(),
            step: name.clone(),
            secs: (stop - *start).as_secs_f64(),
            elections: elections_between(&seen, *start, stop),
            restarts: Some(*restarts),
            own_secs: Some(*own),
        });
    }
    total
}

/// 1 → 5 → 3 with a writer.
async fn zkscale_run(bed: &Bed, how: How, rows: &mut Vec<Row>, totals: &mut Vec<Total>) {
    let mut b = bed.ensemble("bench-zkscale").members(1).znodes(200);
    if let How::Reconfig = how {
        let digest = support::zk_ensemble::digest("super", PASSWORD);
        b = b.env("ZOO_RECONFIG_ENABLED", "yes").env(
            "JVMFLAGS",
            &format!("-Dzookeeper.DigestAuthenticationProvider.superDigest={digest}"),
        );
    }
    let zk = b.up().await;
    let ns = zk.ns();
    if let How::Reconfig = how {
        bed.kubectl(&[
            "create",
            "secret",
            "generic",
            SECRET,
            "-n",
            ns,
            &format!("--from-literal=password={PASSWORD}"),
        ]);
    }
    totals.push(zkscale_to(bed, ns, 5, how, rows).await);
    totals.push(zkscale_to(bed, ns, 3, how, rows).await);
    assert_eq!(count_znodes(bed, ns).await, 200);
}

async fn helm_run(bed: &Bed, rows: &mut Vec<Row>, totals: &mut Vec<Total>) {
    let zk = bed.ensemble("bench-helm").members(1).znodes(200).up().await;
    let ns = zk.ns();
    let w = writer(bed, ns);
    let el = Elections::watch(bed, ns);
    std::thread::sleep(Duration::from_secs(2));
    let mut marks = Vec::new();
    for (n, fixture) in [
        (2, "bitnami-zookeeper-13.7.4-replicas-2"),
        (3, "bitnami-zookeeper-13.7.4-replicas-3"),
    ] {
        let start = Instant::now();
        upgrade(bed, ns, fixture);
        wait_rolled(bed, ns, n);
        wait_healthy(bed, ns, n).await;
        marks.push((format!("{}→{n}", n - 1), start, Instant::now()));
    }
    std::thread::sleep(Duration::from_secs(2));
    let seen = el.finish();
    let report = w.stop();
    let (first, last) = (marks[0].1, marks[marks.len() - 1].2);
    for (step, start, stop) in marks {
        rows.push(Row {
            how: "plain helm",
            step,
            secs: (stop - start).as_secs_f64(),
            elections: elections_between(&seen, start, stop),
            restarts: None,
            own_secs: None,
        });
    }
    totals.push(Total {
        how: "plain helm",
        way: "1→3".into(),
        secs: (last - first).as_secs_f64(),
        elections: elections_between(&seen, first, last),
        restarts: 0,
        gap: report.longest_gap,
    });
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if !std::env::args().any(|a| a == "--bench") {
        println!("scale: needs `cargo bench` and the test bed; skipped under `cargo test`");
        return;
    }
    let Some(bed) = Bed::get() else { return };
    let (mut rows, mut totals) = (Vec::new(), Vec::new());
    for how in [
        How::Restart {
            connect: "port-forward",
        },
        How::Restart { connect: "direct" },
        How::Reconfig,
    ] {
        zkscale_run(&bed, how, &mut rows, &mut totals).await;
    }
    helm_run(&bed, &mut rows, &mut totals).await;
    println!(
        "\n{:<17} {:<5} {:>8} {:>10} {:>9} {:>22} {:>7}",
        "how", "step", "time s", "elections", "restarts", "members start+sync s", "ratio"
    );
    for r in &rows {
        let (own, ratio) = match r.own_secs {
            Some(o) if o > 0.0 => (format!("{o:.1}"), format!("{:.2}", r.secs / o)),
            _ => ("-".into(), "-".into()),
        };
        let restarts = r.restarts.map_or("-".into(), |n| n.to_string());
        println!(
            "{:<17} {:<5} {:>8.1} {:>10} {:>9} {:>22} {:>7}",
            r.how, r.step, r.secs, r.elections, restarts, own, ratio
        );
    }
    println!(
        "\n{:<17} {:<5} {:>8} {:>10} {:>9} {:>22}",
        "how", "way", "time s", "elections", "restarts", "longest write gap s"
    );
    for t in &totals {
        println!(
            "{:<17} {:<5} {:>8.1} {:>10} {:>9} {:>22.1}",
            t.how,
            t.way,
            t.secs,
            t.elections,
            t.restarts,
            t.gap.as_secs_f64()
        );
    }
}
