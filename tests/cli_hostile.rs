//! Issue 23 (input and security): the command line, the environment and the kubeconfig as a
//! hostile user writes them. The built binary against fake API servers on loopback; each test
//! is a defect of release 77ec877 (shell injection through a source host, credentials in
//! messages and the debug trail, panics, a --timeout that bounded only the first call, guard
//! values spliced into CEL unchecked, environment variables that broke every command, merge
//! keys misread, migration input checked only after the cluster answered).

#[path = "support/fake_api.rs"]
mod fake_api;

use fake_api::{file, kubeconfig, no_panic, silent, stderr};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_kubectl-zkscale");

/// Runs the binary; a run that has not ended after `WATCHDOG` is killed and fails the test (a
/// read that blocks, a timeout that does not bound).
fn run(args: &[&str], env: &[(&str, &str)], stdin: &[u8]) -> Output {
    const WATCHDOG: Duration = Duration::from_secs(60);
    let mut child = Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("ZKSCALE_METHOD")
        .env("ZKSCALE_LOG_FILE", "-")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let w = std::thread::spawn(move || input.write_all(&data));
    let pid = child.id();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = done.clone();
    let killer = std::thread::spawn(move || {
        let start = Instant::now();
        while start.elapsed() < WATCHDOG {
            if flag.load(Ordering::SeqCst) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        true
    });
    let out = child.wait_with_output().unwrap();
    done.store(true, Ordering::SeqCst);
    let killed = killer.join().unwrap();
    let _ = w.join();
    assert!(!killed, "{args:?} did not end within {WATCHDOG:?}");
    out
}

/// A plain-HTTP API server: `/version` answers at once, every other path after `delay` with
/// `body`. Records each request's head (request line and headers).
fn api(delay: Duration, body: &'static str) -> (String, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = heads.clone();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let seen = seen.clone();
            std::thread::spawn(move || serve(s, delay, body, seen));
        }
    });
    (format!("http://{addr}"), heads)
}

fn serve(s: TcpStream, delay: Duration, body: &str, seen: Arc<Mutex<Vec<String>>>) {
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let version = head.starts_with("GET /version");
    seen.lock().unwrap().push(head);
    let body = if version {
        r#"{"major":"1","minor":"33","gitVersion":"v1.33.0"}"#
    } else {
        std::thread::sleep(delay);
        body
    };
    let mut s = s;
    let _ = write!(
        s,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

const MINIMAL: &str = "---\napiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: zk-zookeeper\n  namespace: zk-test\n  labels:\n    app.kubernetes.io/name: zookeeper\n    helm.sh/chart: zookeeper-13.7.4\nspec:\n  replicas: 3\n  template:\n    spec:\n      containers:\n        - name: zookeeper\n          env:\n            - name: ZOO_SERVERS\n              value: zk-zookeeper-0.h:2888:3888::1 zk-zookeeper-1.h:2888:3888::2 zk-zookeeper-2.h:2888:3888::3\n";

// --- 1 and 11: migration input, checked before the cluster is contacted -----------------

#[test]
fn source_hosts_are_names_or_addresses_checked_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (server, connections) = silent();
    let kc = kubeconfig(dir.path(), &server, "{token: t}");
    let marker = dir.path().join("pwned");
    let inject = format!("$(touch${{IFS}}{})", marker.display());
    let stop = format!(
        "ssh {{host}} sudo systemctl stop zookeeper; touch {}",
        marker.display()
    );
    let rest = "2=h2:2888:3888,3=h3:2888:3888";
    for host in [inject.as_str(), "-oProxyCommand", "h1;id", "h1`id`", "a..b"] {
        let from = format!("1={host}:2888:3888,{rest}");
        for mode in [&["migrate"][..], &["migrate", "plan"]] {
            let mut args = mode.to_vec();
            args.extend(["--from", &from, "--stop-cmd", &stop, "--timeout", "2s"]);
            let o = run(&args, &[("KUBECONFIG", &kc)], b"");
            no_panic(&o);
            let e = stderr(&o);
            assert_eq!(o.status.code(), Some(3), "{host}: {e}");
            assert!(e.contains("DNS name"), "{host}: {e}");
        }
    }
    // The same host in a zoo.cfg's server line.
    let cfg = file(
        dir.path(),
        "zoo.cfg",
        &format!("server.1={inject}:2888:3888\nserver.2=h2:2888:3888\nserver.3=h3:2888:3888\n"),
    );
    let o = run(
        &[
            "migrate",
            "--from-zoo-cfg",
            &cfg,
            "--stop-cmd",
            &stop,
            "--timeout",
            "2s",
        ],
        &[("KUBECONFIG", &kc)],
        b"",
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("DNS name"), "{}", stderr(&o));
    assert!(!marker.exists(), "a command ran");
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "the cluster was called"
    );
}

