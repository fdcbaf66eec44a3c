//! `orgstore serve`: hold the store and serve its admin API on a Unix socket until SIGINT or
//! SIGTERM.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use orgstore::server::{AdminServer, default_socket_path};

use super::output::Out;
use super::{CliError, Ctx};

#[derive(Args)]
pub(crate) struct ServeArgs {
    /// The socket to listen on (default: `<db>.sock` beside the store file). Only the store
    /// file's owner and root may connect.
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Also serve on this TCP address (e.g. 127.0.0.1:8181), every request with
    /// `Authorization: Bearer <token>` (see `token create`). Loopback only: put a
    /// TLS-terminating proxy in front for other hosts.
    #[arg(long, value_name = "ADDR")]
    listen: Option<std::net::SocketAddr>,
    /// Apply the `*.cedar` files of this directory as the store's policy set whenever they
    /// change (within a second); an edit that does not validate keeps the active set and is
    /// written to the policy log (`policy log`).
    #[arg(long, value_name = "DIR")]
    watch_policies: Option<PathBuf>,
}

pub(crate) fn run(ctx: &Ctx, args: ServeArgs, _out: &mut Out) -> Result<(), CliError> {
    let store = match args.watch_policies {
        Some(dir) => ctx.store_with(ctx.builder().watch_policies(dir))?,
        None => ctx.store()?,
    };
    let socket = args.socket.unwrap_or_else(|| default_socket_path(&ctx.db));
    let running = AdminServer::new(store)
        .socket_path(&socket)
        .stop_on_signals()
        .serve_unix(&ctx.db)?;
    // Said at once (the command's other output comes at its end, which is the shutdown).
    let _ = writeln!(
        std::io::stderr().lock(),
        "serving the admin API of `{}` on `{}`; stop with Ctrl-C",
        ctx.db.display(),
        socket.display()
    );
    let tcp = match args.listen {
        Some(addr) => {
            let t = AdminServer::new(store).serve_tcp(&ctx.db, addr)?;
            let _ = writeln!(
                std::io::stderr().lock(),
                "serving the admin API on http://{} (bearer tokens)",
                t.local_addr()
                    .map_or_else(|| addr.to_string(), |a| a.to_string())
            );
            Some(t)
        }
        None => None,
    };
    running.wait();
    // The socket server stopped at a signal: the TCP one stops with it.
    drop(tcp);
    Ok(())
}
