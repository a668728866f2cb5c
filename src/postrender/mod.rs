//! The Helm post-renderer front end: `helm upgrade --post-renderer zkscale` (Helm 4 plugin) or
//! `--post-renderer kubectl-zkscale --post-renderer-args post-render` (Helm 3).
//!
//! Helm's post-renderer is one method, manifests in and manifests out ([`run`]); so is this, for
//! every way it is run (a real upgrade, a preview, `--offline`, `--check`).
//!
//! Helm hands us the rendered manifests on stdin and applies whatever we print. For a bitnami
//! ZooKeeper StatefulSet that already runs, a size or pod-template change applied by Helm in
//! one go is the data-loss bug this project exists for, so on a real upgrade the engine carries
//! the change out first, one gated step at a time ([`crate::engine::Engine::upgrade`]), and the
//! output then declares exactly the state the cluster is in: Helm's apply changes nothing more
//! on the StatefulSet and conflicts with no field manager (see [`crate::manifest::LiveState`]).
//!
//! # Real upgrade or preview ([`Intent`])
//! `helm template`, `--dry-run` and `helm diff` run the same post-renderer, and must not change
//! the cluster. Helm tells a post-renderer nothing about why it runs, so [`caller::detect`] reads the
//! command line of the nearest `helm` process above us (`/proc/<pid>/cmdline`, up to 8
//! ancestors): `install`/`upgrade` without `--dry-run` ⇒ [`Intent::Execute`]; `template`, any
//! `--dry-run` other than `none`/`false`, or any other command (helm-diff runs `helm template`
//! or `helm upgrade --dry-run`) ⇒ [`Intent::Preview`]. No helm process found (another tool, a
//! pipe, not Linux) ⇒ [`Intent::Unknown`]: a preview that refuses (exit 3, nothing on stdout)
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

pub mod caller;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::{Api, Client};
use thiserror::Error;

use crate::cluster::{self, Access, ClusterError, Selector, Target};
use crate::engine::{self, Engine, EngineError, Event, Options, Progress};
use crate::exit::Exit;
use crate::manifest::{self, Declared, LiveState, ManifestError, ParseOptions, Stream};

pub use caller::{detect, parse_helm_argv, Caller, Intent};

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
    /// The engine's error before it changed anything (reading the ensemble, planning).
    #[error("{namespace}/{name}: {source}")]
    Before {
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
                e if Exit::of_error(e) == Exit::Refused => {
                    format!("{namespace}/{name}: {e}. Nothing was changed")
                }
                e => format!(
                    "{namespace}/{name}: {e}. Once fixed, re-run the same `helm upgrade`: it resumes from the live state"
                ),
            },
            PostRenderError::Manifest(_)
            | PostRenderError::Refused(_)
            | PostRenderError::Before { .. } => format!("{self}. Nothing was changed"),
            PostRenderError::Unreachable(_) => self.to_string(),
        }
    }
}

/// What the post-render command line asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Read it from the helm command line above us ([`caller::detect`]).
    Detect,
    /// `--execute`: carry the change out.
    Execute,
    /// `--plan-only`: a preview.
    PlanOnly,
    /// `--offline`: no cluster; a stream without a ZooKeeper StatefulSet passes.
    Offline,
    /// `--check`: no cluster, nothing on stdout; the stream is only checked.
    Check,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub request: Request,
    /// The cluster as the post-render args give it (the helm command line and Helm's
    /// environment fill in what they leave out).
    pub access: Access,
    /// The engine's options; the post-renderer picks the StatefulSet, and bounds a preview.
    pub engine: Options,
}

