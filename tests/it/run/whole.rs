//! Each instance's whole change (`instances[]`, `diffs/<instance>.patch`): its files at the
//! end of the run against its base, over several tasks and runs; `git apply` of the patch
//! on a copy of the template reproduces the instance's tree exactly, every kind of file.

use std::collections::BTreeMap;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use serde_json::Value;

use crate::support::{Project, output_text};

/// What a tree holds, path by path: files (content, executable) and symlinks (target).
/// Folders are not entries (a patch cannot carry an empty one).
#[derive(Debug, PartialEq)]
enum Node {
    File(Vec<u8>, bool),
    Link(String),
}

fn tree(root: &Path) -> BTreeMap<String, Node> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| !e.file_type().is_dir())
        .map(|e| {
            let rel = e.path().strip_prefix(root).unwrap();
            let rel = rel.to_string_lossy().into_owned();
            let node = if e.file_type().is_symlink() {
                Node::Link(std::fs::read_link(e.path()).unwrap().display().to_string())
            } else {
                let exec = e.metadata().unwrap().permissions().mode() & 0o100 != 0;
                Node::File(std::fs::read(e.path()).unwrap(), exec)
            };
            (rel, node)
        })
        .collect()
}

fn instance<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["instances"]
        .as_array()
        .expect("instances[]")
        .iter()
        .find(|i| i["name"] == name)
        .unwrap_or_else(|| panic!("no instance {name} in {}", report["instances"]))
}

fn names(report: &Value) -> Vec<String> {
    report["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_string())
        .collect()
}

/// Applies `patch` with `git apply` to a copy of `base` at `copy`.
fn apply(base: &Path, copy: &Path, patch: &Path) {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(base)
        .arg(copy)
        .status()
        .unwrap();
    assert!(status.success());
    let applied = std::process::Command::new("git")
        .args(["apply", "--whitespace=nowarn"])
        .arg(patch)
        .current_dir(copy)
        .env("GIT_CEILING_DIRECTORIES", copy.parent().unwrap())
        .output()
        .unwrap();
    assert!(
        applied.status.success(),
        "git apply: {}\n{}",
        String::from_utf8_lossy(&applied.stderr),
        std::fs::read_to_string(patch).unwrap_or_default()
    );
}

/// An agent that makes every kind of change, by task: binary files written, changed and
/// removed, symlinks added, retargeted and removed, file ↔ symlink ↔ folder, exec bits,
/// empty files, a large binary.
const AGENT: &str = r#"#!/bin/sh
cat > /dev/null
case "$BORG_TASK_ID" in
  first)
    printf 'alpha\nBETA\n' > a.txt
    printf '\000\001changed\377' > bin.dat
    head -c 1500000 /dev/urandom > large.bin
    ln -s a.txt new-link
    ln -sfn gone.bin link
    rm f2l.txt && ln -s a.txt f2l.txt
    rm l2f && printf 'a file now\n' > l2f
    ;;
  second)
    rm f2d && mkdir f2d && printf 'inside\n' > f2d/inner.txt && printf '\000x' > f2d/b.bin
    rm -r d2f && printf 'was a folder\n' > d2f
    rm gone.bin link
    chmod 755 tool.sh bin2.dat
    : > new-empty.txt
    rm empty.txt
    printf 'text now\n' > b2t.dat
    printf 'bin now\000' > t2b.txt
    ;;
esac
printf '{"type":"result","subtype":"success","is_error":false,"result":"ok"}\n'
"#;

