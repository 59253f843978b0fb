//! `tapguard`: deploys the tapguard baseline with CloudFormation across accounts and regions, and
//! plays CloudFormation's part for the custom resources locally (`tapguard local`).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod local;
mod template;

#[derive(Debug, Parser)]
#[command(name = "tapguard", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Play CloudFormation's part for a template's Custom:: resources on this machine, with the real
    /// handler binaries, against the emulator (or another endpoint).
    Local(local::LocalArgs),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Local(args) => local::run(args),
    }
}
