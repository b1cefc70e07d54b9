//! A library of device files (`platforms/devices/`) and the boards of a measurement table:
//! board `rpi4-1.5ghz` is device file `rpi4.toml` (the `board_id` equals the file's stem, or
//! starts with it and a `-`; the longest stem wins).

use std::path::{Path, PathBuf};

use crate::FitError;

/// The device file of `board_id` in `dir`, if any.
pub fn device_file(dir: &Path, board_id: &str) -> Result<Option<PathBuf>, FitError> {
    let entries = std::fs::read_dir(dir).map_err(|e| FitError::file(dir, e.to_string()))?;
    let mut stems: Vec<String> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    stems.sort_by_key(|s| (std::cmp::Reverse(s.len()), s.clone()));
    let found =
        (stems.iter()).find(|s| board_id == s.as_str() || board_id.starts_with(&format!("{s}-")));
    Ok(found.map(|s| dir.join(format!("{s}.toml"))))
}
