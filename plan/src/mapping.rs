//! Mappings: which compute unit (`"<device>.<unit>"`) runs each layer.
//!
//! Read from the mapping TOML of the contract (`[units]` with layer lists or inclusive
//! `{ from, to }` ranges in topological order) or from an AutoDiCE `mapping.json`
//! (`{"host_res": [layers]}`), validated against the graph (and the platform's units).

use serde::Serialize;

/// A complete assignment of layers to compute units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mapping {
    /// Distinct unit names, `"<device>.<unit>"`, in order of first use.
    pub units: Vec<String>,
    /// For each layer (graph topological order), an index into `units`.
    pub layer_unit: Vec<usize>,
    /// For each layer, its partition group; empty: every layer in group 0. Layers of
    /// different groups never share a partition: a horizontal split puts each part in a
    /// group of its own, so that a unit's part is neither held back by the gather that
    /// waits for the other parts nor holds back the scatter that feeds them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<u32>,
}

use crate::error::PlanError;
use crate::graph::Graph;
use crate::horizontal::parse::{check as check_split, SplitFields};
use crate::horizontal::{Hybrid, SplitSpec};
use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::collections::HashMap;
use std::fmt;
use std::path::Path;

impl Mapping {
    /// Every layer on one unit.
    pub fn single(graph: &Graph, unit: &str) -> Mapping {
        Mapping {
            units: vec![unit.to_string()],
            layer_unit: vec![0; graph.layers.len()],
            groups: Vec::new(),
        }
    }

    /// From one unit name per layer (in topological order).
    pub fn from_assignment<S: AsRef<str>>(per_layer: &[S]) -> Mapping {
        let mut units: Vec<String> = Vec::new();
        let layer_unit = per_layer
            .iter()
            .map(|u| {
                let u = u.as_ref();
                match units.iter().position(|x| x == u) {
                    Some(i) => i,
                    None => {
                        units.push(u.to_string());
                        units.len() - 1
                    }
                }
            })
            .collect();
        Mapping {
            units,
            layer_unit,
            groups: Vec::new(),
        }
    }

    /// The partition group of layer `i` (see [`Mapping::groups`]).
    pub fn group_of(&self, i: usize) -> u32 {
        self.groups.get(i).copied().unwrap_or(0)
    }

    /// The unit of layer `i`.
    pub fn unit_of(&self, i: usize) -> &str {
        &self.units[self.layer_unit[i]]
    }

    /// Reads a mapping file: AutoDiCE JSON when the name ends in `.json`, else the TOML of the
    /// mapping contract.
    pub fn from_file(path: &Path, graph: &Graph) -> Result<Mapping, PlanError> {
        let text = std::fs::read_to_string(path).map_err(|e| PlanError::io(path, e))?;
        let origin = path.display().to_string();
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        {
            Mapping::from_json_str(&text, graph, &origin)
        } else {
            Mapping::from_toml_str(&text, graph, &origin)
        }
    }

    /// Parses the mapping TOML (`[units]` with, per unit, a list of layer names and/or
    /// `{ from, to }` inclusive ranges, or a single range). `origin` names the source in
    /// errors. A file with `[[split]]` tables is an error here: read it as a [`Hybrid`].
    pub fn from_toml_str(text: &str, graph: &Graph, origin: &str) -> Result<Mapping, PlanError> {
        Hybrid::from_toml_str(text, graph, origin)?.vertical_only(origin)
    }

    /// Parses an AutoDiCE `mapping.json`: `{"<host>_<unit>": [layer names]}`. A key with a
    /// dot is taken as `"<device>.<unit>"` as it is; otherwise it is split at its last
    /// underscore (`"nano_gpu"` -> `"nano.gpu"`, `"lenovo_cpu0"` -> `"lenovo.cpu0"`).
    pub fn from_json_str(text: &str, graph: &Graph, origin: &str) -> Result<Mapping, PlanError> {
        let entries = json_entries(text, graph, origin)?;
        Mapping::from_entries(entries, graph)
            .map_err(|m| PlanError::Mapping(format!("{origin}: {m}")))
    }

