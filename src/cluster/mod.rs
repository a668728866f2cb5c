//! Kubernetes adapter. [`connect`] and [`find`] give a [`Target`]: one StatefulSet in one
//! namespace and the client to reach it, which every read and write of the engine goes through.
//!
//! - [`live`]: the StatefulSet, its pods and claims read at one moment ([`Live`]);
//! - [`write`]: the few writes zkscale makes, all with one field manager;
//! - [`lock`]: the Lease that keeps two runs apart;
//! - [`members`]: reaching members for four-letter words (API-server port-forward or direct);
//! - [`tunnel`]: a member's client port as an address, for the ZooKeeper client (`reconfig`);
//! - [`secret`]: the identity `reconfig` runs as, from a Secret;
//! - [`services`]: one Service per member for a migration from hosts;
//! - [`watch`]: wake-ups when the StatefulSet or its pods change, for the engine's waits.

pub mod live;
pub mod lock;
pub mod members;
pub mod secret;
pub mod services;
pub mod tunnel;
pub mod watch;
pub mod write;

use std::path::PathBuf;

use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, ResourceExt};
use thiserror::Error;

use crate::manifest::{self, ZkStatefulSet};

pub use live::{observed_latest, Live, LivePod, ReconfigEnv};
pub use lock::Lock;
pub use members::Connect;
pub use tunnel::Tunnel;
pub use watch::Changes;

/// The one field manager zkscale writes with.
pub const FIELD_MANAGER: &str = "kubectl-zkscale";
pub use crate::manifest::{OPERATION_ANNOTATION, STATUS_ANNOTATION};

#[derive(Debug, Error)]
pub enum ClusterError {
    #[error("kubeconfig: {0}")]
    Config(String),
    /// The first request found no API server answering (where, and why).
    #[error("cannot reach the Kubernetes API at {server}: {cause}")]
    Unreachable { server: String, cause: String },
    #[error("Kubernetes API: {}", describe(.0))]
    Api(#[from] kube::Error),
    #[error("no StatefulSet {name} in namespace {namespace}")]
    NotFound { namespace: String, name: String },
    #[error("no bitnami ZooKeeper StatefulSet in namespace {namespace}{hint}")]
    NoneFound { namespace: String, hint: String },
    #[error(
        "{count} bitnami ZooKeeper StatefulSets in namespace {namespace}: {candidates}; choose one with --statefulset or --release",
        count = candidates.len(),
        candidates = candidates.join(", ")
    )]
    Ambiguous {
        namespace: String,
        candidates: Vec<String>,
    },
    #[error("StatefulSet {namespace}/{name} is not a bitnami ZooKeeper StatefulSet: {reason}")]
    NotZooKeeper {
        namespace: String,
        name: String,
        reason: String,
    },
    #[error("another zkscale run holds the lock on {namespace}/{name}: {holder}, since {since}; it expires {expires}")]
    LockHeld {
        namespace: String,
        name: String,
        holder: String,
        since: String,
        expires: String,
    },
    #[error("lost the lock on {0}: another run took it over")]
    LockLost(String),
    #[error("StatefulSet {0} changed while zkscale was working on it; re-run to continue from its new state")]
    Conflict(String),
    #[error("Secret {name} (the reconfig identity): {reason}")]
    Secret { name: String, reason: String },
}

impl ClusterError {
    /// An error the API server's absence or overload explains (connection refused or reset,
    /// a timeout, HTTP 429/500/502/503/504): worth waiting out, since nothing says the request
    /// was wrong. An API refusal with any other code is not.
    pub fn is_transient(&self) -> bool {
        match self {
            ClusterError::Unreachable { .. } => true,
            ClusterError::Api(kube::Error::Api(s)) => matches!(s.code, 429 | 500 | 502 | 503 | 504),
            ClusterError::Api(
                kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_),
            ) => true,
            _ => false,
        }
    }
}

/// A Kubernetes client error for people: an API refusal as its HTTP code, reason and message;
/// anything else as the error and each of its causes, said once (`client error (Connect): tcp
/// connect error: Connection refused`), not a debug dump.
pub fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => {
            let reason = if s.reason.is_empty() {
                String::new()
            } else {
                format!(" {}", s.reason)
            };
            let message = if s.message.is_empty() {
                "no message"
            } else {
                s.message.as_str()
            };
            format!("HTTP {}{reason}: {message}", s.code)
        }
        // The decoder's message quotes the value it could not read: from a Secret, that is the
        // secret. Only where it is said (the body is the API server's answer, not ours).
        kube::Error::SerdeError(j) => format!(
            "an answer that is not the JSON expected (line {}, column {}; its content is not \
             shown, it may hold a Secret's data)",
            j.line(),
            j.column()
        ),
        // A proxy URL in a message may carry userinfo.
        other => redact_userinfo(&causes(other)),
    }
}

