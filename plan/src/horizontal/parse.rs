//! Checking split tables of mapping files, and AutoDiCE's `horizontal.json`.

use super::{Shares, SplitKind, SplitSpec};
use crate::error::PlanError;
use crate::graph::Graph;
use crate::mapping::{autodice_unit, check_unit_name, find_layer};

/// A split as written, its layers resolved.
pub(crate) struct SplitFields {
    pub layers: Vec<usize>,
    pub kind: Option<String>,
    pub units: Option<Vec<String>>,
    pub ratios: Option<Vec<f64>>,
    pub grid: Option<Vec<usize>>,
}

/// The split, or what is wrong with it (one line, naming the key).
pub(crate) fn check(f: SplitFields, label: String) -> Result<SplitSpec, String> {
    let kind = match f.kind.as_deref() {
        Some("spatial") => SplitKind::Spatial,
        Some("out_channels") => SplitKind::OutChannels,
        Some("in_channels") => SplitKind::InChannels,
        Some(k) => {
            return Err(format!(
                "kind = \"{k}\": expected \"spatial\", \"out_channels\" or \"in_channels\""
            ))
        }
        None => {
            return Err(
                "missing key `kind` (\"spatial\", \"out_channels\" or \"in_channels\")".into(),
            )
        }
    };
    let units = check_units(f.units)?;
    let shares = match f.ratios {
        None => Shares::Speed,
        Some(r) if r.len() != units.len() => {
            return Err(format!(
                "ratios: {} numbers for {} units",
                r.len(),
                units.len()
            ))
        }
        Some(r) if r.iter().any(|x| !x.is_finite() || *x <= 0.0) => {
            return Err("ratios: every ratio must be a positive number".into())
        }
        Some(r) => Shares::Ratios(r),
    };
    let grid = check_grid(f.grid, kind, units.len())?;
    let mut layers = f.layers;
    layers.sort_unstable();
    layers.dedup();
    if layers.is_empty() {
        return Err("missing key `layers` (a layer name, a list, or { from, to })".into());
    }
    Ok(SplitSpec {
        layers,
        kind,
        units,
        shares,
        grid,
        label,
    })
}

fn check_units(units: Option<Vec<String>>) -> Result<Vec<String>, String> {
    let units = units.ok_or("missing key `units` (the units of the parts)")?;
    if units.len() < 2 {
        return Err(format!(
            "units: a split needs at least 2 units, got {}",
            units.len()
        ));
    }
    for (i, u) in units.iter().enumerate() {
        check_unit_name(u).map_err(|m| format!("units: {m}"))?;
        if units[..i].contains(u) {
            return Err(format!(
                "units: \"{u}\" is listed twice (one part per unit)"
            ));
        }
    }
    Ok(units)
}

fn check_grid(
    grid: Option<Vec<usize>>,
    kind: SplitKind,
    n: usize,
) -> Result<(usize, usize), String> {
    let Some(g) = grid else {
        return Ok((n, 1));
    };
    if kind != SplitKind::Spatial {
        return Err(format!(
            "grid: only a spatial split has a grid (this one is {})",
            kind.name()
        ));
    }
    match g[..] {
        [r, c] if r >= 1 && c >= 1 && r * c == n => Ok((r, c)),
        _ => Err(format!("grid = {g:?}: expected [rows, columns] with rows x columns = {n} (the number of units)")),
    }
}

/// The splits of an AutoDiCE `horizontal.json`: `{"layer": ["lop"|"lip"|"height"|"width",
/// [end, ...], ["host_unit", ...]]}`, each end where a part stops (65535: the rest).
pub fn autodice(text: &str, graph: &Graph, origin: &str) -> Result<Vec<SplitSpec>, PlanError> {
    let err = |m: String| PlanError::Mapping(format!("{origin}: {m}"));
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| err(format!("JSON syntax error: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| err("expected a JSON object {\"layer\": [kind, [ends], [units]]}".into()))?;
    let mut out = Vec::new();
    for (layer, val) in obj {
        let ctx = |m: String| err(format!("key \"{layer}\": {m}"));
        let l = find_layer(graph, layer).map_err(ctx)?;
        out.push(autodice_entry(l, val, format!("{origin}: key \"{layer}\"")).map_err(ctx)?);
    }
    Ok(out)
}

fn autodice_entry(l: usize, val: &serde_json::Value, label: String) -> Result<SplitSpec, String> {
    let shape = "expected [kind, [ends], [units]]";
    let arr = val.as_array().filter(|a| a.len() == 3).ok_or(shape)?;
    let (kind, grid_rows) = match arr[0].as_str() {
        Some("lop") => (SplitKind::OutChannels, true),
        Some("lip") => (SplitKind::InChannels, true),
        Some("height") => (SplitKind::Spatial, true),
        Some("width") => (SplitKind::Spatial, false),
        _ => return Err("kind: expected \"lop\", \"lip\", \"height\" or \"width\"".into()),
    };
    let ends = (arr[1].as_array().ok_or(shape)?.iter())
        .map(|e| {
            e.as_u64()
                .map(|x| x as usize)
                .ok_or("ends: expected non-negative integers")
        })
        .collect::<Result<Vec<_>, _>>()?;
    let units = (arr[2].as_array().ok_or(shape)?.iter())
        .map(|u| {
            u.as_str()
                .ok_or_else(|| "units: expected strings".to_string())
                .and_then(autodice_unit)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let units = check_units(Some(units))?;
    if ends.len() != units.len() {
        return Err(format!("{} ends for {} units", ends.len(), units.len()));
    }
    let n = units.len();
    let grid = if grid_rows { (n, 1) } else { (1, n) };
    Ok(SplitSpec {
        layers: vec![l],
        kind,
        units,
        shares: Shares::Ends(ends),
        grid,
        label,
    })
}
