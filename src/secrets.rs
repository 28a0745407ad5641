//! Secrets read from owner-only files: the ensemble's peer secret (`--peer-secret-file`)
//! and client bearer tokens (`--client-token-file`, `--token-file`, `ZW_TOKEN_FILE`).
//! `docs/security.md` explains how each is used.
//!
//! A secret never comes from the command line (other users see it in `ps`), and a file
//! that group or others may read is refused, as ssh refuses such a private key.

use std::fmt;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::wire::auth::MIN_SECRET_BYTES;

/// The warning to log once at start when a listener is bound to an address other than
/// loopback: ZooWeeper's traffic is not encrypted. `listeners` are (what, address).
pub fn exposure_warning(listeners: &[(&str, std::net::SocketAddr)]) -> Option<String> {
    let exposed: Vec<String> = listeners
        .iter()
        .filter(|(_, a)| !a.ip().is_loopback())
        .map(|(what, a)| format!("{what} on {a}"))
        .collect();
    if exposed.is_empty() {
        return None;
    }
    Some(format!(
        "listening beyond loopback ({}): this traffic is not encrypted; use a trusted \
         network, a VPN or a TLS-terminating proxy (docs/security.md)",
        exposed.join(", ")
    ))
}

/// Shortest client token accepted, in bytes.
pub const MIN_TOKEN_BYTES: usize = 16;
/// Largest secret or token file read, in bytes.
pub const MAX_SECRET_FILE_BYTES: u64 = 1024 * 1024;

/// Secret bytes; `Debug` never shows them.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// A secret from bytes, for tests and embedding (a server reads its own from a file).
    pub fn from_bytes(bytes: &[u8]) -> Secret {
        Secret(bytes.to_vec())
    }

    /// The bytes (keep them out of logs).
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

/// Whether two byte strings are equal, in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Reads a file that holds a secret, refusing one that group or others may read or
/// write, or that belongs to another user (root's files are accepted).
///
/// # Errors
/// A message naming the file and what is wrong with it (and how to fix it).
pub fn read_owner_only(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    let shown = path.display();
    let meta = fs::metadata(path).map_err(|e| format!("{what} {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{what} {shown}: not a regular file"));
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{what} {shown}: permissions {mode:04o} are too open: group and others must not \
             have access (chmod 600 {shown})"
        ));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me && meta.uid() != 0 {
        return Err(format!(
            "{what} {shown}: owned by uid {}, not by this user (uid {me}) or root",
            meta.uid()
        ));
    }
    if meta.len() > MAX_SECRET_FILE_BYTES {
        return Err(format!(
            "{what} {shown}: over {MAX_SECRET_FILE_BYTES} bytes"
        ));
    }
    fs::read(path).map_err(|e| format!("{what} {shown}: {e}"))
}

/// The ensemble secret in `path`: its bytes without leading and trailing whitespace, at
/// least [`MIN_SECRET_BYTES`] long.
///
/// # Errors
/// The file cannot be read, is too open, or holds too short a secret.
pub fn peer_secret(path: &Path) -> Result<Secret, String> {
    let raw = read_owner_only(path, "--peer-secret-file")?;
    let s = raw.trim_ascii();
    if s.len() < MIN_SECRET_BYTES {
        return Err(format!(
            "--peer-secret-file {}: the secret must be at least {MIN_SECRET_BYTES} bytes \
             (e.g. head -c 32 /dev/urandom | base64 > {0})",
            path.display()
        ));
    }
    Ok(Secret(s.to_vec()))
}

