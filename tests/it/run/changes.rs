//! The changes of a task: every kind (modified, added, deleted, binary, symlink, mode) is
//! reported, and the patch applied to the template with `git apply` reproduces the workspace.

use std::collections::BTreeMap;

use crate::support::{Project, change, output_text, task};

#[test]
fn every_change_kind_is_reported() {
    let p = Project::new();
    p.write("template/keep.txt", "one\ntwo\nthree\n");
    p.write("template/old.txt", "to be removed\n");
    p.write("template/tool.sh", "#!/bin/sh\necho hi\n");
    p.write("template/link-target.txt", "target\n");
    std::os::unix::fs::symlink("link-target.txt", p.join("template/link")).unwrap();
    p.plan(
        r#"
name: kinds
agent: {kind: generic, command: "{agent}"}
instances: [{name: dev, role: developer, template: template}]
tasks:
  - id: change
    instance: dev
    prompt: |
      @write keep.txt
      one
      TWO
      three
      @end
      @delete old.txt
      @write deep/new/file.txt
      brand new
      @end
      @binary blob.bin
      @symlink keep.txt link
      @symlink keep.txt newlink
      @chmod 755 link-target.txt
"#,
    );
    let out = p.run(&["plan.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let r = p.report("kinds");
    let t = task(&r, "change");
    let modified = change(t, "keep.txt");
    assert_eq!(modified["kind"], "modified");
    assert!(
        modified["diff"].as_str().unwrap().contains("-two\n+TWO"),
        "{modified}"
    );
    assert_eq!(change(t, "old.txt")["kind"], "deleted");
    let added = change(t, "deep/new/file.txt");
    assert_eq!(added["kind"], "added");
    assert_eq!(added["size_after"], 10);
    assert!(added["size_before"].is_null());
    let blob = change(t, "blob.bin");
    assert_eq!(
        (blob["kind"].as_str(), blob["binary"].as_bool()),
        (Some("added"), Some(true))
    );
    assert!(blob["diff"].is_null());
    let link = change(t, "link");
    assert_eq!(
        (link["kind"].as_str(), link["symlink"].as_bool()),
        (Some("modified"), Some(true))
    );
    let newlink = change(t, "newlink");
    assert_eq!(
        (newlink["kind"].as_str(), newlink["symlink"].as_bool()),
        (Some("added"), Some(true))
    );
    let mode = change(t, "link-target.txt");
    assert_eq!(mode["kind"], "modified");
    assert_eq!(mode["mode_before"], 0o644);
    assert_eq!(mode["mode_after"], 0o755);
    // Nothing unchanged is listed.
    assert!(
        t["changes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["path"] != "tool.sh")
    );
}

#[test]
fn the_patch_applied_to_the_template_reproduces_the_workspace() {
    let p = Project::new();
    p.write("template/a.txt", "alpha\nbeta\ngamma\n");
    p.write("template/no-newline.txt", "last line without newline");
    p.write("template/gone.txt", "bye\n");
    p.write("template/empty-gone.txt", "");
    p.plan(
        r#"
name: patch
agent: {kind: generic, command: "{agent}"}
instances: [{name: dev, role: developer, template: template}]
tasks:
  - id: edit
    instance: dev
    prompt: |
      @write a.txt
      alpha
      BETA
      gamma
      delta
      @end
      @append no-newline.txt (appended)
      @delete gone.txt
      @delete empty-gone.txt
      @write sub/dir/new.txt
      new file
      @end
      @write empty-new.txt
      @end
      @chmod 755 a.txt
"#,
    );
    let out = p.run(&["plan.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let patch = p.latest("patch").join("diffs/edit.patch");
    let copy = p.join("copy");
    copy_tree(&p.join("template"), &copy);
    let applied = std::process::Command::new("git")
        .args(["apply", "--whitespace=nowarn"])
        .arg(&patch)
        .current_dir(&copy)
        .output()
        .unwrap();
    assert!(
        applied.status.success(),
        "git apply: {}",
        String::from_utf8_lossy(&applied.stderr)
    );
    assert_eq!(
        tree(&copy),
        tree(&p.join("workspaces/patch/dev/project-files"))
    );
}

#[test]
fn a_text_file_over_1_mib_gets_a_size_line_but_the_patch_still_reproduces_it() {
    let p = Project::new();
    let big: String = (0..40_000)
        .map(|i| format!("line {i} of a large text file\n"))
        .collect();
    assert!(big.len() > 1024 * 1024);
    p.write("template/big.txt", &big);
    p.plan(
        r#"
name: big
agent: {kind: generic, command: "{agent}"}
instances: [{name: dev, role: developer, template: template}]
tasks: [{id: grow, instance: dev, prompt: "@append big.txt one more line"}]
"#,
    );
    let out = p.run(&["plan.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let r = p.report("big");
    let c = change(task(&r, "grow"), "big.txt");
    assert!(
        c["diff"]
            .as_str()
            .unwrap()
            .starts_with("file too large to diff"),
        "{c}"
    );
    let copy = p.join("copy");
    copy_tree(&p.join("template"), &copy);
    let applied = std::process::Command::new("git")
        .args(["apply", "--whitespace=nowarn"])
        .arg(p.latest("big").join("diffs/grow.patch"))
        .current_dir(&copy)
        .output()
        .unwrap();
    assert!(
        applied.status.success(),
        "git apply: {}",
        String::from_utf8_lossy(&applied.stderr)
    );
    assert_eq!(
        tree(&copy),
        tree(&p.join("workspaces/big/dev/project-files"))
    );
}

fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

/// Path → (content, executable) for every file under `root`.
fn tree(root: &std::path::Path) -> BTreeMap<String, (Vec<u8>, bool)> {
    use std::os::unix::fs::PermissionsExt;
    walkdir::WalkDir::new(root)
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let exec = e.metadata().unwrap().permissions().mode() & 0o111 != 0;
            let rel = e
                .path()
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (rel, (std::fs::read(e.path()).unwrap(), exec))
        })
        .collect()
}

#[test]
fn an_agent_removing_its_own_folder_shows_every_file_deleted_and_the_next_task_runs() {
    let p = Project::new();
    p.write("template/a.txt", "a\n");
    p.write("template/sub/b.txt", "b\n");
    p.plan(
        r#"
name: wipe
agent: {kind: generic, command: /bin/sh, args: ["-c", "cat >/dev/null; if [ \"$BORG_TASK_ID\" = wipe ]; then cd .. && rm -rf project-files; else echo back > again.txt; fi"]}
instances: [{name: dev, role: developer, template: template}]
tasks:
  - {id: wipe, instance: dev, prompt: go}
  - {id: again, instance: dev, prompt: go}
"#,
    );
    let out = p.run(&["plan.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let r = p.report("wipe");
    let wiped = task(&r, "wipe");
    assert_eq!(change(wiped, "a.txt")["kind"], "deleted");
    assert_eq!(change(wiped, "sub/b.txt")["kind"], "deleted");
    let again = task(&r, "again");
    assert_eq!(again["status"], "passed");
    assert_eq!(change(again, "again.txt")["kind"], "added");
    assert_eq!(again["changes"].as_array().unwrap().len(), 1);
}
