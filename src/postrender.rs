//! The Helm post-renderer front end: `helm upgrade --post-renderer zkscale` (Helm 4 plugin) or
//! `--post-renderer kubectl-zkscale --post-renderer-args post-render` (Helm 3).
//!
//! Helm hands us the rendered manifests on stdin and applies whatever we print. For a bitnami
//! ZooKeeper StatefulSet that already runs, a size or pod-template change applied by Helm in
//! one go is the data-loss bug this project exists for, so on a real upgrade the engine carries
//! the change out first, one gated step at a time ([`crate::engine::Engine::upgrade`]), and the
//! output then declares exactly the state the cluster is in: Helm's apply changes nothing more
//! on the StatefulSet and conflicts with no field manager (see [`crate::manifest::LiveState`]).
//!
//! # Real upgrade or preview ([`Mode`])
//! `helm template`, `--dry-run` and `helm diff` run the same post-renderer, and must not change
//! the cluster. Helm tells a post-renderer nothing about why it runs, so [`detect`] reads the
//! command line of the nearest `helm` process above us (`/proc/<pid>/cmdline`, up to 8
//! ancestors): `install`/`upgrade` without `--dry-run` ⇒ [`Mode::Execute`]; `template`, any
//! `--dry-run` other than `none`/`false`, or any other command (helm-diff runs `helm template`
//! or `helm upgrade --dry-run`) ⇒ [`Mode::Preview`]. No helm process found (another tool, a
//! pipe, not Linux) ⇒ [`Mode::Unknown`]: a preview that refuses (exit 3, nothing on stdout)
//! rather than hand over a change that would be unsafe if applied. `--execute` and
//! `--plan-only` override the detection, except that `--plan-only` under a real
//! `install`/`upgrade` is guarded the same way (Helm would record a release that does not do
//! what the chart asks).
//!
//! The same command line gives Helm's `-n`, `--kube-context` and `--kubeconfig`; explicit
//! post-renderer args win, then those, then `HELM_NAMESPACE`/`HELM_KUBECONTEXT`, then the
//! kubeconfig (`KUBECONFIG`, which Helm passes on). A StatefulSet's own `metadata.namespace` is
//! where Helm applies it, so it wins over all of them.
//!
//! # What is printed: never a jump
//! Whatever this prints may be applied as it is by someone else: GitOps tools render with
//! `helm template` and apply the output themselves, and so do rendered-manifest pipelines. So
//! for a live ensemble the output always declares the *live* size and `ZOO_SERVERS` (and
//! `OnDelete`, so nothing restarts on its own); applying it moves no member:
//! - a real upgrade prints it after the engine's steps, when live *is* the target;
//! - a preview (which changes nothing) prints it as it is now, with the chart's pod template
//!   (in place under `OnDelete`, it restarts nothing) and the change still pending in the
//!   annotation [`manifest::PENDING_ANNOTATION`], so helm-diff and `--dry-run` show what the
//!   upgrade will do; the full plan goes to the terminal and the log;
//! - an unknown caller with a change pending is refused (exit 3, nothing on stdout);
//! - no cluster: nothing can be known safe, so a stream with a ZooKeeper StatefulSet is refused
//!   (exit 3); a fresh install is passed through unless claims of an earlier install would mix
//!   old data with empty members ([`check_leftover_claims`]).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::{Api, Client};
use thiserror::Error;

use crate::cluster::{self, Access, ClusterError, Connect, Selector};
use crate::engine::{Cancel, Engine, EngineError, Event, Options, Progress};
use crate::manifest::{self, Declared, LiveState, ManifestError, Stream};

#[derive(Debug, Error)]
pub enum PostRenderError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("{namespace}/{name}: {source}")]
    Engine {
        namespace: String,
        name: String,
        #[source]
        source: Box<EngineError>,
    },
    #[error("{0}")]
    Refused(String),
    #[error("cannot reach the cluster: {0}")]
    Unreachable(String),
}

