//! The one error type of the manifest layer, and the way it names a document.

use std::fmt;

use thiserror::Error;

use crate::model::ModelError;

/// Names one document of the stream in messages: its position, where it starts, and what it is
/// when that is known.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DocRef {
    /// 0-based position in the stream, counting every document (empty ones too). Messages show
    /// it 1-based: `document 1` is the first.
    pub index: usize,
    /// 1-based line of the stream on which the document's text starts (its `---` line, if any).
    pub line: usize,
    pub kind: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    /// The chart template it came from: `# Source:` comment or Helm 4's
    /// `postrenderer.helm.sh/postrender-filename` annotation.
    pub source: Option<String>,
}

impl fmt::Display for DocRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "document {} (line {}", self.index + 1, self.line)?;
        match (&self.kind, &self.name) {
            (Some(kind), Some(name)) => {
                write!(f, ", {kind} ")?;
                if let Some(ns) = &self.namespace {
                    write!(f, "{ns}/")?;
                }
                write!(f, "{name}")?;
            }
            (Some(kind), None) => write!(f, ", {kind}")?,
            (None, Some(name)) => write!(f, ", named {name}")?,
            (None, None) => {}
        }
        if let Some(source) = &self.source {
            write!(f, ", from {source}")?;
        }
        f.write_str(")")
    }
}

/// Everything that can go wrong in the manifest layer. Each variant names the document (see
/// [`DocRef`]) and says what is wrong with it; the messages are meant for the user as they are.
#[derive(Debug, Error)]
pub enum ManifestError {
    /// The stream is not UTF-8 (Kubernetes manifests must be).
    #[error("input is not UTF-8: invalid byte 0x{byte:02x} at byte offset {offset} (line {line}, column {column}) in {doc}")]
    NotUtf8 {
        offset: usize,
        byte: u8,
        line: usize,
        column: usize,
        doc: Box<DocRef>,
    },
    /// Larger than the 4 GiB a stream may have (document offsets are 32-bit).
    #[error("input of {bytes} bytes is larger than the 4 GiB a manifest stream may have")]
    TooLarge { bytes: usize },
    /// serde_yaml could not parse the document. Line numbers in `message` are lines of the
    /// stream.
    #[error("{doc}: malformed YAML: {message}")]
    Yaml { doc: Box<DocRef>, message: String },
    /// A field the ZooKeeper StatefulSet needs has the wrong type or value.
    #[error("{doc}: {pointer}: {reason}")]
    InvalidField {
        doc: Box<DocRef>,
        pointer: String,
        reason: String,
    },
    /// A StatefulSet with the chart label `helm.sh/chart: zookeeper-*` whose containers have no
    /// `ZOO_SERVERS` env (the chart always renders it).
    #[error("{doc}: bitnami ZooKeeper StatefulSet has no ZOO_SERVERS env in any container")]
    MissingServers { doc: Box<DocRef> },
    /// No `ZOO_SERVERS` entry, but a container with `envFrom` and other `ZOO_*` variables: the
    /// list may come from that ConfigMap or Secret, out of zkscale's sight.
    #[error("{doc}: container `{container}` runs with ZooKeeper's ZOO_* variables and envFrom, so ZOO_SERVERS may come from a ConfigMap or Secret; zkscale needs it as a literal env entry to keep the ensemble safe")]
    ServersHidden { doc: Box<DocRef>, container: String },
    /// Two containers set different `ZOO_SERVERS`.
    #[error("{doc}: containers `{first}` and `{second}` both set ZOO_SERVERS, to different values; zkscale cannot tell which one runs the ensemble")]
    ConflictingServers {
        doc: Box<DocRef>,
        first: String,
        second: String,
    },
    /// `ZOO_SERVERS` is set through `valueFrom`, so the manifest alone does not say the ensemble.
    #[error("{doc}: ZOO_SERVERS of container `{container}` comes from valueFrom; zkscale needs a literal value")]
    ServersNotLiteral { doc: Box<DocRef>, container: String },
    /// `ZOO_SERVERS` does not parse.
    #[error("{doc}: ZOO_SERVERS `{value}` does not parse: {error}")]
    BadServers {
        doc: Box<DocRef>,
        value: String,
        error: ModelError,
    },
    /// `ZOO_SERVERS` names one server id twice.
    #[error("{doc}: ZOO_SERVERS lists server id {id} more than once: `{value}`")]
    DuplicateServerId {
        doc: Box<DocRef>,
        id: u32,
        value: String,
    },
    /// Only with [`super::PostRenderOptions::strict`]: otherwise this is a [`super::Warning`].
    #[error("{doc}: spec.replicas is {replicas} but ZOO_SERVERS lists {servers} server(s)")]
    ReplicasMismatch {
        doc: Box<DocRef>,
        replicas: i32,
        servers: usize,
    },
    /// Two ZooKeeper StatefulSets with the same namespace and name.
    #[error("{second}: ZooKeeper StatefulSet appears twice in the stream (first as {first})")]
    DuplicateStatefulSet {
        first: Box<DocRef>,
        second: Box<DocRef>,
    },
    /// An edit names a document the stream does not have.
    #[error("edit for document {} but the stream has {count} document(s)", .index + 1)]
    NoSuchDocument { index: usize, count: usize },
    /// An edit cannot be applied (path through a scalar, index out of range, empty document...).
    #[error("{doc}: cannot apply edit at `{pointer}`: {reason}")]
    Edit {
        doc: Box<DocRef>,
        pointer: String,
        reason: String,
    },
    /// The edits removed or changed Helm's `postrenderer.helm.sh/postrender-filename`.
    #[error(
        "{doc}: the rewrite changed Helm's postrenderer.helm.sh/postrender-filename annotation"
    )]
    AnnotationChanged { doc: Box<DocRef> },
    /// The document needs rewriting but holds a plain scalar that YAML 1.1 (what Kubernetes
    /// reads manifests with) and YAML 1.2 (serde_yaml) read differently, so re-serializing it
    /// could change its meaning.
    #[error("{doc}: cannot rewrite it safely: plain value `{scalar}` on line {line} reads differently in YAML 1.1 (Kubernetes) and YAML 1.2; quote it, or write numbers in decimal")]
    AmbiguousScalar {
        doc: Box<DocRef>,
        line: usize,
        scalar: String,
    },
    /// A bitnami ZooKeeper StatefulSet inside a `kind: List`.
    #[error("{doc}: holds the bitnami ZooKeeper StatefulSet {name} as an item of a List; zkscale carries changes out only for a StatefulSet of its own document (render it as one)")]
    InList { doc: Box<DocRef>, name: String },
    /// The document holds an integer beyond 64 bits: it reads as YAML, but a rewrite would
    /// write it as a string.
    #[error("{doc}: holds an integer beyond 64 bits, which zkscale cannot write back unchanged; it does not rewrite this document (quote the number in the chart)")]
    BigInteger { doc: Box<DocRef> },
    /// Writing the rewritten document failed, or its text did not read back as the same value.
    #[error("{doc}: cannot re-serialize the rewritten document: {reason}")]
    Emit { doc: Box<DocRef>, reason: String },
    /// A StatefulSet document uses YAML merge keys: Kubernetes (YAML 1.1) merges them, the
    /// parser here (YAML 1.2) keeps `<<` as a key, so its size, labels or server list could be
    /// read wrong. Refused rather than resolved (see `Stream::find_zookeepers`).
    #[error("{doc}: uses a YAML merge key (`<<`), which Kubernetes resolves and zkscale does not: its size or server list could be misread. Write the merged keys out in the chart")]
    MergeKey { doc: Box<DocRef> },
}

