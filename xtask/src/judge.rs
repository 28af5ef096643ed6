//! The judging options `gate` and `ab` share (`--alpha`, `--min-effect`,
//! `--format`), their parsers, and how a verdict is printed.
use reports::gate::{GateConfig, GateReport};

/// How strictly timings are judged: flattened into `gate`'s and `ab`'s
/// arguments.
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct JudgeArgs {
    /// Significance level of the one-sided test (gate) or the within-round permutation test (ab), in (0, 1) [default: 0.01].
    #[arg(long, value_name = "P", value_parser = probability)]
    pub alpha: Option<f64>,
    /// Smallest slowdown that counts as a regression: a fraction in (0, 1) or a percentage such as 10% [default: 0.10; the port check is held to 0.05].
    #[arg(long, value_name = "F|N%", value_parser = parse_min_effect)]
    pub min_effect: Option<f64>,
    /// Output: md (Markdown for a CI page) or json (schema in the README).
    #[arg(long, value_name = "md|json", default_value = "md", value_parser = parse_format)]
    pub format: Format,
}

impl JudgeArgs {
    /// The gate's defaults with these options applied.
    pub fn config(&self) -> GateConfig {
        let mut cfg = GateConfig::default();
        if let Some(p) = self.alpha {
            cfg.alpha = p;
        }
        if let Some(f) = self.min_effect {
            cfg.min_effect = f;
        }
        cfg
    }
}

/// How the verdict is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Markdown for a CI page.
    Markdown,
    /// The findings as JSON (README, gate section).
    Json,
}

/// Parses `--format`.
pub fn parse_format(v: &str) -> Result<Format, String> {
    match v {
        "md" | "markdown" => Ok(Format::Markdown),
        "json" => Ok(Format::Json),
        _ => Err(format!("--format takes md or json, not `{v}`")),
    }
}

/// Parses `--min-effect`: a fraction in (0, 1) (`0.1`) or a percentage in
/// (0, 100) with a `%` sign (`10%`). A bare `5` is refused rather than read
/// as 500 %.
pub fn parse_min_effect(v: &str) -> Result<f64, String> {
    let bad = || {
        format!("--min-effect takes a fraction in (0, 1) such as 0.1, or a percentage such as 10%; not `{v}`")
    };
    let t = v.trim();
    let f = match t.strip_suffix('%') {
        Some(pct) => pct.trim().parse::<f64>().map_err(|_| bad())? / 100.0,
        None => t.parse::<f64>().map_err(|_| bad())?,
    };
    if f > 0.0 && f < 1.0 {
        Ok(f)
    } else {
        Err(bad())
    }
}

/// Prints the report in `format`.
pub fn print_report(g: &GateReport, format: Format) {
    use std::io::Write;
    let text = match format {
        Format::Markdown => g.markdown(),
        Format::Json => g.json() + "\n",
    };
    // A closed stdout (`| head`) only loses the output; the exit status
    // still carries the verdict.
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// Parses `--alpha`: a probability strictly between 0 and 1.
pub fn probability(s: &str) -> Result<f64, String> {
    s.parse()
        .ok()
        .filter(|p: &f64| *p > 0.0 && *p < 1.0)
        .ok_or_else(|| "takes a probability in (0, 1)".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_effect_is_a_fraction_or_a_percentage() {
        assert_eq!(parse_min_effect("0.1"), Ok(0.1));
        assert_eq!(parse_min_effect("10%"), Ok(0.1));
        assert_eq!(parse_min_effect(" 2.5 %"), Ok(0.025));
        for bad in ["5", "0", "1", "100%", "-0.1", "ten", "%", "nan", "inf"] {
            assert!(parse_min_effect(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn format_names() {
        assert_eq!(parse_format("json"), Ok(Format::Json));
        assert_eq!(parse_format("md"), Ok(Format::Markdown));
        assert!(parse_format("xml").is_err());
    }
}
