//! Reading files and directories, deserializing with a field path, and running the checks.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use super::error::{ConfigError, ConfigErrors, Location, Position, humanize, io_reason};
use super::validate::{Validate, Validator, push_index, push_key};

/// Parses `text` as TOML into `T`, then runs `T`'s [`Validate`] checks.
///
/// `name` is the file name used in messages. On error, every problem is returned: the first one
/// serde meets, or all problems the checks report.
pub fn parse_str<T: DeserializeOwned + Validate>(
    name: &str,
    text: &str,
) -> Result<T, ConfigErrors> {
    let at = |span: Option<std::ops::Range<usize>>| Location {
        file: name.to_owned(),
        position: span.map(|s| Position::of_offset(text, s.start)),
    };

    // The plain subset of TOML first (see `fast`): `ldir check` of 1,000 files (583 KB) took 106 M
    // instructions with the toml crate alone, 62 M with this reader first (callgrind).
    // A file outside it, or a value `T` refuses, goes the toml crate's way, which words the errors.
    if let Some(value) = super::fast::parse(text).and_then(|doc| T::deserialize(doc).ok()) {
        return validated(value, &at);
    }

    let deserializer = match toml::Deserializer::parse(text) {
        Ok(deserializer) => deserializer,
        Err(e) => {
            return Err(ConfigError::Syntax {
                location: at(e.span()),
                message: one_line(&syntax_message(&e, text)),
            }
            .into());
        }
    };

    // The plain deserializer first: path tracking costs a large share of a 1,000-file load
    // (callgrind, `ldir check` of 1,000 virtuals x 10 reals: 211 M instructions with it on every
    // file). Only a failure parses again, with tracking, to name the field.
    let value: T = match T::deserialize(deserializer) {
        Ok(value) => value,
        Err(plain) => {
            let tracked = toml::Deserializer::parse(text)
                .ok()
                .map(serde_path_to_error::deserialize::<_, T>);
            let (path, inner) = match tracked {
                Some(Err(e)) => (Some(e.path().clone()), e.into_inner()),
                _ => (None, plain),
            };
            let mut field = path.as_ref().map(field_path).unwrap_or_default();
            let humanized = humanize(inner.message());
            if let Some(extra) = &humanized.extra_field {
                push_key(&mut field, extra);
            }
            let mut message = humanized.message;
            if message == "expected an array, found a table" && !field.is_empty() {
                // The usual slip: `[name]` where the schema wants `[[name]]` (array of tables).
                message.push_str(&format!(
                    "; write [[{}]] for each entry",
                    path.as_ref().map(table_header).unwrap_or_default()
                ));
            }
            return Err(ConfigError::Schema {
                location: at(inner.span()),
                field: Some(field).filter(|f| !f.is_empty()),
                message: one_line(&message),
            }
            .into());
        }
    };

    validated(value, &at)
}

/// `value` if `T`'s checks pass, else every problem they report, in file order.
fn validated<T: Validate>(
    value: T,
    at: &dyn Fn(Option<std::ops::Range<usize>>) -> Location,
) -> Result<T, ConfigErrors> {
    let mut validator = Validator::new();
    value.validate(&mut validator);
    let mut problems = validator.into_problems();
    if problems.is_empty() {
        return Ok(value);
    }
    // Report in file order; problems that cannot be placed come last.
    problems.sort_by_key(|p| p.span.as_ref().map_or(usize::MAX, |s| s.start));
    Err(ConfigErrors::new(
        problems
            .into_iter()
            .map(|p| ConfigError::Check {
                location: at(p.span),
                field: Some(p.field).filter(|f| !f.is_empty()),
                message: one_line(&p.message),
            })
            .collect(),
    ))
}

/// Reads the TOML file at `path` and parses it with [`parse_str`], naming it as `path` shows.
pub fn load_file<T: DeserializeOwned + Validate>(
    path: impl AsRef<Path>,
) -> Result<T, ConfigErrors> {
    let path = path.as_ref();
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| ConfigError::Read {
        path: path.to_owned(),
        reason: format!("cannot read: {}", io_reason(&e)),
    })?;
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let valid_up_to = e.utf8_error().valid_up_to();
            let bytes = e.as_bytes();
            // The valid prefix locates the bad byte; the text after it does not matter.
            let prefix = std::str::from_utf8(&bytes[..valid_up_to]).unwrap_or_default();
            return Err(ConfigError::Syntax {
                location: Location {
                    file: name,
                    position: Some(Position::of_offset(prefix, valid_up_to)),
                },
                message: format!(
                    "not valid UTF-8 (byte 0x{:02x}); TOML files must be UTF-8",
                    bytes[valid_up_to]
                ),
            }
            .into());
        }
    };
    parse_str(&name, &text)
}

