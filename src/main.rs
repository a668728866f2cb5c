//! `kubectl-zkscale`: the kubectl plugin and Helm post-renderer front ends over one engine.

use std::io::{IsTerminal, Read, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{CommandFactory, Parser, Subcommand};
use zkscale::cluster::{self, Access, Connect, Selector};
use zkscale::engine::{Engine, EngineError, Event, Options, Progress, Status};

/// Exit codes, documented in the README. Pipelines branch on these.
mod exit {
    /// Done (or nothing to do); `status`: healthy.
    pub const OK: u8 = 0;
    /// Unexpected failure (API or I/O error): see the message.
    pub const FAILED: u8 = 1;
    /// Refused before changing anything: bad input, unhealthy ensemble, lock held.
    pub const REFUSED: u8 = 3;
    /// `status`: the ensemble is not healthy.
    pub const UNHEALTHY: u8 = 5;
}

#[derive(Parser, Debug)]
#[command(
    name = "kubectl-zkscale",
    bin_name = "kubectl zkscale",
    version,
    args_override_self = true,
    about = "Scale a bitnami ZooKeeper ensemble one safe step at a time",
    long_about = "Scale a bitnami ZooKeeper ensemble one safe step at a time: one member per step, \
followers restarted first and the leader last, and a health gate (one leader, every voter synced, \
no znode lost) between steps.\n\nExit codes: 0 done, 1 failed, 2 usage, 3 refused before any \
change, 4 stopped at a safe size (re-run to resume), 5 `status`: unhealthy."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Target number of members.
    #[arg(long, value_name = "N")]
    to: Option<u32>,
    /// Show the plan; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Start even though the ensemble is not healthy (give the reason; it is logged).
    #[arg(long, value_name = "REASON", global = true)]
    force: Option<String>,
    /// Delete a claim left over from an earlier scale-down instead of refusing (its data is stale).
    #[arg(long, global = true)]
    delete_stale_claims: bool,
    /// Keep the claims of removed members (reported) instead of deleting them.
    #[arg(long, global = true)]
    keep_removed_claims: bool,
    #[command(flatten)]
    global: Global,
}

