//! Progress on stderr: on a terminal, a line for the inputs' progress
//! (a percentage and an ETA where their size is known) and one per output
//! (per node with `-v`, or when the terminal is tall enough); elsewhere a
//! plain line every few seconds. Rates in human units (`836 K/s`).

use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use papy_core::Plumber;

use super::view::View;

/// Rows a terminal needs for one line per node.
const TALL: usize = 30;

/// `836.2 K`, `12`, `1.5 M`: three significant digits at most.
pub(crate) fn human(x: f64) -> String {
    let (v, unit) = match x.abs() {
        a if a >= 1e9 => (x / 1e9, " G"),
        a if a >= 1e6 => (x / 1e6, " M"),
        a if a >= 1e3 => (x / 1e3, " K"),
        _ => (x, ""),
    };
    if unit.is_empty() && (v.fract() == 0.0 || v.abs() >= 100.0) {
        format!("{v:.0}")
    } else if v.abs() >= 100.0 {
        format!("{v:.0}{unit}")
    } else {
        format!("{v:.1}{unit}")
    }
}

/// `1h 02m`, `3m 05s`, `12s`.
pub(crate) fn duration(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, r) => format!("{r}s"),
        (0, m, r) => format!("{m}m {r:02}s"),
        (h, m, _) => format!("{h}h {m:02}m"),
    }
}

/// The progress text of `view`: `42.0% of 100.0 M bytes, ETA 12s`.
pub(crate) fn progress_text(view: &View) -> Option<String> {
    let p = view.progress.as_ref()?;
    let eta = match p.eta_s {
        _ if view.state == "finished" => "done".to_string(),
        Some(s) => format!("ETA {}", duration(s)),
        None => "ETA -".to_string(),
    };
    let of = match p.unit {
        "mixed" => String::new(),
        unit => format!(" of {} {unit}", human(p.total as f64)),
    };
    Some(format!("{:.1}%{of}, {eta}", 100.0 * p.fraction))
}

/// The terminal's progress lines.
pub(crate) struct Terminal {
    enabled: bool,
    _bars: MultiProgress,
    head: Option<ProgressBar>,
    lines: Vec<(String, ProgressBar)>,
    per_node: bool,
    last_plain: Instant,
}

impl Terminal {
    /// Lines for `plumber`'s outputs (every node with `per_node` or on a
    /// tall terminal); nothing when not `enabled`.
    pub(crate) fn new(enabled: bool, per_node: bool, plumber: &Plumber) -> Terminal {
        let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let bars = MultiProgress::new();
        let rows = terminal_rows().unwrap_or(0);
        let dagger = plumber.dagger();
        let per_node = per_node || rows >= TALL.max(dagger.len() + 4);
        let mut head = None;
        let mut lines = Vec::new();
        if enabled && tty {
            let style = ProgressStyle::with_template("{spinner} {prefix:<24} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
            let bar_style = ProgressStyle::with_template("  {prefix:<24} [{bar:30}] {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            let h = bars.add(ProgressBar::new(1000));
            h.set_style(bar_style);
            h.set_prefix("progress");
            h.set_message("input size unknown");
            head = Some(h);
            let shown: Vec<String> = if per_node {
                dagger
                    .order()
                    .iter()
                    .map(|p| p.name().to_string())
                    .collect()
            } else {
                dagger
                    .outputs()
                    .iter()
                    .map(|p| p.name().to_string())
                    .collect()
            };
            for name in shown {
                let b = bars.add(ProgressBar::new_spinner());
                b.set_style(style.clone());
                b.set_prefix(name.clone());
                lines.push((name, b));
            }
        }
        Terminal {
            enabled,
            _bars: bars,
            head,
            lines,
            per_node,
            last_plain: Instant::now(),
        }
    }

    /// Shows `view`.
    pub(crate) fn show(&mut self, view: &View) {
        if !self.enabled {
            return;
        }
        if self.head.is_none() {
            // Not a terminal: a plain line now and then.
            if self.last_plain.elapsed() >= Duration::from_secs(2) {
                self.last_plain = Instant::now();
                let out: u64 = view
                    .nodes
                    .iter()
                    .filter(|n| n.output)
                    .map(|n| n.items_out)
                    .sum();
                let progress = progress_text(view).map_or(String::new(), |p| format!(", {p}"));
                eprintln!(
                    "papy: {} elapsed, {} output item(s){progress}",
                    duration(view.elapsed_s),
                    human(out as f64)
                );
            }
            return;
        }
        if let (Some(h), Some(p)) = (&self.head, &view.progress) {
            h.set_position((p.fraction * 1000.0) as u64);
            h.set_message(progress_text(view).unwrap_or_default());
        }
        for (name, bar) in &self.lines {
            if let Some(n) = view.nodes.iter().find(|n| &n.name == name) {
                let mut msg = format!(
                    "{:>8} out  {:>9}/s now  {:>9}/s avg",
                    human(n.items_out as f64),
                    human(n.rate_now),
                    human(n.rate_avg)
                );
                if self.per_node {
                    msg.push_str(&format!("  busy {:>3.0}%", 100.0 * n.busy_share));
                }
                if n.failed > 0 {
                    msg.push_str(&format!("  {} failed", human(n.failed as f64)));
                }
                bar.set_message(msg);
                bar.tick();
            }
        }
    }

    /// The last figures, then the lines stop.
    pub(crate) fn finish(&mut self, view: &View) {
        self.show(view);
        if let Some(h) = &self.head {
            h.finish();
        }
        for (_, b) in &self.lines {
            b.finish();
        }
    }
}

/// The terminal's height, from `LINES` or the terminal itself.
fn terminal_rows() -> Option<usize> {
    if let Some(l) = std::env::var("LINES").ok().and_then(|l| l.parse().ok()) {
        return Some(l);
    }
    #[cfg(unix)]
    if let Ok(ws) = rustix::termios::tcgetwinsize(std::io::stderr()) {
        if ws.ws_row > 0 {
            return Some(usize::from(ws.ws_row));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_as_a_person_would_say_them() {
        assert_eq!(human(836_233.859_5), "836 K");
        assert_eq!(human(1_500_000.0), "1.5 M");
        assert_eq!(human(12.0), "12");
        assert_eq!(human(0.5), "0.5");
        assert_eq!(human(999.0), "999");
        assert_eq!(human(2_340_000_000.0), "2.3 G");
        assert_eq!(duration(65.0), "1m 05s");
        assert_eq!(duration(3725.0), "1h 02m");
        assert_eq!(duration(9.4), "9s");
    }
}
