//! The command line, as clap derive structs, turned into the core's plain [`Command`].
//!
//! Only this file and `main.rs` know clap. `borg-batch PLAN` is `borg-batch run PLAN`.

use std::path::PathBuf;
use std::time::Duration;

use borg_batch::config::{Command, Format, Progress, RunOptions};
use borg_batch::report::term::ColorChoice;
use clap::{Args, Parser, Subcommand, ValueEnum};

const EXAMPLES: &str = "\
Examples:
  borg-batch plans/demo.yaml                      run every task of a plan
  borg-batch plans/feature.yaml -j 2 --timeout 20m
  borg-batch plans/feature.yaml --only auth       run `auth` (and what it needs that has not passed)
  borg-batch plans/feature.yaml --rerun-failed    run again what did not pass last time
  borg-batch plans/feature.yaml --dry-run         show the schedule and agent command lines
  borg-batch validate plans/feature.yaml          check a plan; exit 0 or 2
  borg-batch report runs/feature-auth             the latest run's summary again
  borg-batch report runs/feature-auth/latest --format html -o review.html
  borg-batch plans/feature.yaml --shard 2/5       run shard 2 of 5 (CI matrix); then:
  borg-batch merge shards/* --out runs/feature-auth/merged

Reports go to runs/<plan name>/<time>-<id>/ (report.json, report.md, junit.xml,
report.html, journal.jsonl, logs/, diffs/); runs/<plan name>/latest points at the newest.

Exit codes: 0 all tasks passed · 1 a task did not pass · 2 bad plan, command line or
environment (nothing ran) · 3 the runner failed mid-run · 130 interrupted.

Environment: CLAUDE_CODE_PATH (agent command), WORKSPACES_DIR, TASK_TIMEOUT (ms or 5m),
RUST_LOG (log detail, e.g. RUST_LOG=borg_batch=debug), GITHUB_STEP_SUMMARY,\nGITHUB_ACTIONS=true (::error and ::group:: lines for failed tasks), NO_COLOR, CLICOLOR_FORCE.";

/// Run a plan of Claude Code tasks in parallel, with diffs and reports for review and CI.
#[derive(Debug, Parser)]
#[command(
    name = "borg-batch",
    version,
    about,
    long_about = "Run a plan of Claude Code tasks in parallel, with diffs and reports for review \
                  and CI.\n\nA plan (YAML) lists instances — a role with its own workspace — \
                  and tasks — a prompt for one instance. Tasks of one instance run in order, \
                  instances run in parallel, `needs` are respected. Each task's file changes \
                  are reported as diffs.",
    after_long_help = EXAMPLES,
    after_help = "See `borg-batch --help` for examples, exit codes and the environment.",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Sub>,
    #[command(flatten)]
    run: Option<RunArgs>,
}

#[derive(Debug, Subcommand)]
enum Sub {
    /// Run a plan (the default: `borg-batch PLAN` is `borg-batch run PLAN`).
    Run(RunArgs),
    /// Check a plan; print nothing but problems; exit 0 (good) or 2 (problems).
    Validate {
        /// The plan file, e.g. plans/feature.yaml.
        plan: PathBuf,
    },
    /// Render a finished run's report again, byte-identical to the run's own.
    Report {
        /// The run directory, e.g. runs/feature-auth/latest; runs/feature-auth means its
        /// latest run.
        run_dir: PathBuf,
        /// Which report to render [default: the terminal summary].
        #[arg(long, value_enum)]
        format: Option<FormatArg>,
        /// Write to FILE instead of standard output.
        #[arg(short = 'o', long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Colour the terminal summary: auto (a terminal, unless NO_COLOR is set;
        /// CLICOLOR_FORCE forces it), always, never.
        #[arg(long, value_enum, value_name = "WHEN", default_value = "auto")]
        color: ColorArg,
    },
    /// Remove a plan's old runs and the temp files of killed runs (never the latest run, never
    /// a run in progress, never through a symlink); print what was freed, in bytes.
    Clean {
        /// The plan file, e.g. plans/feature.yaml.
        plan: PathBuf,
        /// Remove runs started longer ago than DUR, e.g. `7d` is written `168h`.
        #[arg(long, value_name = "DUR", value_parser = parse_duration)]
        older_than: Option<Duration>,
        /// Keep the newest N runs.
        #[arg(long, value_name = "N")]
        keep: Option<usize>,
        /// Also remove the plan's workspaces (<workspaces>/<plan>/).
        #[arg(long)]
        workspaces: bool,
        /// List what would be removed; remove nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Join the run directories of a plan's shards into one run directory whose reports
    /// hold every task once; runs/<plan>/latest then points at it.
    Merge {
        /// The shards' run directories, e.g. shards/1 shards/2 shards/3.
        #[arg(required = true, value_name = "RUN_DIR")]
        inputs: Vec<PathBuf>,
        /// The merged run directory, e.g. runs/feature-auth/merged.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FormatArg {
    Md,
    Json,
    Junit,
    Html,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ColorArg {
    Auto,
    Always,
    Never,
}

impl From<ColorArg> for ColorChoice {
    fn from(c: ColorArg) -> ColorChoice {
        match c {
            ColorArg::Auto => ColorChoice::Auto,
            ColorArg::Always => ColorChoice::Always,
            ColorArg::Never => ColorChoice::Never,
        }
    }
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The plan file, e.g. plans/feature.yaml.
    plan: PathBuf,

    /// Tasks at once [default: plan `jobs`, else the number of instances, at most 8].
    /// Example: `-j 4`.
    #[arg(short, long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    jobs: Option<u16>,

    /// The run directory [default: runs/<plan name>/<YYYYmmdd-HHMMSS>-<8 hex>/].
    /// Example: `--out /tmp/run1`.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,

    /// Where instance workspaces live [default: plan `workspaces`, else $WORKSPACES_DIR,
    /// else ./workspaces]. Example: `--workspaces /tmp/ws`.
    #[arg(long, value_name = "DIR")]
    workspaces: Option<PathBuf>,

    /// Default task timeout, for tasks that set none: 500ms, 90s, 5m, 1h30m
    /// [default: plan `timeout`, else $TASK_TIMEOUT ms, else 5m]. Example: `--timeout 20m`.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    timeout: Option<Duration>,

    /// Run only this task (repeatable), plus each of its needs whose latest outcome is not
    /// `passed`. Example: `--only auth --only tests`.
    #[arg(long, value_name = "ID")]
    only: Vec<String>,

    /// Run every task whose latest outcome (in runs/<plan name>/) is not `passed`, and
    /// nothing else. Works after a killed run too.
    #[arg(long, conflicts_with = "only")]
    rerun_failed: bool,

    /// Recreate this plan's instance workspaces from their templates and forget their agent
    /// sessions first. Other instances' workspaces are left alone.
    #[arg(long)]
    fresh: bool,

    /// Print the schedule and each agent command line; spawn nothing, write nothing.
    #[arg(long)]
    dry_run: bool,

    /// Start no new task once the run's reported cost reaches USD; the rest are `skipped`.
    /// Example: `--max-cost 5`.
    #[arg(long, value_name = "USD", value_parser = parse_cost)]
    max_cost: Option<f64>,

    /// Run shard K (1-based) of N: whole groups of instances connected by `needs`, by a
    /// stable hash of each group's name (`slice:K/N`: dealt out in file order; `auto`: from
    /// GitLab, CircleCI, Buildkite or a Kubernetes Indexed Job). Example: `--shard 2/5`.
    #[arg(long, value_name = "K/N|auto", value_parser = borg_batch::shard::parse)]
    shard: Option<borg_batch::shard::ShardSpec>,

    /// Print only the final summary.
    #[arg(short, long, conflicts_with = "verbose")]
    quiet: bool,

    /// Print every attempt's start and end, each check's start, failure output in full,
    /// and borg-batch's own info log lines.
    #[arg(short, long)]
    verbose: bool,

    /// Colour labels and counts: auto (a terminal, unless NO_COLOR is set; CLICOLOR_FORCE
    /// forces it), always, never.
    #[arg(long, value_enum, value_name = "WHEN", default_value = "auto")]
    color: ColorArg,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    borg_batch::plan::parse_duration(text)
}

fn parse_cost(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("`{text}` is not an amount of dollars, e.g. 2.50")),
    }
}

impl Cli {
    pub fn into_command(self) -> Command {
        let run = |a: RunArgs| {
            Command::Run(RunOptions {
                plan: a.plan,
                jobs: a.jobs.map(usize::from),
                out: a.out,
                workspaces: a.workspaces,
                timeout: a.timeout,
                only: a.only,
                rerun_failed: a.rerun_failed,
                fresh: a.fresh,
                dry_run: a.dry_run,
                max_cost: a.max_cost,
                shard: a.shard,
                progress: if a.quiet {
                    Progress::Quiet
                } else {
                    Progress::Auto
                },
                verbose: a.verbose,
                color: a.color.into(),
            })
        };
        match (self.command, self.run) {
            (Some(Sub::Run(a)), _) | (None, Some(a)) => run(a),
            (Some(Sub::Validate { plan }), _) => Command::Validate { plan },
            (
                Some(Sub::Report {
                    run_dir,
                    format,
                    output,
                    color,
                }),
                _,
            ) => Command::Report {
                run_dir,
                format: format.map(|f| match f {
                    FormatArg::Md => Format::Md,
                    FormatArg::Json => Format::Json,
                    FormatArg::Junit => Format::Junit,
                    FormatArg::Html => Format::Html,
                }),
                output,
                color: color.into(),
            },
            (Some(Sub::Merge { inputs, out }), _) => Command::Merge { inputs, out },
            (
                Some(Sub::Clean {
                    plan,
                    older_than,
                    keep,
                    workspaces,
                    dry_run,
                }),
                _,
            ) => Command::Clean(borg_batch::clean::CleanOptions {
                plan,
                older_than,
                keep,
                workspaces,
                dry_run,
            }),
            (None, None) => unreachable!("clap requires a plan or a subcommand"),
        }
    }
}