/// An error and its sources, joined, each text once.
fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = Some(e);
    while let Some(c) = cur {
        let text = c.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = c.source();
    }
    parts.join(": ")
}

/// Where to find the cluster, as kubectl plugins take it.
#[derive(Debug, Clone)]
pub struct Access {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub namespace: Option<String>,
    /// How long the first contact with the API server may take.
    pub timeout: std::time::Duration,
}

impl Default for Access {
    fn default() -> Self {
        Access {
            kubeconfig: None,
            context: None,
            namespace: None,
            timeout: std::time::Duration::from_secs(30),
        }
    }
}

/// The kubeconfig as kubectl reads it: `--kubeconfig`, else every file of the `KUBECONFIG`
/// path list that exists, merged (missing ones are skipped, as kubectl does), else
/// `~/.kube/config`; `None` when there is none (then the in-cluster ServiceAccount).
fn kubeconfig(access: &Access) -> Result<Option<Kubeconfig>, ClusterError> {
    let read = |p: &std::path::Path| {
        small_regular_file(p, MAX_KUBECONFIG).map_err(ClusterError::Config)?;
        Kubeconfig::read_from(p).map_err(|e| ClusterError::Config(kubeconfig_error(p, &e)))
    };
    if let Some(path) = &access.kubeconfig {
        return read(path).map(Some);
    }
    if let Some(list) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        let paths: Vec<PathBuf> = std::env::split_paths(&list)
            .filter(|p| p.is_file())
            .collect();
        if paths.is_empty() {
            return Err(ClusterError::Config(format!(
                "KUBECONFIG={} names no file that exists",
                list.to_string_lossy()
            )));
        }
        let mut merged: Option<Kubeconfig> = None;
        for p in &paths {
            let next = read(p)?;
            merged = Some(match merged {
                None => next,
                Some(m) => m
                    .merge(next)
                    .map_err(|e| ClusterError::Config(kubeconfig_error(p, &e)))?,
            });
        }
        return Ok(merged);
    }
    let home = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kube/config"));
    match home.filter(|p| p.is_file()) {
        Some(p) => read(&p).map(Some),
        None => Ok(None),
    }
}

/// The largest kubeconfig read (`--kubeconfig /dev/zero` would never end; a real one with many
/// clusters is a few hundred KiB).
const MAX_KUBECONFIG: u64 = 16 << 20;
/// The largest token file read.
const MAX_TOKEN_FILE: u64 = 1 << 20;

/// `path` is a regular file (after symlinks) of at most `max` bytes: checked before the file is
/// opened, so that a FIFO or a device is refused instead of blocking or reading forever.
fn small_regular_file(path: &std::path::Path, max: u64) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{}: not a regular file", path.display()));
    }
    if meta.len() > max {
        return Err(format!("{}: larger than {max} bytes", path.display()));
    }
    Ok(())
}

/// A kubeconfig that cannot be read, said as kubectl says it: the file and where in it, never
/// what it holds. The parser's own message quotes the lines around the error, and a
/// kubeconfig's lines are tokens, passwords and keys; so is a type error's value. This is the
/// one function that makes a kubeconfig error safe for stderr and the post-renderer's log.
pub fn kubeconfig_error(path: &std::path::Path, e: &kube::config::KubeconfigError) -> String {
    use kube::config::KubeconfigError as E;
    match e {
        E::Parse(p) => match p.location() {
            Some(l) => format!(
                "{}: not a valid kubeconfig (YAML error at line {}, column {})",
                path.display(),
                l.line(),
                l.column()
            ),
            None => format!("{}: not a valid kubeconfig (YAML error)", path.display()),
        },
        E::ReadConfig(io, _) => format!("{}: {io}", path.display()),
        // Every other variant names a setting, not its value; still, only its kind is said.
        other => format!(
            "{}: {}",
            path.display(),
            redact_userinfo(&other.to_string())
        ),
    }
}

/// `text` with the userinfo of every URL in it (`https://user:pw@host` → `https://***@host`)
/// masked: the one function that makes a server or proxy URL safe for a message or a log.
pub fn redact_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace())
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                out.push_str("***");
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// `text` on one line: control characters (a context name with a newline) escaped.
fn one_line(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let esc: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            esc
        })
        .collect()
}

