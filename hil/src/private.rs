//! Private files for a process that may run as root: random, exclusively created temporary
//! directories (mode 0700) and files created exclusively without following links (mode 0600),
//! and random bytes that are never silently replaced by something guessable.
//!
//! Why: a predictable path in a world-writable directory (`/tmp/dicesim-emulate-<pid>`) lets
//! another local user plant a directory or a symbolic link there first, then read what root
//! writes or make root overwrite any file. Nothing here accepts what already exists.

use std::fs::File;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Attempts at a fresh directory name before giving up.
const NAME_TRIES: usize = 8;

/// `n` random bytes as lowercase hex.
pub fn random_hex(n: usize) -> io::Result<String> {
    let mut b = vec![0u8; n];
    crate::sys::random_bytes(&mut b)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Creates a fresh private directory `<prefix>-<pid>-<128 random bits>` in the system's
/// temporary directory. See [`create_private_dir_in`].
pub fn create_private_dir(prefix: &str) -> io::Result<PathBuf> {
    create_private_dir_in(&std::env::temp_dir(), prefix)
}

/// Creates a fresh directory `<prefix>-<pid>-<128 random bits>` in `base`, mode 0700, with
/// `mkdir` (which fails on anything already there, a symbolic link included, and never
/// follows one). The process id stays in the name so that leftovers can be traced to a run;
/// the random part makes the name impossible to plant in advance.
pub fn create_private_dir_in(base: &Path, prefix: &str) -> io::Result<PathBuf> {
    let pid = std::process::id();
    for _ in 0..NAME_TRIES {
        let dir = base.join(format!("{prefix}-{pid}-{}", random_hex(16)?));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {
                check_private_dir(&dir)?;
                return Ok(dir);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("could not create a fresh directory in {}", base.display()),
    ))
}

/// Checks that `dir` (just created by us) is a real directory of ours that nobody else may
/// enter; the umask could only have narrowed 0700.
fn check_private_dir(dir: &Path) -> io::Result<()> {
    let m = std::fs::symlink_metadata(dir)?;
    let me = crate::sys::geteuid();
    if !m.is_dir() || m.uid() != me || m.permissions().mode() & 0o077 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{} is not a private directory", dir.display()),
        ));
    }
    Ok(())
}

/// Creates `path` for writing, mode 0600, exclusively: fails if anything exists there (a
/// file, a directory, a symbolic link, dangling or not), and never follows a link.
pub fn create_private_file(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh folder of one test, removed when the test ends (passed or failed).
    fn base(name: &str) -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix(&format!("dicesim-private-test-{name}-"))
            .tempdir()
            .unwrap()
    }

    #[test]
    fn random_bytes_fill_and_differ() {
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        crate::sys::random_bytes(&mut a).unwrap();
        crate::sys::random_bytes(&mut b).unwrap();
        assert_ne!(a, b);
        assert_eq!(random_hex(16).unwrap().len(), 32);
    }

    #[test]
    fn private_dirs_are_fresh_and_0700() {
        let dir = base("dirs");
        let b = dir.path();
        let d1 = create_private_dir_in(b, "x").unwrap();
        let d2 = create_private_dir_in(b, "x").unwrap();
        assert_ne!(d1, d2);
        let m = std::fs::symlink_metadata(&d1).unwrap();
        assert!(m.is_dir());
        assert_eq!(m.permissions().mode() & 0o777, 0o700);
    }

    #[test]
    fn private_files_refuse_links_and_existing_files() {
        let dir = base("files");
        let b = dir.path();
        let target = b.join("target");
        std::fs::write(&target, "keep").unwrap();
        let link = b.join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(create_private_file(&link).is_err());
        assert!(create_private_file(&target).is_err());
        let dangling = b.join("dangling");
        std::os::unix::fs::symlink(b.join("nowhere"), &dangling).unwrap();
        assert!(create_private_file(&dangling).is_err());
        assert!(!b.join("nowhere").exists());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        let f = b.join("new");
        create_private_file(&f).unwrap();
        let m = std::fs::metadata(&f).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o600);
    }
}