/// The output stream for `input` (the rendered manifests), or an error and no output at all.
/// `input` itself is returned when nothing changes: no copy, so peak memory stays near one
/// input size.
pub async fn run(
    input: Vec<u8>,
    settings: &Settings,
    caller: Option<&Caller>,
    progress: &dyn Progress,
) -> Result<Vec<u8>, PostRenderError> {
    let output = {
        // Only `--check` validates every document; otherwise only what may be ours is parsed
        // (Helm parses all of it before applying anything anyway).
        let parse = ParseOptions {
            check_syntax: settings.request == Request::Check,
        };
        let stream = Stream::parse_with(&input, &parse)?;
        for w in stream.warnings() {
            progress.event(&Event::Warning {
                message: w.to_string(),
            });
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
        match settings.request {
            Request::Check => {
                progress.event(&Event::Note {
                    message: format!(
                        "post-render --check: {} document(s), valid; bitnami ZooKeeper StatefulSets: {}",
                        stream.documents().len(),
                        if found.is_empty() { "none".to_string() } else { found.join(", ") }
                    ),
                });
                Some(Vec::new())
            }
            // Not our chart: byte for byte, without contacting the cluster.
            _ if found.is_empty() => None,
            Request::Offline => {
                return Err(PostRenderError::Refused(format!(
                    "--offline cannot read the live ensemble of {}, so the size the chart renders could \
                     move it by several members at once for whoever applies the output; nothing printed. \
                     Render against the cluster (drop --offline), or only check the stream with --check",
                    found.join(", ")
                )))
            }
            _ => Some(with_cluster(&stream, settings, caller, progress).await?),
        }
    };
    Ok(output.unwrap_or(input))
}

/// The rewrite of a stream holding ZooKeeper StatefulSets, from what the cluster says.
async fn with_cluster(
    stream: &Stream<'_>,
    settings: &Settings,
    caller: Option<&Caller>,
    progress: &dyn Progress,
) -> Result<Vec<u8>, PostRenderError> {
    let mut intent = match settings.request {
        Request::Execute => Intent::Execute,
        Request::PlanOnly => Intent::Preview,
        _ => caller.map(Caller::intent).unwrap_or(Intent::Unknown),
    };
    // `--plan-only` under a real `helm upgrade` would have Helm record a release that does not
    // do what the chart asks: guard it like an unknown caller.
    let applied_anyway =
        intent == Intent::Preview && caller.is_some_and(|c| c.intent() == Intent::Execute);
    if applied_anyway {
        intent = Intent::Unknown;
    }
    let why = match (settings.request, caller) {
        (Request::Execute, _) => "--execute".to_string(),
        (Request::PlanOnly, _) => "--plan-only".to_string(),
        (_, Some(c)) => c.describe(),
        (_, None) => "no helm process among the parents".to_string(),
    };
    progress.event(&Event::Note {
        message: format!(
            "post-render: {} ({why})",
            match intent {
                Intent::Execute => "real upgrade: scaling steps run before Helm applies",
                Intent::Preview => "preview: the cluster is only read",
                Intent::Unknown if applied_anyway => {
                    "--plan-only, but Helm will apply the output: preview, refused if anything must change"
                }
                Intent::Unknown => "cannot tell whether Helm will apply the output: preview",
            }
        ),
    });
    let given = &settings.access;
    let access = Access {
        kubeconfig: given
            .kubeconfig
            .clone()
            .or_else(|| caller.and_then(|c| c.kubeconfig.clone()).map(Into::into)),
        context: given
            .context
            .clone()
            .or_else(|| caller.and_then(|c| c.kube_context.clone()))
            .or_else(|| non_empty_env("HELM_KUBECONTEXT")),
        namespace: given
            .namespace
            .clone()
            .or_else(|| caller.and_then(|c| c.namespace.clone()))
            .or_else(|| non_empty_env("HELM_NAMESPACE")),
        // `helm template` must not hang on a cluster that does not answer.
        timeout: given.timeout.min(REACH),
    };
    let (client, default_ns) = cluster::connect(&access)
        .await
        .map_err(|e| unreachable(intent, e.to_string()))?;
    let reach = access.timeout;
    let mut live_state = LiveState::default();
    for z in stream.zookeepers() {
        let namespace = z.namespace.clone().unwrap_or_else(|| default_ns.clone());
        let planted = manifest::chart_owned_annotations(stream, z);
        if !planted.is_empty() {
            progress.event(&Event::Warning {
                message: format!(
                    "{namespace}/{}: the chart sets {}, which only zkscale writes: the output carries zkscale's own value instead (the live one, or none)",
                    z.name,
                    planted.join(", ")
                ),
            });
        }
        let api: Api<k8s_openapi::api::apps::v1::StatefulSet> =
            Api::namespaced(client.clone(), &namespace);
        let live = match tokio::time::timeout(reach, api.get_opt(&z.name)).await {
            Ok(Ok(l)) => l,
            Ok(Err(e)) if is_connection_error(&e) => {
                return Err(unreachable(intent, e.to_string()))
            }
            Ok(Err(e)) => return Err(engine_err(&namespace, &z.name, ClusterError::Api(e).into())),
            Err(_) => {
                return Err(unreachable(
                    intent,
                    format!("no answer in {reach:?} reading {namespace}/{}", z.name),
                ))
            }
        };
        let Some(live) = live else {
            fresh_install(
                &Target::new(client.clone(), &namespace, &z.name),
                z,
                progress,
            )
            .await?;
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
            intent,
            settings,
            progress,
        )
        .await?;
        live_state.ensembles.insert(z.name.clone(), declared);
    }
    Ok(manifest::rewrite(stream, Some(&live_state))?.output)
}

/// The longest reaching the cluster may take (`--timeout` when shorter).
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
fn unreachable(intent: Intent, why: String) -> PostRenderError {
    if intent == Intent::Execute {
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
    target: &Target,
    z: &manifest::ZkStatefulSet,
    progress: &dyn Progress,
) -> Result<(), PostRenderError> {
    let (namespace, name) = (target.namespace(), target.name());
    let replicas = z.effective_replicas().max(0) as u32;
    for template in &z.claim_templates {
        let claims = target
            .claims(template)
            .await
            .map_err(|e| engine_err(namespace, name, e.into()))?;
        if let Err(why) = check_leftover_claims(replicas, &claims) {
            return Err(PostRenderError::Refused(format!(
                "{namespace}/{name}: a fresh install, but {why}"
            )));
        }
        if !claims.is_empty() {
            progress.event(&Event::Warning {
                message: format!(
                    "{namespace}/{name}: a fresh install onto the claims of an earlier one of the same size ({}): \
                     the members start with that data",
                    claims.values().cloned().collect::<Vec<_>>().join(", ")
                ),
            });
        }
    }
    progress.event(&Event::Note {
        message: format!(
            "{namespace}/{name}: not in the cluster yet (a fresh install): passed through with updateStrategy OnDelete"
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
    intent: Intent,
    settings: &Settings,
    progress: &dyn Progress,
) -> Result<Declared, PostRenderError> {
    let err = |e: EngineError| engine_err(namespace, name, e);
    // Until the engine's run starts, nothing has changed, whatever went wrong.
    let before = |e: EngineError| PostRenderError::Before {
        namespace: namespace.into(),
        name: name.into(),
        source: Box::new(e),
    };
    let preview = intent != Intent::Execute;
    let base = &settings.engine;
    let opts = Options {
        selector: Selector::StatefulSet(name.into()),
        timeout: if preview {
            base.timeout.min(PREVIEW_PLAN_TIMEOUT)
        } else {
            base.timeout
        },
        wait_for_lock: true,
        ..base.clone()
    };
    let engine = Engine::new(client.clone(), namespace.into(), opts, progress)
        .await
        .map_err(before)?;
    let live = engine.target().read().await.map_err(|e| before(e.into()))?;
    // The live operation annotation goes out as it is: a step in flight keeps its record
    // whoever applies the output (a finished run has removed it by then).
    let as_live = |live: &cluster::Live| {
        Declared::live(live.replicas() as i32, &live.zk.servers_env)
            .with_operation(live.operation())
    };
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
        Err(e) => return Err(before(e)),
    };
    if engine::nothing_to_do(&live, target, changes) {
        // Nothing for the engine: no lock, no gate (an unrelated change to the release must not
        // wait on the ensemble's health).
        return Ok(as_live(&live));
    }
    if !preview {
        engine.upgrade(target, Some(template)).await.map_err(err)?;
        let live = engine.target().read().await.map_err(|e| err(e.into()))?;
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
    if intent == Intent::Unknown {
        return Err(PostRenderError::Refused(
            if settings.request == Request::PlanOnly {
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
}
