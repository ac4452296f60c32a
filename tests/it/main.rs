//! The one integration-test binary: every test drives the built `borg-batch` binary (or the
//! library) on temporary folders with real child processes.

mod support;

mod agents;
mod claude;
mod claude_run;
mod patches;
mod plan_errors;
mod process;
mod report_snapshots;
mod reports;
mod run;
mod scale;
mod tampering;
mod unprivileged;
