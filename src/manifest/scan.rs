//! Line-level looks at block-style YAML text, for what serde_yaml does not tell: which plain
//! values YAML 1.1 would read differently, and where block scalars' content lines are.
//!
//! These are not parsers. Their users are built so that a misreading is harmless: the
//! ambiguity finder only ever makes the rewrite refuse a document, and a skeleton that fails
//! the syntax check is re-checked in full.

/// One content line of block-style YAML: after any `- ` indicators and a `key:`.
pub(crate) struct LineValue<'t> {
    /// Column of the node a block scalar starting on this line belongs to: the key's, or for
    /// `- |` the last dash's. Its content lines are indented deeper.
    pub owner: usize,
    /// The value part, trimmed at the end (comments still attached).
    pub value: &'t str,
}

/// Splits a line (without its line break) into indentation and value; `None` for blank lines,
/// comments, document markers and directives.
pub(crate) fn line_value(line: &str) -> Option<LineValue<'_>> {
    let line = line.trim_end_matches('\r');
    let indent = line.len() - line.trim_start_matches(' ').len();
    let mut rest = line[indent..].trim_end();
    if rest.is_empty()
        || rest.starts_with(['#', '%'])
        || rest.starts_with("---")
        || rest.starts_with("...")
    {
        return None;
    }
    let mut col = indent;
    let mut owner = indent;
    while rest == "-" || rest.starts_with("- ") {
        let after = rest[1..].trim_start_matches(' ');
        owner = col;
        col += rest.len() - after.len();
        rest = after;
    }
    let value = match key_end(rest) {
        Some(end) => {
            owner = col;
            rest[end + 1..].trim_start_matches(' ')
        }
        None => rest,
    };
    Some(LineValue { owner, value })
}

/// Whether `value` opens a block scalar, and if so whether it has an explicit indentation
/// indicator (`|2`): `Some(false)` for `|`, `>-`, `|+ # comment`, `Some(true)` for `|2-`.
fn block_header(value: &str) -> Option<bool> {
    let rest = value.strip_prefix(['|', '>'])?;
    let indicators = rest.split(" #").next().unwrap_or("").trim_end();
    indicators
        .chars()
        .all(|c| c == '-' || c == '+' || c.is_ascii_digit())
        .then(|| indicators.chars().any(|c| c.is_ascii_digit()))
}

/// The first plain (unquoted) value in `text` that YAML 1.1 and YAML 1.2 read differently, as
/// (0-based line index in `text`, the value). Looks at block-style `key: value` and `- value`
/// lines, skips comments, quoted and flow values and the contents of block scalars.
pub(crate) fn first_ambiguous_scalar(text: &str) -> Option<(usize, String)> {
    // Lines indented deeper than this belong to a block scalar.
    let mut block_parent: Option<usize> = None;
    for (i, line) in text.lines().enumerate() {
        let l = line.trim_end_matches('\r');
        if let Some(parent) = block_parent {
            let indent = l.len() - l.trim_start_matches(' ').len();
            if l.trim().is_empty() || indent > parent {
                continue;
            }
            block_parent = None;
        }
        // Merge keys are YAML 1.1 only: serde_yaml keeps `<<` as a plain key.
        let key = l.trim_start().trim_start_matches("- ").trim_start();
        if key.starts_with("<<:") || key == "<<" {
            return Some((i, "<<".to_string()));
        }
        let Some(LineValue { owner, value, .. }) = line_value(l) else {
            continue;
        };
        if value.starts_with(['"', '\'', '[', '{', '&', '*', '!']) {
            continue;
        }
        if value.starts_with(['|', '>']) {
            block_parent = Some(owner);
            continue;
        }
        let value = match value.find(" #") {
            Some(j) => value[..j].trim_end(),
            None => value,
        };
        if is_yaml11_ambiguous(value) {
            return Some((i, value.to_string()));
        }
    }
    None
}

/// `text` with the content lines of its block scalars blanked (line breaks kept, so line
/// numbers stay), for a fast syntax check of documents that are mostly block scalars (data
/// files in ConfigMaps): libyaml spends its time reading scalar content, which any printable
/// text is valid as. `None` when there is nothing to blank. Conservative: only lines at or
/// deeper than the content indentation set by the scalar's first line are blanked, scalars
/// with an explicit indentation indicator are left alone.
pub(crate) fn without_block_scalars(text: &str) -> Option<String> {
    let mut out: Option<String> = None;
    // (owner column, content indentation once known)
    let mut block: Option<(usize, Option<usize>)> = None;
    let mut copied = 0; // bytes of `text` already accounted for in `out`
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        let start = pos;
        pos += line.len();
        let content = line.trim_end_matches(['\n', '\r']);
        if let Some((owner, content_indent)) = &mut block {
            let indent = content.len() - content.trim_start_matches(' ').len();
            let blank_line = content.trim().is_empty();
            let inside =
                blank_line || (indent > *owner && indent >= *content_indent.get_or_insert(indent));
            if inside {
                let out = out.get_or_insert_with(|| String::with_capacity(text.len() / 8));
                out.push_str(&text[copied..start]);
                out.push_str(&line[content.len()..]); // just the line break
                copied = pos;
                continue;
            }
            block = None;
        }
        if let Some(lv) = line_value(content) {
            if block_header(lv.value) == Some(false) {
                block = Some((lv.owner, None));
            }
        }
    }
    let mut out = out?;
    out.push_str(&text[copied..]);
    Some(out)
}

