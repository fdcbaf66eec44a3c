//! The command line: global flags, the command tree, the context every command runs in,
//! errors and exit codes.
//!
//! Each command group lives in its own module with its clap definition next to its handler,
//! so a new group (`check`, `bench`, `usage`, `policy ...`) is one module plus one variant of
//! [`Command`].

mod audit;
mod bench;
mod check;
mod config;
mod demo;
#[cfg(feature = "fleet")]
mod fleet;
mod invite;
mod key;
mod member;
mod org;
mod output;
mod policy;
mod policy_set;
mod remote;
mod remote_policy;
#[cfg(feature = "server")]
mod serve;
#[cfg(feature = "server")]
mod token;
// Shared with the benchmarks (`benches/support`), which use all of it.
#[allow(dead_code)]
mod synthetic;
mod usage;

use std::cell::OnceCell;
use std::fmt;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use orgstore::{Actor, Email, ErrorKind, Store, StoreBuilder};

use output::Out;

const GLOBAL: &str = "Global options";

/// Operator tool for an orgstore file: orgs, versioned org config, members, virtual keys and
/// the audit log.
#[derive(Parser)]
#[command(name = "orgstore", version)]
#[command(
    after_help = "Exit codes: 0 ok, 1 invalid input or conflict, 2 usage, 3 denied, 4 not found."
)]
struct Cli {
    /// The store file. Commands that change something create it (mode 0600) if absent;
    /// commands that only read refuse a missing file, and open a file they may not write
    /// read-only.
    #[arg(
        long,
        global = true,
        env = "ORGSTORE_DB",
        default_value = "./orgstore.redb",
        value_name = "PATH",
        help_heading = GLOBAL
    )]
    db: PathBuf,
    /// Print machine-readable JSON on stdout.
    #[arg(long, global = true, help_heading = GLOBAL)]
    json: bool,
    /// Act as this member (their role is enforced by the Cedar policies); default: the
    /// operator, who may do everything.
    #[arg(long = "as", global = true, value_name = "EMAIL", help_heading = GLOBAL)]
    as_member: Option<String>,
    /// What if: `policy explain` and `policy validate` evaluate the store's active policies
    /// plus DIR's `*.cedar` files. The store always enforces its own policy set; `policy
    /// apply DIR` changes it.
    #[arg(long, global = true, value_name = "DIR", help_heading = GLOBAL)]
    policies: Option<PathBuf>,
    /// Act through the admin API of a server at URL (http://HOST:PORT, `serve --listen`)
    /// with the bearer token in ORGSTORE_TOKEN, instead of on a file.
    #[arg(long, global = true, value_name = "URL", help_heading = GLOBAL)]
    remote: Option<String>,
    /// Act on the fleet whose truth is the PostgreSQL database at URL
    /// (postgres://USER:PASSWORD@HOST:PORT/DB): every change is committed fleet-wide, and
    /// --db names this process's local replica (created and filled from the fleet if
    /// absent, caught up before the command runs).
    #[cfg(feature = "fleet")]
    #[arg(
        long,
        global = true,
        env = "ORGSTORE_FLEET",
        value_name = "URL",
        hide_env_values = true,
        help_heading = GLOBAL
    )]
    fleet: Option<String>,
    #[command(subcommand)]
    command: Command,
}

/// The command tree. One variant per command group.
#[derive(Subcommand)]
enum Command {
    /// Create, list, show, delete, suspend and resume orgs.
    #[command(subcommand)]
    Org(org::OrgCmd),
    /// Read and change an org's versioned config (JSON merge patch).
    #[command(subcommand)]
    Config(config::ConfigCmd),
    /// Manage members and their roles.
    #[command(subcommand)]
    Member(member::MemberCmd),
    /// Create, list, show, revoke, rotate and import virtual keys.
    #[command(subcommand)]
    Key(key::KeyCmd),
    /// Show an org's audit log, newest first.
    Audit(audit::AuditArgs),
    /// Ask the gateway whether a key may call a model now; prints the decision as JSON
    /// (exit 0 allowed, 3 denied).
    Check(check::CheckArgs),
    /// Spend per period, budget left and rate use of an org or one of its keys.
    Usage(usage::UsageArgs),
    /// Measure the gateway check on a synthetic store: p50 / p99 latency and throughput.
    Bench(bench::BenchArgs),
    /// Build a temporary store with both multi-tenancy patterns, show what each key
    /// may do and try each one through the gateway (models, addresses, rate limit, budget).
    /// With --fleet URL (an empty database): three replicas share one truth; a key revoked
    /// on one is refused on all three, with the measured propagation latency.
    Demo,
    /// Validate policy files, explain an admin decision, export an org's Cedar entities.
    #[command(subcommand)]
    Policy(policy::PolicyCmd),
    /// Hold the store and serve its admin API on a Unix socket (`<db>.sock`); other
    /// `orgstore` commands then go through it.
    #[cfg(feature = "server")]
    Serve(serve::ServeArgs),
    /// Bearer tokens for the admin API over TCP (`serve --listen`).
    #[cfg(feature = "server")]
    #[command(subcommand)]
    Token(token::TokenCmd),
    /// Replicas sharing one truth on PostgreSQL (needs --fleet URL): create the fleet,
    /// show its replicas, run a replica.
    #[cfg(feature = "fleet")]
    #[command(subcommand)]
    Fleet(fleet::FleetCmd),
}

