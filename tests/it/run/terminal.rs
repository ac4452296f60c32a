//! What a user reads in a terminal and a CI log: the final summary's claims (carried over,
//! cost and count of the same set, the page to open), `--rerun-failed` with nothing to
//! rerun, `--color`/`NO_COLOR`, `GITHUB_ACTIONS` workflow commands, and `borg-batch report`
//! on `runs/<plan>`.

use crate::support::{Project, output_text};

use super::CHAIN;

const FAILING: &str = r#"
name: red
agent: {kind: generic, command: "{agent}"}
instances:
  - {name: x, role: developer}
tasks:
  - {id: good, instance: x, prompt: "@write a.txt hello"}
  - id: bad
    instance: x
    prompt: "@write b.txt world"
    check: "echo 'assertion failed: 1 == 2'; exit 1"
"#;

#[test]
fn rerun_failed_with_nothing_to_rerun_says_so_exits_0_and_makes_no_run() {
    let p = Project::new();
    p.plan(CHAIN);
    let out = p.run(&["plan.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let runs = || std::fs::read_dir(p.join("runs/chain")).unwrap().count();
    let before = runs();
    let out = p.run(&["plan.yaml", "--rerun-failed"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nothing to rerun"),
        "{}",
        output_text(&out)
    );
    assert_eq!(runs(), before, "a run directory was made");
}

#[test]
fn a_full_run_names_no_carried_over_run_and_the_summary_names_the_page() {
    let p = Project::new();
    p.plan(CHAIN);
    for _ in 0..2 {
        let out = p.run(&["plan.yaml"]);
        assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    }
    let r = p.report("chain");
    assert!(r["carried_from"].is_null(), "nothing was carried over");
    let err =
        String::from_utf8_lossy(&p.run(&["plan.yaml", "--only", "other"]).stderr).into_owned();
    assert!(
        err.contains("(3 carried over from an earlier run)"),
        "{err}"
    );
    assert!(err.contains("this run: 1 task in"), "{err}");
    assert!(
        err.contains("review: runs/chain/latest/report.html"),
        "{err}"
    );
    assert!(err.contains("changed: x 1 file · y 1 file"), "{err}");
    assert!(!p.report("chain")["carried_from"].is_null());
}

#[test]
fn failure_output_and_workflow_commands_in_github_actions() {
    let p = Project::new();
    p.plan(FAILING);
    let out = p
        .command()
        .args(["plan.yaml", "--color", "always"])
        .env("GITHUB_ACTIONS", "true")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("::error title=borg-batch%3A x/bad failed::"),
        "{err}"
    );
    // The failure output (issue 10 fills it) is folded in a group under the annotation.
    let r = p.report("red");
    if crate::support::task(&r, "bad")["failure_output"].is_string() {
        assert!(err.contains("::group::x/bad: failure output"), "{err}");
        assert!(err.contains("assertion failed: 1 == 2\n"), "{err}");
    }
    assert!(err.contains("\u{1b}[1;31mFAIL"), "coloured label: {err}");
}

#[test]
fn no_color_and_never_turn_colour_off() {
    let p = Project::new();
    p.plan(FAILING);
    for (args, env) in [
        (
            vec!["plan.yaml", "--color", "never"],
            ("CLICOLOR_FORCE", "1"),
        ),
        (vec!["plan.yaml"], ("NO_COLOR", "1")),
    ] {
        let out = p.command().args(&args).env(env.0, env.1).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains('\u{1b}'), "{args:?} {env:?}: {err}");
    }
    let out = p
        .command()
        .args(["plan.yaml"])
        .env("CLICOLOR_FORCE", "1")
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains('\u{1b}'));
}

#[test]
fn report_of_a_plan_folder_is_its_latest_and_defaults_to_the_summary() {
    let p = Project::new();
    p.plan(FAILING);
    p.run(&["plan.yaml"]);
    let out = p.run(&["report", "runs/red"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("red: 2 tasks"), "{text}");
    assert!(text.contains("x/bad  failed"), "{text}");
    let out = p.run(&["report", "runs/red", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert_eq!(
        out.stdout,
        std::fs::read(p.latest("red").join("report.json")).unwrap()
    );
    // Into a folder that does not exist: the command line is wrong, exit 2.
    let out = p.run(&[
        "report",
        "runs/red",
        "--format",
        "html",
        "-o",
        "no/such/dir/r.html",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
}
