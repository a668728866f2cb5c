//! The command line as a new user and an adversarial one meet it (issue: reliability): no
//! panic, usage before any cluster call, bounded waits, messages that say where and why,
//! completion in every shell. The built binary, fake API servers on loopback, real shells.

#[path = "support/fake_api.rs"]
mod fake_api;

use fake_api::{no_panic, silent, stderr};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::Ordering;

const BIN: &str = env!("CARGO_BIN_EXE_kubectl-zkscale");

fn run(args: &[&str], env: &[(&str, &str)], stdin: &[u8]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .env("ZKSCALE_LOG_FILE", "-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let w = std::thread::spawn(move || input.write_all(&data));
    let out = child.wait_with_output().unwrap();
    let _ = w.join();
    out
}

/// A kubeconfig for `server` with a bearer token that must never be printed.
fn kubeconfig(dir: &Path, server: &str) -> String {
    fake_api::kubeconfig(dir, server, "{token: secret-token-never-printed}")
}

/// A plain-HTTP server answering every request with `status` and `body`.
fn answering(status: &str, body: &str) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (status, body) = (status.to_string(), body.to_string());
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{addr}")
}

#[test]
fn no_panics_on_odd_input() {
    let o = run(
        &[
            "post-render",
            "--offline",
            "--timeout",
            "99999999999999999999s",
        ],
        &[],
        b"",
    );
    no_panic(&o);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // A reader that goes away at once (`| true`).
    let mut child = Command::new(BIN)
        .args(["completions", "bash"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    no_panic(&o);
}

#[test]
fn usage_comes_before_any_cluster_call() {
    let dir = tempfile::tempdir().unwrap();
    let (server, connections) = silent();
    let kc = kubeconfig(dir.path(), &server);
    let env = [("KUBECONFIG", kc.as_str())];
    for args in [
        &[][..],
        &["--dry-run"],
        &["--to", "0"],
        &["plan", "--to", "0"],
        &["--to", "16"],
        &["post-render", "-o", "json"],
        &["post-render", "--release", "r"],
        &["completions", "bash", "--force", "x"],
    ] {
        let o = run(args, &env, b"");
        no_panic(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    }
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "a usage error called the cluster"
    );
}

#[test]
fn the_timeout_bounds_the_wait_for_the_api_server() {
    let dir = tempfile::tempdir().unwrap();
    let (server, connections) = silent();
    let kc = kubeconfig(dir.path(), &server);
    let o = run(&["status", "--timeout", "1s"], &[("KUBECONFIG", &kc)], b"");
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(
        e.contains(&server) && e.contains("no answer within 1s"),
        "{e}"
    );
    assert!(connections.load(Ordering::SeqCst) >= 1);
    // The post-renderer too (a preview: refused, nothing printed).
    let o = run(
        &["post-render", "--plan-only", "--timeout", "1s"],
        &[("KUBECONFIG", &kc)],
        MINIMAL.as_bytes(),
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(o.stdout.is_empty());
    assert!(stderr(&o).contains("no answer within 1s"), "{}", stderr(&o));
}

#[test]
fn connection_errors_say_where_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let refused = kubeconfig(dir.path(), "https://127.0.0.1:1");
    let o = run(&["status"], &[("KUBECONFIG", &refused)], b"");
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(
        e.contains("https://127.0.0.1:1") && e.contains("refused"),
        "{e}"
    );
    // Not TLS at the other end.
    let plain = answering("200 OK", "{}").replace("http://", "https://");
    let kc = kubeconfig(dir.path(), &plain);
    let e = stderr(&run(&["status"], &[("KUBECONFIG", &kc)], b""));
    assert!(
        e.contains(&plain) && !e.trim_end().ends_with("(Connect)"),
        "{e}"
    );
    // An HTTP 500 is said as one, not as a debug dump.
    let status = r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"etcd is down","reason":"InternalError","code":500}"#;
    let kc = kubeconfig(dir.path(), &answering("500 Internal Server Error", status));
    let e = stderr(&run(&["status"], &[("KUBECONFIG", &kc)], b""));
    assert!(e.contains("HTTP 500") && e.contains("etcd is down"), "{e}");
    assert!(!e.contains("Status {"), "{e}");
    // `--execute` with no cluster: nothing started, so nothing to resume.
    let o = run(
        &["post-render", "--execute"],
        &[("KUBECONFIG", &refused)],
        MINIMAL.as_bytes(),
    );
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.contains("cannot reach") && !e.contains("resumes"), "{e}");
    // The kubeconfig's bearer token is never part of a message.
    assert!(!e.contains("secret-token-never-printed"), "{e}");
}

