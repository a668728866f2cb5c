//! The built binary as Helm runs it: `kubectl-zkscale post-render --offline` / `--check`, stream
//! on stdin. Good input that is not ours: exit 0, stdout byte-identical to stdin; a ZooKeeper
//! StatefulSet without the cluster: exit 3, nothing on stdout. Bad input: non-zero exit,
//! nothing on stdout, a message on stderr naming the document.

mod support;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use support::fixtures::{all_fixture_files, fixtures_dir};

fn run(input: &[u8]) -> Output {
    run_with(&["--offline"], input)
}

/// A 3-replica chart output to break in various ways: a fixture when there is one, else a
/// minimal stream of the same shape.
fn base() -> String {
    if let Some(dir) = fixtures_dir() {
        let p = dir.join("bitnami-zookeeper/13.7.4-replicas-3.yaml");
        if let Ok(s) = std::fs::read_to_string(p) {
            return s;
        }
    }
    MINIMAL.to_string()
}

const MINIMAL: &str = r#"---
# Source: zookeeper/templates/svc.yaml
apiVersion: v1
kind: Service
metadata:
  name: zk-zookeeper
  namespace: zk-test
spec:
  type: ClusterIP
---
# Source: zookeeper/templates/statefulset.yaml
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: zk-zookeeper
  namespace: zk-test
  labels:
    app.kubernetes.io/name: zookeeper
    helm.sh/chart: zookeeper-13.7.4
spec:
  replicas: 3
  serviceName: zk-zookeeper-headless
  template:
    spec:
      containers:
        - name: zookeeper
          image: docker.io/bitnami/zookeeper:3.9.3-debian-12-r8
          env:
            - name: ZOO_LISTEN_ALLIPS_ENABLED
              value: "no"
            - name: ZOO_SERVERS
              value: zk-zookeeper-0.zk-zookeeper-headless.zk-test.svc.cluster.local:2888:3888::1 zk-zookeeper-1.zk-zookeeper-headless.zk-test.svc.cluster.local:2888:3888::2 zk-zookeeper-2.zk-zookeeper-headless.zk-test.svc.cluster.local:2888:3888::3 
"#;

const STS: &str = "StatefulSet zk-test/zk-zookeeper";

/// Runs a bad input; checks exit, stdout and that stderr names the document and the problem.
fn assert_refused(input: &[u8], must_mention: &[&str]) {
    let out = run(input);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "exit 0 for bad input; stderr: {stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "stdout not empty on error: {} bytes",
        out.stdout.len()
    );
    for m in must_mention {
        assert!(stderr.contains(m), "stderr lacks `{m}`: {stderr}");
    }
}

/// `post-render` with `args`, `input` on stdin.
fn run_with(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubectl-zkscale"))
        .arg("post-render")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kubectl-zkscale");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("wait for kubectl-zkscale");
    // A command line refused before stdin is read closes the pipe early: not a test failure.
    if let Err(e) = writer.join().unwrap() {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "write stdin: {e}");
        assert!(!out.status.success(), "stdin not read, yet exit 0");
    }
    out
}

/// The stream without its ZooKeeper StatefulSet documents (what is left is not ours).
fn without_zookeeper(text: &str) -> String {
    text.split_inclusive("\n---")
        .filter(|d| !(d.contains("kind: StatefulSet") && d.contains("ZOO_SERVERS")))
        .collect()
}

/// Without the cluster nothing can tell whether the chart's size is a jump for the live
/// ensemble: `--offline` prints no ZooKeeper StatefulSet (exit 3, stdout empty); `--check`
/// validates and names it; what is not ours passes byte for byte.
#[test]
fn every_fixture_is_checked_and_never_printed_offline() {
    let files = all_fixture_files();
    assert!(!files.is_empty());
    for path in files {
        let ctx = path.display();
        let input = std::fs::read(&path).unwrap();
        let out = run_with(&["--check"], &input);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{ctx}: {stderr}");
        assert!(out.stdout.is_empty(), "{ctx}: --check printed");
        assert!(
            stderr.contains("valid") && stderr.contains("StatefulSets: zk-test/"),
            "{ctx}: {stderr}"
        );
        let out = run(&input);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{ctx}: {stderr}");
        assert!(
            out.stdout.is_empty(),
            "{ctx}: --offline printed a ZooKeeper StatefulSet"
        );
        assert!(
            stderr.contains("cannot read the live ensemble"),
            "{ctx}: {stderr}"
        );
        let rest = without_zookeeper(&String::from_utf8(input).unwrap());
        let out = run(rest.as_bytes());
        assert!(
            out.status.success(),
            "{ctx}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stdout == rest.as_bytes(),
            "{ctx}: stdout differs from stdin"
        );
    }
}

