//! Manifest pipeline: a multi-document YAML stream in (as Helm hands it to a post-renderer), the
//! same stream out, with only the documents the rewrite changes re-serialized.
//!
//! # Pipeline
//! 1. [`Stream::parse`]: the input must be UTF-8; it is split into documents at `---` lines
//!    (byte ranges that together cover the input exactly, see `split`), without parsing.
//!    Documents that can matter (their text mentions `StatefulSet` or `setup.sh`) are parsed
//!    into a `serde_yaml::Value`; the others are only syntax-checked (no value is built), or
//!    not looked at all with [`ParseOptions::check_syntax`] off.
//! 2. bitnami/zookeeper StatefulSets become typed [`ZkStatefulSet`] views (and the chart's
//!    `<fullname>-scripts` ConfigMap gives `minServerId`). Bad ones are errors (see below).
//! 3. [`rewrite`] plans [`Edit`]s (JSON pointers into one document each) and
//!    [`Stream::apply`] applies them: each changed document is re-serialized on its own (its
//!    `---` line and leading comments such as `# Source:` kept, key order kept, CRLF kept),
//!    every other document is copied byte for byte. With no change the output *is* the input.
//!
//! # Helm 4 and `postrenderer.helm.sh/postrender-filename`
//! Helm 4 (`pkg/action/action.go`, `annotateAndMerge`/`splitAndDeannotate`) no longer hands the
//! post-renderer its `---\n# Source: file` listing. It takes the rendered files in sorted name
//! order (skipping partials `_*` and blank files), parses each with kyaml, sets the annotation
//! `postrenderer.helm.sh/postrender-filename: '<chart>/templates/<file>'` in every document's
//! `metadata.annotations`, and joins them with kyaml (`---` between documents, no leading `---`,
//! no `# Source:` comments). After the post-renderer it parses the output with kyaml, groups
//! documents by that annotation into files again and removes the annotation; a document
//! without it lands in a file `generated-by-postrender-<index>.yaml`. So a rewritten
//! document must keep the annotation (or Helm files it under a made-up template name):
//! edits that would remove or change it are refused ([`ManifestError::AnnotationChanged`]).
//! Helm 3 hands over `helm template`-style text (`---` + `# Source:` before each document);
//! both forms are handled, and both pass through unchanged byte for byte.
//!
//! # Errors and what is only reported
//! Errors ([`ManifestError`], each naming the document by number, first line, kind, name and
//! source template): non-UTF-8 input (with the byte offset), malformed YAML, a `ZOO_SERVERS`
//! that does not parse or lists a server id twice, a ZooKeeper StatefulSet whose
//! `ZOO_SERVERS` cannot be read (set through `valueFrom`, possibly in an `envFrom` source, or
//! different in two containers), a StatefulSet with the chart label `helm.sh/chart: zookeeper-*`
//! and no `ZOO_SERVERS` at all, an unreadable `spec.replicas` or
//! `spec.updateStrategy`, the same StatefulSet twice.
//!
//! `spec.replicas` differing from the number of `ZOO_SERVERS` entries (checked when replicas
//! ≥ 1: the chart renders one entry per replica) is a [`Warning`], not an error: a user may
//! override the env on purpose (servers outside this StatefulSet, a migration in progress), and
//! refusing would block every `helm upgrade` of such a release. The binary prints warnings on
//! stderr; [`PostRenderOptions::strict`] turns them into [`ManifestError::ReplicasMismatch`].
//! What counts as a ZooKeeper StatefulSet is the image's contract, not a name: a container
//! with `ZOO_SERVERS` in its env (see `zookeeper::statefulset` for the whole rule). A
//! StatefulSet without it is not ours and passes through, whatever its labels say.
//!
//! # Re-serialization and YAML 1.1
//! Kubernetes reads manifests as YAML 1.1 (`no`, `on`, `y` are booleans, `0644` is octal),
//! serde_yaml as YAML 1.2. Rewritten documents are therefore written by our own emitter (see
//! `emit`: strings quoted unless plainly strings in both versions, literal blocks for
//! multi-line strings, the text must read back as the edited value), and a document whose
//! original text has a plain value the two versions read differently (`0644`, `no`, `1_000`,
//! `2024-01-01`, merge keys `<<`) is refused a rewrite ([`ManifestError::AmbiguousScalar`])
//! instead of silently changing meaning. Comments inside a rewritten document are lost;
//! those before its first line (`# Source:`) are kept.
//!
//! # Speed
//! Only candidate documents are parsed into values. The syntax check of the others reads a
//! "skeleton" with block-scalar content blanked (ConfigMaps of data files are mostly that) and
//! re-reads the full text only if the skeleton fails, so only the full text can fail a
//! document; large streams are checked on several threads. `benches/post_render.rs` measures it.
//!
//! Limits: objects inside `kind: List` are not looked into; a document is a StatefulSet
//! candidate only if its text contains `StatefulSet` literally (an escaped kind in a
//! double-quoted scalar would be missed).

mod edit;
mod emit;
mod error;
mod scan;
mod split;
mod value;
mod zookeeper;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::ops::Range;

use k8s_openapi::api::apps::v1::StatefulSetUpdateStrategy;
use serde_yaml::Value;

pub use edit::{get as value_at, Edit, EditOp};
pub use error::{DocRef, ManifestError};
pub use zookeeper::{min_server_id, ScriptsConfigMap, ZkStatefulSet};

/// The annotation Helm 4 puts on every document it hands a post-renderer.
pub const FILENAME_ANNOTATION: &str = "postrenderer.helm.sh/postrender-filename";

/// The annotation a preview puts on a live ensemble's StatefulSet when the chart asks for a
/// change that the preview does not declare (it keeps the live size and server list): a
/// reviewer of the rendered output (helm-diff, `--dry-run`, a rendered-manifest repository)
/// sees what the upgrade will do, and applying it changes nothing but this annotation.
pub const PENDING_ANNOTATION: &str = "zkscale.io/pending";
/// Annotation on the StatefulSet recording the operation in progress (resume reads it).
pub const OPERATION_ANNOTATION: &str = "zkscale.io/operation";
/// Annotation with the last outcome, for humans and pipelines reading the object.
pub const STATUS_ANNOTATION: &str = "zkscale.io/status";

/// The StatefulSet annotations only zkscale writes. A chart (or a rendered-manifest repository
/// replayed through it) that carries one must not plant it: a stale operation would be read
/// back as a step under way, a stale pending note shows reviewers a plan that is not the one.
/// So the output always carries zkscale's own value of each ([`Declared`]), or none. The
/// guard's override annotation (`zkscale.io/allow-unsafe`) is not among them: it is a
/// person's, set on purpose with a reason.
pub const OWNED_ANNOTATIONS: [&str; 3] =
    [OPERATION_ANNOTATION, PENDING_ANNOTATION, STATUS_ANNOTATION];

