//! The patch contract end to end: snapshot a tree, change it, write the patch with the
//! library, and check that real `git apply` on a copy of the before-state reproduces every
//! text file of the after-state byte for byte, with its executable bit.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use borg_batch::diff;
use borg_batch::snapshot::{self, Ignore, Snapshot, Store};
use proptest::prelude::*;

/// A before-tree, its snapshot, and a copy of it to apply patches to.
struct Fixture {
    dir: tempfile::TempDir,
    store: Store,
    before: Snapshot,
}

impl Fixture {
    fn new(build: impl FnOnce(&Path)) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let original = dir.path().join("original");
        fs::create_dir(&original).unwrap();
        build(&original);
        let store = Store::new(dir.path().join("objects"));
        let before = snapshot::take(&original, &Ignore::default(), None, &store).unwrap();
        copy_tree(&original, &dir.path().join("copy"));
        Fixture { dir, store, before }
    }

    fn original(&self) -> PathBuf {
        self.dir.path().join("original")
    }

    fn copy(&self) -> PathBuf {
        self.dir.path().join("copy")
    }

    /// Snapshots the changed original, applies the patch to the copy, and checks it.
    fn patch_and_apply(&self) -> Option<String> {
        let after = snapshot::take(
            &self.original(),
            &Ignore::default(),
            Some(&self.before),
            &self.store,
        )
        .unwrap();
        let patch = diff::patch(&self.before, &after, &self.store)?;
        let file = self.dir.path().join("task.patch");
        fs::write(&file, &patch).unwrap();
        let out = Command::new("git")
            .args(["apply", "--whitespace=nowarn"])
            .arg(&file)
            .current_dir(self.copy())
            .env("GIT_CEILING_DIRECTORIES", self.dir.path())
            .output()
            .expect("git runs");
        assert!(
            out.status.success(),
            "git apply failed: {}\n--- patch ---\n{patch}",
            String::from_utf8_lossy(&out.stderr)
        );
        let want = text_files(&self.original());
        let got = text_files(&self.copy());
        assert_eq!(
            want.keys().collect::<Vec<_>>(),
            got.keys().collect::<Vec<_>>(),
            "text files differ\n--- patch ---\n{patch}"
        );
        for (path, (bytes, exec)) in &want {
            let (got_bytes, got_exec) = &got[path];
            assert!(
                bytes == got_bytes,
                "`{path}` differs\n--- patch ---\n{patch}"
            );
            assert_eq!(
                exec, got_exec,
                "`{path}` executable bit\n--- patch ---\n{patch}"
            );
        }
        Some(patch)
    }
}

/// Copies files (with modes), folders and symlinks, never following a link.
fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let ft = entry.file_type().unwrap();
        if ft.is_dir() {
            copy_tree(&src, &dst);
        } else if ft.is_symlink() {
            symlink(fs::read_link(&src).unwrap(), &dst).unwrap();
        } else {
            fs::copy(&src, &dst).unwrap();
        }
    }
}

/// Every regular text file below `root`: relative path to (content, owner-executable).
fn text_files(root: &Path) -> BTreeMap<String, (Vec<u8>, bool)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let ft = entry.file_type().unwrap();
            if ft.is_dir() {
                stack.push(entry.path());
            } else if ft.is_file() {
                let bytes = fs::read(entry.path()).unwrap();
                let binary = bytes[..bytes.len().min(8192)].contains(&0)
                    || std::str::from_utf8(&bytes).is_err();
                if !binary {
                    let exec = entry.metadata().unwrap().permissions().mode() & 0o100 != 0;
                    let rel = entry
                        .path()
                        .strip_prefix(root)
                        .unwrap()
                        .display()
                        .to_string();
                    out.insert(rel, (bytes, exec));
                }
            }
        }
    }
    out
}

