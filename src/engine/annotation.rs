//! The annotations zkscale reads back from the StatefulSet: `zkscale.io/operation` (what a run
//! is doing, for a resumed run) and `zkscale.io/pending` (what a preview did not declare).
//! zkscale writes them, but anyone allowed to patch the StatefulSet can write anything there:
//! they are read as outside input, here, and nowhere else.

use serde::de::DeserializeOwned;
use serde::Deserialize;

/// Longer than any annotation zkscale writes: anything larger is not ours and is not parsed.
pub const MAX_LEN: usize = 16 * 1024;
/// The most of an annotation a message or table shows.
pub const SHOWN_LEN: usize = 300;

/// The operation annotation while a member moves in from its host.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MigrateOp {
    pub migrate: u32,
}

/// The operation annotation while a member is rebuilt.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RebuildOp {
    pub rebuild: String,
    pub claim: String,
}

/// The operation annotation as `T`, if it is one (JSON of that shape, of a sane length).
pub fn parse_operation<T: DeserializeOwned>(text: &str) -> Option<T> {
    if text.len() > MAX_LEN {
        return None;
    }
    serde_json::from_str(text).ok()
}

/// An annotation's value as a message or the status table shows it: one line, every control
/// character (newlines, terminal escapes) escaped, at most [`SHOWN_LEN`] characters and an
/// ellipsis. The one function that makes an annotation safe for a terminal or a log.
pub fn shown(text: &str) -> String {
    let mut out = String::new();
    for (n, c) in text.chars().enumerate() {
        if n == SHOWN_LEN {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotations_are_read_as_outside_input() {
        assert_eq!(
            parse_operation::<MigrateOp>(r#"{"migrate":3,"holder":"x"}"#),
            Some(MigrateOp { migrate: 3 })
        );
        assert_eq!(parse_operation::<MigrateOp>(r#"{"migrate":-1}"#), None);
        assert_eq!(parse_operation::<RebuildOp>("{"), None);
        let big = format!(r#"{{"migrate":3,"x":"{}"}}"#, "a".repeat(MAX_LEN));
        assert_eq!(parse_operation::<MigrateOp>(&big), None);
        assert_eq!(shown("scale 3 → 5"), "scale 3 → 5");
        let hostile = shown("a\nb\u{1b}[2Jc");
        assert!(!hostile.chars().any(char::is_control), "{hostile}");
        assert!(hostile.starts_with("a\\nb"), "{hostile}");
        assert_eq!(shown(&"x".repeat(1000)).chars().count(), SHOWN_LEN + 1);
    }
}