/// What the rewrite found worth saying but not worth refusing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    /// `spec.replicas` (≥ 1) differs from the number of `ZOO_SERVERS` entries.
    ReplicasMismatch {
        doc: DocRef,
        replicas: i32,
        servers: usize,
    },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::ReplicasMismatch {
                doc,
                replicas,
                servers,
            } => write!(
                f,
                "{doc}: spec.replicas is {replicas} but ZOO_SERVERS lists {servers} server(s); \
                 the chart renders one entry per replica, so the env was probably overridden"
            ),
        }
    }
}

/// How much of the stream [`Stream::parse_with`] checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ParseOptions {
    /// Syntax-check every document, not only the ones that can be ZooKeeper objects, so that
    /// malformed YAML anywhere is reported here (naming the document) rather than by Helm,
    /// which parses the whole output before it applies anything. Off by default (the
    /// post-renderer's hot path parses only what may be ours); `post-render --check` turns it on.
    pub check_syntax: bool,
}

/// What the cluster side decided about the ensembles in the stream (the post-renderer front end
/// fills it in). With it, every bitnami ZooKeeper StatefulSet in the output is `OnDelete` (the
/// StatefulSet controller never restarts members by itself; zkscale restarts them in order),
/// and the ones named in `ensembles` declare exactly that size and server list, so Helm's apply
/// after the engine's steps changes nothing more and conflicts with no field manager.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveState {
    /// By StatefulSet name (a release's stream is one namespace).
    pub ensembles: BTreeMap<String, Declared>,
}

/// The state one ensemble's manifest must declare: the live one, after a real upgrade's steps
/// or (for a preview, which changes nothing) as it is now, so that whoever applies the output
/// moves the ensemble by no step at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    pub replicas: i32,
    /// `ZOO_SERVERS`, exactly as the live StatefulSet has it (existing members' addresses and
    /// ids, whatever the chart would render).
    pub servers_env: String,
    /// A change the chart asks for and this output does not declare (a preview):
    /// [`PENDING_ANNOTATION`] on the StatefulSet says what it is.
    pub pending: Option<String>,
    /// The live [`OPERATION_ANNOTATION`]: a step in flight (a run stopped at a safe size, or
    /// another one running) keeps its record when the output is applied (Helm 3's three-way
    /// merge and `kubectl apply` delete an annotation the previous manifest had and this one
    /// lacks).
    pub operation: Option<String>,
}

impl Declared {
    /// Exactly what the live StatefulSet has: applying it moves nothing.
    pub fn live(replicas: i32, servers_env: impl Into<String>) -> Declared {
        Declared {
            replicas,
            servers_env: servers_env.into(),
            pending: None,
            operation: None,
        }
    }

    /// [`Declared::live`] with the live operation annotation.
    pub fn with_operation(self, operation: Option<&str>) -> Declared {
        Declared {
            operation: operation.map(str::to_string),
            ..self
        }
    }

    /// zkscale's own value of the owned annotation `key` (see [`OWNED_ANNOTATIONS`]).
    fn owned(&self, key: &str) -> Option<&str> {
        match key {
            OPERATION_ANNOTATION => self.operation.as_deref(),
            PENDING_ANNOTATION => self.pending.as_deref(),
            _ => None,
        }
    }
}

/// One document of the stream. Kept small (a stream may hold hundreds of thousands): the text
/// is borrowed from the input, and only candidates carry a parsed value.
#[derive(Debug, Clone)]
pub struct Document<'a> {
    text: &'a str,
    start: usize,
    index: u32,
    empty: bool,
    /// Holds an integer beyond 64 bits (kept as a string in `value`): never rewritten.
    lossy: bool,
    value: Option<Box<Value>>,
}

impl<'a> Document<'a> {
    /// 0-based position in the stream.
    pub fn index(&self) -> usize {
        self.index as usize
    }
    /// Byte range of the document's text in the input.
    pub fn range(&self) -> Range<usize> {
        self.start..self.start + self.text.len()
    }
    /// The document's exact original text, from its `---` line (if any) up to the next one.
    pub fn text(&self) -> &'a str {
        self.text
    }
    /// Only markers, comments and blank lines.
    pub fn is_empty(&self) -> bool {
        self.empty
    }
    /// The parsed value, for the documents that were parsed (ZooKeeper candidates).
    pub fn value(&self) -> Option<&Value> {
        self.value.as_deref()
    }
    pub fn kind(&self) -> Option<&str> {
        zookeeper::str_at(self.value()?, &["kind"])
    }
    pub fn name(&self) -> Option<&str> {
        zookeeper::str_at(self.value()?, &["metadata", "name"])
    }
    pub fn namespace(&self) -> Option<&str> {
        zookeeper::str_at(self.value()?, &["metadata", "namespace"])
    }
    pub fn postrender_filename(&self) -> Option<&str> {
        filename_annotation(self.value()?)
    }
}

fn filename_annotation(v: &Value) -> Option<&str> {
    zookeeper::str_at(v, &["metadata", "annotations", FILENAME_ANNOTATION])
}

/// A parsed stream: the documents (borrowing the input) and the ZooKeeper objects found in them.
#[derive(Debug, Clone)]
pub struct Stream<'a> {
    text: &'a str,
    docs: Vec<Document<'a>>,
    zookeepers: Vec<ZkStatefulSet>,
    scripts: Vec<ScriptsConfigMap>,
    warnings: Vec<Warning>,
}

impl<'a> Stream<'a> {
    /// [`Stream::parse_with`] with the default options.
    pub fn parse(input: &'a [u8]) -> Result<Self, ManifestError> {
        Self::parse_with(input, &ParseOptions::default())
    }

    pub fn parse_with(input: &'a [u8], opts: &ParseOptions) -> Result<Self, ManifestError> {
        let text = std::str::from_utf8(input).map_err(|e| utf8_error(input, e.valid_up_to()))?;
        let mut stream = Stream {
            text,
            docs: Vec::new(),
            zookeepers: Vec::new(),
            scripts: Vec::new(),
            warnings: Vec::new(),
        };
        if u32::try_from(text.len()).is_err() {
            return Err(ManifestError::TooLarge { bytes: text.len() });
        }
        stream.docs = split::split(text)
            .into_iter()
            .enumerate()
            .map(|(index, range)| {
                let doc_text = &text[range.clone()];
                Document {
                    index: index as u32,
                    start: range.start,
                    text: doc_text,
                    empty: split::is_empty_doc(doc_text),
                    lossy: false,
                    value: None,
                }
            })
            .collect();
        match parse_all(&stream.docs, opts.check_syntax) {
            Ok(values) => {
                for (index, (value, lossy)) in values {
                    stream.docs[index].value = Some(Box::new(value));
                    stream.docs[index].lossy = lossy;
                }
            }
            // The first error in stream order, whichever thread found it first.
            Err((index, e)) => return Err(stream.yaml_error(index, e)),
        }
        stream.find_zookeepers()?;
        Ok(stream)
    }

