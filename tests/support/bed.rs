//! The e2e side of the test bed (tests/bed/): find the running bed, give each test a fresh
//! namespace with its own copy of a fixture chart, run kubectl and helm against it, port-forward,
//! and observe ZooKeeper members.
//!
//! e2e tests need `make testbed-up` first (`make e2e` and `make test` do it). When the bed is not
//! up they fail with that advice; `ZKSCALE_SKIP_E2E=1` skips them instead, saying so.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub struct Bed {
    pub kubeconfig: PathBuf,
    pub kubectl: PathBuf,
    pub helm: PathBuf,
    pub charts: PathBuf,
    /// The pod runner's state directory (faults/, pv/, pods/).
    pub runner_state: PathBuf,
}

fn cache_dir() -> PathBuf {
    std::env::var_os("ZKSCALE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/zkscale")
        })
}

/// Where `tests/bed/install.sh helm` puts Helm 4 and kubectl (`ZKSCALE_HELM_DIR` overrides).
pub fn helm4_dir() -> PathBuf {
    std::env::var_os("ZKSCALE_HELM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join("helm4"))
}

impl Bed {
    /// The running bed, or `None` (after saying so) when `ZKSCALE_SKIP_E2E=1` and it is not up.
    pub fn get() -> Option<Bed> {
        let dir = std::env::var_os("ZKSCALE_BED")
            .map(PathBuf::from)
            .unwrap_or_else(|| cache_dir().join("bed"));
        let kubeconfig = dir.join("kubeconfig");
        let helm_dir = helm4_dir();
        let charts = std::env::var_os("ZKSCALE_CHARTS")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/charts")
            });
        let bed = Bed {
            kubeconfig,
            kubectl: helm_dir.join("kubectl"),
            helm: helm_dir.join("helm"),
            charts,
            runner_state: dir.join("runner"),
        };
        let up = bed.kubeconfig.exists() && bed.kubectl_try(&["get", "--raw", "/readyz"]).is_ok();
        if !up {
            if std::env::var("ZKSCALE_SKIP_E2E").as_deref() == Ok("1") {
                eprintln!("SKIPPED: test bed not up and ZKSCALE_SKIP_E2E=1");
                return None;
            }
            panic!(
                "test bed not up (no working {}): run `make testbed-up`, or set ZKSCALE_SKIP_E2E=1 to skip e2e tests",
                bed.kubeconfig.display()
            );
        }
        assert!(
            bed.charts.is_dir(),
            "fixture charts not found at {} (set ZKSCALE_CHARTS)",
            bed.charts.display()
        );
        Some(bed)
    }

    fn cmd(&self, bin: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(bin);
        c.args(args).env("KUBECONFIG", &self.kubeconfig);
        c
    }

    pub fn kubectl_try(&self, args: &[&str]) -> Result<String, String> {
        run(self.cmd(&self.kubectl, args))
    }

    pub fn kubectl(&self, args: &[&str]) -> String {
        self.kubectl_try(args)
            .unwrap_or_else(|e| panic!("kubectl {}: {e}", args.join(" ")))
    }

    /// kubectl with `input` on its stdin (`apply -f -`).
    pub fn kubectl_stdin(&self, args: &[&str], input: &[u8]) -> Result<String, String> {
        use std::io::Write;
        let mut child = self
            .cmd(&self.kubectl, args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(input)
            .map_err(|e| e.to_string())?;
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "exit {:?}: {}{}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            ))
        }
    }

    pub fn helm_try(&self, args: &[&str]) -> Result<String, String> {
        run(self.cmd(&self.helm, args))
    }

    pub fn helm(&self, args: &[&str]) -> String {
        self.helm_try(args)
            .unwrap_or_else(|e| panic!("helm {}: {e}", args.join(" ")))
    }

    /// A new namespace for one test, deleted when dropped (kept with `ZKSCALE_KEEP_NS=1`).
    pub fn namespace(&self, prefix: &str) -> Namespace<'_> {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "{prefix}-{}-{}",
            std::process::id() % 100_000,
            N.fetch_add(1, Ordering::SeqCst)
        );
        self.kubectl(&["create", "namespace", &name]);
        Namespace { bed: self, name }
    }

    /// A copy of fixture chart `fixture` rendered for namespace `ns` (the fixtures were rendered
    /// for `zk-test`: its namespace fields and DNS names are rewritten, as the chart would render them).
    /// A copy of fixture chart `fixture` for namespace `ns`: one of the shared charts
    /// (`$ZKSCALE_CHARTS`), or of the project's own (`tests/fixtures/charts`: renamed by
    /// `nameOverride`, or a subchart under an alias). The StatefulSet it renders is remembered
    /// for the namespace ([`super::chart::sts`]).
    pub fn chart(&self, fixture: &str, ns: &str) -> PathBuf {
        let own = super::fixtures::own_fixtures_dir()
            .join("charts")
            .join(fixture);
        let src = if own.is_dir() {
            own
        } else {
            self.charts.join(fixture)
        };
        assert!(src.is_dir(), "no fixture chart {}", src.display());
        super::chart::remember_sts(ns, &src);
        let dst = std::env::temp_dir()
            .join(format!("zkscale-charts-{}", std::process::id()))
            .join(ns)
            .join(fixture);
        copy_rewriting(&src, &dst, "zk-test", ns);
        dst
    }

    /// [`Bed::chart`] with `env` added to the ZooKeeper container the way the chart's
    /// `extraEnvVars` renders (at the end of its env).
    pub fn chart_with_env(&self, fixture: &str, ns: &str, env: &[(String, String)]) -> PathBuf {
        let dir = self.chart(fixture, ns);
        if env.is_empty() {
            return dir;
        }
        let manifest = dir.join("templates").join("manifest.yaml");
        let text = std::fs::read_to_string(&manifest).unwrap();
        let anchor =
            "            - name: ZOO_ADMIN_SERVER_PORT_NUMBER\n              value: \"8080\"\n";
        assert!(text.contains(anchor), "no extraEnvVars place in {fixture}");
        let extra: String = env
            .iter()
            .map(|(k, v)| {
                format!(
                    "            - name: {k}\n              value: {}\n",
                    serde_json::to_string(v).unwrap()
                )
            })
            .collect();
        std::fs::write(&manifest, text.replace(anchor, &format!("{anchor}{extra}"))).unwrap();
        dir
    }

    pub fn pod_ip(&self, ns: &str, pod: &str) -> Option<String> {
        self.kubectl_try(&[
            "get",
            "pod",
            "-n",
            ns,
            pod,
            "-o",
            "jsonpath={.status.podIP}",
        ])
        .ok()
        .filter(|s| !s.is_empty())
    }

    /// `kubectl port-forward pod/<pod> :<port>`: the local port once kubectl says it is forwarding.
    pub fn port_forward(&self, ns: &str, pod: &str, port: u16) -> PortForward {
        let mut child = self
            .cmd(
                &self.kubectl,
                &[
                    "port-forward",
                    "-n",
                    ns,
                    &format!("pod/{pod}"),
                    &format!(":{port}"),
                ],
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn kubectl port-forward");
        let mut lines = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        let local = loop {
            line.clear();
            if lines.read_line(&mut line).unwrap_or(0) == 0 {
                let _ = child.kill();
                panic!("kubectl port-forward to {ns}/{pod}:{port} exited without forwarding");
            }
            // "Forwarding from 127.0.0.1:40123 -> 2181"
            if let Some(rest) = line.trim().strip_prefix("Forwarding from 127.0.0.1:") {
                break rest
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .parse::<u16>()
                    .unwrap();
            }
        };
        // Keep draining stdout ("Handling connection for ...") so kubectl never blocks on it.
        std::thread::spawn(move || for _ in lines.lines() {});
        PortForward { child, local }
    }

    /// Blocks a pod's process from starting (the runner reads `faults/<ns>/<pod>`).
    pub fn block_pod_start(&self, ns: &str, pod: &str, reason: &str) {
        let p = self.fault_file(ns, pod);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, reason).unwrap();
    }

    /// Lets a pod blocked by [`Bed::block_pod_start`] start again.
    pub fn unblock_pod_start(&self, ns: &str, pod: &str) {
        std::fs::remove_file(self.fault_file(ns, pod)).unwrap();
    }

    fn fault_file(&self, ns: &str, pod: &str) -> PathBuf {
        self.runner_state.join("faults").join(ns).join(pod)
    }
}

