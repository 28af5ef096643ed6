//! Charts as inline SVG strings, drawn with `plotters`' SVG backend.
//!
//! Plotting sits behind two small functions ([`log_log`] and [`bars`]) so the
//! report code only hands over data. A chart that cannot be drawn (no
//! positive data for a log axis) becomes a short SVG text saying so, never a
//! panic.
//!
//! Readability rules every chart follows:
//! * log axes get their own ticks ([`log_ticks`]): 1-2-5 steps (or every
//!   decade when that is too many, or finer steps when the data spans less
//!   than one), so there are always labelled ticks where the data is;
//! * values are written with a unit scaled to them (ns / µs / ms / s; B /
//!   KiB / MiB / GiB), tick by tick;
//! * a series has one colour in every chart ([`color_of`]: by name);
//! * the legend is drawn outside the plot (the report lays it out as HTML),
//!   so it never covers data; the chart returns what the legend needs.

use crate::format::axis::{bytes, ns, percentile_label, si, trim};
use plotters::prelude::*;

/// One line on a chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// `(x, y)` points, drawn in the given order.
    pub points: Vec<(f64, f64)>,
}

/// What an axis's values are, for tick labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Axis {
    /// Plain counts (1, 16, 4.1k, 65.5k).
    Count,
    /// Nanoseconds, written in ns / µs / ms / s.
    Ns,
    /// Bytes, written in B / KiB / MiB / GiB.
    Bytes,
    /// The axis holds 1/(1-p); ticks are written as percentiles
    /// (2 → 50 %, 10 → 90 %, 1000 → 99.9 %).
    Percentile,
    /// A dimensionless ratio (×1.05).
    Ratio,
}

impl Axis {
    /// The label of one tick.
    pub fn label(self, v: f64) -> String {
        match self {
            Axis::Count => si(v),
            Axis::Ns => ns(v),
            Axis::Bytes => bytes(v),
            Axis::Percentile => percentile_label(v),
            Axis::Ratio => format!("×{}", trim(v, 3)),
        }
    }
}

/// The ticks of a drawn chart, for the report and its tests.
#[derive(Clone, Debug, PartialEq)]
pub struct Drawn {
    /// The SVG document.
    pub svg: String,
    /// `(name, colour)` per series, for the legend.
    pub legend: Vec<(String, String)>,
    /// x ticks with their labels.
    pub x_ticks: Vec<(f64, String)>,
    /// y ticks with their labels.
    pub y_ticks: Vec<(f64, String)>,
    /// The data's range `(x0, x1, y0, y1)`, before padding.
    pub data_range: Option<(f64, f64, f64, f64)>,
}

const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Fixed colours for the names the report uses everywhere.
const NAMED: [(&str, usize); 16] = [
    ("radix", 0),
    ("linear", 1),
    ("radix-bound", 2),
    ("bitmap", 3),
    ("btree", 4),
    ("xmalloc-page", 1),
    ("slab-page", 3),
    ("slab-extent", 0),
    ("hv.bind", 0),
    ("hv.memslot_add (floor)", 7),
    ("hv.revoke_force parked", 0),
    ("hv.revoke_force running", 1),
    ("hv.memslot_delete parked (floor)", 7),
    ("hv.memslot_delete running (floor)", 5),
    ("accounting on", 0),
    ("accounting off", 1),
];

/// Colours by series name for one report, so a series has the same colour
/// in every chart: the names the report uses everywhere have fixed
/// colours; any other name gets the next palette colour the first time it
/// is drawn and keeps it (a baseline series, whose name ends in
/// ` (baseline)`, takes its base name's colour).
#[derive(Clone, Debug, Default)]
pub struct ColorBook {
    seen: Vec<(String, usize)>,
}

impl ColorBook {
    /// The colour of `name`.
    pub fn color(&mut self, name: &str) -> RGBColor {
        let base = name.strip_suffix(" (baseline)").unwrap_or(name);
        if let Some((_, i)) = NAMED.iter().find(|(n, _)| *n == base) {
            return PALETTE[*i];
        }
        if let Some((_, i)) = self.seen.iter().find(|(n, _)| n == base) {
            return PALETTE[*i];
        }
        let i = self.seen.len() % PALETTE.len();
        self.seen.push((base.to_owned(), i));
        PALETTE[i]
    }
}