#[test]
fn migrate_plan_refuses_what_the_run_refuses_before_any_cluster_call() {
    let dir = tempfile::tempdir().unwrap();
    let (server, connections) = silent();
    let kc = kubeconfig(dir.path(), &server, "{token: t}");
    let env = [("KUBECONFIG", kc.as_str())];
    let sixteen: Vec<String> = (1..=16).map(|i| format!("{i}=h{i}:2888:3888")).collect();
    let sixteen = sixteen.join(",");
    for (args, why) in [
        (
            vec![
                "--from",
                "1=127.0.0.1:2888:3888,2=h2:2888:3888,3=h3:2888:3888",
            ],
            "--host-ip 1=<IP>",
        ),
        (
            vec![
                "--from",
                "1=169.254.1.1:2888:3888,2=h2:2888:3888,3=h3:2888:3888",
            ],
            "link-local",
        ),
        (
            vec![
                "--from",
                "1=0.0.0.0:2888:3888,2=h2:2888:3888,3=h3:2888:3888",
            ],
            "unspecified",
        ),
        (
            vec!["--from", "1=h1:2888:3888,2=h1:2888:3888,3=h3:2888:3888"],
            "same address",
        ),
        (
            vec![
                "--from",
                "1=h1:2888:3888,2=h2:2888:3888,3=h3:2888:3888",
                "--host-ip",
                "1=10.0.0.1,1=10.0.0.2",
            ],
            "given twice",
        ),
        (vec!["--from", "+1=h1:2888:3888"], "not a number"),
        (
            vec!["--from", "1=h1:2888:3888,2=h2:2888:3888,4=h4:2888:3888"],
            "gap",
        ),
        (vec!["--from", sixteen.as_str()], "at most 15"),
    ] {
        let mut line = vec!["migrate", "plan", "--timeout", "2s"];
        line.extend(args.iter().copied());
        let o = run(&line, &env, b"");
        no_panic(&o);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(3), "{args:?}: {e}");
        assert!(e.contains(why), "{args:?}: {e}");
    }
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "the cluster was called"
    );
}

#[test]
fn from_zoo_cfg_reads_a_small_regular_file_only() {
    let dir = tempfile::tempdir().unwrap();
    let (server, connections) = silent();
    let kc = kubeconfig(dir.path(), &server, "{token: t}");
    let env = [("KUBECONFIG", kc.as_str())];
    let fifo = dir.path().join("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let big = file(dir.path(), "big.cfg", &"#".repeat(2 << 20));
    let hex = file(
        dir.path(),
        "hex.cfg",
        "clientPort=0x99\nserver.1=h1:2888:3888\nserver.2=h2:2888:3888\nserver.3=h3:2888:3888\n",
    );
    for (path, why) in [
        (fifo.to_str().unwrap(), "not a regular file"),
        ("/dev/zero", "not a regular file"),
        (big.as_str(), "larger than"),
        (hex.as_str(), "`0x99` is not a port"),
    ] {
        let o = run(
            &["migrate", "plan", "--from-zoo-cfg", path, "--timeout", "2s"],
            &env,
            b"",
        );
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(3), "{path}: {e}");
        assert!(e.contains(why), "{path}: {e}");
    }
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "the cluster was called"
    );
    // IPv6 as ZooKeeper reads zoo.cfg: accepted (the image's `::` rule is not zoo.cfg's), so
    // the run goes on to the cluster (which does not answer here).
    let v6 = file(
        dir.path(),
        "v6.cfg",
        "server.1=[fd00::1]:2888:3888\nserver.2=[fd00::2]:2888:3888\nserver.3=[fd00::3]:2888:3888;[fd00::3]:2181\n",
    );
    let o = run(
        &["migrate", "plan", "--from-zoo-cfg", &v6, "--timeout", "1s"],
        &env,
        b"",
    );
    let e = stderr(&o);
    assert!(e.contains("within 1s") && !e.contains("::"), "{e}");
}

