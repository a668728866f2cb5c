//! Writing a rewritten document back as YAML that Kubernetes reads the way we mean it.
//!
//! serde_yaml's own serializer is YAML 1.2: it writes the strings `no`, `yes`, `on`, `off`,
//! `y`, `1_000` unquoted, and Kubernetes (Helm, kubectl: sigs.k8s.io/yaml, YAML 1.1) reads those
//! as booleans and numbers (`value: no` in an env entry is then rejected by the API server).
//! So rewritten documents are written by this small block-style emitter instead: mapping keys
//! in their original order, sequences indented under their key as Helm charts write them,
//! multi-line strings as literal blocks, and every string quoted unless it is plainly a string
//! under YAML 1.1 and 1.2 alike. The result is read back with serde_yaml and must equal the
//! value that was written.
//!
//! The reverse problem exists too: serde_yaml reads a plain `0644` as the string "0644" where
//! Kubernetes reads the octal number 420. `scan::first_ambiguous_scalar` finds such plain values in
//! a document's original text; the rewrite refuses to re-serialize those documents rather than
//! change what they mean.

use serde_yaml::{Mapping, Value};

/// Writes `value` as a YAML document (no `---`), then checks that it reads back as `value`.
pub(crate) fn to_yaml(value: &Value) -> Result<String, String> {
    let mut last_err = String::new();
    for literal_blocks in [true, false] {
        let mut e = Emitter {
            out: String::new(),
            literal_blocks,
        };
        e.root(value)?;
        match serde_yaml::from_str::<Value>(&e.out) {
            Ok(back) if back == *value => return Ok(e.out),
            Ok(_) => last_err = "the written text reads back as a different value".to_string(),
            Err(err) => last_err = format!("the written text does not parse: {err}"),
        }
    }
    Err(last_err)
}

struct Emitter {
    out: String,
    literal_blocks: bool,
}

impl Emitter {
    fn root(&mut self, v: &Value) -> Result<(), String> {
        match v {
            Value::Mapping(m) if !m.is_empty() => self.mapping(m, 0, false),
            Value::Sequence(s) if !s.is_empty() => self.sequence(s, 0, false),
            other => {
                self.scalar(other)?;
                self.out.push('\n');
                Ok(())
            }
        }
    }

    fn pad(&mut self, n: usize) {
        self.out.extend(std::iter::repeat_n(' ', n));
    }

    /// Entries of a block mapping at column `indent`; `inline_first`: the first key follows a
    /// `- ` already written on the current line.
    fn mapping(&mut self, m: &Mapping, indent: usize, inline_first: bool) -> Result<(), String> {
        for (i, (k, v)) in m.iter().enumerate() {
            if i > 0 || !inline_first {
                self.pad(indent);
            }
            match k {
                Value::Mapping(_) | Value::Sequence(_) | Value::Tagged(_) => {
                    return Err("complex mapping keys are not supported".to_string())
                }
                _ => self.scalar(k)?,
            }
            self.out.push(':');
            self.node(v, indent, true)?;
        }
        Ok(())
    }

    fn sequence(&mut self, s: &[Value], indent: usize, inline_first: bool) -> Result<(), String> {
        for (i, item) in s.iter().enumerate() {
            if i > 0 || !inline_first {
                self.pad(indent);
            }
            self.out.push('-');
            self.node(item, indent, false)?;
        }
        Ok(())
    }

