//! Snapshot and restore tests on real temporary trees: the cache, racy git, special
//! files, huge files, roll-backs and symlinks that point out of the tree.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::time::{Duration, Instant};

use super::*;

struct Tree {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    store: Store,
}

fn tree() -> Tree {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("project-files");
    fs::create_dir(&root).unwrap();
    let store = Store::new(dir.path().join("state/objects"));
    Tree {
        root,
        store,
        _dir: dir,
    }
}

fn no_ignore() -> Ignore {
    Ignore::default()
}

fn file<'a>(s: &'a Snapshot, p: &str) -> &'a FileMeta {
    s.file(p.as_bytes())
        .unwrap_or_else(|| panic!("no file `{p}` in {:?}", s.entries.keys()))
}

/// Pretends `snap` was taken well after every file's last change, so the racy-git rule
/// does not apply to it.
fn aged(mut snap: Snapshot) -> Snapshot {
    snap.taken_at_ns += 10 * walk::RACY_MARGIN_NS;
    snap
}

#[test]
fn records_files_folders_symlinks_and_modes() {
    let t = tree();
    fs::create_dir_all(t.root.join("src/deep")).unwrap();
    fs::write(t.root.join("src/deep/a.txt"), "hello\n").unwrap();
    fs::write(t.root.join("run.sh"), "#!/bin/sh\n").unwrap();
    fs::set_permissions(t.root.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    symlink("src/deep/a.txt", t.root.join("link")).unwrap();
    symlink("/nonexistent/target", t.root.join("dangling")).unwrap();
    let odd = std::ffi::OsStr::from_bytes(b"caf\xe9.txt");
    fs::write(t.root.join(odd), "x").unwrap();

    let s = take(&t.root, &no_ignore(), None, &t.store).unwrap();
    assert_eq!(s.entries.get(b"src".as_slice()), Some(&Entry::Dir));
    assert_eq!(s.entries.get(b"src/deep".as_slice()), Some(&Entry::Dir));
    let a = file(&s, "src/deep/a.txt");
    assert_eq!(a.size, 6);
    assert_eq!(a.hash, blake3::hash(b"hello\n").to_hex().to_string());
    assert!(a.stored);
    assert_eq!(t.store.read(&a.hash).unwrap(), b"hello\n");
    assert_eq!(file(&s, "run.sh").mode, 0o755);
    assert_eq!(
        s.entries.get(b"link".as_slice()),
        Some(&Entry::Symlink {
            target: b"src/deep/a.txt".to_vec()
        })
    );
    assert!(matches!(
        s.entries.get(b"dangling".as_slice()),
        Some(Entry::Symlink { .. })
    ));
    assert!(
        s.file(b"caf\xe9.txt").is_some(),
        "non-UTF-8 names are kept as bytes"
    );
    assert!(
        !s.entries.contains_key(b"".as_slice()),
        "the root is not an entry"
    );
    assert!(s.skipped.is_empty(), "{:?}", s.skipped);
}

#[test]
fn missing_root_is_an_error_naming_it() {
    let t = tree();
    let gone = t.root.join("nope");
    let err = take(&gone, &no_ignore(), None, &t.store).unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
}

#[test]
fn ignored_folders_are_not_entered() {
    let t = tree();
    fs::create_dir_all(t.root.join(".git/objects")).unwrap();
    fs::write(t.root.join(".git/HEAD"), "ref").unwrap();
    fs::create_dir_all(t.root.join("sub/target")).unwrap();
    fs::write(t.root.join("sub/target/big.o"), "o").unwrap();
    fs::write(t.root.join("app.log"), "l").unwrap();
    fs::write(t.root.join("keep.rs"), "k").unwrap();
    let ignore = Ignore::new(&[".git/".into(), "target/".into(), "*.log".into()]);
    let (s, stats) = take_with_stats(&t.root, &ignore, None, &t.store).unwrap();
    let names: Vec<_> = s
        .entries
        .keys()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect();
    assert_eq!(names, ["keep.rs", "sub"]);
    assert_eq!(stats.files_read, 1);
}

#[test]
fn cache_hits_do_not_read_the_file_again() {
    let t = tree();
    for i in 0..5 {
        fs::write(t.root.join(format!("f{i}")), format!("content {i}\n")).unwrap();
    }
    let (first, stats) = take_with_stats(&t.root, &no_ignore(), None, &t.store).unwrap();
    assert_eq!(stats.files_read, 5);
    let first = aged(first);
    let (second, stats) = take_with_stats(&t.root, &no_ignore(), Some(&first), &t.store).unwrap();
    assert_eq!(
        stats,
        WalkStats {
            files_read: 0,
            files_cached: 5
        }
    );
    assert_eq!(second.entries, first.entries);

    // A changed file (other size) is read again; the rest still come from the cache.
    fs::write(t.root.join("f2"), "changed content\n").unwrap();
    let (third, stats) = take_with_stats(&t.root, &no_ignore(), Some(&first), &t.store).unwrap();
    assert_eq!(
        stats,
        WalkStats {
            files_read: 1,
            files_cached: 4
        }
    );
    assert_eq!(
        t.store.read(&file(&third, "f2").hash).unwrap(),
        b"changed content\n"
    );
}

#[test]
fn racy_same_size_rewrite_is_detected() {
    let t = tree();
    let p = t.root.join("f");
    fs::write(&p, "aaaa").unwrap();
    let mtime = fs::metadata(&p).unwrap().modified().unwrap();
    let before = take(&t.root, &no_ignore(), None, &t.store).unwrap();
    // Same size, same mtime, right after the snapshot: only the racy rule (and ctime)
    // can tell.
    fs::write(&p, "bbbb").unwrap();
    fs::File::options()
        .write(true)
        .open(&p)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let after = take(&t.root, &no_ignore(), Some(&before), &t.store).unwrap();
    assert_eq!(
        file(&after, "f").hash,
        blake3::hash(b"bbbb").to_hex().to_string()
    );

    // Now the case where even ctime cannot tell (a coarse clock): make the cache entry's
    // metadata equal to the file's while its hash is stale. The racy rule alone re-reads.
    let mut stale = after;
    fs::write(&p, "cccc").unwrap();
    let now = take(&t.root, &no_ignore(), None, &t.store).unwrap();
    let Some(Entry::File(m)) = stale.entries.get_mut(b"f".as_slice()) else {
        panic!()
    };
    let fresh = file(&now, "f");
    (m.mtime_ns, m.ctime_ns, m.ino, m.dev) = (fresh.mtime_ns, fresh.ctime_ns, fresh.ino, fresh.dev);
    stale.taken_at_ns = fresh.ctime_ns.max(fresh.mtime_ns);
    let (s, stats) = take_with_stats(&t.root, &no_ignore(), Some(&stale), &t.store).unwrap();
    assert_eq!(stats.files_read, 1);
    assert_eq!(file(&s, "f").hash, fresh.hash);
    // Control: the same stale entry from a snapshot taken long after is trusted, which is
    // exactly the gap the racy rule closes.
    let (s, _) = take_with_stats(&t.root, &no_ignore(), Some(&aged(stale)), &t.store).unwrap();
    assert_eq!(
        file(&s, "f").hash,
        blake3::hash(b"bbbb").to_hex().to_string()
    );
}

#[test]
fn a_missing_blob_makes_the_cache_entry_read_again() {
    let t = tree();
    fs::write(t.root.join("f"), "data\n").unwrap();
    let first = aged(take(&t.root, &no_ignore(), None, &t.store).unwrap());
    let hash = file(&first, "f").hash.clone();
    fs::remove_file(t.store.blob_path(&hash).unwrap()).unwrap();
    let (_, stats) = take_with_stats(&t.root, &no_ignore(), Some(&first), &t.store).unwrap();
    assert_eq!(stats.files_read, 1);
    assert!(t.store.contains(&hash));
}

#[test]
fn a_fifo_is_skipped_without_blocking() {
    let t = tree();
    let fifo = t.root.join("pipe");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    fs::write(t.root.join("a"), "a").unwrap();
    // If the walk opened the FIFO for reading it would block forever; run it on a thread
    // so a regression fails the test instead of hanging it.
    let (tx, rx) = std::sync::mpsc::channel();
    let (root, store) = (t.root.clone(), t.store);
    std::thread::spawn(move || {
        let _ = tx.send(take(&root, &Ignore::default(), None, &store));
    });
    let s = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("snapshot blocked")
        .unwrap();
    assert!(!s.entries.contains_key(b"pipe".as_slice()));
    assert_eq!(
        s.skipped,
        [Skipped {
            path: b"pipe".to_vec(),
            reason: "fifo skipped".into()
        }]
    );
    assert!(s.file(b"a").is_some());
}

#[test]
fn a_sparse_gigabyte_is_hashed_but_not_stored() {
    let t = tree();
    let size = 1u64 << 30;
    fs::File::create(t.root.join("huge"))
        .unwrap()
        .set_len(size)
        .unwrap();
    let started = Instant::now();
    let s = take(&t.root, &no_ignore(), None, &t.store).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(300),
        "{:?}",
        started.elapsed()
    );
    let m = file(&s, "huge");
    assert_eq!(m.size, size);
    assert!(!m.stored);
    assert!(!t.store.contains(&m.hash));
    let left: Vec<_> = fs::read_dir(t.store.root()).unwrap().collect();
    assert!(left.is_empty(), "no blob or temp file left: {left:?}");
    // A file over the in-memory limit but under the store limit is stored via a temp blob.
    fs::write(t.root.join("two-mib"), vec![b'x'; 2 << 20]).unwrap();
    let s = take(&t.root, &no_ignore(), Some(&s), &t.store).unwrap();
    assert_eq!(
        t.store.read(&file(&s, "two-mib").hash).unwrap().len(),
        2 << 20
    );
}

