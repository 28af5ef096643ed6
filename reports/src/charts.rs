//! Charts as inline SVG strings, drawn with `plotters`' SVG backend.
//!
//! Plotting sits behind two small functions ([`log_log`] and [`bars`]) so the
//! report code only hands over data. A chart that cannot be drawn (no
//! positive data for a log axis) becomes a short SVG text saying so, never a
//! panic.

use plotters::prelude::*;

/// One line on a chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// `(x, y)` points, drawn in the given order.
    pub points: Vec<(f64, f64)>,
}

/// How x-axis tick values are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XLabels {
    /// Plain numbers with k/M/G suffixes.
    Count,
    /// The axis holds 1/(1-p); ticks are written as percentiles
    /// (10 → 90 %, 1000 → 99.9 %).
    Percentile,
}

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// Writes a count with an SI suffix.
pub fn si(x: f64) -> String {
    let a = x.abs();
    let (v, s) = if a >= 1e9 {
        (x / 1e9, "G")
    } else if a >= 1e6 {
        (x / 1e6, "M")
    } else if a >= 1e3 {
        (x / 1e3, "k")
    } else {
        (x, "")
    };
    if v.fract().abs() < 1e-9 || v.abs() >= 100.0 {
        format!("{v:.0}{s}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}{s}")
    } else {
        format!("{v:.2}{s}")
    }
}

/// Writes a value on a 1/(1-p) axis as a percentile.
fn percentile_label(x: f64) -> String {
    if x <= 1.0 {
        return "0%".to_owned();
    }
    let p = 100.0 * (1.0 - 1.0 / x);
    let mut s = format!("{p:.4}");
    while s.ends_with('0') {
        s.pop();
    }
    if s.ends_with('.') {
        s.pop();
    }
    format!("{s}%")
}

fn message_svg(title: &str, msg: &str) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"640\" height=\"60\">\
         <text x=\"10\" y=\"25\" font-family=\"sans-serif\" font-size=\"14\">{}: {}</text></svg>",
        crate::html::escape(title),
        crate::html::escape(msg)
    )
}

/// A log-log line chart of `series` (points with non-positive coordinates are
/// dropped, since a log axis cannot show them).
pub fn log_log(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    xlabels: XLabels,
    series: &[Series],
) -> String {
    let clean: Vec<Series> = series
        .iter()
        .map(|s| Series {
            name: s.name.clone(),
            points: s
                .points
                .iter()
                .copied()
                .filter(|(x, y)| *x > 0.0 && *y > 0.0 && x.is_finite() && y.is_finite())
                .collect(),
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    let all = clean.iter().flat_map(|s| s.points.iter().copied());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (x, y) in all {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if clean.is_empty() {
        return message_svg(title, "no data");
    }
    if x1 <= x0 {
        x1 = x0 * 2.0;
        x0 /= 2.0;
    }
    // Pad the y range by a factor so lines do not touch the frame.
    y0 /= 1.5;
    y1 *= 1.5;
    let mut buf = String::new();
    let drawn = draw_log_log(
        &mut buf,
        title,
        x_desc,
        y_desc,
        xlabels,
        &clean,
        (x0, x1, y0, y1),
    );
    match drawn {
        Ok(()) => buf,
        Err(e) => message_svg(title, &format!("chart failed: {e}")),
    }
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn draw_log_log(
    buf: &mut String,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    xlabels: XLabels,
    series: &[Series],
    (x0, x1, y0, y1): (f64, f64, f64, f64),
) -> DrawResult {
    let root = SVGBackend::with_string(buf, (720, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())?;
    let xfmt = move |x: &f64| match xlabels {
        XLabels::Count => si(*x),
        XLabels::Percentile => percentile_label(*x),
    };
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_labels(8)
        .light_line_style(RGBColor(235, 235, 235))
        .x_label_formatter(&xfmt)
        .y_label_formatter(&|y| si(*y))
        .draw()?;
    for (i, s) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(
                s.points.iter().copied(),
                color.stroke_width(2),
            ))?
            .label(s.name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        chart.draw_series(s.points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// A horizontal bar chart of `(label, value)` on a linear axis starting at 0.
pub fn bars(title: &str, unit: &str, data: &[(String, f64)]) -> String {
    let data: Vec<(String, f64)> = data
        .iter()
        .filter(|(_, v)| v.is_finite() && *v >= 0.0)
        .cloned()
        .collect();
    if data.is_empty() {
        return message_svg(title, "no data");
    }
    let mut buf = String::new();
    match draw_bars(&mut buf, title, unit, &data) {
        Ok(()) => buf,
        Err(e) => message_svg(title, &format!("chart failed: {e}")),
    }
}

fn draw_bars(buf: &mut String, title: &str, unit: &str, data: &[(String, f64)]) -> DrawResult {
    let h = 90 + 40 * data.len() as u32;
    let root = SVGBackend::with_string(buf, (720, h)).into_drawing_area();
    root.fill(&WHITE)?;
    let max = data.iter().map(|d| d.1).fold(0.0f64, f64::max).max(1e-9) * 1.15;
    let n = data.len() as f64;
    let labels: Vec<String> = data.iter().map(|d| d.0.clone()).collect();
    let ylabel = move |y: &f64| {
        let i = (n - 0.5 - *y).round();
        if (i - (n - 0.5 - *y)).abs() < 0.01 && i >= 0.0 {
            labels.get(i as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(220)
        .build_cartesian_2d(0.0..max, 0.0..n)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_desc(unit)
        .y_labels(data.len() * 2 + 1)
        .y_label_formatter(&ylabel)
        .draw()?;
    chart.draw_series(data.iter().enumerate().map(|(i, (_, v))| {
        let top = n - i as f64 - 0.15;
        let color = PALETTE[i % PALETTE.len()];
        Rectangle::new([(0.0, top), (*v, top - 0.7)], color.filled())
    }))?;
    chart.draw_series(data.iter().enumerate().map(|(i, (_, v))| {
        Text::new(
            format!("{v:.2}"),
            (*v, n - i as f64 - 0.5),
            ("sans-serif", 13).into_font(),
        )
    }))?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn si_suffixes() {
        assert_eq!(si(65_536.0), "65.5k");
        assert_eq!(si(1.0), "1");
        assert_eq!(si(262_144.0), "262k");
        assert_eq!(si(2.5), "2.50");
    }

    #[test]
    fn percentile_ticks() {
        assert_eq!(percentile_label(2.0), "50%");
        assert_eq!(percentile_label(1000.0), "99.9%");
    }

    #[test]
    fn chart_is_svg_with_legend() {
        let s = log_log(
            "t",
            "x",
            "y",
            XLabels::Count,
            &[Series {
                name: "radix".into(),
                points: vec![(1.0, 5.0), (65536.0, 6.0)],
            }],
        );
        assert!(s.starts_with("<svg"), "{s}");
        assert!(s.contains("radix"));
    }

    #[test]
    fn empty_chart_says_so() {
        let s = log_log("t", "x", "y", XLabels::Count, &[]);
        assert!(s.contains("no data"));
        let b = bars("t", "ns", &[("a".into(), f64::NAN)]);
        assert!(b.contains("no data"));
    }
}
