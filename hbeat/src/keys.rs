//! The key file (`key_file` in the config): the shared secrets that sign and check heartbeat frames.
//!
//! Format, one key a line, blank lines and `#` comments (whole line or after the key) ignored:
//! ```text
//! # hbeat key file: mode 0600 (or 0400), identical on every node of the cluster
//! 2 5d1c0f0e3b9a47c2d8e6f1a0b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f
//! 1 0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0
//! ```
//! `<id> <secret>`: the id is 1..=255 (it travels in every frame so the receiver knows which key
//! checks it); the secret is exactly 32 bytes written as 64 hex digits. The first key listed signs
//! what this node sends; frames signed with any listed key are accepted. Rotation: add the new key
//! as the second line everywhere, then move it first everywhere, then drop the old one.
//!
//! [`KeyRing::parse`] is pure; [`KeyRing::load`] adds the file checks: the file must be mode 0600 or
//! 0400 (a secret others can read is no secret: refuse to start and say so), at most
//! [`MAX_FILE_LEN`] bytes. [`keygen`] writes a new file's text. This module does not keep secrets
//! out of swap or core dumps.

use std::fmt;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The length of a secret in bytes: HMAC-SHA256's block-size-independent recommended minimum is
/// the hash length (RFC 2104 §3: keys shorter than L bytes are discouraged).
pub const SECRET_LEN: usize = 32;

/// A key file larger than this is not a key file (255 keys of ~70 bytes are < 18 KiB).
pub const MAX_FILE_LEN: u64 = 64 * 1024;

/// One key: its id and its secret, kept as a keyed HMAC state (cloned per frame).
#[derive(Clone)]
pub struct Key {
    id: u8,
    mac: Hmac<Sha256>,
}

impl Key {
    /// A key from its id (1..=255) and secret.
    pub fn new(id: u8, secret: &[u8; SECRET_LEN]) -> Key {
        let mac =
            <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC accepts keys of any length");
        Key { id, mac }
    }

    /// The id carried in frames signed with this key.
    pub fn id(&self) -> u8 {
        self.id
    }

    /// A fresh HMAC-SHA256 state keyed with this key's secret.
    pub fn mac(&self) -> Hmac<Sha256> {
        self.mac.clone()
    }
}

impl fmt::Debug for Key {
    // Never print a secret, not even in a debug log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The keys of a key file, in file order: never empty, ids distinct.
#[derive(Clone, Debug)]
pub struct KeyRing {
    keys: Vec<Key>,
}

/// What is wrong with a key file.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{file}: cannot read the key file: {source}")]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{file}: the key file has mode {mode:04o}; it must be 0600 or 0400 (readable by its owner only): chmod 600 {file}"
    )]
    Mode { file: PathBuf, mode: u32 },
    #[error("{file}: not a regular file")]
    NotAFile { file: PathBuf },
    #[error("{file}: the key file is larger than {MAX_FILE_LEN} bytes")]
    TooLarge { file: PathBuf },
    #[error("{file}: the key file holds no key (write one with `hbeat keygen > {file}`)")]
    Empty { file: PathBuf },
    #[error("{file}:{line}:{col}: {what}")]
    Malformed {
        file: PathBuf,
        line: usize,
        col: usize,
        what: String,
    },
    #[error("{file}:{line}:1: key id {id} is listed twice (first at line {first})")]
    DuplicateId {
        file: PathBuf,
        line: usize,
        id: u8,
        first: usize,
    },
}

impl KeyRing {
    /// A ring from keys in order (the first signs); `None` when empty or an id repeats.
    pub fn new(keys: Vec<Key>) -> Option<KeyRing> {
        let distinct = keys
            .iter()
            .enumerate()
            .all(|(i, k)| keys[..i].iter().all(|o| o.id != k.id));
        (!keys.is_empty() && distinct).then_some(KeyRing { keys })
    }

