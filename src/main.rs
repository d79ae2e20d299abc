//! Entry point: parse arguments, set up logging and the runtime, run, map errors to exit codes
//! (0 ok, 1 failure, 2 usage or config error, 3 changes pending for `plan --detailed-exitcode`).
//! A reader that closed stdout or stderr early changes none of these: output is dropped
//! quietly and the command finishes (see `ui::write_stdout`).

use std::process::ExitCode;

use clap::Parser;
use tagstack::cli::{self, Cli, Outcome, UsageError};
use tagstack::config::ConfigError;
use tagstack::{hint, ui};

fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "tagstack=debug,warn",
        (false, _) => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("TAGSTACK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| ui::QuietStderr)
        .log_internal_errors(false)
        .with_target(false)
        .init();
}

fn exit_code_for(err: &anyhow::Error) -> u8 {
    let usage = err.chain().any(|e| e.is::<ConfigError>() || e.is::<UsageError>());
    if usage { 2 } else { 1 }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.global.verbose, cli.global.quiet);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            ui::write_stderr(&format!("error: cannot start the async runtime: {e}\n"));
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(cli::run(cli));
    // A stdout that failed for another reason than a closed reader (a full disk) is a failure,
    // reported once the command's work is done.
    let stdout_error = ui::stdout_error();
    match (result, stdout_error) {
        (Ok(_), Some(e)) => {
            ui::write_stderr(&format!("error: writing to stdout: {e}\n"));
            ExitCode::from(1)
        }
        (Ok(Outcome::Success), None) => ExitCode::SUCCESS,
        (Ok(Outcome::ChangesPending), None) => ExitCode::from(3),
        (Err(err), _) => {
            ui::write_stderr(&format!("error: {}\n", hint::render(&err)));
            ExitCode::from(exit_code_for(&err))
        }
    }
}
