//! One run per instance workspace: an exclusive `flock` on `state/lock`.
//!
//! The kernel drops a flock when its holder dies, so a lock left by a runner killed with
//! `kill -9` is simply free again; the next run takes it and first ends the agent process
//! group that run left behind (recorded in `state/running.json` with its start time).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::exec::groups;

/// A held instance lock; released when dropped.
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
    path: PathBuf,
}

impl InstanceLock {
    /// Takes the lock of `instance` at `state_dir/lock`, or says who holds it.
    pub fn acquire(instance: &str, state_dir: &Path) -> Result<InstanceLock> {
        let path = state_dir.join("lock");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            // A link or FIFO in its place was removed by the repair pass; never follow one.
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
            .map_err(|e| Error::io("open lock file", &path, e))?;
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(Error::LockHeld {
                    instance: instance.to_string(),
                    pid: text.trim().parse().unwrap_or(0),
                    lock: path,
                });
            }
            return Err(Error::io("lock", &path, err));
        }
        let write_pid = |file: &mut File| -> std::io::Result<()> {
            file.set_len(0)?;
            file.rewind()?;
            write!(file, "{}", std::process::id())?;
            file.flush()
        };
        write_pid(&mut file).map_err(|e| Error::io("write", &path, e))?;
        // A run that died while an agent ran left its group recorded: end it first.
        groups::end_recorded(&state_dir.join(RUNNING), instance);
        Ok(InstanceLock { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The record of the instance's running agent group, inside `state/`.
pub const RUNNING: &str = "running.json";