fn hex(c: RGBColor) -> String {
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}

/// Ticks for a log axis over `[lo, hi]` (both > 0): every 1-2-5 value in
/// range; only powers of ten when that gives more than 12; every 1…9 × 10^k
/// when 1-2-5 gives fewer than 3; and when even that gives fewer than 2
/// (a range narrower than one step), the two ends themselves rounded to 3
/// significant digits. So at least two ticks always lie inside the range.
pub fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    if !(lo > 0.0 && hi >= lo && hi.is_finite()) {
        return Vec::new();
    }
    let in_range = |mults: &[f64]| -> Vec<f64> {
        let (k0, k1) = (lo.log10().floor() as i32 - 1, hi.log10().ceil() as i32 + 1);
        let mut v = Vec::new();
        for k in k0..=k1 {
            for m in mults {
                let t = m * 10f64.powi(k);
                // Relative tolerance: 10^k is not exact in binary.
                if t >= lo * (1.0 - 1e-9) && t <= hi * (1.0 + 1e-9) {
                    v.push(t);
                }
            }
        }
        v
    };
    let mut t = in_range(&[1.0, 2.0, 5.0]);
    if t.len() > 12 {
        // Decades, plus the 1-2-5 values at either end of the data, so its
        // first and last points are labelled too (a spectrum from p50: 2).
        let (first, last) = (t[0], t[t.len() - 1]);
        t = in_range(&[1.0]);
        for v in [first, last] {
            if !t.iter().any(|x| (x / v - 1.0).abs() < 1e-9) {
                t.push(v);
            }
        }
        t.sort_by(f64::total_cmp);
    } else if t.len() < 3 {
        t = in_range(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
    }
    if t.len() < 2 {
        let r3 = |v: f64| {
            let m = 10f64.powi(2 - v.log10().floor() as i32);
            (v * m).round() / m
        };
        let (a, b) = (r3(lo * 1.0001).max(lo), r3(hi * 0.9999).min(hi));
        t = if b > a { vec![a, b] } else { vec![lo, hi] };
    }
    t
}

/// The chart drawn where there is nothing to plot (`templates/message.svg`,
/// escaped by the template).
#[derive(askama::Template)]
#[template(path = "message.svg", escape = "html")]
struct Message<'a> {
    title: &'a str,
    msg: &'a str,
}

fn message(title: &str, msg: &str) -> Drawn {
    Drawn {
        svg: askama::Template::render(&Message { title, msg }).unwrap_or_default(),
        legend: Vec::new(),
        x_ticks: Vec::new(),
        y_ticks: Vec::new(),
        data_range: None,
    }
}

