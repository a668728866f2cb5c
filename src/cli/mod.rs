//! The command line of `kubectl-zkscale` (clap) and its dispatch to the front ends:
//! [`kubectl`] (`--to N`, `plan`, `status`), [`post_render`] (the Helm post-renderer) and
//! [`complete`] (shell completion). The engine's options are built in one place
//! ([`Flags::options`]) for all of them.
//!
//! Each subcommand takes only the flags that mean something to it (`completions` takes none,
//! `post-render` no `-o`/`--release`); flags that several take may also come before the
//! subcommand, as kubectl plugins are used (`kubectl zkscale -n ns status`): the two are
//! merged, the one after the subcommand winning.

mod complete;
mod kubectl;
mod post_render;
mod stop;

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::cluster::{Access, Connect, Selector};
use crate::engine::{MethodChoice, Options};
use crate::exit::Exit;
use crate::plan::MAX_ENSEMBLE;
use crate::report::Output;

pub use complete::complete;

#[derive(Parser, Debug)]
#[command(
    name = "kubectl-zkscale",
    bin_name = "kubectl zkscale",
    version = crate::version::SHORT,
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
    /// Scale to this many members, one per step.
    #[arg(long, value_name = "N", value_parser = members())]
    to: Option<u32>,
    /// Show the plan for --to; change nothing.
    #[arg(long, requires = "to")]
    dry_run: bool,
    #[command(flatten)]
    cluster: ClusterArgs,
    #[command(flatten)]
    pick: PickArgs,
    #[command(flatten)]
    care: CareArgs,
    #[command(flatten)]
    method: MethodArgs,
}

/// Where the cluster is and how to reach it.
#[derive(Args, Debug, Clone, Default)]
struct ClusterArgs {
    /// Namespace (default: the context's).
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// kubeconfig context (`--kube-context` too, as Helm spells it).
    #[arg(long, visible_alias = "kube-context")]
    context: Option<String>,
    /// kubeconfig file (default: KUBECONFIG, a path list, merged; else ~/.kube/config).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Longest wait for the API server and for any one gate, e.g. 90s, 10m [default: 5m].
    #[arg(long, value_parser = parse_duration)]
    timeout: Option<Duration>,
    /// How four-letter words reach members: through the API server, or straight to pod IPs
    /// (inside the cluster) [default: port-forward].
    #[arg(long, value_enum)]
    connect: Option<Connect>,
    /// A debug trail on stderr (-v debug, -vv trace; RUST_LOG overrides).
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    verbose: u8,
}

/// Which ensemble, and how to print.
#[derive(Args, Debug, Clone, Default)]
struct PickArgs {
    /// Helm release (bitnami labels) to work on.
    #[arg(long, conflicts_with = "statefulset")]
    release: Option<String>,
    /// StatefulSet to work on (default: the only bitnami ZooKeeper StatefulSet in the namespace).
    #[arg(long)]
    statefulset: Option<String>,
    /// Output: lines for people on stderr, or JSON events on stdout (for pipelines) [default: text].
    #[arg(short = 'o', long, value_enum)]
    output: Option<Output>,
}

/// How membership changes, and as whom.
#[derive(Args, Debug, Clone, Default)]
struct MethodArgs {
    /// How steps change membership: restart members with the new list, or ZooKeeper's dynamic
    /// reconfiguration (no restarts; needs reconfigEnabled and an identity), or auto: reconfig
    /// where the ensemble allows it [default: auto] [env: ZKSCALE_METHOD].
    #[arg(long, value_enum)]
    method: Option<MethodChoice>,
    /// Secret (in the ensemble's namespace) with the identity reconfig runs as: key `password`,
    /// optional `username` (default `super`, the user of the members' superDigest)
    /// [env: ZKSCALE_ZK_AUTH_SECRET].
    #[arg(long, value_name = "SECRET")]
    zk_auth_secret: Option<String>,
}

impl MethodArgs {
    fn or(self, before: &MethodArgs) -> MethodArgs {
        MethodArgs {
            method: self.method.or(before.method),
            zk_auth_secret: self
                .zk_auth_secret
                .or_else(|| before.zk_auth_secret.clone()),
        }
    }
}

