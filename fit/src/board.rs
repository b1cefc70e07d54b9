//! Fitting boards: every unit the rows measure, fitted on all of them, and each model's rows
//! predicted by a fit that left that model out (leave-one-model-out cross-validation). Units
//! of one kind on several boards are fitted jointly (see [`crate::fit`]).

use std::collections::{BTreeMap, BTreeSet};

use dicesim_plan::graph::{Graph, Layer};
use dicesim_sim::platform::{Unit, UnitKind};

use crate::base::BaseDevice;
use crate::fit::{fit, Group, Sample};
use crate::measured::Row;
use crate::model::{predict_ms, FitUnit};
use crate::FitError;

/// A row with its predictions.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The measured row.
    pub row: Row,
    /// Prediction of the fit on every row [ms].
    pub fitted_ms: f64,
    /// Prediction of the fit without this row's model [ms] (`None`: one model only).
    pub left_out_ms: Option<f64>,
    /// Prediction of the base unit, before the fit [ms].
    pub base_ms: f64,
}

/// A fitted unit and its rows.
#[derive(Debug, Clone)]
pub struct UnitFit {
    /// The fitted unit.
    pub unit: Unit,
    /// Its rows, in file order.
    pub rows: Vec<Checked>,
}

/// A fitted board.
#[derive(Debug, Clone)]
pub struct BoardFit {
    /// The board's `board_id`.
    pub board: String,
    /// The device (its fitted units replaced).
    pub device: BaseDevice,
    /// The fitted units.
    pub units: Vec<UnitFit>,
}

/// The graph of every (model, input) the rows name, built once.
pub struct Models(BTreeMap<(String, usize), Graph>);

impl Models {
    /// Builds the zoo graphs of `rows`.
    pub fn of(rows: &[Row]) -> Result<Models, FitError> {
        let mut m = BTreeMap::new();
        for r in rows {
            let key = (r.model.clone(), r.input);
            if m.contains_key(&key) {
                continue;
            }
            let g = dicesim_plan::model::zoo_graph(&r.model, r.input)
                .map_err(|e| FitError::Rows(format!("{} at {}: {e}", r.model, r.input)))?;
            m.insert(key, g);
        }
        Ok(Models(m))
    }

    /// The graph of a row's model.
    pub fn graph(&self, r: &Row) -> &Graph {
        &self.0[&(r.model.clone(), r.input)]
    }

    /// The layers of a row's model.
    pub fn layers(&self, r: &Row) -> &[Layer] {
        &self.graph(r).layers
    }
}

/// One unit of one board to fit: its prior and its rows.
struct Target {
    board: usize,
    prior: Unit,
    rows: Vec<Row>,
}

/// Fits one board's units on its rows, held towards `base`.
pub fn fit_board(rows: &[Row], board: &str, base: BaseDevice) -> Result<BoardFit, FitError> {
    let mut fits = fit_boards(rows, vec![(board.to_string(), base)])?;
    Ok(fits.remove(0))
}

/// Fits several boards: the units of one kind (every CPU, every GPU) jointly, sharing the
/// class figures of [`crate::model::Figure::shared`].
pub fn fit_boards(
    rows: &[Row],
    boards: Vec<(String, BaseDevice)>,
) -> Result<Vec<BoardFit>, FitError> {
    let models = Models::of(rows)?;
    let mut devices: Vec<BaseDevice> = Vec::new();
    let mut targets: Vec<Target> = Vec::new();
    for (bi, (board, mut base)) in boards.iter().cloned().enumerate() {
        let mine: Vec<&Row> = rows.iter().filter(|r| r.board_id == board).collect();
        if mine.is_empty() {
            return Err(FitError::Rows(format!("no rows for board `{board}`")));
        }
        let names: BTreeSet<&str> = mine.iter().map(|r| r.unit.as_str()).collect();
        for name in names {
            let unit_rows: Vec<Row> = mine
                .iter()
                .filter(|r| r.unit == name)
                .map(|r| (*r).clone())
                .collect();
            let cores = unit_rows.iter().map(|r| r.threads).max().unwrap_or(1);
            let prior = base.unit_or_generic(name, cores).clone();
            targets.push(Target {
                board: bi,
                prior,
                rows: unit_rows,
            });
        }
        devices.push(base);
    }
    let mut fitted: Vec<Option<UnitFit>> = vec![None; targets.len()];
    for kind in [UnitKind::Cpu, UnitKind::Gpu] {
        let idx: Vec<usize> = (0..targets.len())
            .filter(|&i| targets[i].prior.kind == kind)
            .collect();
        let of_kind: Vec<&Target> = idx.iter().map(|&i| &targets[i]).collect();
        for (i, f) in idx.iter().zip(fit_kind(&of_kind, &models)?) {
            fitted[*i] = Some(f);
        }
    }
    Ok(assemble(boards, devices, targets, fitted))
}

