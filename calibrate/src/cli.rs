//! The `dicesim profile` and `dicesim validate` commands: checks of their options, the
//! calls, and what they print.

use crate::profile::{self, ContextProfile, LayerTime, Pace};
use crate::scaling::{self, ScalingProfile};
use crate::scaling_fit;
use crate::validate::{validate, Options};
use anyhow::{bail, Result};
use dicesim_plan::model::InputShapes;
use dicesim_plan::Model;
use std::path::{Path, PathBuf};

/// What `dicesim profile` was asked (its command-line options).
#[derive(Debug, Clone)]
pub struct ProfileRequest {
    /// ONNX model.
    pub model: PathBuf,
    /// Backend: the built-in `tract`, or a plugin (`ort`, `tch`, ...).
    pub backend: String,
    /// Output CSV.
    pub out: PathBuf,
    /// Intra-op thread counts: `[1]` with tract is the single-thread profile; anything else
    /// times each layer at each count ([`crate::scaling`]).
    pub threads: Vec<usize>,
    /// `--cores`: the CPUs to pin to (`0-3`, `0,2`); None: the CPUs this process may use.
    pub cores: Option<String>,
    /// Warm-up runs.
    pub warmup: usize,
    /// Measuring time [ms].
    pub budget_ms: f64,
    /// Each layer alone as a sub-model instead of in context.
    pub isolated: bool,
    /// Pacing: a device computing 1/duty of the time.
    pub duty: f64,
    /// Evict the caches between runs.
    pub cold: bool,
    /// Sub-model runs the in-context times are fitted to (0: no fit).
    pub chunks: usize,
    /// Shapes of inputs with symbolic dimensions.
    pub shapes: InputShapes,
}

impl ProfileRequest {
    /// Whether this is the thread-scaling profile (several thread counts, or a backend
    /// other than the built-in tract): every layer alone, wall time, at each count.
    fn scaling(&self) -> bool {
        self.threads != [1] || self.backend != "tract"
    }

    fn check(&mut self) -> Result<()> {
        if !(self.duty.is_finite() && self.duty >= 1.0) {
            bail!("profile: --duty must be a number >= 1, got {}", self.duty);
        }
        self.threads.sort_unstable();
        self.threads.dedup();
        if self.threads.is_empty() || self.threads[0] == 0 {
            bail!("profile: --threads takes counts >= 1 (e.g. --threads 1,2,4)");
        }
        if !self.scaling() {
            return Ok(());
        }
        if self.duty != 1.0 || self.cold {
            bail!("profile: --duty and --cold pace the single-thread tract profile only; leave them out with --threads {} / --backend {}", self.threads_list(), self.backend);
        }
        if self.threads.iter().any(|&k| k > 1) {
            scaling::thread_support(&self.backend)?;
        }
        Ok(())
    }

    fn threads_list(&self) -> String {
        let v: Vec<String> = self.threads.iter().map(|k| k.to_string()).collect();
        v.join(",")
    }

    fn cores(&self) -> Result<Option<Vec<usize>>> {
        self.cores.as_deref().map(scaling::parse_cores).transpose()
    }
}

/// `dicesim profile`: measures, writes the CSV, prints the totals and the baseline fit
/// (and with several thread counts, the per-class serial fractions).
pub fn profile_command(a: &ProfileRequest) -> Result<()> {
    let mut a = a.clone();
    a.check()?;
    let cores = a.cores()?;
    let model = Model::load(&a.model, &a.shapes)?;
    if a.scaling() {
        return scaling_command(&a, &model, cores.as_deref());
    }
    // measure on one CPU (the last listed or that this process may use: CPU 0 takes most
    // interrupts)
    let cpus = cores.unwrap_or_else(profile::allowed_cpus);
    if let Some(&cpu) = cpus.last() {
        profile::pin_to(cpu)?;
    }
    let (layers, context) = if a.isolated {
        (profile::profile_model(&model, a.warmup, a.budget_ms)?, None)
    } else {
        let pace = Pace {
            duty: a.duty,
            cold: a.cold,
        };
        let p = profile::profile_in_context(&model, a.warmup, a.budget_ms, pace, a.chunks)?;
        (p.layers.clone(), Some(p))
    };
    profile::write_csv(&a.out, &model.graph.name, 1, &layers, context.as_ref())?;
    print_profile(&model, &layers, context.as_ref(), &a.out);
    Ok(())
}

