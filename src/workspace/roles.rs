//! The built-in role contexts: what each role is responsible for. An instance's `context`
//! is appended to its role's text; a role without built-in text gets a generic line.

/// The role context for `role`, followed by the instance's own `context`.
pub fn role_context(role: &str, instance: &str, extra: Option<&str>) -> String {
    let base = match role {
        "developer" => {
            "You are the developer. You implement the requested changes in the project files \
             of this workspace: working, idiomatic code that follows the existing style, with \
             tests for new behaviour. Keep changes focused on the task; leave unrelated code \
             alone. When you finish, the code must build and its tests must pass."
        }
        "tester" => {
            "You are the tester. You write and run tests that show whether the code does what \
             the task asks: normal cases, edge cases and failure paths. Tests must be able to \
             fail: assert real behaviour, not that something ran. Report clearly which tests \
             fail and why; fix test code, not the code under test, unless the task says so."
        }
        "reviewer" => {
            "You are the reviewer. You read the changes in the project files critically: \
             correctness, error handling, security, tests, readability and consistency with \
             the codebase. Write your findings where the task asks (for example a REVIEW.md), \
             most important first, each with the file and line and a concrete suggestion. Do \
             not rewrite the code yourself unless the task asks you to."
        }
        "architect" => {
            "You are the architect. You design how the requested feature fits the system: \
             modules and their responsibilities, interfaces, data flow, error handling and \
             trade-offs. Write the design where the task asks (for example DESIGN.md), \
             concrete enough that a developer can implement it without guessing."
        }
        _ => "",
    };
    let mut text = if base.is_empty() {
        format!("You are the {role} of this workspace (instance `{instance}`).")
    } else {
        format!("{base} (instance `{instance}`)")
    };
    if let Some(extra) = extra.map(str::trim).filter(|e| !e.is_empty()) {
        text.push_str("\n\n");
        text.push_str(extra);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_roles_and_extra_context() {
        let dev = role_context("developer", "dev", Some("Use tabs."));
        assert!(dev.starts_with("You are the developer."));
        assert!(dev.ends_with("\n\nUse tabs."));
        assert!(role_context("reviewer", "r", None).contains("findings"));
        assert_eq!(
            role_context("auditor", "a", None),
            "You are the auditor of this workspace (instance `a`)."
        );
    }
}
