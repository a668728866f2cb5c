//! Splitting a multi-document YAML stream into the byte ranges of its documents, without
//! parsing it.
//!
//! A document starts at a line that begins with the directives-end marker `---` followed by
//! a blank, a line break or the end of the input (YAML 1.2 §9.1: no scalar may contain such a
//! line at column 0, so this split is exact for any well-formed stream). The text before the
//! first marker, when there is any, is a document of its own (Helm 4 hands the post-renderer
//! a stream without a leading `---`). Every byte of the input belongs to exactly one range,
//! so concatenating the ranges gives back the input byte for byte.

use std::ops::Range;

const BOM: &str = "\u{feff}";

/// Byte ranges of the documents of `text`, in order, covering it completely.
pub(crate) fn split(text: &str) -> Vec<Range<usize>> {
    let bytes = text.as_bytes();
    let mut starts = Vec::new();
    let first = if text.starts_with(BOM) { BOM.len() } else { 0 };
    if is_marker_at(bytes, first) {
        starts.push(first);
    }
    for (pos, _) in text.match_indices("\n---") {
        if is_marker_at(bytes, pos + 1) {
            starts.push(pos + 1);
        }
    }
    // A document-end marker `...` ends its document: what follows (a directive such as
    // `%YAML 1.1` for the next one, or a bare document) is not part of it.
    let mut ends = text
        .match_indices("\n...")
        .map(|(pos, _)| pos + 1)
        .chain((text[first..].starts_with("...")).then_some(first))
        .filter(|&at| is_end_marker_at(bytes, at))
        .filter_map(|at| text[at..].find('\n').map(|nl| at + nl + 1))
        .filter(|&next| next < text.len())
        .peekable();
    if ends.peek().is_some() {
        starts.extend(ends);
        starts.sort_unstable();
        starts.dedup();
    }
    let mut ranges = Vec::with_capacity(starts.len() + 1);
    // A preamble of only a BOM stays with the first document instead of standing alone.
    let mut prev = 0;
    for (i, &start) in starts.iter().enumerate() {
        if i == 0 && start <= first {
            continue;
        }
        ranges.push(prev..start);
        prev = start;
    }
    if prev < text.len() {
        ranges.push(prev..text.len());
    }
    ranges
}

/// Whether a document-end marker (`...` then blank, line break or end) starts at `pos`.
fn is_end_marker_at(bytes: &[u8], pos: usize) -> bool {
    bytes.get(pos..pos + 3) == Some(b"...")
        && matches!(
            bytes.get(pos + 3),
            None | Some(b' ' | b'\t' | b'\r' | b'\n')
        )
}

/// Whether a document marker (`---` then blank, line break or end) starts at `pos`.
fn is_marker_at(bytes: &[u8], pos: usize) -> bool {
    bytes.get(pos..pos + 3) == Some(b"---")
        && matches!(
            bytes.get(pos + 3),
            None | Some(b' ' | b'\t' | b'\r' | b'\n')
        )
}

/// Where the document's body starts: the bytes before it are the BOM, the `---` line when that
/// line holds nothing but the marker (and a comment), and the blank and comment lines after
/// it, such as Helm's `# Source:` line. `marker_in_body` says the `---` line carries content
/// (e.g. `--- |`), so a rewritten body must bring its own marker.
pub(crate) struct Header {
    pub len: usize,
    pub marker_in_body: bool,
}

pub(crate) fn header(text: &str) -> Header {
    let mut pos = if text.starts_with(BOM) { BOM.len() } else { 0 };
    let mut marker_in_body = false;
    let mut first = true;
    while pos < text.len() {
        let end = text[pos..].find('\n').map_or(text.len(), |i| pos + i + 1);
        let line = &text[pos..end];
        let trimmed = line.trim();
        if first && is_marker_at(text.as_bytes(), pos) {
            let after = line[3..].trim();
            if !(after.is_empty() || after.starts_with('#')) {
                marker_in_body = true;
                break;
            }
        } else if !(trimmed.is_empty() || trimmed.starts_with('#')) {
            break;
        }
        first = false;
        pos = end;
    }
    Header {
        len: pos,
        marker_in_body,
    }
}

/// Whether the document holds no node: only markers, blank lines, comments and directives
/// (`%YAML 1.2` before the first `---` ends up in a "document" of its own).
pub(crate) fn is_empty_doc(text: &str) -> bool {
    let text = text.strip_prefix(BOM).unwrap_or(text);
    text.lines().all(|line| {
        let t = line.trim();
        t.is_empty()
            || t.starts_with('#')
            || t.starts_with('%')
            || t == "---"
            || t == "..."
            || (t.starts_with("--- ") || t.starts_with("---\t") || t.starts_with("... "))
                && t[4..].trim_start().starts_with('#')
    })
}