#[test]
fn a_kubeconfig_path_list_skips_missing_files() {
    let dir = tempfile::tempdir().unwrap();
    let kc = kubeconfig(dir.path(), "https://127.0.0.1:1");
    let list = format!("/missing/one:{kc}");
    let e = stderr(&run(&["status"], &[("KUBECONFIG", &list)], b""));
    // The existing file was read: the error is about reaching its server, not the config.
    assert!(e.contains("https://127.0.0.1:1"), "{e}");
    let e = stderr(&run(
        &["status"],
        &[("KUBECONFIG", "/missing/one:/missing/two")],
        b"",
    ));
    assert!(e.contains("names no file that exists"), "{e}");
}

const MINIMAL: &str = "---\napiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: zk-zookeeper\n  namespace: zk-test\n  labels:\n    app.kubernetes.io/name: zookeeper\n    helm.sh/chart: zookeeper-13.7.4\nspec:\n  replicas: 3\n  template:\n    spec:\n      containers:\n        - name: zookeeper\n          env:\n            - name: ZOO_SERVERS\n              value: zk-zookeeper-0.h:2888:3888::1 zk-zookeeper-1.h:2888:3888::2 zk-zookeeper-2.h:2888:3888::3\n";

#[test]
fn odd_streams() {
    // A StatefulSet inside a List, YAML and JSON: refused, never skipped.
    let list = format!(
        "apiVersion: v1\nkind: List\nitems:\n{}",
        MINIMAL
            .trim_start_matches("---\n")
            .lines()
            .enumerate()
            .map(|(i, l)| if i == 0 {
                format!("- {l}\n")
            } else {
                format!("  {l}\n")
            })
            .collect::<String>()
    );
    let json = r#"{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"apps/v1","kind":"StatefulSet","metadata":{"name":"zk","labels":{"app.kubernetes.io/name":"zookeeper"}},"spec":{"template":{"spec":{"containers":[{"name":"zookeeper","env":[{"name":"ZOO_SERVERS","value":"a:1:2::1"}]}]}}}}]}"#;
    for input in [list.as_str(), json] {
        let o = run(&["post-render", "--offline"], &[], input.as_bytes());
        assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
        assert!(stderr(&o).contains("item of a List"), "{}", stderr(&o));
    }
    // The entry a message is about is quoted (`;` ends an entry in the image's reading).
    let semi = MINIMAL.replace("::1 ", "::1;2181 ");
    let e = stderr(&run(&["post-render", "--check"], &[], semi.as_bytes()));
    assert!(e.contains("`2181`"), "{e}");
    // A NUL byte: the stream's line, not a position in the document.
    let e = stderr(&run(
        &["post-render", "--check"],
        &[],
        b"a: 1\n---\nb: 2\nc: \"x\x00\"\n",
    ));
    assert!(e.contains("stream line 4 column 6"), "{e}");
    // Valid YAML: document end markers, directives, empty documents, big integers.
    for ok in [
        "a: 1\n...\n%YAML 1.1\n---\nb: 2\n...\nc: 3\n",
        "%YAML 1.2\n---\na: 1\n---\n---\nb: 2\n",
        "a: 123456789012345678901234567890\n",
    ] {
        for mode in ["--check", "--offline"] {
            let o = run(&["post-render", mode], &[], ok.as_bytes());
            assert!(o.status.success(), "{mode} {ok:?}: {}", stderr(&o));
            if mode == "--offline" {
                assert_eq!(o.stdout, ok.as_bytes());
            }
        }
    }
    let big = MINIMAL.replace(
        "  replicas: 3\n",
        "  replicas: 3\n  minReadySeconds: 123456789012345678901234567890\n",
    );
    assert!(run(&["post-render", "--check"], &[], big.as_bytes())
        .status
        .success());
}

#[test]
fn help_says_what_each_flag_does_and_only_where_it_applies() {
    let help = |args: &[&str]| String::from_utf8_lossy(&run(args, &[], b"").stdout).into_owned();
    let plan = help(&["plan", "--help"]);
    assert!(plan.contains("The size to plan for"), "{plan}");
    assert!(
        plan.contains("-o, --output") && plan.contains("JSON events"),
        "{plan}"
    );
    let completions = help(&["completions", "--help"]);
    assert!(
        !completions.contains("--force") && !completions.contains("--namespace"),
        "{completions}"
    );
    let top = help(&["--help"]);
    let line = top
        .lines()
        .find(|l| l.trim_start().starts_with("post-render"))
        .unwrap();
    assert!(line.len() < 100, "{line}");
    let pr = help(&["post-render", "--help"]);
    assert!(pr.contains("is refused (exit 3)"), "{pr}");
    assert!(
        !pr.contains("--release") && !pr.contains("--output"),
        "{pr}"
    );
}

