//! The progress bar: on a terminal only, and only once a run has lasted a
//! second (short runs stay quiet). Workers publish their finished-request
//! counts in relaxed atomics once per poll tick; the main thread, which is
//! otherwise idle while it waits for results, sums them ten times a second.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Runs shorter than this show no bar.
const QUIET_FOR: Duration = Duration::from_secs(1);
/// How often the main thread wakes to redraw.
pub const REFRESH: Duration = Duration::from_millis(100);

/// A worker's published count, on its own cache line so that workers do not
/// slow each other down.
#[repr(align(64))]
#[derive(Debug, Default)]
pub struct WorkerProgress(pub AtomicU64);

pub struct Progress {
    enabled: bool,
    total: u64,
    started: Instant,
    bar: Option<ProgressBar>,
}

impl Progress {
    /// `enabled` is false for `-q`/`--json`; stderr must also be a terminal.
    pub fn new(enabled: bool, total: u64) -> Progress {
        Progress { enabled: enabled && std::io::stderr().is_terminal(), total, started: Instant::now(), bar: None }
    }

    pub fn update(&mut self, workers: &[WorkerProgress]) {
        if !self.enabled || self.started.elapsed() < QUIET_FOR {
            return;
        }
        let done: u64 = workers.iter().map(|w| w.0.load(Ordering::Relaxed)).sum();
        let (total, elapsed) = (self.total, self.started.elapsed());
        let bar = self.bar.get_or_insert_with(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr_with_hz(10))
                .with_elapsed(elapsed);
            if let Ok(style) = ProgressStyle::with_template("{elapsed_precise} [{wide_bar}] {pos}/{len} requests {msg}")
            {
                bar.set_style(style);
            }
            bar
        });
        // The average since the start: indicatif's own rate estimate would
        // see the whole first second arrive at once.
        bar.set_position(done.min(total));
        bar.set_message(format!("({:.0} req/s)", done as f64 / elapsed.as_secs_f64()));
    }

    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