/// The cluster URL without userinfo: the client never sends it (credentials go in headers),
/// and without it no message, span or log line can show it.
fn without_userinfo(url: &http::Uri) -> Option<http::Uri> {
    let authority = url.authority()?;
    let at = authority.as_str().rfind('@')?;
    let mut parts = url.clone().into_parts();
    parts.authority = Some(authority.as_str()[at + 1..].parse().ok()?);
    http::Uri::from_parts(parts).ok()
}

/// The bearer token as the API server will get it: a `tokenFile` trimmed as kubectl trims it
/// (a file written with `echo` ends in a newline), and a token with a line break or another
/// control character anywhere refused here, with a message that does not show it (a `token: |`
/// block keeps its final newline; an HTTP header cannot hold one, and the client library
/// panicked on it).
fn check_token(config: &mut Config) -> Result<(), ClusterError> {
    use secrecy::ExposeSecret;
    let bad = |what: &str| {
        ClusterError::Config(format!(
            "the user's {what} holds a line break or another control character (a YAML `token: |` \
             block keeps its newline): write the token on one line"
        ))
    };
    if let Some(t) = &config.auth_info.token {
        if t.expose_secret().chars().any(char::is_control) {
            return Err(bad("token"));
        }
    } else if let Some(path) = config.auth_info.token_file.clone() {
        small_regular_file(std::path::Path::new(&path), MAX_TOKEN_FILE)
            .map_err(|e| ClusterError::Config(format!("tokenFile {e}")))?;
        let text = std::fs::read_to_string(&path)
            .map_err(|e| ClusterError::Config(format!("tokenFile {path}: {e}")))?;
        let trimmed = text.trim();
        if trimmed.chars().any(char::is_control) {
            return Err(bad(&format!("tokenFile {path}")));
        }
        if trimmed.len() != text.len() {
            // The client re-reads the file as it is, untrimmed: give it the trimmed token.
            config.auth_info.token = Some(trimmed.to_string().into());
            config.auth_info.token_file = None;
        }
    }
    Ok(())
}

/// A client and the namespace to work in (flag, else the context's, else `default`). The API
/// server is asked once, within `access.timeout`, so that a cluster that cannot be reached is
/// said at once, with where and why, rather than at the first real request.
pub async fn connect(access: &Access) -> Result<(Client, String), ClusterError> {
    let opts = KubeConfigOptions {
        context: access.context.clone(),
        ..Default::default()
    };
    let mut config = match kubeconfig(access)? {
        Some(kc) => Config::from_custom_kubeconfig(kc, &opts)
            .await
            .map_err(|e| ClusterError::Config(one_line(&redact_userinfo(&e.to_string()))))?,
        None if access.context.is_some() => {
            return Err(ClusterError::Config(format!(
                "no kubeconfig to find context {:?} in",
                access.context.as_deref().unwrap_or_default()
            )))
        }
        // The in-cluster ServiceAccount (a pipeline Job).
        None => Config::incluster().map_err(|e| {
            ClusterError::Config(format!(
                "no kubeconfig (KUBECONFIG, ~/.kube/config) and not in a cluster: {e}"
            ))
        })?,
    };
    check_token(&mut config)?;
    if let Some(url) = without_userinfo(&config.cluster_url) {
        config.cluster_url = url;
    }
    // A little past the first contact's own bound, which then says what happened.
    config.connect_timeout = Some(
        access.timeout.min(std::time::Duration::from_secs(30)) + std::time::Duration::from_secs(1),
    );
    // Every later API call is bounded too: a server that answers each request slowly cannot
    // stretch one call past the timeout (a read that waits longer fails, and the engine's
    // waits count it against their own bound).
    config.read_timeout = Some(access.timeout);
    config.write_timeout = Some(access.timeout);
    let server = config.cluster_url.to_string();
    let namespace = access
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    // The context's namespace goes into every URL path, as the flag's does (checked by the
    // command line): `/` or `..` in it would ask for other objects.
    let label_ok = !namespace.is_empty()
        && namespace.len() <= 63
        && namespace
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !namespace.starts_with('-')
        && !namespace.ends_with('-');
    if !label_ok {
        return Err(ClusterError::Config(format!(
            "namespace `{}` (from the kubeconfig's context) is not a Kubernetes namespace name",
            namespace.escape_debug()
        )));
    }
    let client = Client::try_from(config).map_err(ClusterError::Api)?;
    match tokio::time::timeout(access.timeout, client.apiserver_version()).await {
        Ok(Ok(_)) => Ok((client, namespace)),
        Ok(Err(e)) => Err(ClusterError::Unreachable {
            server,
            cause: describe(&e),
        }),
        Err(_) => Err(ClusterError::Unreachable {
            server,
            cause: format!("no answer within {:?}", access.timeout),
        }),
    }
}

