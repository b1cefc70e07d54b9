//! The SVG Gantt chart of a run's first frames, drawn with `plotters`: one row per unit and
//! link that the frames use, split into lanes where activities overlap (transfers sharing a
//! Wi-Fi medium), bars coloured by frame, and a legend.

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::lanes;
use crate::scenario::ScenarioRun;

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;
type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// Height of one lane [px].
const LANE_PX: f64 = 20.0;
/// Space between two rows, in lanes.
const ROW_GAP: f64 = 0.4;
/// Width of a character of the 11 px label font, roughly [px].
const CHAR_PX: f64 = 6.5;
/// Height of the legend strip below the chart [px].
const LEGEND_PX: u32 = 26;
/// Chart width [px].
const WIDTH: u32 = 1200;

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Compute,
    Transfer,
}

/// One bar: an execution on a unit or a transfer on one link.
struct Bar {
    /// Index into the platform's rows (units, then links); into `Layout::rows` once laid out.
    row: usize,
    lane: usize,
    start_ns: u64,
    end_ns: u64,
    frame: u32,
    kind: Kind,
    /// `p<partition>` or `<from>><to>`.
    label: String,
}

/// A row that is drawn: its name, its lanes and its top edge (in lanes from the top).
struct Row {
    name: String,
    lanes: usize,
    top: f64,
}

/// Everything the chart shows, in lane units vertically and milliseconds horizontally.
struct Layout {
    rows: Vec<Row>,
    bars: Vec<Bar>,
    /// Height of all rows, in lanes.
    height: f64,
    end_ms: f64,
    frames: u32,
}

/// The rows of the platform (units, then links) and the bars of frames below `frames`.
fn collect_bars(run: &ScenarioRun, frames: u32) -> (Vec<String>, Vec<Bar>) {
    let p = &run.scenario.prep.platform;
    let names = (p.units.iter().map(|u| u.full_name.clone()))
        .chain(p.links.iter().map(|l| format!("link {}", l.name)))
        .collect();
    let jobs = run.outcome.jobs.iter().filter(|j| j.frame < frames);
    let mut bars: Vec<Bar> = jobs
        .map(|j| Bar {
            row: j.unit,
            lane: 0,
            start_ns: j.start,
            end_ns: j.end,
            frame: j.frame,
            kind: Kind::Compute,
            label: format!("p{}", j.part),
        })
        .collect();
    for t in run.outcome.transfers.iter().filter(|t| t.frame < frames) {
        let c = &run.plan.conns[t.conn];
        bars.extend(t.links.iter().map(|&l| Bar {
            row: p.units.len() + l,
            lane: 0,
            start_ns: t.start,
            end_ns: t.end,
            frame: t.frame,
            kind: Kind::Transfer,
            label: format!("{}>{}", c.from, c.to),
        }));
    }
    (names, bars)
}

/// Keeps the rows that have bars, in platform order, and gives every bar its lane.
fn layout(names: Vec<String>, mut bars: Vec<Bar>) -> Layout {
    let mut rows = Vec::new();
    let mut top = 0.0;
    for (r, name) in names.into_iter().enumerate() {
        let mine: Vec<usize> = (0..bars.len()).filter(|&b| bars[b].row == r).collect();
        if mine.is_empty() {
            continue;
        }
        let spans: Vec<(u64, u64)> = mine
            .iter()
            .map(|&b| (bars[b].start_ns, bars[b].end_ns))
            .collect();
        let (lane, n) = lanes(&spans);
        for (&b, k) in mine.iter().zip(lane) {
            bars[b].row = rows.len();
            bars[b].lane = k;
        }
        rows.push(Row {
            name,
            lanes: n,
            top,
        });
        top += n as f64 + ROW_GAP;
    }
    let end_ns = bars.iter().map(|b| b.end_ns).max().unwrap_or(1).max(1);
    let frames = bars.iter().map(|b| b.frame + 1).max().unwrap_or(0);
    Layout {
        rows,
        bars,
        height: (top - ROW_GAP).max(1.0),
        end_ms: end_ns as f64 / 1e6,
        frames,
    }
}