impl ManifestError {
    /// The document the error is about, if it is about one.
    pub fn doc(&self) -> Option<&DocRef> {
        let doc: &DocRef = match self {
            ManifestError::NotUtf8 { doc, .. }
            | ManifestError::Yaml { doc, .. }
            | ManifestError::InvalidField { doc, .. }
            | ManifestError::MissingServers { doc }
            | ManifestError::ServersNotLiteral { doc, .. }
            | ManifestError::ServersHidden { doc, .. }
            | ManifestError::ConflictingServers { doc, .. }
            | ManifestError::BadServers { doc, .. }
            | ManifestError::DuplicateServerId { doc, .. }
            | ManifestError::ReplicasMismatch { doc, .. }
            | ManifestError::Edit { doc, .. }
            | ManifestError::AnnotationChanged { doc }
            | ManifestError::AmbiguousScalar { doc, .. }
            | ManifestError::Emit { doc, .. }
            | ManifestError::MergeKey { doc }
            | ManifestError::BigInteger { doc }
            | ManifestError::InList { doc, .. } => doc,
            ManifestError::DuplicateStatefulSet { second, .. } => second,
            ManifestError::NoSuchDocument { .. } | ManifestError::TooLarge { .. } => return None,
        };
        Some(doc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doc_ref_display() {
        let mut d = DocRef {
            index: 6,
            line: 170,
            kind: Some("StatefulSet".into()),
            namespace: Some("zk-test".into()),
            name: Some("coord".into()),
            source: Some("zookeeper/templates/statefulset.yaml".into()),
        };
        assert_eq!(
            d.to_string(),
            "document 7 (line 170, StatefulSet zk-test/coord, from zookeeper/templates/statefulset.yaml)"
        );
        d.namespace = None;
        d.source = None;
        assert_eq!(d.to_string(), "document 7 (line 170, StatefulSet coord)");
        d.kind = None;
        d.name = None;
        assert_eq!(d.to_string(), "document 7 (line 170)");
    }
}