impl PostRenderError {
    /// The same codes as the kubectl front end: 3 refused (nothing changed), 4 stopped at a
    /// safe size (re-run to resume), 1 anything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            PostRenderError::Manifest(_) | PostRenderError::Refused(_) => 3,
            PostRenderError::Engine { source, .. } => source.exit_code(),
            PostRenderError::Unreachable(_) => 1,
        }
    }
}

impl PostRenderError {
    /// The message for the user: where it stopped and what to do, worded for `helm upgrade`.
    pub fn message(&self) -> String {
        match self {
            PostRenderError::Engine {
                namespace,
                name,
                source,
            } => match source.as_ref() {
                EngineError::Stopped { size, reason } => format!(
                    "{namespace}/{name}: stopped at {size} member(s), where the ensemble is whole: {reason}. \
                     Fix the cause and re-run the same `helm upgrade`: it resumes from {size}"
                ),
                e if e.exit_code() == 3 => format!("{namespace}/{name}: {e}. Nothing was changed"),
                e => format!(
                    "{namespace}/{name}: {e}. Once fixed, re-run the same `helm upgrade`: it resumes from the live state"
                ),
            },
            PostRenderError::Manifest(_) | PostRenderError::Refused(_) => {
                format!("{self}. Nothing was changed")
            }
            PostRenderError::Unreachable(_) => self.to_string(),
        }
    }
}

/// Who is running us, as far as the command line of the nearest `helm` process says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Caller {
    pub pid: u32,
    /// The helm subcommand (`upgrade`, `install`, `template`, `diff`, …), if any.
    pub command: Option<String>,
    pub dry_run: bool,
    pub namespace: Option<String>,
    pub kube_context: Option<String>,
    pub kubeconfig: Option<String>,
}

impl Caller {
    /// What the caller's command line says about side effects.
    pub fn mode(&self) -> Mode {
        match self.command.as_deref() {
            Some("install" | "upgrade") if !self.dry_run => Mode::Execute,
            _ => Mode::Preview,
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "helm {}{} (pid {})",
            self.command.as_deref().unwrap_or("?"),
            if self.dry_run { " --dry-run" } else { "" },
            self.pid
        )
    }
}

/// Whether this run may change the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A real `helm install/upgrade`: carry the change out, then print the final state.
    Execute,
    /// `helm template`, `--dry-run`, `helm diff`, `--plan-only`: read, plan, print, change nothing.
    Preview,
    /// No helm process found and no `--execute`/`--plan-only`: a preview that refuses when the
    /// output would declare a change that is unsafe to apply directly.
    Unknown,
}

/// Helm's global flags that take a separate value (`--flag value`), so that the subcommand is
/// found after them (`helm -n ns upgrade …`).
const HELM_VALUE_FLAGS: &[&str] = &[
    "-n",
    "--namespace",
    "--kube-context",
    "--kubeconfig",
    "--kube-apiserver",
    "--kube-as-user",
    "--kube-as-group",
    "--kube-ca-file",
    "--kube-token",
    "--kube-tls-server-name",
    "--registry-config",
    "--repository-cache",
    "--repository-config",
    "--content-cache",
    "--burst-limit",
    "--qps",
    "--color",
    "--colour",
];

/// Reads a helm command line (`argv[0]` first). `None` when `argv[0]` is not a helm binary.
pub fn parse_helm_argv(pid: u32, argv: &[String]) -> Option<Caller> {
    let exe = argv.first()?;
    let base = exe.rsplit('/').next().unwrap_or(exe);
    if !base.starts_with("helm") || base.starts_with("helm-") {
        return None;
    }
    let mut c = Caller {
        pid,
        ..Caller::default()
    };
    let mut it = argv[1..].iter().peekable();
    while let Some(a) = it.next() {
        if a == "--" {
            break;
        }
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if a.starts_with("--") => (f, Some(v.to_string())),
            _ => (a.as_str(), None),
        };
        // `-nfoo` is `-n foo`.
        let (flag, inline) = match (flag, inline) {
            (f, None) if f.starts_with("-n") && f.len() > 2 && !f.starts_with("--") => {
                ("-n", Some(f[2..].trim_start_matches('=').to_string()))
            }
            other => other,
        };
        if flag == "--dry-run" {
            c.dry_run = !matches!(inline.as_deref(), Some("none" | "false"));
            continue;
        }
        if flag.starts_with('-') {
            let value = match inline {
                Some(v) => Some(v),
                None if HELM_VALUE_FLAGS.contains(&flag) => it.next().cloned(),
                None => None,
            };
            match flag {
                "-n" | "--namespace" => c.namespace = value,
                "--kube-context" => c.kube_context = value,
                "--kubeconfig" => c.kubeconfig = value,
                _ => {}
            }
            continue;
        }
        if c.command.is_none() {
            c.command = Some(a.clone());
        }
        // Later positionals (release, chart) and subcommand flags are read on; flags that take
        // values and are not global (`--set x`, `-f file`) leave their value as a positional,
        // which is harmless: only the first positional is the command.
    }
    Some(c)
}