/// What a change may do.
#[derive(Args, Debug, Clone, Default)]
struct CareArgs {
    /// Start even though the ensemble is not healthy (give the reason; it is logged).
    #[arg(long, value_name = "REASON")]
    force: Option<String>,
    /// Delete a claim left over from an earlier scale-down instead of refusing (its data is stale).
    #[arg(long)]
    delete_stale_claims: bool,
    /// Keep the claims of removed members (reported) instead of deleting them.
    #[arg(long)]
    keep_removed_claims: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show the steps `--to N` would take (changes nothing).
    Plan {
        /// The size to plan for.
        #[arg(long, value_name = "N", value_parser = members())]
        to: u32,
        #[command(flatten)]
        cluster: ClusterArgs,
        #[command(flatten)]
        pick: PickArgs,
        #[command(flatten)]
        method: MethodArgs,
    },
    /// One row per member and a verdict naming every failed condition.
    Status {
        #[command(flatten)]
        cluster: ClusterArgs,
        #[command(flatten)]
        pick: PickArgs,
        #[command(flatten)]
        method: MethodArgs,
    },
    /// Recreate members on empty claims with their own server ids (a lost or corrupt disk).
    ///
    /// One at a time: members that are down first, the leader last. Each is gated before it
    /// goes (the rest must be whole and hold a quorum without it), comes back empty, syncs the
    /// whole tree from the leader and is gated again (following, synced, no znode lost) before
    /// the next. Refused for fewer than 3 members.
    Rebuild {
        /// Pods to rebuild, e.g. zk-zookeeper-1 (several: in a safe order, one at a time).
        #[arg(required = true, value_name = "POD")]
        pods: Vec<String>,
        /// Show the order and the checks' outcome; change nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        cluster: ClusterArgs,
        #[command(flatten)]
        pick: PickArgs,
    },
    /// Move an ensemble from hosts into the StatefulSet, keeping server ids and addresses.
    ///
    /// Each member gets its own Service (<statefulset>-member-<id>), first pointing at its
    /// host. The source must run with a server list naming those Services (the run checks and
    /// says which lines). Then one member at a time, by ascending id: its source is stopped, its
    /// Service repointed, the StatefulSet grows by one so that the pod with its id starts empty
    /// and syncs from the leader, and the gates pass before the next. A pod that never syncs is
    /// removed and the member started on its host again (exit 4). Re-run to resume. The target
    /// is a bitnami release installed with replicaCount=0, minServerId=<lowest id> and
    /// persistence.
    Migrate {
        /// `plan`: show the checks' outcome, the order and the elections to expect; change
        /// nothing (same as --dry-run).
        #[arg(value_parser = ["plan"], value_name = "plan")]
        mode: Option<String>,
        /// Source members, `id=host:quorumPort:electionPort[:clientPort]` (repeat, or
        /// comma-separated).
        #[arg(long, value_name = "ENTRIES", required_unless_present = "from_zoo_cfg")]
        from: Vec<String>,
        /// A source member's zoo.cfg: its `server.N=` lines (and clientPort).
        #[arg(long, value_name = "FILE", conflicts_with = "from")]
        from_zoo_cfg: Option<PathBuf>,
        /// `ID=IP`: the address the cluster reaches source member ID at, when it is not its
        /// host as resolved here (NAT, a separate network); its Service's EndpointSlice holds
        /// it (repeat, or comma-separated).
        #[arg(long, value_name = "ID=IP")]
        host_ip: Vec<String>,
        /// Stops a source member; `{id}` and `{host}` are replaced, run with `sh -c`
        /// (e.g. 'ssh {host} sudo systemctl stop zookeeper'). Without it zkscale asks you
        /// and waits until it sees the member gone.
        #[arg(long, value_name = "CMD")]
        stop_cmd: Option<String>,
        /// Starts a source member again (only when a move is rolled back).
        #[arg(long, value_name = "CMD")]
        start_cmd: Option<String>,
        /// The cluster's DNS domain, in the Services' names [default: cluster.local].
        #[arg(long, value_name = "DOMAIN")]
        cluster_domain: Option<String>,
        /// Show the plan; change nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        cluster: ClusterArgs,
        #[command(flatten)]
        pick: PickArgs,
        #[command(flatten)]
        care: CareArgs,
    },
    /// Helm post-renderer: manifests on stdin, manifests on stdout.
    ///
    /// On a real `helm install/upgrade` the ensemble's size and template change is carried out
    /// step by step first, then the final state is printed. A preview (`helm template`,
    /// `--dry-run`, `helm diff`) only reads the cluster and prints the live state with the
    /// change noted. Which one is read from the helm command line above; --execute and
    /// --plan-only override it.
    PostRender {
        /// Never contact a cluster: check the stream and print it when it holds no bitnami
        /// ZooKeeper StatefulSet; one is refused (exit 3), since without the live ensemble its
        /// size could be a jump for whoever applies the output.
        #[arg(long, conflicts_with_all = ["execute", "plan_only"])]
        offline: bool,
        /// Never contact a cluster and print nothing on stdout: only check every document of
        /// the stream (exit 0 valid, 3 refused) and list its ZooKeeper StatefulSets on stderr.
        #[arg(long, conflicts_with_all = ["execute", "plan_only", "offline"])]
        check: bool,
        /// Carry the change out, whatever the helm command line says.
        #[arg(long, conflicts_with = "plan_only")]
        execute: bool,
        /// Only read the cluster and report the plan; change nothing.
        #[arg(long)]
        plan_only: bool,
        /// Also append progress here (Helm 4 drops a post-renderer's stderr). Default:
        /// $XDG_STATE_HOME/zkscale/post-render.log (~/.local/state/…); `-` for none
        /// [env: ZKSCALE_LOG_FILE].
        #[arg(long, value_name = "FILE")]
        log_file: Option<PathBuf>,
        #[command(flatten)]
        cluster: ClusterArgs,
        #[command(flatten)]
        care: CareArgs,
        #[command(flatten)]
        method: MethodArgs,
    },
    /// The admission guard's manifests on stdout, for `kubectl apply -f -` (or --check).
    ///
    /// A ValidatingAdmissionPolicy (and its bindings) with which the API server itself refuses
    /// unsafe changes to bitnami ZooKeeper StatefulSets from any client: a replica jump of
    /// more than one member, a replica change ZOO_SERVERS does not follow (kubectl scale), a
    /// server list giving an existing member another address or id. The same manifests as
    /// the chart charts/zkscale-guard.
    Guard {
        /// Say whether the namespace's ensembles are covered instead (exit 0 refused by the
        /// API server, 5 not covered or only on trial, 1 cannot tell).
        #[arg(long)]
        check: bool,
        /// What the API server does with an unsafe change (deny, warn, audit; comma-separated)
        /// [default: deny].
        #[arg(long, value_enum, value_delimiter = ',')]
        actions: Vec<crate::guard::Action>,
        /// Cover only namespaces with these labels, `key=value,…` [default: every namespace].
        #[arg(long, value_name = "LABELS")]
        namespace_labels: Option<String>,
        /// The annotation that forces one change through on purpose (its value the reason)
        /// [default: zkscale.io/allow-unsafe].
        #[arg(long, value_name = "KEY")]
        override_annotation: Option<String>,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Shell completions on stdout (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
    /// This build: version, commit, build date, and what it was tested against.
    Version {
        /// text, or json for pipelines [default: text].
        #[arg(short = 'o', long, value_enum)]
        output: Option<Output>,
    },
}

/// A member count: 1 to the planner's maximum.
fn members() -> clap::builder::RangedI64ValueParser<u32> {
    clap::value_parser!(u32).range(1..=MAX_ENSEMBLE as i64)
}

/// `90s`, `10m`, `1.5h`, `500ms`; a number alone is seconds.
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
    let d = Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| *d <= MAX_TIMEOUT)
        .ok_or_else(|| {
            format!(
                "`{s}`: longer than the longest timeout, {}h",
                MAX_TIMEOUT.as_secs() / 3600
            )
        })?;
    if d < MIN_TIMEOUT {
        return Err(format!(
            "`{s}`: shorter than the shortest timeout, 1s (no API call or member answers in \
             less; 0 would fail every wait at once)"
        ));
    }
    Ok(d)
}