    /// Parses a key file's text; `file` only names it in errors.
    pub fn parse(text: &str, file: &Path) -> Result<KeyRing, KeyError> {
        let mut keys: Vec<(Key, usize)> = Vec::new();
        for (n, raw) in text.lines().enumerate() {
            let line = n + 1;
            let content = raw.split('#').next().unwrap_or("");
            let malformed = |col: usize, what: String| KeyError::Malformed {
                file: file.to_path_buf(),
                line,
                col,
                what,
            };
            let mut fields = fields_with_columns(content);
            let Some((id_col, id_text)) = fields.next() else {
                continue;
            };
            let id = match id_text.parse::<u8>() {
                Ok(id) if id >= 1 => id,
                _ => {
                    return Err(malformed(
                        id_col,
                        format!("key id must be 1..=255, got '{id_text}'"),
                    ));
                }
            };
            let Some((sec_col, sec_text)) = fields.next() else {
                return Err(malformed(
                    id_col + id_text.len(),
                    format!(
                        "key {id} has no secret: expected '<id> <{} hex digits>'",
                        2 * SECRET_LEN
                    ),
                ));
            };
            let secret =
                parse_hex(sec_text).map_err(|(off, what)| malformed(sec_col + off, what))?;
            if let Some((extra_col, _)) = fields.next() {
                return Err(malformed(
                    extra_col,
                    "unexpected text after the secret (a comment starts with '#')".into(),
                ));
            }
            if let Some((_, first)) = keys.iter().find(|(k, _)| k.id == id) {
                return Err(KeyError::DuplicateId {
                    file: file.to_path_buf(),
                    line,
                    id,
                    first: *first,
                });
            }
            keys.push((Key::new(id, &secret), line));
        }
        if keys.is_empty() {
            return Err(KeyError::Empty {
                file: file.to_path_buf(),
            });
        }
        Ok(KeyRing {
            keys: keys.into_iter().map(|(k, _)| k).collect(),
        })
    }

    /// Reads and parses the key file at `path`, refusing one that group or others may read or
    /// write (mode other than 0600 or 0400). The mode is checked on the opened file, not the path,
    /// so that the file read is the file checked.
    pub fn load(path: &Path) -> Result<KeyRing, KeyError> {
        let io = |source| KeyError::Io {
            file: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        if !meta.is_file() {
            return Err(KeyError::NotAFile {
                file: path.to_path_buf(),
            });
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode != 0o600 && mode != 0o400 {
            return Err(KeyError::Mode {
                file: path.to_path_buf(),
                mode,
            });
        }
        let mut text = String::new();
        // One byte past the limit tells "too large" from "exactly the limit".
        file.take(MAX_FILE_LEN + 1)
            .read_to_string(&mut text)
            .map_err(io)?;
        if text.len() as u64 > MAX_FILE_LEN {
            return Err(KeyError::TooLarge {
                file: path.to_path_buf(),
            });
        }
        KeyRing::parse(&text, path)
    }

    /// The key that signs what this node sends: the first listed.
    pub fn sending(&self) -> &Key {
        &self.keys[0]
    }

    /// The key with this id, if listed.
    pub fn get(&self, id: u8) -> Option<&Key> {
        self.keys.iter().find(|k| k.id == id)
    }

    /// The listed ids, in file order.
    pub fn ids(&self) -> impl Iterator<Item = u8> + '_ {
        self.keys.iter().map(|k| k.id)
    }
}

/// Whitespace-separated fields with their 1-based columns (in characters).
fn fields_with_columns(s: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut rest = s;
    let mut col = 1;
    std::iter::from_fn(move || {
        let trimmed = rest.trim_start();
        col += rest[..rest.len() - trimmed.len()].chars().count();
        if trimmed.is_empty() {
            return None;
        }
        let end = trimmed.find(char::is_whitespace).unwrap_or(trimmed.len());
        let (field, after) = trimmed.split_at(end);
        let at = col;
        col += field.chars().count();
        rest = after;
        Some((at, field))
    })
}

/// 64 hex digits into 32 bytes; on error the 0-based column offset of the problem and what it is.
fn parse_hex(s: &str) -> Result<[u8; SECRET_LEN], (usize, String)> {
    let mut out = [0u8; SECRET_LEN];
    for (i, c) in s.chars().enumerate() {
        let Some(v) = c.to_digit(16) else {
            return Err((i, format!("'{c}' is not a hex digit in the secret")));
        };
        if i >= 2 * SECRET_LEN {
            break;
        }
        out[i / 2] |= (v as u8) << if i % 2 == 0 { 4 } else { 0 };
    }
    let n = s.chars().count();
    if n != 2 * SECRET_LEN {
        return Err((
            0,
            format!(
                "the secret must be {} hex digits ({SECRET_LEN} bytes), got {n}",
                2 * SECRET_LEN
            ),
        ));
    }
    Ok(out)
}

/// A new key file's text holding one key with this id and secret.
pub fn keygen(id: u8, secret: &[u8; SECRET_LEN]) -> String {
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "# hbeat key file: install it as the same file on every node, mode 0600 (chmod 600 FILE).\n\
         # One key a line: <id 1-255> <{} hex digits>. The first signs; every listed key is accepted.\n\
         {id} {hex}\n",
        2 * SECRET_LEN
    )
}

