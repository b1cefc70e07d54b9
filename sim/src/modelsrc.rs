//! A scenario's model and explicit mapping, read with the plan crate's loaders: the model
//! (the zoo's without its random weights), the mapping file with its horizontal splits
//! written into the model, and the units the scenario names resolved on the platform.

use std::path::Path;

use crate::error::SimError;
use crate::files::{relative, MappingTable, ModelSource, ModelTable, ScenarioFile, Strategy};
use crate::platform::Platform;
use dicesim_plan::graph::Graph;
use dicesim_plan::horizontal::{self, Hybrid, SplitSpec};
use dicesim_plan::mapping::Mapping;
use dicesim_plan::Model;

/// The graph the simulator runs and the explicit mapping of its layers.
pub(crate) struct Mapped {
    /// The model's graph, horizontal splits written in.
    pub graph: Graph,
    /// The explicit mapping (strategy `explicit`), over `graph`'s layers.
    pub explicit: Option<Mapping>,
    /// The explicit mapping's splits, shares set, when it has any.
    pub hybrid: Option<Hybrid>,
}

/// Reads the scenario's model and explicit mapping, resolving the units it names on
/// `platform` (which adds the core sets they name).
pub(crate) fn load(
    path: &Path,
    file: &ScenarioFile,
    platform: &mut Platform,
) -> Result<Mapped, SimError> {
    let model = load_model(path, &file.model)?;
    let hybrid = explicit_mapping(path, &file.mapping, &model.graph)?;
    let named: Vec<String> = hybrid.as_ref().map(Hybrid::units).unwrap_or_default();
    resolve_units(path, &file.mapping, &named, platform)?;
    let mut hybrid = match hybrid {
        Some(h) if !h.splits.is_empty() => h,
        vertical => {
            let explicit = vertical.map(|h| h.base);
            return Ok(Mapped {
                graph: model.graph,
                explicit,
                hybrid: None,
            });
        }
    };
    hybrid.set_ratios(|s, u| speed(&model.graph, platform, s, u));
    let (split, mapping) = horizontal::apply(&model, &hybrid).map_err(|error| SimError::Plan {
        path: path.to_path_buf(),
        error,
    })?;
    Ok(Mapped {
        graph: split.graph,
        explicit: Some(mapping),
        hybrid: Some(hybrid),
    })
}

/// A unit's speed on a split's layers: the inverse of their simulated time on it.
pub(crate) fn speed(g: &Graph, platform: &Platform, s: &SplitSpec, unit: &str) -> f64 {
    let Some(u) = platform.unit_index(unit) else {
        return 1.0; // unresolved units were reported already
    };
    let ns: u64 = (s.layers.iter())
        .map(|&l| crate::prepared::layer_time_ns(g, l, &platform.units[u]))
        .sum();
    1.0 / (ns.max(1) as f64)
}

/// The model of the scenario file at `path` (as [`load`] reads it, without the mapping).
pub(crate) fn scenario_model(path: &Path) -> Result<Model, SimError> {
    load_model(path, &ScenarioFile::read(path)?.model)
}

/// The scenario's model: the zoo's with zero weights, or the ONNX file.
fn load_model(path: &Path, m: &ModelTable) -> Result<Model, SimError> {
    match m.source(path)? {
        ModelSource::Zoo { name, input_size } => Model::zoo_for_analysis(&name, input_size)
            .map_err(|e| SimError::invalid(path, "model.zoo", e.to_string())),
        ModelSource::Onnx {
            path: onnx,
            input_shapes,
        } => Model::load(&onnx, &input_shapes).map_err(|error| {
            SimError::Plan {
                path: path.to_path_buf(),
                error,
            }
            .named_by(path, "[model] path", &onnx)
        }),
    }
}

/// The mapping file of strategy `explicit` (and its `horizontal` file), read against
/// `graph`; `None` for the other strategies.
fn explicit_mapping(
    path: &Path,
    m: &MappingTable,
    graph: &Graph,
) -> Result<Option<Hybrid>, SimError> {
    if m.strategy != Strategy::Explicit {
        return Ok(None);
    }
    let Some(f) = &m.file else {
        return Err(SimError::invalid(
            path,
            "mapping.file",
            "strategy \"explicit\" needs a mapping file",
        ));
    };
    let mpath = relative(path, f);
    let hpath = m.horizontal.as_ref().map(|h| relative(path, h));
    let hybrid = Hybrid::from_file(&mpath, graph, hpath.as_deref()).map_err(|error| {
        SimError::Plan {
            path: mpath.clone(),
            error,
        }
        .named_by(path, "[mapping] file", &mpath)
    })?;
    Ok(Some(hybrid))
}

/// Resolves the units the scenario names (`mapping.units`, the mapping file's `named`) on
/// the platform, which adds the core sets they name (see [`Platform::resolve_unit`]).
fn resolve_units(
    path: &Path,
    m: &MappingTable,
    named: &[String],
    platform: &mut Platform,
) -> Result<(), SimError> {
    for name in m.units.iter().flatten() {
        platform
            .resolve_unit(name)
            .map_err(|e| SimError::invalid(path, "mapping.units", e))?;
    }
    if let Some(f) = &m.file {
        for name in named {
            platform
                .resolve_unit(name)
                .map_err(|e| SimError::invalid(&relative(path, f), "units", e))?;
        }
    }
    Ok(())
}
