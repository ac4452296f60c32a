//! `kind: generic`: any command, `<command> <args...>`, the prompt on standard input.
//!
//! Nothing is known of it but its exit code and, if it prints one, a Claude-style result
//! line (`{"type":"result",...}`), which must then say `is_error: false`. It keeps no
//! session borg-batch could continue, so the role and task history are in every prompt.

use super::claude::ResultLine;
use super::{Adapter, AgentResult, Collector, Launch};
use crate::config::AgentConfig;

/// Any command.
#[derive(Debug)]
pub struct Generic;

impl Adapter for Generic {
    fn args(&self, _agent: &AgentConfig, _launch: &Launch<'_>) -> Vec<String> {
        Vec::new()
    }

    fn collector(&self) -> Box<dyn Collector> {
        Box::new(ResultLine::default())
    }

    fn judge(&self, code: i32, result: Option<&AgentResult>) -> Option<String> {
        let failed_result = result.filter(|r| r.is_error != Some(false));
        match (code, failed_result) {
            (0, None) => None,
            (0, Some(r)) => Some(super::describe_failure(r)),
            (code, Some(r)) if r.is_error == Some(true) => Some(format!(
                "the agent exited with code {code}: {}",
                super::describe_failure(r)
            )),
            (code, _) => Some(format!("the agent exited with code {code}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_line_is_optional_but_must_not_be_an_error() {
        assert_eq!(Generic.judge(0, None), None);
        let ok = AgentResult {
            is_error: Some(false),
            ..AgentResult::default()
        };
        assert_eq!(Generic.judge(0, Some(&ok)), None);
        let bad = AgentResult {
            is_error: Some(true),
            result: Some("boom".into()),
            ..AgentResult::default()
        };
        assert!(Generic.judge(0, Some(&bad)).unwrap().contains("boom"));
        assert_eq!(
            Generic.judge(3, None).as_deref(),
            Some("the agent exited with code 3")
        );
    }
}