#[test]
fn a_rebuilt_pod_ordinal_is_plain_digits() {
    let dir = tempfile::tempdir().unwrap();
    let (server, connections) = silent();
    let kc = kubeconfig(dir.path(), &server, "{token: t}");
    for pod in [
        "zk-zookeeper-+1",
        "zk-zookeeper-01",
        "zk-zookeeper-",
        "zk-zookeeper-1 ",
    ] {
        let o = run(
            &["rebuild", pod, "--dry-run", "--timeout", "2s"],
            &[("KUBECONFIG", &kc)],
            b"",
        );
        assert_eq!(o.status.code(), Some(3), "{pod}: {}", stderr(&o));
        assert!(stderr(&o).contains("ordinal"), "{pod}: {}", stderr(&o));
    }
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "the cluster was called"
    );
}

// --- 2: credentials never printed ------------------------------------------------------

#[test]
fn a_bad_kubeconfig_is_located_not_quoted() {
    let dir = tempfile::tempdir().unwrap();
    let token = "tok-never-printed-4711";
    let syntax = file(
        dir.path(),
        "syntax",
        &format!(
            "apiVersion: v1\nkind: Config\nusers:\n- name: u\n  user:\n    token: {token}\n    password: pw-never-printed\nclusters: [\n"
        ),
    );
    let types = file(
        dir.path(),
        "types",
        &format!(
            "apiVersion: v1\nkind: Config\nusers:\n- name: u\n  user:\n    token: [{token}]\n"
        ),
    );
    for kc in [&syntax, &types] {
        for verbose in [&[][..], &["-vv"]] {
            let mut args = vec!["status"];
            args.extend(verbose);
            let o = run(&args, &[("KUBECONFIG", kc)], b"");
            let e = stderr(&o);
            assert_eq!(o.status.code(), Some(1), "{e}");
            assert!(
                e.contains("not a valid kubeconfig") && e.contains(kc.as_str()),
                "{e}"
            );
            assert!(!e.contains(token) && !e.contains("pw-never"), "{e}");
        }
    }
    assert!(stderr(&run(&["status"], &[("KUBECONFIG", &syntax)], b"")).contains("line "));
    // The post-renderer's persistent log file too.
    let log = dir.path().join("post-render.log");
    let log_arg = log.to_str().unwrap();
    let o = run(
        &["post-render", "--plan-only", "--log-file", log_arg],
        &[("KUBECONFIG", &syntax), ("ZKSCALE_LOG_FILE", log_arg)],
        MINIMAL.as_bytes(),
    );
    assert_ne!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(o.stdout.is_empty());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("not a valid kubeconfig"), "{text}");
    assert!(
        !text.contains(token) && !stderr(&o).contains(token),
        "{text}"
    );
}

#[test]
fn url_userinfo_never_shows() {
    let dir = tempfile::tempdir().unwrap();
    let kc = kubeconfig(
        dir.path(),
        "https://admin:pw-never-printed@127.0.0.1:1",
        "{token: t}",
    );
    for args in [&["status"][..], &["status", "-vv"]] {
        let o = run(args, &[("KUBECONFIG", &kc)], b"");
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{e}");
        assert!(e.contains("127.0.0.1:1"), "{e}");
        assert!(
            !e.contains("pw-never-printed") && !e.contains("admin:"),
            "{e}"
        );
    }
    // Past the first call, in the debug trail's request spans.
    let (server, heads) = api(
        Duration::ZERO,
        r#"{"kind":"StatefulSetList","apiVersion":"apps/v1","metadata":{},"items":[]}"#,
    );
    let with_user = server.replace("http://", "http://admin:pw-never-printed@");
    let kc = kubeconfig(dir.path(), &with_user, "{token: t}");
    let o = run(&["status", "-vv"], &[("KUBECONFIG", &kc)], b"");
    let e = stderr(&o);
    assert!(heads.lock().unwrap().len() >= 2, "{e}");
    assert!(!e.contains("pw-never-printed"), "{e}");
}