fn write(root: &Path, rel: &str, content: impl AsRef<[u8]>, mode: u32) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, content).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn git_apply_reproduces_every_text_change() {
    let lib: String = (1..=40).map(|i| format!("line {i}\n")).collect();
    let fx = Fixture::new(|r| {
        write(r, "README.md", "# Title\n\nSome text.\n", 0o644);
        write(r, "src/lib.rs", &lib, 0o644);
        write(
            r,
            "src/no_newline.txt",
            "first\nlast without newline",
            0o644,
        );
        write(r, "src/gains_newline.txt", "alpha\nbeta", 0o644);
        write(r, "src/loses_newline.txt", "alpha\nbeta\n", 0o644);
        write(r, "empty.txt", "", 0o644);
        write(r, "to_delete_empty.txt", "", 0o644);
        write(r, "to_delete.txt", "going\naway\n", 0o644);
        write(r, "scripts/run.sh", "#!/bin/sh\necho hi\n", 0o755);
        write(r, "chmod_me.sh", "#!/bin/sh\necho x\n", 0o644);
        write(r, "data.bin", b"\x00\x01\x02binary", 0o644);
        write(r, "becomes_dir.txt", "I will be a folder\n", 0o644);
        write(r, "nested/a/b/deep.txt", "deep\nfile\n", 0o644);
        write(r, "sp ace.txt", "spaces in the name\n", 0o644);
        write(r, "q\"uote\\d.txt", "quoted name\n", 0o644);
        write(r, "ünïcode.txt", "unicode name\n", 0o644);
        write(r, "crlf.txt", "windows\r\nline\r\n", 0o644);
        write(r, "was_link_target.txt", "target\n", 0o644);
        symlink("README.md", r.join("link")).unwrap();
        symlink("was_link_target.txt", r.join("link_becomes_file")).unwrap();
    });
    let r = fx.original();
    write(&r, "new/sub/added.txt", "brand new\nfile\n", 0o644);
    let changed_lib = lib
        .replace("line 5\n", "line five\n")
        .replace("line 30\n", "");
    write(&r, "src/lib.rs", format!("{changed_lib}appended\n"), 0o644);
    write(&r, "src/no_newline.txt", "first\nstill no newline", 0o644);
    write(&r, "src/gains_newline.txt", "alpha\nbeta\n", 0o644);
    write(&r, "src/loses_newline.txt", "alpha\nbeta", 0o644);
    fs::remove_file(r.join("to_delete.txt")).unwrap();
    fs::remove_file(r.join("to_delete_empty.txt")).unwrap();
    write(&r, "new_empty.txt", "", 0o644);
    fs::set_permissions(r.join("chmod_me.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    write(&r, "scripts/run.sh", "#!/bin/sh\necho hello\n", 0o755);
    fs::remove_file(r.join("becomes_dir.txt")).unwrap();
    write(
        &r,
        "becomes_dir.txt/inner.txt",
        "inside the new folder\n",
        0o644,
    );
    fs::remove_file(r.join("link")).unwrap();
    symlink("src/lib.rs", r.join("link")).unwrap();
    fs::remove_file(r.join("link_becomes_file")).unwrap();
    write(&r, "link_becomes_file", "a real file now\n", 0o644);
    write(&r, "new.bin", b"\x7fELF\x00\x00", 0o755);
    write(&r, "nested/a/b/deep.txt", "deep\nfile\nmore\n", 0o644);
    write(&r, "sp ace.txt", "spaces in the name, edited\n", 0o644);
    write(&r, "q\"uote\\d.txt", "quoted name, edited\n", 0o644);
    write(&r, "ünïcode.txt", "unicode name, edited\n", 0o644);
    write(&r, "crlf.txt", "windows\r\nline two\r\n", 0o644);
    write(&r, "new dir/with space.txt", "x\n", 0o755);

    let patch = fx.patch_and_apply().expect("a patch");
    // Binary and symlink changes are not in the patch.
    assert!(
        !patch.contains("new.bin") && !patch.contains("data.bin"),
        "{patch}"
    );
    assert!(!patch.contains("diff --git a/link b/link"), "{patch}");
    assert!(
        patch.contains("old mode 100644\nnew mode 100755\n"),
        "{patch}"
    );
    assert!(patch.contains("diff --git a/new_empty.txt b/new_empty.txt\nnew file mode 100644\n"));
    assert_eq!(
        fs::read_link(fx.copy().join("link")).unwrap(),
        Path::new("README.md")
    );
}

#[test]
fn no_text_change_means_no_patch() {
    let fx = Fixture::new(|r| {
        write(r, "a.txt", "a\n", 0o644);
        write(r, "b.bin", b"\x00", 0o644);
    });
    write(&fx.original(), "b.bin", b"\x00\x01", 0o644);
    assert_eq!(fx.patch_and_apply(), None);
}

/// One file's fate: its before content (if any) and how the after-state is made.
#[derive(Debug, Clone)]
enum Fate {
    Keep,
    Delete,
    Edit(Vec<(usize, u8, String)>, bool),
    Replace(String),
}

const NAMES: [&str; 7] = [
    "a.txt",
    "b.txt",
    "dir/c.txt",
    "dir/sub/d.txt",
    "e f.txt",
    "q\"x.txt",
    "ü.txt",
];

fn line() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "a",
        "b",
        "c",
        "fn main() {}",
        "",
        "    indented",
        "tab\there",
        "trailing ",
        "cr\r",
        "}",
        "@@ -1 +1 @@",
        "-minus",
        "+plus",
        " space",
    ])
    .prop_map(str::to_string)
}

