//! Measured whole-model latencies, in the columns of `shared/hardware/ncnn-published.csv`
//! (`board_id, unit, threads, precision, model, input, latency_ms, ...`; further columns are
//! kept out). Read through the `csv` crate: the table quotes fields with commas in them.

use std::path::Path;

use serde::Deserialize;

use crate::FitError;

/// One measured run of a whole model.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Row {
    /// Board the row was measured on.
    pub board_id: String,
    /// Unit of the board: `cpu` or `gpu`.
    pub unit: String,
    /// CPU threads used (on GPU rows, host threads: not used by the model).
    pub threads: u32,
    /// Arithmetic precision (`fp32`, `fp16`).
    pub precision: String,
    /// Zoo model name.
    pub model: String,
    /// Square input size.
    pub input: usize,
    /// Mean latency of one image [ms].
    pub latency_ms: f64,
    /// The engine that measured it, when the table says.
    #[serde(default)]
    pub engine: Option<String>,
}

/// Reads every row of `path`; an error names the file, the line and what was expected.
pub fn read(path: &Path) -> Result<Vec<Row>, FitError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|e| FitError::file(path, e.to_string()))?;
    let mut rows = Vec::new();
    for row in reader.deserialize::<Row>() {
        let row = row.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            FitError::file(path, format!("line {line}: {e}"))
        })?;
        check(path, &row)?;
        rows.push(row);
    }
    Ok(rows)
}

fn check(path: &Path, row: &Row) -> Result<(), FitError> {
    let what = format!("{} {} {}@{}", row.board_id, row.unit, row.model, row.input);
    if !(row.latency_ms.is_finite() && row.latency_ms > 0.0) {
        return Err(FitError::file(
            path,
            format!("{what}: latency_ms must be a positive number"),
        ));
    }
    if row.threads == 0 {
        return Err(FitError::file(
            path,
            format!("{what}: threads must be >= 1"),
        ));
    }
    if dicesim_plan::zoo::default_input_size(&row.model).is_none() {
        return Err(FitError::file(
            path,
            format!(
                "{what}: model `{}` is not a zoo model (known: {})",
                row.model,
                dicesim_plan::zoo::names().join(", ")
            ),
        ));
    }
    Ok(())
}
