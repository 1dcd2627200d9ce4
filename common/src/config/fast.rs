//! A fast reader for the plain subset of TOML that configuration files are written in, in front of
//! the toml crate: [`parse`] gives `None` for anything outside the subset, and
//! [`super::load::parse_str`] then uses the toml crate, which also gives every error (a value this
//! reader reads but `T` refuses is read again by the toml crate, for its words).
//!
//! Why: reading 1,000 virtual-service files (10 reals each, 583 KB) cost `ldir` 64 M instructions in
//! the toml crate's parser alone (callgrind, 110 per byte), the largest part of its cold start in the
//! lab VM; with this reader first, the whole `ldir check` of them takes 62 M instead of 106 M
//! (the reader 25 M of it).
//!
//! The subset, line by line (anything else makes [`parse`] decline the whole file):
//! - blank lines and `#` comments (no control character but tab, as TOML says);
//! - `[name]` and `[[name]]` headers with one bare key (`A-Za-z0-9_-`), each table defined once
//!   and an array of tables only ever extended by `[[name]]`;
//! - `key = value` with a bare key, defined once per table; a value is a basic string without
//!   escapes (`"..."`), a literal string (`'...'`), a decimal integer that fits an i64 (no
//!   underscores, no leading zero), `true`/`false`, or an array of those on the same line;
//! - `\n` line ends (no `\r`), then only spaces, tabs and a comment after a value or header.
//!
//! Within it, the deserializer gives what the toml crate's does: the same values, the same spans
//! (a value's token, an array from `[` to `]`, a table from its header's `[` to its `]`, an array of
//! tables its first header's), map keys in the same (sorted) order, strings borrowed. The test
//! `the_fast_reader_agrees_with_the_toml_crate` compares both on every fixture and on generated
//! documents, spans included.

use std::ops::Range;

use memchr::memchr;

use serde::de::value::Error;
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde_spanned::de::SpannedDeserializer;

/// A value read from the subset, with its span.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Item<'a> {
    span: Range<usize>,
    value: Value<'a>,
}

