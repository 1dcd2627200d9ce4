//! `monitor probe`'s options as a probe kind's fields, through the kind's own serde schema (the
//! one configuration files use), with errors kept as data.
//!
//! Each option given becomes one field ([`Given`]); a small serde `Deserializer` hands them to the
//! kind's `Deserialize` impl. Its error type, [`FieldError`], is filled by serde's own hooks
//! (`unknown_field`, `missing_field`, `unknown_variant`, `custom`) and by the value of the field
//! being read, so that the caller knows which field (and so which option) is wrong and how, without
//! reading serde's wording. Values keep their type: text, flags and numbers reach the schema as
//! such, and the schema's own parsers (status ranges, regexes, addresses) judge them.

use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
use serde::forward_to_deserialize_any;

/// A value as an option gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `--path /health`.
    Text(String),
    /// `--insecure` (the field `verify` = false), `--starttls`.
    Flag(bool),
    /// `--count 3`.
    Number(u64),
}

/// One option given on the command line, as the field of the probe kind it sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Given {
    /// The option as the user wrote it: `--expect`.
    pub option: &'static str,
    /// The field of the kind's schema: `expect`.
    pub field: &'static str,
    /// Its value.
    pub value: Value,
}

/// Why the options do not make a kind's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldError {
    /// The kind has no such field.
    Unknown(String),
    /// The kind needs this field and no option gave it.
    Missing(&'static str),
    /// The field does not take the value; `field` is filled in once known.
    Invalid {
        /// The field whose value was refused.
        field: Option<&'static str>,
        /// The schema's words: `"2xx" is not a status code or range 100-599 (…)`.
        message: String,
    },
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldError::Unknown(field) => write!(f, "unknown field {field}"),
            FieldError::Missing(field) => write!(f, "missing field {field}"),
            FieldError::Invalid { field, message } => match field {
                Some(field) => write!(f, "{field}: {message}"),
                None => f.write_str(message),
            },
        }
    }
}

impl std::error::Error for FieldError {}

impl de::Error for FieldError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        FieldError::Invalid {
            field: None,
            message: msg.to_string(),
        }
    }

    fn unknown_field(field: &str, _expected: &'static [&'static str]) -> Self {
        FieldError::Unknown(field.to_string())
    }

    fn missing_field(field: &'static str) -> Self {
        FieldError::Missing(field)
    }

    /// `--method PUT`: the values the field takes, and the close one if there is one.
    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        let close = common::config::did_you_mean(variant, expected.iter().copied())
            .map(|k| format!("did you mean {k}? "))
            .unwrap_or_default();
        FieldError::Invalid {
            field: None,
            message: format!(
                "{variant:?} is not one of the values: {close}use {}",
                expected.join(", ")
            ),
        }
    }
}

/// A kind's parameters (`T`, e.g. `common::probe::http::Http`) from the options given.
pub fn fields<T: DeserializeOwned>(given: &[Given]) -> Result<T, FieldError> {
    T::deserialize(Fields { given, next: 0 })
}

/// The options given, as a map from field names to values.
struct Fields<'a> {
    given: &'a [Given],
    next: usize,
}

impl<'de> de::Deserializer<'de> for Fields<'_> {
    type Error = FieldError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, FieldError> {
        visitor.visit_map(self)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
        unit unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier
        ignored_any
    }
}

impl<'de> MapAccess<'de> for Fields<'_> {
    type Error = FieldError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, FieldError> {
        match self.given.get(self.next) {
            None => Ok(None),
            Some(g) => seed.deserialize(g.field.into_deserializer()).map(Some),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, FieldError> {
        let g = &self.given[self.next];
        self.next += 1;
        // Whatever the value's own parser refuses is that field's problem.
        seed.deserialize(ValueDeserializer(&g.value))
            .map_err(|e| match e {
                FieldError::Invalid {
                    field: None,
                    message,
                } => FieldError::Invalid {
                    field: Some(g.field),
                    message,
                },
                e => e,
            })
    }
}

/// One value, as the type it has.
struct ValueDeserializer<'a>(&'a Value);

impl<'de> de::Deserializer<'de> for ValueDeserializer<'_> {
    type Error = FieldError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, FieldError> {
        match self.0 {
            Value::Text(s) => visitor.visit_str(s),
            Value::Flag(b) => visitor.visit_bool(*b),
            Value::Number(n) => visitor.visit_u64(*n),
        }
    }

    /// An option given is a value present.
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, FieldError> {
        visitor.visit_some(self)
    }

    /// Text names a unit variant (`--method HEAD`, `--args mon`).
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, FieldError> {
        match self.0 {
            Value::Text(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, FieldError> {
        visitor.visit_newtype_struct(self)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use common::probe::{dns, external, http, ping};

    use super::*;

    fn text(option: &'static str, field: &'static str, v: &str) -> Given {
        Given {
            option,
            field,
            value: Value::Text(v.to_string()),
        }
    }

    #[test]
    fn options_fill_the_fields_of_the_kinds_schema() {
        let h: http::Http = fields(&[
            text("--path", "path", "health"),
            text("--method", "method", "HEAD"),
            text("--expect", "expect", "200,301-302"),
            Given {
                option: "--insecure",
                field: "verify",
                value: Value::Flag(false),
            },
        ])
        .unwrap();
        assert_eq!(h.path, "/health");
        assert_eq!(h.method, http::Method::Head);
        assert_eq!(h.expect.to_string(), "200,301-302");
        assert!(!h.verify && !h.follow_redirects);
        let p: ping::Ping = fields(&[Given {
            option: "--count",
            field: "count",
            value: Value::Number(3),
        }])
        .unwrap();
        assert_eq!(p.count, 3);
        let e: external::External = fields(&[
            text("--command", "command", "true"),
            text("--args", "args", "none"),
            text("--virtual", "virtual", "192.0.2.100:80"),
        ])
        .unwrap();
        assert_eq!(e.style(), external::ArgStyle::None);
    }

    #[test]
    fn errors_say_which_field_and_what() {
        assert_eq!(
            fields::<http::Http>(&[text("--name", "name", "x")]),
            Err(FieldError::Unknown("name".into()))
        );
        assert_eq!(fields::<dns::Dns>(&[]), Err(FieldError::Missing("name")));
        let Err(FieldError::Invalid { field, message }) = fields::<http::Http>(&[
            text("--path", "path", "/"),
            text("--expect", "expect", "2xx"),
        ]) else {
            panic!()
        };
        assert_eq!(field, Some("expect"));
        assert!(
            message.contains("\"2xx\" is not a status code"),
            "{message}"
        );
        assert_eq!(
            fields::<http::Http>(&[text("--method", "method", "GTE")]),
            Err(FieldError::Invalid {
                field: Some("method"),
                message: "\"GTE\" is not one of the values: did you mean GET? use GET, HEAD".into()
            })
        );
        // A number where text is wanted: serde's words, still placed at the field.
        let Err(FieldError::Invalid { field, .. }) = fields::<http::Http>(&[Given {
            option: "--path",
            field: "path",
            value: Value::Number(1),
        }]) else {
            panic!()
        };
        assert_eq!(field, Some("path"));
    }
}
