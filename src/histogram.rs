//! A fixed-bucket histogram and its Prometheus text form. Pure.

use std::fmt::Write;

/// Counts of observations at or below each bound, as Prometheus histograms keep them.
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Observations in each bucket (not cumulative); one more than `bounds` for +Inf.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

/// Bucket bounds for latencies in seconds, from 100 µs to 10 s.
pub const LATENCY_SECONDS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    10.0,
];

impl Histogram {
    /// An empty histogram with these (ascending) bucket bounds.
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }

    /// Records one observation.
    pub fn observe(&mut self, v: f64) {
        let i = self
            .bounds
            .iter()
            .position(|&b| v <= b)
            .unwrap_or(self.bounds.len());
        self.counts[i] += 1;
        self.sum += v;
        self.count += 1;
    }

    /// How many observations.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Appends the `_bucket`, `_sum` and `_count` lines of metric `name`, with `labels`
    /// (`key="value"` pairs, comma-separated, or empty) on every line.
    pub fn render(&self, name: &str, labels: &str, out: &mut String) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (i, c) in self.counts.iter().enumerate() {
            cumulative += c;
            let le = self
                .bounds
                .get(i)
                .map_or("+Inf".to_string(), |b| b.to_string());
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
            );
        }
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_in_the_text_form() {
        let mut h = Histogram::new(&[0.1, 1.0]);
        h.observe(0.05);
        h.observe(0.5);
        h.observe(7.0);
        let mut out = String::new();
        h.render("x_seconds", "op=\"create\"", &mut out);
        assert_eq!(
            out,
            "x_seconds_bucket{op=\"create\",le=\"0.1\"} 1\n\
             x_seconds_bucket{op=\"create\",le=\"1\"} 2\n\
             x_seconds_bucket{op=\"create\",le=\"+Inf\"} 3\n\
             x_seconds_sum{op=\"create\"} 7.55\n\
             x_seconds_count{op=\"create\"} 3\n"
        );
        let mut bare = String::new();
        Histogram::new(&[1.0]).render("y", "", &mut bare);
        assert!(bare.starts_with("y_bucket{le=\"1\"} 0\n") && bare.ends_with("y_count 0\n"));
    }
}
