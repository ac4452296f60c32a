//! `changes` and `patch` on real snapshots of temporary trees: every kind of change, how
//! it is reported and what goes into the patch.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::PathBuf;

use super::*;
use crate::snapshot::{Ignore, take};

struct Case {
    _dir: tempfile::TempDir,
    root: PathBuf,
    store: Store,
    before: Snapshot,
}

impl Case {
    fn new(setup: impl FnOnce(&std::path::Path)) -> Case {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("p");
        fs::create_dir(&root).unwrap();
        setup(&root);
        let store = Store::new(dir.path().join("objects"));
        let before = take(&root, &Ignore::default(), None, &store).unwrap();
        Case {
            _dir: dir,
            root,
            store,
            before,
        }
    }

    fn after(&self, change: impl FnOnce(&std::path::Path)) -> (Vec<Change>, Option<String>) {
        change(&self.root);
        let after = take(&self.root, &Ignore::default(), None, &self.store).unwrap();
        let (changes, patch) = compare(&self.before, &after, &self.store);
        assert_eq!(changes, super::changes(&self.before, &after, &self.store));
        assert_eq!(patch, super::patch(&self.before, &after, &self.store));
        (changes, patch)
    }
}

fn kinds(changes: &[Change]) -> Vec<(String, &'static str)> {
    changes
        .iter()
        .map(|c| (c.path.clone(), c.kind.as_str()))
        .collect()
}

#[test]
fn text_changes_are_diffed_and_sorted() {
    let case = Case::new(|r| {
        fs::write(r.join("b.txt"), "one\ntwo\n").unwrap();
        fs::write(r.join("gone.txt"), "bye\n").unwrap();
        fs::write(r.join("same.txt"), "same\n").unwrap();
    });
    let (changes, patch) = case.after(|r| {
        fs::write(r.join("b.txt"), "one\n2\n").unwrap();
        fs::remove_file(r.join("gone.txt")).unwrap();
        fs::create_dir(r.join("a")).unwrap();
        fs::write(r.join("a/new.txt"), "hi").unwrap();
    });
    assert_eq!(
        kinds(&changes),
        [
            ("a/new.txt".into(), "added"),
            ("b.txt".into(), "modified"),
            ("gone.txt".into(), "deleted")
        ]
    );
    let added = &changes[0];
    assert_eq!((added.size_before, added.size_after), (None, Some(2)));
    assert_eq!(
        added.diff.as_deref(),
        Some("--- /dev/null\n+++ b/a/new.txt\n@@ -0,0 +1 @@\n+hi\n\\ No newline at end of file\n")
    );
    assert_eq!(
        changes[1].diff.as_deref(),
        Some("--- a/b.txt\n+++ b/b.txt\n@@ -1,2 +1,2 @@\n one\n-two\n+2\n")
    );
    assert_eq!(changes[2].size_after, None);
    let patch = patch.unwrap();
    assert!(
        patch.starts_with("diff --git a/a/new.txt b/a/new.txt\nnew file mode 100644\n"),
        "{patch}"
    );
    assert!(patch.contains("diff --git a/gone.txt b/gone.txt\ndeleted file mode 100644\n--- a/gone.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-bye\n"), "{patch}");
}

