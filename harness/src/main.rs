//! `harness`: see the library's `cli` module for the verbs and exit codes.

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

use harness::cli::{Cli, Command};
use harness::workspace::Workspace;
use harness::{compare, kernel_build, matrix, mutants, reproduce, run, variants, verbs};

fn main() -> ExitCode {
    // clap prints usage errors itself and exits with 2.
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("harness: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn dispatch(cli: Cli) -> Result<i32> {
    let ws = match cli.root {
        Some(root) => Workspace::at(root)?,
        None => Workspace::locate()?,
    }
    .with_variants_dir(cli.variants);
    match cli.command {
        Command::Build { variant } => {
            let variant = variants::load(&ws, &variant)?;
            let image = kernel_build::build(&ws, &variant, kernel_build::Output::Show)?;
            println!("{}", image.path.display());
            Ok(0)
        }
        Command::Run(args) => run::execute(&ws, &args.into_options()),
        Command::Explain(args) => verbs::explain::execute(&ws, &args.into_options()),
        Command::List { mutants: false } => {
            print!("{}", variants::listing(&variants::load_all(&ws)?));
            Ok(0)
        }
        Command::List { mutants: true } => {
            print!("{}", mutants::listing(&mutants::load_all(&ws)?));
            Ok(0)
        }
        Command::Mutants(args) => mutants::execute(&ws, &args.into_options()),
        Command::Matrix(args) => matrix::execute(&ws, &args.into_options()),
        Command::Merge { out, shards } => verbs::merge::merge(&out, &shards),
        Command::Plot { input, out } => verbs::plot::plot(&ws, input.as_deref(), out.as_deref()),
        Command::Gate(args) => {
            let rules = ws.variants_dir().join("gates.toml");
            if args.self_test {
                let rules = args.rules.clone().unwrap_or(rules);
                return verbs::selftest::self_test(&ws, &rules, &args.qemu);
            }
            verbs::gate::gate(&ws, &args.into_options(rules))
        }
        Command::Reproduce(args) => reproduce::execute(&ws, &args.into_options()),
        Command::Baseline { input } => verbs::baseline::baseline(&ws, &input),
        Command::Compare(args) => compare::execute(&ws, &args.into_options()),
        Command::Export { input, out } => {
            verbs::export::export(&ws, input.as_deref(), out.as_deref())
        }
    }
}
