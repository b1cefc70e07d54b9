//! The profile CSV and the host description in its header.

use crate::profile::{ContextProfile, LayerTime};
use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;

/// The profile CSV's columns (docs/profile-csv.md); `profile --threads` appends one per
/// thread count.
pub(crate) const PROFILE_COLUMNS: [&str; 7] = [
    "layer", "time_us", "p10_us", "p90_us", "flops", "bytes", "op",
];

/// One layer's fields, in the order of [`PROFILE_COLUMNS`].
pub(crate) fn profile_fields(l: &LayerTime) -> Vec<String> {
    vec![
        l.layer.clone(),
        format!("{:.3}", l.time_us),
        format!("{:.3}", l.p10_us),
        format!("{:.3}", l.p90_us),
        l.flops.to_string(),
        l.bytes.to_string(),
        l.op.clone(),
    ]
}

fn read(p: &str) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

/// The current (and maximum) frequency of CPU 0 from cpufreq, else `/proc/cpuinfo`'s.
fn frequency(cpu_mhz: &str) -> String {
    let khz = |f: &str| {
        read(&format!("/sys/devices/system/cpu/cpu0/cpufreq/{f}"))
            .and_then(|v| v.parse::<f64>().ok())
    };
    match (khz("scaling_cur_freq"), khz("scaling_max_freq")) {
        (Some(c), Some(m)) => format!("{:.0} MHz (max {:.0} MHz)", c / 1e3, m / 1e3),
        (Some(c), None) => format!("{:.0} MHz", c / 1e3),
        _ => format!("{cpu_mhz} MHz (/proc/cpuinfo; no cpufreq)"),
    }
}

/// `key: value` lines describing this host (CPU model, governor, frequency, affinity).
pub fn host_info() -> Vec<(String, String)> {
    let cpuinfo = read("/proc/cpuinfo").unwrap_or_default();
    let field = |k: &str| {
        cpuinfo
            .lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_else(|| "unknown".into())
    };
    let status = read("/proc/self/status").unwrap_or_default();
    let affinity = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let governor = read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
        .unwrap_or_else(|| "unknown (no cpufreq)".into());
    vec![
        ("cpu".into(), field("model name")),
        ("governor".into(), governor),
        ("frequency".into(), frequency(&field("cpu MHz"))),
        ("affinity".into(), affinity),
    ]
}

/// The `# method` lines of the header (and, in context, the run cost and the chunks).
fn write_method(f: &mut impl Write, context: Option<&ContextProfile>) -> std::io::Result<()> {
    let Some(c) = context else {
        return writeln!(
            f,
            "# method: isolated (each layer run alone as a sub-model: no fusion across layers, fused pairs over-estimated)"
        );
    };
    writeln!(
        f,
        "# method: in context (whole model, each of tract's operators timed in place; a fused operator is charged to the layer whose name it carries, the layers fused into it get 0)"
    )?;
    writeln!(f, "# whole_run_us: {:.3}", c.run_us)?;
    writeln!(f, "# run_overhead_us: {:.3}", c.run_overhead_us)?;
    for ch in &c.chunks {
        writeln!(
            f,
            "# chunk {} .. {}: sub-model {:.1} us, layers in context {:.1} us, scaled x {:.3}",
            ch.first, ch.last, ch.run_us, ch.layers_us, ch.scale
        )?;
    }
    if !c.unattributed.is_empty() {
        writeln!(f, "# unattributed operators: {}", c.unattributed.join(" "))?;
    }
    Ok(())
}

/// Writes the profile CSV (`layer,time_us,p10_us,p90_us,flops,bytes,op`) with the host
/// header; the simulator's unit `profile = "file.csv"` reads its first two columns.
pub fn write_csv(
    path: &Path,
    model: &str,
    threads: usize,
    layers: &[LayerTime],
    context: Option<&ContextProfile>,
) -> Result<()> {
    let mut f = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
    );
    writeln!(
        f,
        "# dicesim profile of {model}, backend tract, threads {threads}"
    )?;
    for (k, v) in host_info() {
        writeln!(f, "# {k}: {v}")?;
    }
    write_method(&mut f, context)?;
    // the rows through the `csv` crate, so a layer name with a comma or a quote stays one field
    let mut w = ::csv::Writer::from_writer(f);
    w.write_record(PROFILE_COLUMNS)?;
    for l in layers {
        w.write_record(profile_fields(l))?;
    }
    w.flush()?;
    Ok(())
}
