//! Copying an instance's template into a new workspace's `project-files/`.
//!
//! Never follows symlinks (they are copied as links), never opens anything but regular
//! files (FIFOs, sockets and devices are skipped and reported), keeps the executable bit.

use std::fs;
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use walkdir::WalkDir;

/// Copies `template` into `dest` (which exists). Returns notes on what was skipped.
/// Nothing under a `skip` folder is copied: a template folder that holds the workspaces
/// folder or the runs (`template: .` next to the plan) must not copy them into itself.
pub fn copy(template: &Path, dest: &Path, skip: &[&Path]) -> io::Result<Vec<String>> {
    let mut notes = Vec::new();
    let template = fs::canonicalize(template)?;
    let skip: Vec<_> = skip
        .iter()
        .filter_map(|p| fs::canonicalize(p).ok())
        .collect();
    let walk = WalkDir::new(&template)
        .follow_links(false)
        .min_depth(1)
        .into_iter()
        .filter_entry(|e| !skip.iter().any(|s| e.path() == s));
    for entry in walk {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                notes.push(format!("template: skipped {e}"));
                continue;
            }
        };
        let rel = entry
            .path()
            .strip_prefix(&template)
            .expect("walkdir yields paths under its root");
        let target = dest.join(rel);
        let kind = entry.file_type();
        if kind.is_dir() {
            fs::create_dir_all(&target)?;
        } else if kind.is_symlink() {
            let link = fs::read_link(entry.path())?;
            std::os::unix::fs::symlink(link, &target)?;
        } else if kind.is_file() {
            if let Some(why) = copy_file(entry.path(), &target)? {
                notes.push(format!("template: skipped `{}` ({why})", rel.display()));
            }
        } else {
            notes.push(format!(
                "template: skipped `{}` (not a regular file, folder or symlink)",
                rel.display()
            ));
        }
    }
    Ok(notes)
}

/// Copies one regular file. A source that cannot be opened (unreadable, vanished, swapped
/// for something else) is skipped and the reason returned; failing to write is an error.
fn copy_file(from: &Path, to: &Path) -> io::Result<Option<String>> {
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
    io::copy(&mut src, &mut dst)?;
    dst.set_permissions(fs::Permissions::from_mode(
        meta.permissions().mode() & 0o7777,
    ))?;
    Ok(None)
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
