//! Snapshot speed on a large tree, against `git status` on the same tree: a cold snapshot
//! (every file read, hashed and stored), a cached one (metadata only), and git's own scan.
//! `cargo bench --bench snapshot [-- FILES]` (default 100,000 files); prints the figures.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use borg_batch::snapshot::{self, Ignore, Store};

fn main() {
    let files: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("tree");
    let store = Store::new(dir.path().join("objects"));
    std::fs::create_dir_all(store.root()).unwrap();
    make_tree(&root, files);
    // Files changed within 2 s of a snapshot are re-read by the next one (racy git): let the
    // tree settle, as a workspace between two tasks has.
    std::thread::sleep(Duration::from_secs(3));
    let ignore = Ignore::new(&[".git/".to_string()]);

    let (cold, t_cold) = timed(|| snapshot::take(&root, &ignore, None, &store).unwrap());
    let (_, t_warm) = timed(|| snapshot::take(&root, &ignore, Some(&cold), &store).unwrap());
    let (_, stats) = snapshot::take_with_stats(&root, &ignore, Some(&cold), &store).unwrap();

    git(&root, &["init", "-q"]);
    git(&root, &["add", "-A"]);
    git(
        &root,
        &[
            "-c",
            "user.name=b",
            "-c",
            "user.email=b@b",
            "commit",
            "-qm",
            "x",
        ],
    );
    git(&root, &["status", "--porcelain"]); // warm the index once, as git users would have
    let (_, t_git) = timed(|| git(&root, &["status", "--porcelain"]));

    println!("files: {files}");
    println!("cold snapshot (read, hash, store): {:>8.1} ms", ms(t_cold));
    println!(
        "cached snapshot (metadata only):   {:>8.1} ms  ({} read, {} from cache)",
        ms(t_warm),
        stats.files_read,
        stats.files_cached
    );
    println!("git status --porcelain:            {:>8.1} ms", ms(t_git));
    println!(
        "cached snapshot / git status:      {:>8.2}",
        ms(t_warm) / ms(t_git)
    );
}

fn make_tree(root: &Path, files: usize) {
    for i in 0..files {
        let sub = root.join(format!("d{:03}/e{:02}", i % 1000, (i / 1000) % 100));
        if i < 100_000 {
            std::fs::create_dir_all(&sub).unwrap();
        }
        std::fs::write(
            sub.join(format!("f{i}.txt")),
            format!("file {i}\nline two\n"),
        )
        .unwrap();
    }
}

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
        .status;
    assert!(status.success(), "git {args:?} failed");
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let value = f();
    (value, start.elapsed())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