/// A preview that cannot reach the cluster (a refused port) does not know the live ensemble:
/// refused, exit 3, nothing on stdout; a stream that is not ours still passes.
#[test]
fn a_preview_without_the_cluster_prints_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:1'}\n\
         users:\n- name: u\n  user: {token: t}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\n\
         current-context: x\n",
    )
    .unwrap();
    for args in [&["--plan-only"][..], &[]] {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kubectl-zkscale"));
        c.arg("post-render")
            .args(args)
            .args(["--log-file", "-"])
            .env("KUBECONFIG", &kubeconfig)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(MINIMAL.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {stderr}");
        assert!(
            out.stdout.is_empty(),
            "{args:?}: printed without the cluster"
        );
        assert!(stderr.contains("cannot reach the cluster"), "{stderr}");
    }
}

#[test]
fn empty_input_gives_empty_output() {
    let out = run(b"");
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
}

#[test]
fn malformed_yaml_is_refused() {
    let input = base().replacen("  type: ClusterIP\n", "  type: [ClusterIP\n", 1);
    let out = run_with(&["--check"], input.as_bytes());
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("malformed YAML") && stderr.contains("Service zk-test/zk-zookeeper"),
        "{stderr}"
    );
    // The post-renderer itself parses only what may be ours: a malformed document of another
    // kind passes on to Helm, which refuses it before applying anything.
    let plain = without_zookeeper(&input);
    let out = run(plain.as_bytes());
    assert!(out.status.success());
    assert!(out.stdout == plain.as_bytes());
    // Malformed ZooKeeper StatefulSets are refused by every mode.
    let input = base().replacen("  replicas: 3\n", "  replicas: [3\n", 1);
    assert_refused(
        input.as_bytes(),
        &[
            "malformed YAML",
            "StatefulSet zk-test/zk-zookeeper",
            "document ",
        ],
    );
}

#[test]
fn non_utf8_is_refused_with_the_offset() {
    let text = base();
    let at =
        text.find("image: docker.io/bitnami/zoo").unwrap() + "image: docker.io/bitnami/zoo".len();
    let mut input = text.into_bytes();
    input.insert(at, 0xff);
    assert_refused(&input, &["not UTF-8", &format!("byte offset {at}"), STS]);
}

#[test]
fn unparsable_servers_are_refused() {
    let text = base();
    let start = text.find("- name: ZOO_SERVERS").unwrap();
    let value_at = start + text[start..].find("value: ").unwrap() + "value: ".len();
    let end = value_at + text[value_at..].find('\n').unwrap();
    let input = format!("{}not-a-server-list{}", &text[..value_at], &text[end..]);
    assert_refused(input.as_bytes(), &["ZOO_SERVERS", "does not parse", STS]);
}

#[test]
fn duplicate_server_ids_are_refused() {
    let input = base().replacen(":2888:3888::2 ", ":2888:3888::1 ", 1);
    assert_refused(input.as_bytes(), &["server id 1 more than once", STS]);
}

#[test]
fn missing_servers_env_is_refused() {
    let input = base().replacen("- name: ZOO_SERVERS\n", "- name: ZOO_SERVERS_X\n", 1);
    assert_refused(input.as_bytes(), &["no ZOO_SERVERS", STS]);
}

#[test]
fn replicas_mismatch_is_a_warning() {
    let input = base().replacen("  replicas: 3\n", "  replicas: 5\n", 1);
    let out = run_with(&["--check"], input.as_bytes());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(
        stderr.contains("spec.replicas is 5") && stderr.contains(STS),
        "{stderr}"
    );
}

#[test]
fn unrelated_and_odd_streams_pass_through() {
    for input in [
        "---\n# Source: x/templates/empty.yaml\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  k: no\n",
        "apiVersion: v1\r\nkind: ConfigMap\r\nmetadata:\r\n  name: a\r\n---\r\n",
        "\u{feff}apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n...\n",
        "# only a comment\n",
        "%YAML 1.2\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n",
    ] {
        let out = run(input.as_bytes());
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(out.stdout == input.as_bytes(), "{input:?}");
    }
}

/// Helm 4 (from `tests/bed/install.sh helm`), or `None` after saying the test skips.
fn helm4() -> Option<std::path::PathBuf> {
    let helm = support::bed::helm4_dir().join("helm");
    if helm.exists() {
        Some(helm)
    } else {
        eprintln!("SKIPPED: no Helm 4 at {} (make deps)", helm.display());
        None
    }
}

