//! `dicesim profile --memory`: measures one backend's memory model on this host.
//!
//! Each sub-model of a few equal-FLOP splits (the zoo's resnet18 and vgg16 at 224 px by
//! default) is loaded in a child process of its own (`dicesim profile-memory-probe`, hidden),
//! which loads it as a worker does (the bytes handed to the engine to free, the lean
//! allocator, freed memory trimmed), runs a few frames and reports its peak resident set
//! (VmHWM). An idle child (the engine loaded, no model) is measured and shown, not fitted: a
//! load pages in code (tract's optimiser, the runtimes' kernels) that an idle engine has not
//! touched, so the base is the fit's intercept. The simulator's
//! memory terms of each sub-model (weights per class, peak live activations, input and
//! receive buffers; docs/simulator.md#memory) are then fitted to the measured peaks:
//!
//! ```text
//! measured - buffers = memory_base_mb + weights_factor x other weights
//!                      + fc_factor x fully connected weights + activations_factor x activations
//! ```
//!
//! by least squares of the relative error (each row weighted by 1 / measured), in closed
//! form (normal equations). A factor that would come out negative is fixed at 0 and the rest
//! refitted; the fc factor equals the unit's when no sample has fully connected weights.

use anyhow::{bail, Context, Result};
use dicesim_hil::engine::{self, Tensor};
use dicesim_plan::opclass::OpClass;
use dicesim_sim::memory::{class_index, PartTerms};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Bytes in a MiB.
const MIB: f64 = 1024.0 * 1024.0;

/// The hidden subcommand that loads one sub-model and prints its peak resident set.
pub const PROBE_COMMAND: &str = "profile-memory-probe";

/// Frames each child runs after loading.
const FRAMES: usize = 3;

/// Default models (zoo names, 224 px) and splits.
const DEFAULT_MODELS: [&str; 2] = ["resnet18", "vgg16"];
const SPLITS: [usize; 2] = [2, 3];

/// What `dicesim profile --memory` was asked.
#[derive(Debug, Clone)]
pub struct MemoryRequest {
    /// Backend: the built-in `tract`, or a plugin (`ort`, `tch`, ...).
    pub backend: String,
    /// Intra-op threads of each child's engine.
    pub threads: usize,
    /// An ONNX model to split (None: the zoo's resnet18 and vgg16 at 224 px).
    pub model: Option<PathBuf>,
    /// Where the measured-vs-predicted table goes as CSV (None: printed only).
    pub out: Option<PathBuf>,
}

/// One measured child: a sub-model's terms and its peak resident set.
#[derive(Debug, Clone)]
pub struct Sample {
    /// `resnet18 2/0` (model, parts in the split, partition) or `idle`.
    pub name: String,
    /// Weights of fully connected layers [MiB].
    pub fc_mb: f64,
    /// Weights of every other class [MiB].
    pub other_mb: f64,
    /// Peak live activations [MiB].
    pub activations_mb: f64,
    /// Input frame and receive buffers, which no factor scales [MiB].
    pub buffers_mb: f64,
    /// Measured peak resident set (VmHWM) [MiB].
    pub measured_mb: f64,
}

/// A fitted memory model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemoryFit {
    /// `memory_base_mb`.
    pub base_mb: f64,
    /// `weights_factor` (every class but fc).
    pub weights_factor: f64,
    /// `[unit.classes.fc] weights_factor`.
    pub fc_weights_factor: f64,
    /// `activations_factor`.
    pub activations_factor: f64,
}

impl MemoryFit {
    fn from_coefficients(x: [f64; 4]) -> MemoryFit {
        MemoryFit {
            base_mb: x[0],
            weights_factor: x[1],
            fc_weights_factor: x[2],
            activations_factor: x[3],
        }
    }

    /// The predicted peak of `s` [MiB].
    pub fn predict(&self, s: &Sample) -> f64 {
        self.base_mb
            + self.weights_factor * s.other_mb
            + self.fc_weights_factor * s.fc_mb
            + self.activations_factor * s.activations_mb
            + s.buffers_mb
    }

