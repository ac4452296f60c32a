//! How text looks on a terminal: whether to colour (`--color`, `NO_COLOR`,
//! `CLICOLOR_FORCE`), the coloured status labels, and the GitHub Actions workflow commands
//! (`::error`, `::group::`) for failed tasks.
//!
//! Presentation only: the choice is made once from the command line and the environment
//! and passed down as a [`Paint`]; nothing here reads a report file or changes a report.
//! It must never colour what goes into a file (report.md, junit.xml, logs).

use std::io::IsTerminal;

/// `--color`: `auto` colours a terminal unless `NO_COLOR` is set (or `CLICOLOR_FORCE`
/// forces it elsewhere); `always` and `never` override both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColorChoice {
    #[default]
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    /// Whether to colour a stream that `is_terminal` or not, given the environment lookup
    /// `var` (so the rule can be tested without touching the process environment).
    pub fn resolve(self, is_terminal: bool, var: &dyn Fn(&str) -> Option<String>) -> bool {
        let set = |name: &str| var(name).is_some_and(|v| !v.is_empty());
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto if set("NO_COLOR") => false,
            ColorChoice::Auto
                if set("CLICOLOR_FORCE") && var("CLICOLOR_FORCE").as_deref() != Some("0") =>
            {
                true
            }
            ColorChoice::Auto => is_terminal && var("TERM").as_deref() != Some("dumb"),
        }
    }

    /// The choice for standard error in this process's environment.
    pub fn for_stderr(self) -> Paint {
        Paint {
            on: self.resolve(std::io::stderr().is_terminal(), &|n| std::env::var(n).ok()),
        }
    }
}

/// Whether output is coloured, and the few styles the runner uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Paint {
    pub on: bool,
}

impl Paint {
    pub const PLAIN: Paint = Paint { on: false };

    fn wrap(self, code: &str, text: &str) -> String {
        if self.on {
            format!("\u{1b}[{code}m{text}\u{1b}[0m")
        } else {
            text.to_string()
        }
    }

    pub fn green(self, text: &str) -> String {
        self.wrap("32", text)
    }

    pub fn red(self, text: &str) -> String {
        self.wrap("31", text)
    }

    pub fn yellow(self, text: &str) -> String {
        self.wrap("33", text)
    }

    pub fn dim(self, text: &str) -> String {
        self.wrap("2", text)
    }

    pub fn bold(self, text: &str) -> String {
        self.wrap("1", text)
    }

    /// A progress label (`PASS`, `FAIL`, …) padded to the label column, then coloured, so
    /// coloured and plain lines line up alike.
    pub fn label(self, label: &str) -> String {
        let padded = format!("{label:<7}");
        match label {
            "PASS" => self.wrap("1;32", &padded),
            "FAIL" | "ERROR" => self.wrap("1;31", &padded),
            "TIMEOUT" | "INTR" | "WARN" | "RETRY" => self.wrap("1;33", &padded),
            "SKIP" | "DEBUG" | "TRACE" => self.wrap("2", &padded),
            _ => self.wrap("1", &padded),
        }
    }
}

/// `GITHUB_ACTIONS=true`: the runner adds workflow commands for failed tasks.
pub fn github_actions() -> bool {
    std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true")
}

/// Escapes a workflow command's message (`%`, CR, LF), as the Actions toolkit does.
pub fn gha_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a workflow command's property value (`title=…`): also `:` and `,`.
pub fn gha_property(text: &str) -> String {
    gha_data(text).replace(':', "%3A").replace(',', "%2C")
}

/// The workflow commands for one task that did not pass: an `::error` annotation titled
/// with the task, then its failure output folded in a `::group::`. Lines of the output that
/// start with `::` are defused so an agent cannot issue workflow commands of its own.
pub fn gha_failure(
    task: &str,
    instance: &str,
    status: &str,
    error: &str,
    output: Option<&str>,
) -> String {
    let mut out = format!(
        "::error title={}::{}\n",
        gha_property(&format!("borg-batch: {instance}/{task} {status}")),
        gha_data(error)
    );
    if let Some(output) = output.filter(|o| !o.trim().is_empty()) {
        out.push_str(&format!("::group::{instance}/{task}: failure output\n"));
        for line in output.lines() {
            if line.trim_start().starts_with("::") {
                out.push(' ');
            }
            out.push_str(line);
            out.push('\n');
        }
        out.push_str("::endgroup::\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn color_follows_flag_then_no_color_then_clicolor_force_then_terminal() {
        let auto = ColorChoice::Auto;
        assert!(auto.resolve(true, &env(&[])));
        assert!(!auto.resolve(false, &env(&[])));
        assert!(!auto.resolve(true, &env(&[("NO_COLOR", "1")])));
        assert!(
            auto.resolve(true, &env(&[("NO_COLOR", "")])),
            "empty NO_COLOR is unset"
        );
        assert!(auto.resolve(false, &env(&[("CLICOLOR_FORCE", "1")])));
        assert!(!auto.resolve(false, &env(&[("CLICOLOR_FORCE", "0")])));
        assert!(!auto.resolve(true, &env(&[("NO_COLOR", "1"), ("CLICOLOR_FORCE", "1")])));
        assert!(!auto.resolve(true, &env(&[("TERM", "dumb")])));
        assert!(ColorChoice::Always.resolve(false, &env(&[("NO_COLOR", "1")])));
        assert!(!ColorChoice::Never.resolve(true, &env(&[("CLICOLOR_FORCE", "1")])));
    }

    #[test]
    fn labels_are_padded_then_coloured() {
        assert_eq!(Paint::PLAIN.label("PASS"), "PASS   ");
        assert_eq!(
            Paint { on: true }.label("FAIL"),
            "\u{1b}[1;31mFAIL   \u{1b}[0m"
        );
    }

    #[test]
    fn workflow_commands_are_escaped_and_output_cannot_issue_its_own() {
        let text = gha_failure(
            "auth",
            "dev",
            "failed",
            "50% done\nthen: broke",
            Some("a\n::error::forged\n"),
        );
        assert_eq!(
            text,
            "::error title=borg-batch%3A dev/auth failed::50%25 done%0Athen: broke\n\
             ::group::dev/auth: failure output\na\n ::error::forged\n::endgroup::\n"
        );
        assert!(!gha_failure("t", "i", "failed", "e", Some("  \n")).contains("::group::"));
    }
}
