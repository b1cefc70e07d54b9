//! Token files: the shared secret of a worker and its coordinator.
//!
//! A token must hold at least 128 bits: 32 hex digits, or (anything else) at least 32
//! characters of text or 16 bytes of binary. Its file must not be readable or writable by
//! group or others. `dicesim token new FILE` writes a fresh one (256 random bits as hex,
//! mode 0600). Why the floor: the handshake lets an impostor *worker* (someone who squats a
//! worker's port or sits on the path) test token guesses offline against one client proof;
//! with 128 bits that search is out of reach (docs/security.md).

use crate::private::{create_private_file, random_hex};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// Fewest hex digits of a hex token (128 bits).
pub const MIN_HEX_DIGITS: usize = 32;
/// Fewest bytes of a token that is not all hex digits.
pub const MIN_BINARY_BYTES: usize = 16;
/// Fewest characters of a text token that is not all hex digits.
pub const MIN_TEXT_CHARS: usize = 32;
/// Largest token file read [bytes].
const MAX_TOKEN_FILE: u64 = 4096;

/// Why a token file is refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The file could not be opened, read or written.
    #[error("token file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Group or others may read or write it.
    #[error(
        "token file {path} is accessible to group or others (mode {mode:o}); run `chmod 600 {path}`"
    )]
    Mode {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// Too short to resist guessing.
    #[error(
        "token file {path} holds a weak token ({why}); make one with `dicesim token new FILE`"
    )]
    Weak {
        /// The file.
        path: String,
        /// What is missing.
        why: String,
    },
}

fn io_err(path: &Path, source: std::io::Error) -> TokenError {
    TokenError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Reads a token file (surrounding whitespace ignored), refusing one accessible to group or
/// others, a symbolic link, or a token under 128 bits.
pub fn read_token(path: &Path) -> Result<Vec<u8>, TokenError> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| io_err(path, e))?;
    let mode = f.metadata().map_err(|e| io_err(path, e))?.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(TokenError::Mode {
            path: path.display().to_string(),
            mode,
        });
    }
    let mut raw = Vec::new();
    f.take(MAX_TOKEN_FILE)
        .read_to_end(&mut raw)
        .map_err(|e| io_err(path, e))?;
    let t = raw.trim_ascii().to_vec();
    check_strength(&t).map_err(|why| TokenError::Weak {
        path: path.display().to_string(),
        why,
    })?;
    Ok(t)
}

/// Whether `t` holds at least 128 bits by the rules of the module docs; otherwise what is
/// missing.
pub fn check_strength(t: &[u8]) -> Result<(), String> {
    if t.is_empty() {
        return Err("it is empty".into());
    }
    if t.iter().all(u8::is_ascii_hexdigit) {
        if t.len() < MIN_HEX_DIGITS {
            return Err(format!(
                "{} hex digits, at least {MIN_HEX_DIGITS} needed",
                t.len()
            ));
        }
        return Ok(());
    }
    match std::str::from_utf8(t) {
        Ok(s) if !s.chars().any(char::is_control) => {
            let n = s.chars().count();
            if n < MIN_TEXT_CHARS {
                return Err(format!("{n} characters, at least {MIN_TEXT_CHARS} needed"));
            }
        }
        _ if t.len() < MIN_BINARY_BYTES => {
            return Err(format!(
                "{} bytes, at least {MIN_BINARY_BYTES} needed",
                t.len()
            ))
        }
        _ => {}
    }
    Ok(())
}

/// A fresh token: 256 random bits as 64 hex digits.
pub fn new_token() -> std::io::Result<String> {
    random_hex(32)
}

/// Writes a fresh token to `path` (created exclusively, mode 0600, never through a link)
/// and returns it.
pub fn write_new_token(path: &Path) -> Result<String, TokenError> {
    let t = new_token().map_err(|e| io_err(path, e))?;
    let mut f = create_private_file(path).map_err(|e| io_err(path, e))?;
    f.write_all(format!("{t}\n").as_bytes())
        .map_err(|e| io_err(path, e))?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn dir() -> std::path::PathBuf {
        crate::private::create_private_dir("dicesim-token-test").unwrap()
    }

    #[test]
    fn strength_rules() {
        assert!(check_strength(b"").is_err());
        assert!(check_strength(b"abc").is_err());
        assert!(check_strength(&[b'a'; 31]).is_err());
        assert!(check_strength(&[b'a'; 32]).is_ok());
        assert!(check_strength(b"correct horse battery staple!").is_err());
        assert!(check_strength(b"correct horse battery staple, ok").is_ok());
        assert!(check_strength(&[0xffu8; 15]).is_err());
        assert!(check_strength(&[0xffu8; 16]).is_ok());
    }

    #[test]
    fn new_tokens_are_private_and_readable_back() {
        let d = dir();
        let p = d.join("tok");
        let t = write_new_token(&p).unwrap();
        assert_eq!(t.len(), 64);
        let m = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(m, 0o600);
        assert_eq!(read_token(&p).unwrap(), t.as_bytes());
        // never overwrites
        assert!(write_new_token(&p).is_err());
        assert_ne!(new_token().unwrap(), t);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn readable_by_others_weak_or_linked_tokens_are_refused() {
        let d = dir();
        let p = d.join("tok");
        write_new_token(&p).unwrap();
        for mode in [0o644, 0o640, 0o604, 0o620] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = read_token(&p).unwrap_err();
            assert!(matches!(e, TokenError::Mode { .. }), "{e}");
            assert!(e.to_string().contains("chmod 600"), "{e}");
        }
        let weak = d.join("weak");
        std::fs::write(&weak, "s3cret\n").unwrap();
        std::fs::set_permissions(&weak, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = read_token(&weak).unwrap_err();
        assert!(e.to_string().contains("dicesim token new"), "{e}");
        let link = d.join("link");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        assert!(read_token(&link).is_err());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