    /// The fit as unit keys (a device file's `[[unit]]` or a calibration's `[[unit]]`).
    pub fn toml(&self) -> String {
        format!(
            "memory_base_mb = {:.1}\nweights_factor = {:.2}\nactivations_factor = {:.2}\n\n\
             [unit.classes.fc]\nweights_factor = {:.2}\n",
            self.base_mb, self.weights_factor, self.activations_factor, self.fc_weights_factor
        )
    }
}

impl Sample {
    /// The row of the fit: the coefficients' multipliers and the target [MiB].
    fn row(&self) -> ([f64; 4], f64) {
        let x = [1.0, self.other_mb, self.fc_mb, self.activations_mb];
        (x, self.measured_mb - self.buffers_mb)
    }

    /// A sub-model's sample from its simulator terms and the receive buffers of its device.
    fn of_terms(name: String, t: &PartTerms, receive: u64, measured_mb: f64) -> Sample {
        let fc = t.weights[class_index(OpClass::Fc)];
        let all: u64 = t.weights.iter().sum();
        Sample {
            name,
            fc_mb: fc as f64 / MIB,
            other_mb: (all - fc) as f64 / MIB,
            activations_mb: t.activations as f64 / MIB,
            buffers_mb: (t.inputs + receive) as f64 / MIB,
            measured_mb,
        }
    }
}

/// Least squares of the relative error over `samples` (see the module docs).
pub fn fit(samples: &[Sample]) -> Result<MemoryFit> {
    if samples.len() < 4 {
        bail!(
            "profile --memory: {} samples, at least 4 needed",
            samples.len()
        );
    }
    let has_fc = samples.iter().any(|s| s.fc_mb > 0.0);
    // columns fitted; fc shares the unit's factor when no sample has fc weights
    let mut free = [true, true, has_fc, true];
    loop {
        let x = solve_weighted(samples, &free, has_fc)?;
        match (0..4).find(|&i| free[i] && x[i] < 0.0) {
            Some(i) => free[i] = false,
            None => return Ok(MemoryFit::from_coefficients(x)),
        }
    }
}

/// The weighted normal equations over the `free` columns (the others are 0, or for the fc
/// column without fc samples, the weights factor) solved in closed form.
fn solve_weighted(samples: &[Sample], free: &[bool; 4], has_fc: bool) -> Result<[f64; 4]> {
    let cols: Vec<usize> = (0..4).filter(|&i| free[i]).collect();
    let n = cols.len();
    let mut a = vec![vec![0.0; n + 1]; n];
    for s in samples {
        let (mut x, y) = s.row();
        if !has_fc {
            x[1] += x[2];
        }
        let w = 1.0 / (s.measured_mb * s.measured_mb);
        for (r, &i) in cols.iter().enumerate() {
            for (c, &j) in cols.iter().enumerate() {
                a[r][c] += w * x[i] * x[j];
            }
            a[r][n] += w * x[i] * y;
        }
    }
    let sol = gauss(a).context("profile --memory: the samples do not determine the factors")?;
    let mut x = [0.0; 4];
    for (k, &i) in cols.iter().enumerate() {
        x[i] = sol[k];
    }
    if !has_fc {
        x[2] = x[1];
    }
    Ok(x)
}

/// Solves the augmented system `a` (n rows of n + 1) by Gaussian elimination with partial
/// pivoting; None when it is singular.
fn gauss(mut a: Vec<Vec<f64>>) -> Option<Vec<f64>> {
    let n = a.len();
    for k in 0..n {
        let p = (k..n).max_by(|&i, &j| a[i][k].abs().total_cmp(&a[j][k].abs()))?;
        if a[p][k].abs() < 1e-12 {
            return None;
        }
        a.swap(k, p);
        let (top, rest) = a.split_at_mut(k + 1);
        let pivot = &top[k];
        for row in rest {
            let f = row[k] / pivot[k];
            for (x, p) in row.iter_mut().zip(pivot).skip(k) {
                *x -= f * p;
            }
        }
    }
    let mut x = vec![0.0; n];
    for k in (0..n).rev() {
        let s: f64 = (k + 1..n).map(|j| a[k][j] * x[j]).sum();
        x[k] = (a[k][n] - s) / a[k][k];
    }
    Some(x)
}