#[derive(Debug, Clone, PartialEq)]
enum Value<'a> {
    Str(&'a str),
    Int(i64),
    Bool(bool),
    Array(Vec<Item<'a>>),
    /// An array of tables (`[[name]]`), never extended by anything but another `[[name]]`.
    Tables(Vec<Item<'a>>),
    Table(Table<'a>),
}

/// Entries in the order they were written; sorted by key before deserializing.
type Table<'a> = Vec<(&'a str, Range<usize>, Item<'a>)>;

/// Nested arrays deeper than this are left to the toml crate.
const MAX_DEPTH: usize = 8;

/// The document's root table, or `None` if `text` is outside the subset.
pub(crate) fn parse(text: &str) -> Option<Item<'_>> {
    let bytes = text.as_bytes();
    let mut root: Table<'_> = Vec::with_capacity(8);
    // Where key/value lines go: the root, a root entry's table, or the last table of a root entry's
    // array of tables.
    let mut current: Option<usize> = None;
    let mut at = 0;
    while at < bytes.len() {
        let end = memchr(b'\n', &bytes[at..]).map_or(bytes.len(), |n| at + n);
        let mut p = skip_ws(bytes, at, end);
        if p < end && bytes[p] == b'[' {
            let header = p;
            let array = bytes.get(p + 1) == Some(&b'[');
            p += if array { 2 } else { 1 };
            p = skip_ws(bytes, p, end);
            let (key, key_span) = bare_key(text, p, end)?;
            p = skip_ws(bytes, key_span.end, end);
            let close: &[u8] = if array { b"]]" } else { b"]" };
            if !bytes[p..end].starts_with(close) {
                return None;
            }
            p += close.len();
            line_end(bytes, p, end)?;
            let span = header..p;
            let table = Item {
                span: span.clone(),
                value: Value::Table(Vec::with_capacity(8)),
            };
            current = Some(match root.iter().position(|(k, _, _)| *k == key) {
                Some(i) if array => match &mut root[i].2.value {
                    Value::Tables(list) => {
                        list.push(table);
                        i
                    }
                    _ => return None,
                },
                Some(_) => return None,
                None => {
                    let value = if array {
                        Item {
                            span,
                            value: Value::Tables(vec![table]),
                        }
                    } else {
                        table
                    };
                    root.push((key, key_span, value));
                    root.len() - 1
                }
            });
        } else if p < end && bytes[p] != b'#' {
            let (key, key_span) = bare_key(text, p, end)?;
            p = skip_ws(bytes, key_span.end, end);
            if bytes.get(p) != Some(&b'=') || p >= end {
                return None;
            }
            p = skip_ws(bytes, p + 1, end);
            let (item, next) = value(text, p, end, 0)?;
            line_end(bytes, next, end)?;
            let table = match current {
                None => &mut root,
                Some(i) => match &mut root[i].2.value {
                    Value::Table(t) => t,
                    Value::Tables(list) => match list.last_mut()?.value {
                        Value::Table(ref mut t) => t,
                        _ => return None,
                    },
                    _ => return None,
                },
            };
            if table.iter().any(|(k, _, _)| *k == key) {
                return None;
            }
            table.push((key, key_span, item));
        } else {
            line_end(bytes, p, end)?;
        }
        at = end + 1;
    }
    Some(Item {
        span: 0..0,
        value: Value::Table(root),
    })
}

fn skip_ws(bytes: &[u8], mut p: usize, end: usize) -> usize {
    while p < end && matches!(bytes[p], b' ' | b'\t') {
        p += 1;
    }
    p
}

/// What may end a line after its content: spaces, tabs, a comment without control characters.
fn line_end(bytes: &[u8], p: usize, end: usize) -> Option<()> {
    let p = skip_ws(bytes, p, end);
    if p == end {
        return Some(());
    }
    if bytes[p] != b'#' {
        return None;
    }
    bytes[p..end]
        .iter()
        .all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
        .then_some(())
}

fn bare_key(text: &str, p: usize, end: usize) -> Option<(&str, Range<usize>)> {
    let bytes = text.as_bytes();
    let mut q = p;
    while q < end && (bytes[q].is_ascii_alphanumeric() || bytes[q] == b'_' || bytes[q] == b'-') {
        q += 1;
    }
    (q > p).then(|| (&text[p..q], p..q))
}

/// A value starting at `p`, and where it ends.
fn value(text: &str, p: usize, end: usize, depth: usize) -> Option<(Item<'_>, usize)> {
    let bytes = text.as_bytes();
    let first = *bytes.get(p).filter(|_| p < end)?;
    let (value, next) = match first {
        b'"' | b'\'' => {
            if bytes[p..end].starts_with(if first == b'"' { b"\"\"\"" } else { b"'''" }) {
                return None;
            }
            let len = memchr(first, &bytes[p + 1..end])?;
            let inner = &bytes[p + 1..p + 1 + len];
            let plain = |b: &u8| (*b == b'\t' || *b >= 0x20) && *b != 0x7f;
            if !inner.iter().all(plain) || (first == b'"' && inner.contains(&b'\\')) {
                return None;
            }
            (Value::Str(&text[p + 1..p + 1 + len]), p + len + 2)
        }
        b'[' => {
            if depth >= MAX_DEPTH {
                return None;
            }
            let mut items = Vec::new();
            let mut q = skip_ws(bytes, p + 1, end);
            loop {
                if bytes.get(q) == Some(&b']') && q < end {
                    break;
                }
                let (item, next) = value(text, q, end, depth + 1)?;
                items.push(item);
                q = skip_ws(bytes, next, end);
                match bytes.get(q) {
                    Some(b',') if q < end => q = skip_ws(bytes, q + 1, end),
                    Some(b']') if q < end => break,
                    _ => return None,
                }
            }
            (Value::Array(items), q + 1)
        }
        b't' if bytes[p..end].starts_with(b"true") => (Value::Bool(true), p + 4),
        b'f' if bytes[p..end].starts_with(b"false") => (Value::Bool(false), p + 5),
        b'0'..=b'9' | b'+' | b'-' => {
            let digits = p + usize::from(first == b'+' || first == b'-');
            let mut q = digits;
            while q < end && bytes[q].is_ascii_digit() {
                q += 1;
            }
            let n = q - digits;
            if n == 0 || (n > 1 && bytes[digits] == b'0') {
                return None;
            }
            (Value::Int(text[p..q].parse().ok()?), q)
        }
        _ => return None,
    };
    // A value ends at a space, a comment, an array's `,` or `]`, or the line's end: `1.5`,
    // `1979-05-27`, `truex` are not in the subset.
    if next < end && !matches!(bytes[next], b' ' | b'\t' | b'#' | b',' | b']') {
        return None;
    }
    Some((
        Item {
            span: p..next,
            value,
        },
        next,
    ))
}

// ---------------------------------------------------------------------------------------------
// Deserializing

impl<'de> de::Deserializer<'de> for Item<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Str(s) => visitor.visit_borrowed_str(s),
            Value::Int(i) => visitor.visit_i64(i),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::Array(items) | Value::Tables(items) => visitor.visit_seq(Seq(items.into_iter())),
            Value::Table(mut entries) => {
                entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
                visitor.visit_map(Map {
                    entries: entries.into_iter(),
                    value: None,
                })
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        if serde_spanned::de::is_spanned(name) {
            let span = self.span.clone();
            return visitor.visit_map(SpannedDeserializer::new(self, span));
        }
        self.deserialize_any(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.value {
            Value::Str(s) => visitor.visit_enum(s.into_deserializer()),
            // Enums written as tables are left to the toml crate.
            _ => Err(de::Error::custom("not in the fast reader's subset")),
        }
    }

    serde::forward_to_deserialize_any! {
        bool u8 u16 u32 u64 u128 i8 i16 i32 i64 i128 f32 f64 char str string seq
        bytes byte_buf map unit ignored_any unit_struct tuple_struct tuple identifier
    }
}

impl<'de> IntoDeserializer<'de, Error> for Item<'de> {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

struct Seq<'a>(std::vec::IntoIter<Item<'a>>);

impl<'de> SeqAccess<'de> for Seq<'de> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        self.0.next().map(|item| seed.deserialize(item)).transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

struct Map<'a> {
    entries: std::vec::IntoIter<(&'a str, Range<usize>, Item<'a>)>,
    value: Option<Item<'a>>,
}