#[derive(clap::Args, Debug, Clone)]
struct Global {
    /// Namespace (default: the context's).
    #[arg(short = 'n', long, global = true)]
    namespace: Option<String>,
    /// kubeconfig context (`--kube-context` too, as Helm spells it).
    #[arg(long, global = true, visible_alias = "kube-context")]
    context: Option<String>,
    /// kubeconfig file (default: KUBECONFIG, a path list, merged; else ~/.kube/config).
    #[arg(long, global = true)]
    kubeconfig: Option<std::path::PathBuf>,
    /// Helm release (bitnami labels) to work on.
    #[arg(long, global = true, conflicts_with = "statefulset")]
    release: Option<String>,
    /// StatefulSet to work on (default: the only bitnami ZooKeeper StatefulSet in the namespace).
    #[arg(long, global = true)]
    statefulset: Option<String>,
    /// Longest wait for any one gate, e.g. 90s, 10m.
    #[arg(long, global = true, default_value = "5m", value_parser = parse_duration)]
    timeout: Duration,
    #[arg(short = 'o', long, global = true, value_enum, default_value = "text")]
    output: Output,
    /// How four-letter words reach members: through the API server, or straight to pod IPs
    /// (inside the cluster).
    #[arg(long, global = true, value_enum, default_value = "port-forward")]
    connect: Connect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Output {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show the steps `--to N` would take (changes nothing).
    Plan {
        #[arg(long, value_name = "N")]
        to: u32,
    },
    /// One row per member and a verdict naming every failed condition.
    Status,
    /// Helm post-renderer: manifests on stdin; on a real `helm install/upgrade` the ensemble's
    /// size and template change is carried out step by step first; the final state on stdout.
    /// Real upgrade or preview (`helm template`, `--dry-run`, `helm diff`) is read from the helm
    /// command line above us; --execute / --plan-only override it.
    PostRender {
        /// Never contact a cluster: check the stream and print it when it holds no bitnami
        /// ZooKeeper StatefulSet; one is refused (exit 3), since without the live ensemble its
        /// size could be a jump for whoever applies the output.
        #[arg(long, conflicts_with_all = ["execute", "plan_only"])]
        offline: bool,
        /// Never contact a cluster and print nothing on stdout: only check the stream (exit 0
        /// valid, 3 refused) and list the ZooKeeper StatefulSets found, on stderr.
        #[arg(long, conflicts_with_all = ["execute", "plan_only", "offline"])]
        check: bool,
        /// Carry the change out, whatever the helm command line says.
        #[arg(long, conflicts_with = "plan_only")]
        execute: bool,
        /// Only read the cluster and report the plan; change nothing.
        #[arg(long)]
        plan_only: bool,
        /// Also append progress here (Helm 4 drops a post-renderer's stderr). Default:
        /// $XDG_STATE_HOME/zkscale/post-render.log (~/.local/state/…); `-` for none.
        #[arg(long, env = "ZKSCALE_LOG_FILE", value_name = "FILE")]
        log_file: Option<std::path::PathBuf>,
    },
    /// Shell completions on stdout.
    Completions { shell: clap_complete::Shell },
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}`: expected a duration like 90s, 10m, 1h"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (ms, s, m, h)")),
    };
    Ok(Duration::from_secs_f64(secs))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::PostRender { offline: true, .. }) => post_render_offline(false),
        Some(Command::PostRender { check: true, .. }) => post_render_offline(true),
        Some(Command::PostRender {
            execute,
            plan_only,
            ref log_file,
            ..
        }) => post_render(&cli, execute, plan_only, log_file.clone()),
        Some(Command::Completions { shell }) => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "kubectl-zkscale",
                &mut std::io::stdout(),
            );
            ExitCode::from(exit::OK)
        }
        _ => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build();
            match rt {
                Ok(rt) => rt.block_on(kubectl(cli)),
                Err(e) => {
                    eprintln!("kubectl-zkscale: {e}");
                    ExitCode::from(exit::FAILED)
                }
            }
        }
    }
}

/// Progress as lines on stderr with the elapsed time, or as JSON events on stdout.
struct Reporter {
    start: Instant,
    output: Output,
    /// On a terminal: what the run is waiting for, redrawn with a spinner until the next line.
    spinner: Option<std::sync::Arc<std::sync::Mutex<String>>>,
}

impl Reporter {
    fn new(output: Output) -> Reporter {
        let start = Instant::now();
        let spinner = (output == Output::Text && std::io::stderr().is_terminal()).then(|| {
            let current = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
            let shown = current.clone();
            std::thread::spawn(move || {
                for frame in ["|", "/", "-", "\\"].iter().cycle() {
                    std::thread::sleep(Duration::from_millis(120));
                    let what = shown.lock().map(|s| s.clone()).unwrap_or_default();
                    if !what.is_empty() {
                        let t = start.elapsed().as_secs_f64();
                        eprint!("\r\x1b[2K[{t:>6.1}s] {frame} {what}");
                    }
                }
            });
            current
        });
        Reporter {
            start,
            output,
            spinner,
        }
    }
}

impl Progress for Reporter {
    fn event(&self, event: &Event) {
        let t = self.start.elapsed().as_secs_f64();
        if self.output == Output::Json {
            if let Ok(line) = serde_json::to_string(event) {
                println!("{line}");
            }
            return;
        }
        let line = event.to_string();
        let mut err = std::io::stderr().lock();
        if let Some(current) = &self.spinner {
            let _ = write!(err, "\r\x1b[2K");
            if let Ok(mut c) = current.lock() {
                *c = match event {
                    Event::Step { from, to, .. } => {
                        format!("step {from}→{to}: checking the ensemble")
                    }
                    Event::Action { description } => format!("{description}: waiting"),
                    _ => String::new(),
                };
            }
        }
        let _ = writeln!(err, "[{t:>6.1}s] {line}");
    }
}

fn holder() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown-host".into());
    format!("kubectl-zkscale {user}@{host} pid {}", std::process::id())
}

async fn kubectl(cli: Cli) -> ExitCode {
    let g = cli.global.clone();
    let reporter = Reporter::new(g.output);
    let fail = |e: &EngineError| {
        if g.output == Output::Json {
            println!(
                "{}",
                serde_json::json!({"event": "result", "ok": false, "exit_code": e.exit_code(), "error": e.to_string()})
            );
        }
        eprintln!("kubectl-zkscale: {e}");
        ExitCode::from(e.exit_code())
    };
    let access = Access {
        kubeconfig: g.kubeconfig.clone(),
        context: g.context.clone(),
        namespace: g.namespace.clone(),
    };
    let (client, namespace) = match cluster::connect(&access).await {
        Ok(c) => c,
        Err(e) => return fail(&e.into()),
    };
    let selector = match (&g.statefulset, &g.release) {
        (Some(s), _) => Selector::StatefulSet(s.clone()),
        (None, Some(r)) => Selector::Release(r.clone()),
        (None, None) => Selector::Auto,
    };
    let opts = Options {
        selector,
        timeout: g.timeout,
        connect: g.connect,
        force: cli.force.clone(),
        delete_stale_claims: cli.delete_stale_claims,
        keep_removed_claims: cli.keep_removed_claims,
        holder: holder(),
        wait_for_lock: false,
        cancel: Default::default(),
    };
    watch_for_stop(opts.cancel.clone(), false);
    let engine = match Engine::new(client, namespace, opts, &reporter).await {
        Ok(e) => e,
        Err(e) => return fail(&e),
    };
    let planning = cli.dry_run || matches!(cli.command, Some(Command::Plan { .. }));
    match (cli.command, cli.to) {
        (Some(Command::Status), _) => match engine.status().await {
            Ok(s) => {
                print_status(&s, g.output);
                ExitCode::from(if s.verdict.healthy {
                    exit::OK
                } else {
                    exit::UNHEALTHY
                })
            }
            Err(e) => fail(&e),
        },
        (Some(Command::Plan { to }), _) | (None, Some(to)) if planning => {
            match engine.plan(to).await {
                Ok(p) => {
                    if g.output == Output::Json {
                        println!("{}", serde_json::to_string_pretty(&p).unwrap_or_default());
                    } else {
                        print_plan(&p);
                    }
                    ExitCode::from(exit::OK)
                }
                Err(e) => fail(&e),
            }
        }
        (None, Some(to)) => {
            if let Some(reason) = &cli.force {
                eprintln!("kubectl-zkscale: WARNING: --force given ({reason}): the pre-step health gate may be overridden");
            }
            match engine.scale(to).await {
                Ok(v) => {
                    if g.output == Output::Json {
                        println!(
                            "{}",
                            serde_json::json!({"event": "result", "ok": true, "exit_code": 0, "verdict": v})
                        );
                    } else {
                        println!(
                            "{}/{}: {}",
                            engine.namespace(),
                            engine.statefulset(),
                            v.summary()
                        );
                    }
                    ExitCode::from(exit::OK)
                }
                Err(e) => fail(&e),
            }
        }
        _ => {
            let _ = Cli::command().print_help();
            ExitCode::from(2)
        }
    }
}

fn print_plan(p: &zkscale::plan::Plan) {
    if p.steps.is_empty() {
        println!("nothing to do: already {} member(s)", p.to);
        return;
    }
    println!(
        "{} → {} member(s) in {} step(s):",
        p.from,
        p.to,
        p.steps.len()
    );
    for s in &p.steps {
        println!(
            "step {}→{}{} (predicted elections: {})",
            s.from,
            s.to,
            if s.resumed {
                " (resumes a step under way)"
            } else {
                ""
            },
            s.predicted_elections
        );
        for a in &s.actions {
            println!("  {}", serde_json::to_string(a).unwrap_or_default());
        }
    }
}

fn print_status(s: &Status, output: Output) {
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(s).unwrap_or_default());
        return;
    }
    println!(
        "{}/{}: {} replica(s), ZOO_SERVERS `{}`",
        s.namespace,
        s.statefulset,
        s.replicas,
        s.servers.trim_end()
    );
    if let Some(op) = &s.operation {
        println!("operation in progress: {op}");
    }
    let rows: Vec<[String; 10]> = s
        .members
        .iter()
        .map(|m| {
            let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
            [
                m.pod.clone(),
                m.ordinal.to_string(),
                m.server_id
                    .map(|i| i.to_string())
                    .unwrap_or_else(|| "-".into()),
                opt(&m.address),
                m.ready.to_string(),
                m.mode.clone(),
                opt(&m.zxid),
                m.znode_count
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "-".into()),
                m.synced
                    .map(|b| b.to_string())
                    .unwrap_or_else(|| "-".into()),
                opt(&m.version),
            ]
        })
        .collect();
    let header = [
        "POD",
        "ORD",
        "ID",
        "QUORUM ADDRESS",
        "READY",
        "MODE",
        "ZXID",
        "ZNODES",
        "SYNCED",
        "VERSION",
    ];
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    println!("{}", line(&header.map(String::from)));
    for r in &rows {
        println!("{}", line(r));
    }
    println!("verdict: {}", s.verdict.summary());
}

/// `post-render --offline` / `--check`: the manifest pipeline alone, no cluster. Reads all of
/// stdin; `--offline` writes it back only when it holds no ZooKeeper StatefulSet (without the
/// live ensemble, printing one could hand a jump to whoever applies the output), `--check`
/// never writes. A failing post-renderer leaves stdout empty, so Helm aborts cleanly.
fn post_render_offline(check_only: bool) -> ExitCode {
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut input) {
        eprintln!("kubectl-zkscale post-render: reading stdin: {e}");
        return ExitCode::from(exit::FAILED);
    }
    let stream = match zkscale::manifest::Stream::parse(&input) {
        Ok(stream) => stream,
        Err(e) => {
            eprintln!("kubectl-zkscale post-render: {e}");
            return ExitCode::from(exit::REFUSED);
        }
    };
    for w in stream.warnings() {
        eprintln!("kubectl-zkscale post-render: warning: {w}");
    }
    let found: Vec<String> = stream
        .zookeepers()
        .iter()
        .map(|z| {
            format!(
                "{}/{} (replicas {}, {} server(s))",
                z.namespace.as_deref().unwrap_or("-"),
                z.name,
                z.effective_replicas(),
                z.servers.len()
            )
        })
        .collect();
    if check_only {
        eprintln!(
            "kubectl-zkscale post-render --check: {} document(s), valid; bitnami ZooKeeper StatefulSets: {}",
            stream.documents().len(),
            if found.is_empty() { "none".to_string() } else { found.join(", ") }
        );
        return ExitCode::from(exit::OK);
    }
    if !found.is_empty() {
        eprintln!(
            "kubectl-zkscale post-render: refused: --offline cannot read the live ensemble of {}, so the \
             size the chart renders could move it by several members at once for whoever applies the \
             output; nothing printed. Render against the cluster (drop --offline), or only check the \
             stream with --check",
            found.join(", ")
        );
        return ExitCode::from(exit::REFUSED);
    }
    drop(stream);
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_all(&input).and_then(|_| stdout.flush()) {
        eprintln!("kubectl-zkscale post-render: writing stdout: {e}");
        return ExitCode::from(exit::FAILED);
    }
    ExitCode::from(exit::OK)
}

/// Where post-render progress goes. Helm 3 shows a post-renderer's stderr only when it fails
/// and Helm 4 never does, so every line also goes to the controlling terminal (when stderr is
/// not already it) and to a log file; the engine adds Events and a status annotation on the
/// StatefulSet.
struct PostRenderReporter {
    start: Instant,
    sinks: std::sync::Mutex<Vec<(bool, Box<dyn Write + Send>)>>,
    log_path: Option<std::path::PathBuf>,
}

impl PostRenderReporter {
    fn new(log_file: Option<std::path::PathBuf>) -> PostRenderReporter {
        // (timestamped, sink)
        let mut sinks: Vec<(bool, Box<dyn Write + Send>)> =
            vec![(false, Box::new(std::io::stderr()))];
        if !std::io::stderr().is_terminal() {
            if let Ok(tty) = std::fs::OpenOptions::new().write(true).open("/dev/tty") {
                sinks.push((false, Box::new(tty)));
            }
        }
        let path = match log_file {
            Some(p) if p.as_os_str() == "-" => None,
            Some(p) => Some(p),
            None => std::env::var_os("XDG_STATE_HOME")
                .map(std::path::PathBuf::from)
                .or_else(|| {
                    std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".local/state"))
                })
                .map(|d| d.join("zkscale/post-render.log")),
        };
        let mut log_path = None;
        if let Some(p) = path {
            if let Some(dir) = p.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            if let Ok(f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&p)
            {
                sinks.push((true, Box::new(f)));
                log_path = Some(p);
            }
        }
        PostRenderReporter {
            start: Instant::now(),
            sinks: std::sync::Mutex::new(sinks),
            log_path,
        }
    }

    fn line(&self, line: &str) {
        let t = self.start.elapsed().as_secs_f64();
        let wall = k8s_openapi::jiff::Timestamp::now();
        if let Ok(mut sinks) = self.sinks.lock() {
            for (stamped, w) in sinks.iter_mut() {
                let _ = if *stamped {
                    writeln!(
                        w,
                        "{wall:.0} pid {} [{t:>6.1}s] zkscale: {line}",
                        std::process::id()
                    )
                } else {
                    writeln!(w, "[{t:>6.1}s] zkscale: {line}")
                };
                let _ = w.flush();
            }
        }
    }
}

impl Progress for PostRenderReporter {
    fn event(&self, event: &Event) {
        self.line(&event.to_string());
    }
}

/// Cancels the run (between steps) on SIGINT/SIGTERM and, for the post-renderer, when the
/// parent process (Helm) is gone: nobody would apply our output, so stop at a safe size.
fn watch_for_stop(cancel: zkscale::engine::Cancel, watch_parent: bool) {
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return;
        };
        let mut first = true;
        loop {
            let name = tokio::select! {
                _ = int.recv() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            };
            if !first {
                eprintln!("kubectl-zkscale: {name} again: stopping now; re-run to resume");
                std::process::exit(130);
            }
            eprintln!(
                "kubectl-zkscale: {name}: stopping after the current step (again to stop now)"
            );
            on_signal.cancel(name);
            first = false;
        }
    });
    if watch_parent {
        let parent = std::os::unix::process::parent_id();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if std::os::unix::process::parent_id() != parent {
                    cancel.cancel(format!(
                        "the process that ran the post-renderer (pid {parent}) is gone"
                    ));
                    return;
                }
            }
        });
    }
}

/// `post-render`: see `zkscale::postrender`. Stdout gets the manifests only on success.
fn post_render(
    cli: &Cli,
    execute: bool,
    plan_only: bool,
    log_file: Option<std::path::PathBuf>,
) -> ExitCode {
    use zkscale::postrender::{self, Mode};
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut input) {
        eprintln!("kubectl-zkscale post-render: reading stdin: {e}");
        return ExitCode::from(exit::FAILED);
    }
    let reporter = PostRenderReporter::new(log_file);
    let caller = postrender::detect();
    let g = &cli.global;
    let settings = postrender::Settings {
        requested: match (execute, plan_only) {
            (true, _) => Some(Mode::Execute),
            (_, true) => Some(Mode::Preview),
            _ => None,
        },
        kubeconfig: g.kubeconfig.clone(),
        context: g.context.clone(),
        namespace: g.namespace.clone(),
        timeout: g.timeout,
        connect: g.connect,
        delete_stale_claims: cli.delete_stale_claims,
        keep_removed_claims: cli.keep_removed_claims,
        force: cli.force.clone(),
        holder: format!(
            "{} (post-render{})",
            holder(),
            caller
                .as_ref()
                .map(|c| format!(" of {}", c.describe()))
                .unwrap_or_default()
        ),
        cancel: Default::default(),
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            reporter.line(&format!("ERROR: {e}"));
            return ExitCode::from(exit::FAILED);
        }
    };
    let result = rt.block_on(async {
        watch_for_stop(settings.cancel.clone(), true);
        postrender::run(&input, &settings, caller.as_ref(), &reporter).await
    });
    match result {
        Ok(output) => {
            let mut stdout = std::io::stdout().lock();
            if let Err(e) = stdout.write_all(&output).and_then(|_| stdout.flush()) {
                reporter.line(&format!("ERROR: writing the manifests to Helm: {e}"));
                return ExitCode::from(exit::FAILED);
            }
            ExitCode::from(exit::OK)
        }
        Err(e) => {
            let code = e.exit_code();
            reporter.line(&format!("ERROR: {}", e.message()));
            if let Some(p) = &reporter.log_path {
                reporter.line(&format!("log: {}", p.display()));
            }
            ExitCode::from(code)
        }
    }
}