/// Position of the `:` that ends a block mapping key at the start of `s`, if `s` is a
/// `key: value` or `key:` line.
fn key_end(s: &str) -> Option<usize> {
    if let Some(q) = s.chars().next().filter(|c| *c == '"' || *c == '\'') {
        let close = s[1..].find(q)? + 1;
        let after = &s[close + 1..];
        let trimmed = after.trim_start_matches(' ');
        return (trimmed.starts_with(':')
            && matches!(trimmed.as_bytes().get(1), None | Some(b' ')))
        .then(|| close + 1 + (after.len() - trimmed.len()));
    }
    let comment = s.find(" #").unwrap_or(s.len());
    let s = &s[..comment];
    s.find(": ")
        .or_else(|| s.ends_with(':').then(|| s.len() - 1))
}

pub(crate) fn is_yaml11_ambiguous(v: &str) -> bool {
    const BOOLS: [&str; 16] = [
        "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off",
        "OFF",
    ];
    if BOOLS.contains(&v) {
        return true;
    }
    let body = v.strip_prefix(['+', '-']).unwrap_or(v);
    let b = body.as_bytes();
    if !b.first().is_some_and(u8::is_ascii_digit) {
        return false;
    }
    // 1.1 octal (`0644`) or a leading-zero decimal Go reads as a number.
    if b.len() > 1 && b[0] == b'0' && (b[1].is_ascii_digit() || b[1] == b'_') {
        return true;
    }
    // Digit-group underscores: numbers in 1.1, strings for serde_yaml.
    if body.contains('_')
        && b.iter()
            .all(|c| c.is_ascii_hexdigit() || b"xXoObB_.".contains(c))
    {
        return true;
    }
    // 1.1 sexagesimal (`1:30`).
    if body.contains(':') && b.iter().all(|c| c.is_ascii_digit() || b":._".contains(c)) {
        return true;
    }
    // 1.1 timestamps (`2001-12-14`), which Kubernetes turns into RFC 3339 strings.
    b.len() >= 8
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5].is_ascii_digit()
        && body[5..].contains('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_ambiguous_plain_scalars() {
        assert_eq!(
            first_ambiguous_scalar("a: 1\nb: no\n"),
            Some((1, "no".into()))
        );
        assert_eq!(
            first_ambiguous_scalar("volumes:\n  - configMap:\n      defaultMode: 0755 # rwx\n"),
            Some((2, "0755".into()))
        );
        assert_eq!(first_ambiguous_scalar("- - Off\n"), Some((0, "Off".into())));
        assert_eq!(
            first_ambiguous_scalar("t: 1:30\n"),
            Some((0, "1:30".into()))
        );
        assert_eq!(
            first_ambiguous_scalar("d: 2001-12-14\n"),
            Some((0, "2001-12-14".into()))
        );
        assert_eq!(
            first_ambiguous_scalar("n: 1_000\n"),
            Some((0, "1_000".into()))
        );
        assert_eq!(
            first_ambiguous_scalar("\"k\": yes\n"),
            Some((0, "yes".into()))
        );
    }

    #[test]
    fn ignores_quoted_comments_and_block_scalars() {
        let text = "# no\na: \"no\"\nb: 'yes'\nc: [no]\nscript: |\n  no\n  0755\nd: 0.5\ne: -1\nf: 0\ng: 0x1F\nh: 3.9.3\ni: true\nj: \"a: no\"\nk: x # no\nl: docker.io/bitnami/zookeeper:3.9.3-debian-12-r8\n- >-\n  on\nm: coord-0.coord-headless:2888:3888::10\n";
        assert_eq!(first_ambiguous_scalar(text), None);
    }

    #[test]
    fn merge_keys_are_ambiguous() {
        let text = "base: &b\n  x: 1\nobj:\n  <<: *b\n  y: 2\n";
        assert_eq!(first_ambiguous_scalar(text), Some((3, "<<".into())));
    }

    #[test]
    fn skeleton_blanks_block_scalar_content_only() {
        let text = "---\napiVersion: v1\nkind: ConfigMap\ndata:\n  a.json: |\n    {\"k\": [1,\n\n     2]}\n  b: >-\n    folded: text\n  c: plain\nlist:\n  - |+\n    item\n  - x\n";
        let skel = without_block_scalars(text).unwrap();
        assert_eq!(
            skel,
            "---\napiVersion: v1\nkind: ConfigMap\ndata:\n  a.json: |\n\n\n\n  b: >-\n\n  c: plain\nlist:\n  - |+\n\n  - x\n"
        );
        assert_eq!(skel.lines().count(), text.lines().count());
        assert!(without_block_scalars("a: 1\nb: \"|\"\n").is_none());
    }

    #[test]
    fn skeleton_keeps_explicit_indentation_and_less_indented_lines() {
        let text = "a: |2\n    x\nb: |\n    deep\n   less\nc: 1\n";
        // `|2` untouched; after `deep` sets the indentation, `less` is not content and stays.
        assert_eq!(
            without_block_scalars(text).unwrap(),
            "a: |2\n    x\nb: |\n\n   less\nc: 1\n"
        );
    }

    #[test]
    fn skeleton_keeps_crlf() {
        assert_eq!(
            without_block_scalars("a: |\r\n  x\r\nb: 1\r\n").unwrap(),
            "a: |\r\n\r\nb: 1\r\n"
        );
    }
}
