//! The patch contract end to end: snapshot a tree, change it, write the patch with the
//! library, and check that real `git apply` on a copy of the before-state reproduces the
//! after-state byte for byte: text and binary files with their executable bits, empty
//! files, symlinks, deletions and type changes (folders only as what they hold).

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
        let want = tree(&self.original());
        let got = tree(&self.copy());
        assert_eq!(
            want.keys().collect::<Vec<_>>(),
            got.keys().collect::<Vec<_>>(),
            "the trees differ\n--- patch ---\n{patch}"
        );
        for (path, node) in &want {
            assert!(
                node == &got[path],
                "`{path}` differs\n--- patch ---\n{patch}"
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

/// What a tree holds, path by path. Folders are not entries (a patch cannot carry an empty
/// one): a folder shows as the files in it.
#[derive(Debug, PartialEq)]
enum Node {
    /// Content and owner-executable bit.
    File(Vec<u8>, bool),
    Link(PathBuf),
}

/// Every file and symlink below `root`, never following a link.
fn tree(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let ft = entry.file_type().unwrap();
            let rel = entry
                .path()
                .strip_prefix(root)
                .unwrap()
                .display()
                .to_string();
            if ft.is_dir() {
                stack.push(entry.path());
            } else if ft.is_symlink() {
                out.insert(rel, Node::Link(fs::read_link(entry.path()).unwrap()));
            } else {
                let exec = entry.metadata().unwrap().permissions().mode() & 0o100 != 0;
                out.insert(rel, Node::File(fs::read(entry.path()).unwrap(), exec));
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
    assert!(
        patch.contains("old mode 100644\nnew mode 100755\n"),
        "{patch}"
    );
    assert!(patch.contains("diff --git a/new_empty.txt b/new_empty.txt\nnew file mode 100644\n"));
    assert!(patch.contains("GIT binary patch"), "{patch}");
    assert_eq!(
        fs::read_link(fx.copy().join("link")).unwrap(),
        Path::new("src/lib.rs")
    );
}

#[test]
fn git_apply_reproduces_binary_files_symlinks_and_type_changes() {
    // Bytes of every value, and a large binary that deflates poorly.
    let all_bytes: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    let mut noise = Vec::with_capacity(1_500_000);
    let mut x: u32 = 12345;
    for _ in 0..1_500_000 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        noise.push((x >> 16) as u8);
    }
    let fx = Fixture::new(|r| {
        write(r, "bin/modified.bin", &all_bytes, 0o644);
        write(r, "bin/deleted.bin", b"\x00gone", 0o644);
        write(r, "bin/mode.bin", b"\x00mode", 0o644);
        write(r, "bin/to_text.dat", b"\x00binary", 0o644);
        write(r, "bin/from_text.dat", "text\n", 0o644);
        write(r, "bin/latin1.txt", b"caf\xe9\n", 0o644);
        write(r, "bin/large.bin", &noise, 0o644);
        write(r, "file_to_link", "a file\n", 0o644);
        write(r, "bin_to_link", b"\x00a binary", 0o755);
        write(r, "file_to_dir", "a file\n", 0o644);
        write(r, "dir_to_file/a.txt", "a\n", 0o644);
        write(r, "dir_to_file/b.bin", b"\x00b", 0o644);
        write(r, "empty_deleted", "", 0o644);
        write(r, "sp ace.bin", b"\x00space", 0o644);
        symlink("file_to_link", r.join("link_retargeted")).unwrap();
        symlink("nowhere/at/all", r.join("link_deleted")).unwrap();
        symlink("bin/modified.bin", r.join("link_to_file")).unwrap();
        symlink("bin", r.join("link_to_dir")).unwrap();
        symlink("x", r.join("link_to_bin")).unwrap();
    });
    let r = fx.original();
    let mut changed = all_bytes;
    changed[5000] ^= 0xff;
    changed.extend_from_slice(b"\x00tail");
    write(&r, "bin/modified.bin", &changed, 0o644);
    fs::remove_file(r.join("bin/deleted.bin")).unwrap();
    fs::set_permissions(r.join("bin/mode.bin"), fs::Permissions::from_mode(0o755)).unwrap();
    write(&r, "bin/to_text.dat", "now text\n", 0o644);
    write(&r, "bin/from_text.dat", b"now\x00binary", 0o755);
    write(&r, "bin/latin1.txt", b"na\xefve\n", 0o644);
    noise[700_000] ^= 1;
    write(&r, "bin/large.bin", &noise, 0o644);
    write(&r, "bin/new.bin", b"\x7fELF\x00\x00\x01", 0o755);
    write(&r, "bin/new_empty", "", 0o755);
    for p in ["file_to_link", "bin_to_link"] {
        fs::remove_file(r.join(p)).unwrap();
        symlink("bin/new.bin", r.join(p)).unwrap();
    }
    fs::remove_file(r.join("file_to_dir")).unwrap();
    write(&r, "file_to_dir/inner.bin", b"\x00in", 0o644);
    write(&r, "file_to_dir/inner.txt", "in\n", 0o644);
    fs::remove_dir_all(r.join("dir_to_file")).unwrap();
    write(&r, "dir_to_file", b"\x00now a binary file", 0o644);
    fs::remove_file(r.join("empty_deleted")).unwrap();
    write(&r, "sp ace.bin", b"\x00space, edited", 0o644);
    fs::remove_file(r.join("link_retargeted")).unwrap();
    symlink("../outside/the/tree", r.join("link_retargeted")).unwrap();
    fs::remove_file(r.join("link_deleted")).unwrap();
    fs::remove_file(r.join("link_to_file")).unwrap();
    write(&r, "link_to_file", "a file now\n", 0o644);
    fs::remove_file(r.join("link_to_dir")).unwrap();
    write(&r, "link_to_dir/x.txt", "x\n", 0o644);
    fs::remove_file(r.join("link_to_bin")).unwrap();
    write(&r, "link_to_bin", b"\x00\x01", 0o644);
    symlink("with\nnewline", r.join("link_new")).unwrap();

    let patch = fx.patch_and_apply().expect("a patch");
    assert!(patch.contains("new file mode 120000\n"), "{patch}");
    assert!(patch.contains("deleted file mode 120000\n"), "{patch}");
    assert!(patch.contains("literal 1500000\n"), "large binary");
}

#[test]
fn no_change_means_no_patch_and_a_binary_change_is_one() {
    let fx = Fixture::new(|r| {
        write(r, "a.txt", "a\n", 0o644);
        write(r, "b.bin", b"\x00", 0o644);
    });
    assert_eq!(fx.patch_and_apply(), None);
    write(&fx.original(), "b.bin", b"\x00\x01", 0o644);
    let patch = fx
        .patch_and_apply()
        .expect("a binary change is in the patch");
    assert!(
        patch.starts_with("diff --git a/b.bin b/b.bin\nindex "),
        "{patch}"
    );
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