    /// The whole input text.
    pub fn text(&self) -> &'a str {
        self.text
    }
    pub fn documents(&self) -> &[Document<'a>] {
        &self.docs
    }
    /// The bitnami ZooKeeper StatefulSets, in stream order.
    pub fn zookeepers(&self) -> &[ZkStatefulSet] {
        &self.zookeepers
    }
    /// The chart's scripts ConfigMaps (holding setup.sh), in stream order.
    pub fn scripts_config_maps(&self) -> &[ScriptsConfigMap] {
        &self.scripts
    }
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }

    /// How messages name document `index`.
    pub fn doc_ref(&self, index: usize) -> DocRef {
        let doc = &self.docs[index];
        let sniffed = split::sniff(&doc.text[..split::header(doc.text).len]);
        let mut r = DocRef {
            index,
            line: split::line_of(self.text.as_bytes(), doc.start),
            ..DocRef::default()
        };
        match doc.value() {
            Some(v) => {
                r.kind = doc.kind().map(str::to_string);
                r.name = doc.name().map(str::to_string);
                r.namespace = doc.namespace().map(str::to_string);
                r.source = sniffed
                    .source
                    .or_else(|| filename_annotation(v).map(str::to_string));
            }
            None => {
                let s = split::sniff(doc.text);
                r.kind = s.kind;
                r.name = s.name;
                r.namespace = s.namespace;
                r.source = s.source;
            }
        }
        r
    }

    fn parse_doc(&self, index: usize) -> Result<(Value, bool), ManifestError> {
        value::parse(strip_bom(self.docs[index].text)).map_err(|e| self.yaml_error(index, e))
    }

    fn yaml_error(&self, index: usize, e: serde_yaml::Error) -> ManifestError {
        let doc = self.doc_ref(index);
        let d = &self.docs[index];
        // Some libyaml errors give a byte position in the document instead of a line: make it
        // the stream's line and column, like the others.
        let bom = d.text.len() - strip_bom(d.text).len();
        let message = split::position_to_line(&e.to_string(), self.text, d.start + bom);
        let message = split::absolute_lines(&message, doc.line);
        ManifestError::Yaml {
            doc: doc.into(),
            message,
        }
    }

    fn find_zookeepers(&mut self) -> Result<(), ManifestError> {
        let mut zookeepers = Vec::new();
        let mut scripts = Vec::new();
        for doc in &self.docs {
            let Some(value) = doc.value() else { continue };
            let index = doc.index();
            // Merge keys are refused, not resolved: kubectl's resolution (YAML 1.1, go-yaml)
            // has rules of its own (precedence of explicit keys, sequences of maps), and a
            // check that reads the size wrong is worse than none. A document whose kind is a
            // StatefulSet, or could come from a merge, is refused before it is looked into.
            let statefulset_or_unknown = matches!(doc.kind(), Some("StatefulSet") | None);
            if statefulset_or_unknown && has_merge_key(value) {
                return Err(ManifestError::MergeKey {
                    doc: self.doc_ref(index).into(),
                });
            }
            match zookeeper::inspect(index, value, || self.doc_ref(index))? {
                zookeeper::Found::StatefulSet(sts) => zookeepers.push(*sts),
                zookeeper::Found::Scripts(cm) => scripts.push(cm),
                zookeeper::Found::Other => {}
            }
        }
        let mut seen: HashMap<(Option<&str>, &str), usize> = HashMap::new();
        for sts in &zookeepers {
            if let Some(&first) = seen.get(&(sts.namespace.as_deref(), sts.name.as_str())) {
                return Err(ManifestError::DuplicateStatefulSet {
                    first: self.doc_ref(first).into(),
                    second: self.doc_ref(sts.doc_index).into(),
                });
            }
            seen.insert((sts.namespace.as_deref(), &sts.name), sts.doc_index);
        }
        for sts in &mut zookeepers {
            let mounted = zookeeper::mounted_config_maps(&sts.pod_template);
            let default_name = format!("{}-scripts", sts.name);
            let same_ns = |cm: &&ScriptsConfigMap| cm.namespace == sts.namespace;
            let cm = scripts
                .iter()
                .filter(same_ns)
                .find(|cm| mounted.contains(&cm.name.as_str()))
                .or_else(|| {
                    scripts
                        .iter()
                        .filter(same_ns)
                        .find(|cm| cm.name == default_name)
                });
            if let Some(cm) = cm {
                sts.min_server_id = cm.min_server_id;
                sts.scripts_doc_index = Some(cm.doc_index);
            }
            let replicas = sts.effective_replicas();
            if replicas >= 1 && replicas as usize != sts.servers.members().len() {
                self.warnings.push(Warning::ReplicasMismatch {
                    doc: self.doc_ref(sts.doc_index),
                    replicas,
                    servers: sts.servers.members().len(),
                });
            }
        }
        self.zookeepers = zookeepers;
        self.scripts = scripts;
        Ok(())
    }

    /// Applies `edits` and writes the whole stream: documents without edits (or whose edits
    /// change nothing) byte for byte, the others re-serialized. All or nothing.
    pub fn apply(&self, edits: &[Edit]) -> Result<Rewritten, ManifestError> {
        let replaced = self.rewrite_docs(edits)?;
        let output = self
            .assemble(&replaced)
            .unwrap_or_else(|| self.text.as_bytes().to_vec());
        Ok(Rewritten {
            edits: edits.to_vec(),
            changed: replaced.into_keys().collect(),
            output,
        })
    }

    /// The new texts of the documents the edits change.
    fn rewrite_docs(&self, edits: &[Edit]) -> Result<BTreeMap<usize, String>, ManifestError> {
        let mut by_doc: BTreeMap<usize, Vec<&Edit>> = BTreeMap::new();
        for e in edits {
            if e.doc_index >= self.docs.len() {
                return Err(ManifestError::NoSuchDocument {
                    index: e.doc_index,
                    count: self.docs.len(),
                });
            }
            by_doc.entry(e.doc_index).or_default().push(e);
        }
        let mut replaced = BTreeMap::new();
        for (&index, doc_edits) in &by_doc {
            if let Some(text) = self.rewrite_doc(index, doc_edits)? {
                replaced.insert(index, text);
            }
        }
        Ok(replaced)
    }

    /// The whole output with `replaced` documents swapped in; `None` when nothing is replaced
    /// (the output is the input).
    fn assemble(&self, replaced: &BTreeMap<usize, String>) -> Option<Vec<u8>> {
        if replaced.is_empty() {
            return None;
        }
        let extra: usize = replaced.values().map(String::len).sum();
        let mut out = Vec::with_capacity(self.text.len() + extra);
        for doc in &self.docs {
            let text = replaced.get(&doc.index()).map_or(doc.text, String::as_str);
            out.extend_from_slice(text.as_bytes());
        }
        Some(out)
    }

    /// The new text of document `index` after `edits`, or `None` when they change nothing.
    fn rewrite_doc(&self, index: usize, edits: &[&Edit]) -> Result<Option<String>, ManifestError> {
        let doc = &self.docs[index];
        let edit_error = |e: &Edit, reason: String| ManifestError::Edit {
            doc: self.doc_ref(index).into(),
            pointer: e.pointer.to_string(),
            reason,
        };
        if doc.empty {
            return Err(edit_error(edits[0], "the document is empty".into()));
        }
        let (original, lossy): (Cow<Value>, bool) = match doc.value() {
            Some(v) => (Cow::Borrowed(v), doc.lossy),
            None => {
                let (v, lossy) = self.parse_doc(index)?;
                (Cow::Owned(v), lossy)
            }
        };
        let mut value = original.as_ref().clone();
        for e in edits {
            edit::apply(&mut value, &e.pointer, &e.op).map_err(|reason| edit_error(e, reason))?;
        }
        if value == *original {
            return Ok(None);
        }
        if lossy {
            return Err(ManifestError::BigInteger {
                doc: self.doc_ref(index).into(),
            });
        }
        let ann = filename_annotation(&original);
        if ann.is_some() && ann != filename_annotation(&value) {
            return Err(ManifestError::AnnotationChanged {
                doc: self.doc_ref(index).into(),
            });
        }
        self.check_rewritten(index, &original, &value)?;
        if let Some((line, scalar)) = scan::first_ambiguous_scalar(doc.text) {
            return Err(ManifestError::AmbiguousScalar {
                doc: self.doc_ref(index).into(),
                line: split::line_of(self.text.as_bytes(), doc.start) + line,
                scalar,
            });
        }
        let body = emit::to_yaml(&value).map_err(|reason| ManifestError::Emit {
            doc: self.doc_ref(index).into(),
            reason,
        })?;
        let header = split::header(doc.text);
        let mut text = String::with_capacity(header.len + body.len() + 8);
        text.push_str(&doc.text[..header.len]);
        if header.marker_in_body {
            text.push_str("---\n");
        }
        text.push_str(&body);
        if doc.text.contains("\r\n") {
            // Emitted text holds no `\r` of its own (escaped in quoted scalars, never in blocks).
            let (head, rest) = text.split_at(header.len);
            text = format!("{head}{}", rest.replace('\n', "\r\n"));
        }
        Ok(Some(text))
    }

    /// A rewritten document must still be the same object (apiVersion, kind, name, namespace)
    /// and, if it is a ZooKeeper StatefulSet, still pass every check its input had to pass.
    fn check_rewritten(
        &self,
        index: usize,
        original: &Value,
        value: &Value,
    ) -> Result<(), ManifestError> {
        let invalid = |pointer: &str, reason: &str| ManifestError::InvalidField {
            doc: self.doc_ref(index).into(),
            pointer: pointer.to_string(),
            reason: format!("after the rewrite: {reason}"),
        };
        if !value.is_mapping() {
            return Err(invalid("", "the document is no longer a mapping"));
        }
        for (pointer, path) in [
            ("/apiVersion", &["apiVersion"][..]),
            ("/kind", &["kind"]),
            ("/metadata/name", &["metadata", "name"]),
            ("/metadata/namespace", &["metadata", "namespace"]),
        ] {
            if zookeeper::str_at(original, path) != zookeeper::str_at(value, path) {
                return Err(invalid(pointer, "the object's identity changed"));
            }
        }
        zookeeper::inspect(index, value, || self.doc_ref(index)).map(drop)
    }
}