/// The longest `--timeout` (a week: anything longer is a typo).
const MAX_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);
/// The shortest `--timeout`: below a second every API call and look would time out.
const MIN_TIMEOUT: Duration = Duration::from_secs(1);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// The flags that apply, merged from before and after the subcommand.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    cluster: ClusterArgs,
    pick: PickArgs,
    care: CareArgs,
    method: MethodArgs,
}

impl ClusterArgs {
    fn or(self, before: &ClusterArgs) -> ClusterArgs {
        ClusterArgs {
            namespace: self.namespace.or_else(|| before.namespace.clone()),
            context: self.context.or_else(|| before.context.clone()),
            kubeconfig: self.kubeconfig.or_else(|| before.kubeconfig.clone()),
            timeout: self.timeout.or(before.timeout),
            connect: self.connect.or(before.connect),
            verbose: self.verbose + before.verbose,
        }
    }
}

impl PickArgs {
    fn or(self, before: &PickArgs) -> PickArgs {
        PickArgs {
            release: self.release.or_else(|| before.release.clone()),
            statefulset: self.statefulset.or_else(|| before.statefulset.clone()),
            output: self.output.or(before.output),
        }
    }
}

impl CareArgs {
    fn or(self, before: &CareArgs) -> CareArgs {
        CareArgs {
            force: self.force.or_else(|| before.force.clone()),
            delete_stale_claims: self.delete_stale_claims || before.delete_stale_claims,
            keep_removed_claims: self.keep_removed_claims || before.keep_removed_claims,
        }
    }
}