impl<'de> MapAccess<'de> for Map<'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some((key, span, value)) = self.entries.next() else {
            return Ok(None);
        };
        self.value = Some(value);
        seed.deserialize(Key { key, span }).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let value = self
            .value
            .take()
            .ok_or_else(|| de::Error::custom("a value asked for before its key"))?;
        seed.deserialize(value)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// A table's key: a string, or a `Spanned` string.
struct Key<'a> {
    key: &'a str,
    span: Range<usize>,
}

impl<'de> de::Deserializer<'de> for Key<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_borrowed_str(self.key)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        if serde_spanned::de::is_spanned(name) {
            return visitor.visit_map(SpannedDeserializer::<_, Error>::new(self.key, self.span));
        }
        self.deserialize_any(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_enum(self.key.into_deserializer())
    }

    // Keys read as numbers or booleans meet a string and fail: left to the toml crate.
    serde::forward_to_deserialize_any! {
        bool u8 u16 u32 u64 u128 i8 i16 i32 i64 i128 f32 f64 char str string seq
        bytes byte_buf map unit option ignored_any unit_struct tuple_struct tuple identifier
    }
}

#[cfg(test)]
mod tests {
    use std::fmt;
    use std::path::Path;

    use serde::Deserialize;
    use serde::de::{MapAccess, SeqAccess, Visitor};
    use toml::Spanned;

    use super::*;

    /// Any document, with the span of every value and key: what both readers must agree on.
    #[derive(Debug, PartialEq)]
    enum Node {
        Str(String),
        Int(i64),
        Bool(bool),
        Other(String),
        Seq(Vec<Spanned<Node>>),
        Map(Vec<(Spanned<String>, Spanned<Node>)>),
    }

