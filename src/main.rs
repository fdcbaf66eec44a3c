//! `orgstore`: the operator's command-line tool over a store file.
//!
//! See `docs/cli.md` for the reference; `orgstore demo` shows the seed's multi-tenancy
//! patterns on a temporary store.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