/// A failed command: the one line printed after `error: ` and the exit code.
#[derive(Debug)]
pub(crate) struct CliError {
    code: u8,
    message: String,
}

impl CliError {
    /// Invalid input found by the CLI itself (exit 1): `field: fix`.
    pub(crate) fn invalid(field: &str, fix: impl fmt::Display) -> Self {
        Self {
            code: 1,
            message: format!("{field}: {fix}"),
        }
    }

    /// A failure whose explanation is already on stdout (a denied `check`): nothing is
    /// printed on stderr.
    pub(crate) fn quiet(code: u8) -> Self {
        Self {
            code,
            message: String::new(),
        }
    }

    /// Not found (exit 4): `field: message`.
    pub(crate) fn not_found(field: &str, message: impl fmt::Display) -> Self {
        Self {
            code: 4,
            message: format!("{field}: {message}"),
        }
    }

    /// A library error re-attributed to the CLI flag that carried the value, keeping its
    /// exit code: e.g. `amount: ...` from `Usd::parse` becomes `--budget: ...`.
    pub(crate) fn for_flag(flag: &str, err: &orgstore::Error) -> Self {
        Self {
            code: exit_code(err),
            message: format!("{flag}: {}", err.message()),
        }
    }
}

impl CliError {
    /// An error about `field` re-attributed to the CLI flag that carried the value (as
    /// [`CliError::for_flag`], for an error answered by a server); any other unchanged.
    pub(crate) fn for_flag_if(mut self, field: &str, flag: &str) -> Self {
        if let Some(rest) = self.message.strip_prefix(&format!("{field}: ")) {
            self.message = format!("{flag}: {rest}");
        }
        self
    }
}

/// The exit code for a library error: 1 invalid input, conflict or a storage failure, 3
/// denied, 4 not found (2 is clap's usage error).
fn exit_code(err: &orgstore::Error) -> u8 {
    code_of(err.kind())
}

/// The exit code of an error kind.
fn code_of(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::Denied => 3,
        ErrorKind::NotFound => 4,
        _ => 1,
    }
}

/// The command or flag that helps with a library error: the library says what to do in
/// its own terms, the CLI names the command that does it.
fn hint(err: &orgstore::Error) -> Option<&'static str> {
    hint_for(err.kind(), err.field(), err.message())
}

/// [`hint`] from an error's parts (an error answered by a server arrives as its parts).
fn hint_for(kind: ErrorKind, field: &str, message: &str) -> Option<&'static str> {
    Some(match (kind, field) {
        (ErrorKind::NotFound, "db") => {
            "pass the right --db (or ORGSTORE_DB), or create a store with \
             `orgstore --db PATH org create <ORG> --owner <EMAIL>`"
        }
        (ErrorKind::NotFound, "org") => "see `org list`",
        (ErrorKind::NotFound, "key id") => "see `key list <ORG>`",
        // A policy set version's message names `policy history` itself.
        (ErrorKind::NotFound, "version") if !message.contains("policy set") => {
            "see `config history <ORG>`"
        }
        (ErrorKind::NotFound, "email") => "see `member list <ORG>`",
        (ErrorKind::Denied, "owner") => "pass your own email as --owner",
        (ErrorKind::Busy, "db") => {
            "another process holds it: every command goes through the admin API of a process \
             that serves it on `<db>.sock` (`orgstore serve`), except `serve` itself; stop the \
             other process, or serve the admin API from it"
        }
        (ErrorKind::Storage, "db") if message.contains("permission problem") => {
            "the read-only commands (list, show, get, ...) open such a file read-only by themselves"
        }
        _ => return None,
    })
}