/// The nearest `helm` process among our ancestors (Linux `/proc`).
pub fn detect() -> Option<Caller> {
    let mut pid = std::os::unix::process::parent_id();
    for _ in 0..8 {
        if pid <= 1 {
            return None;
        }
        let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let argv: Vec<String> = raw
            .split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect();
        if let Some(c) = parse_helm_argv(pid, &argv) {
            return Some(c);
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // `pid (comm) state ppid …`; comm may contain spaces and parentheses.
        let after = &stat[stat.rfind(')')? + 1..];
        pid = after.split_whitespace().nth(1)?.parse().ok()?;
    }
    None
}

/// What the post-render command line asked for.
#[derive(Debug, Clone)]
pub struct Settings {
    pub requested: Option<Mode>,
    pub kubeconfig: Option<std::path::PathBuf>,
    pub context: Option<String>,
    pub namespace: Option<String>,
    /// Gate timeout of the engine.
    pub timeout: Duration,
    pub connect: Connect,
    pub delete_stale_claims: bool,
    pub keep_removed_claims: bool,
    pub force: Option<String>,
    pub holder: String,
    pub cancel: Cancel,
}

/// The rewritten stream (stdout) or an error (and nothing on stdout).
pub async fn run(
    input: &[u8],
    settings: &Settings,
    caller: Option<&Caller>,
    progress: &dyn Progress,
) -> Result<Vec<u8>, PostRenderError> {
    let stream = Stream::parse(input)?;
    for w in stream.warnings() {
        progress.event(&Event::Warning {
            message: w.to_string(),
        });
    }
    if stream.zookeepers().is_empty() {
        // Not our chart: byte for byte, without contacting the cluster.
        return Ok(input.to_vec());
    }
    let mut mode = settings
        .requested
        .unwrap_or_else(|| caller.map(Caller::mode).unwrap_or(Mode::Unknown));
    // `--plan-only` under a real `helm upgrade` would hand Helm the planned final state to apply
    // in one go (the very jump this tool exists to prevent): guard it like an unknown caller.
    let applied_anyway = mode == Mode::Preview && caller.is_some_and(|c| c.mode() == Mode::Execute);
    if applied_anyway {
        mode = Mode::Unknown;
    }
    let why = match (settings.requested, caller) {
        (Some(Mode::Execute), _) => "--execute".to_string(),
        (Some(_), _) => "--plan-only".to_string(),
        (None, Some(c)) => c.describe(),
        (None, None) => "no helm process among the parents".to_string(),
    };
    progress.event(&Event::Note {
        message: format!(
            "post-render: {} ({why})",
            match mode {
                Mode::Execute => "real upgrade: scaling steps run before Helm applies",
                Mode::Preview => "preview: the cluster is only read",
                Mode::Unknown if applied_anyway => {
                    "--plan-only, but Helm will apply the output: preview, refused if anything must change"
                }
                Mode::Unknown => "cannot tell whether Helm will apply the output: preview",
            }
        ),
    });
    let access = Access {
        kubeconfig: settings
            .kubeconfig
            .clone()
            .or_else(|| caller.and_then(|c| c.kubeconfig.clone()).map(Into::into)),
        context: settings
            .context
            .clone()
            .or_else(|| caller.and_then(|c| c.kube_context.clone()))
            .or_else(|| non_empty_env("HELM_KUBECONTEXT")),
        namespace: settings
            .namespace
            .clone()
            .or_else(|| caller.and_then(|c| c.namespace.clone()))
            .or_else(|| non_empty_env("HELM_NAMESPACE")),
    };
    let connected = tokio::time::timeout(REACH, cluster::connect(&access)).await;
    let (client, default_ns) = match connected {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return Err(unreachable(mode, e.to_string())),
        Err(_) => return Err(unreachable(mode, format!("no answer in {REACH:?}"))),
    };
    let mut live_state = LiveState::default();
    for z in stream.zookeepers() {
        let namespace = z.namespace.clone().unwrap_or_else(|| default_ns.clone());
        let api: Api<StatefulSet> = Api::namespaced(client.clone(), &namespace);
        let live = match tokio::time::timeout(REACH, api.get_opt(&z.name)).await {
            Ok(Ok(l)) => l,
            Ok(Err(e)) if is_connection_error(&e) => return Err(unreachable(mode, e.to_string())),
            Ok(Err(e)) => return Err(engine_err(&namespace, &z.name, ClusterError::Api(e).into())),
            Err(_) => {
                return Err(unreachable(
                    mode,
                    format!("no answer in {REACH:?} reading {namespace}/{}", z.name),
                ))
            }
        };
        let Some(live) = live else {
            fresh_install(&client, &namespace, z, progress).await?;
            continue;
        };
        // A chart that leaves replicas out leaves the size alone (not Kubernetes' default of 1).
        let target = z
            .replicas
            .unwrap_or_else(|| live.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1));
        if target < 1 {
            return Err(PostRenderError::Refused(format!(
                "{namespace}/{}: replicaCount {target} would delete the ensemble; zkscale refuses (uninstall the release instead)",
                z.name
            )));
        }
        let template: PodTemplateSpec =
            serde_json::from_value(z.pod_template.clone()).map_err(|e| {
                PostRenderError::Refused(format!(
                    "{namespace}/{}: spec.template is not a pod template: {e}",
                    z.name
                ))
            })?;
        let declared = ensemble(
            &client,
            &namespace,
            &z.name,
            target as u32,
            &template,
            mode,
            settings,
            progress,
        )
        .await?;
        live_state.ensembles.insert(z.name.clone(), declared);
    }
    Ok(manifest::rewrite(&stream, Some(&live_state))?.output)
}