/// The thread-scaling profile: pins, times every layer at each count, writes the CSV,
/// prints the totals, the baseline fit at the largest count and the per-class table.
fn scaling_command(a: &ProfileRequest, model: &Model, cores: Option<&[usize]>) -> Result<()> {
    let cpus = scaling::pin(&a.threads, cores)?;
    let engine = scaling::engine(&a.backend)?;
    let note = scaling::thread_support(&a.backend).unwrap_or("one thread");
    println!("backend {}: {note}", a.backend);
    let how = if cores.is_some() {
        "pinned"
    } else {
        "allowed, not pinned"
    };
    println!("cpus {cpus:?} ({how}); threads {}", a.threads_list());
    let runs = scaling::Runs {
        warmup: a.warmup,
        budget_ms: a.budget_ms,
    };
    let prof = scaling::measure(model, engine.as_ref(), &a.threads, runs)?;
    let header = scaling::CsvHeader {
        model: &model.graph.name,
        backend: &a.backend,
        cpus: &cpus,
        pinned: cores.is_some(),
    };
    scaling::write_csv(&a.out, header, &prof)?;
    let most = a.threads.iter().max().copied().unwrap_or(1);
    println!("each layer alone as a sub-model, wall time; time_us at {most} threads");
    print_profile(model, &prof.layers, None, &a.out);
    print_scaling(&prof);
    Ok(())
}

fn print_scaling(prof: &ScalingProfile) {
    if !prof.threads.contains(&1) || prof.threads.len() < 2 {
        println!("thread scaling: not fitted (needs --threads 1 and another count)");
        return;
    }
    let fits = prof.fit();
    println!("thread scaling per operator class (share: of the one-thread time; xK: measured speed-up T_1/T_K; model: Amdahl's at the largest count with the fitted fraction):");
    print!("{}", scaling_fit::table(&prof.threads, &fits));
    let lines = scaling_fit::toml_lines(&fits);
    if lines.is_empty() {
        println!(
            "no class has enough time to fit (at least {:.0}% of the model and {} us)",
            scaling_fit::MIN_SHARE * 100.0,
            scaling_fit::MIN_CLASS_US
        );
    } else {
        println!(
            "paste under the unit ([[unit]] of a device file, [[device.unit]] of a platform file):"
        );
        print!("{lines}");
    }
}

fn print_profile(
    model: &Model,
    layers: &[LayerTime],
    context: Option<&ContextProfile>,
    out: &Path,
) {
    let total: f64 = layers.iter().map(|l| l.time_us).sum();
    if let Some(c) = context {
        println!(
            "whole model: {:.1} us per run (median), of which {:.1} us outside every operator",
            c.run_us, c.run_overhead_us
        );
    }
    println!(
        "{} layers profiled ({} skipped), sum of medians {:.1} us -> {}",
        layers.len(),
        model.graph.layers.len() - layers.len(),
        total,
        out.display()
    );
    match profile::fit(layers) {
        Some(f) => println!(
            "baseline fit: gflops = {:.3}, mem_gbps = {:.3}, layer_overhead_us = {:.2}; median relative error {:.1}%",
            f.gflops,
            f.mem_gbps,
            f.layer_overhead_us,
            f.median_rel_error * 100.0
        ),
        None => println!("baseline fit: no layers"),
    }
}

/// What `dicesim validate` was asked (its command-line options).
#[derive(Debug, Clone)]
pub struct ValidateRequest {
    /// Scenario, or with `suite` a folder of scenarios.
    pub scenario: PathBuf,
    /// Print JSON instead of a table.
    pub json: bool,
    /// Validate every scenario of the folder.
    pub suite: bool,
    /// Keep the calibration in this folder.
    pub calibration_out: Option<PathBuf>,
    /// With `suite`: write suite.json and suite.svg here.
    pub out: Option<PathBuf>,
}

/// `dicesim validate`: one scenario's comparison (table or JSON), or a suite's.
pub fn validate_command(a: ValidateRequest) -> Result<()> {
    if a.suite {
        return crate::suite::suite(&a.scenario, a.out.as_deref()).map(|_| ());
    }
    let opts = Options {
        calibration_out: a.calibration_out,
    };
    let v = validate(&a.scenario, &opts)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&v.to_json())?);
    } else {
        print!("{}", v.text());
    }
    Ok(())
}