    /// The node after `key:` (`after_key`) or after `-`, whose indicator sits at column `indent`.
    fn node(&mut self, v: &Value, indent: usize, after_key: bool) -> Result<(), String> {
        match v {
            Value::Mapping(m) if !m.is_empty() => {
                if after_key {
                    self.out.push('\n');
                    self.mapping(m, indent + 2, false)
                } else {
                    self.out.push(' ');
                    self.mapping(m, indent + 2, true)
                }
            }
            Value::Sequence(s) if !s.is_empty() => {
                if after_key {
                    self.out.push('\n');
                    self.sequence(s, indent + 2, false)
                } else {
                    self.out.push(' ');
                    self.sequence(s, indent + 2, true)
                }
            }
            Value::String(s) if self.literal_blocks && literal_ok(s) => {
                self.out.push(' ');
                self.literal(s, indent + 2);
                Ok(())
            }
            other => {
                self.out.push(' ');
                self.scalar(other)?;
                self.out.push('\n');
                Ok(())
            }
        }
    }

    /// A literal block scalar whose lines sit at column `indent` (2 deeper than its parent).
    fn literal(&mut self, s: &str, indent: usize) {
        let content = s.trim_end_matches('\n');
        let trailing = s.len() - content.len();
        self.out.push('|');
        if content.starts_with([' ', '\t']) {
            self.out.push('2');
        }
        match trailing {
            0 => self.out.push('-'),
            1 => {}
            _ => self.out.push('+'),
        }
        self.out.push('\n');
        for line in content.split('\n') {
            if !line.is_empty() {
                self.pad(indent);
                self.out.push_str(line);
            }
            self.out.push('\n');
        }
        for _ in 1..trailing {
            self.out.push('\n');
        }
    }

    fn scalar(&mut self, v: &Value) -> Result<(), String> {
        match v {
            Value::Null => self.out.push_str("null"),
            Value::Bool(b) => self.out.push_str(if *b { "true" } else { "false" }),
            Value::Number(n) => self.out.push_str(&n.to_string()),
            Value::String(s) if plain_ok(s) => self.out.push_str(s),
            Value::String(s) => double_quoted(&mut self.out, s),
            Value::Sequence(s) if s.is_empty() => self.out.push_str("[]"),
            Value::Mapping(m) if m.is_empty() => self.out.push_str("{}"),
            Value::Tagged(t) => return Err(format!("YAML tag {} is not supported", t.tag)),
            Value::Sequence(_) | Value::Mapping(_) => {
                return Err("collection where a scalar was expected".to_string())
            }
        }
        Ok(())
    }
}

/// Words YAML 1.1 reads as booleans or null (any case).
const YAML11_WORDS: [&str; 9] = ["y", "n", "yes", "no", "true", "false", "on", "off", "null"];

/// Whether `s` can be written unquoted and still be read as this string by YAML 1.1 and 1.2
/// readers alike. Deliberately narrow: it starts with a letter, `/` or `_` (so it is no
/// number, date or special float), holds only letters, digits and `._/-:@=+`, does not end
/// with `:`, and is no YAML 1.1 boolean or null word.
fn plain_ok(s: &str) -> bool {
    let b = s.as_bytes();
    matches!(b.first(), Some(c) if c.is_ascii_alphabetic() || *c == b'/' || *c == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"._/-:@=+".contains(c))
        && !s.ends_with(':')
        && !YAML11_WORDS.iter().any(|w| s.eq_ignore_ascii_case(w))
}

/// YAML's printable set (§5.1).
fn printable(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | ' '..='~' | '\u{85}' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
}

/// Whether `s` can be a literal block: several lines, something besides line breaks, and no
/// character that a literal block cannot hold as it is.
fn literal_ok(s: &str) -> bool {
    s.contains('\n')
        && !s.trim_end_matches('\n').is_empty()
        && s.chars().all(|c| {
            c == '\n'
                || c == '\t'
                || printable(c)
                    && !matches!(c, '\r' | '\u{85}' | '\u{2028}' | '\u{2029}' | '\u{feff}')
        })
}