/// How long reaching the cluster may take before a preview gives up on it.
const REACH: Duration = Duration::from_secs(15);

/// How long a preview waits for a plan (an election or a syncing follower resolves quickly;
/// `helm template` should not hang on a sick ensemble).
const PREVIEW_PLAN_TIMEOUT: Duration = Duration::from_secs(20);

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn engine_err(namespace: &str, name: &str, source: EngineError) -> PostRenderError {
    PostRenderError::Engine {
        namespace: namespace.into(),
        name: name.into(),
        source: Box::new(source),
    }
}

fn is_connection_error(e: &kube::Error) -> bool {
    !matches!(e, kube::Error::Api(_))
}

/// No cluster. A real upgrade cannot go on (Helm could not apply either). Nor can a preview
/// print anything: the chart's StatefulSet as rendered is, over a live ensemble of another size,
/// the very jump this tool exists to prevent, and whoever runs a preview may apply its output.
fn unreachable(mode: Mode, why: String) -> PostRenderError {
    if mode == Mode::Execute {
        return PostRenderError::Unreachable(why);
    }
    PostRenderError::Refused(format!(
        "cannot reach the cluster ({why}), so the live ensemble is unknown: the chart's \
         ZooKeeper StatefulSet as rendered could move it by several members at once if applied, \
         so nothing is printed. Check the kubeconfig, context and namespace (-n, --kube-context, \
         --kubeconfig after --post-renderer-args)"
    ))
}

