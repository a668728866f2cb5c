//! The command line of `kubectl-zkscale` (clap) and its dispatch to the two front ends:
//! [`kubectl`] (`--to N`, `plan`, `status`) and [`post_render`] (the Helm post-renderer). Both
//! build the engine's options the same way, from the same flags ([`Cli::options`]).

mod kubectl;
mod post_render;
mod stop;

use std::path::PathBuf;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};

use crate::cluster::{Access, Connect, Selector};
use crate::engine::Options;
use crate::exit::Exit;
use crate::report::Output;

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
pub struct Cli {
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
    kubeconfig: Option<PathBuf>,
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
    /// A debug trail on stderr (-v debug, -vv trace; RUST_LOG overrides).
    #[arg(short = 'v', long = "verbose", global = true, action = clap::ArgAction::Count)]
    verbose: u8,
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
        log_file: Option<PathBuf>,
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

impl Cli {
    pub fn verbosity(&self) -> u8 {
        self.global.verbose
    }

    /// Where the cluster is, as the flags give it.
    fn access(&self) -> Access {
        Access {
            kubeconfig: self.global.kubeconfig.clone(),
            context: self.global.context.clone(),
            namespace: self.global.namespace.clone(),
        }
    }

    /// The engine's options from the flags (the one place both front ends get them).
    fn options(&self, holder: String, wait_for_lock: bool) -> Options {
        let g = &self.global;
        Options {
            selector: match (&g.statefulset, &g.release) {
                (Some(s), _) => Selector::StatefulSet(s.clone()),
                (None, Some(r)) => Selector::Release(r.clone()),
                (None, None) => Selector::Auto,
            },
            timeout: g.timeout,
            connect: g.connect,
            force: self.force.clone(),
            delete_stale_claims: self.delete_stale_claims,
            keep_removed_claims: self.keep_removed_claims,
            holder,
            wait_for_lock,
            cancel: Default::default(),
        }
    }
}

/// Runs the parsed command line; the exit is decided from the result ([`Exit`]).
pub fn run(cli: Cli) -> anyhow::Result<Exit> {
    match &cli.command {
        Some(Command::Completions { shell }) => {
            clap_complete::generate(
                *shell,
                &mut Cli::command(),
                "kubectl-zkscale",
                &mut std::io::stdout(),
            );
            Ok(Exit::Ok)
        }
        Some(Command::PostRender { .. }) => post_render::run(cli),
        _ => runtime()?.block_on(kubectl::run(cli)),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Who holds the lock, as a second run is told.
fn holder() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown-host".into());
    format!("kubectl-zkscale {user}@{host} pid {}", std::process::id())
}
