//! The error types of configuration loading, and the translation of toml's and serde's messages
//! into words a user can act on.

use std::fmt;
use std::path::PathBuf;

/// A line and column in a file, both 1-based; the column counts characters, not bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// Line number, starting at 1.
    pub line: usize,
    /// Column in characters, starting at 1.
    pub column: usize,
}

impl Position {
    /// The position of byte `offset` in `text`. An offset inside a multi-byte character counts as
    /// that character; an offset past the end counts as the end.
    pub fn of_offset(text: &str, offset: usize) -> Position {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Position {
            line: before.bytes().filter(|&b| b == b'\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

/// Where a problem is: the file as named in messages, and the position when it is known.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Location {
    /// The file name as given to the loader (a path, or the name given to [`parse_str`]).
    ///
    /// [`parse_str`]: super::parse_str
    pub file: String,
    /// Line and column, or `None` when the problem cannot be placed inside the file.
    pub position: Option<Position>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some(Position { line, column }) => write!(f, "{}:{line}:{column}", self.file),
            None => f.write_str(&self.file),
        }
    }
}

/// One configuration problem. Displays as one line: `{file}:{line}:{column}: {field}: {message}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A file or directory could not be read; `reason` is the OS error in words.
    #[error("{}: {reason}", path.display())]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// What went wrong, e.g. `cannot read: no such file or directory`.
        reason: String,
    },
    /// A directory given to [`load_dir`](super::load_dir) holds no `*.toml` file.
    #[error("{}: no *.toml files in this directory", dir.display())]
    NoFiles {
        /// The directory.
        dir: PathBuf,
    },
    /// The text is not valid UTF-8 or not valid TOML.
    #[error("{location}: {message}")]
    Syntax {
        /// Where the text stops being valid.
        location: Location,
        /// What is wrong.
        message: String,
    },
    /// The document is valid TOML but does not fit the schema (unknown or missing field, wrong
    /// type, a value that does not parse).
    #[error("{location}: {}{message}", field_prefix(field))]
    Schema {
        /// Where the offending key or value is.
        location: Location,
        /// The field path such as `virtual[0].real[1].weight`, if any.
        field: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// A semantic check of [`Validate`](super::Validate) failed.
    #[error("{location}: {}{message}", field_prefix(field))]
    Check {
        /// Where the offending value is.
        location: Location,
        /// The field path, if any.
        field: Option<String>,
        /// What is wrong.
        message: String,
    },
}

fn field_prefix(field: &Option<String>) -> String {
    match field {
        Some(field) if !field.is_empty() => format!("{field}: "),
        _ => String::new(),
    }
}

impl ConfigError {
    /// The location in a file, for the kinds that have one.
    pub fn location(&self) -> Option<&Location> {
        match self {
            ConfigError::Read { .. } | ConfigError::NoFiles { .. } => None,
            ConfigError::Syntax { location, .. }
            | ConfigError::Schema { location, .. }
            | ConfigError::Check { location, .. } => Some(location),
        }
    }

    /// The field path, for the kinds that have one.
    pub fn field(&self) -> Option<&str> {
        match self {
            ConfigError::Schema { field, .. } | ConfigError::Check { field, .. } => {
                field.as_deref()
            }
            _ => None,
        }
    }
}

/// Every problem found while loading, in file order and, within a file, in position order.
/// Displays one problem per line, without a trailing newline. Never empty when returned as an
/// error by this module.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigErrors(Vec<ConfigError>);

impl ConfigErrors {
    /// Wraps a list of problems, e.g. to add problems found across files by the caller.
    pub fn new(errors: Vec<ConfigError>) -> Self {
        ConfigErrors(errors)
    }

    /// The problems, in report order.
    pub fn errors(&self) -> &[ConfigError] {
        &self.0
    }

    /// Number of problems.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there is no problem.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds one problem at the end.
    pub fn push(&mut self, error: ConfigError) {
        self.0.push(error);
    }

    /// Adds all problems of `other` at the end.
    pub fn extend(&mut self, other: ConfigErrors) {
        self.0.extend(other.0);
    }

