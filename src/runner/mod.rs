//! runner
pub mod events;
use crate::config::RunOptions;
use crate::error::Result;

pub fn run(options: &RunOptions) -> Result<i32> {
    let _ = options;
    Ok(0)
}
