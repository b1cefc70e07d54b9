//! `dicesim device fit`: device files fitted to measured whole-model latencies, one board
//! (`--board`) or a library of device files at once (`--library`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use dicesim_fit::base::BaseDevice;
use dicesim_fit::board::{fit_boards, BoardFit};
use dicesim_fit::devicefile::{row_line, write, Summary};
use dicesim_fit::measured::Row;

/// What is fitted.
#[derive(Debug, Clone)]
pub enum FitTarget {
    /// One board's rows, written to `out`; `base` supplies what the rows do not determine.
    Board {
        /// The `board_id` of the rows.
        board: String,
        /// Device file written.
        out: PathBuf,
        /// Base device file (`None`: generic figures).
        base: Option<PathBuf>,
    },
    /// Every board of the rows that has a device file in `dir`, fitted jointly (the units of
    /// one kind share the class figures), written to `out` (default: `dir`, in place).
    Library {
        /// Folder of device files (`platforms/devices`).
        dir: PathBuf,
        /// Folder written.
        out: Option<PathBuf>,
    },
}

/// Fits, prints each unit's rows and errors (fitted, and leave-one-model-out), writes the
/// device files.
pub fn fit(measured: &Path, target: &FitTarget) -> Result<()> {
    let rows = dicesim_fit::measured::read(measured)?;
    let (boards, outs) = match target {
        FitTarget::Board { board, out, base } => (
            vec![(board.clone(), base_device(board, base.as_deref())?)],
            vec![out.clone()],
        ),
        FitTarget::Library { dir, out } => library(&rows, dir, out.as_deref().unwrap_or(dir))?,
    };
    let fits = fit_boards(&rows, boards)?;
    for (fit, out) in fits.iter().zip(&outs) {
        print_fit(fit);
        let text = write(fit, &command_line(measured, target, &fit.board))
            .context("writing the device file")?;
        std::fs::write(out, text).with_context(|| format!("{}", out.display()))?;
        println!("wrote {}", out.display());
    }
    Ok(())
}

fn base_device(board: &str, base: Option<&Path>) -> Result<BaseDevice> {
    match base {
        Some(p) => Ok(BaseDevice::load(p).context("--base")?),
        None => {
            eprintln!(
                "note: no --base: generic starting figures; memory_mb and power are placeholders"
            );
            Ok(BaseDevice::generic(board))
        }
    }
}

/// Boards to fit: `board_id` and base device.
type Boards = Vec<(String, BaseDevice)>;

/// The boards of `rows` with a device file in `dir` (see `dicesim_fit::library`).
fn library(rows: &[Row], dir: &Path, out: &Path) -> Result<(Boards, Vec<PathBuf>)> {
    let mut ids: Vec<&str> = rows.iter().map(|r| r.board_id.as_str()).collect();
    ids.sort();
    ids.dedup();
    let (mut boards, mut outs) = (Vec::new(), Vec::new());
    for id in ids {
        let Some(file) = dicesim_fit::library::device_file(dir, id)? else {
            eprintln!(
                "note: board `{id}` has no device file in {}: skipped",
                dir.display()
            );
            continue;
        };
        boards.push((id.to_string(), BaseDevice::load(&file)?));
        outs.push(out.join(file.file_name().unwrap_or_default()));
    }
    if boards.is_empty() {
        bail!(
            "{}: no device file matches a board of the rows",
            dir.display()
        );
    }
    Ok((boards, outs))
}

/// `dicesim device check`: every row whose board has a device file in `dir`, simulated
/// (one device, strategy single on the row's unit or cores, one frame) against its
/// measurement; the errors' median and 90th percentile, all rows and all-core rows.
pub fn check(measured: &Path, dir: &Path) -> Result<()> {
    let rows = dicesim_fit::measured::read(measured)?;
    let preds = dicesim_fit::check::check_library(&rows, dir)?;
    if preds.is_empty() {
        bail!(
            "{}: no device file matches a board of the rows",
            dir.display()
        );
    }
    println!(
        "{:>14} {:>4} {:>18} {:>4} {:>10} {:>10} {:>8}",
        "board", "unit", "model", "thr", "measured", "simulated", "error"
    );
    for p in &preds {
        let r = &p.row;
        let model = format!("{}@{}", r.model, r.input);
        println!(
            "{:>14} {:>4} {:>18} {:>4} {:>10.2} {:>10.2} {:>+7.1}%",
            r.board_id,
            r.unit,
            model,
            r.threads,
            r.latency_ms,
            p.simulated_ms,
            100.0 * p.error()
        );
    }
    print_summary("all rows", &preds.iter().collect::<Vec<_>>());
    let max_threads = |p: &&dicesim_fit::check::Prediction| {
        let m = preds
            .iter()
            .filter(|q| q.row.board_id == p.row.board_id && q.row.unit == p.row.unit);
        m.map(|q| q.row.threads).max().unwrap_or(0)
    };
    let all_core: Vec<_> = preds
        .iter()
        .filter(|p| p.row.threads == max_threads(p))
        .collect();
    print_summary("most threads per unit", &all_core);
    Ok(())
}

fn print_summary(what: &str, preds: &[&dicesim_fit::check::Prediction]) {
    let e: Vec<f64> = preds.iter().map(|p| p.error().abs()).collect();
    let sorted = dicesim_stats::sorted(&e);
    let (Some(median), Some(p90)) = (
        dicesim_stats::median(&sorted),
        dicesim_stats::percentile(&sorted, 0.9),
    ) else {
        return;
    };
    println!(
        "{what}: {} rows, |error| median {:.1}%, p90 {:.1}%",
        preds.len(),
        100.0 * median,
        100.0 * p90
    );
}

fn print_fit(fit: &BoardFit) {
    for u in &fit.units {
        println!("{} unit {} ({} rows)", fit.board, u.unit.name, u.rows.len());
        for c in &u.rows {
            println!("  {}", row_line(c));
        }
        println!("  {}", Summary::of(&u.rows).line());
    }
}

/// The command as the device file records it (file names only: the files may move).
fn command_line(measured: &Path, target: &FitTarget, board: &str) -> String {
    let name = |p: &Path| {
        p.file_name().map_or_else(
            || p.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    };
    match target {
        FitTarget::Board { out, base, .. } => {
            let mut s = format!(
                "dicesim device fit {} --board {board} --out {}",
                name(measured),
                name(out)
            );
            if let Some(b) = base {
                s += &format!(" --base {}", name(b));
            }
            s
        }
        FitTarget::Library { dir, .. } => {
            format!(
                "dicesim device fit {} --library {}",
                name(measured),
                name(dir)
            )
        }
    }
}