    pub(crate) fn from_entries(
        entries: Vec<(String, Vec<usize>)>,
        graph: &Graph,
    ) -> Result<Mapping, String> {
        let n = graph.layers.len();
        let mut owner: Vec<Option<usize>> = vec![None; n];
        let mut units = Vec::new();
        for (unit, layers) in entries {
            check_unit_name(&unit)?;
            let ui = units.len();
            units.push(unit);
            for l in layers {
                if let Some(prev) = owner[l] {
                    return Err(if prev == ui {
                        format!(
                            "layer '{}' is listed twice for unit \"{}\"",
                            graph.layers[l].name, units[ui]
                        )
                    } else {
                        format!(
                            "layer '{}' is mapped twice: to \"{}\" and to \"{}\"",
                            graph.layers[l].name, units[prev], units[ui]
                        )
                    });
                }
                owner[l] = Some(ui);
            }
        }
        let missing: Vec<&str> = (0..n)
            .filter(|&i| owner[i].is_none())
            .map(|i| graph.layers[i].name.as_str())
            .collect();
        if !missing.is_empty() {
            let shown: Vec<&str> = missing.iter().take(8).copied().collect();
            return Err(format!(
                "{} layer(s) are not mapped to any unit: {}{}",
                missing.len(),
                shown.join(", "),
                if missing.len() > shown.len() {
                    ", ..."
                } else {
                    ""
                }
            ));
        }
        // Units that got no layers are dropped; keep order of first use.
        let mut used: Vec<usize> = Vec::new();
        let mut remap = vec![usize::MAX; units.len()];
        for o in owner.iter().flatten() {
            if remap[*o] == usize::MAX {
                remap[*o] = used.len();
                used.push(*o);
            }
        }
        Ok(Mapping {
            units: used.iter().map(|&u| units[u].clone()).collect(),
            layer_unit: owner.iter().map(|o| remap[o.unwrap()]).collect(),
            groups: Vec::new(),
        })
    }

    /// Checks that every unit of the mapping is one of `known_units`.
    pub fn validate_units(&self, known_units: &[String]) -> Result<(), PlanError> {
        for u in &self.units {
            if !known_units.contains(u) {
                return Err(PlanError::Mapping(format!(
                    "mapping uses unit \"{u}\", which the platform does not have; its units are: {}",
                    known_units.join(", ")
                )));
            }
        }
        Ok(())
    }

    /// The mapping as TOML of the mapping contract, contiguous runs written as ranges.
    pub fn to_toml(&self, graph: &Graph) -> String {
        self.units_toml(graph, &[])
    }

    /// `[units]` of the layers not marked in `skip`, contiguous runs written as ranges.
    fn units_toml(&self, graph: &Graph, skip: &[bool]) -> String {
        let mut per_unit: HashMap<usize, Vec<(usize, usize)>> = HashMap::new();
        for (i, &u) in self.layer_unit.iter().enumerate() {
            if skip.get(i).copied().unwrap_or(false) {
                continue;
            }
            let runs = per_unit.entry(u).or_default();
            match runs.last_mut() {
                Some(r) if r.1 + 1 == i => r.1 = i,
                _ => runs.push((i, i)),
            }
        }
        let mut out = String::from(
            "# dicesim mapping: one key per compute unit \"<device>.<unit>\"\n[units]\n",
        );
        for (ui, unit) in self.units.iter().enumerate() {
            let Some(runs) = per_unit.get(&ui) else {
                continue;
            };
            let items: Vec<String> = runs.iter().map(|&r| range_toml(graph, r)).collect();
            let value = match &items[..] {
                [one] => one.clone(),
                _ => format!("[{}]", items.join(", ")),
            };
            out.push_str(&format!("{} = {value}\n", quoted(unit)));
        }
        out
    }
}

