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

/// The boards of `rows` with a device file in `dir`: `board_id` equal to the file's stem or
/// starting with it and a `-` (`rpi4-1.5ghz` is `rpi4.toml`), the longest stem first.
fn library(rows: &[Row], dir: &Path, out: &Path) -> Result<(Boards, Vec<PathBuf>)> {
    let mut stems: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("{}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    stems.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut ids: Vec<&str> = rows.iter().map(|r| r.board_id.as_str()).collect();
    ids.sort();
    ids.dedup();
    let (mut boards, mut outs) = (Vec::new(), Vec::new());
    for id in ids {
        let found = stems
            .iter()
            .find(|s| id == s.as_str() || id.starts_with(&format!("{s}-")));
        let Some(stem) = found else {
            eprintln!(
                "note: board `{id}` has no device file in {}: skipped",
                dir.display()
            );
            continue;
        };
        let file = dir.join(format!("{stem}.toml"));
        boards.push((id.to_string(), BaseDevice::load(&file)?));
        outs.push(out.join(format!("{stem}.toml")));
    }
    if boards.is_empty() {
        bail!(
            "{}: no device file matches a board of the rows",
            dir.display()
        );
    }
    Ok((boards, outs))
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
