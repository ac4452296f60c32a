//! Rolling a tree back to an earlier snapshot, so a retry starts from the workspace as it
//! was before the first attempt.
//!
//! Never touches anything outside `root` and never follows a symlink: every operation is
//! relative to a folder descriptor, and each folder on the way down is opened with
//! `O_NOFOLLOW | O_DIRECTORY`. If the agent replaced `root/a` with a link to `/etc`,
//! restoring removes the link itself; nothing below `/etc` is ever reached. Ignored paths
//! are in neither snapshot and so are left alone, unless they sit inside a folder that did
//! not exist before (that folder goes as a whole). Never fails half-way: what cannot be put
//! back is listed and the rest still restored.

use std::ffi::{CStr, OsStr};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use nix::fcntl::{AtFlags, OFlag, openat, renameat};
use nix::sys::stat::{FileStat, Mode, SFlag, fchmod, fstatat, mkdirat};
use nix::unistd::{UnlinkatFlags, symlinkat, unlinkat};

use super::store::{Store, named};
use super::{Entry, FileMeta, RelPath, Snapshot};

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

pub(super) fn restore(
    root: &Path,
    target: &Snapshot,
    current: &Snapshot,
    store: &Store,
) -> io::Result<Vec<String>> {
    let root_fd: OwnedFd = File::options()
        .read(true)
        // O_NOFOLLOW: a root swapped for a link is refused, never restored through.
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(root)
        .map_err(|e| named(&e, "restore", root))?
        .into();
    let mut failed = Vec::new();
    let mut fail = |path: &[u8], why: String| {
        failed.push(format!("{}: {why}", String::from_utf8_lossy(path)));
    };

    // Special files the agent made (FIFOs, sockets) were never recorded as entries.
    for s in &current.skipped {
        let known =
            target.entries.contains_key(&s.path) || target.skipped.iter().any(|t| t.path == s.path);
        if !known && let Err(e) = remove(&root_fd, &s.path) {
            fail(&s.path, e.to_string());
        }
    }
    // Children sort after their parent, so in reverse they go before it.
    for (path, entry) in current.entries.iter().rev() {
        let same_kind = matches!(
            (entry, target.entries.get(path)),
            (Entry::Dir, Some(Entry::Dir))
                | (Entry::File(_), Some(Entry::File(_)))
                | (Entry::Symlink { .. }, Some(Entry::Symlink { .. }))
        );
        if !same_kind && let Err(e) = remove(&root_fd, path) {
            fail(path, e.to_string());
        }
    }
    // Parents sort before their children, so folders exist before what goes in them.
    for (path, entry) in &target.entries {
        let result = match entry {
            Entry::Dir => ensure_dir(&root_fd, path),
            Entry::File(meta) => match current.file(path) {
                Some(now) if now.hash == meta.hash && now.mode == meta.mode => Ok(()),
                Some(now) if now.hash == meta.hash && !meta.stored => {
                    chmod_file(&root_fd, path, meta.mode)
                }
                _ => write_file(&root_fd, path, meta, store),
            },
            Entry::Symlink { target: link } => match current.entries.get(path) {
                Some(Entry::Symlink { target: now }) if now == link => Ok(()),
                _ => make_symlink(&root_fd, path, link),
            },
        };
        if let Err(e) = result {
            fail(path, e.to_string());
        }
    }
    for s in &target.skipped {
        let present = current.skipped.iter().any(|c| c.path == s.path)
            || current.entries.contains_key(&s.path);
        if !present {
            fail(
                &s.path,
                format!("was skipped ({}), cannot be recreated", s.reason),
            );
        }
    }
    Ok(failed)
}

/// Opens the folder holding `path` by walking its components from `root`, never through a
/// symlink, and returns it with the last component.
fn open_parent<'p>(root: &OwnedFd, path: &'p [u8]) -> io::Result<(OwnedFd, &'p OsStr)> {
    let mut parts: Vec<&[u8]> = path.split(|b| *b == b'/').collect();
    let name = parts.pop().unwrap_or_default();
    if parts
        .iter()
        .chain([&name])
        .any(|p| p.is_empty() || *p == b"." || *p == b"..")
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a plain relative path",
        ));
    }
    let mut dir = root.try_clone()?;
    for part in parts {
        dir = open_dir(dir.as_fd(), OsStr::from_bytes(part))?;
    }
    Ok((dir, OsStr::from_bytes(name)))
}

fn open_dir(parent: BorrowedFd<'_>, name: &OsStr) -> io::Result<OwnedFd> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    Ok(openat(parent, name, flags, Mode::empty())?)
}