fn template(p: &Project) {
    p.write("template/a.txt", "alpha\nbeta\n");
    p.write("template/bin.dat", b"\x00\x01original");
    p.write("template/bin2.dat", b"\x00\x02");
    p.write("template/gone.bin", b"\x00gone");
    p.write("template/f2l.txt", "becomes a link\n");
    p.write("template/f2d", "becomes a folder\n");
    p.write("template/d2f/x.txt", "x\n");
    p.write("template/tool.sh", "#!/bin/sh\necho hi\n");
    p.write("template/empty.txt", "");
    p.write("template/b2t.dat", b"\x00binary");
    p.write("template/t2b.txt", "text\n");
    symlink("a.txt", p.join("template/link")).unwrap();
    symlink("a.txt", p.join("template/l2f")).unwrap();
    let agent = p.write("agent.sh", AGENT);
    std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn git_apply_of_the_instance_patch_on_the_base_reproduces_its_tree_exactly() {
    let p = Project::new();
    template(&p);
    p.write(
        "plan.yaml",
        r#"
name: whole
agent: {kind: generic, command: ./agent.sh}
instances:
  - {name: dev, role: developer, template: template}
  - {name: reviewer, role: reviewer, template: template}
tasks:
  - {id: first, instance: dev, prompt: go}
  - {id: second, instance: dev, prompt: go}
  - {id: look, instance: reviewer, needs: [second], prompt: go}
"#,
    );
    let out = p.run(&["plan.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let r = p.report("whole");
    // The last instance of the pipeline first.
    assert_eq!(names(&r), ["reviewer", "dev"]);
    let dev = instance(&r, "dev");
    assert_eq!(dev["patch"], "diffs/dev.patch");
    let run = p.latest("whole");
    let copy = p.join("copy");
    apply(&p.join("template"), &copy, &run.join("diffs/dev.patch"));
    let want = tree(&p.join("workspaces/whole/dev/project-files"));
    assert_eq!(tree(&copy), want);
    // Every kind of change is there, and folders are never entries of their own.
    let kinds: Vec<(String, String)> = dev["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["path"].as_str().unwrap().to_string(),
                c["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (path, kind) in [
        ("f2d", "deleted"),
        ("f2d/inner.txt", "added"),
        ("d2f/x.txt", "deleted"),
        ("d2f", "added"),
        ("gone.bin", "deleted"),
        ("large.bin", "added"),
        ("f2l.txt", "deleted"),
        ("f2l.txt", "added"),
    ] {
        assert!(
            kinds.contains(&(path.to_string(), kind.to_string())),
            "{path} {kind}: {kinds:?}"
        );
    }
    assert!(
        !kinds.contains(&("f2d".into(), "added".into())),
        "{kinds:?}"
    );
    assert!(
        !kinds.contains(&("d2f".into(), "deleted".into())),
        "{kinds:?}"
    );
    let patch = std::fs::read_to_string(run.join("diffs/dev.patch")).unwrap();
    assert!(patch.contains("GIT binary patch\nliteral "), "{patch}");
    assert!(patch.contains("new file mode 120000\n"), "{patch}");
    // The reviewer changed nothing: listed, without a patch.
    let reviewer = instance(&r, "reviewer");
    assert_eq!(reviewer["changes"].as_array().unwrap().len(), 0);
    assert!(reviewer["patch"].is_null());
    // Each task's patch reproduces its own step, binary and symlinks included.
    let step = p.join("step");
    apply(&p.join("template"), &step, &run.join("diffs/first.patch"));
    let twice = p.join("twice");
    apply(&step, &twice, &run.join("diffs/second.patch"));
    assert_eq!(tree(&twice), want);
}

#[test]
fn the_whole_change_spans_runs_and_only_and_fresh_takes_a_new_base() {
    let p = Project::new();
    p.write("template/a.txt", "a\n");
    p.plan(
        r#"
name: span
agent: {kind: generic, command: "{agent}"}
instances:
  - {name: dev, role: developer, template: template}
  - {name: tester, role: tester, template: template}
tasks:
  - {id: one, instance: dev, prompt: "@append one.txt 1"}
  - {id: two, instance: tester, needs: [one], prompt: "@append two.txt 2"}
"#,
    );
    let out = p.run(&["plan.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    // A second run of one task: the other instance's whole change is still listed, and
    // this one's spans both runs (`one.txt` gets a second line; the base is unchanged).
    let out = p.run(&["plan.yaml", "--only", "one"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let r = p.report("span");
    assert_eq!(names(&r), ["tester", "dev"]);
    let tester = instance(&r, "tester");
    assert_eq!(tester["changes"][0]["path"], "two.txt", "{tester}");
    assert_eq!(tester["patch"], "diffs/tester.patch");
    let dev = instance(&r, "dev");
    assert_eq!(dev["changes"].as_array().unwrap().len(), 1, "{dev}");
    assert!(
        dev["changes"][0]["diff"]
            .as_str()
            .unwrap()
            .contains("+1\n+1\n"),
        "{dev}"
    );
    assert!(p.latest("span").join("diffs/tester.patch").is_file());
    // `--fresh`: the workspaces are made again, and so are their bases.
    p.write("template/a.txt", "a, edited\n");
    let out = p.run(&["plan.yaml", "--fresh", "--only", "one"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let r = p.report("span");
    let dev = instance(&r, "dev");
    assert_eq!(dev["changes"].as_array().unwrap().len(), 1, "{dev}");
    assert_eq!(dev["changes"][0]["path"], "one.txt");
    assert_eq!(dev["changes"][0]["size_after"], 2);
    assert_eq!(
        instance(&r, "tester")["changes"].as_array().unwrap().len(),
        0
    );
    // A workspace from before bases were kept gets one at its next run, of its files then.
    std::fs::remove_file(p.join("workspaces/span/dev/state/base.snapshot")).unwrap();
    let out = p.run(&["plan.yaml", "--only", "one"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let dev = instance(&p.report("span"), "dev").clone();
    assert_eq!(dev["changes"].as_array().unwrap().len(), 1, "{dev}");
    assert_eq!(dev["changes"][0]["kind"], "modified", "{dev}");
}

#[test]
fn an_instance_named_like_a_task_gets_its_own_patch_name() {
    let p = Project::new();
    p.plan(
        r#"
name: clash
agent: {kind: generic, command: "{agent}"}
instances: [{name: dev, role: developer}]
tasks:
  - {id: dev, instance: dev, prompt: "@append a.txt 1"}
  - {id: more, instance: dev, needs: [dev], prompt: "@append b.txt 2"}
"#,
    );
    let out = p.run(&["plan.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let r = p.report("clash");
    assert_eq!(instance(&r, "dev")["patch"], "diffs/dev@instance.patch");
    let run = p.latest("clash");
    let task_patch = std::fs::read_to_string(run.join("diffs/dev.patch")).unwrap();
    let whole = std::fs::read_to_string(run.join("diffs/dev@instance.patch")).unwrap();
    assert!(task_patch.contains("a.txt") && !task_patch.contains("b.txt"));
    assert!(whole.contains("a.txt") && whole.contains("b.txt"));
}