/// 1-based line number of byte `offset`.
pub(crate) fn line_of(bytes: &[u8], offset: usize) -> usize {
    1 + bytes[..offset.min(bytes.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

/// What a document is, read from its text with a few string looks, for messages about
/// documents that could not be (or were not) parsed: `kind`, `metadata.name`,
/// `metadata.namespace` at their usual block-style places, and the template it came from.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Sniffed {
    pub kind: Option<String>,
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub source: Option<String>,
}

pub(crate) fn sniff(text: &str) -> Sniffed {
    let mut out = Sniffed::default();
    let mut in_metadata = false;
    let mut meta_indent: Option<usize> = None;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        let indent = line.len() - line.trim_start_matches(' ').len();
        let rest = &line[indent..];
        if rest.is_empty() {
            continue;
        }
        if let Some(src) = rest.strip_prefix("# Source:") {
            if out.source.is_none() {
                out.source = Some(src.trim().to_string());
            }
            continue;
        }
        if let Some(v) = rest.strip_prefix("postrenderer.helm.sh/postrender-filename:") {
            out.source = Some(unquote(v));
            continue;
        }
        if rest.starts_with('#') {
            continue;
        }
        if indent == 0 {
            in_metadata = rest.trim_end() == "metadata:";
            meta_indent = None;
            if let Some(v) = rest.strip_prefix("kind:") {
                out.kind.get_or_insert_with(|| unquote(v));
            }
            continue;
        }
        if in_metadata {
            let mi = *meta_indent.get_or_insert(indent);
            if indent != mi {
                continue;
            }
            if let Some(v) = rest.strip_prefix("name:") {
                out.name.get_or_insert_with(|| unquote(v));
            } else if let Some(v) = rest.strip_prefix("namespace:") {
                out.namespace.get_or_insert_with(|| unquote(v));
            }
        }
    }
    out
}

fn unquote(v: &str) -> String {
    let v = v.trim();
    let v = match v.find(" #") {
        Some(i) if !v.starts_with(['"', '\'']) => v[..i].trim_end(),
        _ => v,
    };
    v.trim_matches(|c| c == '"' || c == '\'').to_string()
}

/// Rewrites serde_yaml's `line N` positions, which count from the start of the document's
/// text, into lines of the stream.
/// `message` with libyaml's `at position N` (a byte offset in the document that starts at
/// `doc_start` of `text`) written as `at stream line L column C` instead. `absolute_lines`
/// leaves that line alone: it is already the stream's.
pub(crate) fn position_to_line(message: &str, text: &str, doc_start: usize) -> String {
    let Some(i) = message.find("at position ") else {
        return message.to_string();
    };
    let tail = &message[i + "at position ".len()..];
    let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
    let Ok(n) = tail[..digits].parse::<usize>() else {
        return message.to_string();
    };
    let abs = (doc_start + n).min(text.len());
    let line = line_of(text.as_bytes(), abs);
    let line_start = text[..abs].rfind('\n').map_or(0, |j| j + 1);
    format!(
        "{}at stream line {line} column {}{}",
        &message[..i],
        abs - line_start + 1,
        &tail[digits..]
    )
}

pub(crate) fn absolute_lines(message: &str, first_line: usize) -> String {
    let mut out = String::with_capacity(message.len() + 8);
    let mut rest = message;
    while let Some(i) = rest.find("line ") {
        let (head, tail) = rest.split_at(i + 5);
        out.push_str(head);
        if head.ends_with("stream line ") {
            rest = tail;
            continue;
        }
        let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
        match tail[..digits].parse::<usize>() {
            Ok(n) if digits > 0 => out.push_str(&(n + first_line - 1).to_string()),
            _ => out.push_str(&tail[..digits]),
        }
        rest = &tail[digits..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(text: &str) -> Vec<&str> {
        split(text).into_iter().map(|r| &text[r]).collect()
    }

    #[test]
    fn a_document_end_marker_ends_the_document() {
        let text = "a: 1\n...\n%YAML 1.1\n---\nb: 2\n...\nc: 3\n";
        assert_eq!(
            pieces(text),
            ["a: 1\n...\n", "%YAML 1.1\n", "---\nb: 2\n...\n", "c: 3\n"]
        );
        // `...` inside a line, or followed by text, is not a marker.
        assert_eq!(pieces("a: ...\nb: ...x\n").len(), 1);
        assert_eq!(pieces("...x: 1\n").len(), 1);
    }

    #[test]
    fn splits_helm_template_output() {
        let text = "---\n# Source: a.yaml\nkind: A\n---\n# Source: b.yaml\nkind: B\n";
        assert_eq!(
            pieces(text),
            [
                "---\n# Source: a.yaml\nkind: A\n",
                "---\n# Source: b.yaml\nkind: B\n"
            ]
        );
    }

    #[test]
    fn splits_helm4_stream_without_leading_marker() {
        let text = "kind: A\n---\nkind: B";
        assert_eq!(pieces(text), ["kind: A\n", "---\nkind: B"]);
    }

    #[test]
    fn keeps_empty_documents_and_crlf() {
        let text = "---\r\n---\r\n# only a comment\r\n---\r\nkind: A\r\n";
        let p = pieces(text);
        assert_eq!(
            p,
            [
                "---\r\n",
                "---\r\n# only a comment\r\n",
                "---\r\nkind: A\r\n"
            ]
        );
        assert!(is_empty_doc(p[0]) && is_empty_doc(p[1]) && !is_empty_doc(p[2]));
        assert!(is_empty_doc("%YAML 1.2\n"));
    }

    #[test]
    fn markers_need_column_zero_and_a_blank_after() {
        let text = "a: |\n  ---\n  x\nb: ---x\n----\n--- # c\nc: 1\n";
        assert_eq!(
            pieces(text),
            ["a: |\n  ---\n  x\nb: ---x\n----\n", "--- # c\nc: 1\n"]
        );
    }

    #[test]
    fn bom_stays_with_the_first_document() {
        let text = "\u{feff}---\nkind: A\n---\nkind: B\n";
        assert_eq!(pieces(text), ["\u{feff}---\nkind: A\n", "---\nkind: B\n"]);
        assert_eq!(header(pieces(text)[0]).len, BOM.len() + 4);
    }

    #[test]
    fn empty_and_marker_only_inputs() {
        assert!(pieces("").is_empty());
        assert_eq!(pieces("---"), ["---"]);
        assert_eq!(pieces("\n"), ["\n"]);
    }

    #[test]
    fn concatenation_is_identity() {
        for text in [
            "",
            "a: 1",
            "---\n---\n",
            "x\n---\ny\n---",
            "\u{feff}a: 1\n--- \nb: 2\n...\n",
        ] {
            let joined: String = pieces(text).concat();
            assert_eq!(joined, text);
        }
    }

    #[test]
    fn header_keeps_marker_and_source_comment() {
        let doc = "---\n# Source: x/templates/sts.yaml\n\napiVersion: apps/v1\n";
        let h = header(doc);
        assert_eq!(&doc[..h.len], "---\n# Source: x/templates/sts.yaml\n\n");
        assert!(!h.marker_in_body);
        let h = header("--- {a: 1}\n");
        assert_eq!((h.len, h.marker_in_body), (0, true));
        assert_eq!(header("kind: A\n").len, 0);
    }

    #[test]
    fn sniffs_identity() {
        let doc = "---\n# Source: zookeeper/templates/statefulset.yaml\napiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: coord\n  labels:\n    name: other\n  namespace: \"zk-test\"\nspec:\n  name: nope\n";
        let s = sniff(doc);
        assert_eq!(s.kind.as_deref(), Some("StatefulSet"));
        assert_eq!(s.name.as_deref(), Some("coord"));
        assert_eq!(s.namespace.as_deref(), Some("zk-test"));
        assert_eq!(
            s.source.as_deref(),
            Some("zookeeper/templates/statefulset.yaml")
        );
        let doc = "kind: ConfigMap\nmetadata:\n  name: cm\n  annotations:\n    postrenderer.helm.sh/postrender-filename: 'templates/cm.yaml'\n";
        assert_eq!(sniff(doc).source.as_deref(), Some("templates/cm.yaml"));
    }

    #[test]
    fn rewrites_relative_lines() {
        assert_eq!(
            absolute_lines(
                "did not find expected key at line 3 column 2, while parsing a block mapping at line 1 column 1",
                10
            ),
            "did not find expected key at line 12 column 2, while parsing a block mapping at line 10 column 1"
        );
    }

    #[test]
    fn line_numbers() {
        assert_eq!(line_of(b"a\nb\nc", 0), 1);
        assert_eq!(line_of(b"a\nb\nc", 2), 2);
        assert_eq!(line_of(b"a\nb\nc", 4), 3);
    }
}