/// The parts of a snapshot a restore must reproduce (times and inodes will differ).
fn shape(s: &Snapshot) -> Vec<(String, String)> {
    s.entries
        .iter()
        .map(|(p, e)| {
            let what = match e {
                Entry::Dir => "dir".to_string(),
                Entry::File(m) => format!("file {:o} {}", m.mode, m.hash),
                Entry::Symlink { target } => format!("link {}", String::from_utf8_lossy(target)),
            };
            (String::from_utf8_lossy(p).into_owned(), what)
        })
        .collect()
}

#[test]
fn restore_rolls_back_every_kind_of_change() {
    let t = tree();
    let r = &t.root;
    fs::create_dir_all(r.join("src/nested")).unwrap();
    fs::write(r.join("src/main.rs"), "fn main() {}\n").unwrap();
    fs::write(r.join("src/nested/deep.txt"), "deep\n").unwrap();
    fs::write(r.join("gone.txt"), "bye\n").unwrap();
    fs::write(r.join("becomes-dir"), "file\n").unwrap();
    fs::create_dir(r.join("becomes-file")).unwrap();
    fs::write(r.join("becomes-file/x"), "x\n").unwrap();
    fs::write(r.join("mode.sh"), "echo\n").unwrap();
    symlink("src/main.rs", r.join("link")).unwrap();
    symlink("src", r.join("link-to-file")).unwrap();
    fs::create_dir(r.join("empty-dir")).unwrap();
    fs::create_dir_all(r.join(".git")).unwrap();
    fs::write(r.join(".git/HEAD"), "ref: main\n").unwrap();
    let ignore = Ignore::new(&[".git/".into(), "target/".into()]);
    let target = take(r, &ignore, None, &t.store).unwrap();

    fs::write(r.join("src/main.rs"), "fn main() { changed() }\n").unwrap();
    fs::remove_dir_all(r.join("src/nested")).unwrap();
    fs::remove_file(r.join("gone.txt")).unwrap();
    fs::remove_file(r.join("becomes-dir")).unwrap();
    fs::create_dir(r.join("becomes-dir")).unwrap();
    fs::write(r.join("becomes-dir/inner"), "i\n").unwrap();
    fs::remove_dir_all(r.join("becomes-file")).unwrap();
    fs::write(r.join("becomes-file"), "now a file\n").unwrap();
    fs::set_permissions(r.join("mode.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::remove_file(r.join("link")).unwrap();
    symlink("elsewhere", r.join("link")).unwrap();
    fs::remove_file(r.join("link-to-file")).unwrap();
    fs::write(r.join("link-to-file"), "plain\n").unwrap();
    fs::remove_dir(r.join("empty-dir")).unwrap();
    fs::create_dir_all(r.join("new/target")).unwrap();
    fs::write(r.join("new/target/ignored.o"), "o").unwrap();
    fs::write(r.join("new/file"), "n\n").unwrap();
    nix::unistd::mkfifo(
        &r.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    fs::write(r.join(".git/HEAD"), "ref: other\n").unwrap();

    let current = take(r, &ignore, None, &t.store).unwrap();
    assert_ne!(shape(&current), shape(&target));
    let failed = restore(r, &target, &current, &t.store).unwrap();
    assert!(failed.is_empty(), "{failed:?}");
    let after = take(r, &ignore, None, &t.store).unwrap();
    assert_eq!(shape(&after), shape(&target));
    assert!(
        after.skipped.is_empty(),
        "the FIFO is gone: {:?}",
        after.skipped
    );
    assert!(
        !r.join("new").exists(),
        "a new folder goes with its ignored content"
    );
    assert_eq!(
        fs::read_to_string(r.join(".git/HEAD")).unwrap(),
        "ref: other\n",
        "ignored: untouched"
    );
}

#[test]
fn restore_never_follows_a_symlink_out_of_the_root() {
    let t = tree();
    let outside = t.root.parent().unwrap().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("x"), "precious\n").unwrap();
    fs::write(outside.join("other"), "keep\n").unwrap();
    let r = &t.root;
    fs::create_dir(r.join("a")).unwrap();
    fs::write(r.join("a/x"), "mine\n").unwrap();
    let target = take(r, &no_ignore(), None, &t.store).unwrap();

    // The agent swaps the folder for a link to a folder outside, and adds another link.
    fs::remove_dir_all(r.join("a")).unwrap();
    symlink(&outside, r.join("a")).unwrap();
    symlink(&outside, r.join("b")).unwrap();
    let current = take(r, &no_ignore(), None, &t.store).unwrap();
    let failed = restore(r, &target, &current, &t.store).unwrap();
    assert!(failed.is_empty(), "{failed:?}");

    assert_eq!(fs::read_to_string(outside.join("x")).unwrap(), "precious\n");
    assert_eq!(fs::read_to_string(outside.join("other")).unwrap(), "keep\n");
    assert!(
        !fs::symlink_metadata(r.join("a"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(fs::read_to_string(r.join("a/x")).unwrap(), "mine\n");
    assert!(
        fs::symlink_metadata(r.join("b")).is_err(),
        "the extra link is removed"
    );
}

#[test]
fn restore_lists_what_it_cannot_put_back() {
    let t = tree();
    let big = t.root.join("big.bin");
    fs::File::create(&big)
        .unwrap()
        .set_len(STORE_LIMIT + 1)
        .unwrap();
    fs::write(t.root.join("small"), "s\n").unwrap();
    let target = take(&t.root, &no_ignore(), None, &t.store).unwrap();
    assert!(!file(&target, "big.bin").stored);
    fs::remove_file(&big).unwrap();
    fs::remove_file(t.root.join("small")).unwrap();
    let current = take(&t.root, &no_ignore(), None, &t.store).unwrap();
    let failed = restore(&t.root, &target, &current, &t.store).unwrap();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].starts_with("big.bin: "), "{failed:?}");
    assert_eq!(fs::read_to_string(t.root.join("small")).unwrap(), "s\n");
    let err = restore(&t.root.join("missing"), &target, &current, &t.store).unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
}

#[test]
fn save_and_load_round_trip_with_odd_names() {
    let t = tree();
    let odd = std::ffi::OsStr::from_bytes(b"caf\xe9");
    fs::write(t.root.join(odd), "x").unwrap();
    fs::write(t.root.join("sp ace \"q\""), "y").unwrap();
    symlink(odd, t.root.join("l")).unwrap();
    fs::create_dir(t.root.join("d")).unwrap();
    let mut s = take(&t.root, &no_ignore(), None, &t.store).unwrap();
    s.skipped.push(Skipped {
        path: b"p\xff".to_vec(),
        reason: "fifo skipped".into(),
    });
    let path = t.root.parent().unwrap().join("state/snapshot.bin");
    s.save(&path).unwrap();
    assert_eq!(Snapshot::load(&path).unwrap(), s);
    fs::write(&path, "{\"format\":\"other\",\"taken_at_ns\":0}\n").unwrap();
    let err = Snapshot::load(&path).unwrap_err();
    assert!(err.to_string().contains("snapshot.bin"), "{err}");
    assert!(Snapshot::load(Path::new("/nonexistent/snap")).is_err());
}

#[test]
fn roll_back_never_writes_a_forged_blob() {
    let t = tree();
    fs::write(t.root.join("a.txt"), "original\n").unwrap();
    let target = take(&t.root, &no_ignore(), None, &t.store).unwrap();
    let hash = file(&target, "a.txt").hash.clone();
    fs::write(t.store.blob_path(&hash).unwrap(), "forged\n").unwrap();
    fs::write(t.root.join("a.txt"), "changed\n").unwrap();
    let current = take(&t.root, &no_ignore(), None, &t.store).unwrap();
    let failed = restore(&t.root, &target, &current, &t.store).unwrap();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].contains("not trusted"), "{failed:?}");
    assert_eq!(
        fs::read_to_string(t.root.join("a.txt")).unwrap(),
        "changed\n"
    );
    let names: Vec<_> = fs::read_dir(&t.root)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "no temp file left: {names:?}");
}
