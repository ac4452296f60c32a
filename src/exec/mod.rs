//! Running one child process to completion without ever hanging the runner.
//!
//! Each child gets its own process group (`process_group(0)`: keeps the posix_spawn fast
//! path), its stdin from a file (no writer thread, no EPIPE), and two reader threads that
//! drain stdout and stderr into a capped log from spawn to EOF. A helper thread waits for
//! the leader with `waitid(WEXITED | WNOWAIT)`, which does not reap it; on timeout: SIGTERM
//! to the whole group, SIGKILL after the grace period. When the leader exits, whatever it
//! left in its group is killed within [`LEAK_TIMEOUT`]; if such a leftover held the output
//! open, the outcome says `leaked`. Pipe readers are never joined without a deadline.
//!
//! The leader is reaped only after its group has been killed and unregistered: until then
//! it is a zombie that keeps its pid, so the group id cannot have been reused by anyone
//! else and every `killpg` hits only our processes (bazel#11910). (wait-timeout, which
//! reaps as it returns, would leave a window of up to [`LEAK_TIMEOUT`] plus the drain time
//! in which an empty group's id could be handed out again and then be signalled.)

pub mod capture;
pub mod groups;
pub mod signals;

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::wait::{Id, WaitPidFlag, waitid};
use nix::unistd::Pid;

use capture::{CappedLog, SharedLog, StdoutSink, Stream};
use groups::{registry, signal_group};

/// How long after the leader exits its output may stay open before leftovers are killed
/// (nextest found 100 ms gave false positives on loaded machines).
pub const LEAK_TIMEOUT: Duration = Duration::from_millis(200);
/// How long to wait for output to close after the group was killed (only a process that
/// escaped the group with `setsid` can hold it longer; then we stop waiting).
const DRAIN_AFTER_KILL: Duration = Duration::from_secs(2);

/// What to run.
#[derive(Debug, Clone)]
pub struct Spec {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub cwd: PathBuf,
    /// Added to (or replacing in) the inherited environment.
    pub env: Vec<(OsString, OsString)>,
    /// Removed from the inherited environment.
    pub env_remove: Vec<OsString>,
    /// Standard input comes from this file; `None` = `/dev/null`.
    pub stdin: Option<PathBuf>,
    pub timeout: Duration,
    /// Between SIGTERM and SIGKILL.
    pub grace: Duration,
    /// Where the group is recorded while it runs, for a later run to end it if we die.
    pub record: Option<PathBuf>,
    /// No output on stdout or stderr for this long ends the child as a timeout
    /// (`idle_timeout`), long before `timeout`.
    pub idle_timeout: Option<Duration>,
}

/// How the child ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
    /// It could not be started; the words say why.
    NotStarted(String),
}

/// What happened.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub exit: Exit,
    pub timed_out: bool,
    /// The timeout was `idle_timeout` (no output for that long), not the wall clock.
    pub idle: bool,
    /// The run was stopping (a signal, a runner error) when the child ended: the runner
    /// ended it, whatever it printed.
    pub stopped: bool,
    /// A leftover process held the output open after the leader exited.
    pub leaked: bool,
    pub duration: Duration,
    /// Bytes of output before capping.
    pub output_bytes: u64,
}

impl Outcome {
    pub fn exit_code(&self) -> Option<i32> {
        match self.exit {
            Exit::Code(c) => Some(c),
            _ => None,
        }
    }
}

/// Runs `spec` to completion, writing its output into `log`.
pub fn run(spec: &Spec, log: &SharedLog) -> Outcome {
    run_with(spec, log, capture::Discard).0
}