/// Runs in the child: loads `model` (None: nothing, the engine's base) with `backend` as a
/// worker does, runs [`FRAMES`] frames on `inputs` (name, shape) and returns the process's
/// peak resident set [KiB].
pub fn probe(
    backend: &str,
    model: Option<&Path>,
    inputs: &[(String, Vec<usize>)],
    threads: usize,
) -> Result<u64> {
    dicesim_hil::spill::lean_allocator();
    let engine = engine::by_name(backend)?;
    let Some(model) = model else {
        return Ok(dicesim_hil::sensors::peak_rss_kb());
    };
    let bytes = std::fs::read(model).with_context(|| format!("reading {}", model.display()))?;
    let mut session = engine.load_owned(bytes, threads)?;
    dicesim_hil::spill::release_freed_memory();
    let feed: HashMap<String, Tensor> = (inputs.iter())
        .map(|(n, shape)| (n.clone(), frame(shape)))
        .collect();
    for _ in 0..FRAMES {
        session.run(&feed)?;
    }
    Ok(dicesim_hil::sensors::peak_rss_kb())
}

/// A frame of `shape` with values in [-1, 1) (a fixed sequence: the values do not matter).
fn frame(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let data = (0..n)
        .map(|i| ((i * 7919) % 2000) as f32 / 1000.0 - 1.0)
        .collect();
    Tensor {
        shape: shape.to_vec(),
        data,
    }
}

/// Spawns this executable's probe for `model` and returns its peak [MiB].
fn probe_child(
    backend: &str,
    model: Option<&Path>,
    inputs: &[(String, Vec<usize>)],
    threads: usize,
) -> Result<f64> {
    let exe = std::env::current_exe().context("locating the dicesim executable")?;
    let mut cmd = Command::new(exe);
    cmd.args([PROBE_COMMAND, "--backend", backend])
        .args(["--threads", &threads.to_string()]);
    for (n, shape) in inputs {
        let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
        cmd.arg("--input").arg(format!("{n}={}", dims.join(",")));
    }
    cmd.args(model);
    let out = cmd.output().context("starting the memory probe")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "memory probe ({}) failed: {}",
            model.map_or("idle".into(), |m| m.display().to_string()),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let kb: u64 = (stdout.lines().rev())
        .find_map(|l| l.strip_prefix("peak_rss_kb ")?.trim().parse().ok())
        .context("the memory probe printed no peak_rss_kb line")?;
    Ok(kb as f64 / 1024.0)
}

