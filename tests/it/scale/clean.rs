//! `borg-batch clean`: `--keep` removes old runs but never the latest, `--dry-run` frees
//! nothing, planted links pointing outside are removed themselves and never followed,
//! `--workspaces` removes the plan's workspaces, and the bytes freed are printed.

use crate::support::{Project, output_text};

const PLAN: &str = r#"
name: tidy
agent: {kind: generic, command: "{agent}"}
instances:
  - {name: a, role: developer}
tasks:
  - {id: t, instance: a, prompt: "@append out.txt x"}
"#;

fn runs(p: &Project) -> usize {
    std::fs::read_dir(p.join("runs/tidy"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().unwrap().is_dir())
        .count()
}

#[test]
fn clean_keeps_the_latest_never_follows_links_and_says_what_it_freed() {
    let p = Project::new();
    p.plan(PLAN);
    for _ in 0..3 {
        let out = p.run(&["plan.yaml"]);
        assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    assert_eq!(runs(&p), 3);
    let latest = p.latest("tidy");
    // Links planted in an old run and in the store, pointing outside.
    let outside = p.write("outside/precious.txt", "precious");
    let old = std::fs::read_dir(p.join("runs/tidy"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|d| d.is_dir() && *d != latest)
        .unwrap();
    std::os::unix::fs::symlink(p.join("outside"), old.join("logs/evil-dir")).unwrap();
    std::os::unix::fs::symlink(&outside, old.join("evil-file")).unwrap();
    let objects = p.join("workspaces/tidy/.borg/objects");
    std::fs::create_dir_all(&objects).unwrap();
    std::fs::write(objects.join(".tmp-999999-0"), "half a blob").unwrap();

    let out = p.run(&["clean", "plan.yaml", "--keep", "1", "--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("would remove") && text.contains("would free"),
        "{text}"
    );
    assert_eq!(runs(&p), 3, "--dry-run frees nothing");
    assert!(objects.join(".tmp-999999-0").exists());

    let out = p.run(&["clean", "plan.yaml", "--keep", "1"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("freed ") && text.contains(" bytes"), "{text}");
    assert_eq!(runs(&p), 1);
    assert!(
        latest.join("report.json").is_file(),
        "the latest run is kept"
    );
    assert!(
        !objects.join(".tmp-999999-0").exists(),
        "a killed run's temp file"
    );
    assert_eq!(
        p.read("outside/precious.txt"),
        "precious",
        "nothing outside touched"
    );

    // The latest run is never removed, even with --keep 0.
    let out = p.run(&["clean", "plan.yaml", "--keep", "0"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert_eq!(runs(&p), 1);

    // --workspaces removes the plan's workspaces, through no link.
    std::os::unix::fs::symlink(
        p.join("outside"),
        p.join("workspaces/tidy/a/project-files/out-link"),
    )
    .unwrap();
    let out = p.run(&["clean", "plan.yaml", "--workspaces"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert!(!p.join("workspaces/tidy").exists());
    assert_eq!(p.read("outside/precious.txt"), "precious");
}
