//! `cargo bench --bench post_render`: the post-renderer on ~10 MB streams of three shapes that
//! Helm users produce, with kustomize (the post-renderer most of them already run) and `cat`
//! beside it as yardsticks, all in one run:
//! - **bulky**: every fixture repeated under other names (100 releases), plus ConfigMaps of
//!   data files (block scalars): few, large documents;
//! - **key-dense**: one fixture plus ConfigMaps of 100 short keys each (typical rendered
//!   manifests: many small scalars);
//! - **flood**: 300,000 tiny documents that all mention `StatefulSet` (of another app).
//!
//! Per shape: the in-process pipeline the binary runs before it asks the cluster (parse what
//! may be ours, rewrite the ZooKeeper StatefulSets as for a fresh install, assemble the
//! output), and the binary end to end (`post-render --offline` on the shape's documents that
//! are not ZooKeeper StatefulSets, which it prints back) with its peak RSS. Prints figures and
//! checks outputs; asserts nothing about time. Targets: ≤ 100 ms end to end, peak RSS ≤ 3×
//! the input, on every shape.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use zkscale::manifest::{rewrite, LiveState, Stream};

const TARGET_BYTES: usize = 10 * 1024 * 1024;
const RELEASES: usize = 100;
/// Timed runs per measurement under `cargo bench` (which passes `--bench`); `cargo test
/// --benches` runs this file once quickly as a smoke test.
const RUNS: usize = 9;
const QUICK_RUNS: usize = 1;

const MINIMAL: &str = "---\n# Source: zookeeper/templates/statefulset.yaml\napiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: zk-zookeeper\n  namespace: zk-test\n  labels:\n    app.kubernetes.io/name: zookeeper\n    helm.sh/chart: zookeeper-13.7.4\nspec:\n  replicas: 3\n  template:\n    spec:\n      containers:\n        - name: zookeeper\n          env:\n            - name: ZOO_SERVERS\n              value: zk-zookeeper-0.zk-zookeeper-headless.zk-test.svc.cluster.local:2888:3888::1 zk-zookeeper-1.zk-zookeeper-headless.zk-test.svc.cluster.local:2888:3888::2 zk-zookeeper-2.zk-zookeeper-headless.zk-test.svc.cluster.local:2888:3888::3\n";

fn fixtures() -> Vec<String> {
    let dir = std::env::var_os("ZKSCALE_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("bitnami-zookeeper"))
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "yaml"));
    files.sort();
    let texts: Vec<String> = files
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .collect();
    if texts.is_empty() {
        println!(
            "fixtures not found under {} (set ZKSCALE_FIXTURES): using a minimal StatefulSet",
            dir.display()
        );
        vec![MINIMAL.to_string()]
    } else {
        texts
    }
}

fn bulky(fixtures: &[String]) -> String {
    let mut out = String::with_capacity(TARGET_BYTES + 64 * 1024);
    for i in 0..RELEASES {
        let f = &fixtures[i % fixtures.len()];
        out.push_str(
            &f.replace("zk-zookeeper", &format!("zk{i}-zookeeper"))
                .replace("coord", &format!("coord{i}"))
                .replace("zk-test", &format!("ns{i}")),
        );
    }
    let cms = 1_900usize;
    let per_cm = TARGET_BYTES.saturating_sub(out.len()) / cms;
    let line = "    0123456789abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ -_.:/\n";
    for i in 0..cms {
        let head = format!(
            "---\n# Source: other/templates/data-{i}.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bulk-{i}\n  namespace: data\n  labels:\n    app.kubernetes.io/name: bulk\ndata:\n  enabled: \"true\"\n  payload.txt: |\n"
        );
        out.push_str(&head);
        let mut n = head.len();
        while n + line.len() <= per_cm {
            out.push_str(line);
            n += line.len();
        }
    }
    out
}

fn key_dense(fixtures: &[String]) -> String {
    let mut out = fixtures[0].clone();
    let mut i = 0;
    while out.len() < TARGET_BYTES {
        out.push_str(&format!(
            "---\n# Source: app/templates/cm-{i}.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings-{i}\n  namespace: app\ndata:\n"
        ));
        for k in 0..100 {
            out.push_str(&format!("  key{k}: \"v{k}\"\n"));
        }
        i += 1;
    }
    out
}

fn flood() -> String {
    let mut out = String::with_capacity(15 * 1024 * 1024);
    for i in 0..300_000 {
        out.push_str(&format!(
            "---\nkind: StatefulSet\nmetadata: {{name: s{i}}}\n"
        ));
    }
    out
}

/// The documents of `text` that are not ZooKeeper StatefulSets (what `--offline` prints back).
fn without_zookeeper(text: &str) -> String {
    text.split_inclusive("\n---")
        .filter(|d| !(d.contains("kind: StatefulSet") && d.contains("ZOO_SERVERS")))
        .collect()
}

fn stats(mut times: Vec<Duration>) -> (Duration, Duration) {
    times.sort();
    (times[0], times[times.len() / 2])
}