impl CliError {
    /// An error answered by a server (its `code`, `field` and `message`), printed and
    /// exited with as the same error of a direct call.
    pub(crate) fn from_remote(code: &str, field: &str, message: &str) -> Self {
        let kind = match code {
            "denied" | "peer_refused" => ErrorKind::Denied,
            "not_found" => ErrorKind::NotFound,
            "conflict" => ErrorKind::Conflict,
            "busy" => ErrorKind::Busy,
            "unavailable" => ErrorKind::Unavailable,
            "storage" => ErrorKind::Storage,
            "corrupt" => ErrorKind::Corrupt,
            "too_new" => ErrorKind::TooNew,
            _ => ErrorKind::Invalid,
        };
        let mut message = if field.is_empty() {
            message.to_owned()
        } else {
            format!("{field}: {message}")
        };
        if let Some(hint) = hint_for(kind, field, &message) {
            message.push_str("; ");
            message.push_str(hint);
        }
        Self {
            code: code_of(kind),
            message,
        }
    }
}

impl From<orgstore::Error> for CliError {
    fn from(err: orgstore::Error) -> Self {
        let mut message = err.to_string();
        if let Some(hint) = hint(&err) {
            message.push_str("; ");
            message.push_str(hint);
        }
        // The library's line says what to do; its causes (redb, io, ...) say what happened.
        let mut cause = std::error::Error::source(&err);
        while let Some(c) = cause {
            message.push_str(&format!(" (cause: {c})"));
            cause = c.source();
        }
        Self {
            code: exit_code(&err),
            message,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One line, whatever the message holds.
        let line: String = self
            .message
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        f.write_str(&line)
    }
}

/// What every command runs with: the acting principal, the output mode and the store,
/// opened on first use (so that input errors are reported before any file is created).
pub(crate) struct Ctx {
    db: PathBuf,
    policies: Option<PathBuf>,
    /// Who acts: `--as EMAIL` or the operator.
    pub(crate) actor: Actor,
    /// `--json`.
    pub(crate) json: bool,
    store: OnceCell<Store>,
    remote: OnceCell<Option<remote::Remote>>,
    /// `--remote URL`: every command goes to that server or fails; no file is opened.
    remote_url: Option<String>,
    /// Open with [`StoreBuilder::recover_policies`]: set by the commands that read or
    /// change the policy set, the way out of a stored set this build does not load.
    pub(crate) recover_policies: std::cell::Cell<bool>,
    /// `--fleet URL`: the store at `db` is a replica of that fleet.
    #[cfg(feature = "fleet")]
    pub(crate) fleet: Option<String>,
}

impl Ctx {
    /// The server holding the store, when one answers on its socket: the commands it serves
    /// go through it.
    pub(crate) fn remote(&self) -> Option<&remote::Remote> {
        self.remote
            .get_or_init(|| {
                let member = match &self.actor {
                    Actor::Member(e) => Some(e),
                    _ => None,
                };
                remote::Remote::detect(&self.db, member)
            })
            .as_ref()
    }

    /// The server of `--remote URL`, when given (not one found on the store's socket).
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    pub(crate) fn tcp_remote(&self) -> Option<&remote::Remote> {
        self.remote_url.as_ref().and(self.remote())
    }

    /// With `--remote`, a command that is not served by the admin API stops here instead
    /// of opening a local file.
    pub(crate) fn local_only(&self) -> Result<(), CliError> {
        match &self.remote_url {
            Some(url) => Err(CliError::invalid(
                "--remote",
                format!(
                    "this command is not served by the admin API at {url}; run it on the \
                     server's host"
                ),
            )),
            None => Ok(()),
        }
    }

    /// The store file (`--db`).
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    pub(crate) fn db(&self) -> &std::path::Path {
        &self.db
    }

    /// A store builder with the global options applied.
    pub(crate) fn builder(&self) -> StoreBuilder {
        // `--policies` is a "what if" for `policy validate`, `explain` and `test`: the store
        // always enforces its own policy set (`policy apply` changes it).
        if self.recover_policies.get() {
            StoreBuilder::new().recover_policies()
        } else {
            StoreBuilder::new()
        }
    }

    /// The store at `--db`, opened (or created) on first use: for commands that write.
    pub(crate) fn store(&self) -> Result<&Store, CliError> {
        self.store_with(self.builder())
    }