impl Flags {
    pub fn verbosity(&self) -> u8 {
        self.cluster.verbose
    }

    fn timeout(&self) -> Duration {
        self.cluster.timeout.unwrap_or(DEFAULT_TIMEOUT)
    }

    fn output(&self) -> Output {
        self.pick.output.unwrap_or(Output::Text)
    }

    /// Where the cluster is, as the flags give it.
    fn access(&self) -> Access {
        Access {
            kubeconfig: self.cluster.kubeconfig.clone(),
            context: self.cluster.context.clone(),
            namespace: self.cluster.namespace.clone(),
            timeout: self.timeout(),
        }
    }

    /// The engine's options from the flags (the one place every front end gets them).
    fn options(&self, holder: String, wait_for_lock: bool) -> Options {
        Options {
            selector: match (&self.pick.statefulset, &self.pick.release) {
                (Some(s), _) => Selector::StatefulSet(s.clone()),
                (None, Some(r)) => Selector::Release(r.clone()),
                (None, None) => Selector::Auto,
            },
            timeout: self.timeout(),
            connect: self.cluster.connect.unwrap_or(Connect::PortForward),
            force: self.care.force.clone(),
            delete_stale_claims: self.care.delete_stale_claims,
            keep_removed_claims: self.care.keep_removed_claims,
            holder,
            wait_for_lock,
            cancel: Default::default(),
            method: self.method.method.unwrap_or_default(),
            identity_secret: self.method.zk_auth_secret.clone(),
        }
    }
}

/// What the command line asks for.
pub enum Job {
    Scale(u32),
    Plan(u32),
    Status,
    Rebuild {
        pods: Vec<String>,
        dry_run: bool,
    },
    Migrate(MigrateArgs),
    PostRender {
        request: crate::postrender::Request,
        log_file: Option<PathBuf>,
    },
    Completions(clap_complete::Shell),
    Version(Output),
    Guard {
        check: bool,
        values: crate::guard::Values,
    },
    /// Nothing to do: print the help (exit 2).
    Usage,
}

/// `migrate`'s own arguments, read by the kubectl front end.
pub struct MigrateArgs {
    pub from: Vec<String>,
    pub from_zoo_cfg: Option<PathBuf>,
    pub host_ip: Vec<String>,
    pub stop_cmd: Option<String>,
    pub start_cmd: Option<String>,
    pub cluster_domain: String,
    pub dry_run: bool,
}

/// A DNS-1123 label (a namespace): 1 to 63 lower-case letters, digits and `-`, not beginning
/// or ending with `-`.
fn dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A DNS-1123 subdomain (a StatefulSet's, a Secret's, a release's name): labels joined by `.`,
/// at most 253 characters.
fn dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(dns_label)
}

impl Flags {
    /// Names the API server takes in a URL path or a label selector, checked before any call:
    /// a namespace with `/` or a release with `,` would otherwise change which objects are
    /// asked for. A `--force` reason lands in Events and the log: one line of text.
    fn check(&self) -> Result<(), String> {
        let name = |flag: &str, v: &Option<String>, ok: fn(&str) -> bool, what: &str| match v {
            Some(v) if !ok(v) => Err(format!(
                "{flag} `{}`: not a Kubernetes {what} (lower-case letters, digits, `-`{})",
                v.escape_debug(),
                if what == "namespace" { "" } else { ", `.`" }
            )),
            _ => Ok(()),
        };
        name(
            "--namespace",
            &self.cluster.namespace,
            dns_label,
            "namespace",
        )?;
        name(
            "--statefulset",
            &self.pick.statefulset,
            dns_subdomain,
            "name",
        )?;
        name(
            "--release",
            &self.pick.release,
            dns_subdomain,
            "release name",
        )?;
        name(
            "--zk-auth-secret (or ZKSCALE_ZK_AUTH_SECRET)",
            &self.method.zk_auth_secret,
            dns_subdomain,
            "Secret name",
        )?;
        if let Some(reason) = &self.care.force {
            if reason.trim().is_empty()
                || reason.len() > 1024
                || reason.chars().any(char::is_control)
            {
                return Err(
                    "--force: give the reason as one line of text (at most 1024 bytes)".into(),
                );
            }
        }
        Ok(())
    }
}

