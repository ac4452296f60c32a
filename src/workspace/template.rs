//! Copying an instance's template into a new workspace's `project-files/`.
//!
//! Never follows symlinks (they are copied as links), never opens anything but regular
//! files (FIFOs, sockets and devices are skipped and reported), keeps the executable bit.
//!
//! Fast on big trees: folders are copied as jobs on rayon's pool (a work queue, no
//! recursion on the stack), and each file's bytes never pass through the runner: a
//! copy-on-write clone (`FICLONE`, btrfs/XFS/bcachefs) where the file system has it, else
//! `copy_file_range` (in-kernel; what `std::io::copy` does between two files on Linux).

use std::fs::{self, File};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// What the copy's jobs share.
struct Copy {
    skip: Vec<PathBuf>,
    /// Set once a clone failed as unsupported, so later files go straight to a copy.
    no_clone: AtomicBool,
    notes: Mutex<Vec<String>>,
    /// The first error that must fail the copy (cannot write the destination).
    error: Mutex<Option<io::Error>>,
}

/// Copies `template` into `dest` (which exists). Returns notes on what was skipped.
/// Nothing under a `skip` folder is copied: a template folder that holds the workspaces
/// folder or the runs (`template: .` next to the plan) must not copy them into itself.
pub fn copy(template: &Path, dest: &Path, skip: &[&Path]) -> io::Result<Vec<String>> {
    let template = fs::canonicalize(template)?;
    let job = Copy {
        skip: skip
            .iter()
            .filter_map(|p| fs::canonicalize(p).ok())
            .collect(),
        no_clone: AtomicBool::new(false),
        notes: Mutex::new(Vec::new()),
        error: Mutex::new(None),
    };
    fs::read_dir(&template)?; // the template itself must be readable
    rayon::scope(|scope| {
        copy_dir(scope, &job, &template, dest, Path::new(""));
    });
    if let Some(e) = job.error.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(e);
    }
    let mut notes = job.notes.into_inner().unwrap_or_else(|e| e.into_inner());
    notes.sort();
    Ok(notes)
}

/// Copies one folder's entries, queueing its subfolders as jobs of their own.
fn copy_dir<'s>(scope: &rayon::Scope<'s>, job: &'s Copy, from: &Path, to: &Path, rel: &Path) {
    let note = |text: String| {
        job.notes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(text);
    };
    let fail = |e: io::Error| {
        job.error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert(e);
    };
    let listing = match fs::read_dir(from) {
        Ok(l) => l,
        Err(e) => return note(format!("template: skipped {}: {e}", from.display())),
    };
    for item in listing {
        let item = match item {
            Ok(i) => i,
            Err(e) => {
                note(format!("template: skipped {}: {e}", from.display()));
                continue;
            }
        };
        let src = item.path();
        let rel = rel.join(item.file_name());
        let target = to.join(item.file_name());
        let Ok(kind) = item.file_type() else { continue };
        if kind.is_dir() {
            if job.skip.contains(&src) {
                continue;
            }
            match fs::create_dir(&target) {
                Ok(()) => scope.spawn(move |scope| copy_dir(scope, job, &src, &target, &rel)),
                Err(e) => fail(e),
            }
        } else if kind.is_symlink() {
            let made =
                fs::read_link(&src).and_then(|link| std::os::unix::fs::symlink(link, &target));
            if let Err(e) = made {
                fail(e);
            }
        } else if kind.is_file() {
            match copy_file(&src, &target, &job.no_clone) {
                Ok(Some(why)) => note(format!("template: skipped `{}` ({why})", rel.display())),
                Ok(None) => {}
                Err(e) => fail(e),
            }
        } else {
            note(format!(
                "template: skipped `{}` (not a regular file, folder or symlink)",
                rel.display()
            ));
        }
    }
}

/// Copies one regular file. A source that cannot be opened (unreadable, vanished, swapped
/// for something else) is skipped and the reason returned; failing to write is an error.
fn copy_file(from: &Path, to: &Path, no_clone: &AtomicBool) -> io::Result<Option<String>> {
    // O_NOFOLLOW | O_NONBLOCK: a file swapped for a symlink or FIFO mid-walk can neither
    // lead us outside the template nor block us.
    let mut src = match fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(from)
    {
        Ok(file) => file,
        Err(e) => return Ok(Some(e.to_string())),
    };
    let meta = src.metadata()?;
    if !meta.is_file() {
        return Ok(Some("no longer a regular file".into()));
    }
    let mut dst = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(meta.permissions().mode() & 0o777)
        .open(to)?;
    if !clone(&src, &dst, no_clone) {
        io::copy(&mut src, &mut dst)?;
    }
    dst.set_permissions(fs::Permissions::from_mode(
        meta.permissions().mode() & 0o7777,
    ))?;
    Ok(None)
}

/// A copy-on-write clone of `src` into the empty `dst` (`FICLONE`); false when the file
/// system cannot (then `no_clone` is set so no later file tries).
fn clone(src: &File, dst: &File, no_clone: &AtomicBool) -> bool {
    if no_clone.load(Ordering::Relaxed) {
        return false;
    }
    // SAFETY: FICLONE takes the source descriptor as its argument; both are open files
    // owned by the caller for the duration of the call.
    let r = unsafe { libc::ioctl(dst.as_raw_fd(), libc::FICLONE, src.as_raw_fd()) };
    if r == 0 {
        return true;
    }
    let err = io::Error::last_os_error().raw_os_error();
    // Unsupported here (ext4, tmpfs, across file systems): never again this copy. Any
    // other failure falls back to a copy for this file only.
    if matches!(
        err,
        Some(libc::EOPNOTSUPP | libc::EXDEV | libc::EINVAL | libc::ENOTTY | libc::ENOSYS)
    ) {
        no_clone.store(true, Ordering::Relaxed);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_holding_the_workspaces_folder_is_not_copied_into_itself() {
        let src = tempfile::tempdir().unwrap();
        fs::write(src.path().join("a.txt"), "a").unwrap();
        let workspaces = src.path().join("workspaces");
        let dest = workspaces.join("dev/project-files");
        fs::create_dir_all(&dest).unwrap();
        let notes = copy(src.path(), &dest, &[&workspaces]).unwrap();
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(fs::read_to_string(dest.join("a.txt")).unwrap(), "a");
        assert!(!dest.join("workspaces").exists());
    }

    #[test]
    fn copies_files_links_and_modes_and_skips_fifos() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        fs::create_dir(src.path().join("sub")).unwrap();
        fs::write(src.path().join("sub/a.txt"), "hello").unwrap();
        fs::write(src.path().join("run.sh"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(src.path().join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", src.path().join("link")).unwrap();
        nix::unistd::mkfifo(&src.path().join("pipe"), nix::sys::stat::Mode::S_IRWXU).unwrap();

        let notes = copy(src.path(), dst.path(), &[dst.path()]).unwrap();
        assert_eq!(
            fs::read_to_string(dst.path().join("sub/a.txt")).unwrap(),
            "hello"
        );
        let mode = fs::metadata(dst.path().join("run.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
        assert_eq!(
            fs::read_link(dst.path().join("link")).unwrap(),
            Path::new("/etc/passwd")
        );
        assert!(!dst.path().join("pipe").exists());
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("pipe"));
    }
}
