//! What the user sees while a run goes on: a live display on a terminal (one spinner per
//! running task and an overall bar), one plain line per event elsewhere (CI logs), or
//! nothing but the final summary.
//!
//! Logging shares the live display: `RUST_LOG` lines are printed above the progress bars
//! (through indicatif-log-bridge) instead of tearing them. The display is cosmetic: a
//! failed write to it never fails the run.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::summary::{duration, final_summary, one_line, task_cost};
use super::{Status, TaskReport};
use crate::config;
use crate::runner::events::{Event, Reporter};

static MULTI: OnceLock<MultiProgress> = OnceLock::new();

/// The one progress area of the process.
pub fn multi() -> &'static MultiProgress {
    MULTI.get_or_init(MultiProgress::new)
}

/// Sets up env_logger (`RUST_LOG`, default `warn`) behind the progress bridge. Call once.
pub fn init_logging() {
    let logger =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
            .format_timestamp_millis()
            .build();
    let level = logger.filter();
    if indicatif_log_bridge::LogWrapper::new(multi().clone(), logger)
        .try_init()
        .is_ok()
    {
        log::set_max_level(level);
    }
}

/// Runs `f` with the progress display hidden, so what `f` prints is not overdrawn.
pub fn suspend<R>(f: impl FnOnce() -> R) -> R {
    multi().suspend(f)
}

/// The progress reporter. Prints the final summary (see [`final_summary`]) to its output
/// when the run finishes, in every mode.
pub struct Progress {
    out: Box<dyn Write + Send>,
    start: Instant,
    mode: Mode,
    /// `max_attempts` of each task's running attempt, by task id.
    max_attempts: BTreeMap<String, u32>,
}

enum Mode {
    Live(Live),
    Lines,
    Quiet,
}

/// The indicatif bars of the live display.
struct Live {
    overall: ProgressBar,
    tasks: BTreeMap<String, ProgressBar>,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match self.mode {
            Mode::Live(_) => "live",
            Mode::Lines => "lines",
            Mode::Quiet => "quiet",
        };
        f.debug_struct("Progress")
            .field("mode", &mode)
            .finish_non_exhaustive()
    }
}

impl Progress {
    /// A reporter writing plain lines and the final summary to `out`. `Auto` draws the live
    /// display (on standard error) when standard error is a terminal and `CI` is not set.
    pub fn new(mode: config::Progress, out: Box<dyn Write + Send>) -> Progress {
        let mode = match mode {
            config::Progress::Quiet => Mode::Quiet,
            config::Progress::Lines => Mode::Lines,
            config::Progress::Auto => {
                if std::io::stderr().is_terminal() && std::env::var_os("CI").is_none() {
                    Mode::Live(Live::new())
                } else {
                    Mode::Lines
                }
            }
        };
        Progress {
            out,
            start: Instant::now(),
            mode,
            max_attempts: BTreeMap::new(),
        }
    }

    /// `[ 10.1s] PASS    dev/auth 6.9s $0.0123`
    fn line(&mut self, label: &str, text: &str) {
        if matches!(self.mode, Mode::Quiet) {
            return;
        }
        let secs = self.start.elapsed().as_secs_f64();
        let line = format!("[{secs:>6.1}s] {label:<7} {text}");
        match &self.mode {
            Mode::Live(_) => multi().println(line).unwrap_or(()),
            _ => {
                let _ = writeln!(self.out, "{line}");
                let _ = self.out.flush();
            }
        }
    }

    fn task_finished(&mut self, t: &TaskReport) {
        self.max_attempts.remove(&t.id);
        if let Mode::Live(live) = &mut self.mode {
            live.finish(&t.id);
        }
        let name = format!("{}/{}", t.instance, t.id);
        let error = t
            .error
            .as_deref()
            .map(|e| one_line(e, 160))
            .unwrap_or_default();
        let facts = format!("{} {}", duration(t.duration_ms), task_cost(t.cost_usd));
        let (label, text) = match t.status {
            Status::Passed if t.flaky => (
                "PASS",
                format!("{name} {facts} (flaky: passed on attempt {})", t.attempts),
            ),
            Status::Passed => ("PASS", format!("{name} {facts}")),
            Status::Failed => ("FAIL", format!("{name} {facts}: {error}")),
            Status::TimedOut => ("TIMEOUT", format!("{name} {facts}: {error}")),
            Status::Interrupted => ("INTR", format!("{name} {facts}: {error}")),
            Status::Skipped => ("SKIP", format!("{name}: {error}")),
        };
        self.line(label, &text);
    }
}

