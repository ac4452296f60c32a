//! Logging setup shared with the live progress display: `RUST_LOG` lines are printed above
//! the progress bars (through indicatif-log-bridge) instead of tearing them.

use std::sync::OnceLock;

use indicatif::MultiProgress;

static MULTI: OnceLock<MultiProgress> = OnceLock::new();

/// The one progress area of the process.
pub fn multi() -> &'static MultiProgress {
    MULTI.get_or_init(MultiProgress::new)
}

/// Sets up env_logger (`RUST_LOG`, default `warn`) behind the progress bridge. Call once.
pub fn init_logging() {
    let logger = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_timestamp_millis()
        .build();
    let level = logger.filter();
    if indicatif_log_bridge::LogWrapper::new(multi().clone(), logger)
        .try_init()
        .is_ok()
    {
        log::set_max_level(level);
    }
}

/// Runs `f` with the progress display hidden, so what `f` prints is not overdrawn.
pub fn suspend<R>(f: impl FnOnce() -> R) -> R {
    multi().suspend(f)
}