fn content() -> impl Strategy<Value = String> {
    (prop::collection::vec(line(), 0..12), any::<bool>()).prop_map(|(lines, newline)| {
        let mut s = lines.join("\n");
        if newline && !s.is_empty() {
            s.push('\n');
        }
        s
    })
}

fn fate() -> impl Strategy<Value = Fate> {
    prop_oneof![
        1 => Just(Fate::Keep),
        1 => Just(Fate::Delete),
        4 => (prop::collection::vec((any::<usize>(), 0u8..3, line()), 1..6), any::<bool>())
            .prop_map(|(ops, toggle)| Fate::Edit(ops, toggle)),
        1 => content().prop_map(Fate::Replace),
    ]
}

/// Applies line edits (delete / insert / replace at a position) and maybe toggles the
/// final newline.
fn edit(before: &str, ops: &[(usize, u8, String)], toggle_newline: bool) -> String {
    let mut newline = before.ends_with('\n');
    let mut lines: Vec<String> = before.lines().map(str::to_string).collect();
    for (pos, op, text) in ops {
        let at = if lines.is_empty() {
            0
        } else {
            pos % (lines.len() + 1)
        };
        match op {
            0 if at < lines.len() => {
                lines.remove(at);
            }
            2 if at < lines.len() => lines[at] = text.clone(),
            _ => lines.insert(at, text.clone()),
        }
    }
    if toggle_newline {
        newline = !newline;
    }
    let mut s = lines.join("\n");
    if newline && !s.is_empty() {
        s.push('\n');
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn random_edits_round_trip_through_git_apply(
        files in prop::collection::vec((prop::option::of(content()), fate(), any::<bool>()), NAMES.len()),
    ) {
        let fx = Fixture::new(|r| {
            for (name, (before, _, exec)) in NAMES.iter().zip(&files) {
                if let Some(text) = before {
                    write(r, name, text, if *exec { 0o755 } else { 0o644 });
                }
            }
        });
        let r = fx.original();
        for (name, (before, fate, exec)) in NAMES.iter().zip(&files) {
            let old = before.clone();
            let mode = if *exec { 0o755 } else { 0o644 };
            match fate {
                Fate::Keep => {}
                Fate::Delete => {
                    if old.is_some() {
                        fs::remove_file(r.join(name)).unwrap();
                    }
                }
                Fate::Edit(ops, toggle) => {
                    let text = edit(old.as_deref().unwrap_or(""), ops, *toggle);
                    write(&r, name, text, mode);
                }
                Fate::Replace(text) => write(&r, name, text, mode ^ 0o111),
            }
        }
        fx.patch_and_apply();
    }
}
