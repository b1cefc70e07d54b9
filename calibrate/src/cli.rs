//! The `dicesim profile` and `dicesim validate` commands: checks of their options, the
//! calls, and what they print.

use crate::profile::{self, ContextProfile, LayerTime, Pace};
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
    /// Backend (only `tract`).
    pub backend: String,
    /// Output CSV.
    pub out: PathBuf,
    /// Threads (only 1).
    pub threads: usize,
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
    fn check(&self) -> Result<()> {
        if self.backend != "tract" {
            bail!(
                "profile: unknown backend '{}' (available: tract)",
                self.backend
            );
        }
        if !(self.duty.is_finite() && self.duty >= 1.0) {
            bail!("profile: --duty must be a number >= 1, got {}", self.duty);
        }
        if self.threads != 1 {
            bail!("profile: tract runs a model on one thread; --threads must be 1");
        }
        Ok(())
    }
}

/// `dicesim profile`: measures, writes the CSV, prints the totals and the baseline fit.
pub fn profile_command(a: &ProfileRequest) -> Result<()> {
    a.check()?;
    let model = Model::load(&a.model, &a.shapes)?;
    // measure on one CPU (the last this process may use: CPU 0 takes most interrupts)
    if let Some(&cpu) = profile::allowed_cpus().last() {
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
    profile::write_csv(
        &a.out,
        &model.graph.name,
        a.threads,
        &layers,
        context.as_ref(),
    )?;
    print_profile(&model, &layers, context.as_ref(), &a.out);
    Ok(())
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