/// A TOML string.
fn quoted(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// `{ from = .., to = .. }` of an inclusive range of layers.
fn range_toml(graph: &Graph, (a, b): (usize, usize)) -> String {
    format!(
        "{{ from = {}, to = {} }}",
        quoted(&graph.layers[a].name),
        quoted(&graph.layers[b].name)
    )
}

impl Hybrid {
    /// The mapping as TOML: `[units]` of the layers outside splits, one `[[split]]` table
    /// per split.
    pub fn to_toml(&self, graph: &Graph) -> String {
        let mut skip = vec![false; graph.layers.len()];
        for &l in self.splits.iter().flat_map(|s| &s.layers) {
            skip[l] = true;
        }
        let mut out = self.base.units_toml(graph, &skip);
        for s in &self.splits {
            out.push_str(&split_toml(graph, s));
        }
        out
    }
}

/// One `[[split]]` table.
fn split_toml(graph: &Graph, s: &SplitSpec) -> String {
    let (a, b) = (s.layers[0], s.layers[s.layers.len() - 1]);
    let layers = if b - a + 1 == s.layers.len() {
        range_toml(graph, (a, b))
    } else {
        let names: Vec<String> = s
            .layers
            .iter()
            .map(|&l| quoted(&graph.layers[l].name))
            .collect();
        format!("[{}]", names.join(", "))
    };
    let units: Vec<String> = s.units.iter().map(|u| quoted(u)).collect();
    let mut t = format!(
        "\n[[split]]\nlayers = {layers}\nkind = \"{}\"\nunits = [{}]\n",
        s.kind.name(),
        units.join(", ")
    );
    match &s.shares {
        crate::horizontal::Shares::Ratios(r) => {
            let r: Vec<String> = r.iter().map(|x| format!("{x:?}")).collect();
            t.push_str(&format!("ratios = [{}]\n", r.join(", ")));
        }
        crate::horizontal::Shares::Ends(_) | crate::horizontal::Shares::Speed => {}
    }
    if s.kind == crate::horizontal::SplitKind::Spatial && s.grid.1 != 1 {
        t.push_str(&format!("grid = [{}, {}]\n", s.grid.0, s.grid.1));
    }
    t
}

impl Hybrid {
    /// Reads a mapping file: the TOML of the mapping contract (with `[[split]]` tables), or
    /// AutoDiCE's `mapping.json` (by the `.json` extension) with, optionally, its
    /// `horizontal.json`.
    pub fn from_file(
        path: &Path,
        graph: &Graph,
        horizontal: Option<&Path>,
    ) -> Result<Hybrid, PlanError> {
        let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| PlanError::io(p, e));
        let (text, origin) = (read(path)?, path.display().to_string());
        let is_json = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        match (is_json, horizontal) {
            (false, None) => Hybrid::from_toml_str(&text, graph, &origin),
            (false, Some(_)) => Err(PlanError::Mapping(format!(
                "{origin}: a horizontal.json goes with an AutoDiCE mapping.json; a TOML mapping writes its splits as [[split]] tables"
            ))),
            (true, h) => {
                let splits = match h {
                    Some(h) => crate::horizontal::parse::autodice(&read(h)?, graph, &h.display().to_string())?,
                    None => Vec::new(),
                };
                let mut entries = json_entries(&text, graph, &origin)?;
                // AutoDiCE lists a split layer in mapping.json too: the split decides
                let split_layers: Vec<usize> = splits.iter().flat_map(|s| s.layers.clone()).collect();
                for (_, layers) in entries.iter_mut() {
                    layers.retain(|l| !split_layers.contains(l));
                }
                Hybrid::assemble(entries, splits, graph).map_err(|m| PlanError::Mapping(format!("{origin}: {m}")))
            }
        }
    }

    /// Parses the mapping TOML: `[units]` and `[[split]]` tables.
    pub fn from_toml_str(text: &str, graph: &Graph, origin: &str) -> Result<Hybrid, PlanError> {
        use crate::tomlfile::{explain, TomlProblem};
        let err = |m: String| PlanError::Mapping(format!("{origin}: {m}"));
        let file: MappingFile = toml::from_str(text).map_err(|e| {
            err(match explain(text, &e) {
                TomlProblem::UnknownKey(k) => k.to_string(),
                TomlProblem::Other(m) if toml::de::DeTable::parse(text).is_err() => {
                    format!("TOML syntax error at {m}")
                }
                // a value of the wrong type: serde says what was expected
                TomlProblem::Other(m) => m,
            })
        })?;
        let units = file.units.ok_or_else(|| {
            err("missing table [units] (one key per unit \"<device>.<unit>\")".into())
        })?;
        let mut entries: Vec<(String, Vec<usize>)> = Vec::new();
        for (unit, items) in units.0 {
            let ctx = format!("[units] \"{unit}\"");
            entries.push((
                unit,
                resolve_items(&items.iter().collect::<Vec<_>>(), graph)
                    .map_err(|m| err(format!("{ctx}: {m}")))?,
            ));
        }
        let mut splits = Vec::new();
        for (i, t) in file.split.unwrap_or_default().into_iter().enumerate() {
            let label = format!("{origin}: [[split]] {}", i + 1);
            splits.push(
                split_spec(t, graph, label.clone())
                    .map_err(|m| PlanError::Mapping(format!("{label}: {m}")))?,
            );
        }
        Hybrid::assemble(entries, splits, graph).map_err(err)
    }

    /// The base mapping of `entries` plus the splits (each split's layers on its first
    /// unit), every layer mapped once.
    fn assemble(
        mut entries: Vec<(String, Vec<usize>)>,
        splits: Vec<SplitSpec>,
        graph: &Graph,
    ) -> Result<Hybrid, String> {
        let mut in_split: Vec<Option<usize>> = vec![None; graph.layers.len()];
        for (si, s) in splits.iter().enumerate() {
            for &l in &s.layers {
                if let Some(prev) = in_split[l] {
                    return Err(format!(
                        "layer '{}' is in two splits: {} and {}",
                        graph.layers[l].name, splits[prev].label, s.label
                    ));
                }
                in_split[l] = Some(si);
            }
        }
        for (unit, layers) in &entries {
            if let Some(si) = layers.iter().find_map(|&l| in_split[l].map(|s| (s, l))) {
                return Err(format!(
                    "layer '{}' is in {} and mapped to \"{unit}\" in [units]; a layer is mapped once",
                    graph.layers[si.1].name, splits[si.0].label
                ));
            }
        }
        entries.extend(
            splits
                .iter()
                .map(|s| (s.units[0].clone(), s.layers.clone())),
        );
        let base = Mapping::from_entries(entries, graph)?;
        Ok(Hybrid { base, splits })
    }

    /// The base mapping when there are no splits.
    pub(crate) fn vertical_only(self, origin: &str) -> Result<Mapping, PlanError> {
        if self.splits.is_empty() {
            return Ok(self.base);
        }
        Err(PlanError::Mapping(format!(
            "{origin}: has [[split]] tables (horizontal splits), which this reader does not take; read it with dicesim_plan::horizontal::Hybrid"
        )))
    }
}

