//! `zw-bench plot`: SVG charts drawn from a benchmark run's CSV files, with no plotting
//! library: a latency CDF (ZooWeeper and Apache ZooKeeper, same client, by ensemble size)
//! and write throughput against the number of concurrent clients.

use std::error::Error;
use std::fmt::Write as _;
use std::path::Path;

/// One line on a chart.
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// How an axis maps values.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Scale {
    Linear,
    Log10,
}

pub struct Chart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub x_scale: Scale,
    pub series: Vec<Series>,
}

const W: f64 = 720.0;
const H: f64 = 440.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 190.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;
const COLOURS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
];

/// A CSV file's header and rows of fields.
pub type Csv = (Vec<String>, Vec<Vec<String>>);

/// A CSV file as a header and rows of fields (the bench's own files: no quoting).
pub fn read_csv(path: &Path) -> Result<Csv, Box<dyn Error>> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = lines
        .next()
        .ok_or_else(|| format!("{}: empty", path.display()))?
        .split(',')
        .map(|f| f.trim().to_string())
        .collect();
    let rows = lines
        .map(|l| l.split(',').map(|f| f.trim().to_string()).collect())
        .collect();
    Ok((header, rows))
}

/// The index of column `name`, or an error naming the file.
pub fn column(header: &[String], name: &str, path: &Path) -> Result<usize, Box<dyn Error>> {
    header
        .iter()
        .position(|h| h == name)
        .ok_or_else(|| format!("{}: no column '{name}'", path.display()).into())
}

/// "Nice" tick values covering [lo, hi] on a linear axis: about 5 steps of 1, 2 or 5 x 10^k.
fn linear_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = (hi - lo).max(f64::MIN_POSITIVE);
    let raw = span / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| span / s <= 6.0)
        .unwrap_or(10.0 * mag);
    let mut t = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while t <= hi + step * 1e-9 {
        out.push(t);
        t += step;
    }
    out
}

/// Powers of ten covering [lo, hi] (both > 0).
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let (a, b) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    (a..=b).map(|e| 10f64.powi(e)).collect()
}