/// `lstat` of `name` in `parent`; `None` when absent.
fn lstat(parent: BorrowedFd<'_>, name: &OsStr) -> io::Result<Option<FileStat>> {
    match fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(nix::errno::Errno::ENOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn is_dir(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR
}

/// Removes `path` whatever it is; a folder with everything in it. Absent is fine.
fn remove(root: &OwnedFd, path: &[u8]) -> io::Result<()> {
    let (parent, name) = match open_parent(root, path) {
        Ok(p) => p,
        // An ancestor already gone (or no longer a folder): nothing left to remove here.
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    remove_in(parent.as_fd(), name)
}

fn remove_in(parent: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let Some(st) = lstat(parent, name)? else {
        return Ok(());
    };
    if is_dir(&st) {
        let dir = open_dir(parent, name)?;
        for child in list_names(&dir)? {
            remove_in(dir.as_fd(), OsStr::from_bytes(&child))?;
        }
        unlinkat(parent, name, UnlinkatFlags::RemoveDir)?;
    } else {
        unlinkat(parent, name, UnlinkatFlags::NoRemoveDir)?;
    }
    Ok(())
}

fn ensure_dir(root: &OwnedFd, path: &[u8]) -> io::Result<()> {
    let (parent, name) = open_parent(root, path)?;
    match lstat(parent.as_fd(), name)? {
        Some(st) if is_dir(&st) => return Ok(()),
        Some(_) => remove_in(parent.as_fd(), name)?,
        None => {}
    }
    Ok(mkdirat(
        parent.as_fd(),
        name,
        Mode::from_bits_truncate(0o755),
    )?)
}

/// Writes the stored content of `meta` to `path` with its mode: a temp file next to it,
/// then a rename over whatever file is there.
fn write_file(root: &OwnedFd, path: &[u8], meta: &FileMeta, store: &Store) -> io::Result<()> {
    if !meta.stored {
        return Err(io::Error::other(format!(
            "content not in the store (over {} MiB)",
            super::STORE_LIMIT >> 20
        )));
    }
    let mut blob = store.open(&meta.hash)?;
    let (parent, name) = open_parent(root, path)?;
    if let Some(st) = lstat(parent.as_fd(), name)?
        && is_dir(&st)
    {
        remove_in(parent.as_fd(), name)?;
    }
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = format!(".borg-restore-{}-{n}", std::process::id());
    let tmp = OsStr::new(&tmp);
    let flags =
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = openat(parent.as_fd(), tmp, flags, Mode::from_bits_truncate(0o600))?;
    let written = (|| {
        let mut file = File::from(fd);
        io::copy(&mut blob, &mut file)?;
        file.flush()?;
        fchmod(file.as_fd(), Mode::from_bits_truncate(meta.mode))?;
        renameat(parent.as_fd(), tmp, parent.as_fd(), name)?;
        Ok(())
    })();
    if written.is_err() {
        let _ = unlinkat(parent.as_fd(), tmp, UnlinkatFlags::NoRemoveDir);
    }
    written
}

/// Sets the mode of a regular file whose content is right but could not be rewritten.
fn chmod_file(root: &OwnedFd, path: &[u8], mode: u32) -> io::Result<()> {
    let (parent, name) = open_parent(root, path)?;
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let fd = openat(parent.as_fd(), name, flags, Mode::empty())?;
    let file = File::from(fd);
    if !file.metadata()?.is_file() {
        return Err(io::Error::other("no longer a regular file"));
    }
    Ok(fchmod(file.as_fd(), Mode::from_bits_truncate(mode))?)
}

fn make_symlink(root: &OwnedFd, path: &[u8], link: &[u8]) -> io::Result<()> {
    let (parent, name) = open_parent(root, path)?;
    if lstat(parent.as_fd(), name)?.is_some() {
        remove_in(parent.as_fd(), name)?;
    }
    Ok(symlinkat(OsStr::from_bytes(link), parent.as_fd(), name)?)
}

/// The names in the folder `dir` (without `.` and `..`). nix's `dir` module is not
/// enabled in this crate, so this is `fdopendir`/`readdir` on a duplicate descriptor.
fn list_names(dir: &OwnedFd) -> io::Result<Vec<RelPath>> {
    let raw = dir.try_clone()?.into_raw_fd();
    // SAFETY: `raw` is a descriptor we own; on success `fdopendir` takes it over and
    // `closedir` below closes it.
    let stream = unsafe { libc::fdopendir(raw) };
    if stream.is_null() {
        let e = io::Error::last_os_error();
        // SAFETY: fdopendir failed, so `raw` is still ours to close.
        drop(unsafe { OwnedFd::from_raw_fd(raw) });
        return Err(e);
    }
    // The duplicate shares the file offset: start from the beginning.
    // SAFETY: `stream` is a valid, open directory stream.
    unsafe { libc::rewinddir(stream) };
    let mut names = Vec::new();
    let result = loop {
        // SAFETY: errno is thread-local; clearing it tells end-of-stream from an error.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: `stream` is valid until `closedir`.
        let ent = unsafe { libc::readdir(stream) };
        if ent.is_null() {
            let e = io::Error::last_os_error();
            break if e.raw_os_error() == Some(0) {
                Ok(())
            } else {
                Err(e)
            };
        }
        // SAFETY: `ent` points to a dirent whose `d_name` is NUL-terminated, valid until
        // the next `readdir`; the bytes are copied out at once.
        let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) }.to_bytes();
        if name != b"." && name != b".." {
            names.push(name.to_vec());
        }
    };
    // SAFETY: `stream` came from `fdopendir` and is closed once.
    unsafe { libc::closedir(stream) };
    result.map(|()| names)
}