#[test]
fn an_unwritable_log_file_is_said() {
    let o = run(
        &[
            "post-render",
            "--offline",
            "--log-file",
            "/proc/zkscale/cannot",
        ],
        &[("ZKSCALE_LOG_FILE", "")],
        b"a: 1\n",
    );
    // --offline writes no log file at all; a cluster mode says it cannot.
    assert!(o.status.success());
    let o = Command::new(BIN)
        .args([
            "post-render",
            "--plan-only",
            "--log-file",
            "/proc/zkscale/cannot",
        ])
        .env("KUBECONFIG", "/nonexistent")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let e = stderr(&o);
    assert!(
        e.contains("cannot write the log file /proc/zkscale/cannot"),
        "{e}"
    );
}

/// `kubectl zkscale <TAB>`: kubectl runs `kubectl_complete-zkscale <words…>`.
#[test]
fn kubectl_plugin_completion() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("kubectl_complete-zkscale");
    std::os::unix::fs::symlink(BIN, &link).unwrap();
    let complete = |words: &[&str]| {
        let o = Command::new(&link).args(words).output().unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let top = complete(&[""]);
    assert!(top.contains("status\n") && top.ends_with(":4\n"), "{top}");
    assert!(complete(&["post-render", "--"]).contains("--offline\n"));
    assert_eq!(complete(&["-o", ""]), "text\njson\n:4\n");
    // The same through `__complete`.
    let o = Command::new(BIN)
        .args(["__complete", "post-render", "--of"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "--offline\n:4\n");
}

fn script(shell: &str) -> String {
    let o = Command::new(BIN)
        .args(["completions", shell])
        .output()
        .unwrap();
    assert!(o.status.success());
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn bash_completion_completes_subcommand_flags() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.bash");
    std::fs::write(&path, script("bash")).unwrap();
    let complete = |line: &str| {
        let words: Vec<&str> = line.split(' ').collect();
        let sh = format!(
            "source {}; f=$(complete -p kubectl-zkscale | sed 's/.*-F \\([^ ]*\\).*/\\1/'); COMP_WORDS=({}); COMP_CWORD={}; COMP_LINE='{line}'; COMP_POINT={}; $f kubectl-zkscale '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            path.display(),
            words.iter().map(|w| format!("'{w}'")).collect::<Vec<_>>().join(" "),
            words.len() - 1,
            line.len(),
            words[words.len() - 1],
            words[words.len() - 2],
        );
        let o = Command::new("bash").args(["-c", &sh]).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let got = complete("kubectl-zkscale post-render --");
    assert!(got.lines().any(|l| l == "--offline"), "{got}");
    let got = complete("kubectl-zkscale st");
    assert!(got.lines().any(|l| l == "status"), "{got}");
}

#[test]
fn zsh_and_fish_completion() {
    for shell in ["zsh", "fish"] {
        if Command::new(shell).arg("--version").output().is_err() {
            panic!("{shell} not installed (tests/bed/install.sh shells; `make deps` does it)");
        }
    }
    let dir = tempfile::tempdir().unwrap();
    // fish completes a command line for us: `complete -C`.
    let fish = dir.path().join("c.fish");
    std::fs::write(&fish, script("fish")).unwrap();
    let o = Command::new("fish")
        .args([
            "-c",
            &format!(
                "source {}; complete -C 'kubectl-zkscale post-render --'",
                fish.display()
            ),
        ])
        .output()
        .unwrap();
    let got = String::from_utf8_lossy(&o.stdout);
    assert!(got.lines().any(|l| l.starts_with("--offline")), "{got}");
    // zsh: the script loads in a real zsh with compinit, and defines the completion function.
    let zsh = dir.path().join("_kubectl-zkscale");
    std::fs::write(&zsh, script("zsh")).unwrap();
    let o = Command::new("zsh")
        .args([
            "-f",
            "-c",
            &format!(
                "autoload -U compinit && compinit -u -d {d}/zcd && source {z} && whence -w _kubectl-zkscale",
                d = dir.path().display(),
                z = zsh.display()
            ),
        ])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && out.contains("function"),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let text = script("zsh");
    assert!(
        text.contains("--offline") && !text.contains("kubectl zkscale__"),
        "zsh script names"
    );
}

#[test]
fn version_says_what_this_build_is() {
    let o = run(&["version", "-o", "json"], &[], b"");
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert!(!v["commit"].as_str().unwrap().is_empty());
    assert!(v["build_date"].as_str().unwrap().ends_with('Z'));
    assert!(v["tested_with"]["kubernetes"]
        .as_str()
        .unwrap()
        .starts_with("v1.33"));
    let text = String::from_utf8(run(&["version"], &[], b"").stdout).unwrap();
    assert!(text.contains("tested with Kubernetes v1.33"), "{text}");
    let short = String::from_utf8(run(&["--version"], &[], b"").stdout).unwrap();
    assert!(
        short.starts_with(&format!("kubectl-zkscale {}", env!("CARGO_PKG_VERSION"))),
        "{short}"
    );
}
