//! The `ajutant` binary: parses the command line and hands off to [`cli::run`].

mod apikey_commands;
mod audit_commands;
mod cli;
mod ingest_command;
mod switch_commands;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    cli::run(cli::Cli::parse())
}
