//! An instance's workspace (SPEC.md "Workspaces"):
//!
//! ```text
//! <workspaces>/<plan name>/
//!   .borg/objects/     the content store shared by the plan's instances
//!   <instance>/
//!     session.md       role context, then a "## Task: <time>" section per task
//!     project-files/   the agent's working directory; the only thing snapshotted
//!     logs/            a line per attempt
//!     state/           the runner's own: session id, snapshot cache, lock, agent config
//! ```
//!
//! Each plan has its own folder, so two plans with an instance of the same name never share
//! files or sessions. The plan-level `.borg/` can never be an instance (names never start
//! with a dot). Writes only inside `<workspaces>/<plan name>/`. `--fresh` removes only the
//! plan's own instances, and never follows a symlink while removing.

pub mod base;
pub mod integrity;
pub mod lock;
pub mod roles;
pub mod template;

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::fsutil;
use crate::report::Tokens;

pub use lock::InstanceLock;

const SESSION_MD: &str = "session.md";
const PROJECT_FILES: &str = "project-files";
const SESSION_ID: &str = "session_id";
const SESSION_COSTS: &str = "session_costs.json";
const SESSION_TOKENS: &str = "session_tokens.json";
const TASK_HEADING: &str = "## Task: ";
/// How much of session.md's start is searched for the first task heading.
const HEAD_SCAN: u64 = 1 << 20;

/// The plan-level folder of the runner's own state, beside the instances.
pub const PLAN_STATE: &str = ".borg";

/// The paths of one instance's workspace.
#[derive(Debug, Clone)]
pub struct Workspace {
    pub name: String,
    /// `<workspaces>/<plan name>/<instance>/`.
    pub root: PathBuf,
    /// `<workspaces>/<plan name>/`.
    pub plan_root: PathBuf,
}

impl Workspace {
    /// The workspace of `instance` of plan `plan` under the workspaces folder.
    pub fn new(workspaces: &Path, plan: &str, instance: &str) -> Workspace {
        let plan_root = workspaces.join(plan);
        Workspace {
            name: instance.to_string(),
            root: plan_root.join(instance),
            plan_root,
        }
    }

    /// The plan's own state folder, `<workspaces>/<plan name>/.borg/`.
    pub fn plan_state(&self) -> PathBuf {
        self.plan_root.join(PLAN_STATE)
    }

    pub fn project_files(&self) -> PathBuf {
        self.root.join(PROJECT_FILES)
    }