pub struct Namespace<'a> {
    bed: &'a Bed,
    pub name: String,
}

impl Drop for Namespace<'_> {
    fn drop(&mut self) {
        if std::env::var("ZKSCALE_KEEP_NS").as_deref() == Ok("1") {
            eprintln!("keeping namespace {}", self.name);
            return;
        }
        let _ = self.bed.helm_try(&[
            "uninstall",
            "zk",
            "-n",
            &self.name,
            "--wait",
            "--timeout",
            "60s",
        ]);
        let _ = self
            .bed
            .kubectl_try(&["delete", "namespace", &self.name, "--wait=false"]);
    }
}

pub struct PortForward {
    child: Child,
    pub local: u16,
}

impl PortForward {
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.local)
    }
}

impl Drop for PortForward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(mut c: Command) -> Result<String, String> {
    let out = c.output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "exit {:?}: {}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        ))
    }
}

fn copy_rewriting(src: &Path, dst: &Path, from: &str, to: &str) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let target = dst.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_rewriting(&e.path(), &target, from, to);
        } else {
            let text = std::fs::read_to_string(e.path()).unwrap();
            std::fs::write(target, text.replace(from, to)).unwrap();
        }
    }
}

/// Polls `f` every `every` until it returns `Some`, or panics after `timeout` naming `what`
/// and the last value seen.
pub fn wait_for<T, F: FnMut() -> Result<T, String>>(what: &str, timeout: Duration, mut f: F) -> T {
    let start = Instant::now();
    loop {
        match f() {
            Ok(v) => {
                eprintln!("[{:>5.1}s] {what}", start.elapsed().as_secs_f64());
                return v;
            }
            Err(last) if start.elapsed() > timeout => {
                panic!("timed out after {timeout:?} waiting for {what}; last: {last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

impl Bed {
    /// Sends `sig` (`KILL`, `STOP`, `CONT`) to the ZooKeeper process of pod `ns/pod` (the pod
    /// runner's JVM for it). False when no such process runs.
    pub fn signal_member(&self, ns: &str, pod: &str, sig: &str) -> bool {
        let pattern = format!("{}/pods/{ns}/{pod}/", self.runner_state.display());
        let pids = Command::new("pgrep")
            .args(["-f", &pattern])
            .output()
            .expect("pgrep");
        let pids = String::from_utf8_lossy(&pids.stdout).to_string();
        let mut any = false;
        for pid in pids.split_whitespace() {
            any |= Command::new("kill")
                .args([&format!("-{sig}"), pid])
                .status()
                .is_ok_and(|s| s.success());
        }
        eprintln!(
            "signal {sig} to {ns}/{pod}: {}",
            if any { "sent" } else { "no process" }
        );
        any
    }

    /// Restarts one component of the bed's control plane (`kube-apiserver`, …) as up.sh
    /// started it; returns once it serves again.
    pub fn restart(&self, component: &str) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bed/restart.sh");
        let st = Command::new(script)
            .arg(component)
            .status()
            .expect("restart.sh");
        assert!(st.success(), "restarting {component} failed");
    }
}