#[test]
fn the_debug_trail_never_holds_a_body_or_a_token() {
    let dir = tempfile::tempdir().unwrap();
    // An answer the client cannot decode: the library logs such a body (a Secret's data: the
    // reconfig password) at warn.
    let (server, heads) = api(
        Duration::ZERO,
        r#"{"kind":"StatefulSetList","items":"c2VjcmV0LWJvZHktbmV2ZXItbG9nZ2Vk secret-body-never-logged"}"#,
    );
    let kc = kubeconfig(dir.path(), &server, "{token: bearer-never-logged}");
    for (args, rust_log) in [
        (&["status", "-vv"][..], None),
        (&["status"], Some("trace")),
        (&["status"], Some("kube=trace,zkscale=trace")),
    ] {
        let mut env = vec![("KUBECONFIG", kc.as_str())];
        if let Some(f) = rust_log {
            env.push(("RUST_LOG", f));
        }
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null());
        if rust_log.is_none() {
            cmd.env_remove("RUST_LOG");
        }
        let o = cmd.output().unwrap();
        let e = stderr(&o);
        assert_ne!(o.status.code(), Some(0), "{e}");
        assert!(!e.contains("secret-body-never-logged"), "{rust_log:?}: {e}");
        assert!(!e.contains("bearer-never-logged"), "{rust_log:?}: {e}");
        // The trail is there (a test that could pass on an empty trail proves nothing).
        assert!(
            e.contains("requesting") || e.contains("HTTP"),
            "{rust_log:?}: {e}"
        );
    }
    assert!(heads
        .lock()
        .unwrap()
        .iter()
        .any(|h| h.contains("Bearer bearer-never-logged")));
}

// --- 6 and 12: tokens as kubectl takes them, no panic -------------------------------------

#[test]
fn a_token_with_a_line_break_is_refused_and_a_token_file_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let (server, heads) = api(Duration::ZERO, "{}");
    let block = kubeconfig(
        dir.path(),
        &server,
        "\n    token: |\n      tok-with-newline\n",
    );
    let o = run(&["status"], &[("KUBECONFIG", &block)], b"");
    no_panic(&o);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(
        e.contains("line break") && !e.contains("tok-with-newline"),
        "{e}"
    );
    assert!(heads.lock().unwrap().is_empty(), "a request went out");
    // A tokenFile written with `echo`: trimmed, as kubectl does.
    let tf = file(dir.path(), "token", "tok-from-file\n");
    let kc = kubeconfig(dir.path(), &server, &format!("{{tokenFile: '{tf}'}}"));
    let o = run(&["status", "--timeout", "5s"], &[("KUBECONFIG", &kc)], b"");
    no_panic(&o);
    let heads = heads.lock().unwrap();
    assert!(
        heads
            .iter()
            .any(|h| h.contains("authorization: Bearer tok-from-file\r\n")
                || h.contains("Authorization: Bearer tok-from-file\r\n")),
        "{heads:?} {}",
        stderr(&o)
    );
}

#[test]
fn completion_on_a_full_or_closed_stdout_does_not_panic() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let o = Command::new(BIN)
        .args(["__complete", ""])
        .stdout(full)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    no_panic(&o);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    // A reader gone before the first write (a closed pipe): quiet.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let o = Command::new(BIN)
        .args(["__complete", ""])
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    no_panic(&o);
    // stdout closed altogether.
    let o = Command::new("sh")
        .args(["-c", &format!("exec 1>&-; '{BIN}' __complete ''")])
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    no_panic(&o);
}

