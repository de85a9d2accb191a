//! Deserializing what a peer sends without letting its counts choose
//! what the host allocates.

use serde::de::{DeserializeSeed, Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::{WireError, WireResults, MAX_PEER_PATH};
use crate::value::Value;

/// At most [`MAX_PEER_PATH`] entries of a list of names; the rest is read and dropped.
pub(super) fn path<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a list of node names")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
            let mut out = Vec::new();
            while out.len() < MAX_PEER_PATH {
                match seq.next_element::<String>()? {
                    Some(s) => out.push(s),
                    None => return Ok(out),
                }
            }
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(out)
        }
    }
    d.deserialize_seq(V)
}

struct Packed(Vec<Value>);

impl<'de> Deserialize<'de> for Packed {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Packed, D::Error> {
        papy_sdk::packed::values::deserialize(d).map(Packed)
    }
}

/// The errors of a result: at most `most` of them.
struct Errors {
    most: usize,
}

impl<'de> DeserializeSeed<'de> for Errors {
    type Value = Vec<(u32, WireError)>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Errors {
    type Value = Vec<(u32, WireError)>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at most {} errors", self.most)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(self.most).min(4096));
        while let Some(e) = seq.next_element::<(u32, WireError)>()? {
            if out.len() == self.most {
                return Err(A::Error::custom(format!(
                    "more errors than the {} results they belong to",
                    self.most
                )));
            }
            out.push(e);
        }
        Ok(out)
    }
}

/// Errors read before the values (a map with `errors` first) are bounded by this.
const ERRORS_BEFORE_VALUES: usize = 1 << 16;

struct Results;

impl<'de> Visitor<'de> for Results {
    type Value = WireResults;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("results: values and errors")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<WireResults, A::Error> {
        let values = seq
            .next_element::<Packed>()?
            .ok_or_else(|| A::Error::invalid_length(0, &self))?
            .0;
        let errors = seq
            .next_element_seed(Errors { most: values.len() })?
            .ok_or_else(|| A::Error::invalid_length(1, &self))?;
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(WireResults { values, errors })
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<WireResults, A::Error> {
        let (mut values, mut errors) = (None, None);
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match &*key {
                "values" => values = Some(map.next_value::<Packed>()?.0),
                "errors" => {
                    let most = values.as_ref().map_or(ERRORS_BEFORE_VALUES, Vec::len);
                    errors = Some(map.next_value_seed(Errors { most })?);
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let values: Vec<Value> = values.ok_or_else(|| A::Error::missing_field("values"))?;
        let errors: Vec<(u32, WireError)> = errors.unwrap_or_default();
        if errors.len() > values.len() {
            return Err(A::Error::custom(format!(
                "{} errors for {} results",
                errors.len(),
                values.len()
            )));
        }
        Ok(WireResults { values, errors })
    }
}

impl<'de> Deserialize<'de> for WireResults {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<WireResults, D::Error> {
        d.deserialize_struct("WireResults", &["values", "errors"], Results)
    }
}
