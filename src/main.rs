//! Entry point: parse arguments, set up logging and the runtime, run, map errors to exit codes
//! (0 ok, 1 failure, 2 usage or config error, 3 changes pending for `plan --detailed-exitcode`).

use std::process::ExitCode;

use clap::Parser;
use tagstack::cli::{self, Cli, Outcome, UsageError};
use tagstack::config::ConfigError;

fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "tagstack=debug,warn",
        (false, _) => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("TAGSTACK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
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
            #[allow(clippy::print_stderr)]
            {
                eprintln!("error: cannot start the async runtime: {e}");
            }
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::ChangesPending) => ExitCode::from(3),
        Err(err) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("error: {err:#}");
            }
            ExitCode::from(exit_code_for(&err))
        }
    }
}