// --- 7: --timeout bounds the whole of a look ----------------------------------------------

#[test]
fn the_timeout_bounds_every_call_of_a_look() {
    let dir = tempfile::tempdir().unwrap();
    for t in ["0", "0s", "1ms", "500ms"] {
        let o = run(&["status", "--timeout", t], &[], b"");
        assert_eq!(o.status.code(), Some(2), "{t}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("shortest timeout"),
            "{t}: {}",
            stderr(&o)
        );
    }
    // /version at once, every other request after 10 s (the look's first list call is the
    // second request): the run must give up on it with the timeout's own words.
    let (server, heads) = api(
        Duration::from_secs(10),
        r#"{"kind":"StatefulSetList","apiVersion":"apps/v1","metadata":{},"items":[]}"#,
    );
    let kc = kubeconfig(dir.path(), &server, "{token: t}");
    let start = Instant::now();
    let o = run(&["status", "--timeout", "3s"], &[("KUBECONFIG", &kc)], b"");
    let took = start.elapsed();
    let e = stderr(&o);
    eprintln!(
        "status --timeout 3s against a 10 s server: {took:?}, exit {:?}",
        o.status.code()
    );
    assert!(matches!(o.status.code(), Some(c) if c != 0), "{e}");
    assert!(e.contains("3s"), "{e}");
    assert!(heads.lock().unwrap().len() >= 2, "{e}");
}

// --- 8: guard values ---------------------------------------------------------------------

