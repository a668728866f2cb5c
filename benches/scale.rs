//! `cargo bench --bench scale` (needs the test bed: `make testbed-up`; `make bench` does it):
//! scales the bitnami 1-replica fixture 1→5 and then 5→3 with `kubectl zkscale` (four-letter
//! words through the API server's port-forward, the default, and again straight to the pod IPs,
//! `--connect direct`), and for comparison with plain Helm stepping r1→r2→r3 (waiting for the
//! ensemble between upgrades), while a client writes and every member's `srvr` is polled.
//! Prints a table per step: wall time, leader elections observed (changes of the leader's
//! epoch), the longest time without an acknowledged write, and for zkscale the members' own
//! start+sync time (the time its waits spent on pods coming back and members catching up) and
//! the step's total against it. Prints figures; asserts nothing about time.

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
    own_secs: Option<f64>,
}

fn elections_between(seen: &[(Instant, u32)], from: Instant, to: Instant) -> usize {
    seen.iter().filter(|(t, _)| *t > from && *t <= to).count()
}

/// `kubectl zkscale --to <to> --connect <connect>`; a row per step.
async fn zkscale_to(bed: &Bed, ns: &str, to: u32, connect: &'static str, rows: &mut Vec<Row>) {
    let el = Elections::watch(bed, ns);
    std::thread::sleep(Duration::from_secs(1));
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubectl-zkscale"))
        .args(["-n", ns, "--to", &to.to_string(), "--output", "json"])
        .args(["--timeout", "5m", "--connect", connect])
        .env("KUBECONFIG", &bed.kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // (step name, started, member start+sync seconds)
    let mut steps: Vec<(String, Instant, f64)> = Vec::new();
    let mut end = Instant::now();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let v: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap_or_default();
        match v["event"].as_str() {
            Some("step") => steps.push((format!("{}→{}", v["from"], v["to"]), Instant::now(), 0.0)),
            Some("gate") => {
                let name = v["name"].as_str().unwrap_or("");
                let own = [
                    "recreated",
                    "up (waits",
                    "follows the leader",
                    "after the election",
                    "serves standalone",
                    "removed",
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
    let how = if connect == "direct" {
        "zkscale direct"
    } else {
        "zkscale"
    };
    for (i, (name, start, own)) in steps.iter().enumerate() {
        let stop = steps.get(i + 1).map(|s| s.1).unwrap_or(end);
        rows.push(Row {
            how,
            step: name.clone(),
            secs: (stop - *start).as_secs_f64(),
            elections: elections_between(&seen, *start, stop),
            own_secs: Some(*own),
        });
    }
}

/// 1 → 5 → 3 with a writer; the longest write gap.
async fn zkscale_run(bed: &Bed, connect: &'static str, rows: &mut Vec<Row>) -> Duration {
    let zk = bed
        .ensemble("bench-zkscale")
        .members(1)
        .znodes(200)
        .up()
        .await;
    let ns = zk.ns();
    let w = writer(bed, ns);
    zkscale_to(bed, ns, 5, connect, rows).await;
    zkscale_to(bed, ns, 3, connect, rows).await;
    let report = w.stop();
    assert_eq!(count_znodes(bed, ns).await, 200);
    report.longest_gap
}

async fn helm_run(bed: &Bed, rows: &mut Vec<Row>) -> Duration {
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
    for (step, start, stop) in marks {
        rows.push(Row {
            how: "plain helm",
            step,
            secs: (stop - start).as_secs_f64(),
            elections: elections_between(&seen, start, stop),
            own_secs: None,
        });
    }
    report.longest_gap
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
    let mut rows = Vec::new();
    let gap_zk = zkscale_run(&bed, "port-forward", &mut rows).await;
    let gap_direct = zkscale_run(&bed, "direct", &mut rows).await;
    let gap_helm = helm_run(&bed, &mut rows).await;
    println!(
        "\n{:<15} {:<5} {:>8} {:>10} {:>22} {:>9}",
        "how", "step", "time s", "elections", "members start+sync s", "ratio"
    );
    for r in &rows {
        let (own, ratio) = match r.own_secs {
            Some(o) if o > 0.0 => (format!("{o:.1}"), format!("{:.2}", r.secs / o)),
            _ => ("-".into(), "-".into()),
        };
        println!(
            "{:<15} {:<5} {:>8.1} {:>10} {:>22} {:>9}",
            r.how, r.step, r.secs, r.elections, own, ratio
        );
    }
    println!(
        "longest write unavailability: zkscale 1→5→3 {:.1}s (direct {:.1}s), plain helm 1→3 {:.1}s",
        gap_zk.as_secs_f64(),
        gap_direct.as_secs_f64(),
        gap_helm.as_secs_f64()
    );
}
