//! Reports: the run's outcome rendered for its readers. `report.json` is the model; the
//! Markdown, JUnit and HTML renderings are made from it alone, so they can be rendered
//! again later byte-identical (`borg-batch report`).

pub mod html;
pub mod junit;
pub mod markdown;
mod model;
pub mod progress;
pub mod summary;

pub use model::{
    AttemptReport, Change, ChangeKind, Report, Status, Summary, TaskReport, TestCounts, TestFailure,
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
pub fn rerender(run_dir: &Path, format: Format, output: Option<&Path>) -> Result<i32> {
    let report = read(run_dir)?;
    let text = render(&report, format);
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
