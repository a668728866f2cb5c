//! Edits: JSON pointers (RFC 6901, parsed with `jsonptr`) into one document of the stream, and
//! their application to a `serde_yaml::Value` (whose mappings keep their key order).

use jsonptr::index::Index;
use jsonptr::{Pointer, PointerBuf, Token};
use serde::Serialize;
use serde_yaml::{Mapping, Value};

/// One change to one document of the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Edit {
    /// 0-based index of the document in the stream ([`super::Document::index`]).
    pub doc_index: usize,
    pub pointer: PointerBuf,
    pub op: EditOp,
}

#[derive(Debug, Clone, PartialEq)]
pub enum EditOp {
    /// Like JSON Patch `add`: replaces the value at the pointer, inserts a new mapping key (after
    /// the existing ones), or sets a sequence item (`-` or the length appends). Missing or null
    /// mappings on the way are created, so `/metadata/annotations/x` works on `annotations:`.
    Set(Value),
    /// Removes a mapping key (keeping the order of the others) or a sequence item. Removing what
    /// is not there is no error: edits are meant to be idempotent.
    Remove,
}

impl Edit {
    pub fn set(doc_index: usize, pointer: PointerBuf, value: impl Into<Value>) -> Self {
        Edit {
            doc_index,
            pointer,
            op: EditOp::Set(value.into()),
        }
    }

    /// [`Edit::set`] with any serializable value (e.g. a k8s-openapi type).
    pub fn set_serialized<T: Serialize>(
        doc_index: usize,
        pointer: PointerBuf,
        value: &T,
    ) -> Result<Self, serde_yaml::Error> {
        Ok(Edit::set(doc_index, pointer, serde_yaml::to_value(value)?))
    }

    pub fn remove(doc_index: usize, pointer: PointerBuf) -> Self {
        Edit {
            doc_index,
            pointer,
            op: EditOp::Remove,
        }
    }
}

/// Applies one edit to a document's value; the error says what is in the way.
pub(crate) fn apply(value: &mut Value, pointer: &Pointer, op: &EditOp) -> Result<(), String> {
    let Some((parent_ptr, last)) = pointer.split_back() else {
        // The root pointer names the whole document.
        match op {
            EditOp::Set(v) => *value = v.clone(),
            EditOp::Remove => return Err("cannot remove the whole document".to_string()),
        }
        return Ok(());
    };
    let create = matches!(op, EditOp::Set(_));
    let Some(parent) = walk(value, parent_ptr, create)? else {
        return Ok(()); // Remove below a missing path: nothing to do.
    };
    match (parent, op) {
        (Value::Mapping(m), EditOp::Set(v)) => {
            match m.get_mut(key(&last).as_str()) {
                Some(slot) => *slot = v.clone(),
                None => {
                    m.insert(Value::String(key(&last)), v.clone());
                }
            }
            Ok(())
        }
        (Value::Mapping(m), EditOp::Remove) => {
            m.shift_remove(key(&last).as_str());
            Ok(())
        }
        (Value::Sequence(s), op) => {
            let index = last
                .to_index()
                .map_err(|e| format!("`{}` is not a sequence index: {e}", last.decoded()))?;
            match (index, op) {
                (Index::Num(i), EditOp::Set(v)) if i < s.len() => s[i] = v.clone(),
                (Index::Num(i), EditOp::Set(v)) if i == s.len() => s.push(v.clone()),
                (Index::Next, EditOp::Set(v)) => s.push(v.clone()),
                (Index::Num(i), EditOp::Set(_)) => {
                    return Err(format!(
                        "index {i} is out of range for a sequence of {}",
                        s.len()
                    ))
                }
                (Index::Num(i), EditOp::Remove) if i < s.len() => {
                    s.remove(i);
                }
                (_, EditOp::Remove) => {}
            }
            Ok(())
        }
        (other, _) => Err(format!(
            "`{}` is {}, not a mapping or sequence",
            parent_ptr,
            type_name(other)
        )),
    }
}

/// Follows `pointer` from `value`. With `create`, missing or null mapping entries on the way
/// become empty mappings; without it, a missing step gives `Ok(None)`.
fn walk<'v>(
    value: &'v mut Value,
    pointer: &Pointer,
    create: bool,
) -> Result<Option<&'v mut Value>, String> {
    let mut cur = value;
    let mut done = PointerBuf::new();
    for token in pointer.tokens() {
        let here = done.to_string();
        done.push_back(token.clone());
        cur = match cur {
            Value::Mapping(m) => {
                let k = key(&token);
                if !m.contains_key(k.as_str()) {
                    if !create {
                        return Ok(None);
                    }
                    m.insert(Value::String(k.clone()), Value::Mapping(Mapping::new()));
                }
                let child = m.get_mut(k.as_str()).expect("present");
                if child.is_null() {
                    if !create {
                        return Ok(None);
                    }
                    *child = Value::Mapping(Mapping::new());
                }
                child
            }
            Value::Sequence(s) => {
                let len = s.len();
                match token.to_index() {
                    Ok(Index::Num(i)) if i < len => &mut s[i],
                    Ok(_) if !create => return Ok(None),
                    Ok(_) => {
                        return Err(format!(
                            "`{done}` is out of range: the sequence at `{here}` has {len} item(s)"
                        ))
                    }
                    Err(e) => return Err(format!("`{done}`: not a sequence index: {e}")),
                }
            }
            _ if !create => return Ok(None),
            other => {
                return Err(format!(
                    "`{here}` is {}, so `{done}` cannot be reached",
                    type_name(other)
                ))
            }
        };
    }
    Ok(Some(cur))
}