/// A StatefulSet the cluster does not have yet: passed through (with `OnDelete`), unless
/// claims left by an earlier install would mix old data and empty members in one start.
async fn fresh_install(
    client: &Client,
    namespace: &str,
    z: &manifest::ZkStatefulSet,
    progress: &dyn Progress,
) -> Result<(), PostRenderError> {
    let target = z.effective_replicas().max(0) as u32;
    for template in &z.claim_templates {
        let claims = cluster::claims(client, namespace, &z.name, template)
            .await
            .map_err(|e| engine_err(namespace, &z.name, e.into()))?;
        if let Err(why) = check_leftover_claims(target, &claims) {
            return Err(PostRenderError::Refused(format!(
                "{namespace}/{}: a fresh install, but {why}",
                z.name
            )));
        }
        if !claims.is_empty() {
            progress.event(&Event::Warning {
                message: format!(
                    "{namespace}/{}: a fresh install onto the claims of an earlier one of the same size ({}): \
                     the members start with that data",
                    z.name,
                    claims.values().cloned().collect::<Vec<_>>().join(", ")
                ),
            });
        }
    }
    progress.event(&Event::Note {
        message: format!(
            "{namespace}/{}: not in the cluster yet (a fresh install): passed through with updateStrategy OnDelete",
            z.name
        ),
    });
    Ok(())
}

/// Whether `target` members may start at once (the chart's `Parallel` pod management) on the
/// claims an earlier install left (`claims` by ordinal). None, or exactly `0..target` (the same
/// ensemble reinstalled), is safe. Anything else mixes members holding data with empty ones (or
/// leaves out members of a bigger ensemble that may hold the last commits): the empty ones can
/// out-vote the others and truncate them, the data loss of bitnami/charts#32542.
pub fn check_leftover_claims(target: u32, claims: &BTreeMap<u32, String>) -> Result<(), String> {
    if claims.is_empty() || claims.keys().copied().eq(0..target) {
        return Ok(());
    }
    let names = claims.values().cloned().collect::<Vec<_>>().join(" ");
    let contiguous = claims.keys().copied().eq(0..claims.len() as u32);
    let how = if contiguous {
        format!(
            "install with replicaCount={} (the size those claims were written at) and then scale \
             with `kubectl zkscale --to {target}`",
            claims.len()
        )
    } else {
        "restore the ensemble those claims came from".to_string()
    };
    Err(format!(
        "PersistentVolumeClaims left by an earlier install hold ZooKeeper data ({names}); starting \
         {target} member(s) at once beside them lets empty members out-vote the ones with data and \
         truncate them. Either {how}, or delete the claims to start empty (kubectl delete pvc {names})"
    ))
}