/// The layers a list of items names.
fn resolve_items(items: &[&LayerItem], graph: &Graph) -> Result<Vec<usize>, String> {
    let mut layers = Vec::new();
    for it in items {
        layers.extend(it.layers(graph)?);
    }
    Ok(layers)
}

/// A `[[split]]` table checked.
fn split_spec(t: SplitTable, graph: &Graph, label: String) -> Result<SplitSpec, String> {
    let items = t
        .layers
        .ok_or("missing key `layers` (a layer name, a list, or { from, to })")?
        .0;
    if items.is_empty() {
        return Err("layers = []: a split needs at least one layer".into());
    }
    let layers = resolve_items(&items.iter().collect::<Vec<_>>(), graph)
        .map_err(|m| format!("layers: {m}"))?;
    let fields = SplitFields {
        layers,
        kind: t.kind,
        units: t.units,
        ratios: t.ratios,
        grid: t.grid,
    };
    check_split(fields, label)
}

/// The entries of an AutoDiCE `mapping.json`: per unit, its layers.
fn json_entries(
    text: &str,
    graph: &Graph,
    origin: &str,
) -> Result<Vec<(String, Vec<usize>)>, PlanError> {
    let err = |m: String| PlanError::Mapping(format!("{origin}: {m}"));
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| err(format!("JSON syntax error: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| err("expected a JSON object {\"host_unit\": [layers]}".into()))?;
    let mut entries = Vec::new();
    for (key, val) in obj {
        let unit = autodice_unit(key).map_err(err)?;
        let arr = val
            .as_array()
            .ok_or_else(|| err(format!("key \"{key}\": expected a list of layer names")))?;
        let mut layers = Vec::new();
        for x in arr {
            let s = x
                .as_str()
                .ok_or_else(|| err(format!("key \"{key}\": layer names must be strings")))?;
            layers.push(find_layer(graph, s).map_err(|m| err(format!("key \"{key}\": {m}")))?);
        }
        entries.push((unit, layers));
    }
    Ok(entries)
}

/// An AutoDiCE unit key as `"<device>.<unit>"`: as it is when it has a dot, else split at
/// its last underscore (`"nano_gpu"` -> `"nano.gpu"`).
pub(crate) fn autodice_unit(key: &str) -> Result<String, String> {
    if key.contains('.') {
        Ok(key.to_string())
    } else if let Some((d, u)) = key.rsplit_once('_') {
        Ok(format!("{d}.{u}"))
    } else {
        Err(format!(
            "key \"{key}\": expected \"<host>_<unit>\" (e.g. \"nano_gpu\")"
        ))
    }
}

pub(crate) fn check_unit_name(unit: &str) -> Result<(), String> {
    match unit.split_once('.') {
        Some((d, u)) if !d.is_empty() && !u.is_empty() && !u.contains('.') => Ok(()),
        _ => Err(format!(
            "unit \"{unit}\": expected \"<device>.<unit>\", e.g. \"nx1.gpu\""
        )),
    }
}

pub(crate) fn find_layer(graph: &Graph, name: &str) -> Result<usize, String> {
    graph.layer_index(name).ok_or_else(|| {
        let names = graph.layers.iter().map(|l| l.name.as_str());
        if let Some(v) = crate::tomlfile::closest(name, names) {
            return format!("unknown layer '{name}' (did you mean '{v}'? see `dicesim inspect`)");
        }
        let near: Vec<&str> = graph
            .layers
            .iter()
            .map(|l| l.name.as_str())
            .filter(|n| n.starts_with(name.split('.').next().unwrap_or(name)))
            .take(3)
            .collect();
        if near.is_empty() {
            format!("unknown layer '{name}' (see `dicesim inspect` for layer names)")
        } else {
            format!(
                "unknown layer '{name}' (similar: {}; see `dicesim inspect`)",
                near.join(", ")
            )
        }
    })
}

/// A mapping TOML file. Its tables deny unknown keys (see [`crate::tomlfile`]).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingFile {
    units: Option<UnitLists>,
    split: Option<Vec<SplitTable>>,
}