fn double_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\0' => out.push_str("\\0"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{b}' => out.push_str("\\v"),
            '\u{c}' => out.push_str("\\f"),
            '\u{1b}' => out.push_str("\\e"),
            '\u{85}' => out.push_str("\\N"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            c if !printable(c) || c == '\u{feff}' => {
                let n = c as u32;
                if n <= 0xff {
                    out.push_str(&format!("\\x{n:02X}"));
                } else if n <= 0xffff {
                    out.push_str(&format!("\\u{n:04X}"));
                } else {
                    out.push_str(&format!("\\U{n:08X}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn yaml(s: &str) -> Value {
        serde_yaml::from_str(s).unwrap()
    }

    #[test]
    fn quotes_yaml11_booleans_and_numbers() {
        let v = yaml("a: \"no\"\nb: \"yes\"\nc: \"on\"\nd: \"Y\"\ne: \"1_000\"\nf: \"0755\"\ng: \"2181\"\nh: \"3.9.3\"\ni: ERROR\nj: \"\"\nk: \"null\"\n");
        let out = to_yaml(&v).unwrap();
        assert_eq!(
            out,
            "a: \"no\"\nb: \"yes\"\nc: \"on\"\nd: \"Y\"\ne: \"1_000\"\nf: \"0755\"\ng: \"2181\"\nh: \"3.9.3\"\ni: ERROR\nj: \"\"\nk: \"null\"\n"
        );
    }

    #[test]
    fn block_layout_like_a_chart() {
        let src = "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: zk\n  annotations: null\nspec:\n  replicas: 3\n  template:\n    spec:\n      containers:\n        - name: zookeeper\n          command:\n            - /scripts/setup.sh\n          env:\n            - name: ZOO_SERVERS\n              value: \"a:2888:3888::1 b:2888:3888::2 \"\n          ports: []\n          securityContext: {}\n        - - nested\n          - seq\n";
        assert_eq!(to_yaml(&yaml(src)).unwrap(), src);
    }

    #[test]
    fn literal_blocks_with_every_chomping() {
        for s in [
            "#!/bin/bash\necho hi",
            "a\nb\n",
            "a\n\n\n",
            "  indented\nnext\n",
            "\tt\nx",
            "a\n   \nb",
        ] {
            let mut m = Mapping::new();
            m.insert("k".into(), Value::String(s.to_string()));
            let v = Value::Mapping(m);
            let out = to_yaml(&v).unwrap();
            assert!(out.starts_with("k: |"), "{s:?} -> {out}");
        }
    }

    #[test]
    fn strings_that_need_escapes() {
        for s in [
            "crlf\r\nline",
            "nul\0",
            "bom\u{feff}",
            "ls\u{2028}x",
            "tab\tx",
            "q\"\\",
            "é ü 中",
        ] {
            let v = Value::String(s.to_string());
            let out = to_yaml(&v).unwrap();
            assert_eq!(serde_yaml::from_str::<Value>(&out).unwrap(), v, "{out}");
        }
    }

    #[test]
    fn tags_and_complex_keys_are_refused() {
        assert!(to_yaml(&yaml("a: !foo 1\n")).is_err());
        assert!(to_yaml(&yaml("? [a]\n: 1\n")).is_err());
    }

    proptest! {
        #[test]
        fn any_string_round_trips(s in "\\PC*|[a-z0-9 \n\t:#-]*") {
            let mut m = Mapping::new();
            m.insert("k".into(), Value::String(s.clone()));
            m.insert(Value::String(s.clone()), Value::Sequence(vec![Value::String(s)]));
            let v = Value::Mapping(m);
            let out = to_yaml(&v).unwrap();
            prop_assert_eq!(serde_yaml::from_str::<Value>(&out).unwrap(), v);
        }

        #[test]
        fn plain_strings_are_strings_in_both_yaml_versions(s in "[a-zA-Z/_][a-zA-Z0-9._/:@=+-]{0,12}") {
            if plain_ok(&s) {
                prop_assert!(!crate::manifest::scan::is_yaml11_ambiguous(&s));
                prop_assert_eq!(serde_yaml::from_str::<Value>(&s).unwrap(), Value::String(s.clone()));
            }
        }
    }
}