/// Runs `spec` to completion, writing its output into `log` and its standard output also
/// into `sink`, which is handed back once stdout is at its end (`None` if a leftover
/// process outside the group still held it open).
pub fn run_with<S: StdoutSink + 'static>(
    spec: &Spec,
    log: &SharedLog,
    sink: S,
) -> (Outcome, Option<S>) {
    let started = Instant::now();
    let not_started = |why: String| Outcome {
        exit: Exit::NotStarted(why),
        timed_out: false,
        idle: false,
        stopped: false,
        leaked: false,
        duration: started.elapsed(),
        output_bytes: 0,
    };
    let stdin = match &spec.stdin {
        Some(path) => match File::open(path) {
            Ok(f) => Stdio::from(f),
            Err(e) => {
                let why = format!("cannot open `{}`: {e}", path.display());
                return (not_started(why), Some(sink));
            }
        },
        None => Stdio::null(),
    };
    let mut command = Command::new(&spec.program);
    command
        .args(&spec.args)
        .current_dir(&spec.cwd)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    for name in &spec.env_remove {
        command.env_remove(name);
    }
    command.envs(spec.env.iter().map(|(k, v)| (k, v)));
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            let why = format!("cannot start `{}`: {e}", spec.program.display());
            return (not_started(why), Some(sink));
        }
    };
    let pgid = i32::try_from(child.id()).expect("pids fit in i32");
    let var = |name: &str| {
        spec.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let identity = (var("BORG_RUN_ID"), var("BORG_INSTANCE"));
    registry().add(pgid, spec.record.as_deref(), (&identity.0, &identity.1));
    let (mut timeout, mut grace) = (spec.timeout, spec.grace);
    if signals::stopping() {
        // The run began stopping between the caller's check and the spawn: the signal
        // thread's SIGTERM and its SIGKILL after the grace period (or the runner error's
        // SIGKILL) may have missed this group. End it as on a timeout, at once: SIGTERM,
        // then SIGKILL after the grace period (none after a runner error, which kills).
        timeout = Duration::ZERO;
        if !signals::interrupted() {
            grace = Duration::ZERO;
        }
    }

    let (done_tx, done_rx) = mpsc::channel::<()>();
    let handed_back = Arc::new(Mutex::new(None::<S>));
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let readers = [
        spawn_reader(
            stdout,
            Stream::Stdout,
            log,
            Some((sink, handed_back.clone())),
            &done_tx,
        ),
        spawn_reader::<S>(stderr, Stream::Stderr, log, None, &done_tx),
    ];
    drop(done_tx);

    let exited = watch_exit(pgid);
    let limits = Limits {
        wall: timeout,
        idle: spec.idle_timeout,
        grace,
    };
    let ended = wait_with_timeout(&exited, pgid, &limits, log);
    let stopped = signals::stopping();

    // The leader has exited and is not reaped yet (so the group id is still ours). Give its
    // output a short, fixed time to close (never re-armed by more output), then end
    // whatever it left behind in its group, and only then reap the leader.
    let deadline = Instant::now() + LEAK_TIMEOUT;
    let mut open = readers.len();
    while open > 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        match done_rx.recv_timeout(left) {
            Ok(()) => open -= 1,
            Err(_) => break,
        }
    }
    let leaked = open > 0;
    signal_group(pgid, Signal::SIGKILL);
    // Unregister before reaping, so the signal thread never signals the id once it is free.
    registry().remove(pgid);
    let status = child.wait();
    if leaked {
        let deadline = Instant::now() + DRAIN_AFTER_KILL;
        while open > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            match done_rx.recv_timeout(left) {
                Ok(()) => open -= 1,
                Err(_) => {
                    log::warn!(
                        "output of `{}` is still held open by a process outside its group \
                         (setsid?); no longer waiting for it",
                        spec.program.display()
                    );
                    break;
                }
            }
        }
    }
    if open == 0 {
        for reader in readers {
            let _ = reader.join();
        }
    }
    let sink = handed_back
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    let exit = match status {
        Ok(status) => exit_of(status),
        Err(e) => Exit::NotStarted(format!("waiting for the agent failed: {e}")),
    };
    let output_bytes = capture::lock(log).total();
    let outcome = Outcome {
        exit,
        timed_out: ended.is_some(),
        idle: ended == Some(Ended::Idle),
        stopped,
        leaked,
        duration: started.elapsed(),
        output_bytes,
    };
    (outcome, sink)
}

/// The time limits of one child.
struct Limits {
    wall: Duration,
    idle: Option<Duration>,
    grace: Duration,
}

/// Which limit ended a child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    Wall,
    Idle,
}

/// Signals on the returned channel (or drops it) once the leader `pid` has exited, without
/// reaping it: `waitid(P_PID, pid, WEXITED | WNOWAIT)` on a helper thread. No SIGCHLD
/// handler and no `waitpid(-1)`, so wait-timeout (used elsewhere) is not disturbed.
fn watch_exit(pid: i32) -> mpsc::Receiver<()> {
    let (tx, rx) = mpsc::channel();
    thread::Builder::new()
        .name("borg-wait".into())
        .spawn(move || {
            let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT;
            // Any answer but EINTR means the leader has exited (or cannot be waited for,
            // which `Child::wait` will report).
            while let Err(Errno::EINTR) = waitid(Id::Pid(Pid::from_raw(pid)), flags) {}
            let _ = tx.send(());
        })
        .expect("spawning a process waiter thread");
    rx
}

