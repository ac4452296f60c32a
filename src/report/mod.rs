//! Reports: the run's outcome rendered for its readers. `report.json` is the model; the
//! Markdown, JUnit and HTML renderings are made from it alone, so they can be rendered
//! again later byte-identical (`borg-batch report`).

pub mod html;
pub mod junit;
pub mod markdown;
mod model;
pub mod progress;
pub mod summary;
pub mod term;
pub mod transcript;

pub use model::{
    AttemptReport, Change, ChangeKind, InstanceReport, Report, Status, Summary, TaskReport,
    TestCounts, TestFailure, Tokens,
};

use std::path::Path;

use crate::config::Format;
use crate::error::{Error, Result};

/// Renders `report` in `format`. Pure: the same report gives the same bytes.
pub fn render(report: &Report, format: Format) -> String {
    match format {
        Format::Json => {
            let mut out = serde_json::to_string_pretty(report).expect("report serializes");
            out.push('\n');
            out
        }
        Format::Md => markdown::render(report),
        Format::Junit => junit::render(report),
        Format::Html => html::render(report),
    }
}

/// Renders `report` in `format` with what the run directory adds (the HTML page shows
/// the transcripts in `logs/`): what a run writes and `borg-batch report` renders again.
pub fn render_in(report: &Report, format: Format, run_dir: &Path) -> String {
    match format {
        Format::Html => html::render_with(report, &html::Extras::load(report, run_dir)),
        other => render(report, other),
    }
}

/// Reads `report.json` from a run directory.
pub fn read(run_dir: &Path) -> Result<Report> {
    let path = run_dir.join("report.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::BadRun {
        path: run_dir.to_path_buf(),
        reason: format!("cannot read `{}`: {e}", path.display()),
    })?;
    serde_json::from_str(&text).map_err(|e| Error::BadRun {
        path: run_dir.to_path_buf(),
        reason: format!("`{}` is not a borg-batch report: {e}", path.display()),
    })
}

/// `borg-batch report`: renders a finished run again, to `output` or standard output.
/// `run_dir` may be `runs/<plan>`, meaning its latest run; no `format` is the terminal
/// summary. An `output` whose folder does not exist is a usage error (nothing written).
pub fn rerender(
    run_dir: &Path,
    format: Option<Format>,
    output: Option<&Path>,
    color: term::ColorChoice,
) -> Result<i32> {
    let run_dir = resolve_run_dir(run_dir);
    if let Some(path) = output {
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
        if parent.is_some_and(|p| !p.is_dir()) {
            return Err(Error::Usage(format!(
                "`-o {}`: the folder `{}` does not exist",
                path.display(),
                parent.unwrap_or(Path::new(".")).display()
            )));
        }
    }
    let report = read(&run_dir)?;
    let text = match format {
        Some(format) => render_in(&report, format, &run_dir),
        None => {
            use std::io::IsTerminal;
            let paint = term::Paint {
                on: output.is_none()
                    && color.resolve(std::io::stdout().is_terminal(), &|n| std::env::var(n).ok()),
            };
            summary::final_summary(&report, &run_dir, paint)
        }
    };
    match output {
        Some(path) => crate::fsutil::write_atomic(path, text.as_bytes())?,
        None => {
            use std::io::Write;
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
                .map_err(|e| Error::io("write", "standard output", e))?;
        }
    }
    Ok(crate::error::exit::SUCCESS)
}

/// `runs/<plan>` (a folder with a `latest` link and no report of its own) means its
/// latest run.
fn resolve_run_dir(run_dir: &Path) -> std::path::PathBuf {
    let latest = run_dir.join("latest");
    if !run_dir.join("report.json").exists() && latest.join("report.json").exists() {
        latest
    } else {
        run_dir.to_path_buf()
    }
}