    pub fn session_md(&self) -> PathBuf {
        self.root.join(SESSION_MD)
    }

    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }

    pub fn state(&self) -> PathBuf {
        self.root.join("state")
    }

    /// The content-addressed snapshot store, shared by the plan's instances (so work
    /// handed from one to another is stored once).
    pub fn objects(&self) -> PathBuf {
        self.plan_state().join("objects")
    }

    /// The last snapshot of `project-files/`, the next snapshot's cache.
    pub fn snapshot_cache(&self) -> PathBuf {
        self.state().join("snapshot.bin")
    }

    /// The per-instance Claude Code configuration folder (`CLAUDE_CONFIG_DIR`).
    pub fn agent_config(&self) -> PathBuf {
        self.state().join("claude")
    }

    /// Removes, without following, whatever the agent put where the runner keeps its own
    /// folders and files (see [`integrity`]); returns a note per repair.
    pub fn repair(&self) -> Result<Vec<String>> {
        integrity::repair(self)
    }

    /// Creates `state/` and takes the instance lock.
    pub fn lock(&self) -> Result<InstanceLock> {
        fsutil::create_dir_all(&self.state())?;
        InstanceLock::acquire(&self.name, &self.state())
    }

    /// For `--fresh`: removes everything of the workspace but its lock (project files,
    /// session.md, logs, session id, agent config). Call with the lock held — and only
    /// once every instance of the run is locked, so a refused run destroys nothing.
    pub fn clear(&self, lock: &InstanceLock) -> Result<()> {
        let keep = lock.path();
        for dir in [&self.root, &self.state()] {
            let entries = fs::read_dir(dir).map_err(|e| Error::io("read folder", dir, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| Error::io("read folder", dir, e))?;
                let path = entry.path();
                if path == keep || path == self.state() {
                    continue;
                }
                // symlink_metadata: a symlink is removed itself, never what it points at.
                let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
                let removed = if is_dir {
                    fs::remove_dir_all(&path)
                } else {
                    fs::remove_file(&path)
                };
                removed.map_err(|e| Error::io("remove", &path, e))?;
            }
        }
        Ok(())
    }

    /// Creates what is missing: `project-files/` (from `template` when new), `logs/`, and
    /// `session.md` starting with the role context. Returns notes on skipped template files.
    /// Folders in `skip` (the runs), like the workspaces folder, are left out of a template
    /// that holds them.
    pub fn prepare(
        &self,
        template: Option<&Path>,
        role_context: &str,
        skip: &[&Path],
    ) -> Result<Vec<String>> {
        let project = self.project_files();
        let mut notes = Vec::new();
        if !project.exists() {
            fsutil::create_dir_all(&project)?;
            if let Some(template) = template {
                let workspaces = self.plan_root.parent().unwrap_or(&self.plan_root);
                let mut skip = skip.to_vec();
                skip.push(workspaces);
                notes = template::copy(template, &project, &skip)
                    .map_err(|e| Error::io("copy template into", project.clone(), e))?;
            }
        }
        fsutil::create_dir_all(&self.logs())?;
        fsutil::create_dir_all(&self.objects())?;
        let session = self.session_md();
        if !session.exists() {
            let text = format!("# Session: {}\n\n{}\n", self.name, role_context.trim_end());
            fs::write(&session, text).map_err(|e| Error::io("write", &session, e))?;
        }
        Ok(notes)
    }

    /// Appends a `## Task: <time>` section with the task's prompt.
    pub fn begin_task(&self, time: &str, task_id: &str, prompt: &str) -> Result<()> {
        self.append(
            &self.session_md(),
            &format!(
                "\n{TASK_HEADING}{time}\n\nTask `{task_id}`:\n\n{}\n",
                prompt.trim_end()
            ),
        )
    }

    /// Appends the task's one-line outcome to its section.
    pub fn end_task(&self, outcome: &str) -> Result<()> {
        self.append(&self.session_md(), &format!("\nOutcome: {outcome}\n"))
    }

    /// Appends a line to the instance's history log (`logs/history.log`).
    pub fn log_attempt(&self, line: &str) -> Result<()> {
        self.append(&self.logs().join("history.log"), &format!("{line}\n"))
    }

    fn append(&self, path: &Path, text: &str) -> Result<()> {
        // Never through a link or into a FIFO the agent planted (see `integrity`).
        let mut file = fsutil::open_append(path).map_err(|e| Error::io("open", path, e))?;
        file.write_all(text.as_bytes())
            .map_err(|e| Error::io("write", path, e))
    }

    /// The task history of session.md (its task sections), at most the last `max` bytes,
    /// cut at a line start.
    pub fn history(&self, max: usize) -> String {
        // Bounded reads: the role context's end (first heading) is near the start, and only
        // the last `max` bytes are kept, however large the agent made the file.
        let Ok(mut file) = fsutil::open_regular(&self.session_md()) else {
            return String::new();
        };
        let mut head = Vec::new();
        if (&mut file).take(HEAD_SCAN).read_to_end(&mut head).is_err() {
            return String::new();
        }
        let head = String::from_utf8_lossy(&head);
        let Some(first) = head.find(&format!("\n{TASK_HEADING}")) else {
            return String::new();
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let from = (first as u64 + 1).max(len.saturating_sub(max as u64));
        let mut bytes = Vec::new();
        if file.seek(SeekFrom::Start(from)).is_err()
            || file.take(max as u64).read_to_end(&mut bytes).is_err()
        {
            return String::new();
        }
        let text = String::from_utf8_lossy(&bytes);
        if from == first as u64 + 1 {
            return text.into_owned();
        }
        // Cut: start at the first whole line.
        match text.find('\n') {
            Some(nl) => text[nl + 1..].to_string(),
            None => String::new(),
        }
    }

    /// The agent session to resume, if one was recorded.
    pub fn session_id(&self) -> Option<String> {
        let text = fsutil::read_small(&self.state().join(SESSION_ID), 4096).ok()?;
        let id = text.trim();
        (!id.is_empty()).then(|| id.to_string())
    }

    pub fn set_session_id(&self, id: &str) -> Result<()> {
        fsutil::write_atomic(&self.state().join(SESSION_ID), id.as_bytes())
    }

    /// The cumulative cost the CLI last reported for session `id` (0 if none). The CLI's
    /// `total_cost_usd` for a resumed session includes the earlier runs of that session.
    pub fn session_cost(&self, id: &str) -> f64 {
        self.session_costs().get(id).copied().unwrap_or(0.0)
    }

    pub fn set_session_cost(&self, id: &str, total: f64) -> Result<()> {
        let mut costs = self.session_costs();
        costs.insert(id.to_string(), total);
        let text = serde_json::to_string(&costs).expect("costs serialize");
        fsutil::write_atomic(&self.state().join(SESSION_COSTS), text.as_bytes())
    }

    fn session_costs(&self) -> std::collections::BTreeMap<String, f64> {
        fsutil::read_small(&self.state().join(SESSION_COSTS), 1 << 20)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    /// The cumulative tokens the CLI last reported for session `id` (none: zero).
    pub fn session_tokens(&self, id: &str) -> Tokens {
        self.session_token_map()
            .get(id)
            .copied()
            .unwrap_or_default()
    }

    pub fn set_session_tokens(&self, id: &str, total: Tokens) -> Result<()> {
        let mut map = self.session_token_map();
        map.insert(id.to_string(), total);
        let text = serde_json::to_string(&map).expect("tokens serialize");
        fsutil::write_atomic(&self.state().join(SESSION_TOKENS), text.as_bytes())
    }

    fn session_token_map(&self) -> std::collections::BTreeMap<String, Tokens> {
        fsutil::read_small(&self.state().join(SESSION_TOKENS), 1 << 20)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    pub fn forget_session(&self) {
        let _ = fs::remove_file(self.state().join(SESSION_ID));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_md_has_role_context_then_task_sections() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::new(dir.path(), "p", "dev");
        let _lock = ws.lock().unwrap();
        ws.prepare(None, "You are the developer.", &[]).unwrap();
        ws.begin_task("2026-01-01T00:00:00Z", "a", "Write a.txt")
            .unwrap();
        ws.end_task("passed").unwrap();
        ws.begin_task("2026-01-01T00:01:00Z", "b", "Write b.txt")
            .unwrap();
        let text = fs::read_to_string(ws.session_md()).unwrap();
        assert!(text.starts_with("# Session: dev\n\nYou are the developer.\n"));
        assert_eq!(text.matches("## Task: ").count(), 2);
        let history = ws.history(64 * 1024);
        assert!(history.starts_with("## Task: 2026-01-01T00:00:00Z"));
        assert!(!history.contains("You are the developer."));
        assert!(ws.history(30).len() <= 30);
    }

    #[test]
    fn a_second_lock_on_the_same_instance_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::new(dir.path(), "p", "dev");
        let _held = ws.lock().unwrap();
        let err = ws.lock().unwrap_err();
        assert!(
            err.to_string().contains("in use by another borg-batch run"),
            "{err}"
        );
    }

    #[test]
    fn fresh_clears_everything_but_the_lock_without_following_links() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("keep.txt"), "x").unwrap();
        let ws = Workspace::new(dir.path(), "p", "dev");
        drop(ws.lock().unwrap());
        ws.prepare(None, "ctx", &[]).unwrap();
        ws.set_session_id("abc").unwrap();
        std::os::unix::fs::symlink(outside.path(), ws.project_files().join("link")).unwrap();
        let lock = ws.lock().unwrap();
        ws.clear(&lock).unwrap();
        drop(lock);
        assert!(!ws.project_files().exists());
        assert!(ws.session_id().is_none());
        assert!(outside.path().join("keep.txt").exists());
    }
}