    /// As [`Ctx::store`], opened (on first use) by `builder`.
    pub(crate) fn store_with(&self, builder: StoreBuilder) -> Result<&Store, CliError> {
        if let Some(s) = self.store.get() {
            return Ok(s);
        }
        self.local_only()?;
        let opened = self.open_with(builder)?;
        Ok(self.store.get_or_init(|| opened))
    }

    /// The store at `--db` for a command that only reads: a missing file is refused (it
    /// names the path and the command that creates a store) instead of created, and a file
    /// this user may read but not write is opened read-only.
    pub(crate) fn read_store(&self) -> Result<&Store, CliError> {
        if let Some(s) = self.store.get() {
            return Ok(s);
        }
        self.local_only()?;
        #[cfg(feature = "fleet")]
        if self.fleet.is_some() {
            // A replica is created and filled from the fleet when absent.
            let opened = self.open_with(self.builder())?;
            return Ok(self.store.get_or_init(|| opened));
        }
        let builder = self.builder().must_exist();
        let opened = if writable(&self.db) {
            builder.open(&self.db)?
        } else {
            builder.read_only().open(&self.db)?
        };
        Ok(self.store.get_or_init(|| opened))
    }
}

impl Ctx {
    /// Opens `--db` with `builder`: as a replica of `--fleet` when given.
    fn open_with(&self, builder: StoreBuilder) -> Result<Store, CliError> {
        #[cfg(feature = "fleet")]
        if let Some(url) = &self.fleet {
            return Ok(builder.fleet(url).open(&self.db)?);
        }
        Ok(builder.open(&self.db)?)
    }
}

/// Whether this process may open `path` for writing. Only a refusal by permissions or a
/// read-only file system says no; any other failure is left to the open to report.
fn writable(path: &std::path::Path) -> bool {
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
    {
        Ok(_) => true,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
        ),
    }
}

/// Parses the command line, runs the command, prints its output or its error, and returns
/// the exit code.
pub(crate) fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut out = Out::default();
    let result = run(cli, &mut out);
    out.flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if !e.message.is_empty() {
                output::print_error(&e);
            }
            ExitCode::from(e.code)
        }
    }
}

fn run(cli: Cli, out: &mut Out) -> Result<(), CliError> {
    let actor = match &cli.as_member {
        Some(s) => Actor::Member(Email::parse(s).map_err(|e| CliError::for_flag("--as", &e))?),
        None => Actor::Operator,
    };
    let remote = match &cli.remote {
        Some(url) => {
            let member = match &actor {
                Actor::Member(e) => Some(e),
                _ => None,
            };
            let token = std::env::var("ORGSTORE_TOKEN").ok();
            Some(Some(remote::Remote::tcp(url, token, member)?))
        }
        None => None,
    };
    let ctx = Ctx {
        db: cli.db,
        policies: cli.policies,
        actor,
        json: cli.json,
        store: OnceCell::new(),
        remote: remote.map_or_else(OnceCell::new, OnceCell::from),
        remote_url: cli.remote,
        recover_policies: std::cell::Cell::new(false),
        #[cfg(feature = "fleet")]
        fleet: cli.fleet,
    };
    match cli.command {
        Command::Org(cmd) => org::run(&ctx, cmd, out),
        Command::Config(cmd) => config::run(&ctx, cmd, out),
        Command::Member(cmd) => member::run(&ctx, cmd, out),
        Command::Key(cmd) => key::run(&ctx, cmd, out),
        Command::Audit(args) => audit::run(&ctx, args, out),
        Command::Check(args) => check::run(&ctx, args, out),
        Command::Usage(args) => usage::run(&ctx, args, out),
        Command::Bench(args) => bench::run(&ctx, args, out),
        #[cfg(feature = "fleet")]
        Command::Demo if ctx.fleet.is_some() => fleet::demo(&ctx, out),
        Command::Demo => demo::run(&ctx, out),
        Command::Policy(cmd) => policy::run(&ctx, cmd, out),
        #[cfg(feature = "server")]
        Command::Serve(args) => serve::run(&ctx, args, out),
        #[cfg(feature = "server")]
        Command::Token(cmd) => token::run(&ctx, cmd, out),
        #[cfg(feature = "fleet")]
        Command::Fleet(cmd) => fleet::run(&ctx, cmd, out),
    }
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    #[test]
    fn clap_definitions_are_consistent() {
        Cli::command().debug_assert();
    }
}
