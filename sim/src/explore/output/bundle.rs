//! A relocatable output folder: the scenario's platform file, the device templates it names,
//! every unit `profile` CSV and the `[calibration]` file (with its profiles) are copied into
//! `DIR/platform/` with their references rewritten, so `runs/<id>.toml` names only files
//! inside `DIR` (relative paths) and `cp -r DIR elsewhere` keeps them runnable. A zoo model
//! needs no file; an ONNX model stays where it is (absolute path): copying a model of
//! hundreds of MB into every output folder would cost more than it saves.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::error::{parse_toml, read_text, SimError};
use crate::files::relative;
use crate::scenario::Scenario;

/// Folder (under the output folder) holding the copies.
pub(super) const PLATFORM_DIR: &str = "platform";

/// Files to write under `DIR/platform/`: relative destination name -> content, plus the
/// source each destination was taken from (one destination per source file).
#[derive(Default)]
struct Bundle {
    files: BTreeMap<String, Vec<u8>>,
    dest_of: BTreeMap<PathBuf, String>,
    taken: BTreeSet<String>,
}

impl Bundle {
    /// A destination `sub/<file name>` for `src`, made unique with a numeric prefix when two
    /// different sources share a file name; the same source always gets the same name.
    fn name_for(&mut self, src: &Path, sub: &str) -> String {
        let key = std::fs::canonicalize(src).unwrap_or_else(|_| src.to_path_buf());
        if let Some(d) = self.dest_of.get(&key) {
            return d.clone();
        }
        let file = src
            .file_name()
            .map_or_else(|| "file".into(), |f| f.to_string_lossy().into_owned());
        let join = |f: &str| {
            if sub.is_empty() {
                f.to_string()
            } else {
                format!("{sub}/{f}")
            }
        };
        let mut dest = join(&file);
        let mut n = 2;
        while self.taken.contains(&dest) {
            dest = join(&format!("{n}-{file}"));
            n += 1;
        }
        self.taken.insert(dest.clone());
        self.dest_of.insert(key, dest.clone());
        dest
    }

    /// Copies the CSV `src` (bytes unchanged) to `profiles/`; returns its destination.
    fn profile(&mut self, src: &Path) -> Result<String, SimError> {
        let dest = self.name_for(src, "profiles");
        if !self.files.contains_key(&dest) {
            let bytes = std::fs::read(src).map_err(|e| SimError::io(src, e))?;
            self.files.insert(dest.clone(), bytes);
        }
        Ok(dest)
    }

    /// Rewrites `profile` of every table in `units` (relative to `file`, the TOML that holds
    /// them) to its copy; `up` is the way from that TOML's copy to `DIR/platform/`.
    fn units(&mut self, units: Option<&mut toml::Value>, file: &Path, up: &str) -> Res {
        let Some(toml::Value::Array(units)) = units else {
            return Ok(());
        };
        for u in units.iter_mut().filter_map(toml::Value::as_table_mut) {
            if let Some(toml::Value::String(p)) = u.get("profile").cloned() {
                let dest = self.profile(&relative(file, &p))?;
                u.insert("profile".into(), format!("{up}{dest}").into());
            }
        }
        Ok(())
    }

    /// Copies a TOML file (parsed as a table, `edit` applied) to `dest`.
    fn toml(&mut self, dest: String, t: &toml::Table) {
        let text = toml::to_string(t).unwrap_or_default();
        self.files.insert(dest, text.into_bytes());
    }

    /// Copies device template `src` (and its profiles) to `devices/`; returns its name.
    fn template(&mut self, src: &Path) -> Result<String, SimError> {
        let dest = self.name_for(src, "devices");
        if !self.files.contains_key(&dest) {
            let mut t = read_table(src)?;
            self.units(t.get_mut("unit"), src, "../")?;
            self.toml(dest.clone(), &t);
        }
        Ok(dest)
    }

