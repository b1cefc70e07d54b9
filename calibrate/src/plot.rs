//! The validation suite's plot: simulated vs measured, log-log.

use crate::suite::{SuiteEntry, SuiteSummary};
use plotters::coord::Shift;
use plotters::prelude::*;

type Panel<'a, 'b> = DrawingArea<SVGBackend<'a>, Shift>;
type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// The (measured, simulated) points of row `idx` where both are positive.
fn points(entries: &[&SuiteEntry], idx: usize) -> Vec<(f64, f64)> {
    entries
        .iter()
        .map(|e| (e.errors[idx].measured, e.errors[idx].simulated))
        .filter(|(m, v)| *m > 0.0 && *v > 0.0)
        .collect()
}

/// One panel: the points of one figure, the diagonal and the +-10% band.
fn panel(
    area: &Panel<'_, '_>,
    pts: &[(f64, f64)],
    title: &str,
    median: f64,
    p90: f64,
) -> DrawResult {
    let coords = pts.iter().flat_map(|(a, b)| [*a, *b]);
    let (lo, hi) = match coords.clone().reduce(f64::min) {
        Some(min) => (min / 1.3, coords.fold(min, f64::max) * 1.3),
        None => (0.5, 2.0),
    };
    let caption = format!(
        "{title}: {} scenarios, |err| median {:.1}%, p90 {:.1}%",
        pts.len(),
        median * 100.0,
        p90 * 100.0
    );
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 14))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(50)
        .build_cartesian_2d((lo..hi).log_scale(), (lo..hi).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("measured (rig)")
        .y_desc("simulated")
        .draw()?;
    for (f, style) in [
        (1.0, BLACK.stroke_width(1)),
        (1.1, RGBColor(170, 170, 170).stroke_width(1)),
        (1.0 / 1.1, RGBColor(170, 170, 170).stroke_width(1)),
    ] {
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(lo, lo * f), (hi, hi * f)],
            style,
        )))?;
    }
    chart.draw_series(
        pts.iter()
            .map(|&(m, v)| Circle::new((m, v), 4, RGBColor(31, 119, 180).filled())),
    )?;
    Ok(())
}

/// Two log-log scatter plots, simulated vs measured latency p50 and throughput, with the
/// diagonal and the +-10% band.
pub(crate) fn suite_svg(entries: &[&SuiteEntry], s: &SuiteSummary) -> String {
    let mut svg = String::new();
    let drawn: DrawResult = (|| {
        let root = SVGBackend::with_string(&mut svg, (1000, 500)).into_drawing_area();
        root.fill(&WHITE)?;
        let panels = root.split_evenly((1, 2));
        let figures = [
            (0, "latency p50 [ms]", s.latency_median, s.latency_p90),
            (2, "throughput [fps]", s.throughput_median, s.throughput_p90),
        ];
        for (area, (idx, title, median, p90)) in panels.iter().zip(figures) {
            panel(area, &points(entries, idx), title, median, p90)?;
        }
        root.present()?;
        Ok(())
    })();
    // The SVG backend draws into a String: nothing here can fail at run time.
    drawn.expect("drawing an SVG into a string does not fail");
    svg
}
