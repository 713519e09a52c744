use std::process::ExitCode;

use clap::Parser;
use tessera::cli::{Cli, Command, LayoutsCommand};
use tessera::commands;

fn main() -> ExitCode {
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
