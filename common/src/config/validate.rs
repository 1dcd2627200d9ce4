//! Semantic checks that run after deserialization and report every problem, each at its place.

use std::fmt;
use std::ops::Range;

use toml::Spanned;

/// Semantic checks of a deserialized configuration value.
///
/// `validate` reports each problem with [`Validator::error`] and carries on, so that a user sees
/// all problems of a file at once. Keep the values a check may complain about as
/// [`Spanned<T>`] in the schema so that the problem can be placed at its line and column.
/// Descend into nested tables with [`Validator::nested`] (or [`Validator::field`] and
/// [`Validator::index`]) so that the reported field path is complete.
///
/// The default method checks nothing: `impl Validate for MySchema {}` is enough for a schema that
/// has no semantic rules.
pub trait Validate {
    /// Reports every problem of `self` to `v`.
    fn validate(&self, v: &mut Validator) {
        let _ = v;
    }
}

impl<T: Validate + ?Sized> Validate for Box<T> {
    fn validate(&self, v: &mut Validator) {
        (**self).validate(v);
    }
}

impl<T: Validate> Validate for Option<T> {
    fn validate(&self, v: &mut Validator) {
        if let Some(value) = self {
            value.validate(v);
        }
    }
}

impl<T: Validate> Validate for Spanned<T> {
    fn validate(&self, v: &mut Validator) {
        self.get_ref().validate(v);
    }
}

/// Validates each element with its index appended to the field path.
impl<T: Validate> Validate for [T] {
    fn validate(&self, v: &mut Validator) {
        for (i, item) in self.iter().enumerate() {
            v.index(i, |v| item.validate(v));
        }
    }
}

impl<T: Validate> Validate for Vec<T> {
    fn validate(&self, v: &mut Validator) {
        self.as_slice().validate(v);
    }
}

/// Schemas that are plain TOML have no semantic rules.
impl Validate for toml::Table {}
/// Schemas that are plain TOML have no semantic rules.
impl Validate for toml::Value {}

#[derive(Debug, Clone)]
enum Segment {
    Key(String),
    Index(usize),
}

/// One problem reported by a [`Validate`] implementation, before its span becomes a line and
/// column.
#[derive(Debug, Clone)]
pub(crate) struct Problem {
    pub field: String,
    pub span: Option<Range<usize>>,
    pub message: String,
}

/// Collects the problems found by [`Validate`] implementations, with the field path of each.
///
/// The loader creates it and turns the byte spans into `file:line:column`.
#[derive(Debug, Default)]
pub struct Validator {
    path: Vec<Segment>,
    problems: Vec<Problem>,
}

impl Validator {
    pub(crate) fn new() -> Self {
        Validator::default()
    }

    pub(crate) fn into_problems(self) -> Vec<Problem> {
        self.problems
    }

    /// Reports that `value`, the field `field` of the current table, is wrong. `field` is
    /// appended to the current field path; pass `""` when the problem is the current table
    /// itself.
    pub fn error<T>(&mut self, field: &str, value: &Spanned<T>, message: impl fmt::Display) {
        self.error_at(field, Some(value.span()), message);
    }

    /// Like [`error`](Self::error) with a byte span into the file, or `None` when the problem
    /// cannot be placed (it is then reported with the file name only).
    pub fn error_at(
        &mut self,
        field: &str,
        span: Option<Range<usize>>,
        message: impl fmt::Display,
    ) {
        let mut path = self.render_path();
        if !field.is_empty() {
            push_key(&mut path, field);
        }
        self.problems.push(Problem {
            field: path,
            span,
            message: message.to_string(),
        });
    }

    /// Runs `f` with `key` appended to the field path.
    pub fn field(&mut self, key: &str, f: impl FnOnce(&mut Validator)) {
        self.path.push(Segment::Key(key.to_owned()));
        f(self);
        self.path.pop();
    }

    /// Runs `f` with `[index]` appended to the field path.
    pub fn index(&mut self, index: usize, f: impl FnOnce(&mut Validator)) {
        self.path.push(Segment::Index(index));
        f(self);
        self.path.pop();
    }

    /// Validates `value`, the field `key` of the current table (for a `Vec`, each element as
    /// `key[i]`).
    pub fn nested<T: Validate + ?Sized>(&mut self, key: &str, value: &T) {
        self.field(key, |v| value.validate(v));
    }

    /// Number of problems reported so far.
    pub fn error_count(&self) -> usize {
        self.problems.len()
    }

    fn render_path(&self) -> String {
        let mut out = String::new();
        for segment in &self.path {
            match segment {
                Segment::Key(key) => push_key(&mut out, key),
                Segment::Index(i) => push_index(&mut out, *i),
            }
        }
        out
    }
}

/// Appends `.key` to a field path (no dot at the start), quoting keys that are not bare TOML keys.
pub(crate) fn push_key(path: &mut String, key: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        path.push_str(key);
    } else {
        path.push_str(&format!("{key:?}"));
    }
}

/// Appends `[index]` to a field path.
pub(crate) fn push_index(path: &mut String, index: usize) {
    path.push_str(&format!("[{index}]"));
}