    impl<'de> Deserialize<'de> for Node {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Node, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Node;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("anything")
                }
                fn visit_str<E>(self, v: &str) -> Result<Node, E> {
                    Ok(Node::Str(v.to_owned()))
                }
                fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
                    Ok(Node::Int(v))
                }
                fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
                    Ok(Node::Other(format!("u64 {v}")))
                }
                fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
                    Ok(Node::Other(format!("f64 {v}")))
                }
                fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
                    Ok(Node::Bool(v))
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
                    let mut v = Vec::new();
                    while let Some(x) = a.next_element()? {
                        v.push(x);
                    }
                    Ok(Node::Seq(v))
                }
                fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
                    let mut v = Vec::new();
                    while let Some(k) = a.next_key()? {
                        v.push((k, a.next_value()?));
                    }
                    Ok(Node::Map(v))
                }
            }
            d.deserialize_any(V)
        }
    }

    /// Both readers on `text`: the subset's reading must be the toml crate's, spans included;
    /// a text the toml crate refuses must be outside the subset. Whether the subset took it.
    fn agree(text: &str) -> bool {
        let theirs = toml::Deserializer::parse(text)
            .map_err(|e| e.to_string())
            .and_then(|d| Node::deserialize(d).map_err(|e| e.to_string()));
        let Some(doc) = parse(text) else {
            return false;
        };
        let ours = Node::deserialize(doc.clone()).expect("the subset deserializes any document");
        match theirs {
            Ok(theirs) => assert_eq!(ours, theirs, "{text:?}"),
            Err(e) => panic!("the subset took a document the toml crate refuses ({e}): {text:?}"),
        }
        // And with spans asked for at the top.
        let spanned: Spanned<Node> = Spanned::deserialize(doc).unwrap();
        let theirs: Spanned<Node> =
            Spanned::deserialize(toml::Deserializer::parse(text).unwrap()).unwrap();
        assert_eq!(spanned.span(), theirs.span(), "{text:?}");
        true
    }

    fn repo_toml_files(dir: &Path, out: &mut Vec<(String, String)>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if p.is_dir() && !name.starts_with('.') && name != "target" {
                repo_toml_files(&p, out);
            } else if name.ends_with(".toml") && name != "Cargo.toml" {
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                out.push((p.display().to_string(), text));
            }
        }
    }

    /// A tiny deterministic generator (xorshift), no crate for it.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
            from[(self.next() % from.len() as u64) as usize]
        }
    }

    const KEYS: &[&str] = &[
        "a", "b", "real", "check", "x-y", "k_2", "0", "ä", "\"q\"", "a.b",
    ];
    const VALUES: &[&str] = &[
        "\"s\"",
        "\"\"",
        "'lit\"x'",
        "''",
        "\"a # b\"",
        "\"esc\\n\"",
        "\"\"\"m\"\"\"",
        "'''m'''",
        "1",
        "-0",
        "+7",
        "007",
        "0",
        "9223372036854775807",
        "9223372036854775808",
        "1_000",
        "1.5",
        "1e3",
        "0x1f",
        "inf",
        "true",
        "false",
        "truex",
        "1979-05-27",
        "[]",
        "[ ]",
        "[1, 2]",
        "[1,2,]",
        "[\"a\", [true, -3]]",
        "[1 2]",
        "[,]",
        "{}",
        "{ a = 1 }",
        "\"tab\there\"",
        "\"ctl\u{1}\"",
        "\"ü\"",
        "[",
        "\"open",
    ];
    const GAPS: &[&str] = &["", " ", "\t", "  "];
    const ENDS: &[&str] = &["", " # c", "#", " # ü", " #\u{1}", " x", "\r"];

    fn generated(rng: &mut Rng) -> String {
        let mut text = String::new();
        for _ in 0..(rng.next() % 12) {
            let line = match rng.next() % 8 {
                0 => format!("[{}]", rng.pick(KEYS)),
                1 => format!("[[{}]]", rng.pick(KEYS)),
                2 => format!("[{}{}{}]", rng.pick(GAPS), rng.pick(KEYS), rng.pick(GAPS)),
                3 => format!("#{}", rng.pick(VALUES)),
                4 => String::new(),
                _ => format!(
                    "{}{}{}={}{}",
                    rng.pick(GAPS),
                    rng.pick(KEYS),
                    rng.pick(GAPS),
                    rng.pick(GAPS),
                    rng.pick(VALUES)
                ),
            };
            text.push_str(&line);
            text.push_str(rng.pick(ENDS));
            text.push('\n');
        }
        text
    }

    #[test]
    fn the_fast_reader_agrees_with_the_toml_crate() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let mut files = Vec::new();
        repo_toml_files(root, &mut files);
        assert!(files.len() >= 30, "the repository's configuration files");
        for (path, text) in &files {
            let taken = agree(text);
            // ldir's files, one per virtual service and many on a director, are what the subset
            // is for; hbeat's and monitor's use inline tables and dotted headers (the toml crate's).
            if path.contains("/examples/") && path.contains("/ldir/") {
                assert!(taken, "{path} is in the subset");
            }
        }
        let files: Vec<String> = files.into_iter().map(|(_, t)| t).collect();

        // Every file with one byte changed, inserted or removed.
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let bytes: &[u8] = b" \t\n#=[]\",'.-+0a1\\{}x";
        for text in &files {
            for _ in 0..60 {
                let mut t = text.clone().into_bytes();
                if t.is_empty() {
                    break;
                }
                let at = (rng.next() % t.len() as u64) as usize;
                let b = bytes[(rng.next() % bytes.len() as u64) as usize];
                match rng.next() % 3 {
                    0 => t[at] = b,
                    1 => t.insert(at, b),
                    _ => {
                        t.remove(at);
                    }
                }
                if let Ok(t) = String::from_utf8(t) {
                    agree(&t);
                }
            }
        }

        // Generated documents, tricky values and lines included.
        let mut taken = 0;
        for _ in 0..20_000 {
            taken += usize::from(agree(&generated(&mut rng)));
        }
        assert!(taken > 2_000, "the generator reaches the subset ({taken})");
    }

    #[test]
    fn the_subset_declines_what_it_does_not_read() {
        for text in [
            "a.b = 1\n",
            "\"a\" = 1\n",
            "a = 1.5\n",
            "a = \"x\\ty\"\n",
            "a = [\n1]\n",
            "a = { b = 1 }\n",
            "[a.b]\n",
            "a = 1\r\n",
            "a = 1\na = 2\n",
            "[a]\n[a]\n",
            "a = 1\n[[a]]\n",
        ] {
            assert!(parse(text).is_none(), "{text:?}");
        }
        let doc = parse("[v]\nk = \"s\" # c\n\n[[r]]\nn = -3\n[[r]]\nb = [true, 'x']\n").unwrap();
        let node = Node::deserialize(doc).unwrap();
        assert!(format!("{node:?}").contains("Int(-3)"));
    }
}