/// An environment variable standing in for a flag: unset and empty are the same (a value
/// exported empty to "turn it off" must not break anything); a value that is not text is said
/// naming the variable.
fn env_value(name: &str) -> Result<Option<std::ffi::OsString>, String> {
    match std::env::var_os(name) {
        Some(v) if v.is_empty() => Ok(None),
        v => Ok(v),
    }
}

fn env_text(name: &str) -> Result<Option<String>, String> {
    env_value(name)?
        .map(|v| {
            v.into_string()
                .map_err(|_| format!("{name}: not UTF-8 text"))
        })
        .transpose()
}

impl Cli {
    /// The job and its flags, those given before the subcommand merged in, and the environment
    /// variables read for the flags not given (only by the commands that take them: a bad
    /// `ZKSCALE_METHOD` does not stop `version`). Err: a bad variable, said by name (exit 2).
    pub fn resolve(self) -> Result<(Job, Flags), String> {
        let (mut job, mut flags) = self.resolve_flags();
        let takes_method = matches!(
            job,
            Job::Scale(_) | Job::Plan(_) | Job::Status | Job::PostRender { .. }
        );
        if takes_method {
            if flags.method.method.is_none() {
                if let Some(v) = env_text("ZKSCALE_METHOD")? {
                    let m = <MethodChoice as clap::ValueEnum>::from_str(v.trim(), false)
                        .map_err(|_| {
                            format!(
                                "ZKSCALE_METHOD={:?}: expected restart, reconfig or auto (or unset)",
                                v
                            )
                        })?;
                    flags.method.method = Some(m);
                }
            }
            if flags.method.zk_auth_secret.is_none() {
                flags.method.zk_auth_secret = env_text("ZKSCALE_ZK_AUTH_SECRET")?;
            }
        }
        if let Job::Guard { values, .. } = &job {
            values.check()?;
        }
        flags.check()?;
        if let Job::PostRender { log_file, .. } = &mut job {
            if log_file.is_none() {
                *log_file = env_value("ZKSCALE_LOG_FILE")?.map(PathBuf::from);
            }
        }
        Ok((job, flags))
    }