/// Parses a probe's `--input name=d0,d1,...`.
pub fn parse_input(s: &str) -> Result<(String, Vec<usize>)> {
    let (name, dims) = s.split_once('=').context("expected NAME=D0,D1,...")?;
    let shape = (dims.split(','))
        .map(|d| {
            d.trim()
                .parse::<usize>()
                .with_context(|| format!("bad dimension `{d}`"))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((name.to_string(), shape))
}

/// Writes the files of a platform of `k` one-CPU devices on a switch, and a scenario that
/// splits `model` (a zoo name or an ONNX file) over them by equal FLOPs; the scenario's path.
fn split_scenario(dir: &Path, model: &str, k: usize) -> Result<PathBuf> {
    let mut plat = String::from("name = \"memory-probe\"\n[[switch]]\nname = \"sw\"\n");
    for d in 0..k {
        plat += &format!(
            "[[device]]\nname = \"d{d}\"\nmemory_mb = 1048576\n[[device.unit]]\nname = \"cpu\"\n\
             kind = \"cpu\"\ncores = 1\ngflops = 1\nmem_gbps = 1\n\
             [[link]]\nends = [\"d{d}\", \"sw\"]\nbandwidth_mbps = 1000\n"
        );
    }
    let pname = format!("plat{k}.toml");
    std::fs::write(dir.join(&pname), plat)?;
    let source = if Path::new(model).extension().is_some_and(|e| e == "onnx") {
        let abs = std::fs::canonicalize(model).with_context(|| format!("model {model}"))?;
        format!("path = {:?}", abs.display().to_string())
    } else {
        format!("zoo = {model:?}\ninput_size = 224")
    };
    let s = dir.join(format!("{k}-way.toml"));
    std::fs::write(
        &s,
        format!(
            "[model]\n{source}\n[platform]\nfile = \"{pname}\"\n[mapping]\nstrategy = \"even\"\n"
        ),
    )?;
    Ok(s)
}

/// Measures every partition of `model` split `k` ways: one child each.
fn measure_split(dir: &Path, model: &str, k: usize, a: &MemoryRequest) -> Result<Vec<Sample>> {
    let prep = dicesim_hil::coord::prepare(&split_scenario(dir, model, k)?)?;
    let ps = &prep.scenario.prep;
    let terms = ps.memory_terms(&ps.sim_plan_from(&prep.plan)?);
    if terms.parts.len() != prep.plan.partitions.len() {
        bail!("profile --memory: the simulator merged partitions of {model}");
    }
    let mut samples = Vec::new();
    for (p, part) in prep.plan.partitions.iter().enumerate() {
        let sub = dicesim_plan::split::sub_model(&prep.model, &prep.plan, p);
        let file = dir.join(format!("part{k}-{p}.onnx"));
        std::fs::write(&file, dicesim_plan::onnx::encode_model(&sub))?;
        drop(sub);
        let inputs: Vec<(String, Vec<usize>)> = (part.inputs.iter())
            .map(|t| (t.name.clone(), t.shape.clone()))
            .collect();
        let measured = probe_child(&a.backend, Some(&file), &inputs, a.threads)?;
        std::fs::remove_file(&file)?;
        let t = &terms.parts[p];
        let receive = terms.receive[ps.platform.units[t.unit].device];
        let name = format!("{} {k}/{p}", short_name(model));
        samples.push(Sample::of_terms(name, t, receive, measured));
        eprintln!("  {}: {measured:.1} MiB", samples[samples.len() - 1].name);
    }
    Ok(samples)
}

/// A model's name in the table: a zoo name, or an ONNX file's stem.
fn short_name(model: &str) -> String {
    let p = Path::new(model);
    p.file_stem()
        .map_or(model.into(), |s| s.to_string_lossy().into_owned())
}

/// `dicesim profile --memory`: measures, fits, prints the table and the TOML keys, and
/// writes the table as CSV to `--out` when given.
pub fn memory_command(a: &MemoryRequest) -> Result<()> {
    let models: Vec<String> = match &a.model {
        Some(m) => vec![m.display().to_string()],
        None => DEFAULT_MODELS.iter().map(|m| m.to_string()).collect(),
    };
    let dir = dicesim_hil::private::create_private_dir("dicesim-memory")?;
    eprintln!(
        "profile --memory: backend {}, one child per sub-model",
        a.backend
    );
    let idle = probe_child(&a.backend, None, &[], a.threads)?;
    let mut samples = vec![Sample {
        name: "idle (not fitted)".into(),
        fc_mb: 0.0,
        other_mb: 0.0,
        activations_mb: 0.0,
        buffers_mb: 0.0,
        measured_mb: idle,
    }];
    for m in &models {
        for k in SPLITS {
            samples.extend(measure_split(&dir, m, k, a)?);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    // the idle engine has not yet paged in the code a load runs (tract's optimiser, the
    // runtimes' kernels): shown, but the base is the fit's intercept over loaded sub-models
    let fit = fit(&samples[1..])?;
    print_table(&samples, &fit);
    if let Some(out) = &a.out {
        write_table(out, &samples, &fit)?;
        println!("wrote {}", out.display());
    }
    println!(
        "\n# memory model of backend {} on this host ({} {}), fitted by `dicesim profile --memory`\n{}",
        a.backend,
        std::env::consts::ARCH,
        std::env::consts::OS,
        fit.toml()
    );
    Ok(())
}

/// One row of the measured-vs-predicted table.
#[derive(serde::Serialize)]
struct Row<'a> {
    sample: &'a str,
    weights_mb: f64,
    fc_weights_mb: f64,
    activations_mb: f64,
    buffers_mb: f64,
    measured_mb: f64,
    predicted_mb: f64,
    error: f64,
}

fn rows<'a>(samples: &'a [Sample], fit: &MemoryFit) -> Vec<Row<'a>> {
    let r3 = |x: f64| (x * 1000.0).round() / 1000.0;
    (samples.iter())
        .map(|s| {
            let p = fit.predict(s);
            Row {
                sample: &s.name,
                weights_mb: r3(s.other_mb),
                fc_weights_mb: r3(s.fc_mb),
                activations_mb: r3(s.activations_mb),
                buffers_mb: r3(s.buffers_mb),
                measured_mb: r3(s.measured_mb),
                predicted_mb: r3(p),
                error: r3((p - s.measured_mb) / s.measured_mb),
            }
        })
        .collect()
}

fn print_table(samples: &[Sample], fit: &MemoryFit) {
    println!(
        "{:<18} {:>9} {:>9} {:>9} {:>8} {:>9} {:>9} {:>7}",
        "sub-model", "w [MiB]", "fc [MiB]", "act", "buffers", "measured", "predicted", "error"
    );
    for r in rows(samples, fit) {
        println!(
            "{:<18} {:>9.1} {:>9.1} {:>9.1} {:>8.1} {:>9.1} {:>9.1} {:>+6.1}%",
            r.sample,
            r.weights_mb,
            r.fc_weights_mb,
            r.activations_mb,
            r.buffers_mb,
            r.measured_mb,
            r.predicted_mb,
            r.error * 100.0
        );
    }
}

fn write_table(out: &Path, samples: &[Sample], fit: &MemoryFit) -> Result<()> {
    let mut w = ::csv::Writer::from_path(out).with_context(|| format!("{}", out.display()))?;
    for r in rows(samples, fit) {
        w.serialize(r)?;
    }
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(other: f64, fc: f64, act: f64, m: &MemoryFit) -> Sample {
        let mut s = Sample {
            name: "s".into(),
            fc_mb: fc,
            other_mb: other,
            activations_mb: act,
            buffers_mb: 0.5,
            measured_mb: 0.0,
        };
        s.measured_mb = m.predict(&s);
        s
    }

    #[test]
    fn an_exact_model_is_recovered() {
        let m = MemoryFit {
            base_mb: 11.0,
            weights_factor: 2.4,
            fc_weights_factor: 1.6,
            activations_factor: 1.7,
        };
        let s: Vec<Sample> = [
            (0., 0., 0.),
            (2.6, 0., 6.1),
            (40., 2., 0.6),
            (4.4, 0., 24.5),
        ]
        .iter()
        .chain(&[(29.0, 494.0, 6.1)])
        .map(|&(o, f, a)| sample(o, f, a, &m))
        .collect();
        let f = fit(&s).unwrap();
        for (a, b) in [
            (f.base_mb, 11.0),
            (f.weights_factor, 2.4),
            (f.fc_weights_factor, 1.6),
            (f.activations_factor, 1.7),
        ] {
            assert!((a - b).abs() < 1e-6, "{f:?}");
        }
    }

    #[test]
    fn without_fc_weights_fc_takes_the_units_factor_and_negatives_are_zero() {
        let m = MemoryFit {
            base_mb: 5.0,
            weights_factor: 2.0,
            fc_weights_factor: 2.0,
            activations_factor: 0.0,
        };
        let s: Vec<Sample> = [(0., 0., 0.), (1., 0., 3.), (10., 0., 1.), (3., 0., 8.)]
            .iter()
            .map(|&(o, f, a)| sample(o, f, a, &m))
            .collect();
        let f = fit(&s).unwrap();
        assert!((f.weights_factor - 2.0).abs() < 1e-6, "{f:?}");
        assert_eq!(f.fc_weights_factor, f.weights_factor);
        assert!(f.activations_factor >= 0.0);
        assert!(f
            .toml()
            .contains("[unit.classes.fc]\nweights_factor = 2.00"));
    }

    #[test]
    fn probe_inputs_parse() {
        assert_eq!(
            parse_input("x=1,3,4").unwrap(),
            ("x".to_string(), vec![1, 3, 4])
        );
        assert!(parse_input("x").is_err());
        assert!(parse_input("x=1,a").is_err());
    }
}
