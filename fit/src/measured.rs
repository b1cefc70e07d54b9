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
    let headers = (reader.headers())
        .map_err(|e| FitError::file(path, e.to_string()))?
        .clone();
    let mut rows = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        let line = reader.position().line();
        let at = |m: String| FitError::file(path, format!("line {line}: {m}"));
        if !(reader.read_record(&mut record)).map_err(|e| at(e.to_string()))? {
            break;
        }
        let row: Row = (record.deserialize(Some(&headers))).map_err(|e| at(e.to_string()))?;
        check(&row).map_err(at)?;
        rows.push(row);
    }
    if rows.is_empty() {
        return Err(FitError::file(path, "no rows"));
    }
    Ok(rows)
}

/// What is wrong with a row, if anything.
fn check(row: &Row) -> Result<(), String> {
    if !(row.latency_ms.is_finite() && row.latency_ms > 0.0) {
        return Err("latency_ms: expected a positive number of milliseconds".into());
    }
    if row.threads == 0 {
        return Err("threads: expected at least 1".into());
    }
    if row.unit.is_empty() {
        return Err("unit: expected the device file's unit name (cpu, gpu, ...)".into());
    }
    if dicesim_plan::zoo::default_input_size(&row.model).is_none() {
        return Err(format!(
            "model `{}` is not a zoo model (known: {})",
            row.model,
            dicesim_plan::zoo::names().join(", ")
        ));
    }
    Ok(())
}