/// Which StatefulSet to work on.
#[derive(Debug, Clone)]
pub enum Selector {
    StatefulSet(String),
    /// Helm release name: `app.kubernetes.io/instance=<release>`.
    Release(String),
    /// The only bitnami ZooKeeper StatefulSet in the namespace.
    Auto,
}

/// One StatefulSet in one namespace, and the client to reach it.
#[derive(Clone)]
pub struct Target {
    client: Client,
    namespace: String,
    name: String,
}

impl Target {
    pub fn new(client: Client, namespace: impl Into<String>, name: impl Into<String>) -> Target {
        Target {
            client,
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `namespace/name`, as messages name it.
    pub fn display(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    fn statefulsets(&self) -> Api<StatefulSet> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Target({}/{})", self.namespace, self.name)
    }
}

/// The bitnami view of a live StatefulSet: the post-renderer's recogniser, so both go by what
/// the pods run (a container with `ZOO_SERVERS`), never by a label a chart value renames.
/// `Ok(None)`: not a ZooKeeper StatefulSet; `Err`: one whose list cannot be read safely.
fn recognise_any(sts: &StatefulSet) -> Result<Option<ZkStatefulSet>, String> {
    manifest::recognise_live(sts).map_err(|e| e.to_string())
}

fn recognise(sts: &StatefulSet) -> Result<ZkStatefulSet, String> {
    recognise_any(sts)?.ok_or_else(|| "no container has ZOO_SERVERS in its env".to_string())
}

/// Whether a StatefulSet belongs to Helm release `release`: Helm's own ownership annotation
/// (set by Helm, whatever the chart), or the chart's `app.kubernetes.io/instance` label (the
/// release name in every bitnami chart), for objects applied from `helm template` output.
fn in_release(sts: &StatefulSet, release: &str) -> bool {
    let annotation = sts
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("meta.helm.sh/release-name"));
    let label = sts
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("app.kubernetes.io/instance"));
    annotation.map(String::as_str) == Some(release) || label.map(String::as_str) == Some(release)
}

/// The bitnami ZooKeeper StatefulSet `selector` names in `namespace`.
pub async fn find(
    client: &Client,
    namespace: &str,
    selector: &Selector,
) -> Result<Target, ClusterError> {
    let sts = find_statefulset(client, namespace, selector).await?;
    Ok(Target::new(client.clone(), namespace, sts.name_any()))
}

async fn find_statefulset(
    client: &Client,
    namespace: &str,
    selector: &Selector,
) -> Result<StatefulSet, ClusterError> {
    let api: Api<StatefulSet> = Api::namespaced(client.clone(), namespace);
    match selector {
        Selector::StatefulSet(name) => {
            let sts = api
                .get_opt(name)
                .await?
                .ok_or_else(|| ClusterError::NotFound {
                    namespace: namespace.into(),
                    name: name.clone(),
                })?;
            recognise(&sts).map_err(|reason| ClusterError::NotZooKeeper {
                namespace: namespace.into(),
                name: name.clone(),
                reason,
            })?;
            Ok(sts)
        }
        Selector::Release(_) | Selector::Auto => {
            // Every StatefulSet of the namespace, judged by the recogniser: no label selector,
            // since every label the chart sets can be renamed by its values.
            let mut found = Vec::new();
            let mut unreadable = Vec::new();
            for sts in api.list(&ListParams::default()).await?.items {
                if let Selector::Release(r) = selector {
                    if !in_release(&sts, r) {
                        continue;
                    }
                }
                match recognise_any(&sts) {
                    Ok(Some(_)) => found.push(sts),
                    Ok(None) => {}
                    Err(reason) => unreadable.push((sts.name_any(), reason)),
                }
            }
            // One that runs ZooKeeper but cannot be read is a candidate too: picking the other
            // one silently could act on the wrong ensemble.
            if found.len() + unreadable.len() > 1 {
                let mut candidates: Vec<String> = found.iter().map(|s| s.name_any()).collect();
                candidates.extend(unreadable.iter().map(|(n, _)| format!("{n} (unreadable)")));
                return Err(ClusterError::Ambiguous {
                    namespace: namespace.into(),
                    candidates,
                });
            }
            if let Some((name, reason)) = unreadable.pop() {
                return Err(ClusterError::NotZooKeeper {
                    namespace: namespace.into(),
                    name,
                    reason,
                });
            }
            match found.pop() {
                Some(sts) => Ok(sts),
                None => Err(ClusterError::NoneFound {
                    namespace: namespace.into(),
                    hint: match selector {
                        Selector::Release(r) => format!(" for release {r}"),
                        _ => " (use -n to choose the namespace)".into(),
                    },
                }),
            }
        }
    }
}
