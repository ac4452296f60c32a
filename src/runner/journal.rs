//! The journal reporter: one line per finished attempt and per finished task, appended
//! as it happens, so a run killed with `kill -9` still tells the next `--rerun-failed`
//! what finished; fsynced once when the run finishes (see [`Journal`] for why that is
//! enough).

use std::path::Path;

use crate::error::Result;
use crate::history::{Journal, JournalLine};

use super::events::{Event, Reporter};

#[derive(Debug)]
pub struct JournalReporter {
    journal: Journal,
    run_id: String,
}

impl JournalReporter {
    pub fn create(run_dir: &Path) -> Result<JournalReporter> {
        Ok(JournalReporter {
            journal: Journal::create(run_dir)?,
            run_id: String::new(),
        })
    }
}

impl Reporter for JournalReporter {
    fn event(&mut self, event: &Event<'_>) -> Result<()> {
        match *event {
            Event::RunStarted { run_id, .. } => {
                self.run_id = run_id.to_string();
                Ok(())
            }
            Event::AttemptFinished {
                task,
                instance,
                attempt,
            } => self.journal.append(&JournalLine::Attempt {
                run_id: self.run_id.clone(),
                task: task.to_string(),
                instance: instance.to_string(),
                attempt: attempt.clone(),
            }),
            Event::TaskFinished { task } => self.journal.append(&JournalLine::Task {
                run_id: self.run_id.clone(),
                report: Box::new(task.clone()),
            }),
            Event::RunFinished { .. } => self.journal.sync(),
            Event::AttemptStarted { .. } | Event::CheckStarted { .. } => Ok(()),
        }
    }
}
