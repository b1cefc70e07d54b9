//! Each device's memory on the rig: a plan the simulator predicts not to fit a device's
//! `memory_mb` is refused before anything starts, and each device's worker runs under a
//! memory cgroup (v1) limited to that `memory_mb`, so that a plan predicted to fit but
//! needing more fails on the rig as it would on the board.

use crate::coord::Prepared;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// Root of the cgroup v1 memory controller.
const MEMORY_ROOT: &str = "/sys/fs/cgroup/memory";

/// Bytes in a MiB.
const MIB: f64 = 1024.0 * 1024.0;

/// Refuses a plan whose predicted need exceeds some device's `memory_mb`, naming each.
pub fn check_fits(prep: &Prepared) -> Result<()> {
    let need = prep.predicted_need_mb()?;
    let devices = &prep.scenario.prep.platform.devices;
    let over: Vec<String> = (devices.iter().zip(&need))
        .filter(|(d, &n)| n > d.memory_mb)
        .map(|(d, n)| format!("{} needs {n:.1} MiB of its {} MiB", d.name, d.memory_mb))
        .collect();
    if !over.is_empty() {
        bail!(
            "the plan does not fit the devices' memory ({}): refused before starting",
            over.join("; ")
        );
    }
    Ok(())
}

/// Puts worker process `wpid` of device `d` into a fresh memory cgroup limited to
/// `memory_mb` (swap included where the kernel accounts it); returns the cgroup to remove,
/// or `None` where the memory controller is not mounted (the limit is then not enforced).
pub fn limit(pid: u32, d: usize, memory_mb: f64, wpid: u32) -> Result<Option<PathBuf>> {
    if !Path::new(MEMORY_ROOT).join("cgroup.procs").exists() {
        eprintln!("emulate: no cgroup v1 memory controller: device memory is not limited");
        return Ok(None);
    }
    let cg = PathBuf::from(format!("{MEMORY_ROOT}/ds{pid}d{d}"));
    std::fs::create_dir(&cg).with_context(|| format!("creating cgroup {}", cg.display()))?;
    let bytes = (memory_mb * MIB).round() as u64;
    write(&cg.join("memory.limit_in_bytes"), &bytes.to_string())?;
    let memsw = cg.join("memory.memsw.limit_in_bytes");
    if memsw.exists() {
        write(&memsw, &bytes.to_string())?;
    }
    write(&cg.join("cgroup.procs"), &wpid.to_string())?;
    Ok(Some(cg))
}

fn write(p: &Path, v: &str) -> Result<()> {
    std::fs::write(p, v).with_context(|| format!("writing {v} to {}", p.display()))
}