/// A log-log line chart of `series` (points with non-positive coordinates are
/// dropped, since a log axis cannot show them). Series whose name ends in
/// ` (baseline)` are drawn dashed and thin.
pub fn log_log(
    book: &mut ColorBook,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    x: Axis,
    y: Axis,
    series: &[Series],
) -> Drawn {
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
    if clean.is_empty() {
        return message(title, "no data");
    }
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (px, py) in clean.iter().flat_map(|s| s.points.iter().copied()) {
        x0 = x0.min(px);
        x1 = x1.max(px);
        y0 = y0.min(py);
        y1 = y1.max(py);
    }
    let data = (x0, x1, y0, y1);
    // Pad so lines do not touch the frame, and give a flat series some room.
    let (px0, px1) = if x1 <= x0 {
        (x0 / 2.0, x0 * 2.0)
    } else {
        (x0 / 1.15, x1 * 1.15)
    };
    let (py0, py1) = if y1 <= y0 * 1.5 {
        (y0 / 1.6, y1 * 1.6)
    } else {
        (y0 / 1.3, y1 * 1.3)
    };
    // Ticks from the data's own range, so they label where the data is.
    let xt = log_ticks(x0, x1);
    let yt = log_ticks(y0, y1);
    let colors: Vec<RGBColor> = clean.iter().map(|s| book.color(&s.name)).collect();
    let mut buf = String::new();
    let r = draw_log_log(
        &mut buf,
        title,
        (x_desc, y_desc),
        (x, y),
        (&clean, &colors),
        (px0, px1, py0, py1),
        (&xt, &yt),
    );
    match r {
        Ok(()) => Drawn {
            svg: buf,
            legend: clean
                .iter()
                .zip(&colors)
                .map(|(s, c)| (s.name.clone(), hex(*c)))
                .collect(),
            x_ticks: xt.iter().map(|v| (*v, x.label(*v))).collect(),
            y_ticks: yt.iter().map(|v| (*v, y.label(*v))).collect(),
            data_range: Some(data),
        },
        Err(e) => message(title, &format!("chart failed: {e}")),
    }
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn draw_log_log(
    buf: &mut String,
    title: &str,
    (x_desc, y_desc): (&str, &str),
    (xa, ya): (Axis, Axis),
    (series, colors): (&[Series], &[RGBColor]),
    (x0, x1, y0, y1): (f64, f64, f64, f64),
    (xt, yt): (&[f64], &[f64]),
) -> DrawResult {
    let root = SVGBackend::with_string(buf, (720, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(78)
        .build_cartesian_2d(
            (x0..x1).log_scale().with_key_points(xt.to_vec()),
            (y0..y1).log_scale().with_key_points(yt.to_vec()),
        )?;
    let xfmt = move |v: &f64| xa.label(*v);
    let yfmt = move |v: &f64| ya.label(*v);
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .light_line_style(RGBColor(240, 240, 240))
        .bold_line_style(RGBColor(225, 225, 225))
        .x_label_formatter(&xfmt)
        .y_label_formatter(&yfmt)
        .draw()?;
    for (s, &color) in series.iter().zip(colors) {
        let baseline = s.name.ends_with(" (baseline)");
        if baseline {
            // Dashed: short segments between consecutive points.
            let pts = &s.points;
            for w in pts.windows(2) {
                let (a, b) = (w[0], w[1]);
                let steps = 12;
                for k in (0..steps).step_by(2) {
                    let f = |t: f64| {
                        (
                            (a.0.ln() + (b.0.ln() - a.0.ln()) * t).exp(),
                            (a.1.ln() + (b.1.ln() - a.1.ln()) * t).exp(),
                        )
                    };
                    let p = f(k as f64 / steps as f64);
                    let q = f((k + 1) as f64 / steps as f64);
                    chart.draw_series(LineSeries::new([p, q], color.mix(0.6).stroke_width(1)))?;
                }
            }
            chart.draw_series(
                pts.iter()
                    .map(|&p| Cross::new(p, 3, color.mix(0.6).stroke_width(1))),
            )?;
        } else {
            chart.draw_series(LineSeries::new(
                s.points.iter().copied(),
                color.stroke_width(2),
            ))?;
            chart.draw_series(s.points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        }
    }
    root.present()?;
    Ok(())
}

/// A horizontal bar chart of `(label, value)` on a linear axis starting at 0.
pub fn bars(book: &mut ColorBook, title: &str, axis: Axis, data: &[(String, f64)]) -> Drawn {
    let data: Vec<(String, f64)> = data
        .iter()
        .filter(|(_, v)| v.is_finite() && *v >= 0.0)
        .cloned()
        .collect();
    if data.is_empty() {
        return message(title, "no data");
    }
    let colors: Vec<RGBColor> = data.iter().map(|(n, _)| book.color(n)).collect();
    let mut buf = String::new();
    match draw_bars(&mut buf, title, axis, &data, &colors) {
        Ok(()) => Drawn {
            svg: buf,
            legend: Vec::new(),
            x_ticks: Vec::new(),
            y_ticks: Vec::new(),
            data_range: None,
        },
        Err(e) => message(title, &format!("chart failed: {e}")),
    }
}

fn draw_bars(
    buf: &mut String,
    title: &str,
    axis: Axis,
    data: &[(String, f64)],
    colors: &[RGBColor],
) -> DrawResult {
    let h = 90 + 40 * data.len() as u32;
    let root = SVGBackend::with_string(buf, (720, h)).into_drawing_area();
    root.fill(&WHITE)?;
    let max = data.iter().map(|d| d.1).fold(0.0f64, f64::max).max(1e-9) * 1.25;
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
    let xfmt = move |v: &f64| axis.label(*v);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(14)
        .x_label_area_size(40)
        .y_label_area_size(220)
        .build_cartesian_2d(0.0..max, 0.0..n)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_label_formatter(&xfmt)
        .y_labels(data.len() * 2 + 1)
        .y_label_formatter(&ylabel)
        .draw()?;
    chart.draw_series(data.iter().zip(colors).enumerate().map(|(i, ((_, v), c))| {
        let top = n - i as f64 - 0.15;
        Rectangle::new([(0.0, top), (*v, top - 0.7)], c.filled())
    }))?;
    chart.draw_series(data.iter().enumerate().map(|(i, (_, v))| {
        Text::new(
            format!(" {}", axis.label(*v)),
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
    fn labels_scale_their_unit() {
        assert_eq!(si(65_536.0), "65.5k");
        assert_eq!(si(1.0), "1");
        assert_eq!(si(262_144.0), "262k");
        assert_eq!(ns(2.5), "2.5 ns");
        assert_eq!(ns(61_700.0), "61.7 µs");
        assert_eq!(ns(1_400_000.0), "1.4 ms");
        assert_eq!(bytes(4310.0), "4.21 KiB");
        assert_eq!(bytes(17_047_766.0), "16.3 MiB");
        assert_eq!(percentile_label(2.0), "50%");
        assert_eq!(percentile_label(1000.0), "99.9%");
    }

    #[test]
    fn log_ticks_always_land_in_the_data() {
        for (lo, hi) in [
            (2.0, 8.0),
            (0.38, 0.48),
            (2.9, 3.6),
            (1.0, 65_536.0),
            (4310.0, 17e6),
            (61_000.0, 62_000.0),
            (1.0, 1e12),
            (3.0, 3.0),
        ] {
            let t = log_ticks(lo, hi);
            let inside = t.iter().filter(|v| **v >= lo && **v <= hi).count();
            assert!(
                inside >= 2 || (lo == hi && inside >= 1),
                "{lo}..{hi}: {t:?}"
            );
            assert!(t.len() <= 13, "{lo}..{hi}: {t:?}");
        }
        assert!(log_ticks(0.0, 1.0).is_empty());
    }

    #[test]
    fn series_keep_their_colour() {
        let mut b = ColorBook::default();
        assert_eq!(b.color("slab-extent"), b.color("slab-extent (baseline)"));
        let first = b.color("some series");
        let other = b.color("another series");
        assert_ne!(first, other);
        assert_eq!(b.color("some series"), first);
        assert_ne!(b.color("radix"), b.color("linear"));
    }

    #[test]
    fn chart_is_svg_with_ticks_and_legend() {
        let d = log_log(
            &mut ColorBook::default(),
            "t",
            "x",
            "y",
            Axis::Count,
            Axis::Ns,
            &[Series {
                name: "radix".into(),
                points: vec![(1.0, 2.9), (65536.0, 3.6)],
            }],
        );
        assert!(d.svg.starts_with("<svg"), "{}", d.svg);
        assert_eq!(d.legend[0].0, "radix");
        assert!(
            d.y_ticks
                .iter()
                .filter(|(v, _)| *v >= 2.9 && *v <= 3.6)
                .count()
                >= 2
        );
        for (_, label) in &d.y_ticks {
            assert!(d.svg.contains(label.as_str()), "{label} drawn");
        }
    }

    #[test]
    fn empty_chart_says_so() {
        let mut book = ColorBook::default();
        let s = log_log(&mut book, "t", "x", "y", Axis::Count, Axis::Ns, &[]);
        assert!(s.svg.contains("no data"));
        let b = bars(&mut book, "t", Axis::Ns, &[("a".into(), f64::NAN)]);
        assert!(b.svg.contains("no data"));
    }
}