    /// Unwraps the list.
    pub fn into_vec(self) -> Vec<ConfigError> {
        self.0
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl From<ConfigError> for ConfigErrors {
    fn from(error: ConfigError) -> Self {
        ConfigErrors(vec![error])
    }
}

impl IntoIterator for ConfigErrors {
    type Item = ConfigError;
    type IntoIter = std::vec::IntoIter<ConfigError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// An OS error in words: `No such file or directory (os error 2)` becomes
/// `no such file or directory`.
pub(crate) fn io_reason(error: &std::io::Error) -> String {
    let text = error.to_string();
    let text = match text.rfind(" (os error ") {
        Some(i) if text.ends_with(')') => &text[..i],
        _ => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => format!("{:?}", error.kind()),
    }
}

/// A serde message rewritten for a user; `extra_field` is a key to append to the field path (the
/// missing field, which serde reports at its parent table).
pub(crate) struct Humanized {
    pub extra_field: Option<String>,
    pub message: String,
}

/// Rewrites serde's standard messages (`invalid type: …, expected …`, `missing field …`, …) in
/// plainer words with TOML's vocabulary (table, array). Messages it does not know pass unchanged.
pub(crate) fn humanize(message: &str) -> Humanized {
    let plain = |message: String| Humanized {
        extra_field: None,
        message,
    };
    if let Some(rest) = message.strip_prefix("missing field ")
        && let Some(name) = backticked(rest)
    {
        return Humanized {
            extra_field: Some(name.to_owned()),
            message: "required field is missing".to_owned(),
        };
    }
    if let Some(rest) = message.strip_prefix("invalid type: ")
        && let Some((unexpected, expected)) = rest.split_once(", expected ")
    {
        return plain(format!(
            "expected {}, found {}",
            expected_words(expected),
            unexpected_words(unexpected)
        ));
    }
    if let Some(rest) = message.strip_prefix("invalid value: ")
        && let Some((unexpected, expected)) = rest.split_once(", expected ")
    {
        if let (Some(range), Some(value)) = (
            integer_range(expected),
            unexpected
                .strip_prefix("integer `")
                .and_then(|s| s.strip_suffix('`')),
        ) {
            return plain(format!("must be {range}, got {value}"));
        }
        return plain(format!(
            "expected {}, found {}",
            expected_words(expected),
            unexpected_words(unexpected)
        ));
    }
    if let Some(rest) = message.strip_prefix("unknown field ")
        && let Some(name) = backticked(rest)
    {
        let known = known_names(rest);
        return plain(format!(
            "unknown field `{name}`{}",
            suggestion(name, &known)
        ));
    }
    if let Some(rest) = message.strip_prefix("unknown variant ")
        && let Some(name) = backticked(rest)
    {
        let known = known_names(rest);
        return plain(format!(
            "unknown value `{name}`{}",
            suggestion(name, &known)
        ));
    }
    if let Some(rest) = message.strip_prefix("duplicate field ")
        && let Some(name) = backticked(rest)
    {
        return plain(format!("field `{name}` is given twice"));
    }
    plain(message.to_owned())
}

/// The first `…`-quoted word of `text`.
fn backticked(text: &str) -> Option<&str> {
    let rest = text.strip_prefix('`')?;
    let end = rest.find('`')?;
    Some(&rest[..end])
}

/// The names after `expected` in serde's `unknown field`/`unknown variant` messages.
fn known_names(rest: &str) -> Vec<&str> {
    let Some((_, expected)) = rest.split_once(", expected ") else {
        return Vec::new();
    };
    expected.split('`').skip(1).step_by(2).collect()
}

/// `, did you mean `x`? expected one of `a`, `b`` or `, expected …` or `` when nothing is known.
fn suggestion(name: &str, known: &[&str]) -> String {
    let list = match known {
        [] => return String::new(),
        [one] => format!("`{one}`"),
        _ => {
            let quoted: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
            format!("one of {}", quoted.join(", "))
        }
    };
    match did_you_mean(name, known.iter().copied()) {
        Some(k) => format!(", did you mean `{k}`? expected {list}"),
        None => format!(", expected {list}"),
    }
}

/// The candidate closest to `name`, if it is close enough to be a likely typo: at most a third of
/// the candidate's length, and at least 1, apart. The distance counts a swap of two neighbouring
/// characters as one edit (optimal string alignment), ASCII case-insensitively.
/// Used for "did you mean" in configuration errors and on command lines.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let name = name.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|k| (strsim::osa_distance(&name, &k.to_ascii_lowercase()), k))
        .filter(|&(d, k)| d <= (k.chars().count() / 3).max(1))
        .min_by_key(|&(d, _)| d)
        .map(|(_, k)| k)
}

/// The range of serde's primitive integer names.
fn integer_range(expected: &str) -> Option<&'static str> {
    Some(match expected {
        "u8" => "0..=255",
        "u16" => "0..=65535",
        "u32" => "0..=4294967295",
        "u64" => "0..=18446744073709551615",
        "i8" => "-128..=127",
        "i16" => "-32768..=32767",
        "i32" => "-2147483648..=2147483647",
        "i64" => "-9223372036854775808..=9223372036854775807",
        _ => return None,
    })
}

fn expected_words(expected: &str) -> String {
    if let Some(range) = integer_range(expected) {
        return format!("an integer in {range}");
    }
    match expected {
        "f32" | "f64" => "a number".to_owned(),
        "a map" => "a table".to_owned(),
        "a sequence" => "an array".to_owned(),
        "a borrowed string" => "a string".to_owned(),
        "a boolean" => "true or false".to_owned(),
        "unit" => "nothing".to_owned(),
        other if other.starts_with("struct ") => "a table".to_owned(),
        other if other.starts_with("enum ") => "one of the listed values".to_owned(),
        other if other.starts_with("tuple of ") => format!("an array ({other})"),
        other => other.to_owned(),
    }
}

fn unexpected_words(unexpected: &str) -> String {
    let quoted = |prefix: &str| {
        unexpected
            .strip_prefix(prefix)
            .and_then(|s| s.strip_prefix('`'))
            .and_then(|s| s.strip_suffix('`'))
            .map(str::to_owned)
    };
    if let Some(v) = quoted("integer ") {
        return format!("the integer {v}");
    }
    if let Some(v) = quoted("floating point ") {
        return format!("the number {v}");
    }
    if let Some(v) = quoted("boolean ") {
        return v;
    }
    match unexpected {
        "map" => "a table".to_owned(),
        "sequence" => "an array".to_owned(),
        other if other.starts_with("string ") => format!("the {other}"),
        other => other.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_counts_characters_from_one() {
        let text = "a = 1\nbé = \"x\"\n";
        assert_eq!(
            Position::of_offset(text, 0),
            Position { line: 1, column: 1 }
        );
        assert_eq!(
            Position::of_offset(text, 6),
            Position { line: 2, column: 1 }
        );
        // "bé = " is 6 bytes but 5 characters.
        assert_eq!(
            Position::of_offset(text, 12),
            Position { line: 2, column: 6 }
        );
        // Inside the two-byte 'é', and past the end.
        assert_eq!(
            Position::of_offset(text, 8),
            Position { line: 2, column: 2 }
        );
        assert_eq!(
            Position::of_offset(text, 99),
            Position { line: 3, column: 1 }
        );
        assert_eq!(Position::of_offset("", 5), Position { line: 1, column: 1 });
    }

    #[test]
    fn io_reasons_are_words() {
        let e = std::io::Error::from_raw_os_error(2);
        assert_eq!(io_reason(&e), "no such file or directory");
        let e = std::io::Error::from_raw_os_error(13);
        assert_eq!(io_reason(&e), "permission denied");
    }

    #[test]
    fn serde_messages_are_rewritten() {
        let h = |m: &str| humanize(m).message;
        assert_eq!(
            h("invalid value: integer `-1`, expected u16"),
            "must be 0..=65535, got -1"
        );
        assert_eq!(
            h("invalid type: string \"high\", expected u16"),
            "expected an integer in 0..=65535, found the string \"high\""
        );
        assert_eq!(
            h("invalid type: integer `3`, expected struct Real"),
            "expected a table, found the integer 3"
        );
        assert_eq!(
            h("invalid type: map, expected a sequence"),
            "expected an array, found a table"
        );
        assert_eq!(
            h("unknown field `wieght`, expected `address` or `weight`"),
            "unknown field `wieght`, did you mean `weight`? expected one of `address`, `weight`"
        );
        assert_eq!(
            h("unknown field `x`, expected `address`"),
            "unknown field `x`, expected `address`"
        );
        assert_eq!(
            h("unknown field `x`, there are no fields"),
            "unknown field `x`"
        );
        assert_eq!(
            h("unknown variant `fastest`, expected one of `rr`, `wrr`"),
            "unknown value `fastest`, expected one of `rr`, `wrr`"
        );
        let missing = humanize("missing field `address`");
        assert_eq!(missing.extra_field.as_deref(), Some("address"));
        assert_eq!(missing.message, "required field is missing");
        assert_eq!(h("something else"), "something else");
    }

    #[test]
    fn suggestions_are_close_names_only() {
        let kinds = ["tcp", "http", "https", "ping", "external"];
        assert_eq!(did_you_mean("htp", kinds), Some("http"));
        assert_eq!(did_you_mean("HTTPS", kinds), Some("https"));
        assert_eq!(did_you_mean("extrenal", kinds), Some("external"));
        // A swap is one edit: within a third of a short name.
        assert_eq!(did_you_mean("pnig", kinds), Some("ping"));
        assert_eq!(did_you_mean("gnip", kinds), None);
        assert_eq!(did_you_mean("gopher", kinds), None);
        assert_eq!(did_you_mean("x", kinds), None);
        assert_eq!(did_you_mean("x", []), None);
    }

    #[test]
    fn display_omits_absent_parts() {
        let at = |position| Location {
            file: "f.toml".into(),
            position,
        };
        let errors = ConfigErrors::new(vec![
            ConfigError::Syntax {
                location: at(Some(Position { line: 2, column: 3 })),
                message: "bad".into(),
            },
            ConfigError::Check {
                location: at(None),
                field: Some("a.b".into()),
                message: "worse".into(),
            },
            ConfigError::Read {
                path: "/nope".into(),
                reason: "cannot read: no such file or directory".into(),
            },
        ]);
        assert_eq!(
            errors.to_string(),
            "f.toml:2:3: bad\nf.toml: a.b: worse\n/nope: cannot read: no such file or directory"
        );
    }
}