/// Loads every `*.toml` file directly in `dir`, in byte order of their names.
///
/// Sub-directories, files with other extensions and hidden files (name starting with `.`, e.g.
/// editor backups) are ignored; symbolic links are followed. Problems of all files are reported
/// together. A missing or unreadable directory, or one without any `*.toml` file, is an error.
pub fn load_dir<T: DeserializeOwned + Validate>(
    dir: impl AsRef<Path>,
) -> Result<Vec<(PathBuf, T)>, ConfigErrors> {
    let dir = dir.as_ref();
    let list_error = |e: std::io::Error| ConfigError::Read {
        path: dir.to_owned(),
        reason: format!("cannot list directory: {}", io_reason(&e)),
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(list_error)? {
        let entry = entry.map_err(list_error)?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.as_encoded_bytes();
        if name.starts_with(b".") || !name.ends_with(b".toml") {
            continue;
        }
        // Follows symbolic links; a dangling link is kept so that reading it reports why. The
        // directory entry's own type spares a stat per file (1,000 files: 1,000 system calls).
        let dir_like = match entry.file_type() {
            Ok(t) if t.is_file() => false,
            Ok(t) if t.is_dir() => true,
            _ => std::fs::metadata(&path).is_ok_and(|m| m.is_dir()),
        };
        if dir_like {
            continue;
        }
        files.push(path);
    }
    if files.is_empty() {
        return Err(ConfigError::NoFiles {
            dir: dir.to_owned(),
        }
        .into());
    }
    files.sort();

    let mut loaded = Vec::with_capacity(files.len());
    let mut errors = ConfigErrors::default();
    for path in files {
        match load_file(&path) {
            Ok(value) => loaded.push((path, value)),
            Err(e) => errors.extend(e),
        }
    }
    if errors.is_empty() {
        Ok(loaded)
    } else {
        Err(errors)
    }
}

/// Deserializes an already parsed TOML value into `T`, for schemas that assemble a value from
/// several tables (ldir merges `[check]` defaults, the virtual's and a real's overrides) before
/// handing it to a type's own `Deserialize`. On error: the field path inside `value` (empty for the
/// value itself) and the message in the same words [`parse_str`] uses. Spans are the caller's to
/// supply: a `toml::Value` has none.
pub fn from_value<T: DeserializeOwned>(value: toml::Value) -> Result<T, (String, String)> {
    match serde_path_to_error::deserialize(value) {
        Ok(value) => Ok(value),
        Err(e) => {
            let mut field = field_path(e.path());
            let humanized = humanize(e.inner().message());
            if let Some(extra) = &humanized.extra_field {
                push_key(&mut field, extra);
            }
            Err((field, one_line(&humanized.message)))
        }
    }
}

/// The field path of a serde error without the private keys of `toml::Spanned` and datetimes.
fn field_path(path: &serde_path_to_error::Path) -> String {
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            serde_path_to_error::Segment::Seq { index } => push_index(&mut out, *index),
            serde_path_to_error::Segment::Map { key }
            | serde_path_to_error::Segment::Enum { variant: key } => {
                if !key.starts_with("$__") {
                    push_key(&mut out, key);
                }
            }
            serde_path_to_error::Segment::Unknown => push_key(&mut out, "?"),
        }
    }
    out
}

/// The dotted key of a TOML table header for a path: `virtual[0].real` becomes `virtual.real`.
fn table_header(path: &serde_path_to_error::Path) -> String {
    let mut out = String::new();
    for segment in path.iter() {
        if let serde_path_to_error::Segment::Map { key } = segment
            && !key.starts_with("$__")
        {
            push_key(&mut out, key);
        }
    }
    out
}

/// toml's parse message, naming the key for a duplicate.
fn syntax_message(e: &toml::de::Error, text: &str) -> String {
    let message = e.message().trim_end();
    if message == "duplicate key"
        && let Some(key) = e.span().and_then(|s| text.get(s)).filter(|k| !k.is_empty())
    {
        return format!("duplicate key `{key}`");
    }
    message.to_owned()
}

/// Keeps the one-problem-per-line format even when a message quotes a key with a line break.
fn one_line(message: &str) -> String {
    message.replace('\n', "\\n").replace('\r', "\\r")
}
