//! borg-batch runs a declarative plan of coding-agent tasks (Claude Code by default) in
//! parallel, each in its instance's isolated workspace, and reports what every task
//! changed, what the agent said and whether the checks passed.
//!
//! The modules follow the data's way through the program:
//! [`plan`] (load, validate) → [`config`] (command line, environment, plan merged) →
//! [`schedule`] (which task may run when) → [`runner`] (dispatch, attempts, events) →
//! [`exec`] (spawn, wait, capture, kill) with [`agent`] (command line, result line) →
//! [`snapshot`] and [`diff`] (what changed) → [`report`] (json, md, junit, html) and
//! [`history`] (earlier runs, `--rerun-failed`).
//!
//! The core never sees clap: `main.rs` turns the command line into a [`config::Command`].

pub mod agent;
pub mod clean;
pub mod config;
pub mod diff;
pub mod error;
pub mod exec;
pub mod fsutil;
pub mod history;
pub mod merge;
pub mod plan;
pub mod report;
pub mod runner;
pub mod schedule;
pub mod shard;
pub mod snapshot;
pub mod workspace;

pub use config::Command;
pub use error::{Error, Result};

/// Carries out `command` and returns the process exit code (see [`error::exit`]).
pub fn run(command: Command) -> Result<i32> {
    match command {
        Command::Validate { plan } => {
            let plan = plan::load(&plan)?;
            config::preflight_paths(&plan)?;
            Ok(error::exit::SUCCESS)
        }
        Command::Report {
            run_dir,
            format,
            output,
            color,
        } => report::rerender(&run_dir, format, output.as_deref(), color),
        Command::Run(options) => runner::run(&options),
        Command::Merge { inputs, out } => merge::merge(&inputs, &out),
        Command::Clean(options) => clean::clean(&options),
    }
}
