//! Real Helm with zkscale as its post-renderer: Helm 4 through the `zkscale` plugin (installed
//! from this checkout's `plugin.yaml` into a private `HELM_DATA_HOME`, the way `make install`
//! stages it), Helm 3.17 through `--post-renderer kubectl-zkscale --post-renderer-args
//! post-render`. Each `Helm` has its own Helm home and post-render log file.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use super::bed::Bed;

pub const BIN: &str = env!("CARGO_BIN_EXE_kubectl-zkscale");

pub struct Helm {
    pub bin: PathBuf,
    pub major: u8,
    home: tempfile::TempDir,
    kubeconfig: PathBuf,
    /// Where the post-renderer appends its progress (`ZKSCALE_LOG_FILE`).
    pub log: PathBuf,
}

impl Helm {
    /// Helm 4 (the bed's) with the plugin installed by `helm plugin install <dir>`, where
    /// `<dir>` holds this checkout's plugin.yaml and script and `bin/kubectl-zkscale`.
    pub fn v4(bed: &Bed) -> Helm {
        let h = Helm::new(bed, bed.helm.clone(), 4);
        let stage = h.home.path().join("plugin-src");
        stage_plugin(&stage, "bin/kubectl-zkscale");
        let out = h.run(&["plugin", "install", stage.to_str().unwrap()]);
        assert!(out.status.success(), "helm plugin install: {}", text(&out));
        let list = h.run(&["plugin", "list"]);
        assert!(
            String::from_utf8_lossy(&list.stdout).contains("zkscale"),
            "plugin not listed: {}",
            text(&list)
        );
        h
    }

    /// Helm 3.17 (installed next to Helm 4 by tests/bed/install.sh; `ZKSCALE_HELM3_DIR`).
    pub fn v3(bed: &Bed) -> Helm {
        let dir = std::env::var_os("ZKSCALE_HELM3_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| bed.helm.parent().unwrap().parent().unwrap().join("helm3"));
        let bin = dir.join("helm");
        assert!(
            bin.exists(),
            "no Helm 3 at {} (tests/bed/install.sh helm)",
            bin.display()
        );
        Helm::new(bed, bin, 3)
    }

    fn new(bed: &Bed, bin: PathBuf, major: u8) -> Helm {
        let home = tempfile::tempdir().unwrap();
        let log = home.path().join("post-render.log");
        Helm {
            bin,
            major,
            kubeconfig: bed.kubeconfig.clone(),
            log,
            home,
        }
    }

    /// The flags that make Helm run zkscale after rendering.
    pub fn post_renderer(&self) -> Vec<String> {
        match self.major {
            4 => vec!["--post-renderer".into(), "zkscale".into()],
            _ => vec![
                "--post-renderer".into(),
                BIN.into(),
                "--post-renderer-args".into(),
                "post-render".into(),
            ],
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        let h = self.home.path();
        c.args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HELM_DATA_HOME", h.join("data"))
            .env("HELM_CONFIG_HOME", h.join("config"))
            .env("HELM_CACHE_HOME", h.join("cache"))
            .env("ZKSCALE_LOG_FILE", &self.log)
            // The plugin script would also look there; the test binary is the one to run.
            .env_remove("CARGO_TARGET_DIR");
        c
    }

    /// Runs helm; echoes its output only when it fails (for queries whose output the test parses).
    pub fn query(&self, args: &[&str]) -> Output {
        self.exec(args, false)
    }

    /// Runs helm and echoes what it said.
    pub fn run(&self, args: &[&str]) -> Output {
        self.exec(args, true)
    }

    fn exec(&self, args: &[&str], echo: bool) -> Output {
        let out = self.command(args).output().expect("run helm");
        if echo || !out.status.success() {
            eprintln!(
                "--- helm{} {} → exit {:?}\n{}",
                self.major,
                args.join(" "),
                out.status.code(),
                text(&out)
            );
        }
        out
    }

    /// `helm <verb> zk <chart> -n <ns> <post-renderer flags> <extra>`.
    pub fn chart_args(&self, verb: &str, chart: &Path, ns: &str, extra: &[&str]) -> Vec<String> {
        let mut a: Vec<String> = vec![
            verb.into(),
            "zk".into(),
            chart.to_str().unwrap().into(),
            "-n".into(),
            ns.into(),
        ];
        a.extend(self.post_renderer());
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    }

    pub fn with_chart(&self, verb: &str, chart: &Path, ns: &str, extra: &[&str]) -> Output {
        let a = self.chart_args(verb, chart, ns, extra);
        self.run(&a.iter().map(String::as_str).collect::<Vec<_>>())
    }

    pub fn spawn(&self, args: &[String]) -> Child {
        self.command(&args.iter().map(String::as_str).collect::<Vec<_>>())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn helm")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Lays the Helm 4 plugin out in `dir`, ready for `helm plugin install <dir>`: this checkout's
/// plugin.yaml and script, and the binary under test at `binary` (relative to `dir`):
/// `bin/kubectl-zkscale` as `make install` stages it, `target/release/kubectl-zkscale` as a
/// checkout after `cargo build --release` has it.
pub fn stage_plugin(dir: &Path, binary: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = "scripts/helm-post-render.sh";
    for f in ["plugin.yaml", script, binary] {
        std::fs::create_dir_all(dir.join(f).parent().unwrap()).unwrap();
    }
    std::fs::copy(root.join("plugin.yaml"), dir.join("plugin.yaml")).unwrap();
    std::fs::copy(root.join(script), dir.join(script)).unwrap();
    std::os::unix::fs::symlink(BIN, dir.join(binary)).unwrap();
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

impl Drop for Helm {
    /// A failing test shows what the post-renderer said (Helm 4 itself drops it).
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- post-render log {}:\n{}",
                self.log.display(),
                self.log_text()
            );
        }
    }
}