/// One live ensemble: carry the change out (execute) or only plan it (preview); returns what
/// the output must declare: always the live size and server list, so the output, whoever
/// applies it, moves no member (see the module docs).
#[allow(clippy::too_many_arguments)]
async fn ensemble(
    client: &Client,
    namespace: &str,
    name: &str,
    target: u32,
    template: &PodTemplateSpec,
    mode: Mode,
    settings: &Settings,
    progress: &dyn Progress,
) -> Result<Declared, PostRenderError> {
    let err = |e: EngineError| engine_err(namespace, name, e);
    let preview = mode != Mode::Execute;
    let opts = Options {
        selector: Selector::StatefulSet(name.into()),
        timeout: if preview {
            settings.timeout.min(PREVIEW_PLAN_TIMEOUT)
        } else {
            settings.timeout
        },
        connect: settings.connect,
        force: settings.force.clone(),
        delete_stale_claims: settings.delete_stale_claims,
        keep_removed_claims: settings.keep_removed_claims,
        holder: settings.holder.clone(),
        wait_for_lock: true,
        cancel: settings.cancel.clone(),
    };
    let engine = Engine::new(client.clone(), namespace.into(), opts, progress)
        .await
        .map_err(err)?;
    let live = cluster::read(client, namespace, name)
        .await
        .map_err(|e| err(e.into()))?;
    let as_live =
        |live: &cluster::Live| Declared::live(live.replicas() as i32, &live.zk.servers_env);
    let changes = match engine.template_changes(&live, template).await {
        Ok(c) => c,
        // A read-only preview (a `helm diff` job's ServiceAccount) may not dry-run an update.
        Err(EngineError::Cluster(ClusterError::Api(kube::Error::Api(e))))
            if preview && e.code == 403 =>
        {
            progress.event(&Event::Warning {
                message: format!(
                    "{namespace}/{name}: cannot tell whether the pod template changes (a dry-run update is forbidden: {}); \
                     the plan shows size steps only",
                    e.message
                ),
            });
            false
        }
        Err(e) => return Err(err(e)),
    };
    let settled = live.replicas() == target
        && live.zk.servers.len() as u32 == target
        && live.operation().is_none()
        && (0..target).all(|o| live.pod_current(o))
        && !changes;
    if settled {
        // Nothing for the engine: no lock, no gate (an unrelated change to the release must not
        // wait on the ensemble's health).
        return Ok(as_live(&live));
    }
    if !preview {
        engine.upgrade(target, Some(template)).await.map_err(err)?;
        let live = cluster::read(client, namespace, name)
            .await
            .map_err(|e| err(e.into()))?;
        return Ok(as_live(&live));
    }
    // A preview reports the plan and declares the live state with a note of what is pending.
    let plan = match engine.plan_with(target, changes).await {
        Ok(plan) => {
            progress.event(&Event::Target {
                namespace: namespace.into(),
                statefulset: name.into(),
                from: plan.from,
                to: target,
            });
            progress.event(&Event::Plan { plan: plan.clone() });
            Event::Plan { plan }.to_string()
        }
        // A preview of a sick ensemble still renders: the live state, and why there is no plan.
        Err(e) => {
            progress.event(&Event::Warning {
                message: format!("{namespace}/{name}: no plan: {e}"),
            });
            format!("no plan yet: {e}")
        }
    };
    let change = format!(
        "{} → {target} member(s){}",
        live.replicas(),
        if changes {
            " and a new pod template"
        } else {
            ""
        }
    );
    if mode == Mode::Unknown {
        return Err(PostRenderError::Refused(
            if settings.requested == Some(Mode::Preview) {
                format!(
                    "{namespace}/{name}: the chart changes a running ensemble ({change}; {plan}), and with \
                     --plan-only Helm would record a release that does not do it. Preview with \
                     `helm upgrade --dry-run` or `helm template`; drop --plan-only to carry it out"
                )
            } else {
                format!(
                    "{namespace}/{name}: the chart changes a running ensemble ({change}; {plan}) and no helm \
                     process was found among the parents, so it is unclear whether the output will be \
                     applied. Pass --execute (post-renderer of a real `helm upgrade`) or --plan-only \
                     (preview; its output keeps the live size)"
                )
            },
        ));
    }
    let pending = format!(
        "{change} ({plan}). Not declared by this preview, which keeps the live size and ZOO_SERVERS \
         so that applying it as is moves no member: `helm upgrade --post-renderer zkscale` carries \
         it out step by step, or run `kubectl zkscale -n {namespace} --statefulset {name} --to {target}` \
         and render again"
    );
    progress.event(&Event::Note {
        message: format!(
            "{namespace}/{name}: preview output declares the live {} member(s) and ZOO_SERVERS (annotation {}), not {target}",
            live.replicas(),
            manifest::PENDING_ANNOTATION
        ),
    });
    Ok(Declared {
        pending: Some(pending),
        ..as_live(&live)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn mode_of(s: &str) -> Option<Mode> {
        parse_helm_argv(1, &argv(s)).map(|c| c.mode())
    }

    #[test]
    fn helm_commands_decide_the_mode() {
        use Mode::*;
        let cases = [
            (
                "helm upgrade zk ./chart -n zk --post-renderer zkscale",
                Some(Execute),
            ),
            ("/usr/local/bin/helm install zk ./chart", Some(Execute)),
            ("helm upgrade --install zk ./chart", Some(Execute)),
            (
                "helm -n zk --kube-context prod upgrade zk ./chart",
                Some(Execute),
            ),
            ("helm upgrade zk ./chart --dry-run=none", Some(Execute)),
            ("helm upgrade zk ./chart --dry-run=false", Some(Execute)),
            (
                "helm template zk ./chart --post-renderer zkscale",
                Some(Preview),
            ),
            ("helm upgrade zk ./chart --dry-run", Some(Preview)),
            ("helm upgrade zk ./chart --dry-run=server", Some(Preview)),
            ("helm install zk ./chart --dry-run=client", Some(Preview)),
            // helm-diff runs `helm template … --dry-run=server` (or the diff command is ours).
            (
                "helm template zk ./chart --dry-run=server --is-upgrade --post-renderer zkscale",
                Some(Preview),
            ),
            (
                "helm diff upgrade zk ./chart --post-renderer zkscale",
                Some(Preview),
            ),
            // A release named `template` is not the template command.
            ("helm upgrade template ./chart", Some(Execute)),
            ("helm4 upgrade zk ./chart", Some(Execute)),
            ("helm-diff upgrade zk ./chart", None),
            ("kubectl apply -f -", None),
        ];
        for (line, want) in cases {
            assert_eq!(mode_of(line), want, "{line}");
        }
    }

    #[test]
    fn helm_flags_give_namespace_context_and_kubeconfig() {
        let c = parse_helm_argv(
            7,
            &argv("helm -nfoo upgrade zk ./c --kube-context=prod --kubeconfig /k/c --set a=b"),
        )
        .unwrap();
        assert_eq!(c.command.as_deref(), Some("upgrade"));
        assert_eq!(c.namespace.as_deref(), Some("foo"));
        assert_eq!(c.kube_context.as_deref(), Some("prod"));
        assert_eq!(c.kubeconfig.as_deref(), Some("/k/c"));
        let c =
            parse_helm_argv(7, &argv("helm upgrade zk ./c --namespace=bar -- --dry-run")).unwrap();
        assert_eq!((c.namespace.as_deref(), c.dry_run), (Some("bar"), false));
        assert_eq!(c.mode(), Mode::Execute);
        let c = parse_helm_argv(7, &argv("helm upgrade zk ./c -n=baz")).unwrap();
        assert_eq!(c.namespace.as_deref(), Some("baz"));
    }

    #[test]
    fn leftover_claims_decide_whether_a_fresh_install_may_start() {
        let claims = |ords: &[u32]| -> BTreeMap<u32, String> {
            ords.iter().map(|o| (*o, format!("data-zk-{o}"))).collect()
        };
        // None, or exactly the ensemble reinstalled at its size: fine.
        assert!(check_leftover_claims(3, &claims(&[])).is_ok());
        assert!(check_leftover_claims(3, &claims(&[0, 1, 2])).is_ok());
        assert!(check_leftover_claims(1, &claims(&[0])).is_ok());
        // Two empty members beside one with data (the 1 → 3): refused, with the size
        // to install at.
        let e = check_leftover_claims(3, &claims(&[0])).unwrap_err();
        assert!(
            e.contains("replicaCount=1") && e.contains("data-zk-0"),
            "{e}"
        );
        // A bigger ensemble reinstalled smaller: the last commits may be on the members left out.
        let e = check_leftover_claims(3, &claims(&[0, 1, 2, 3, 4])).unwrap_err();
        assert!(e.contains("replicaCount=5"), "{e}");
        // Gaps: no size to install at.
        let e = check_leftover_claims(3, &claims(&[1])).unwrap_err();
        assert!(e.contains("restore the ensemble"), "{e}");
        // Every combination of claims among ordinals 0..5 for targets 1..=5: only none or
        // exactly 0..target pass.
        for target in 1..=5u32 {
            for mask in 0u32..32 {
                let ords: Vec<u32> = (0..5).filter(|o| mask & (1 << o) != 0).collect();
                let ok = ords.is_empty() || ords == (0..target).collect::<Vec<_>>();
                assert_eq!(
                    check_leftover_claims(target, &claims(&ords)).is_ok(),
                    ok,
                    "{target} {ords:?}"
                );
            }
        }
    }

    #[test]
    fn this_test_process_has_no_helm_parent() {
        assert_eq!(detect(), None);
    }
}
