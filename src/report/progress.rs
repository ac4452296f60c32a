//! What the user sees while a run goes on: a live display on a terminal (one spinner per
//! running task and an overall bar with the failures so far and the running cost), one
//! plain line per event elsewhere (CI logs), or nothing but the final summary.
//!
//! One line format for everything printed while a run goes on, ours and `RUST_LOG`'s:
//! `[  10.1s] LABEL   text`. Logging shares the live display: log lines are printed above
//! the progress bars (through indicatif-log-bridge) instead of tearing them. The display
//! is cosmetic: a failed write to it never fails the run.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::summary::{self, duration, final_summary, one_line, task_cost, usd};
use super::term::{self, Paint};
use super::{Status, TaskReport};
use crate::config;
use crate::plan::format_duration;
use crate::runner::events::{Event, Reporter};

static MULTI: OnceLock<MultiProgress> = OnceLock::new();
static START: OnceLock<Instant> = OnceLock::new();

/// The one progress area of the process.
pub fn multi() -> &'static MultiProgress {
    MULTI.get_or_init(MultiProgress::new)
}

/// Seconds since the process began reporting: the first column of every line.
fn since_start() -> f64 {
    START.get_or_init(Instant::now).elapsed().as_secs_f64()
}

/// `[  10.1s] PASS    dev/auth 6.9s $0.0123`: the one line format.
pub fn format_line(paint: Paint, secs: f64, label: &str, text: &str) -> String {
    format!("[{secs:>6.1}s] {} {text}", paint.label(label))
}

/// Sets up env_logger (`RUST_LOG`; default `warn`, `info` for borg-batch with `-v`) behind
/// the progress bridge, writing the same line format as the progress lines. Call once.
pub fn init_logging(verbose: bool, paint: Paint) {
    let default = if verbose {
        "warn,borg_batch=info"
    } else {
        "warn"
    };
    let logger =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default))
            .format(move |buf, record| {
                let label = record.level().as_str();
                writeln!(
                    buf,
                    "{}",
                    format_line(paint, since_start(), label, &record.args().to_string())
                )
            })
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
    mode: Mode,
    paint: Paint,
    verbose: bool,
    /// `GITHUB_ACTIONS=true`: `::error` and `::group::` for each task that did not pass.
    github: bool,
    /// `max_attempts` and the time limit of each task's running attempt, by task id.
    running: BTreeMap<String, (u32, Duration)>,
    /// Tasks finished so far that did not pass (skipped ones apart), and this run's cost.
    failures: usize,
    cost: f64,
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
    /// Uncoloured, not verbose, no workflow commands until told otherwise.
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
        since_start();
        Progress {
            out,
            mode,
            paint: Paint::PLAIN,
            verbose: false,
            github: false,
            running: BTreeMap::new(),
            failures: 0,
            cost: 0.0,
        }
    }

    /// Colours labels and status words with `paint`.
    pub fn with_paint(mut self, paint: Paint) -> Progress {
        self.paint = paint;
        self
    }

    /// `-v`: every attempt's start and end, the check's start, and failure output in full.
    pub fn verbose(mut self, verbose: bool) -> Progress {
        self.verbose = verbose;
        self
    }

    /// Adds GitHub Actions workflow commands for each task that did not pass.
    pub fn github_actions(mut self, on: bool) -> Progress {
        self.github = on;
        self
    }

    fn line(&mut self, label: &str, text: &str) {
        if matches!(self.mode, Mode::Quiet) {
            return;
        }
        let line = format_line(self.paint, since_start(), label, text);
        self.print(&line);
    }

    /// Prints `text` (one or more lines) above the live display, or to the output.
    fn print(&mut self, text: &str) {
        let text = text.strip_suffix('\n').unwrap_or(text);
        match &self.mode {
            Mode::Live(_) => multi().println(text).unwrap_or(()),
            _ => {
                let _ = writeln!(self.out, "{text}");
                let _ = self.out.flush();
            }
        }
    }

    fn task_finished(&mut self, t: &TaskReport) {
        self.running.remove(&t.id);
        if !matches!(t.status, Status::Passed | Status::Skipped) {
            self.failures += 1;
        }
        self.cost += t.cost_usd.unwrap_or(0.0);
        let overall = overall_message(self.failures, self.cost, self.paint);
        if let Mode::Live(live) = &mut self.mode {
            live.finish(&t.id, &overall);
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
        let output = t.failure_output.as_deref().filter(|o| !o.trim().is_empty());
        if let Some(output) = output.filter(|_| {
            matches!(t.status, Status::Failed | Status::TimedOut)
                && !matches!(self.mode, Mode::Quiet)
        }) {
            let max = if self.verbose { usize::MAX } else { 12 };
            let shown = summary::failure_excerpt(output, max);
            self.print(&summary::indented(&shown, "        │ ", self.paint));
        }
        if self.github && !matches!(t.status, Status::Passed | Status::Skipped) {
            let commands = term::gha_failure(
                &t.id,
                &t.instance,
                summary::status_word(t.status),
                t.error.as_deref().unwrap_or("did not pass"),
                t.failure_output.as_deref(),
            );
            // Workflow commands are read from either stream; these go with the lines they annotate.
            let _ = self.out.write_all(commands.as_bytes());
            let _ = self.out.flush();
        }
    }
}

