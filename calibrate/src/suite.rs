//! `dicesim validate --suite`: every scenario of a folder validated, with the median and
//! 90th percentile of |relative error| of latency p50 and throughput, a JSON report and a
//! plot.

use crate::validate::{validate, Options, Row, Validation, MEMORY_METRIC};
use anyhow::{bail, Context, Result};
use dicesim_stats::{index_percentile, median, sorted};
use serde_json::json;
use std::path::{Path, PathBuf};

/// One scenario's result in a suite.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SuiteEntry {
    /// Scenario file name.
    pub scenario: String,
    /// Every compared figure (latency p50, p95, throughput first), or empty on failure.
    pub errors: Vec<Row>,
    /// The compared time figure other than latency and throughput with the largest |error|
    /// (memory rows have their own summary).
    pub worst_term: Option<Row>,
    /// Why validation failed.
    pub failure: Option<String>,
}

/// A suite's summary: median and 90th percentile of |relative error|.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct SuiteSummary {
    /// Scenarios validated.
    pub validated: usize,
    /// Scenarios that failed.
    pub failed: usize,
    /// Latency p50: median |error|.
    pub latency_median: f64,
    /// Latency p50: 90th percentile |error|.
    pub latency_p90: f64,
    /// Throughput: median |error|.
    pub throughput_median: f64,
    /// Throughput: 90th percentile |error|.
    pub throughput_p90: f64,
    /// Memory of every device of every scenario: median |error| (NaN without any).
    pub memory_median: f64,
    /// Memory: 90th percentile |error|.
    pub memory_p90: f64,
}

/// The `*.toml` files in `dir`, in file-name order.
fn scenario_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("{}: no *.toml scenarios", dir.display());
    }
    Ok(files)
}

/// A scenario's suite entry from its validation, and its line on stdout.
fn entry(name: String, v: Result<Validation>) -> SuiteEntry {
    let v = match v {
        Ok(v) => v,
        Err(e) => {
            println!("{name:44} FAILED: {e:#}");
            return SuiteEntry {
                scenario: name,
                errors: Vec::new(),
                worst_term: None,
                failure: Some(format!("{e:#}")),
            };
        }
    };
    let worst = v.rows[3..]
        .iter()
        .filter(|r| r.rel_error.is_finite() && !r.metric.starts_with(MEMORY_METRIC))
        .max_by(|a, b| a.rel_error.abs().total_cmp(&b.rel_error.abs()))
        .cloned();
    println!(
        "{name:44} latency p50 {:>7.1}%  throughput {:>7.1}%  worst term: {}",
        v.latency_error() * 100.0,
        v.throughput_error() * 100.0,
        worst
            .as_ref()
            .map(|r| format!("{} {:+.1}%", r.metric, r.rel_error * 100.0))
            .unwrap_or_default()
    );
    SuiteEntry {
        scenario: name,
        errors: v.rows,
        worst_term: worst,
        failure: None,
    }
}

/// Median and 90th percentile (index method) of |relative error| of row `idx`; NaN for no
/// scenarios.
fn error_spread(ok: &[&SuiteEntry], idx: usize) -> (f64, f64) {
    let abs: Vec<f64> = ok.iter().map(|e| e.errors[idx].rel_error.abs()).collect();
    let v = sorted(&abs);
    (
        median(&v).unwrap_or(f64::NAN),
        index_percentile(&v, 0.9).unwrap_or(f64::NAN),
    )
}

fn summarize(entries: &[SuiteEntry]) -> SuiteSummary {
    let ok: Vec<&SuiteEntry> = entries.iter().filter(|e| e.failure.is_none()).collect();
    let (latency_median, latency_p90) = error_spread(&ok, 0);
    let (throughput_median, throughput_p90) = error_spread(&ok, 2);
    let (memory_median, memory_p90) = memory_spread(&ok);
    SuiteSummary {
        validated: ok.len(),
        failed: entries.len() - ok.len(),
        latency_median,
        latency_p90,
        throughput_median,
        throughput_p90,
        memory_median,
        memory_p90,
    }
}

/// Median and 90th percentile of |relative error| over every memory row of `ok`.
fn memory_spread(ok: &[&SuiteEntry]) -> (f64, f64) {
    let abs: Vec<f64> = (ok.iter().flat_map(|e| &e.errors))
        .filter(|r| r.metric.starts_with(MEMORY_METRIC) && r.rel_error.is_finite())
        .map(|r| r.rel_error.abs())
        .collect();
    let v = sorted(&abs);
    (
        median(&v).unwrap_or(f64::NAN),
        index_percentile(&v, 0.9).unwrap_or(f64::NAN),
    )
}

/// Validates every `*.toml` scenario in `dir` (file-name order); prints one line per
/// scenario and the median and p90 of |relative error| of latency p50 and throughput; with
/// `out`, writes `suite.json` (every figure of every scenario) and `suite.svg` (simulated vs
/// measured) there.
pub fn suite(dir: &Path, out: Option<&Path>) -> Result<SuiteSummary> {
    let mut entries = Vec::new();
    for f in &scenario_files(dir)? {
        let name = f
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        entries.push(entry(name, validate(f, &Options::default())));
    }
    let summary = summarize(&entries);
    println!(
        "{} scenarios validated ({} failed): |error| latency p50: median {:.1}%, p90 {:.1}%; throughput: median {:.1}%, p90 {:.1}%; memory: median {:.1}%, p90 {:.1}%",
        summary.validated,
        summary.failed,
        summary.latency_median * 100.0,
        summary.latency_p90 * 100.0,
        summary.throughput_median * 100.0,
        summary.throughput_p90 * 100.0,
        summary.memory_median * 100.0,
        summary.memory_p90 * 100.0
    );
    if let Some(out) = out {
        write_suite(out, &entries, &summary)?;
    }
    Ok(summary)
}

/// Writes `suite.json` and `suite.svg` into `out`.
fn write_suite(out: &Path, entries: &[SuiteEntry], summary: &SuiteSummary) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let j = out.join("suite.json");
    std::fs::write(
        &j,
        serde_json::to_string_pretty(&json!({"summary": summary, "scenarios": entries}))?,
    )
    .with_context(|| format!("writing {}", j.display()))?;
    let ok: Vec<&SuiteEntry> = entries.iter().filter(|e| e.failure.is_none()).collect();
    let svg = out.join("suite.svg");
    std::fs::write(&svg, crate::plot::suite_svg(&ok, summary))
        .with_context(|| format!("writing {}", svg.display()))?;
    println!("wrote {} and {}", j.display(), svg.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(metric: &str, rel_error: f64) -> Row {
        Row {
            metric: metric.into(),
            simulated: 1.0 + rel_error,
            measured: 1.0,
            rel_error,
        }
    }

    #[test]
    fn memory_rows_are_summarised_apart_from_the_time_terms() {
        let e = |mem: &[f64]| SuiteEntry {
            scenario: "s".into(),
            errors: [
                row("latency p50 [ms]", 0.1),
                row("latency p95 [ms]", 0.1),
                row("throughput [fps]", -0.2),
            ]
            .into_iter()
            .chain(mem.iter().map(|&m| row("memory d [MiB]", m)))
            .collect(),
            worst_term: None,
            failure: None,
        };
        let entries = [e(&[-0.5, 0.1]), e(&[0.3])];
        let s = summarize(&entries);
        assert_eq!((s.memory_median, s.memory_p90), (0.3, 0.5));
        assert_eq!((s.latency_median, s.throughput_median), (0.1, 0.2));
        let none = summarize(&[e(&[])]);
        assert!(none.memory_median.is_nan());
    }
}