#[test]
fn guard_values_are_kubernetes_names() {
    for (flag, value) in [
        (
            "--override-annotation",
            "x' in object.metadata.annotations || true || 'y",
        ),
        ("--override-annotation", "a\nb: c"),
        ("--override-annotation", "x-"),
        ("--namespace-labels", "team=a'b"),
        ("--namespace-labels", "te am=x"),
    ] {
        let o = run(&["guard", flag, value], &[], b"");
        assert_eq!(o.status.code(), Some(2), "{value}: {}", stderr(&o));
        assert!(o.stdout.is_empty());
        assert!(stderr(&o).contains(flag), "{}", stderr(&o));
    }
    let o = run(
        &[
            "guard",
            "--override-annotation",
            "example.com/force",
            "--namespace-labels",
            "team=zk",
        ],
        &[],
        b"",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // The chart refuses the same through its values.schema.json.
    let helm = std::env::var("ZKSCALE_CACHE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| Path::new(&std::env::var("HOME").unwrap()).join(".cache/zkscale"))
        .join("helm4/helm");
    assert!(helm.exists(), "helm 4 not installed (tests/bed/install.sh)");
    let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/zkscale-guard");
    for (set, ok) in [
        (
            "overrideAnnotation=x' in object.metadata.annotations || true || 'y",
            false,
        ),
        ("overrideAnnotation=A.io/x", false),
        ("namespaceSelector.matchLabels.team=a b", false),
        ("overrideAnnotation=example.com/force", true),
    ] {
        let o = Command::new(&helm)
            .args(["template", "g"])
            .arg(&chart)
            .args(["--set-string", set])
            .output()
            .unwrap();
        assert_eq!(o.status.success(), ok, "{set}: {}", stderr(&o));
    }
}

// --- 9: environment ------------------------------------------------------------------------

#[test]
fn bad_or_empty_environment_variables() {
    let dir = tempfile::tempdir().unwrap();
    let (server, connections) = silent();
    let kc = kubeconfig(dir.path(), &server, "{token: t}");
    for (var, value) in [
        ("ZKSCALE_METHOD", "bogus"),
        ("ZKSCALE_METHOD", ""),
        ("ZKSCALE_LOG_FILE", ""),
    ] {
        let o = run(&["version"], &[(var, value)], b"");
        assert!(o.status.success(), "{var}={value}: {}", stderr(&o));
    }
    // Empty means unset.
    let o = Command::new(BIN)
        .args(["post-render", "--offline"])
        .env("ZKSCALE_LOG_FILE", "")
        .env("ZKSCALE_METHOD", "")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    // A bad value is named, before any cluster call.
    let o = run(
        &["status", "--timeout", "2s"],
        &[("ZKSCALE_METHOD", "bogus"), ("KUBECONFIG", &kc)],
        b"",
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("ZKSCALE_METHOD"), "{}", stderr(&o));
    // The flag wins over the variable.
    let o = run(
        &[
            "plan",
            "--to",
            "3",
            "--method",
            "restart",
            "--timeout",
            "1s",
        ],
        &[("ZKSCALE_METHOD", "bogus"), ("KUBECONFIG", &kc)],
        b"",
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(connections.load(Ordering::SeqCst) >= 1);
}

// --- 10: merge keys --------------------------------------------------------------------------

#[test]
fn merge_keys_are_refused_not_misread() {
    let sts = "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: zk-zookeeper\n  labels:\n    app.kubernetes.io/name: zookeeper\n    helm.sh/chart: zookeeper-13.7.4\nspec:\n  <<: &size\n    replicas: 5\n  template:\n    spec:\n      containers:\n        - name: zookeeper\n          env:\n            - name: ZOO_SERVERS\n              value: a:2888:3888::1 b:2888:3888::2 c:2888:3888::3 d:2888:3888::4 e:2888:3888::5\n";
    // The labels that make it a ZooKeeper StatefulSet, through a merge: not skipped as "not
    // ours" either.
    let labels = sts.replace(
        "  labels:\n    app.kubernetes.io/name: zookeeper\n    helm.sh/chart: zookeeper-13.7.4\n",
        "  labels:\n    <<: {app.kubernetes.io/name: zookeeper, helm.sh/chart: zookeeper-13.7.4}\n",
    )
    .replace("  <<: &size\n    replicas: 5\n", "  replicas: 5\n");
    assert_ne!(labels, sts);
    for input in [sts.to_string(), labels] {
        for mode in ["--check", "--offline"] {
            let o = run(&["post-render", mode], &[], input.as_bytes());
            let e = stderr(&o);
            assert_eq!(o.status.code(), Some(3), "{mode}: {e}");
            assert!(
                e.contains("merge key") && !e.contains("replicas 1"),
                "{mode}: {e}"
            );
            assert!(o.stdout.is_empty(), "{mode}");
        }
    }
}

// --- the hostile pass: names that reach URL paths and selectors, files that never end --------

#[test]
fn names_reaching_urls_and_selectors_and_unbounded_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (server, connections) = silent();
    let kc = kubeconfig(dir.path(), &server, "{token: t}");
    let env = [("KUBECONFIG", kc.as_str())];
    for (args, why) in [
        (&["status", "-n", "x/../secrets"][..], "--namespace"),
        (&["status", "--release", "a,app=x"], "--release"),
        (&["status", "--statefulset", "A B"], "--statefulset"),
        (&["status", "--zk-auth-secret", " "], "--zk-auth-secret"),
        (&["--to", "3", "--force", "x\ny"], "--force"),
        (&["guard", "--actions", "deny,warn"], "do not combine"),
    ] {
        let o = run(args, &env, b"");
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(why), "{args:?}: {}", stderr(&o));
    }
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "the cluster was called"
    );
    let fifo = dir.path().join("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let fifo = fifo.to_str().unwrap();
    for kc in ["/dev/zero", fifo] {
        let o = run(&["status", "--kubeconfig", kc], &[], b"");
        assert_eq!(o.status.code(), Some(1), "{kc}: {}", stderr(&o));
        assert!(stderr(&o).contains("not a regular file"), "{}", stderr(&o));
    }
    let tf = kubeconfig(dir.path(), "https://127.0.0.1:1", "{tokenFile: /dev/zero}");
    let o = run(&["status"], &[("KUBECONFIG", &tf)], b"");
    assert!(stderr(&o).contains("not a regular file"), "{}", stderr(&o));
    // A context's namespace reaches URL paths like the flag's.
    let ns = file(
        dir.path(),
        "ns",
        &std::fs::read_to_string(&kc)
            .unwrap()
            .replace("namespace: ns", "namespace: 'a/b'"),
    );
    let o = run(&["status"], &[("KUBECONFIG", &ns)], b"");
    assert!(stderr(&o).contains("namespace `a/b`"), "{}", stderr(&o));
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "the cluster was called"
    );
}