fn label(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 1.0 || v == 0.0 {
        format!("{v}")
    } else {
        format!("{v:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl Chart<'_> {
    /// The chart as an SVG document. Errors if there is nothing to draw.
    pub fn svg(&self) -> Result<String, Box<dyn Error>> {
        let pts: Vec<(f64, f64)> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().copied())
            .filter(|&(x, y)| {
                x.is_finite() && y.is_finite() && (self.x_scale == Scale::Linear || x > 0.0)
            })
            .collect();
        if pts.is_empty() {
            return Err(format!("'{}': no points to draw", self.title).into());
        }
        let (mut x0, mut x1) = pts
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
        let y1 = pts.iter().fold(0f64, |a, p| a.max(p.1)) * 1.05;
        let y0 = 0.0;
        let xt = match self.x_scale {
            Scale::Log10 => {
                let t = log_ticks(x0, x1);
                (x0, x1) = (t[0], t[t.len() - 1]);
                t
            }
            Scale::Linear => {
                let t = linear_ticks(x0, x1);
                if x1 <= x0 {
                    x1 = x0 + 1.0;
                }
                t
            }
        };
        let yt = linear_ticks(y0, y1.max(f64::MIN_POSITIVE));
        let fx = |x: f64| -> f64 {
            let f = match self.x_scale {
                Scale::Log10 => (x.log10() - x0.log10()) / (x1.log10() - x0.log10()).max(1e-12),
                Scale::Linear => (x - x0) / (x1 - x0),
            };
            LEFT + f * (W - LEFT - RIGHT)
        };
        let fy =
            |y: f64| -> f64 { H - BOTTOM - (y - y0) / (y1 - y0).max(1e-12) * (H - TOP - BOTTOM) };
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
        let _ = writeln!(
            s,
            r#"<text x="{}" y="22" font-size="15" text-anchor="middle">{}</text>"#,
            (LEFT + W - RIGHT) / 2.0,
            escape(self.title)
        );
        for &t in &xt {
            let x = fx(t);
            let _ = writeln!(
                s,
                r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                H - BOTTOM,
                H - BOTTOM + 16.0,
                label(t)
            );
        }
        for &t in &yt {
            let y = fy(t);
            let _ = writeln!(
                s,
                r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                W - RIGHT,
                LEFT - 6.0,
                y + 4.0,
                label(t)
            );
        }
        let _ = writeln!(
            s,
            r#"<rect x="{LEFT}" y="{TOP}" width="{:.1}" height="{:.1}" fill="none" stroke="black"/>"#,
            W - LEFT - RIGHT,
            H - TOP - BOTTOM
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            (LEFT + W - RIGHT) / 2.0,
            H - 16.0,
            escape(self.x_label)
        );
        let _ = writeln!(
            s,
            r#"<text transform="translate(20 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
            (TOP + H - BOTTOM) / 2.0,
            escape(self.y_label)
        );
        for (i, series) in self.series.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let path: Vec<String> = series
                .points
                .iter()
                .filter(|&&(x, y)| x.is_finite() && y.is_finite() && x >= x0 && x <= x1)
                .map(|&(x, y)| format!("{:.1},{:.1}", fx(x), fy(y)))
                .collect();
            if path.is_empty() {
                continue;
            }
            let _ = writeln!(
                s,
                r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
                path.join(" ")
            );
            if series.points.len() <= 12 {
                for p in &path {
                    let (x, y) = p.split_once(',').unwrap_or(("0", "0"));
                    let _ = writeln!(s, r#"<circle cx="{x}" cy="{y}" r="3" fill="{colour}"/>"#);
                }
            }
            let ly = TOP + 14.0 + 20.0 * i as f64;
            let lx = W - RIGHT + 14.0;
            let _ = writeln!(
                s,
                r#"<line x1="{lx}" y1="{ly}" x2="{:.1}" y2="{ly}" stroke="{colour}" stroke-width="3"/><text x="{:.1}" y="{:.1}">{}</text>"#,
                lx + 22.0,
                lx + 28.0,
                ly + 4.0,
                escape(&series.label)
            );
        }
        s.push_str("</svg>\n");
        Ok(s)
    }
}

/// The latency CDF from `zookeeper_cdf.csv` (system, servers, quantile, ms), for the
/// smallest and the largest ensemble in it.
pub fn latency_cdf(dir: &Path) -> Result<String, Box<dyn Error>> {
    let path = dir.join("zookeeper_cdf.csv");
    let (h, rows) = read_csv(&path)?;
    let (sys, n, q, ms) = (
        column(&h, "system", &path)?,
        column(&h, "servers", &path)?,
        column(&h, "quantile", &path)?,
        column(&h, "ms", &path)?,
    );
    // The smallest and the largest ensemble measured (3 and 9 in a full run).
    let sizes: Vec<u32> = rows.iter().filter_map(|r| r[n].parse().ok()).collect();
    let ends = [sizes.iter().min(), sizes.iter().max()];
    let mut series: Vec<Series> = Vec::new();
    for r in &rows {
        if !ends.contains(&r[n].parse::<u32>().ok().as_ref()) {
            continue;
        }
        let key = format!("{} {} servers", r[sys], r[n]);
        let (Ok(q), Ok(ms)) = (r[q].parse::<f64>(), r[ms].parse::<f64>()) else {
            return Err(format!("{}: bad row {r:?}", path.display()).into());
        };
        match series.iter_mut().find(|s| s.label == key) {
            Some(s) => s.points.push((ms, q * 100.0)),
            None => series.push(Series {
                label: key,
                points: vec![(ms, q * 100.0)],
            }),
        }
    }
    Chart {
        title: "Sequential create latency through a follower (same client)",
        x_label: "latency, ms (log scale)",
        y_label: "% of creates at or below",
        x_scale: Scale::Log10,
        series,
    }
    .svg()
}

/// Writes/s against concurrent clients: `zookeeper_load.csv` (both systems, ZooKeeper's
/// protocol) and `load_<clients>.csv` (ZooWeeper over HTTP), when present.
pub fn throughput(dir: &Path) -> Result<String, Box<dyn Error>> {
    let mut series: Vec<Series> = Vec::new();
    let zk = dir.join("zookeeper_load.csv");
    if zk.exists() {
        let (h, rows) = read_csv(&zk)?;
        let (sys, c, w) = (
            column(&h, "system", &zk)?,
            column(&h, "clients", &zk)?,
            column(&h, "writes/s", &zk)?,
        );
        for r in &rows {
            let key = format!("{} (ZK protocol)", r[sys]);
            let p = (r[c].parse::<f64>()?, r[w].parse::<f64>()?);
            match series.iter_mut().find(|s| s.label == key) {
                Some(s) => s.points.push(p),
                None => series.push(Series {
                    label: key,
                    points: vec![p],
                }),
            }
        }
    }
    let mut http = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("load_") && name.ends_with(".csv") {
            let (h, rows) = read_csv(&path)?;
            let (c, w) = (
                column(&h, "clients", &path)?,
                column(&h, "writes/s", &path)?,
            );
            for r in &rows {
                http.push((r[c].parse::<f64>()?, r[w].parse::<f64>()?));
            }
        }
    }
    if !http.is_empty() {
        series.push(Series {
            label: "ZooWeeper (HTTP)".into(),
            points: http,
        });
    }
    for s in &mut series {
        s.points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    Chart {
        title: "Write throughput, 3 servers, fsync on",
        x_label: "concurrent clients (log scale)",
        y_label: "writes/s",
        x_scale: Scale::Log10,
        series,
    }
    .svg()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_cover_the_range_with_round_steps() {
        assert_eq!(
            linear_ticks(0.0, 100.0),
            vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
        );
        assert_eq!(log_ticks(0.3, 12.0), vec![0.1, 1.0, 10.0, 100.0]);
        assert_eq!(label(2000.0), "2k");
        assert_eq!(label(0.5), "0.5");
    }

    #[test]
    fn a_chart_draws_every_series_and_escapes_labels() {
        let chart = Chart {
            title: "a < b",
            x_label: "x",
            y_label: "y",
            x_scale: Scale::Log10,
            series: vec![
                Series {
                    label: "one & two".into(),
                    points: vec![(1.0, 10.0), (8.0, 40.0), (64.0, 80.0)],
                },
                Series {
                    label: "three".into(),
                    points: vec![(1.0, 5.0), (64.0, 20.0)],
                },
            ],
        };
        let svg = chart.svg().unwrap();
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("a &lt; b") && svg.contains("one &amp; two"));
        assert!(svg.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn nothing_to_draw_is_an_error() {
        let chart = Chart {
            title: "empty",
            x_label: "x",
            y_label: "y",
            x_scale: Scale::Log10,
            series: vec![Series {
                label: "zero".into(),
                points: vec![(0.0, 1.0)],
            }],
        };
        assert!(chart.svg().is_err());
    }

    #[test]
    fn charts_come_from_the_runs_csv_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("zookeeper_cdf.csv"),
            "system,servers,quantile,ms\nZooWeeper,3,0.5,0.6\nZooWeeper,3,0.99,1.0\nZooKeeper,3,0.5,0.8\nZooKeeper,3,0.99,6.7\n",
        )
        .unwrap();
        let cdf = latency_cdf(dir.path()).unwrap();
        assert_eq!(cdf.matches("<polyline").count(), 2);
        assert!(cdf.contains("ZooKeeper 3 servers"));
        std::fs::write(
            dir.path().join("load_8.csv"),
            "servers,clients,s,writes ok,failed,writes/s,p50 ms\n3,8,8,39512,0,4939,1.5\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("load_64.csv"),
            "servers,clients,s,writes ok,failed,writes/s,p50 ms\n3,64,8,64460,0,8058,5.8\n",
        )
        .unwrap();
        let tp = throughput(dir.path()).unwrap();
        assert!(tp.contains("ZooWeeper (HTTP)"));
        std::fs::remove_file(dir.path().join("zookeeper_cdf.csv")).unwrap();
        let err = latency_cdf(dir.path()).unwrap_err().to_string();
        assert!(err.contains("zookeeper_cdf.csv"), "{err}");
    }
}
