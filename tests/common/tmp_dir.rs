//! A fresh temporary folder per test that reads as its path. One file for the test helpers
//! of the root crate (`tests/common`), `sim` (`sim/tests/common`) and `hil`
//! (`hil/tests/support`): each includes it.

use std::path::Path;

/// A fresh, empty temporary folder named `prefix` and a random suffix, removed with what it
/// holds when the test ends (passed or failed), so that runs leave nothing in the system's
/// temporary directory.
pub fn with_prefix(prefix: &str) -> TmpDir {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("a temporary folder");
    TmpDir(dir)
}

/// A temporary folder (a [`tempfile::TempDir`], removed when dropped) that reads as its
/// path (also as a command's argument).
pub struct TmpDir(tempfile::TempDir);

impl std::ops::Deref for TmpDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        self.0.path()
    }
}

impl AsRef<Path> for TmpDir {
    fn as_ref(&self) -> &Path {
        self.0.path()
    }
}

impl AsRef<std::ffi::OsStr> for TmpDir {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.path().as_os_str()
    }
}