/// The overall bar's message: failures so far and the running cost.
fn overall_message(failures: usize, cost: f64, paint: Paint) -> String {
    let failed = if failures == 0 {
        "0 failed".to_string()
    } else {
        paint.red(&format!("{failures} failed"))
    };
    format!("· {failed} · {}", usd(cost))
}

impl Live {
    fn new() -> Live {
        let overall = multi().add(ProgressBar::new(0));
        overall.set_style(
            ProgressStyle::with_template(
                "{spinner:.green} {elapsed:>4} [{bar:32.green/dim}] {pos}/{len} tasks {prefix} {msg}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        overall.set_message(overall_message(0, 0.0, Paint::PLAIN));
        overall.enable_steady_tick(Duration::from_millis(120));
        Live {
            overall,
            tasks: BTreeMap::new(),
        }
    }

    /// Shows (or updates) the spinner of a running task; its clock restarts with each
    /// attempt and each check, and shows the limit it runs under.
    fn attempt(&mut self, name: &str, task: &str, phase: String, limit: Duration) {
        if let Some(bar) = self.tasks.get(task) {
            bar.set_style(task_style(limit));
            bar.set_message(phase);
            bar.reset_elapsed();
            return;
        }
        // Styled and labelled before it is added, so its first frame is complete.
        let bar = ProgressBar::new_spinner()
            .with_style(task_style(limit))
            .with_prefix(name.to_string())
            .with_message(phase);
        let bar = multi().insert_before(&self.overall, bar);
        bar.enable_steady_tick(Duration::from_millis(120));
        self.tasks.insert(task.to_string(), bar);
    }

    fn finish(&mut self, task: &str, overall: &str) {
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
        self.overall.set_message(overall.to_string());
        self.overall.inc(1);
    }
}

/// `  ⠋ dev/auth  attempt 1/2 · agent  12s / limit 20s`
fn task_style(limit: Duration) -> ProgressStyle {
    let template = format!(
        "  {{spinner:.cyan}} {{prefix:.bold}}  {{msg}}  {{elapsed}} / limit {}",
        format_duration(limit)
    );
    ProgressStyle::with_template(&template).expect("a valid template")
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
                    live.overall.set_prefix(plan_name.to_string());
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
                timeout,
            } => {
                self.running
                    .insert(task.to_string(), (max_attempts, timeout));
                let name = format!("{instance}/{task}");
                if let Mode::Live(live) = &mut self.mode {
                    live.attempt(
                        &name,
                        task,
                        format!("attempt {attempt}/{max_attempts} · agent"),
                        timeout,
                    );
                } else {
                    self.line(
                        "START",
                        &format!(
                            "{name} (attempt {attempt}/{max_attempts}, limit {})",
                            format_duration(timeout)
                        ),
                    );
                }
            }
            Event::CheckStarted {
                task,
                instance,
                attempt,
            } => {
                let (max, limit) = self
                    .running
                    .get(task)
                    .copied()
                    .unwrap_or((1, Duration::ZERO));
                let name = format!("{instance}/{task}");
                if let Mode::Live(live) = &mut self.mode {
                    live.attempt(
                        &name,
                        task,
                        format!("attempt {attempt}/{max} · check"),
                        limit,
                    );
                } else if self.verbose {
                    self.line(
                        "CHECK",
                        &format!(
                            "{name} (attempt {attempt}/{max}, limit {})",
                            format_duration(limit)
                        ),
                    );
                }
            }
            Event::AttemptFinished {
                task,
                instance,
                attempt,
            } => {
                let max = self.running.get(task).map_or(1, |r| r.0);
                let retrying = !attempt.status.is_pass() && attempt.attempt < max;
                if retrying || self.verbose {
                    let error = attempt
                        .error
                        .as_deref()
                        .map(|e| format!(": {}", one_line(e, 160)));
                    let text = format!(
                        "{instance}/{task} attempt {}/{max} {} after {}{}",
                        attempt.attempt,
                        summary::status_word(attempt.status),
                        duration(attempt.duration_ms),
                        error.unwrap_or_default()
                    );
                    self.line(if retrying { "RETRY" } else { "DONE" }, &text);
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
                let summary = final_summary(report, run_dir, self.paint);
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