    fn resolve_flags(self) -> (Job, Flags) {
        let before = Flags {
            cluster: self.cluster,
            pick: self.pick,
            care: self.care,
            method: self.method,
        };
        let with =
            |cluster: ClusterArgs, pick: PickArgs, care: CareArgs, method: MethodArgs| Flags {
                cluster: cluster.or(&before.cluster),
                pick: pick.or(&before.pick),
                care: care.or(&before.care),
                method: method.or(&before.method),
            };
        use crate::postrender::Request;
        match self.command {
            None => match self.to {
                Some(to) if self.dry_run => (Job::Plan(to), before),
                Some(to) => (Job::Scale(to), before),
                None => (Job::Usage, before),
            },
            Some(Command::Plan {
                to,
                cluster,
                pick,
                method,
            }) => (
                Job::Plan(to),
                with(cluster, pick, CareArgs::default(), method),
            ),
            Some(Command::Status {
                cluster,
                pick,
                method,
            }) => (
                Job::Status,
                with(cluster, pick, CareArgs::default(), method),
            ),
            Some(Command::Rebuild {
                pods,
                dry_run,
                cluster,
                pick,
            }) => (
                Job::Rebuild { pods, dry_run },
                with(cluster, pick, CareArgs::default(), MethodArgs::default()),
            ),
            Some(Command::Migrate {
                mode,
                from,
                from_zoo_cfg,
                host_ip,
                stop_cmd,
                start_cmd,
                cluster_domain,
                dry_run,
                cluster,
                pick,
                care,
            }) => (
                Job::Migrate(MigrateArgs {
                    from,
                    from_zoo_cfg,
                    host_ip,
                    stop_cmd,
                    start_cmd,
                    cluster_domain: cluster_domain.unwrap_or_else(|| "cluster.local".into()),
                    dry_run: dry_run || mode.is_some(),
                }),
                with(cluster, pick, care, MethodArgs::default()),
            ),
            Some(Command::PostRender {
                offline,
                check,
                execute,
                plan_only,
                log_file,
                cluster,
                care,
                method,
            }) => {
                let request = match (offline, check, execute, plan_only) {
                    (true, ..) => Request::Offline,
                    (_, true, ..) => Request::Check,
                    (_, _, true, _) => Request::Execute,
                    (.., true) => Request::PlanOnly,
                    _ => Request::Detect,
                };
                let flags = with(cluster, PickArgs::default(), care, method);
                (Job::PostRender { request, log_file }, flags)
            }
            Some(Command::Completions { shell }) => (Job::Completions(shell), before),
            Some(Command::Version { output }) => {
                let output = output.or(before.pick.output).unwrap_or(Output::Text);
                (Job::Version(output), before)
            }
            Some(Command::Guard {
                check,
                actions,
                namespace_labels,
                override_annotation,
                cluster,
            }) => {
                let mut values = crate::guard::Values::default();
                if !actions.is_empty() {
                    values.actions = actions;
                }
                if let Some(a) = override_annotation {
                    values.override_annotation = a;
                }
                values.namespace_labels = namespace_labels
                    .iter()
                    .flat_map(|l| l.split(','))
                    .filter(|kv| !kv.is_empty())
                    .map(|kv| match kv.split_once('=') {
                        Some((k, v)) => (k.trim().to_string(), v.trim().to_string()),
                        None => (kv.trim().to_string(), String::new()),
                    })
                    .collect();
                let flags = with(
                    cluster,
                    PickArgs::default(),
                    CareArgs::default(),
                    MethodArgs::default(),
                );
                (Job::Guard { check, values }, flags)
            }
        }
    }
}

/// Runs a job; the exit is decided from the result ([`Exit`]).
pub fn run(job: Job, flags: Flags) -> anyhow::Result<Exit> {
    match job {
        Job::Completions(shell) => {
            // The name the shell completes: the binary's own (`kubectl zkscale <TAB>` goes
            // through `kubectl_complete-zkscale`, see `complete`). Both names: the generated
            // scripts key their subcommand branches on them, and they must agree.
            let mut cmd = Cli::command()
                .bin_name("kubectl-zkscale")
                .display_name("kubectl-zkscale");
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "kubectl-zkscale", &mut script);
            if shell == clap_complete::Shell::Bash {
                // clap_complete's bash script names its branches for subcommands with every `-`
                // of the path turned into a subcommand separator, the binary's own name
                // included, so for `kubectl-zkscale` no branch below the top ever matched.
                let text = String::from_utf8_lossy(&script)
                    .replace("kubectl__subcmd__zkscale", "kubectl__zkscale");
                script = text.into_bytes();
            }
            if shell == clap_complete::Shell::Fish {
                script = fish_fixed(&String::from_utf8_lossy(&script), &cmd).into_bytes();
            }
            print_all(&script)?;
            Ok(Exit::Ok)
        }
        Job::Version(output) => {
            let v = crate::version::version();
            let text = match output {
                Output::Json => serde_json::to_string_pretty(&v)?,
                Output::Text => v.to_string(),
            };
            print_all(format!("{text}\n").as_bytes())?;
            Ok(Exit::Ok)
        }
        Job::Usage => {
            let help = Cli::command().render_long_help().to_string();
            eprintln!("{help}");
            Ok(Exit::Usage)
        }
        Job::PostRender { request, log_file } => post_render::run(request, log_file, &flags),
        Job::Guard {
            check: false,
            values,
        } => {
            print_all(crate::guard::manifests(&values).as_bytes())?;
            Ok(Exit::Ok)
        }
        job => runtime()?.block_on(kubectl::run(job, flags)),
    }
}

