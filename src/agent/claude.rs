//! What running Claude Code needs beyond its command line: a working CLI (`--version`
//! preflight) and an isolated configuration per instance.
//!
//! Parallel CLIs writing one `~/.claude.json` corrupt it, so each instance gets its own
//! `CLAUDE_CONFIG_DIR` in `state/claude/` (sessions live there too, so `--resume` keeps
//! working across runs). The user's login travels without copying any credential into a
//! workspace: an API key or `CLAUDE_CODE_OAUTH_TOKEN` through the inherited environment, a
//! subscription login by pointing the CLI's credential store at the user's own folder.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use wait_timeout::ChildExt;

use crate::config::AgentConfig;
use crate::error::{Error, Result};
use crate::workspace::Workspace;

const VERSION_TIMEOUT: Duration = Duration::from_secs(30);

/// Sets the instance's own `CLAUDE_CONFIG_DIR` (unless `agent.env` chose one) and, when
/// no API key or token is set, lets the CLI read and refresh the user's subscription login
/// where it lives (`CLAUDE_SECURESTORAGE_CONFIG_DIR`): nothing is copied, and a token
/// refresh updates the user's own credentials.
pub fn isolate(env: &mut BTreeMap<String, OsString>, ws: &Workspace) {
    if !env.contains_key("CLAUDE_CONFIG_DIR") {
        env.insert(
            "CLAUDE_CONFIG_DIR".into(),
            ws.agent_config().into_os_string(),
        );
    }
    let has = |name: &str| {
        env.contains_key(name) || std::env::var_os(name).is_some_and(|v| !v.is_empty())
    };
    let keyed = [
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_AUTH_TOKEN",
        "CLAUDE_CODE_OAUTH_TOKEN",
    ]
    .iter()
    .any(|name| has(name));
    if keyed || has("CLAUDE_SECURESTORAGE_CONFIG_DIR") {
        return;
    }
    if let Some(dir) = user_config_dir().filter(|d| d.join(".credentials.json").is_file()) {
        env.insert(
            "CLAUDE_SECURESTORAGE_CONFIG_DIR".into(),
            dir.into_os_string(),
        );
    }
}

/// The user's own Claude Code configuration folder.
fn user_config_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("CLAUDE_CONFIG_DIR").filter(|d| !d.is_empty()) {
        // The agent runs elsewhere: a relative folder must be resolved here.
        return std::path::absolute(PathBuf::from(dir)).ok();
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".claude"))
}

/// Runs `<command> --version`; refuses to start the run when it does not answer.
pub fn check_version(agent: &AgentConfig) -> Result<()> {
    let not_working = |reason: String| Error::AgentNotFound {
        command: agent.command.clone(),
        reason,
    };
    let mut child = Command::new(&agent.program)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| not_working(format!("cannot be started: {e}")))?;
    match child.wait_timeout(VERSION_TIMEOUT) {
        Ok(Some(status)) if status.success() => Ok(()),
        Ok(Some(status)) => Err(not_working(format!("`--version` failed ({status})"))),
        Ok(None) | Err(_) => {
            let pgid = i32::try_from(child.id()).unwrap_or(0);
            crate::exec::groups::signal_group(pgid, nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait();
            Err(not_working(format!(
                "`--version` did not answer within {}s",
                VERSION_TIMEOUT.as_secs()
            )))
        }
    }
}
