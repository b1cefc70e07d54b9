//! The worker's sub-model store: shipped ONNX bytes spilled to private files, so that a
//! worker holds a sub-model's weights once (in the engine's form) rather than also keeping
//! the uploaded bytes in memory for the life of the process.
//!
//! Why a file rather than dropping the bytes: a coordinator that re-deploys the same plan
//! (the `ModelQuery`/`ModelHave` exchange) then need not ship them again. The directory is
//! created by [`crate::private::create_private_dir`] (0700, random name) and each file
//! exclusively (0600, no links followed), and the whole directory is removed when the store
//! is dropped. Where no private directory can be made, the bytes stay in memory.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

/// A shipped sub-model, by SHA-256.
#[derive(Clone)]
pub enum Stored {
    /// Spilled to a private file.
    File(PathBuf),
    /// Kept in memory (no private directory could be made).
    Memory(Arc<Vec<u8>>),
}

impl Stored {
    /// The ONNX bytes (read back from the file, or shared from memory).
    pub fn bytes(&self) -> std::io::Result<Arc<Vec<u8>>> {
        match self {
            Stored::File(p) => Ok(Arc::new(std::fs::read(p)?)),
            Stored::Memory(b) => Ok(b.clone()),
        }
    }

    /// The ONNX bytes as a buffer of the caller's own (a copy for an in-memory model).
    pub fn owned_bytes(&self) -> std::io::Result<Vec<u8>> {
        match self {
            Stored::File(p) => std::fs::read(p),
            Stored::Memory(b) => Ok(b.to_vec()),
        }
    }
}

/// Shipped sub-models of one worker process.
pub struct ModelStore {
    /// Private directory of the spilled files (`None`: keep bytes in memory).
    dir: Option<PathBuf>,
    models: HashMap<[u8; 32], Stored>,
}

impl Default for ModelStore {
    fn default() -> Self {
        Self::new()
    }
}

impl ModelStore {
    /// An empty store with a fresh private directory, or an in-memory one (with a warning)
    /// where none can be made.
    pub fn new() -> ModelStore {
        let dir = match crate::private::create_private_dir("dicesim-worker-models") {
            Ok(d) => Some(d),
            Err(e) => {
                eprintln!("worker: sub-models stay in memory (no private directory: {e})");
                None
            }
        };
        ModelStore {
            dir,
            models: HashMap::new(),
        }
    }

    /// Whether sub-model `hash` was shipped.
    pub fn contains(&self, hash: &[u8; 32]) -> bool {
        self.models.contains_key(hash)
    }

    /// The shipped sub-model `hash`.
    pub fn get(&self, hash: &[u8; 32]) -> Option<Stored> {
        self.models.get(hash).cloned()
    }

    /// Stores the bytes of sub-model `hash` (verified by the caller), spilling them to a
    /// private file and freeing them; kept in memory if the file cannot be written.
    pub fn insert(&mut self, hash: [u8; 32], bytes: Vec<u8>) {
        let stored = match self.spill(&hash, &bytes) {
            Ok(Some(p)) => Stored::File(p),
            Ok(None) => Stored::Memory(Arc::new(bytes)),
            Err(e) => {
                eprintln!("worker: sub-model kept in memory (spilling it failed: {e})");
                Stored::Memory(Arc::new(bytes))
            }
        };
        self.models.insert(hash, stored);
    }

    /// Forgets sub-model `hash` and deletes its file (the cache evicted it).
    pub fn remove(&mut self, hash: &[u8; 32]) {
        if let Some(Stored::File(p)) = self.models.remove(hash) {
            if let Err(e) = std::fs::remove_file(&p) {
                eprintln!("worker: removing evicted sub-model {}: {e}", p.display());
            }
        }
    }

    /// The private directory of the spilled files (`None`: models are kept in memory).
    pub fn dir(&self) -> Option<&std::path::Path> {
        self.dir.as_deref()
    }

    /// Writes `bytes` to a new private file named by `hash`; `None` without a directory.
    fn spill(&self, hash: &[u8; 32], bytes: &[u8]) -> std::io::Result<Option<PathBuf>> {
        let Some(dir) = &self.dir else {
            return Ok(None);
        };
        let name: String = hash.iter().map(|b| format!("{b:02x}")).collect();
        let path = dir.join(format!("{name}.onnx"));
        if self.contains(hash) {
            // shipped again by another coordinator: the file holds the same bytes
            return Ok(Some(path));
        }
        let mut f = crate::private::create_private_file(&path)?;
        f.write_all(bytes)?;
        Ok(Some(path))
    }
}

impl Drop for ModelStore {
    fn drop(&mut self) {
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// Hands memory the allocator holds but no longer uses back to the kernel (glibc keeps
/// freed heap pages otherwise), so that a worker's resident set after loading a sub-model is
/// what the engine keeps, not also what the load used and freed.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Bytes from which the allocator maps each block on its own [bytes].
const MMAP_THRESHOLD: i32 = 1 << 20;

/// Makes the allocator map every block of 1 MiB or more on its own, so that freeing it hands
/// it back to the kernel at once. Why: glibc raises its mapping threshold to the largest
/// block freed so far (up to 32 MiB), so after a sub-model's bytes are freed the weights of
/// a load (blocks of 1-32 MiB) come from heaps that freed blocks fragment and that never
/// shrink; measured on resnet18's second half (42 MB of weights, tract), the worker's peak
/// resident set fell from 211 to 142 MiB. Call once, before any thread starts.
/// `DICESIM_LEAN_ALLOC=0` in the environment leaves glibc's defaults (for experiments).
pub fn lean_allocator() {
    if std::env::var_os("DICESIM_LEAN_ALLOC").is_some_and(|v| v == "0") {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called before other threads run.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn spilled_models_read_back_private_and_are_removed() {
        let mut s = ModelStore::new();
        let dir = s.dir.clone().expect("a private directory");
        let h = [7u8; 32];
        s.insert(h, vec![1, 2, 3]);
        s.insert(h, vec![1, 2, 3]);
        assert!(s.contains(&h) && !s.contains(&[0u8; 32]));
        let Some(Stored::File(p)) = s.get(&h) else {
            panic!("not spilled")
        };
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(*s.get(&h).unwrap().bytes().unwrap(), vec![1, 2, 3]);
        drop(s);
        assert!(!dir.exists());
    }
}
