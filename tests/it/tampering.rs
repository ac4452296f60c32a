//! An agent that turns on the runner's own files: it can `cd ..` out of project-files/ and
//! put symlinks (to a victim folder outside every workspace) or FIFOs where the runner keeps
//! `state/`, `session.md`, `logs/`, its blobs, or `project-files/` itself. Nothing outside
//! may be written or deleted, nothing may hang, and the report says what was repaired.

use std::process::Stdio;
use std::time::Duration;

use crate::support::{Project, output_text, output_within, task};

/// A plan of one generic agent running `script`, template `tpl/` (a.txt), `extra` plan lines.
fn plan(p: &Project, script: &str, extra: &str) {
    p.write("tpl/a.txt", "hello\n");
    let script = script.replace('\\', "\\\\").replace('"', "\\\"");
    p.plan(&format!(
        "name: evil\ntimeout: 20s\ngrace: 1s\n{extra}\nagent: {{kind: generic, command: /bin/sh, \
         args: [\"-c\", \"cat >/dev/null; {script}\"]}}\ninstances: [{{name: dev, role: developer, \
         template: tpl}}]\ntasks:\n  - {{id: t1, instance: dev, prompt: go}}\n  - {{id: t2, \
         instance: dev, prompt: go}}\n"
    ));
}

fn run(p: &Project, args: &[&str]) -> std::process::Output {
    let child = p
        .command()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    output_within(child, Duration::from_secs(60), "borg-batch")
}

/// A folder outside every workspace with one precious file.
fn victim() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keep.txt"), "precious\n").unwrap();
    dir
}

fn assert_untouched(victim: &std::path::Path) {
    let names: Vec<String> = std::fs::read_dir(victim)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["keep.txt"],
        "something was written into the victim folder"
    );
    assert_eq!(
        std::fs::read_to_string(victim.join("keep.txt")).unwrap(),
        "precious\n"
    );
}

#[test]
fn links_in_place_of_state_session_md_and_logs_are_never_followed() {
    let p = Project::new();
    let v = victim();
    let vp = v.path().display();
    plan(
        &p,
        &format!(
            "cd ..; rm -rf state; ln -s {vp} state; rm -f session.md; ln -s {vp}/keep.txt \
             session.md; rm -rf logs; ln -s {vp} logs"
        ),
        "",
    );
    let out = run(&p, &["plan.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert_untouched(v.path());
    let r = p.report("evil");
    let notes = task(&r, "t1")["notes"].to_string();
    for what in [
        "`state` was a symlink",
        "`logs` was a symlink",
        "`session.md` was a symlink",
    ] {
        assert!(notes.contains(what), "{what}: {notes}");
    }
    // A second run and a --fresh run over what the last agent left: still untouched.
    let out = run(&p, &["plan.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let out = run(&p, &["plan.yaml", "--fresh"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert_untouched(v.path());
}

#[test]
fn a_retry_never_rolls_back_through_a_linked_project_folder() {
    let p = Project::new();
    let v = victim();
    let vp = v.path().display();
    plan(
        &p,
        &format!(
            "if [ $BORG_ATTEMPT = 1 ]; then cd ..; mv project-files pf.old; ln -s {vp} \
             project-files; exit 1; fi"
        ),
        "retries: 1",
    );
    let out = run(&p, &["plan.yaml"]);
    assert_untouched(v.path());
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let r = p.report("evil");
    let t1 = task(&r, "t1");
    assert!(
        t1["notes"]
            .to_string()
            .contains("`project-files` was a symlink"),
        "{t1:#}"
    );
    // Nothing of the victim folder shows up as the agent's change.
    assert!(!t1["changes"].to_string().contains("keep.txt"), "{t1:#}");
}

#[test]
fn fifos_in_place_of_session_md_and_blobs_do_not_hang_the_runner() {
    let p = Project::new();
    plan(
        &p,
        "cd ../../.borg/objects && for f in [0-9a-f]*; do rm -f $f; mkfifo $f; done; cd ../../dev; \
         rm -f session.md; mkfifo session.md; cd project-files; echo changed > a.txt",
        "",
    );
    let out = run(&p, &["plan.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let r = p.report("evil");
    assert!(
        task(&r, "t1")["notes"]
            .to_string()
            .contains("`session.md` was not a regular file")
    );
    assert_eq!(task(&r, "t2")["status"], "passed");
}

#[test]
fn a_forged_group_record_never_gets_another_process_killed() {
    let p = Project::new();
    // A process that is not the runner's, in a group of its own.
    let mut stranger = std::process::Command::new("setsid")
        .args(["sleep", "300"])
        .spawn()
        .unwrap();
    let pid = stranger.id();
    assert!(crate::support::wait_for(Duration::from_secs(5), || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains("sleep"))
    }));
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let ticks = stat[stat.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .nth(19)
        .unwrap()
        .to_string();
    // The agent writes a record naming the stranger, as if the runner had started it.
    plan(
        &p,
        &format!(
            "cd ..; printf '{{\"pgid\":{pid},\"start_ticks\":{ticks},\"run_id\":\"%s\",\
             \"instance\":\"dev\"}}' \"$BORG_RUN_ID\" > state/running.json.forged"
        ),
        "",
    );
    let out = run(&p, &["plan.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    // Put the forged record where the next run looks, as a killed run would leave it.
    std::fs::rename(
        p.join("workspaces/evil/dev/state/running.json.forged"),
        p.join("workspaces/evil/dev/state/running.json"),
    )
    .unwrap();
    let out = run(&p, &["plan.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let alive = stranger.try_wait().unwrap().is_none();
    let _ = stranger.kill();
    let _ = stranger.wait();
    assert!(alive, "the forged record got an unrelated process killed");
}

/// Issue 9 item 1: the agent plants a harmless blob under the blake3 of the backdoored
/// file it then writes; the report and the patch must show the backdoor.
#[test]
fn a_forged_blob_under_the_hash_of_a_backdoor_does_not_hide_it() {
    let p = Project::new();
    let hex = |b: &[u8]| blake3::hash(b).to_hex().to_string();
    let (hello, evil) = (hex(b"hello\n"), hex(b"backdoor\n"));
    // Find the store by the template's blob (whatever its layout: flat or fanned out).
    let script = format!(
        "f=$(find ../.. -name '*{tail}' -type f | head -1); [ -n \"$f\" ] || exit 9; case \"$f\" in */{hello}) \
         t=\"${{f%{hello}}}{evil}\";; *) t=\"${{f%/*/*}}/{e2}/{erest}\"; \
         mkdir -p \"${{t%/*}}\";; esac; printf 'harmless\\n' > \"$t\"; \
         printf 'backdoor\\n' > a.txt",
        tail = &hello[2..],
        e2 = &evil[..2],
        erest = &evil[2..],
    );
    plan(&p, &script, "");
    let out = run(&p, &["plan.yaml", "--only", "t1"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let r = p.report("evil");
    let diff = crate::support::change(task(&r, "t1"), "a.txt")["diff"].to_string();
    assert!(diff.contains("+backdoor"), "{diff}");
    assert!(!diff.contains("harmless"), "{diff}");
    let patch = std::fs::read_to_string(p.latest("evil").join("diffs/t1.patch")).unwrap();
    assert!(
        patch.contains("+backdoor") && !patch.contains("harmless"),
        "{patch}"
    );
}
