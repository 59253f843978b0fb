//! `tapguard`: deploys the tapguard baseline with CloudFormation across accounts and regions, and
//! plays CloudFormation's part for the custom resources locally (`tapguard local`).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod audit;
mod cloud;
mod local;
mod parameters;
mod progress;
mod stackset;
mod template;

#[derive(Debug, Parser)]
#[command(name = "tapguard", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create or update the stack through a change set in every target, streaming its events.
    Deploy(cloud::DeployArgs),
    /// The stack status, outputs and (with --drift) drift status in every target.
    Status(cloud::StatusArgs),
    /// Delete the stack in every target, streaming its events.
    Delete(cloud::DeleteArgs),
    /// Play CloudFormation's part for a template's Custom:: resources on this machine, with the real
    /// handler binaries, against the emulator (or another endpoint).
    Local(local::LocalArgs),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Deploy(args) => cloud::deploy(args),
        Command::Status(args) => cloud::status(args),
        Command::Delete(args) => cloud::delete(args),
        Command::Local(args) => local::run(args),
    }
}