#[test]
fn an_empty_xdg_state_home_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let kc = kubeconfig(dir.path(), "https://127.0.0.1:1", "{token: t}");
    let mut child = Command::new(BIN)
        .args(["post-render", "--plan-only", "--timeout", "2s"])
        .current_dir(dir.path())
        .env("KUBECONFIG", &kc)
        .env("XDG_STATE_HOME", "")
        .env("HOME", dir.path().join("home"))
        .env_remove("ZKSCALE_LOG_FILE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(MINIMAL.as_bytes()).unwrap();
    drop(input);
    let o = child.wait_with_output().unwrap();
    no_panic(&o);
    assert!(
        !dir.path().join("zkscale").exists(),
        "a log in the working directory"
    );
    let home_log = dir.path().join("home/.local/state/zkscale/post-render.log");
    assert!(home_log.exists(), "{}", stderr(&o));
}

// --- 12: fish offers words where words belong -----------------------------------------------

#[test]
fn fish_completes_words_not_files() {
    assert!(
        Command::new("fish").arg("--version").output().is_ok(),
        "fish not installed (tests/bed/install.sh shells)"
    );
    let dir = tempfile::tempdir().unwrap();
    // Files fish would offer if it fell back to them.
    for f in ["plan-notes.txt", "bash-file", "restart.log", "zk.cfg"] {
        std::fs::write(dir.path().join(f), "").unwrap();
    }
    let script = Command::new(BIN)
        .args(["completions", "fish"])
        .output()
        .unwrap()
        .stdout;
    let path = dir.path().join("c.fish");
    std::fs::write(&path, script).unwrap();
    let complete = |line: &str| -> Vec<String> {
        let o = Command::new("fish")
            .current_dir(dir.path())
            .args([
                "-c",
                &format!("source {}; complete -C '{line}'", path.display()),
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| l.split('\t').next().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(complete("kubectl-zkscale migrate p"), ["plan"]);
    let shells = complete("kubectl-zkscale completions ");
    assert!(shells.contains(&"bash".to_string()), "{shells:?}");
    assert!(
        !shells.iter().any(|w| w.contains("bash-file")),
        "{shells:?}"
    );
    for line in [
        "kubectl-zkscale --method ",
        "kubectl-zkscale -n x --method ",
        "kubectl-zkscale status --method ",
    ] {
        let mut got = complete(line);
        got.sort();
        assert_eq!(got, ["auto", "reconfig", "restart"], "{line}");
    }
    assert!(complete("kubectl-zkscale rebuild ").is_empty());
    // A flag that takes a file still offers files.
    assert_eq!(
        complete("kubectl-zkscale migrate --from-zoo-cfg zk."),
        ["zk.cfg"]
    );
}

#[test]
fn an_argument_that_is_not_utf8_is_refused_not_a_panic() {
    use std::os::unix::ffi::OsStrExt;
    let bad = std::ffi::OsStr::from_bytes(b"\xff");
    for args in [
        vec![bad],
        vec![
            std::ffi::OsStr::new("status"),
            std::ffi::OsStr::new("-n"),
            bad,
        ],
    ] {
        let o = Command::new(BIN).args(&args).output().unwrap();
        no_panic(&o);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    }
    let o = Command::new(BIN)
        .arg("__complete")
        .arg(bad)
        .output()
        .unwrap();
    no_panic(&o);
}

#[test]
fn a_fifo_as_log_file_does_not_hang_the_post_renderer() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("log");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let o = run(
        &[
            "post-render",
            "--plan-only",
            "--log-file",
            fifo.to_str().unwrap(),
            "--kubeconfig",
            "/nonexistent",
        ],
        &[],
        MINIMAL.as_bytes(),
    );
    assert!(
        stderr(&o).contains("cannot write the log file"),
        "{}",
        stderr(&o)
    );
}
