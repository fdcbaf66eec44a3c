//! `orgstore`: the operator's command-line tool over a store file.
//!
//! See `docs/cli.md` for the reference; `orgstore demo` shows both multi-tenancy patterns
//! (one org per customer, one org with per-key isolation) on a temporary store.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