/// Inputs smaller than this are parsed on the calling thread.
const PARALLEL_MIN_BYTES: usize = 512 * 1024;

/// Parses the candidate documents into values and (with `check_syntax`) syntax-checks the
/// others, on up to `available_parallelism` threads for large streams: documents are
/// independent, and libyaml is the bulk of the time. The candidates' values with their
/// indices, in order, or the first error in stream order; a thread stops at its first error
/// (the later documents of its share don't matter then).
type Parsed = (Value, bool);

fn parse_all(
    docs: &[Document],
    check_syntax: bool,
) -> Result<Vec<(usize, Parsed)>, (usize, serde_yaml::Error)> {
    let work = move |doc: &Document| -> Result<Option<Parsed>, serde_yaml::Error> {
        let text = strip_bom(doc.text);
        if doc.empty {
            Ok(None)
        } else if is_candidate(doc.text) {
            value::parse(text).map(Some)
        } else if check_syntax {
            let check = |t: &str| serde_yaml::from_str::<serde::de::IgnoredAny>(t).map(|_| None);
            // Fast path first; only the full text's verdict can fail the document.
            match scan::without_block_scalars(text) {
                Some(skeleton) if check(&skeleton).is_ok() => Ok(None),
                _ => check(text),
            }
        } else {
            Ok(None)
        }
    };
    let run =
        move |share: &[Document]| -> Result<Vec<(usize, Parsed)>, (usize, serde_yaml::Error)> {
            let mut out = Vec::new();
            for doc in share {
                if let Some(v) = work(doc).map_err(|e| (doc.index(), e))? {
                    out.push((doc.index(), v));
                }
            }
            Ok(out)
        };
    // Only what is parsed costs: the bytes of candidates, and of everything with the check on.
    let total: usize = docs
        .iter()
        .filter(|d| check_syntax || is_candidate(d.text))
        .map(|d| d.text.len())
        .sum();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    if threads < 2 || total < PARALLEL_MIN_BYTES {
        return run(docs);
    }
    // Contiguous shares of about equal bytes.
    let per_thread = docs.iter().map(|d| d.text.len()).sum::<usize>() / threads + 1;
    let mut shares = Vec::with_capacity(threads);
    let (mut start, mut bytes) = (0, 0);
    for (i, doc) in docs.iter().enumerate() {
        bytes += doc.text.len();
        if bytes >= per_thread {
            shares.push(&docs[start..=i]);
            (start, bytes) = (i + 1, 0);
        }
    }
    if start < docs.len() {
        shares.push(&docs[start..]);
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = shares
            .into_iter()
            .map(|share| scope.spawn(move || run(share)))
            .collect();
        let mut out = Vec::new();
        for handle in handles {
            // Shares are in stream order: the first failing share has the first error.
            out.extend(handle.join().expect("parser thread panicked")?);
        }
        Ok(out)
    })
}

/// Whether a `<<` key appears anywhere in `v` (a YAML 1.1 merge key, kept as a plain key by the
/// YAML 1.2 parser).
fn has_merge_key(v: &Value) -> bool {
    match v {
        Value::Mapping(m) => m
            .iter()
            .any(|(k, v)| k.as_str() == Some("<<") || has_merge_key(v)),
        Value::Sequence(s) => s.iter().any(has_merge_key),
        Value::Tagged(t) => has_merge_key(&t.value),
        _ => false,
    }
}

fn strip_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// Documents that can be ZooKeeper StatefulSets or the chart's scripts ConfigMap: the only ones
/// parsed into values. A plain substring test that must never miss one: the kind must be
/// spelled `StatefulSet` for Kubernetes to read it, and a ZooKeeper StatefulSet names `ZOO_`
/// (its `ZOO_SERVERS`, or the variables that explain a refusal) or the chart label
/// `zookeeper-`. A backslash can spell any of those as an escape in a double-quoted scalar
/// (`"ZOO\u005FSERVERS"` reads as `ZOO_SERVERS`), so a document with one is always parsed.
fn is_candidate(text: &str) -> bool {
    let escaped = text.contains('\\');
    ((text.contains("StatefulSet") || escaped)
        && (text.contains("ZOO_") || text.contains("zookeeper-") || escaped))
        || (text.contains(zookeeper::SETUP_SCRIPT) && text.contains("ORD"))
}

