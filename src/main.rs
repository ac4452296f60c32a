//! The `borg-batch` binary: parse the command line, run, map the outcome to an exit code.

mod cli;

use clap::Parser;

fn main() {
    let command = cli::Cli::parse().into_command();
    borg_batch::report::progress::init_logging();
    let code = match borg_batch::run(command) {
        Ok(code) => code,
        Err(err) => {
            borg_batch::report::progress::suspend(|| {
                eprintln!("{}", borg_batch::error::render_chain(&err));
            });
            err.exit_code()
        }
    };
    std::process::exit(code);
}