/// What the binary does with a stream before it asks the cluster: parse what may be ours,
/// declare the ZooKeeper StatefulSets as for a fresh install, assemble the output.
fn in_process(input: &[u8], runs: usize) -> (Duration, Duration, usize) {
    let mut times = Vec::with_capacity(runs);
    let mut changed = 0;
    for _ in 0..runs {
        let start = Instant::now();
        let stream = Stream::parse(input).expect("bench stream parses");
        let r = rewrite(&stream, Some(&LiveState::default())).expect("rewrite");
        times.push(start.elapsed());
        changed = r.changed.len();
        // Every ZooKeeper StatefulSet the chart renders with RollingUpdate is rewritten.
        assert!(changed <= stream.zookeepers().len());
    }
    let (min, median) = stats(times);
    (min, median, changed)
}

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs `cmd` with `input` on stdin; wall time, peak RSS (KiB) and stdout. The peak is read
/// from /proc/<pid>/status once the first output byte arrives: by then the program has read
/// its input and built its output, and it stays blocked on the full stdout pipe while we look.
/// (The kernel's rusage of a spawned child would count this benchmark's own memory: a vfork'd
/// child inherits the parent's high-water mark until it execs.)
fn run(cmd: &mut Command, input: &[u8]) -> (Duration, u64, Vec<u8>) {
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let mut stdout = child.stdout.take().unwrap();
    let mut out = vec![0u8; 1];
    let peak = match stdout.read_exact(&mut out) {
        Ok(()) => vm_hwm_kib(child.id()).unwrap_or(0),
        Err(_) => {
            out.clear();
            0
        }
    };
    stdout.read_to_end(&mut out).unwrap();
    let status = child.wait().unwrap();
    let elapsed = start.elapsed();
    let _ = writer.join().unwrap();
    assert!(status.success(), "{cmd:?} failed");
    (elapsed, peak, out)
}

/// How long kustomize may take on one shape.
const KUSTOMIZE_LIMIT: Duration = Duration::from_secs(60);

/// Runs `cmd` (no stdin) for at most [`KUSTOMIZE_LIMIT`]: wall time and peak RSS (as in
/// [`run`]), or `None` when it failed or ran out of time (killed).
fn run_limited(cmd: &mut Command) -> Option<(Duration, u64)> {
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watchdog = {
        let done = done.clone();
        std::thread::spawn(move || {
            while start.elapsed() < KUSTOMIZE_LIMIT {
                if done.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = Command::new("kill").arg(pid.to_string()).status();
        })
    };
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 1];
    let peak = stdout
        .read_exact(&mut first)
        .ok()
        .and_then(|_| vm_hwm_kib(pid));
    std::io::copy(&mut stdout, &mut std::io::sink()).unwrap();
    let status = child.wait().unwrap();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    watchdog.join().unwrap();
    (status.success() && start.elapsed() < KUSTOMIZE_LIMIT)
        .then(|| (start.elapsed(), peak.unwrap_or(0)))
}

fn best(runs: usize, mut f: impl FnMut() -> (Duration, u64, Vec<u8>)) -> (Duration, u64, Vec<u8>) {
    let mut all: Vec<(Duration, u64, Vec<u8>)> = (0..runs.max(1)).map(|_| f()).collect();
    all.sort_by_key(|r| r.0);
    all.swap_remove(0)
}

fn kustomize() -> Option<PathBuf> {
    let cache = std::env::var_os("ZKSCALE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/zkscale"));
    let bin = cache.join("kustomize/kustomize");
    bin.exists().then_some(bin)
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let runs = if bench { RUNS } else { QUICK_RUNS };
    let fixtures = fixtures();
    println!("post_render benchmark");
    if !bench {
        println!("  (smoke run: `cargo bench --bench post_render` for real figures)");
    }
    let kustomize = kustomize();
    if kustomize.is_none() {
        println!("  (no kustomize: `tests/bed/install.sh kustomize`, `make bench` does it)");
    }
    println!(
        "\n{:<10} {:>8} {:>8} {:>22} {:>12} {:>12} {:>14} {:>14} {:>8}",
        "shape",
        "MiB",
        "docs",
        "in-process min/median",
        "binary",
        "binary RSS",
        "kustomize",
        "kustomize RSS",
        "cat"
    );
    for (shape, text) in [
        ("bulky", bulky(&fixtures)),
        ("key-dense", key_dense(&fixtures)),
        ("flood", flood()),
    ] {
        let input = text.as_bytes();
        let docs = Stream::parse(input).expect("parses").documents().len();
        let (min, median, changed) = in_process(input, runs);
        let plain = without_zookeeper(&text);
        let (wall, rss, out) = best(runs, || {
            run(
                Command::new(env!("CARGO_BIN_EXE_kubectl-zkscale"))
                    .args(["post-render", "--offline"]),
                plain.as_bytes(),
            )
        });
        assert!(
            out == plain.as_bytes(),
            "{shape}: --offline changed the stream"
        );
        let x = |kib: u64, len: usize| format!("{:.2}x", (kib * 1024) as f64 / len as f64);
        let (cat, _, _) = best(runs, || run(&mut Command::new("cat"), plain.as_bytes()));
        // kustomize as Helm runs a kustomize post-renderer: the stream as its one resource.
        // One run, bounded: on some shapes it takes minutes.
        let k = kustomize.as_ref().map(|k| {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("all.yaml"), &text).unwrap();
            let kustomization = "resources:\n- all.yaml\n";
            std::fs::write(dir.path().join("kustomization.yaml"), kustomization).unwrap();
            run_limited(Command::new(k).args(["build", dir.path().to_str().unwrap()]))
        });
        println!(
            "{:<10} {:>8.2} {:>8} {:>22} {:>12} {:>12} {:>14} {:>14} {:>8}",
            shape,
            input.len() as f64 / (1024.0 * 1024.0),
            docs,
            format!("{} / {}", ms(min), ms(median)),
            ms(wall),
            x(rss, plain.len()),
            match k {
                Some(Some((wall, _))) => ms(wall),
                Some(None) => format!("> {}s", KUSTOMIZE_LIMIT.as_secs()),
                None => "-".into(),
            },
            match k {
                Some(Some((_, rss))) => x(rss, input.len()),
                _ => "-".into(),
            },
            ms(cat),
        );
        println!(
            "{:<10} ({changed} ZooKeeper StatefulSet(s) rewritten in process)",
            ""
        );
    }
    println!("\ntargets: binary <= 100 ms and RSS <= 3x the input on every shape");
}
