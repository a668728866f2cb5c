//! `cargo bench --bench post_render`: the post-renderer on a ~10 MB stream of ~2,000 documents
//! (every fixture repeated under other names and namespaces, plus unrelated ConfigMaps with
//! bulky data). Prints wall times of `post_render` (in process) and the wall time and peak RSS
//! of the real binary checking the same stream; checks the output is the input, asserts
//! nothing about time. Targets: < 100 ms, peak RSS < 4 × input.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use zkscale::manifest::{post_render, PostRenderOptions, Stream};

const TARGET_BYTES: usize = 10 * 1024 * 1024;
const TARGET_DOCS: usize = 2_000;
const RELEASES: usize = 100;
/// Timed runs per measurement under `cargo bench` (which passes `--bench`); `cargo test
/// --benches` runs this file once quickly as a smoke test.
const RUNS: usize = 15;
const QUICK_RUNS: usize = 2;

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

/// The benchmark stream and its document count.
fn build_stream() -> (Vec<u8>, usize) {
    let fixtures = fixtures();
    let mut out = String::with_capacity(TARGET_BYTES + 64 * 1024);
    for i in 0..RELEASES {
        let f = &fixtures[i % fixtures.len()];
        let release = f
            .replace("zk-zookeeper", &format!("zk{i}-zookeeper"))
            .replace("coord", &format!("coord{i}"))
            .replace("zk-test", &format!("ns{i}"));
        out.push_str(&release);
    }
    let zk_docs = Stream::parse(out.as_bytes())
        .expect("fixture stream")
        .documents()
        .len();
    let cms = TARGET_DOCS.saturating_sub(zk_docs).max(1);
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
    (out.into_bytes(), zk_docs + cms)
}

fn stats(mut times: Vec<Duration>) -> (Duration, Duration) {
    times.sort();
    (times[0], times[times.len() / 2])
}

fn time_in_process(input: &[u8], opts: &PostRenderOptions, runs: usize) -> (Duration, Duration) {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        let out = post_render(input, opts).expect("post_render");
        times.push(start.elapsed());
        assert!(out == input, "output differs from input");
    }
    stats(times)
}

/// Runs the real binary (`post-render --check`: the whole stream read and checked, as a real
/// post-render does before it asks the cluster; nothing printed) on `input`; returns its wall
/// time and peak RSS (KiB, from the kernel's rusage of the reaped child).
// The child is reaped by `wait4` (for its rusage), which clippy cannot see.
#[allow(clippy::zombie_processes)]
fn run_binary(input: &[u8]) -> (Duration, Option<u64>) {
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubectl-zkscale"))
        .args(["post-render", "--check"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn kubectl-zkscale");
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    writer.join().unwrap().unwrap();
    let mut status = 0;
    // SAFETY: plain syscall on our own child, with valid pointers; `child` is not waited again.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    let elapsed = start.elapsed();
    assert!(pid > 0, "wait4 failed");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "kubectl-zkscale failed"
    );
    assert!(out.is_empty(), "--check printed");
    (elapsed, Some(usage.ru_maxrss as u64))
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let runs = if bench { RUNS } else { QUICK_RUNS };
    let (input, docs) = build_stream();
    let mib = input.len() as f64 / (1024.0 * 1024.0);
    let stream = Stream::parse(&input).expect("bench stream parses");
    println!("post_render benchmark");
    if !bench {
        println!("  (smoke run: `cargo bench --bench post_render` for real figures)");
    }
    println!(
        "  input: {} bytes ({mib:.2} MiB), {docs} documents, {} ZooKeeper StatefulSets",
        input.len(),
        stream.zookeepers().len()
    );
    drop(stream);

    let (min, median) = time_in_process(&input, &PostRenderOptions::default(), runs);
    println!(
        "  post_render (default: syntax-check every document): min {}, median {} over {runs} runs",
        ms(min),
        ms(median)
    );
    let skip = PostRenderOptions {
        skip_syntax_check: true,
        ..Default::default()
    };
    let (min, median) = time_in_process(&input, &skip, runs);
    println!(
        "  post_render (skip_syntax_check: parse only candidates): min {}, median {} over {runs} runs",
        ms(min),
        ms(median)
    );

    let mut walls = Vec::new();
    let mut peaks = Vec::new();
    for _ in 0..if bench { 3 } else { 1 } {
        let (wall, peak) = run_binary(&input);
        walls.push(wall);
        peaks.extend(peak);
    }
    let (wall_min, _) = stats(walls);
    println!(
        "  binary `kubectl-zkscale post-render --check`: min wall {} (incl. process start and pipes)",
        ms(wall_min)
    );
    match peaks.iter().max() {
        Some(&kib) => {
            let bytes = kib * 1024;
            println!(
                "  binary peak RSS (ru_maxrss): {kib} KiB ({:.1} MiB), {:.2} x input",
                bytes as f64 / (1024.0 * 1024.0),
                bytes as f64 / input.len() as f64
            );
        }
        None => println!("  binary peak RSS: n/a (no /proc/<pid>/status)"),
    }
    println!("  targets: < 100 ms, peak RSS < 4 x input");
}
