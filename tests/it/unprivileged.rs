//! borg-batch run as an unprivileged user (`setpriv`, uid 65534): as root every file is
//! readable, so only here can we see that unreadable files in a template or a workspace
//! are skipped with a note instead of failing the run.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use crate::support::{Project, bin, output_text, task};

const NOBODY: u32 = 65534;

fn chown_tree(root: &std::path::Path) {
    for entry in walkdir::WalkDir::new(root) {
        let entry = entry.unwrap();
        std::os::unix::fs::lchown(entry.path(), Some(NOBODY), Some(NOBODY)).unwrap();
    }
}

#[test]
fn unreadable_files_in_a_template_and_a_workspace_are_skipped_with_a_note() {
    let p = Project::new();
    p.write("template/readme.txt", "hello\n");
    let secret = p.write("template/secret.txt", "root only\n");
    p.plan(
        r#"
name: nobody
agent: {kind: generic, command: /bin/sh, args: ["-c", "cat >/dev/null; echo made > locked.txt; chmod 000 locked.txt; echo new > open.txt"]}
instances: [{name: dev, role: developer, template: template}]
tasks: [{id: lock, instance: dev, prompt: go}]
"#,
    );
    chown_tree(p.path());
    // The secret stays root's and unreadable to anyone else.
    std::os::unix::fs::lchown(&secret, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(p.path(), std::fs::Permissions::from_mode(0o755)).unwrap();

    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(bin())
        .arg("plan.yaml")
        .current_dir(p.path())
        .env("HOME", p.path())
        .env_remove("CLAUDE_CODE_PATH")
        .env_remove("WORKSPACES_DIR")
        .env_remove("TASK_TIMEOUT")
        .output()
        .expect("setpriv (util-linux) runs");
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let r = p.report("nobody");
    let t = task(&r, "lock");
    assert_eq!(t["status"], "passed");
    let notes = t["notes"].to_string();
    assert!(notes.contains("template: skipped `secret.txt`"), "{t:#}");
    assert!(notes.contains("not snapshotted: `locked.txt`"), "{t:#}");
    // The rest of the template was copied and the readable change is reported.
    assert_eq!(
        p.read("workspaces/nobody/dev/project-files/readme.txt"),
        "hello\n"
    );
    let paths: Vec<&str> = t["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["open.txt"], "{t:#}");
}