#[test]
fn exec_bit_alone_is_a_modification_without_diff() {
    let case = Case::new(|r| {
        fs::write(r.join("run.sh"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(r.join("run.sh"), fs::Permissions::from_mode(0o644)).unwrap();
    });
    let (changes, patch) = case.after(|r| {
        fs::set_permissions(r.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    });
    assert_eq!(kinds(&changes), [("run.sh".into(), "modified")]);
    let c = &changes[0];
    assert_eq!((c.mode_before, c.mode_after), (Some(0o644), Some(0o755)));
    assert_eq!(c.diff, None);
    assert_eq!(
        patch.as_deref(),
        Some("diff --git a/run.sh b/run.sh\nold mode 100644\nnew mode 100755\n")
    );
}

#[test]
fn other_permission_changes_are_not_reported() {
    let case = Case::new(|r| fs::write(r.join("f"), "x\n").unwrap());
    let (changes, patch) = case.after(|r| {
        fs::set_permissions(r.join("f"), fs::Permissions::from_mode(0o600)).unwrap();
    });
    assert!(changes.is_empty(), "{changes:?}");
    assert_eq!(patch, None);
}

#[test]
fn type_changes_are_a_deletion_and_an_addition() {
    let case = Case::new(|r| {
        fs::write(r.join("f2d"), "file\n").unwrap();
        fs::create_dir(r.join("d2f")).unwrap();
        fs::write(r.join("d2f/x"), "x\n").unwrap();
        symlink("f2d", r.join("l2f")).unwrap();
    });
    let (changes, patch) = case.after(|r| {
        fs::remove_file(r.join("f2d")).unwrap();
        fs::create_dir(r.join("f2d")).unwrap();
        fs::remove_dir_all(r.join("d2f")).unwrap();
        fs::write(r.join("d2f"), "now file\n").unwrap();
        fs::remove_file(r.join("l2f")).unwrap();
        fs::write(r.join("l2f"), "was link\n").unwrap();
    });
    // Folders are never entries: a folder replaced by a file is its files deleted and the
    // file added; a file replaced by a folder is the file deleted and the files added.
    assert_eq!(
        kinds(&changes),
        [
            ("d2f".into(), "added"),
            ("d2f/x".into(), "deleted"),
            ("f2d".into(), "deleted"),
            ("l2f".into(), "deleted"),
            ("l2f".into(), "added"),
        ]
    );
    assert!(
        changes
            .iter()
            .all(|c| c.size_before.is_some() || c.size_after.is_some() || c.symlink)
    );
    assert!(changes[3].symlink && !changes[4].symlink);
    assert_eq!(changes[3].target_before.as_deref(), Some("f2d"));
    let patch = patch.unwrap();
    // A symlink's deletion as git writes it: mode 120000, its target the content.
    let link_id = binary::blob_id(b"f2d");
    assert!(patch.contains(&format!("diff --git a/l2f b/l2f\ndeleted file mode 120000\nindex {link_id}..{}\n--- a/l2f\n+++ /dev/null\n@@ -1 +0,0 @@\n-f2d\n\\ No newline at end of file\ndiff --git a/l2f b/l2f\nnew file mode 100644\n", binary::NULL_ID)), "{patch}");
}

#[test]
fn binary_files_and_symlinks_are_in_the_patch_and_lossy_names_stay_out() {
    let big = "line\n".repeat(300_000);
    let case = Case::new(|r| {
        symlink("old-target", r.join("link")).unwrap();
        fs::write(r.join("bin"), b"\x00\x01\x02").unwrap();
        fs::write(r.join("big.txt"), &big).unwrap();
    });
    let (changes, patch) = case.after(|r| {
        fs::remove_file(r.join("link")).unwrap();
        symlink("new-target", r.join("link")).unwrap();
        fs::write(r.join("bin"), b"\x00\x01\x03").unwrap();
        fs::write(r.join("latin1"), b"caf\xe9\n").unwrap();
        fs::write(r.join("big.txt"), format!("{big}more\n")).unwrap();
        fs::write(r.join(std::ffi::OsStr::from_bytes(b"n\xffme")), "text\n").unwrap();
    });
    let patch = patch.unwrap();
    // The large text file whole, so `git apply` reproduces it.
    assert!(patch.starts_with(
        "diff --git a/big.txt b/big.txt\n--- a/big.txt\n+++ b/big.txt\n\
         @@ -299998,3 +299998,4 @@\n line\n line\n line\n+more\n"
    ));
    // Binary files with git's full index line (git apply refuses a binary patch without).
    let (old, new) = (
        binary::blob_id(b"\x00\x01\x02"),
        binary::blob_id(b"\x00\x01\x03"),
    );
    assert!(
        patch.contains(&format!(
            "diff --git a/bin b/bin\nindex {old}..{new} 100644\nGIT binary patch\nliteral 3\n"
        )),
        "{patch}"
    );
    assert!(patch.contains("diff --git a/latin1 b/latin1\nnew file mode 100644\nindex 0000000000000000000000000000000000000000.."), "{patch}");
    // The symlink's new target, mode 120000 kept in the index line.
    assert!(patch.contains(&format!(
        "diff --git a/link b/link\nindex {}..{} 120000\n--- a/link\n+++ b/link\n@@ -1 +1 @@\n-old-target\n\\ No newline at end of file\n+new-target\n\\ No newline at end of file\n",
        binary::blob_id(b"old-target"),
        binary::blob_id(b"new-target")
    )), "{patch}");
    assert!(
        !patch.contains("n\u{fffd}me") && !patch.contains("\\377"),
        "{patch}"
    );
    let by = |p: &str| changes.iter().find(|c| c.path == p).unwrap();
    let link = by("link");
    assert!(link.symlink && link.diff.is_none() && link.kind == ChangeKind::Modified);
    assert_eq!(link.target_after.as_deref(), Some("new-target"));
    assert!(by("bin").binary && by("bin").diff.is_none());
    assert!(by("latin1").binary, "not UTF-8 is binary");
    let big_change = by("big.txt");
    assert!(!big_change.binary);
    assert_eq!(
        big_change.diff.as_deref(),
        Some("file too large to diff (1500000 -> 1500005 bytes)")
    );
    let lossy = by("n\u{fffd}me");
    assert!(lossy.path_lossy);
    assert!(lossy.diff.as_deref().unwrap().contains("+text"));
}

#[test]
fn a_binary_file_holding_a_secret_stays_out_of_the_patch() {
    let case = Case::new(|_| {});
    fs::write(case.root.join("key.bin"), b"\x00sk-secret-value\x00").unwrap();
    fs::write(case.root.join("other.bin"), b"\x00harmless").unwrap();
    let after = take(&case.root, &Ignore::default(), None, &case.store).unwrap();
    let secret = |b: &[u8]| b.windows(16).any(|w| w == b"sk-secret-value\x00");
    let (changes, patch) = compare_guarded(&case.before, &after, &case.store, &secret);
    assert_eq!(changes[0].diff.as_deref(), Some(SECRET));
    let patch = patch.unwrap();
    assert!(
        !patch.contains("key.bin") && patch.contains("other.bin"),
        "{patch}"
    );
}

#[test]
fn empty_files_are_in_the_patch_with_headers_only() {
    let case = Case::new(|r| fs::write(r.join("was-empty"), "").unwrap());
    let (changes, patch) = case.after(|r| {
        fs::remove_file(r.join("was-empty")).unwrap();
        fs::write(r.join("now-empty"), "").unwrap();
        fs::create_dir(r.join("empty-folder")).unwrap();
    });
    assert_eq!(
        kinds(&changes),
        [
            ("now-empty".into(), "added"),
            ("was-empty".into(), "deleted")
        ]
    );
    assert!(changes.iter().all(|c| c.diff.is_none() && !c.binary));
    assert_eq!(
        patch.as_deref(),
        Some(
            "diff --git a/now-empty b/now-empty\nnew file mode 100644\ndiff --git a/was-empty b/was-empty\ndeleted file mode 100644\n"
        )
    );
}

#[test]
fn missing_blobs_give_a_size_line_not_a_panic() {
    let case = Case::new(|r| fs::write(r.join("f"), "a\n").unwrap());
    let (_, _) = case.after(|r| fs::write(r.join("f"), "b\n").unwrap());
    fs::remove_dir_all(case.store.root()).unwrap();
    fs::create_dir(case.store.root()).unwrap();
    let after = take(
        &case.root,
        &Ignore::default(),
        None,
        &Store::new(case.root.join("../elsewhere")),
    )
    .unwrap();
    let (changes, patch) = compare(&case.before, &after, &case.store);
    assert_eq!(
        changes[0].diff.as_deref(),
        Some("content not available (2 -> 2 bytes)")
    );
    assert_eq!(patch, None);
    assert_eq!(
        compare(&case.before, &case.before, &case.store),
        (vec![], None)
    );
}

#[test]
fn a_forged_blob_is_never_shown_in_a_diff() {
    let case = Case::new(|r| fs::write(r.join("a.txt"), "original\n").unwrap());
    let hash = case.before.file(b"a.txt").unwrap().hash.clone();
    // The before-state's stored copy replaced by the agent, then the file changed.
    let blob = case.store.blob_path(&hash).unwrap();
    fs::write(&blob, "forged\n").unwrap();
    let (changes, patch) = case.after(|r| fs::write(r.join("a.txt"), "new\n").unwrap());
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].diff.as_deref(), Some(UNTRUSTED));
    assert!(patch.is_none(), "no patch from a forged copy: {patch:?}");
    // A large (streamed) text blob is checked too.
    let big = "line\n".repeat(300_000);
    let case = Case::new(|r| fs::write(r.join("big.txt"), &big).unwrap());
    let hash = case.before.file(b"big.txt").unwrap().hash.clone();
    fs::write(case.store.blob_path(&hash).unwrap(), "x\n".repeat(600_000)).unwrap();
    let (changes, patch) = case.after(|r| fs::write(r.join("big.txt"), "small\n").unwrap());
    assert_eq!(changes[0].diff.as_deref(), Some(UNTRUSTED));
    assert!(patch.is_none());
}

#[test]
fn a_text_over_the_patch_limit_gets_a_size_line_and_stays_out_of_the_patch() {
    let line = "a line of text that repeats\n";
    let big = line.repeat(PATCH_TEXT_LIMIT as usize / line.len() + 1);
    let case = Case::new(|r| {
        fs::write(r.join("big.txt"), &big).unwrap();
        fs::write(r.join("small.txt"), "one\n").unwrap();
    });
    let (changes, patch) = case.after(|r| {
        let mut more = big.clone();
        more.push_str("one more line\n");
        fs::write(r.join("big.txt"), more).unwrap();
        fs::write(r.join("small.txt"), "two\n").unwrap();
    });
    assert_eq!(
        kinds(&changes),
        [
            ("big.txt".into(), "modified"),
            ("small.txt".into(), "modified")
        ]
    );
    let size_line = changes[0].diff.as_deref().unwrap();
    assert!(size_line.contains("too large"), "{size_line}");
    let patch = patch.unwrap();
    assert!(!patch.contains("big.txt"), "left out of the patch");
    assert!(patch.contains("+two"), "{patch}");
}
