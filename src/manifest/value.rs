//! Parsing a document into a `serde_yaml::Value` for every valid YAML: serde_yaml's own `Value`
//! refuses integers beyond 64 bits (`… as u128`), which YAML and Kubernetes annotations allow.
//! Such an integer is kept as its digits in a string and the value is marked lossy: it reads
//! fine, but a rewrite would quote the number, so documents holding one are never rewritten.

use std::cell::Cell;
use std::fmt;

use serde::de::{DeserializeSeed, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor};
use serde_yaml::value::{Tag, TaggedValue};
use serde_yaml::{Mapping, Value};

/// The document's value, and whether an integer beyond 64 bits was turned into a string.
pub(crate) fn parse(text: &str) -> Result<(Value, bool), serde_yaml::Error> {
    let lossy = Cell::new(false);
    let value = AnyValue(&lossy).deserialize(serde_yaml::Deserializer::from_str(text))?;
    Ok((value, lossy.get()))
}

#[derive(Clone, Copy)]
struct AnyValue<'a>(&'a Cell<bool>);

impl<'de> DeserializeSeed<'de> for AnyValue<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for AnyValue<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, i: i64) -> Result<Value, E> {
        Ok(Value::Number(i.into()))
    }

    fn visit_u64<E>(self, u: u64) -> Result<Value, E> {
        Ok(Value::Number(u.into()))
    }

    fn visit_i128<E>(self, i: i128) -> Result<Value, E> {
        Ok(match i64::try_from(i) {
            Ok(i) => Value::Number(i.into()),
            Err(_) => {
                self.0.set(true);
                Value::String(i.to_string())
            }
        })
    }

    fn visit_u128<E>(self, u: u128) -> Result<Value, E> {
        Ok(match u64::try_from(u) {
            Ok(u) => Value::Number(u.into()),
            Err(_) => {
                self.0.set(true);
                Value::String(u.to_string())
            }
        })
    }

    fn visit_f64<E>(self, f: f64) -> Result<Value, E> {
        Ok(Value::Number(f.into()))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        self.deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(v) = seq.next_element_seed(self)? {
            out.push(v);
        }
        Ok(Value::Sequence(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Mapping::new();
        while let Some(k) = map.next_key_seed(self)? {
            let v = map.next_value_seed(self)?;
            out.insert(k, v);
        }
        Ok(Value::Mapping(out))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        let (tag, variant): (String, _) = data.variant()?;
        let value = variant.newtype_variant_seed(self)?;
        Ok(Value::Tagged(Box::new(TaggedValue {
            tag: Tag::new(tag),
            value,
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_serde_yaml_reads_and_big_integers_too() {
        for text in [
            "a: 1\nb: [x, 2.5, null, true]\nc: {d: -3}\n",
            "a: !Tag {b: 1}\nc: 'q'\n",
            "",
            "x: 18446744073709551615\n",
        ] {
            let ours = parse(text).unwrap();
            let theirs: Value = serde_yaml::from_str(text).unwrap();
            assert_eq!(ours, (theirs, false), "{text:?}");
        }
        let (v, lossy) =
            parse("a: 123456789012345678901234567890\nb: -99999999999999999999\n").unwrap();
        assert!(lossy);
        assert_eq!(
            v["a"],
            Value::String("123456789012345678901234567890".into())
        );
        assert_eq!(v["b"], Value::String("-99999999999999999999".into()));
        assert!(parse("a: [1\n").is_err());
    }
}
