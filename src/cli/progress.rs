//! A progress bar on stderr for commands that work through many items (`detect`): position and
//! total, elapsed time, ETA and rate. It is drawn only when stderr is a terminal, so logs and
//! pipes get just the notes printed through [`Progress::println`].

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// The bar's layout: `images [#########>---------] 12/40, 7s elapsed, ETA 16s, 1.7/s  a/x.png`.
const TEMPLATE: &str = "{prefix} [{bar:25}] {pos}/{len}, {elapsed} elapsed, ETA {eta}, {rate}  {msg}";

/// Progress through a known number of items. Safe to share between threads.
#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
    visible: bool,
}

impl Progress {
    /// A bar for `total` items of kind `what` (e.g. "images"), drawn only if stderr is a
    /// terminal.
    pub fn new(total: u64, what: &str) -> Self {
        Self::with_visibility(total, what, std::io::stderr().is_terminal())
    }

    fn with_visibility(total: u64, what: &str, visible: bool) -> Self {
        let target = if visible { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
        let style = ProgressStyle::with_template(TEMPLATE)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .with_key("rate", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = w.write_str(&rate(s.per_sec()));
            })
            .progress_chars("#>-");
        let bar = ProgressBar::with_draw_target(Some(total), target).with_style(style).with_prefix(what.to_string());
        Progress { bar, visible }
    }

    /// Sets how many items are done (a resumed run starts part-way).
    pub fn set_position(&self, done: u64) {
        self.bar.set_position(done);
    }

    /// Counts one item done.
    pub fn inc(&self) {
        self.bar.inc(1);
    }

    /// Shows `msg` after the counts (such as the item being worked on).
    pub fn set_message(&self, msg: impl Into<String>) {
        self.bar.set_message(msg.into());
    }

    /// Prints `line` on stderr: above the bar when it is drawn, plainly otherwise. Always
    /// printed, so use it for notes the user must see ("skipped X: reason").
    pub fn println(&self, line: impl AsRef<str>) {
        if self.visible {
            self.bar.println(line);
        } else {
            eprintln!("{}", line.as_ref());
        }
    }

    /// Stops the clock and leaves the bar on screen as it is (the count is not forced to the
    /// total, so a run that stopped early shows where).
    pub fn finish(&self) {
        self.bar.abandon();
    }
}

/// `2.5/s` for fast items, `1.6 s each` for slow ones, `-` before the first one.
fn rate(per_sec: f64) -> String {
    if !per_sec.is_finite() || per_sec <= 0.0 {
        "-".into()
    } else if per_sec >= 1.0 {
        format!("{per_sec:.1}/s")
    } else {
        format!("{:.1} s each", 1.0 / per_sec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_parses() {
        assert!(ProgressStyle::with_template(TEMPLATE).is_ok());
    }

    #[test]
    fn hidden_bar_counts_and_prints_plainly() {
        let p = Progress::with_visibility(3, "images", false);
        p.set_message("a.png");
        p.inc();
        p.inc();
        p.println("skipped b.png: cannot decode image");
        p.finish();
        assert_eq!((p.bar.position(), p.bar.length()), (2, Some(3)));
        assert!(p.bar.is_finished());
    }

    #[test]
    fn rates_read_well_fast_and_slow() {
        assert_eq!(rate(2.54), "2.5/s");
        assert_eq!(rate(0.625), "1.6 s each");
        assert_eq!(rate(0.0), "-");
        assert_eq!(rate(f64::INFINITY), "-");
    }
}