/// A `[[split]]` table (docs/mapping.md#horizontal-splits).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SplitTable {
    layers: Option<Items>,
    kind: Option<String>,
    units: Option<Vec<String>>,
    ratios: Option<Vec<f64>>,
    grid: Option<Vec<usize>>,
}

/// `[units]`: per unit, its layer names and ranges, in file order.
struct UnitLists(Vec<(String, Vec<LayerItem>)>);

/// One entry of a unit's list.
enum LayerItem {
    /// A layer name.
    Name(String),
    /// An inclusive range in topological order.
    Range(RangeTable),
}

/// `{ from = "..", to = ".." }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RangeTable {
    from: Option<String>,
    to: Option<String>,
}

impl LayerItem {
    /// The layer indices the item names.
    fn layers(&self, graph: &Graph) -> Result<Vec<usize>, String> {
        let r = match self {
            LayerItem::Name(s) => return Ok(vec![find_layer(graph, s)?]),
            LayerItem::Range(r) => r,
        };
        let (Some(from), Some(to)) = (&r.from, &r.to) else {
            return Err("a range needs string keys 'from' and 'to'".into());
        };
        let (f, to) = (find_layer(graph, from)?, find_layer(graph, to)?);
        if f > to {
            return Err(format!(
                "range from '{}' to '{}' runs backwards in topological order (positions {f} > {to}; see `dicesim inspect`)",
                graph.layers[f].name, graph.layers[to].name
            ));
        }
        Ok((f..=to).collect())
    }
}

const ITEMS: &str = "a list of layer names or { from = \"..\", to = \"..\" }";

impl<'de> Deserialize<'de> for UnitLists {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = UnitLists;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a table [units] with one key per unit \"<device>.<unit>\"")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<UnitLists, A::Error> {
                let mut out = Vec::new();
                while let Some((unit, items)) = map.next_entry::<String, Items>()? {
                    out.push((unit, items.0));
                }
                Ok(UnitLists(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// A unit's value: one item, or a list of them.
struct Items(Vec<LayerItem>);

impl<'de> Deserialize<'de> for Items {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Items;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(ITEMS)
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Items, E> {
                Ok(Items(vec![LayerItem::Name(s.to_string())]))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Items, A::Error> {
                let d = serde::de::value::MapAccessDeserializer::new(map);
                Ok(Items(vec![LayerItem::Range(RangeTable::deserialize(d)?)]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Items, A::Error> {
                let mut out = Vec::new();
                while let Some(it) = seq.next_element::<LayerItem>()? {
                    out.push(it);
                }
                Ok(Items(out))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for LayerItem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LayerItem;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a layer name or { from = \"..\", to = \"..\" }")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<LayerItem, E> {
                Ok(LayerItem::Name(s.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<LayerItem, A::Error> {
                let d = serde::de::value::MapAccessDeserializer::new(map);
                Ok(LayerItem::Range(RangeTable::deserialize(d)?))
            }
        }
        d.deserialize_any(V)
    }
}