/// The fitted units put back into their devices.
fn assemble(
    boards: Vec<(String, BaseDevice)>,
    mut devices: Vec<BaseDevice>,
    targets: Vec<Target>,
    fitted: Vec<Option<UnitFit>>,
) -> Vec<BoardFit> {
    let mut per_board: Vec<Vec<UnitFit>> = vec![Vec::new(); devices.len()];
    for (t, f) in targets.iter().zip(fitted.into_iter().flatten()) {
        if let Some(u) = devices[t.board]
            .units
            .iter_mut()
            .find(|u| u.name == f.unit.name)
        {
            *u = f.unit.clone();
        }
        per_board[t.board].push(f);
    }
    (boards.into_iter().zip(devices).zip(per_board))
        .map(|(((board, _), device), units)| BoardFit {
            board,
            device,
            units,
        })
        .collect()
}

/// Fits `targets` (units of one kind) jointly, and cross-validates by leaving each model out
/// of every target at once.
fn fit_kind(targets: &[&Target], models: &Models) -> Result<Vec<UnitFit>, FitError> {
    if targets.is_empty() {
        return Ok(Vec::new());
    }
    let all = |_: &Row| true;
    let units = fit(&groups(targets, models, &all))?;
    let distinct: BTreeSet<(String, usize)> = (targets.iter())
        .flat_map(|t| t.rows.iter().map(|r| (r.model.clone(), r.input)))
        .collect();
    let mut left_out: BTreeMap<(String, usize), Vec<Unit>> = BTreeMap::new();
    if distinct.len() > 1 {
        for key in &distinct {
            let keep = |r: &Row| (r.model.clone(), r.input) != *key;
            left_out.insert(key.clone(), fit(&groups(targets, models, &keep))?);
        }
    }
    Ok((targets.iter().enumerate())
        .map(|(i, t)| {
            let mut unit = units[i].clone();
            describe(&mut unit, &t.rows);
            let rows = (t.rows.iter())
                .map(|r| Checked {
                    row: r.clone(),
                    fitted_ms: predict_ms(&unit, models.layers(r), r.threads),
                    left_out_ms: (left_out.get(&(r.model.clone(), r.input)))
                        .map(|us| predict_ms(&us[i], models.layers(r), r.threads)),
                    base_ms: predict_ms(&t.prior, models.layers(r), r.threads),
                })
                .collect();
            UnitFit { unit, rows }
        })
        .collect())
}

/// The fit groups of `targets` with the rows `keep` accepts.
fn groups<'a>(
    targets: &[&Target],
    models: &'a Models,
    keep: &dyn Fn(&Row) -> bool,
) -> Vec<Group<'a>> {
    (targets.iter())
        .map(|t| Group {
            unit: FitUnit::new(t.prior.clone()),
            samples: (t.rows.iter().filter(|r| keep(r)))
                .map(|r| Sample {
                    layers: models.layers(r),
                    threads: r.threads,
                    latency_ms: r.latency_ms,
                })
                .collect(),
        })
        .collect()
}

/// Records on `unit` the engine and precision its rows were measured with.
fn describe(unit: &mut Unit, rows: &[Row]) {
    let mut engines: Vec<String> = rows.iter().filter_map(|r| r.engine.clone()).collect();
    engines.sort();
    engines.dedup();
    if !engines.is_empty() {
        unit.engine = Some(engines.join("; "));
    }
    let mut precisions: Vec<String> = rows.iter().map(|r| r.precision.clone()).collect();
    precisions.sort();
    precisions.dedup();
    unit.precision = Some(precisions.join("+"));
}

/// Relative error of a prediction.
pub fn rel_error(predicted: f64, measured: f64) -> f64 {
    (predicted - measured) / measured
}