/// 32 bytes from the kernel's CSPRNG (`/dev/urandom`, which never blocks once seeded at boot).
pub fn random_secret() -> std::io::Result<[u8; SECRET_LEN]> {
    let mut secret = [0u8; SECRET_LEN];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut secret)?;
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S1: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
    const S2: &str = "5d1c0f0e3b9a47c2d8e6f1a0b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6";

    fn parse(text: &str) -> Result<KeyRing, KeyError> {
        KeyRing::parse(text, Path::new("/etc/hbeat/authkey"))
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    fn tag(key: &Key, data: &[u8]) -> Vec<u8> {
        let mut m = key.mac();
        m.update(data);
        m.finalize().into_bytes().to_vec()
    }

    #[test]
    fn parses_keys_in_order_with_comments_and_blank_lines() {
        let ring = parse(&format!(
            "# rotation in progress\n\n  7 {S2}   # new\n1\t{S1}\n"
        ))
        .unwrap();
        assert_eq!(ring.ids().collect::<Vec<_>>(), [7, 1]);
        assert_eq!(ring.sending().id(), 7);
        assert!(ring.get(1).is_some() && ring.get(2).is_none());
    }

    #[test]
    fn secret_bytes_are_the_hex_digits() {
        // The hex digits (either case) are the key bytes: HMAC with the parsed key must equal
        // HMAC keyed with the bytes decoded independently here.
        let ring = parse(&format!("1 {}\n", S1.to_uppercase())).unwrap();
        let raw: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(&S1[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&raw).unwrap();
        m.update(b"x");
        assert_eq!(
            tag(ring.sending(), b"x"),
            m.finalize().into_bytes().to_vec()
        );
    }

    #[test]
    fn empty_file_is_refused() {
        for text in ["", "\n\n", "# only a comment\n   \n"] {
            assert_eq!(
                err(text),
                "/etc/hbeat/authkey: the key file holds no key (write one with `hbeat keygen > /etc/hbeat/authkey`)"
            );
        }
    }

    #[test]
    fn duplicate_id_names_both_lines() {
        assert_eq!(
            err(&format!("3 {S1}\n# x\n3 {S2}\n")),
            "/etc/hbeat/authkey:3:1: key id 3 is listed twice (first at line 1)"
        );
    }

    #[test]
    fn malformed_lines_say_where_and_what() {
        let cases = [
            (format!("0 {S1}"), "1:1: key id must be 1..=255, got '0'"),
            (
                format!("256 {S1}"),
                "1:1: key id must be 1..=255, got '256'",
            ),
            (
                format!("\n  x {S1}"),
                "2:3: key id must be 1..=255, got 'x'",
            ),
            ("1\n".to_string(), "1:2: key 1 has no secret"),
            (
                format!("1 {}", &S1[..62]),
                "1:3: the secret must be 64 hex digits (32 bytes), got 62",
            ),
            (
                format!("1 {S1}00"),
                "1:3: the secret must be 64 hex digits (32 bytes), got 66",
            ),
            (
                format!("1 {}g{}", &S1[..10], &S1[11..]),
                "1:13: 'g' is not a hex digit",
            ),
            (
                format!("1 {S1} extra"),
                "1:68: unexpected text after the secret",
            ),
        ];
        for (text, want) in cases {
            let got = err(&text);
            assert!(
                got.starts_with(&format!("/etc/hbeat/authkey:{want}")),
                "{text:?}: {got}"
            );
        }
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let ring = parse(&format!("1 {S1}\n")).unwrap();
        let shown = format!("{ring:?}");
        assert!(
            shown.contains("id: 1") && !shown.contains("0f1e"),
            "{shown}"
        );
    }

    #[test]
    fn keygen_output_parses_back_to_the_same_key() {
        let secret: [u8; 32] = std::array::from_fn(|i| (i * 7) as u8);
        let ring = parse(&keygen(9, &secret)).unwrap();
        assert_eq!(ring.ids().collect::<Vec<_>>(), [9]);
        assert_eq!(tag(ring.sending(), b"m"), tag(&Key::new(9, &secret), b"m"));
    }

    #[test]
    fn random_secrets_differ() {
        let (a, b) = (random_secret().unwrap(), random_secret().unwrap());
        assert_ne!(a, b);
        assert_ne!(a, [0; 32]);
    }

    #[test]
    fn new_refuses_empty_and_duplicate_ids() {
        let k = |id| Key::new(id, &[1; 32]);
        assert!(KeyRing::new(vec![]).is_none());
        assert!(KeyRing::new(vec![k(1), k(1)]).is_none());
        assert_eq!(KeyRing::new(vec![k(2), k(1)]).unwrap().sending().id(), 2);
    }

    mod load {
        use super::*;
        use std::fs;

        fn write(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
            let p = dir.join(name);
            fs::write(&p, text).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
            p
        }

        fn tmpdir(name: &str) -> PathBuf {
            let d = std::env::temp_dir().join(format!("hbeat-keys-{}-{name}", std::process::id()));
            let _ = fs::remove_dir_all(&d);
            fs::create_dir_all(&d).unwrap();
            d
        }

        #[test]
        fn accepts_0600_and_0400() {
            let d = tmpdir("ok");
            for mode in [0o600, 0o400] {
                let p = write(&d, &format!("k{mode:o}"), &format!("1 {S1}\n"), mode);
                assert_eq!(KeyRing::load(&p).unwrap().sending().id(), 1);
            }
            fs::remove_dir_all(&d).unwrap();
        }

        #[test]
        fn refuses_group_or_other_access_naming_path_and_mode() {
            let d = tmpdir("mode");
            for mode in [0o644, 0o640, 0o604, 0o620, 0o602, 0o700, 0o660, 0o4600] {
                let p = write(&d, "authkey", &format!("1 {S1}\n"), mode);
                let e = KeyRing::load(&p).unwrap_err().to_string();
                assert_eq!(
                    e,
                    format!(
                        "{}: the key file has mode {mode:04o}; it must be 0600 or 0400 (readable by its owner only): chmod 600 {}",
                        p.display(),
                        p.display()
                    )
                );
            }
            fs::remove_dir_all(&d).unwrap();
        }

        #[test]
        fn refuses_empty_missing_directory_and_huge() {
            let d = tmpdir("bad");
            let p = write(&d, "empty", "", 0o600);
            assert!(matches!(KeyRing::load(&p), Err(KeyError::Empty { .. })));
            let missing = d.join("missing");
            let e = KeyRing::load(&missing).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!(
                    "{}: cannot read the key file: ",
                    missing.display()
                )),
                "{e}"
            );
            let sub = d.join("sub");
            fs::create_dir(&sub).unwrap();
            fs::set_permissions(&sub, fs::Permissions::from_mode(0o600)).unwrap();
            assert!(matches!(
                KeyRing::load(&sub),
                Err(KeyError::NotAFile { .. })
            ));
            fs::set_permissions(&sub, fs::Permissions::from_mode(0o700)).unwrap();
            let huge = format!("1 {S1}\n{}", "#".repeat(MAX_FILE_LEN as usize));
            let p = write(&d, "huge", &huge, 0o600);
            assert!(matches!(KeyRing::load(&p), Err(KeyError::TooLarge { .. })));
            let p = write(&d, "dup", &format!("1 {S1}\n1 {S2}\n"), 0o600);
            assert!(matches!(
                KeyRing::load(&p),
                Err(KeyError::DuplicateId { line: 2, .. })
            ));
            fs::remove_dir_all(&d).unwrap();
        }
    }
}