/// Fill colour of frame `f` (hues spread around the wheel so neighbouring frames differ);
/// transfers get a paler shade of it.
fn colour(f: u32, kind: Kind) -> HSLColor {
    let light = if kind == Kind::Compute { 0.6 } else { 0.78 };
    HSLColor(((f as u64 * 47) % 360) as f64 / 360.0, 0.6, light)
}

/// Vertical extent of a bar in chart coordinates (which grow upwards): compute bars fill
/// their lane, transfers are thinner.
fn bar_y(l: &Layout, b: &Bar) -> (f64, f64) {
    let top = l.rows[b.row].top + b.lane as f64;
    let inset = if b.kind == Kind::Compute { 0.08 } else { 0.2 };
    (l.height - (top + 1.0 - inset), l.height - (top + inset))
}

/// `text` if it fits in `px` pixels at the label font, with a little padding.
fn fits(text: String, px: f64) -> Option<String> {
    (text.chars().count() as f64 * CHAR_PX + 4.0 <= px).then_some(text)
}

/// The longest label of `b` that fits in its width: `f<frame> <label>`, `f<frame>`, or none.
fn bar_label(b: &Bar, px: f64) -> Option<String> {
    fits(format!("f{} {}", b.frame, b.label), px).or_else(|| fits(format!("f{}", b.frame), px))
}

/// The bars, then their labels where they fit.
fn draw_bars(chart: &mut Chart<'_, '_>, l: &Layout) -> DrawResult {
    let min_ms = l.end_ms * 5e-4;
    chart.draw_series(l.bars.iter().map(|b| {
        let (y0, y1) = bar_y(l, b);
        let x0 = b.start_ns as f64 / 1e6;
        let x1 = (b.end_ns as f64 / 1e6).max(x0 + min_ms);
        Rectangle::new([(x0, y0), (x1, y1)], colour(b.frame, b.kind).filled())
    }))?;
    let font = ("sans-serif", 11)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    let labels = l.bars.iter().filter_map(|b| {
        let (y0, y1) = bar_y(l, b);
        let y = (y0 + y1) / 2.0;
        let (x0, x1) = (b.start_ns as f64 / 1e6, b.end_ns as f64 / 1e6);
        let px = (chart.backend_coord(&(x1, y)).0 - chart.backend_coord(&(x0, y)).0) as f64;
        let text = bar_label(b, px)?;
        Some(Text::new(text, (x0 + l.end_ms * 2e-3, y), font.clone()))
    });
    let labels: Vec<_> = labels.collect();
    chart.draw_series(labels)?;
    Ok(())
}

/// Row names left of the plot and thin lines between rows.
fn draw_rows(root: &Area<'_>, chart: &mut Chart<'_, '_>, l: &Layout) -> DrawResult {
    let font = ("sans-serif", 12)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Right, VPos::Center));
    for (i, row) in l.rows.iter().enumerate() {
        let mid = l.height - (row.top + row.lanes as f64 / 2.0);
        let (x, y) = chart.backend_coord(&(0.0, mid));
        root.draw(&Text::new(row.name.clone(), (x - 6, y), font.clone()))?;
        if i > 0 {
            let y = l.height - (row.top - ROW_GAP / 2.0);
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(0.0, y), (l.end_ms, y)],
                RGBColor(200, 200, 200),
            )))?;
        }
    }
    Ok(())
}

