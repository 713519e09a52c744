use std::process::ExitCode;

use clap::Parser;
use tessera::cli::{Cli, Command, LayoutsCommand};
use tessera::commands;

fn main() -> ExitCode {
    // rustls is built with two crypto providers here (the AWS SDK brings the second): the
    // clients that ask rustls for its default (redis over rediss://, the cluster's wss://
    // relay) find ours installed instead of panicking.
    let _ = tessera::http_client::crypto_provider().install_default();
    let cli = Cli::parse();
    match cli.command {
        Command::Layouts { command } => match command {
            LayoutsCommand::Validate { files } => commands::layouts::validate(&files),
            LayoutsCommand::List => commands::layouts::list(),
            LayoutsCommand::Show { name } => commands::layouts::show(&name),
        },
        Command::Serve(args) => commands::serve::run(args),
        Command::Bot(args) => commands::bot::run(args),
    }
}
