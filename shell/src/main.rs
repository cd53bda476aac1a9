//! `mqlite`: the command-line shell of the mqlite message-queue database.

mod render;
mod repl;
mod shell;

use std::io::{self, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use mqlite::Database;

use crate::render::{Mode, RenderOptions};
use crate::shell::{Shell, ShellError};

/// Run statements against an mqlite database, or open an interactive shell.
#[derive(Debug, Parser)]
#[command(name = "mqlite", version)]
struct Cli {
    /// The database file; created if missing (unless --readonly).
    database: PathBuf,
    /// Statements to run, separated by `;`. Without them, standard input is
    /// run, or the interactive shell starts when it is a terminal.
    #[arg(allow_hyphen_values = true)]
    statements: Option<String>,
    /// Output format [default: table on a terminal, jsonl otherwise].
    #[arg(long, value_enum)]
    mode: Option<Mode>,
    /// Same as --mode jsonl.
    #[arg(long, conflicts_with = "mode")]
    json: bool,
    /// Open without writing; never create the file.
    #[arg(long)]
    readonly: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let mode = match (cli.json, cli.mode) {
        (true, _) => Mode::Jsonl,
        (false, Some(mode)) => mode,
        (false, None) if io::stdout().is_terminal() => Mode::Table,
        (false, None) => Mode::Jsonl,
    };
    let db = match Database::builder(&cli.database)
        .read_only(cli.readonly)
        .open()
    {
        Ok(db) => db,
        Err(e) => {
            // Most open errors name the file already; say it once.
            let path = cli.database.display().to_string();
            let message = e.to_string();
            if message.contains(&path) {
                anyhow::bail!(message);
            }
            anyhow::bail!("cannot open {path}: {message}");
        }
    };
    let mut shell = Shell::new(db, RenderOptions::new(mode));

    if cli.statements.is_none() && io::stdin().is_terminal() {
        repl::run(&mut shell, &cli.database)?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Err(e) = shell.handle_ctrl_c(false) {
        eprintln!("warning: Ctrl-C will not stop running statements: {e}");
    }
    // A script given as an argument is parsed whole first (a syntax error
    // anywhere runs nothing); standard input runs each statement as soon as
    // it is complete.
    let result = match &cli.statements {
        Some(statements) => shell.run_script(statements),
        None => shell.run_stream(&mut io::stdin().lock(), "standard input"),
    };
    Ok(match result {
        // A script must end its transactions; dropping the session rolls back.
        Ok(_) if shell.in_transaction() => {
            eprintln!("Error: BEGIN without COMMIT or ROLLBACK: the transaction was rolled back");
            ExitCode::FAILURE
        }
        Ok(_) => ExitCode::SUCCESS,
        // Whoever closed the pipe has what they wanted.
        Err(ShellError::BrokenPipe) => ExitCode::SUCCESS,
        Err(ShellError::Interrupted) => {
            eprintln!("{}", ShellError::Interrupted);
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    })
}
