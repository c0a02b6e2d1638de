//! The `vault-stork` command.

#![forbid(unsafe_code)]

use std::io::Write;
use std::process::ExitCode;

use vault_stork::cli::{self, Command};
use vault_stork::login;

fn main() -> ExitCode {
    let env = |name: &str| std::env::var(name).ok();
    let result = cli::parse(std::env::args_os(), &env).and_then(|command| match command {
        Command::Print(text) => {
            // A closed stdout (`vault-stork --help | head -1`) is not an error.
            let _ = std::io::stdout().write_all(text.as_bytes());
            Ok(())
        }
        Command::Login(args) => login::run(&args, &env).map(|_| ()),
    });

    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let _ = writeln!(std::io::stderr(), "vault-stork: error: {err}");
            ExitCode::from(err.status.code())
        }
    }
}