/// `helm plugin install .` from a checkout registers the post-renderer `zkscale`, and
/// `helm template --post-renderer zkscale` runs `kubectl-zkscale post-render` with Helm's
/// `--post-renderer-args`. With no cluster to ask, the ZooKeeper chart is refused (Helm fails,
/// prints nothing) and a chart that is not ours comes out unchanged.
#[test]
fn helm4_plugin_installs_from_the_checkout_and_runs() {
    let Some(helm) = helm4() else { return };
    let Some(fixtures) = fixtures_dir() else {
        eprintln!("SKIPPED: shared fixtures absent");
        return;
    };
    let chart = fixtures.join("charts/bitnami-zookeeper-13.7.4-replicas-3");
    let home = tempfile::tempdir().unwrap();
    // A checkout after `cargo build --release`: plugin.yaml, the script, target/release/ (the
    // binary under test; the real checkout's target/ may hold an older build).
    let checkout = home.path().join("checkout");
    support::helm::stage_plugin(&checkout, "target/release/kubectl-zkscale");
    // A chart that is not ours: one ConfigMap.
    let other = home.path().join("other");
    std::fs::create_dir_all(other.join("templates")).unwrap();
    std::fs::write(
        other.join("Chart.yaml"),
        "apiVersion: v2\nname: other\nversion: 0.1.0\n",
    )
    .unwrap();
    std::fs::write(
        other.join("templates/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: other\ndata:\n  a: \"no\"\n",
    )
    .unwrap();
    let path = "/usr/bin:/bin";
    let helm_out = |args: &[&str]| {
        Command::new(&helm)
            .args(args)
            .env("HELM_DATA_HOME", home.path().join("data"))
            .env("HELM_CONFIG_HOME", home.path().join("config"))
            .env("HELM_CACHE_HOME", home.path().join("cache"))
            .env("PATH", path)
            .env("KUBECONFIG", home.path().join("no-cluster"))
            .env_remove("CARGO_TARGET_DIR")
            .output()
            .unwrap()
    };
    let helm_cmd = |args: &[&str]| {
        let out = helm_out(args);
        assert!(
            out.status.success(),
            "helm {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    helm_cmd(&["plugin", "install", checkout.to_str().unwrap()]);
    let list = String::from_utf8(helm_cmd(&["plugin", "list"])).unwrap();
    assert!(
        list.lines()
            .any(|l| l.starts_with("zkscale") && l.contains("postrenderer/v1")),
        "{list}"
    );
    let log = home.path().join("post-render.log");
    let log_arg = format!("--log-file={}", log.display());
    let with_plugin = |c: &str| {
        helm_out(&[
            "template",
            "zk",
            c,
            "-n",
            "zk-test",
            "--post-renderer",
            "zkscale",
            "--post-renderer-args",
            "--plan-only",
            "--post-renderer-args",
            &log_arg,
        ])
    };
    let refused = with_plugin(chart.to_str().unwrap());
    assert!(
        !refused.status.success(),
        "a ZooKeeper chart rendered without the cluster"
    );
    assert!(refused.stdout.is_empty());
    // The args reached the binary, which found no cluster and refused.
    let said = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        said.contains("preview") && said.contains("(--plan-only)"),
        "{said}"
    );
    assert!(said.contains("cannot reach the cluster"), "{said}");
    let o = other.to_str().unwrap();
    let plain = helm_cmd(&["template", "zk", o, "-n", "zk-test"]);
    let rendered = with_plugin(o);
    assert!(
        rendered.status.success(),
        "{}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    // Helm 4 re-serializes what a post-renderer prints (kyaml), so compare documents, not bytes
    // (the byte-for-byte pass-through is checked on the binary itself above).
    let docs = |b: &[u8]| -> Vec<serde_yaml::Value> {
        let text = String::from_utf8_lossy(b).to_string();
        serde_yaml::Deserializer::from_str(&text)
            .map(|d| serde::Deserialize::deserialize(d).unwrap())
            .collect()
    };
    assert!(!plain.is_empty());
    assert_eq!(docs(&rendered.stdout), docs(&plain));
}

/// Without a binary anywhere the plugin script fails with a message saying what to do.
#[test]
fn plugin_script_says_when_the_binary_is_missing() {
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/helm-post-render.sh"
    ))
    .env("HELM_PLUGIN_DIR", empty.path())
    .env("PATH", "/usr/bin:/bin")
    .env_remove("CARGO_TARGET_DIR")
    .stdin(Stdio::null())
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(127));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("make install"));
}

/// Helm's spelling of the context flag is accepted after `--post-renderer-args` (it names a
/// context that does not exist: harmless with `--check`, an error otherwise).
#[test]
fn kube_context_is_accepted_as_helm_spells_it() {
    let out = run_with(&["--kube-context=nope", "--check"], MINIMAL.as_bytes());
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    let out = run_with(&["--kube-contxt=nope", "--check"], MINIMAL.as_bytes());
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}
