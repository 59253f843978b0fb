//! `tapguard`: deploys the tapguard baseline with CloudFormation across accounts and regions, and
//! plays CloudFormation's part for the custom resources locally (`tapguard local`).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod api;
mod artifacts;
mod audit;
mod delete;
mod deploy;
mod local;
mod parameters;
mod plan;
mod progress;
mod prompt;
mod stack_watch;
mod stackset;
mod stackset_plan;
mod status;
mod survey;
mod targets;
mod targets_file;
mod template;
mod verifiers;
mod verify;

#[derive(Debug, Parser)]
#[command(name = "tapguard", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create or update the stack through a change set in every target, streaming its events. The
    /// plan comes first: what each target already has sets the template's Existing... parameters.
    Deploy(Box<deploy::DeployArgs>),
    /// What deploy would do in every target, changing nothing: what is already there (trail,
    /// detector, analyzer, Config, Security Hub, EBS encryption), the Existing... parameters set from
    /// it, and the change set's summary (the change set is deleted again).
    Plan(plan::PlanArgs),
    /// The stack status, outputs and (with --drift) drift status in every target.
    Status(status::StatusArgs),
    /// Delete the stack in every target, streaming its events.
    Delete(delete::DeleteArgs),
    /// Play CloudFormation's part for a template's Custom:: resources on this machine, with the real
    /// handler binaries, against the emulator (or another endpoint).
    Local(local::LocalArgs),
    /// Verify, read-only, that every control the tapguard resources claim in their ledgers still holds
    /// in every target (no template, no stack name, no Lambda): a matrix of held / drifted / unknown.
    /// Exit status 0 all held, 1 drift, 3 no drift but something unknown.
    Verify(verify::VerifyArgs),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Deploy(args) if args.stack_set => stackset::deploy(*args),
        Command::Deploy(args) => deploy::deploy(*args),
        Command::Plan(args) => plan::plan(args),
        Command::Status(args) if args.stack_set => stackset::status(args),
        Command::Status(args) => status::status(args),
        Command::Delete(args) if args.stack_set => stackset::delete(args),
        Command::Delete(args) => delete::delete(args),
        Command::Local(args) => local::run(args),
        Command::Verify(args) => verify::verify(args),
    }
}