/// clap_complete's fish script, made to offer words where words belong:
/// - no argument of ours is a file unless its flag says so (`-F`: --kubeconfig, --log-file,
///   --from-zoo-cfg), so every command level says `-f` (fish offered files for `migrate p`);
/// - a positional with fixed values offers them (`completions <shell>`, `migrate plan`);
/// - the value of a top-level flag (`--method <TAB>`): the script's check for "no subcommand
///   yet" ran argparse over the words so far, which fails while a flag still waits for its
///   value; it now tries again without that last word.
fn fish_fixed(script: &str, cmd: &clap::Command) -> String {
    let bin = "kubectl-zkscale";
    let fn_prefix = "__fish_kubectl_zkscale";
    let mut out = script.replace(
        &format!(
            "    argparse -s ({fn_prefix}_global_optspecs) -- $cmd 2>/dev/null\n    or return\n"
        ),
        &format!(
            "    argparse -s ({fn_prefix}_global_optspecs) -- $cmd 2>/dev/null\n    \
             or begin; set -e cmd[-1]; argparse -s ({fn_prefix}_global_optspecs) -- $cmd \
             2>/dev/null; end\n    or return\n"
        ),
    );
    let mut lines = vec![format!(
        "complete -c {bin} -n \"{fn_prefix}_needs_command\" -f"
    )];
    for sub in cmd.get_subcommands() {
        let name = sub.get_name();
        let cond = format!("{fn_prefix}_using_subcommand {name}");
        lines.push(format!("complete -c {bin} -n \"{cond}\" -f"));
        for arg in sub.get_positionals() {
            let values: Vec<String> = arg
                .get_possible_values()
                .iter()
                .filter(|v| !v.is_hide_set())
                .map(|v| v.get_name().to_string())
                .collect();
            if !values.is_empty() {
                lines.push(format!(
                    "complete -c {bin} -n \"{cond}\" -f -a \"{}\"",
                    values.join(" ")
                ));
            }
        }
    }
    out.push_str(&lines.join("\n"));
    out.push('\n');
    out
}

/// Writes `bytes` to stdout; a reader that went away (`… | head`) is not an error.
pub fn print_all(bytes: &[u8]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r,
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Who holds the lock, as a second run is told (it goes into the Lease, the operation
/// annotation and Events: `USER` and the host name are outside input, so each is cut to one
/// short line of printable characters here).
fn holder() -> String {
    let clean = |s: String| -> String {
        s.trim()
            .chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .take(64)
            .collect()
    };
    let user = clean(std::env::var("USER").unwrap_or_else(|_| "unknown".into()));
    let host = clean(
        std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .or_else(|_| std::env::var("HOSTNAME"))
            .unwrap_or_else(|_| "unknown-host".into()),
    );
    format!("kubectl-zkscale {user}@{host} pid {}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5m"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1"), Ok(Duration::from_secs(1)));
        for bad in ["0", "0s", "1ms", "500ms", "0.9s"] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.contains("shortest timeout"), "{bad}: {e}");
        }
        for bad in [
            "99999999999999999999s",
            "1e400",
            "inf",
            "x",
            "5d",
            "-1s",
            "200h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn flags_before_and_after_the_subcommand_merge() {
        let cli = Cli::try_parse_from([
            "kubectl-zkscale",
            "-n",
            "a",
            "--timeout",
            "10s",
            "status",
            "--statefulset",
            "s",
        ])
        .unwrap();
        let (job, flags) = cli.resolve().unwrap();
        assert!(matches!(job, Job::Status));
        assert_eq!(flags.cluster.namespace.as_deref(), Some("a"));
        assert_eq!(flags.timeout(), Duration::from_secs(10));
        assert_eq!(flags.pick.statefulset.as_deref(), Some("s"));
        let cli = Cli::try_parse_from(["kubectl-zkscale", "-n", "a", "status", "-n", "b"]).unwrap();
        assert_eq!(
            cli.resolve().unwrap().1.cluster.namespace.as_deref(),
            Some("b")
        );
        // What a subcommand does not take is refused, not ignored.
        for line in [
            &["kubectl-zkscale", "post-render", "-o", "json"][..],
            &["kubectl-zkscale", "post-render", "--release", "r"],
            &["kubectl-zkscale", "completions", "bash", "--force", "x"],
            &["kubectl-zkscale", "--to", "0"],
            &["kubectl-zkscale", "plan", "--to", "0"],
            &["kubectl-zkscale", "--to", "16"],
            &["kubectl-zkscale", "--dry-run"],
            &["kubectl-zkscale", "rebuild"],
            &["kubectl-zkscale", "rebuild", "zk-0", "--force", "x"],
        ] {
            assert!(Cli::try_parse_from(line).is_err(), "{line:?}");
        }
    }
}
