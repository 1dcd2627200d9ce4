//! Small text types shared by probe kinds: [`Pattern`] (a regex that compares and hashes by its
//! source, so probes stay `Eq + Hash`), [`unescape`] for payloads written as text (`\r\n`, `\x00`),
//! [`WireText`] for values a probe sends as is (no control characters: no CR LF injection), and a
//! shell-like argv splitter for external commands (`shlex`). No I/O.

use std::fmt;
use std::hash::{Hash, Hasher};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A regular expression (the `regex` crate's syntax, close to Perl's for what checks use), compiled
/// when the configuration is read, so a bad one is a configuration error with its location.
/// `^` and `$` match at the start and end of every line, so `"^OK$"` matches an answer `"OK\n"` as
/// ldirectord's Perl `receive` does (Perl's `$` also matches before a final newline).
#[derive(Clone)]
pub struct Pattern(regex::bytes::Regex);

impl Pattern {
    /// Compiles `source`; the error says what is wrong with it.
    pub fn new(source: &str) -> Result<Pattern, String> {
        regex::bytes::RegexBuilder::new(source)
            .multi_line(true)
            .build()
            .map(Pattern)
            .map_err(|e| {
                format!(
                    "not a valid regex: {}",
                    e.to_string().lines().last().unwrap_or("").trim()
                )
            })
    }

    /// Whether the pattern matches somewhere in `haystack` (bytes, which need not be UTF-8).
    pub fn is_match(&self, haystack: &[u8]) -> bool {
        self.0.is_match(haystack)
    }

    /// The source the pattern was compiled from.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pattern({:?})", self.as_str())
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Pattern {}

impl Hash for Pattern {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl Serialize for Pattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Pattern::new(&s).map_err(serde::de::Error::custom)
    }
}

/// Turns `\n`, `\r`, `\t`, `\\`, `\0` and `\xNN` into bytes; any other character stands for its
/// UTF-8 bytes. ldirectord expands `\n` in simpletcp requests (classic-tools.md §1.4); the rest
/// lets binary payloads (UDP, RADIUS-like) be written in a TOML string.
pub fn unescape(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        match chars.next() {
            Some('n') => out.push(b'\n'),
            Some('r') => out.push(b'\r'),
            Some('t') => out.push(b'\t'),
            Some('0') => out.push(0),
            Some('\\') => out.push(b'\\'),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                match u8::from_str_radix(&hex, 16) {
                    Ok(b) if hex.len() == 2 => out.push(b),
                    _ => {
                        return Err(format!(
                            "\\x must be followed by two hex digits, got {hex:?}"
                        ));
                    }
                }
            }
            Some(other) => {
                return Err(format!(
                    "unknown escape \\{other} (use \\n \\r \\t \\0 \\\\ \\xNN)"
                ));
            }
            None => return Err("ends with a lone backslash".to_string()),
        }
    }
    Ok(out)
}

/// A payload written as text with escapes ([`unescape`]); kept as written, checked when read.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Payload(String);

impl Payload {
    /// Checks the escapes of `s`.
    pub fn new(s: &str) -> Result<Payload, String> {
        unescape(s)?;
        Ok(Payload(s.to_string()))
    }

    /// The bytes to send.
    pub fn bytes(&self) -> Vec<u8> {
        unescape(&self.0).unwrap_or_default()
    }

    /// As written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Payload::new(&s).map_err(serde::de::Error::custom)
    }
}

/// Splits a command line into words like a POSIX shell would, without running one (`shlex`):
/// words are separated by blanks, `'…'` keeps everything literally, `"…"` keeps blanks and honours
/// `\"`, `\\`, `\$` and `` \` ``, a backslash outside quotes escapes the next character, and a `#`
/// at the start of a word begins a comment. No variables, globs or operators.
pub fn split_words(line: &str) -> Result<Vec<String>, String> {
    shlex::split(line)
        .ok_or_else(|| "unterminated quote or a lone backslash at the end".to_string())
}

/// Text that a probe puts into a protocol message as is (an SMTP EHLO name, an FTP user, an LDAP
/// DN, a SIP user): one line without control characters (C0, DEL, C1), so a configuration cannot
/// smuggle a second command (`"probe\r\nDELE x"`) or cut a NUL-terminated field short.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct WireText(String);

