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

/// Tick values of a log axis over `[lo, hi]`: 1-2-5 in every decade, decades alone where
/// that would crowd the axis, and 1-1.5-2-3-4-5-6-8 where the range is too narrow for three
/// 1-2-5 ticks.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let fine: &[f64] = &[1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0];
    let ticks = ticks_with(lo, hi, &[1.0, 2.0, 5.0]);
    match ticks.len() {
        0..=2 => ticks_with(lo, hi, fine),
        3..=8 => ticks,
        _ => ticks_with(lo, hi, &[1.0]),
    }
}

/// The values `m * 10^e` in `[lo, hi]` for every mantissa `m` of `mantissas`.
fn ticks_with(lo: f64, hi: f64, mantissas: &[f64]) -> Vec<f64> {
    let (first, last) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    // Dividing by an exact power of ten keeps 0.3 from becoming 0.30000000000000004.
    let scaled = |m: f64, e: i32| {
        if e < 0 {
            m / 10f64.powi(-e)
        } else {
            m * 10f64.powi(e)
        }
    };
    (first..=last)
        .flat_map(|e| mantissas.iter().map(move |&m| scaled(m, e)))
        .filter(|v| (lo..=hi).contains(v))
        .collect()
}

/// A tick label in plain notation (0.5, 20, 1000), without trailing zeros.
fn plain(v: f64) -> String {
    let r = format!("{v:.6}");
    r.trim_end_matches('0').trim_end_matches('.').to_string()
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
        .build_cartesian_2d(
            (lo..hi).log_scale().with_key_points(log_ticks(lo, hi)),
            (lo..hi).log_scale().with_key_points(log_ticks(lo, hi)),
        )?;
    chart
        .configure_mesh()
        .x_desc("measured (rig); grey lines: ±10%")
        .y_desc("simulated")
        .x_label_formatter(&|v| plain(*v))
        .y_label_formatter(&|v| plain(*v))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::Row;

    #[test]
    fn log_ticks_are_1_2_5_or_decades_or_finer_with_plain_labels() {
        assert_eq!(log_ticks(3.0, 80.0), [5.0, 10.0, 20.0, 50.0]);
        assert_eq!(
            log_ticks(0.5, 20_000.0),
            [1.0, 10.0, 100.0, 1000.0, 10_000.0]
        );
        assert_eq!(log_ticks(0.25, 0.45), [0.3, 0.4]);
        let labels: Vec<String> = log_ticks(0.08, 3.0).into_iter().map(plain).collect();
        assert_eq!(labels, ["0.1", "0.2", "0.5", "1", "2"]);
    }

    fn row(metric: &str, simulated: f64, measured: f64) -> Row {
        let rel_error = (simulated - measured) / measured;
        Row {
            metric: metric.into(),
            simulated,
            measured,
            rel_error,
        }
    }

    /// A synthetic suite: latency 40-400 ms, throughput 2-25 fps, errors within 15%.
    fn entries() -> Vec<SuiteEntry> {
        (0..8)
            .map(|i| {
                let (lat, fps) = (40.0 * 1.4f64.powi(i), 25.0 / 1.4f64.powi(i));
                let e = 1.0 + 0.15 * ((i % 5) as f64 - 2.0) / 2.0;
                SuiteEntry {
                    scenario: format!("s{i}.toml"),
                    errors: vec![
                        row("latency p50", lat * e, lat),
                        row("latency p95", lat * e * 1.1, lat * 1.1),
                        row("throughput", fps / e, fps),
                    ],
                    worst_term: None,
                    failure: None,
                }
            })
            .collect()
    }

    #[test]
    fn suite_plot_has_plain_log_tick_labels() {
        let e = entries();
        let refs: Vec<&SuiteEntry> = e.iter().collect();
        let s = SuiteSummary {
            validated: 8,
            failed: 0,
            latency_median: 0.075,
            latency_p90: 0.15,
            throughput_median: 0.07,
            throughput_p90: 0.13,
            memory_median: 0.1,
            memory_p90: 0.2,
        };
        let svg = suite_svg(&refs, &s);
        if let Ok(path) = std::env::var("DICESIM_PLOT_OUT") {
            std::fs::write(path, &svg).unwrap();
        }
        assert!(
            !svg.contains("e0") && !svg.contains("e1"),
            "scientific tick labels"
        );
        for t in [">\n50\n<", ">\n100\n<", ">\n200\n<", ">\n5\n<", ">\n10\n<"] {
            assert!(svg.contains(t), "tick {t:?} missing");
        }
    }
}
