//! SIGINT, SIGTERM and SIGHUP to the runner: stop scheduling, forward the signal to every
//! running agent's process group, SIGKILL them after the grace period (a second signal:
//! at once). Agents run in their own groups, so the terminal's Ctrl-C never reaches them
//! unless we pass it on.
//!
//! A runner error (exit 3) stops the run too ([`stop`]): whatever the reason, once the run
//! is [`stopping`] no agent, check or retry is started any more.
//!
//! Installs no SIGCHLD handler (wait-timeout owns that one).

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::thread;
use std::time::Duration;

use nix::sys::signal::Signal;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use super::groups::registry;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static SIGNAL: AtomicI32 = AtomicI32::new(0);
static STOPPED: AtomicBool = AtomicBool::new(false);

/// Whether the runner has been asked to stop by a signal (exit 130).
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Stops the run after a runner error: nothing new is started from here on.
pub fn stop() {
    STOPPED.store(true, Ordering::SeqCst);
}

/// Whether the run is stopping, by a signal or after a runner error: start nothing new.
pub fn stopping() -> bool {
    interrupted() || STOPPED.load(Ordering::SeqCst)
}

/// Why the run is stopping, for the error of what it cut short.
pub fn stop_reason() -> &'static str {
    if interrupted() {
        "the run was interrupted"
    } else {
        "the run was stopped after a runner error"
    }
}

/// The signal that stopped the run, if any.
pub fn received() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// Starts the thread that handles the runner's termination signals. Call once per run.
pub fn install(grace: Duration) -> std::io::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    thread::Builder::new()
        .name("borg-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                let first = !INTERRUPTED.swap(true, Ordering::SeqCst);
                let signal = Signal::try_from(sig).unwrap_or(Signal::SIGTERM);
                if first {
                    SIGNAL.store(sig, Ordering::SeqCst);
                    log::warn!("received {signal}: ending running tasks, then writing reports");
                    registry().signal_all(signal);
                    thread::spawn(move || {
                        thread::sleep(grace);
                        registry().signal_all(Signal::SIGKILL);
                    });
                } else {
                    log::warn!("received {signal} again: killing running tasks now");
                    registry().signal_all(Signal::SIGKILL);
                }
            }
        })?;
    Ok(())
}
