//! Progress of a matrix on stderr: an indicatif bar with an ETA on a
//! terminal, one plain line per finished run elsewhere (CI logs, pipes),
//! where a redrawn bar would be noise.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The progress display of one matrix.
pub struct Progress {
    bar: Option<ProgressBar>,
    total: usize,
    start: Instant,
    state: std::sync::Mutex<usize>,
}

impl Progress {
    /// A display for `total` runs: a bar if stderr is a terminal.
    pub fn new(total: usize) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar =
                ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{elapsed_precise} [{bar:30.cyan/blue}] {pos}/{len} runs, ETA {eta} {msg}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.enable_steady_tick(Duration::from_millis(250));
            bar
        });
        Progress {
            bar,
            total,
            start: Instant::now(),
            state: std::sync::Mutex::new(0),
        }
    }

    /// Prints a line above the bar (or plainly).
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    /// A run started: shown as the bar's message.
    pub fn started(&self, what: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(what.to_string());
        }
    }

    /// A run finished with `outcome` (`ok`, `panic`, ...) after `wall`.
    /// Failures are always printed; on a terminal an ok run only moves the
    /// bar.
    pub fn finished(&self, what: &str, outcome: &str, wall: Duration, log: &str) {
        let done = {
            let mut done = self.state.lock().unwrap();
            *done += 1;
            *done
        };
        let line = format!(
            "[{done:>w$}/{}] {outcome:<14} {what} ({:.2} s){}",
            self.total,
            wall.as_secs_f64(),
            if outcome == "ok" {
                String::new()
            } else {
                format!(", log {log}")
            },
            w = self.total.to_string().len()
        );
        match &self.bar {
            Some(bar) => {
                if outcome != "ok" {
                    bar.println(line);
                }
                bar.inc(1);
            }
            None => {
                let elapsed = self.start.elapsed().as_secs_f64();
                let eta = elapsed / done as f64 * (self.total - done) as f64;
                eprintln!("{line}, eta {eta:.0} s");
            }
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