impl Live {
    fn new() -> Live {
        let overall = multi().add(ProgressBar::new(0));
        overall.set_style(
            ProgressStyle::with_template(
                "{spinner:.green} {elapsed:>4} [{bar:32.green/dim}] {pos}/{len} tasks {msg}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        overall.enable_steady_tick(Duration::from_millis(120));
        Live {
            overall,
            tasks: BTreeMap::new(),
        }
    }

    /// Shows (or updates) the spinner of a running task.
    fn attempt(&mut self, name: &str, task: &str, attempt: u32, max: u32) {
        let message = format!("attempt {attempt}/{max}");
        if let Some(bar) = self.tasks.get(task) {
            bar.set_message(message);
            return;
        }
        // Styled and labelled before it is added, so its first frame is complete.
        let style =
            ProgressStyle::with_template("  {spinner:.cyan} {prefix:.bold}  {msg}  {elapsed}")
                .expect("a valid template");
        let bar = ProgressBar::new_spinner()
            .with_style(style)
            .with_prefix(name.to_string())
            .with_message(message);
        let bar = multi().insert_before(&self.overall, bar);
        bar.enable_steady_tick(Duration::from_millis(120));
        self.tasks.insert(task.to_string(), bar);
    }

    fn finish(&mut self, task: &str) {
        if let Some(bar) = self.tasks.remove(task) {
            bar.finish_and_clear();
            multi().remove(&bar);
        }
        if self
            .overall
            .length()
            .is_some_and(|len| self.overall.position() >= len)
        {
            self.overall.inc_length(1);
        }
        self.overall.inc(1);
    }
}

impl Reporter for Progress {
    fn event(&mut self, event: &Event<'_>) -> crate::Result<()> {
        match *event {
            Event::RunStarted {
                plan_name,
                run_dir,
                to_run,
                total,
                ..
            } => {
                if let Mode::Live(live) = &self.mode {
                    live.overall.set_length(to_run as u64);
                    live.overall.set_message(plan_name.to_string());
                }
                let text = format!(
                    "{plan_name}: {to_run} of {total} task{} → {}",
                    if total == 1 { "" } else { "s" },
                    run_dir.display()
                );
                self.line("RUN", &text);
            }
            Event::AttemptStarted {
                task,
                instance,
                attempt,
                max_attempts,
            } => {
                self.max_attempts.insert(task.to_string(), max_attempts);
                let name = format!("{instance}/{task}");
                if let Mode::Live(live) = &mut self.mode {
                    live.attempt(&name, task, attempt, max_attempts);
                } else {
                    self.line(
                        "START",
                        &format!("{name} (attempt {attempt}/{max_attempts})"),
                    );
                }
            }
            Event::AttemptFinished {
                task,
                instance,
                attempt,
            } => {
                let max = self.max_attempts.get(task).copied().unwrap_or(1);
                if !attempt.status.is_pass() && attempt.attempt < max {
                    let error = attempt.error.as_deref().map(|e| one_line(e, 160));
                    let text = format!(
                        "{instance}/{task} attempt {}/{max} {} after {}: {}",
                        attempt.attempt,
                        super::summary::status_word(attempt.status),
                        duration(attempt.duration_ms),
                        error.unwrap_or_default()
                    );
                    self.line("RETRY", &text);
                }
            }
            Event::TaskFinished { task } => self.task_finished(task),
            Event::RunFinished { report, run_dir } => {
                if let Mode::Live(live) = &mut self.mode {
                    for (_, bar) in std::mem::take(&mut live.tasks) {
                        bar.finish_and_clear();
                    }
                    live.overall.finish_and_clear();
                    let _ = multi().clear();
                }
                let summary = final_summary(report, run_dir);
                if !matches!(self.mode, Mode::Quiet) {
                    let _ = writeln!(self.out);
                }
                let _ = self.out.write_all(summary.as_bytes());
                let _ = self.out.flush();
            }
        }
        Ok(())
    }
}