/// The legend strip: a swatch per frame colour, then what solid and pale bars mean.
/// Swatches are thick lines, so that every rectangle in the SVG is a bar.
fn draw_legend(area: &Area<'_>, left: i32, frames: u32) -> DrawResult {
    let font = ("sans-serif", 11)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    let y = LEGEND_PX as i32 / 2;
    let mut x = left;
    let item = |text: String, c: HSLColor, thick: u32, x: &mut i32| -> DrawResult {
        let swatch = PathElement::new(vec![(*x, y), (*x + 14, y)], c.stroke_width(thick));
        area.draw(&swatch)?;
        area.draw(&Text::new(text.clone(), (*x + 18, y), font.clone()))?;
        *x += 18 + (text.len() as f64 * CHAR_PX) as i32 + 12;
        Ok(())
    };
    area.draw(&Text::new("frame:", (x, y), font.clone()))?;
    x += 48;
    for f in 0..frames {
        item(format!("f{f}"), colour(f, Kind::Compute), 14, &mut x)?;
    }
    x += 24;
    // Neutral swatches: what matters here is solid and full-height versus pale and thin.
    item(
        "compute (p<partition>)".into(),
        HSLColor(0.0, 0.0, 0.45),
        14,
        &mut x,
    )?;
    item(
        "transfer (<from>><to>)".into(),
        HSLColor(0.0, 0.0, 0.75),
        8,
        &mut x,
    )?;
    Ok(())
}

/// Width of the row-name area: the longest name at the 12 px font, within bounds [px].
fn name_area_px(l: &Layout) -> u32 {
    let longest = l.rows.iter().map(|r| r.name.chars().count()).max();
    (longest.unwrap_or(4) as f64 * 7.2 + 16.0).clamp(60.0, 240.0) as u32
}

/// Draws the whole chart onto `root`.
fn draw(root: &Area<'_>, l: &Layout, title: &str) -> DrawResult {
    root.fill(&WHITE)?;
    let (h, name_px) = (root.dim_in_pixel().1, name_area_px(l));
    let (upper, legend) = root.split_vertically(h - LEGEND_PX);
    let mut chart = ChartBuilder::on(&upper)
        .caption(title, ("sans-serif", 14))
        .margin(8)
        .x_label_area_size(44)
        .y_label_area_size(name_px)
        .build_cartesian_2d(0f64..l.end_ms, 0f64..l.height)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .light_line_style(RGBColor(240, 240, 240))
        .bold_line_style(RGBColor(221, 221, 221))
        .x_desc("time [ms]")
        .x_label_formatter(&|t| fmt_ms(*t))
        .draw()?;
    draw_rows(root, &mut chart, l)?;
    draw_bars(&mut chart, l)?;
    draw_legend(&legend, 8 + name_px as i32, l.frames)?;
    root.present()?;
    Ok(())
}

/// SVG Gantt chart of the first `frames` frames: one row per unit and per link that those
/// frames use, with as many lanes as activities overlap there; one bar per partition
/// execution (solid) and per transfer on each link it crosses (pale, thinner), coloured by
/// frame and labelled `f<frame> p<partition>` or `f<frame> <from>><to>` (or `f<frame>`, or
/// nothing) as the bar's width allows.
pub fn gantt_svg(run: &ScenarioRun, frames: u32) -> String {
    let (names, bars) = collect_bars(run, frames);
    let l = layout(names, bars);
    let title = format!(
        "{} — first {frames} frame(s), {} ms",
        run.scenario.name,
        fmt_ms(l.end_ms)
    );
    let h = 30 + 16 + 44 + LEGEND_PX + (LANE_PX * l.height).ceil() as u32;
    let mut svg = String::new();
    let drawn = draw(
        &SVGBackend::with_string(&mut svg, (WIDTH, h)).into_drawing_area(),
        &l,
        &title,
    );
    // The SVG backend draws into a String: nothing here can fail at run time.
    drawn.expect("drawing an SVG into a string does not fail");
    svg
}

/// A tick label: no more decimals than needed.
fn fmt_ms(t: f64) -> String {
    let r = format!("{t:.3}");
    r.trim_end_matches('0').trim_end_matches('.').to_string()
}