    /// Copies platform file `src` with its templates and profiles; returns its name.
    fn platform(&mut self, src: &Path) -> Result<String, SimError> {
        let mut t = read_table(src)?;
        if let Some(toml::Value::Array(devices)) = t.get_mut("device") {
            for d in devices.iter_mut().filter_map(toml::Value::as_table_mut) {
                if let Some(toml::Value::String(tpl)) = d.get("template").cloned() {
                    let dest = self.template(&relative(src, &tpl))?;
                    d.insert("template".into(), dest.into());
                }
                // inline profiles are relative to the platform file, as their copies are
                self.units(d.get_mut("unit"), src, "")?;
            }
        }
        let dest = self.name_for(src, "");
        self.toml(dest.clone(), &t);
        Ok(dest)
    }

    /// Copies calibration file `src` and its profiles; returns its name.
    fn calibration(&mut self, src: &Path) -> Result<String, SimError> {
        let mut t = read_table(src)?;
        self.units(t.get_mut("unit"), src, "")?;
        let dest = self.name_for(src, "");
        self.toml(dest.clone(), &t);
        Ok(dest)
    }
}

type Res = Result<(), SimError>;

fn read_table(path: &Path) -> Result<toml::Table, SimError> {
    parse_toml(path, &read_text(path)?)
}

/// Where `runs/<id>.toml` finds the copies.
pub(super) struct Copies {
    /// The platform file, relative to `runs/`.
    platform: String,
    /// The calibration file, relative to `runs/`, when the scenario names one.
    calibration: Option<String>,
}

/// Writes the copies of the scenario's platform (and calibration) under `dir/platform/`.
pub(super) fn write_platform(sc: &Scenario, dir: &Path) -> Result<Copies, SimError> {
    let t = read_table(&sc.path)?;
    let file_of = |section: &str| match t.get(section) {
        Some(toml::Value::Table(s)) => s.get("file").and_then(|f| f.as_str()).map(String::from),
        _ => None,
    };
    let mut b = Bundle::default();
    let platform = match file_of("platform") {
        Some(f) => b.platform(&relative(&sc.path, &f))?,
        None => b.platform(&sc.prep.platform.path)?,
    };
    let calibration = match file_of("calibration") {
        Some(f) => Some(b.calibration(&relative(&sc.path, &f))?),
        None => None,
    };
    for (name, bytes) in &b.files {
        let p = dir.join(PLATFORM_DIR).join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(|e| SimError::io(parent, e))?;
        }
        std::fs::write(&p, bytes).map_err(|e| SimError::io(&p, e))?;
    }
    let from_runs = |n: String| format!("../{PLATFORM_DIR}/{n}");
    Ok(Copies {
        platform: from_runs(platform),
        calibration: calibration.map(from_runs),
    })
}

/// The scenario with `[mapping]` replaced by an explicit mapping file, the platform and
/// calibration pointing at the copies, an ONNX model path made absolute.
pub(super) fn run_scenario_text(
    sc: &Scenario,
    copies: &Copies,
    id: &str,
) -> Result<String, SimError> {
    let mut t = read_table(&sc.path)?;
    let set_file = |t: &mut toml::Table, section: &str, file: &str| {
        let mut s = toml::Table::new();
        s.insert("file".into(), file.into());
        t.insert(section.into(), toml::Value::Table(s));
    };
    set_file(&mut t, "platform", &copies.platform);
    if let Some(c) = &copies.calibration {
        set_file(&mut t, "calibration", c);
    }
    if let Some(toml::Value::Table(m)) = t.get_mut("model") {
        if let Some(toml::Value::String(f)) = m.get("path").cloned() {
            let p = relative(&sc.path, &f);
            let abs = std::fs::canonicalize(&p).unwrap_or(p);
            m.insert("path".into(), abs.to_string_lossy().into_owned().into());
        }
    }
    let mut m = toml::Table::new();
    m.insert("strategy".into(), "explicit".into());
    m.insert("file".into(), format!("../mappings/{id}.toml").into());
    t.insert("mapping".into(), toml::Value::Table(m));
    t.remove("hil");
    t.insert(
        "name".into(),
        format!("{} (explore {})", sc.name, id).into(),
    );
    Ok(toml::to_string(&t).unwrap_or_default())
}