/// The tokens in `text`: one per line, surrounding whitespace dropped, blank lines and
/// lines starting with `#` ignored.
///
/// # Errors
/// A token shorter than [`MIN_TOKEN_BYTES`] or with inner whitespace (named by line), or
/// no token at all.
pub fn parse_tokens(text: &[u8], what: &str) -> Result<Vec<Secret>, String> {
    let text = std::str::from_utf8(text).map_err(|_| format!("{what}: not UTF-8 text"))?;
    let mut tokens = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if t.len() < MIN_TOKEN_BYTES {
            return Err(format!(
                "{what}: line {}: a token must be at least {MIN_TOKEN_BYTES} bytes",
                n + 1
            ));
        }
        if t.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "{what}: line {}: a token cannot contain spaces",
                n + 1
            ));
        }
        tokens.push(Secret(t.as_bytes().to_vec()));
    }
    if tokens.is_empty() {
        return Err(format!("{what}: no token in the file"));
    }
    Ok(tokens)
}

/// The client tokens in the owner-only file `path` ([`parse_tokens`]).
///
/// # Errors
/// As [`read_owner_only`] and [`parse_tokens`].
pub fn token_file(path: &Path, what: &str) -> Result<Vec<Secret>, String> {
    let raw = read_owner_only(path, what)?;
    parse_tokens(&raw, &format!("{what} {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn file(dir: &Path, name: &str, text: &str, mode: u32) -> std::path::PathBuf {
        let p = dir.join(name);
        fs::write(&p, text).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn a_group_or_world_readable_secret_file_is_refused_with_the_fix() {
        let d = tempfile::tempdir().unwrap();
        for mode in [0o640, 0o604, 0o660, 0o644] {
            let p = file(d.path(), "s", "0123456789abcdef0123", mode);
            let e = peer_secret(&p).unwrap_err();
            assert!(e.contains("too open") && e.contains("chmod 600"), "{e}");
        }
        let p = file(d.path(), "s", "0123456789abcdef0123\n", 0o600);
        assert_eq!(peer_secret(&p).unwrap().expose(), b"0123456789abcdef0123");
        let p = file(d.path(), "s", "0123456789abcdef0123\n", 0o400);
        assert!(peer_secret(&p).is_ok());
    }

    #[test]
    fn a_short_secret_and_a_missing_file_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = file(d.path(), "s", "short\n", 0o600);
        assert!(peer_secret(&p).unwrap_err().contains("at least 16"));
        let e = peer_secret(&d.path().join("nope")).unwrap_err();
        assert!(e.contains("nope"), "{e}");
    }

    #[test]
    fn tokens_are_one_per_line_with_comments_and_blank_lines_ignored() {
        let t = parse_tokens(
            b"# ops team\n  tok-aaaaaaaaaaaaaaaa  \n\ntok-bbbbbbbbbbbbbbbb\n",
            "f",
        )
        .unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].expose(), b"tok-aaaaaaaaaaaaaaaa");
        assert!(parse_tokens(b"# nothing\n\n", "f")
            .unwrap_err()
            .contains("no token"));
        assert!(parse_tokens(b"abc\n", "f").unwrap_err().contains("line 1"));
        assert!(parse_tokens(b"aaaaaaaaaaaaaaaa bbbbbbbb\n", "f")
            .unwrap_err()
            .contains("spaces"));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let s = Secret(b"hunter2hunter2hunter2".to_vec());
        assert_eq!(format!("{s:?}"), "Secret(21 bytes)");
    }

    #[test]
    fn only_listeners_beyond_loopback_are_warned_about() {
        let lo: std::net::SocketAddr = "127.3.4.5:8080".parse().unwrap();
        let lo6: std::net::SocketAddr = "[::1]:8080".parse().unwrap();
        assert_eq!(exposure_warning(&[("HTTP", lo), ("peer port", lo6)]), None);
        let any: std::net::SocketAddr = "0.0.0.0:18080".parse().unwrap();
        let w = exposure_warning(&[("HTTP", lo), ("peer port", any)]).unwrap();
        assert!(
            w.contains("peer port on 0.0.0.0:18080") && !w.contains("HTTP"),
            "{w}"
        );
        assert!(w.contains("not encrypted"), "{w}");
    }

    #[test]
    fn constant_time_eq_compares_content_and_length() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