fn utf8_error(input: &[u8], offset: usize) -> ManifestError {
    // The valid prefix splits like the whole input would up to the bad byte.
    let prefix = std::str::from_utf8(&input[..offset]).expect("valid up to offset");
    let start = split::split(prefix).last().map_or(0, |r| r.start);
    let index = split::split(prefix).len().saturating_sub(1);
    let tail = String::from_utf8_lossy(&input[start..]);
    let doc_text = split::split(&tail).first().map_or("", |r| &tail[r.clone()]);
    let sniffed = split::sniff(doc_text);
    let line_start = prefix.rfind('\n').map_or(0, |i| i + 1);
    ManifestError::NotUtf8 {
        offset,
        byte: input[offset],
        line: split::line_of(input, offset),
        column: offset - line_start + 1,
        doc: Box::new(DocRef {
            index,
            line: split::line_of(input, start),
            kind: sniffed.kind,
            namespace: sniffed.namespace,
            name: sniffed.name,
            source: sniffed.source,
        }),
    }
}

/// The result of a rewrite.
#[derive(Debug, Clone, PartialEq)]
pub struct Rewritten {
    /// The edits that were applied.
    pub edits: Vec<Edit>,
    /// Indices of the documents whose text changed.
    pub changed: Vec<usize>,
    /// The whole output stream.
    pub output: Vec<u8>,
}

/// Plans the edits for `stream` given the cluster state (see [`LiveState`]) and applies them.
/// Pure. Without `live` (offline) nothing changes.
pub fn rewrite(stream: &Stream, live: Option<&LiveState>) -> Result<Rewritten, ManifestError> {
    let edits = edits_for(stream, live)?;
    stream.apply(&edits)
}

fn edits_for(stream: &Stream, live: Option<&LiveState>) -> Result<Vec<Edit>, ManifestError> {
    // Without the cluster's state there is nothing safe to change.
    let Some(live) = live else {
        return Ok(Vec::new());
    };
    let on_delete = StatefulSetUpdateStrategy {
        type_: Some("OnDelete".into()),
        rolling_update: None,
    };
    let mut edits = Vec::new();
    for z in stream.zookeepers() {
        if z.update_strategy.as_ref() != Some(&on_delete) {
            edits.push(z.set_update_strategy(&on_delete));
        }
        let declared = live.ensembles.get(&z.name);
        if let Some(d) = declared {
            if z.replicas != Some(d.replicas) {
                edits.push(z.set_replicas(d.replicas));
            }
            if z.servers_env != d.servers_env {
                edits.push(z.set_servers_env(d.servers_env.clone()));
            }
        }
        // zkscale's own annotations: its value, or none (a fresh install has none yet),
        // whatever the chart wrote.
        let chart = stream.documents()[z.doc_index].value();
        for key in OWNED_ANNOTATIONS {
            let want = declared.and_then(|d| d.owned(key));
            if annotation(chart, key) == want {
                continue;
            }
            edits.push(match want {
                Some(v) => z.set_annotation(key, v),
                None => z.remove_annotation(key),
            });
        }
    }
    Ok(edits)
}

/// `metadata.annotations[key]` of a parsed document, when it is a string.
fn annotation<'v>(doc: Option<&'v Value>, key: &str) -> Option<&'v str> {
    zookeeper::str_at(doc?, &["metadata", "annotations", key])
}

/// The owned annotations (see [`OWNED_ANNOTATIONS`]) the chart's own StatefulSet `z` carries:
/// the post-renderer replaces them with zkscale's values and says so (by key only: the
/// values are the chart's, unchecked).
pub fn chart_owned_annotations(stream: &Stream, z: &ZkStatefulSet) -> Vec<&'static str> {
    let doc = stream.documents()[z.doc_index].value();
    OWNED_ANNOTATIONS
        .into_iter()
        .filter(|k| {
            doc.and_then(|d| d.get("metadata"))
                .and_then(|m| m.get("annotations"))
                .and_then(|a| a.get(*k))
                .is_some()
        })
        .collect()
}

/// Options of [`post_render`].
#[derive(Debug, Clone, Default)]
pub struct PostRenderOptions<'a> {
    /// The cluster's state; `None` for `--offline`.
    pub live: Option<&'a LiveState>,
    /// Turn [`Warning`]s into errors.
    pub strict: bool,
    /// Skip the syntax check of documents that cannot be ZooKeeper objects
    /// (see [`ParseOptions::check_syntax`]).
    pub skip_syntax_check: bool,
}

/// What [`post_render_report`] gives: the output and what is worth telling the user.
#[derive(Debug, Clone, PartialEq)]
pub struct PostRenderReport {
    pub output: Vec<u8>,
    pub warnings: Vec<Warning>,
    /// Indices of the documents that were rewritten.
    pub changed: Vec<usize>,
}

/// The Helm post-renderer: the whole output stream, or an error and no output at all.
pub fn post_render(input: &[u8], opts: &PostRenderOptions) -> Result<Vec<u8>, ManifestError> {
    post_render_report(input, opts).map(|r| r.output)
}

/// [`post_render`] that also returns the warnings (for the binary to print on stderr).
pub fn post_render_report(
    input: &[u8],
    opts: &PostRenderOptions,
) -> Result<PostRenderReport, ManifestError> {
    let run = run_post_render(input, opts)?;
    Ok(PostRenderReport {
        output: run.output.unwrap_or_else(|| input.to_vec()),
        warnings: run.warnings,
        changed: run.changed,
    })
}

/// [`post_render_report`] taking the input by value: when nothing changes, the input buffer
/// itself is the output (no copy: peak memory stays near one input size plus parsing).
/// What the binary calls.
pub fn post_render_owned(
    input: Vec<u8>,
    opts: &PostRenderOptions,
) -> Result<PostRenderReport, ManifestError> {
    let run = run_post_render(&input, opts)?;
    Ok(PostRenderReport {
        output: run.output.unwrap_or(input),
        warnings: run.warnings,
        changed: run.changed,
    })
}

struct Run {
    /// `None`: the output is the input.
    output: Option<Vec<u8>>,
    warnings: Vec<Warning>,
    changed: Vec<usize>,
}

fn run_post_render(input: &[u8], opts: &PostRenderOptions) -> Result<Run, ManifestError> {
    let parse_opts = ParseOptions {
        check_syntax: !opts.skip_syntax_check,
    };
    let stream = Stream::parse_with(input, &parse_opts)?;
    if opts.strict {
        if let Some(Warning::ReplicasMismatch {
            doc,
            replicas,
            servers,
        }) = stream.warnings().first()
        {
            return Err(ManifestError::ReplicasMismatch {
                doc: doc.clone().into(),
                replicas: *replicas,
                servers: *servers,
            });
        }
    }
    let edits = edits_for(&stream, opts.live)?;
    let replaced = stream.rewrite_docs(&edits)?;
    let output = stream.assemble(&replaced);
    Ok(Run {
        output,
        changed: replaced.into_keys().collect(),
        warnings: stream.warnings,
    })
}