impl WireText {
    /// Checks `s`; the error names the first control character and where it is.
    pub fn new(s: &str) -> Result<WireText, String> {
        check_wire_text(s)?;
        Ok(WireText(s.to_string()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why `s` cannot go onto the wire as is, if it cannot: the first control character.
pub fn check_wire_text(s: &str) -> Result<(), String> {
    match s.char_indices().find(|(_, c)| c.is_control()) {
        None => Ok(()),
        Some((at, c)) => Err(format!(
            "contains the control character {c:?} (U+{:04X}) at byte {at}: a value sent to the \
             server must be one line of printable text",
            c as u32
        )),
    }
}

impl std::ops::Deref for WireText {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WireText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Deserializes the [`WireText`] field `field`, naming it in the error: a probe's fields are
/// flattened into the table that holds the probe, where serde loses the field's own path.
pub(super) fn wire<'de, D: Deserializer<'de>>(d: D, field: &str) -> Result<WireText, D::Error> {
    let s = String::deserialize(d)?;
    WireText::new(&s).map_err(|e| serde::de::Error::custom(format!("{field}: {e}")))
}

/// [`wire`] for an optional field (with `#[serde(default)]`).
pub(super) fn wire_opt<'de, D: Deserializer<'de>>(
    d: D,
    field: &str,
) -> Result<Option<WireText>, D::Error> {
    wire(d, field).map(Some)
}

/// `deserialize_with` for the optional `user` that ftp, mysql, pgsql and sip send on the wire.
pub(super) fn de_user<'de, D: Deserializer<'de>>(d: D) -> Result<Option<WireText>, D::Error> {
    wire_opt(d, "user")
}

impl<'de> Deserialize<'de> for WireText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        WireText::new(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes() {
        assert_eq!(unescape("a\\r\\n\\x00\\\\").unwrap(), b"a\r\n\0\\");
        assert!(unescape("\\xZ1").unwrap_err().contains("two hex digits"));
        assert!(unescape("\\q").unwrap_err().contains("unknown escape"));
        assert!(unescape("a\\").is_err());
    }

    #[test]
    fn splits_like_a_shell() {
        assert_eq!(
            split_words("  /bin/check -p 80 ").unwrap(),
            ["/bin/check", "-p", "80"]
        );
        assert_eq!(
            split_words("sh -c 'exit 1; echo x'").unwrap(),
            ["sh", "-c", "exit 1; echo x"]
        );
        assert_eq!(
            split_words(r#"a "b \"c\" d" e\ f ''"#).unwrap(),
            ["a", "b \"c\" d", "e f", ""]
        );
        assert!(split_words("'open").is_err());
        assert!(split_words("a\\").is_err());
        assert_eq!(split_words("check # a comment").unwrap(), ["check"]);
    }

    #[test]
    fn wire_text_refuses_control_characters() {
        assert_eq!(
            WireText::new("lb1.example.org").unwrap().as_str(),
            "lb1.example.org"
        );
        assert_eq!(
            &*WireText::new("cn=probe, dc=example").unwrap(),
            "cn=probe, dc=example"
        );
        for bad in ["a\rb", "a\nb", "\0", "tab\there", "del\u{7f}", "c1\u{85}"] {
            let e = WireText::new(bad).unwrap_err();
            assert!(e.contains("control character"), "{bad:?}: {e}");
        }
        assert!(
            WireText::new("probe\r\nDELE x")
                .unwrap_err()
                .starts_with("contains the control character '\\r' (U+000D) at byte 5")
        );
        let e = toml::from_str::<std::collections::HashMap<String, WireText>>("v = \"a\\nb\"")
            .unwrap_err();
        assert!(e.to_string().contains("control character"), "{e}");
    }

    #[test]
    fn anchors_match_at_line_ends() {
        let p = Pattern::new("^r1$").unwrap();
        assert!(p.is_match(b"r1\n"));
        assert!(p.is_match(b"head\nr1\r\n".strip_suffix(b"\r\n").unwrap()));
        assert!(!p.is_match(b"r12\n"));
    }

    #[test]
    fn patterns_compare_by_source() {
        assert_eq!(Pattern::new("^OK").unwrap(), Pattern::new("^OK").unwrap());
        assert!(
            Pattern::new("(")
                .unwrap_err()
                .starts_with("not a valid regex")
        );
    }
}