/// Waits until the leader has exited (unreaped), ending the group when a limit is reached
/// (the wall clock, or no output in `log` for `idle`): SIGTERM, then SIGKILL after
/// `grace`. Returns which limit ended it, if one did. The leader is never reaped here, so
/// the group id is still ours whenever we signal it.
fn wait_with_timeout(
    exited: &mpsc::Receiver<()>,
    pgid: i32,
    limits: &Limits,
    log: &SharedLog,
) -> Option<Ended> {
    let spawned = Instant::now();
    // A timeout too large for an Instant means no deadline.
    let deadline = spawned.checked_add(limits.wall);
    let ended = loop {
        let now = Instant::now();
        let quiet_until = limits.idle.and_then(|idle| {
            let last = capture::lock(log).last_output().unwrap_or(spawned);
            last.max(spawned).checked_add(idle)
        });
        if deadline.is_some_and(|d| now >= d) {
            break Ended::Wall;
        }
        if quiet_until.is_some_and(|q| now >= q) {
            break Ended::Idle;
        }
        let wake = match (deadline, quiet_until) {
            (Some(d), Some(q)) => Some(d.min(q)),
            (d, q) => d.or(q),
        };
        let result = match wake {
            Some(wake) => exited.recv_timeout(wake.saturating_duration_since(now)),
            None => exited
                .recv()
                .map_err(|_| mpsc::RecvTimeoutError::Disconnected),
        };
        if !matches!(result, Err(mpsc::RecvTimeoutError::Timeout)) {
            return None;
        }
    };
    log::info!("process group {pgid} reached its {ended:?} limit: SIGTERM");
    signal_group(pgid, Signal::SIGTERM);
    if matches!(
        exited.recv_timeout(limits.grace),
        Err(mpsc::RecvTimeoutError::Timeout)
    ) {
        log::info!(
            "process group {pgid} still running after {:?}: SIGKILL",
            limits.grace
        );
        signal_group(pgid, Signal::SIGKILL);
        let _ = exited.recv();
    }
    Some(ended)
}

fn spawn_reader<S: StdoutSink + 'static>(
    source: impl io::Read + Send + 'static,
    stream: Stream,
    log: &SharedLog,
    sink: Option<(S, Arc<Mutex<Option<S>>>)>,
    done: &mpsc::Sender<()>,
) -> thread::JoinHandle<()> {
    let log = log.clone();
    let done = done.clone();
    thread::Builder::new()
        .name("borg-output".into())
        .spawn(move || {
            match sink {
                Some((mut own, handed_back)) => {
                    // The sink is only touched by this thread until EOF.
                    capture::drain(source, stream, &log, Some(&mut own));
                    *handed_back
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(own);
                }
                None => capture::drain(source, stream, &log, None),
            }
            let _ = done.send(());
        })
        .expect("spawning an output reader thread")
}

fn exit_of(status: ExitStatus) -> Exit {
    match (status.code(), status.signal()) {
        (Some(code), _) => Exit::Code(code),
        (None, Some(sig)) => Exit::Signal(sig),
        (None, None) => Exit::Code(-1),
    }
}

/// Opens `path` as a fresh capped log shared by a child's readers.
pub fn open_log(path: &Path, secrets: &[String]) -> io::Result<SharedLog> {
    let file = File::create(path)?;
    Ok(Arc::new(Mutex::new(CappedLog::new(file, secrets))))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Set in the child test process of
    /// [`a_child_spawned_after_the_signal_is_still_killed_after_the_grace_period`].
    const CHILD_ENV: &str = "BORG_TEST_STOPPED_RUN_CHILD";

    #[test]
    fn a_child_spawned_after_the_signal_is_still_killed_after_the_grace_period() {
        // The signal flags are process-wide: the interrupted run is played out in a child
        // test process (this binary, running only the test below), never in this one.
        let exe = std::env::current_exe().unwrap();
        let output = Command::new(exe)
            .args([
                "--exact",
                "exec::tests::interrupted_run_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, "1")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success(), "{text}");
        assert!(
            text.contains("1 passed"),
            "the child test did not run: {text}"
        );
    }

    /// Runs only in the child process: SIGINT to ourselves, wait until the grace period's
    /// SIGKILL has come and gone, then run an agent that ignores SIGTERM with a long
    /// timeout: it must still be ended, by SIGKILL after the grace period.
    #[test]
    fn interrupted_run_child() {
        if std::env::var_os(CHILD_ENV).is_none() {
            return;
        }
        signals::install(Duration::from_millis(100)).unwrap();
        nix::sys::signal::raise(Signal::SIGINT).unwrap();
        let start = Instant::now();
        while !signals::interrupted() {
            assert!(start.elapsed() < Duration::from_secs(10), "SIGINT not seen");
            thread::sleep(Duration::from_millis(10));
        }
        // Long past the signal thread's SIGKILL of the groups it knew.
        thread::sleep(Duration::from_millis(500));
        // The agent ignores SIGTERM from its first instruction on (inherited, unlike a
        // shell's `trap`, which SIGTERM could beat): only SIGKILL ends it.
        // SAFETY: this process runs only this test; nothing else handles SIGTERM here.
        unsafe {
            nix::sys::signal::signal(Signal::SIGTERM, nix::sys::signal::SigHandler::SigIgn)
                .unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let log = open_log(&dir.path().join("log"), &[]).unwrap();
        let spec = Spec {
            program: PathBuf::from("sleep"),
            args: vec!["60".into()],
            cwd: dir.path().to_path_buf(),
            env: Vec::new(),
            env_remove: Vec::new(),
            stdin: None,
            timeout: Duration::from_secs(120),
            grace: Duration::from_secs(1),
            record: None,
            idle_timeout: None,
        };
        let outcome = run(&spec, &log);
        assert!(
            outcome.duration < Duration::from_secs(30),
            "the agent ran on after the interrupt: {outcome:?}"
        );
        assert_eq!(outcome.exit, Exit::Signal(9), "{outcome:?}");
    }
}