/// The same recogniser for a live object read from the API server, so the kubectl plugin and the
/// post-renderer agree on what a bitnami ZooKeeper StatefulSet is.
pub fn recognise_live(
    sts: &k8s_openapi::api::apps::v1::StatefulSet,
) -> Result<Option<ZkStatefulSet>, ManifestError> {
    let doc = || DocRef {
        kind: Some("StatefulSet".into()),
        namespace: sts.metadata.namespace.clone(),
        name: sts.metadata.name.clone(),
        source: Some("the cluster".into()),
        ..DocRef::default()
    };
    let mut value = serde_yaml::to_value(sts).map_err(|e| ManifestError::Yaml {
        doc: doc().into(),
        message: e.to_string(),
    })?;
    // The API omits these on read; the recogniser expects a manifest's shape.
    if let Value::Mapping(m) = &mut value {
        m.insert("apiVersion".into(), "apps/v1".into());
        m.insert("kind".into(), "StatefulSet".into());
    }
    match zookeeper::inspect(0, &value, doc)? {
        zookeeper::Found::StatefulSet(z) => Ok(Some(*z)),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonptr::PointerBuf;

    const SERVERS: &str = "zk-0.zk-hl:2888:3888::1 zk-1.zk-hl:2888:3888::2 zk-2.zk-hl:2888:3888::3";

    fn sts(extra_labels: &str, env: &str) -> String {
        format!(
            "---\n# Source: zookeeper/templates/statefulset.yaml\napiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: zk\n  namespace: ns\n  labels:\n    app.kubernetes.io/name: zookeeper\n{extra_labels}spec:\n  replicas: 3\n  template:\n    spec:\n      containers:\n        - name: zookeeper\n          env:\n{env}"
        )
    }

    fn servers_env(value: &str) -> String {
        format!("            - name: ZOO_SERVERS\n              value: {value}\n")
    }

    const CHART: &str = "    helm.sh/chart: zookeeper-13.7.4\n";

    fn ptr(s: &str) -> PointerBuf {
        PointerBuf::parse(s).unwrap()
    }

    #[test]
    fn owned_input_is_returned_without_a_copy() {
        let text = sts(CHART, &servers_env(SERVERS)).into_bytes();
        let (ptr, len) = (text.as_ptr(), text.len());
        let report = post_render_owned(text, &PostRenderOptions::default()).unwrap();
        assert_eq!((report.output.as_ptr(), report.output.len()), (ptr, len));
    }

    #[test]
    fn large_streams_report_the_first_error_in_stream_order() {
        // Big enough for the parallel path; errors in two documents far apart.
        let filler = format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: f\ndata:\n  x: |\n{}",
            "    0123456789012345678901234567890123456789\n".repeat(200)
        );
        let bad = "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bad\ndata: [\n";
        let mut text = String::new();
        for i in 0..200 {
            text.push_str(if i == 40 || i == 180 { bad } else { &filler });
        }
        assert!(text.len() > PARALLEL_MIN_BYTES);
        let check = ParseOptions { check_syntax: true };
        let err = Stream::parse_with(text.as_bytes(), &check).unwrap_err();
        assert_eq!(err.doc().map(|d| d.index), Some(40), "{err}");
        text = text.replace(bad, &filler);
        assert_eq!(
            Stream::parse(text.as_bytes()).unwrap().documents().len(),
            200
        );
    }

    #[test]
    fn finds_statefulset_and_passes_through() {
        let text = sts(CHART, &servers_env(SERVERS));
        let stream = Stream::parse(text.as_bytes()).unwrap();
        assert_eq!(stream.zookeepers().len(), 1);
        assert_eq!(stream.zookeepers()[0].servers.members().len(), 3);
        assert_eq!(rewrite(&stream, None).unwrap().output, text.as_bytes());
    }

    /// Issue 23, defect 4: zkscale's own annotations in a chart's StatefulSet never reach the
    /// output: a fresh install carries none, a live ensemble zkscale's values (the live
    /// operation in flight, the preview's pending note), whatever the chart wrote.
    #[test]
    fn chart_supplied_zkscale_annotations_are_replaced_by_zkscale_values() {
        let planted = format!(
            "  annotations:\n    {OPERATION_ANNOTATION}: '{{\"target\":4,\"step\":\"3→4\"}}'\n    \
             {PENDING_ANNOTATION}: stale plan\n    {STATUS_ANNOTATION}: 'ok: 9 member(s)'\n    \
             zkscale.io/allow-unsafe: a person's reason\n    other: kept\n"
        );
        let text = sts(CHART, &servers_env(SERVERS))
            .replace("  namespace: ns\n", &format!("  namespace: ns\n{planted}"));
        let stream = Stream::parse(text.as_bytes()).unwrap();
        let z = &stream.zookeepers()[0];
        assert_eq!(
            chart_owned_annotations(&stream, z),
            OWNED_ANNOTATIONS.to_vec()
        );
        let annotations = |live: &LiveState| -> BTreeMap<String, String> {
            let out = rewrite(&stream, Some(live)).unwrap().output;
            let again = Stream::parse(&out).unwrap();
            let v = again.documents()[0].value().unwrap().clone();
            serde_yaml::from_value(v["metadata"]["annotations"].clone()).unwrap()
        };
        // A fresh install (nothing live): none of zkscale's; the others untouched.
        let fresh = annotations(&LiveState::default());
        assert!(
            OWNED_ANNOTATIONS.iter().all(|k| !fresh.contains_key(*k)),
            "{fresh:?}"
        );
        assert_eq!(fresh["other"], "kept");
        assert_eq!(fresh["zkscale.io/allow-unsafe"], "a person's reason");
        // A live ensemble, nothing in flight, nothing pending: none of them either.
        let settled = Declared::live(3, SERVERS);
        let ann = annotations(&LiveState {
            ensembles: [("zk".to_string(), settled.clone())].into(),
        });
        assert!(
            OWNED_ANNOTATIONS.iter().all(|k| !ann.contains_key(*k)),
            "{ann:?}"
        );
        // A step in flight (live operation) and a preview's note: exactly zkscale's values.
        let op = r#"{"target":5,"step":"3→4","holder":"run-1"}"#;
        let declared = Declared {
            pending: Some("3 → 5 member(s)".into()),
            ..settled.clone().with_operation(Some(op))
        };
        let ann = annotations(&LiveState {
            ensembles: [("zk".to_string(), declared)].into(),
        });
        assert_eq!(ann[OPERATION_ANNOTATION], op);
        assert_eq!(ann[PENDING_ANNOTATION], "3 → 5 member(s)");
        assert!(!ann.contains_key(STATUS_ANNOTATION), "{ann:?}");
        // Already zkscale's values: nothing to change.
        let clean = sts(CHART, &servers_env(SERVERS));
        let stream = Stream::parse(clean.as_bytes()).unwrap();
        assert!(chart_owned_annotations(&stream, &stream.zookeepers()[0]).is_empty());
        let r = rewrite(
            &stream,
            Some(&LiveState {
                ensembles: [("zk".to_string(), settled)].into(),
            }),
        )
        .unwrap();
        assert!(
            r.edits
                .iter()
                .all(|e| !e.pointer.to_string().contains("annotations")),
            "{:?}",
            r.edits
        );
    }

    #[test]
    fn live_state_declares_size_servers_and_on_delete() {
        let text = sts(CHART, &servers_env(SERVERS));
        let stream = Stream::parse(text.as_bytes()).unwrap();
        // A fresh install: only OnDelete.
        let fresh = rewrite(&stream, Some(&LiveState::default())).unwrap();
        let out = Stream::parse(&fresh.output).unwrap();
        let z = &out.zookeepers()[0];
        assert_eq!(
            z.update_strategy.as_ref().unwrap().type_.as_deref(),
            Some("OnDelete")
        );
        assert_eq!((z.replicas, z.servers_env.as_str()), (Some(3), SERVERS));
        // An upgrade: the live size and list, whatever the chart rendered.
        let live_env = "zk-0.zk-hl:2888:3888::1 zk-1.zk-hl:2888:3888::2 ";
        let live = LiveState {
            ensembles: [("zk".to_string(), Declared::live(2, live_env))].into(),
        };
        let r = rewrite(&stream, Some(&live)).unwrap();
        assert_eq!(r.changed, [0]);
        let out = Stream::parse(&r.output).unwrap();
        let z = &out.zookeepers()[0];
        assert_eq!((z.replicas, z.servers_env.as_str()), (Some(2), live_env));
        // Applying it again changes nothing more: the output is a fixed point.
        assert_eq!(rewrite(&out, Some(&live)).unwrap().output, r.output);
    }

    #[test]
    fn zookeeper_label_without_chart_or_servers_is_not_ours() {
        let text = sts("", "            - name: OTHER\n              value: x\n");
        let stream = Stream::parse(text.as_bytes()).unwrap();
        assert!(stream.zookeepers().is_empty());
        let err = Stream::parse(
            sts(CHART, "            - name: OTHER\n              value: x\n").as_bytes(),
        )
        .unwrap_err();
        assert!(matches!(err, ManifestError::MissingServers { .. }), "{err}");
    }

    /// Recognition goes by the image's contract: a renamed chart (`nameOverride`, an alias that
    /// also rewrites `helm.sh/chart`), or no labels at all, is still a ZooKeeper ensemble.
    #[test]
    fn recognised_by_zoo_servers_whatever_the_labels() {
        let env = servers_env(SERVERS);
        for labels in [
            "",
            "    app.kubernetes.io/name: coord\n",
            "    app.kubernetes.io/name: coordination\n    helm.sh/chart: coordination-13.8.8\n",
        ] {
            let text = sts(labels, &env).replace("    app.kubernetes.io/name: zookeeper\n", "");
            let text = if labels.is_empty() {
                text.replace("  labels:\n", "")
            } else {
                text
            };
            let stream = Stream::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(stream.zookeepers().len(), 1, "{text}");
            assert_eq!(stream.zookeepers()[0].servers.members().len(), 3);
        }
    }

    /// `ZOO_SERVERS` that may hide in an `envFrom` source, or two containers that disagree:
    /// refused, never passed through as "not ours".
    #[test]
    fn servers_out_of_sight_or_in_conflict_are_refused() {
        let hidden = sts(
            "",
            "            - name: ZOO_PORT_NUMBER\n              value: \"2181\"\n          envFrom:\n            - configMapRef: {name: zk-env}\n",
        );
        let err = Stream::parse(hidden.as_bytes()).unwrap_err();
        assert!(matches!(err, ManifestError::ServersHidden { .. }), "{err}");
        assert!(err.to_string().contains("envFrom"), "{err}");
        // envFrom without any ZOO_ variable is someone else's StatefulSet.
        let other = sts(
            "",
            "            - name: PORT\n              value: \"1\"\n          envFrom:\n            - configMapRef: {name: x}\n",
        );
        assert!(Stream::parse(other.as_bytes())
            .unwrap()
            .zookeepers()
            .is_empty());

        let two = format!(
            "{}        - name: exporter\n          env:\n{}",
            sts("", &servers_env(SERVERS)),
            servers_env("a:1:2::1")
        );
        let err = Stream::parse(two.as_bytes()).unwrap_err();
        assert!(
            matches!(err, ManifestError::ConflictingServers { .. }),
            "{err}"
        );
        // The same list twice is one ensemble, read from the first container.
        let same = format!(
            "{}        - name: exporter\n          env:\n{}",
            sts("", &servers_env(SERVERS)),
            servers_env(SERVERS)
        );
        let stream = Stream::parse(same.as_bytes()).unwrap();
        assert_eq!(stream.zookeepers()[0].container_index, 0);
    }

    /// A kind or env name spelled with escapes is read by Kubernetes as the plain one, so the
    /// candidate filter must not skip it.
    #[test]
    fn escaped_spellings_are_still_candidates() {
        let text = sts("", &servers_env(SERVERS))
            .replace("kind: StatefulSet", "kind: \"State\\x66ulSet\"")
            .replace("- name: ZOO_SERVERS", "- name: \"ZOO\\u005FSERVERS\"");
        assert!(!text.contains("StatefulSet") && !text.contains("ZOO_SERVERS"));
        let stream = Stream::parse(text.as_bytes()).unwrap();
        assert_eq!(stream.zookeepers().len(), 1, "{text}");
    }

    #[test]
    fn servers_from_value_from_are_refused() {
        let env = "            - name: ZOO_SERVERS\n              valueFrom:\n                configMapKeyRef: {name: a, key: b}\n";
        let err = Stream::parse(sts(CHART, env).as_bytes()).unwrap_err();
        assert!(
            matches!(err, ManifestError::ServersNotLiteral { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("StatefulSet ns/zk"), "{err}");
    }

    #[test]
    fn last_duplicate_env_entry_wins() {
        let env = format!("{}{}", servers_env("bogus"), servers_env(SERVERS));
        let text = sts(CHART, &env);
        let stream = Stream::parse(text.as_bytes()).unwrap();
        let zk = &stream.zookeepers()[0];
        assert_eq!(zk.servers_env_index, 1);
        assert_eq!(
            zk.servers_pointer().to_string(),
            "/spec/template/spec/containers/0/env/1/value"
        );
    }

    #[test]
    fn bad_replicas_are_refused() {
        let text = sts(CHART, &servers_env(SERVERS)).replace("replicas: 3", "replicas: \"3\"");
        let err = Stream::parse(text.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("/spec/replicas"), "{err}");
    }

    #[test]
    fn replicas_mismatch_warns_or_refuses_when_strict() {
        let text = sts(CHART, &servers_env(SERVERS)).replace("replicas: 3", "replicas: 4");
        let report = post_render_report(text.as_bytes(), &PostRenderOptions::default()).unwrap();
        assert_eq!(report.output, text.as_bytes());
        assert!(matches!(
            report.warnings[..],
            [Warning::ReplicasMismatch {
                replicas: 4,
                servers: 3,
                ..
            }]
        ));
        let strict = PostRenderOptions {
            strict: true,
            ..Default::default()
        };
        let err = post_render(text.as_bytes(), &strict).unwrap_err();
        assert!(
            matches!(err, ManifestError::ReplicasMismatch { .. }),
            "{err}"
        );
        // Scaled to zero: nothing to say.
        let zero = sts(CHART, &servers_env(SERVERS)).replace("replicas: 3", "replicas: 0");
        assert!(Stream::parse(zero.as_bytes())
            .unwrap()
            .warnings()
            .is_empty());
    }

    #[test]
    fn duplicate_statefulsets_are_refused() {
        let one = sts(CHART, &servers_env(SERVERS));
        let err = Stream::parse(format!("{one}{one}").as_bytes()).unwrap_err();
        assert!(
            matches!(err, ManifestError::DuplicateStatefulSet { .. }),
            "{err}"
        );
        let other_ns = one.replace("namespace: ns", "namespace: ns2");
        assert_eq!(
            Stream::parse(format!("{one}{other_ns}").as_bytes())
                .unwrap()
                .zookeepers()
                .len(),
            2
        );
    }

    #[test]
    fn malformed_unrelated_document_is_reported_when_checked() {
        let bad = "---\n# Source: x/templates/cm.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  a: [1\n";
        let text = format!("{}{bad}", sts(CHART, &servers_env(SERVERS)));
        let check = ParseOptions { check_syntax: true };
        let err = Stream::parse_with(text.as_bytes(), &check).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with(
                "document 2 (line 20, ConfigMap cm, from x/templates/cm.yaml): malformed YAML"
            ),
            "{msg}"
        );
        assert!(msg.contains("flow sequence at line 27 column 6"), "{msg}");
        // By default only what may be ours is parsed (Helm parses the rest before applying).
        assert!(Stream::parse(text.as_bytes()).is_ok());
    }

    #[test]
    fn rewrite_keeps_crlf_and_header() {
        let text = sts(CHART, &servers_env(SERVERS)).replace('\n', "\r\n");
        let stream = Stream::parse(text.as_bytes()).unwrap();
        let out = stream
            .apply(&[stream.zookeepers()[0].set_replicas(5)])
            .unwrap()
            .output;
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.starts_with(
                "---\r\n# Source: zookeeper/templates/statefulset.yaml\r\napiVersion: apps/v1\r\n"
            ),
            "{out}"
        );
        assert!(!out.replace("\r\n", "").contains('\n'));
        assert!(out.contains("  replicas: 5\r\n"));
    }

    #[test]
    fn rewrite_of_first_document_without_marker() {
        let text = sts(CHART, &servers_env(SERVERS)).replacen("---\n", "", 1);
        let tail = "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n";
        let text = format!("{text}{tail}");
        let stream = Stream::parse(text.as_bytes()).unwrap();
        let out = stream
            .apply(&[stream.zookeepers()[0].set_replicas(1)])
            .unwrap()
            .output;
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.starts_with(
                "# Source: zookeeper/templates/statefulset.yaml\napiVersion: apps/v1\n"
            ),
            "{out}"
        );
        assert!(out.ends_with(tail));
    }

    #[test]
    fn rewrite_refuses_yaml11_ambiguous_documents() {
        let env = format!(
            "{}            - name: MODE\n              value: 0644\n",
            servers_env(SERVERS)
        );
        let text = sts(CHART, &env);
        let stream = Stream::parse(text.as_bytes()).unwrap();
        let err = stream
            .apply(&[stream.zookeepers()[0].set_replicas(5)])
            .unwrap_err();
        assert!(
            matches!(err, ManifestError::AmbiguousScalar { line: 21, .. }),
            "{err}"
        );
        // Untouched, the same document passes through.
        assert_eq!(stream.apply(&[]).unwrap().output, text.as_bytes());
    }

    #[test]
    fn rewritten_statefulset_is_checked_again() {
        let text = sts(CHART, &servers_env(SERVERS));
        let stream = Stream::parse(text.as_bytes()).unwrap();
        let zk = &stream.zookeepers()[0];
        let err = stream
            .apply(&[zk.set_servers_env("a:1:2::1 b:1:2::1")])
            .unwrap_err();
        assert!(
            matches!(err, ManifestError::DuplicateServerId { .. }),
            "{err}"
        );
        let err = stream
            .apply(&[Edit::set(zk.doc_index, ptr("/metadata/name"), "other")])
            .unwrap_err();
        assert!(err.to_string().contains("identity changed"), "{err}");
    }

    #[test]
    fn edits_on_missing_or_empty_documents() {
        let text = format!("---\n# nothing\n{}", sts(CHART, &servers_env(SERVERS)));
        let stream = Stream::parse(text.as_bytes()).unwrap();
        assert!(stream.documents()[0].is_empty());
        let err = stream.apply(&[Edit::set(0, ptr("/a"), 1)]).unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
        let err = stream.apply(&[Edit::set(7, ptr("/a"), 1)]).unwrap_err();
        assert!(
            matches!(err, ManifestError::NoSuchDocument { index: 7, count: 2 }),
            "{err}"
        );
    }

    #[test]
    fn edits_can_target_unparsed_documents() {
        let cm = "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  k: v\n";
        let stream = Stream::parse(cm.as_bytes()).unwrap();
        assert!(stream.documents()[0].value().is_none());
        let out = stream
            .apply(&[Edit::set(0, ptr("/data/k"), "w")])
            .unwrap()
            .output;
        assert_eq!(String::from_utf8(out).unwrap(), cm.replace("k: v", "k: w"));
    }

    #[test]
    fn scripts_config_map_gives_min_server_id() {
        let cm = "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: zk-scripts\n  namespace: ns\ndata:\n  setup.sh: |-\n    export ZOO_SERVER_ID=\"$((ORD + 7 ))\"\n";
        let text = format!("{cm}{}", sts(CHART, &servers_env(SERVERS)));
        let stream = Stream::parse(text.as_bytes()).unwrap();
        assert_eq!(stream.zookeepers()[0].min_server_id, Some(7));
        assert_eq!(stream.zookeepers()[0].scripts_doc_index, Some(0));
        assert_eq!(stream.scripts_config_maps().len(), 1);
    }

    #[test]
    fn not_utf8_names_offset_and_document() {
        let mut input = sts(CHART, &servers_env(SERVERS)).into_bytes();
        input.extend_from_slice(
            b"---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  k: \xff\n",
        );
        let err = Stream::parse(&input).unwrap_err();
        let ManifestError::NotUtf8 {
            offset, byte, doc, ..
        } = &err
        else {
            panic!("{err}")
        };
        assert_eq!((*offset, *byte), (input.len() - 2, 0xff));
        assert_eq!(
            (doc.index, doc.kind.as_deref(), doc.name.as_deref()),
            (1, Some("ConfigMap"), Some("cm"))
        );
    }
}
