//! The `borg-batch` binary: parse the command line, run, map the outcome to an exit code.

mod cli;

use clap::Parser;

fn main() {
    let command = cli::Cli::parse().into_command();
    let (verbose, color) = match &command {
        borg_batch::Command::Run(o) => (o.verbose, o.color),
        borg_batch::Command::Report { color, .. } => (false, *color),
        borg_batch::Command::Validate { .. }
        | borg_batch::Command::Merge { .. }
        | borg_batch::Command::Clean(_) => (false, Default::default()),
    };
    borg_batch::report::progress::init_logging(verbose, color.for_stderr());
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
