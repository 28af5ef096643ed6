//! Every number format of the report and the gate, in one place: the
//! report's numbers are these functions' output, whatever renders them
//! (the HTML template, the gate's Markdown).

/// A number for a table: integers (and anything ≥ 1000) with thousands
/// separators and no decimals, others with up to 3 significant decimals;
/// never scientific notation.
pub fn n(v: f64) -> String {
    if !v.is_finite() {
        return "–".to_owned();
    }
    let a = v.abs();
    if a >= 1000.0 || (v.fract() == 0.0 && a < 1e15) {
        let digits = format!("{:.0}", a);
        let mut out = String::new();
        for (i, ch) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(ch);
        }
        return if v < 0.0 { format!("-{out}") } else { out };
    }
    let decimals = if a >= 10.0 {
        1
    } else if a >= 1.0 {
        2
    } else if a >= 0.001 {
        (2 - a.log10().floor() as i32).clamp(3, 6) as usize
    } else {
        6
    };
    let mut s = format!("{v:.decimals$}");
    while s.contains('.') && s.ends_with('0') {
        s.pop();
    }
    if s.ends_with('.') {
        s.pop();
    }
    s
}

/// A p-value in plain notation.
pub fn p_plain(p: f64) -> String {
    if p < 0.0001 {
        "< 0.0001".to_owned()
    } else {
        format!("{p:.4}")
    }
}

/// Formats nanoseconds with a unit scaled to the value.
pub fn ns(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.2} s", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.2} ms", v / 1e6)
    } else if a >= 1e3 {
        format!("{:.2} µs", v / 1e3)
    } else if a >= 10.0 {
        format!("{v:.1} ns")
    } else {
        format!("{v:.2} ns")
    }
}

/// A judged value of the gate's tables (4 decimals), `–` when absent.
pub fn judged(v: Option<f64>) -> String {
    v.map_or("–".to_owned(), |x| format!("{x:.4}"))
}

/// A ratio of the gate's tables (3 decimals), `–` when absent.
pub fn ratio(v: Option<f64>) -> String {
    v.map_or("–".to_owned(), |r| format!("{r:.3}"))
}

/// A p-value of the gate's tables (scientific, 2 decimals), `–` when absent.
pub fn p_sci(v: Option<f64>) -> String {
    v.map_or("–".to_owned(), |p| format!("{p:.2e}"))
}

/// A minimum effect as `±N %`, `–` when absent.
pub fn effect(v: Option<f64>) -> String {
    v.map_or("–".to_owned(), |t| format!("±{:.0} %", t * 100.0))
}

/// The charts' axis labels: short, two or three significant digits.
pub mod axis {
    /// A number trimmed to `digits` decimals, trailing zeros dropped.
    pub fn trim(v: f64, digits: usize) -> String {
        let mut s = format!("{v:.digits$}");
        if s.contains('.') {
            while s.ends_with('0') {
                s.pop();
            }
            if s.ends_with('.') {
                s.pop();
            }
        }
        s
    }

    /// Two or three significant digits.
    fn sig(v: f64) -> String {
        let a = v.abs();
        if a >= 100.0 {
            trim(v, 0)
        } else if a >= 10.0 {
            trim(v, 1)
        } else {
            trim(v, 2)
        }
    }

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
        format!("{}{s}", sig(v))
    }

    /// Nanoseconds with a unit scaled to the value.
    pub fn ns(v: f64) -> String {
        let a = v.abs();
        if a >= 1e9 {
            format!("{} s", sig(v / 1e9))
        } else if a >= 1e6 {
            format!("{} ms", sig(v / 1e6))
        } else if a >= 1e3 {
            format!("{} µs", sig(v / 1e3))
        } else {
            format!("{} ns", sig(v))
        }
    }

    /// Bytes with a binary unit scaled to the value.
    pub fn bytes(v: f64) -> String {
        let a = v.abs();
        if a >= (1u64 << 30) as f64 {
            format!("{} GiB", sig(v / (1u64 << 30) as f64))
        } else if a >= (1u64 << 20) as f64 {
            format!("{} MiB", sig(v / (1u64 << 20) as f64))
        } else if a >= 1024.0 {
            format!("{} KiB", sig(v / 1024.0))
        } else {
            format!("{} B", sig(v))
        }
    }

    /// Writes a value on a 1/(1-p) axis as a percentile.
    pub fn percentile_label(x: f64) -> String {
        if x <= 1.0 {
            return "0%".to_owned();
        }
        format!("{}%", trim(100.0 * (1.0 - 1.0 / x), 4))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_as_the_report_shows_them() {
        assert_eq!(n(1234567.0), "1,234,567");
        assert_eq!(n(-1500.4), "-1,500");
        assert_eq!(n(4.56789), "4.57");
        assert_eq!(n(0.0123), "0.0123");
        assert_eq!(n(f64::NAN), "–");
        assert_eq!(ns(1500.0), "1.50 µs");
        assert_eq!(ns(5.0), "5.00 ns");
        assert_eq!(p_plain(0.00001), "< 0.0001");
        assert_eq!(judged(Some(1.23456)), "1.2346");
        assert_eq!(ratio(None), "–");
        assert_eq!(p_sci(Some(0.000123)), "1.23e-4");
        assert_eq!(effect(Some(0.1)), "±10 %");
    }
}