fn key(token: &Token) -> String {
    token.decoded().into_owned()
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a sequence",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// Reads the value at `pointer`, if there is one.
pub fn get<'v>(value: &'v Value, pointer: &Pointer) -> Option<&'v Value> {
    let mut cur = value;
    for token in pointer.tokens() {
        cur = match cur {
            Value::Mapping(m) => m.get(token.decoded().as_ref())?,
            Value::Sequence(s) => match token.to_index().ok()? {
                Index::Num(i) => s.get(i)?,
                Index::Next => return None,
            },
            _ => return None,
        };
    }
    Some(cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(s: &str) -> Value {
        serde_yaml::from_str(s).unwrap()
    }

    fn ptr(s: &str) -> PointerBuf {
        PointerBuf::parse(s).unwrap()
    }

    const STS: &str = "spec:\n  replicas: 3\n  updateStrategy:\n    type: RollingUpdate\n  template:\n    metadata:\n      annotations:\n    spec:\n      containers:\n        - name: zookeeper\n          env:\n            - name: A\n              value: a\n            - name: ZOO_SERVERS\n              value: x\n";

    #[test]
    fn sets_replicas_in_place() {
        let mut v = yaml(STS);
        apply(&mut v, &ptr("/spec/replicas"), &EditOp::Set(5.into())).unwrap();
        assert_eq!(get(&v, &ptr("/spec/replicas")), Some(&Value::from(5)));
        let keys: Vec<_> = v["spec"].as_mapping().unwrap().keys().cloned().collect();
        assert_eq!(
            keys,
            [
                Value::from("replicas"),
                "updateStrategy".into(),
                "template".into()
            ]
        );
    }

    #[test]
    fn sets_update_strategy_and_env_value() {
        let mut v = yaml(STS);
        let strategy = yaml("type: OnDelete\n");
        apply(
            &mut v,
            &ptr("/spec/updateStrategy"),
            &EditOp::Set(strategy.clone()),
        )
        .unwrap();
        assert_eq!(v["spec"]["updateStrategy"], strategy);
        let p = ptr("/spec/template/spec/containers/0/env/1/value");
        apply(&mut v, &p, &EditOp::Set("y z".into())).unwrap();
        assert_eq!(get(&v, &p), Some(&Value::from("y z")));
    }

    #[test]
    fn creates_missing_and_null_mappings() {
        let mut v = yaml(STS);
        let p = ptr("/spec/template/metadata/annotations/zkscale.io~1step");
        apply(&mut v, &p, &EditOp::Set("1".into())).unwrap();
        assert_eq!(
            v["spec"]["template"]["metadata"]["annotations"]["zkscale.io/step"],
            "1"
        );
        apply(
            &mut v,
            &ptr("/spec/updateStrategy/rollingUpdate/partition"),
            &EditOp::Set(2.into()),
        )
        .unwrap();
        assert_eq!(v["spec"]["updateStrategy"]["rollingUpdate"]["partition"], 2);
    }

    #[test]
    fn appends_and_removes_sequence_items() {
        let mut v = yaml(STS);
        let env = "/spec/template/spec/containers/0/env";
        apply(
            &mut v,
            &ptr(&format!("{env}/-")),
            &EditOp::Set(yaml("name: B\nvalue: b\n")),
        )
        .unwrap();
        apply(
            &mut v,
            &ptr(&format!("{env}/3")),
            &EditOp::Set(yaml("name: C\n")),
        )
        .unwrap();
        assert_eq!(
            v["spec"]["template"]["spec"]["containers"][0]["env"]
                .as_sequence()
                .unwrap()
                .len(),
            4
        );
        apply(&mut v, &ptr(&format!("{env}/0")), &EditOp::Remove).unwrap();
        assert_eq!(
            v["spec"]["template"]["spec"]["containers"][0]["env"][0]["name"],
            "ZOO_SERVERS"
        );
        let err = apply(&mut v, &ptr(&format!("{env}/9")), &EditOp::Set(1.into())).unwrap_err();
        assert!(err.contains("out of range"), "{err}");
    }

    #[test]
    fn remove_keeps_order_and_is_idempotent() {
        let mut v = yaml("a: 1\nb: 2\nc: 3\n");
        apply(&mut v, &ptr("/a"), &EditOp::Remove).unwrap();
        apply(&mut v, &ptr("/a"), &EditOp::Remove).unwrap();
        apply(&mut v, &ptr("/x/y/z"), &EditOp::Remove).unwrap();
        assert_eq!(serde_yaml::to_string(&v).unwrap(), "b: 2\nc: 3\n");
    }

    #[test]
    fn errors_say_what_is_in_the_way() {
        let mut v = yaml(STS);
        let err = apply(&mut v, &ptr("/spec/replicas/x"), &EditOp::Set(1.into())).unwrap_err();
        assert!(err.contains("`/spec/replicas` is a number"), "{err}");
        let err = apply(
            &mut v,
            &ptr("/spec/template/spec/containers/x/name"),
            &EditOp::Set(1.into()),
        )
        .unwrap_err();
        assert!(err.contains("not a sequence index"), "{err}");
        assert!(apply(&mut v, &ptr(""), &EditOp::Remove).is_err());
    }

    #[test]
    fn set_serialized_takes_k8s_types() {
        use k8s_openapi::api::apps::v1::{
            RollingUpdateStatefulSetStrategy, StatefulSetUpdateStrategy,
        };
        let s = StatefulSetUpdateStrategy {
            type_: Some("RollingUpdate".into()),
            rolling_update: Some(RollingUpdateStatefulSetStrategy {
                partition: Some(2),
                ..Default::default()
            }),
        };
        let e = Edit::set_serialized(0, ptr("/spec/updateStrategy"), &s).unwrap();
        assert_eq!(
            e.op,
            EditOp::Set(yaml(
                "rollingUpdate:\n  partition: 2\ntype: RollingUpdate\n"
            ))
        );
    }
}
