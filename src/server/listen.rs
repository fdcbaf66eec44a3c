//! The Unix socket: binding (mode 0600, stale sockets replaced), the peer check, the accept
//! loop with its connection limit and timeouts, graceful shutdown.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::UnixStream;
use tokio::sync::{Semaphore, oneshot};

use super::reply::ApiError;
use super::routes::handle;
use super::{RunningServer, ServerLimits, io_error};
use crate::error::{Error, ErrorKind};

/// The uid owning the store file: the one user (besides root) the socket admits.
pub(super) fn owner_of(db: &Path) -> Result<u32, Error> {
    std::fs::metadata(db)
        .map(|m| m.uid())
        .map_err(|e| io_error("db", "read the owner of", db, e))
}

/// Binds the socket and starts the server's thread and runtime.
pub(super) fn start(
    socket: PathBuf,
    owner: u32,
    router: axum::Router,
    limits: ServerLimits,
    signals: bool,
) -> Result<RunningServer, Error> {
    clear_stale(&socket)?;
    let std_listener = std::os::unix::net::UnixListener::bind(&socket)
        .map_err(|e| io_error("socket", "listen on", &socket, e))?;
    // Only the owner may even connect; the peer check below is the real gate (root passes
    // file modes).
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))
        .and_then(|()| std_listener.set_nonblocking(true))
        .map_err(|e| io_error("socket", "set up", &socket, e))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("orgstore-admin")
        .enable_all()
        .build()
        .map_err(|e| io_error("socket", "start the runtime for", &socket, e))?;
    let listener = {
        let _entered = runtime.enter();
        tokio::net::UnixListener::from_std(std_listener)
            .map_err(|e| io_error("socket", "listen on", &socket, e))?
    };
    let (stop, stopped) = oneshot::channel();
    let path = socket.clone();
    let thread = std::thread::Builder::new()
        .name("orgstore-admin".into())
        .spawn(move || {
            runtime.block_on(serve(listener, owner, router, limits, stopped, signals));
            let _ = std::fs::remove_file(&path);
            tracing::info!(socket = %path.display(), "admin server stopped");
        })
        .map_err(|e| io_error("socket", "start a thread for", &socket, e))?;
    tracing::info!(socket = %socket.display(), "admin server listening");
    Ok(RunningServer {
        socket,
        stop: Some(stop),
        thread: Some(thread),
    })
}

/// Removes a socket file no server answers on; refuses one that a live server answers on
/// and any path that is not a socket.
fn clear_stale(socket: &Path) -> Result<(), Error> {
    let Ok(meta) = std::fs::symlink_metadata(socket) else {
        return Ok(());
    };
    if !meta.file_type().is_socket() {
        return Err(Error::new(
            ErrorKind::Conflict,
            "socket",
            format!(
                "`{}` exists and is not a socket; remove it or choose another socket path",
                socket.display()
            ),
        ));
    }
    if std::os::unix::net::UnixStream::connect(socket).is_ok() {
        return Err(Error::new(
            ErrorKind::Busy,
            "socket",
            format!(
                "a server already answers on `{}`; stop it or choose another socket path",
                socket.display()
            ),
        ));
    }
    std::fs::remove_file(socket).map_err(|e| io_error("socket", "remove the stale", socket, e))
}

async fn stop_signal(signals: bool) {
    if !signals {
        return std::future::pending().await;
    }
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}

async fn serve(
    listener: tokio::net::UnixListener,
    owner: u32,
    router: axum::Router,
    limits: ServerLimits,
    mut stopped: oneshot::Receiver<()>,
    signals: bool,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let signal = stop_signal(signals);
    tokio::pin!(signal);
    loop {
        let permit = tokio::select! {
            _ = &mut stopped => break,
            _ = &mut signal => break,
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let stream = tokio::select! {
            _ = &mut stopped => break,
            _ = &mut signal => break,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    // Out of descriptors and the like: wait a little instead of spinning.
                    tracing::warn!(error = %e, "admin socket accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let router = router.clone();
        let limits = limits.clone();
        tokio::spawn(async move {
            connection(stream, owner, router, &limits).await;
            drop(permit);
        });
    }
    // Graceful: no new connections; the ones in flight finish within their timeouts.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(
        limits.header_timeout + limits.request_timeout,
        slots.acquire_many(all),
    )
    .await;
}

/// Whether a peer may use the socket: the store file's owner or root.
fn admitted(stream: &UnixStream, owner: u32) -> Result<(), u32> {
    match stream.peer_cred() {
        Ok(c) if c.uid() == owner || c.uid() == 0 => Ok(()),
        Ok(c) => Err(c.uid()),
        Err(_) => Err(u32::MAX),
    }
}

async fn connection(stream: UnixStream, owner: u32, router: axum::Router, limits: &ServerLimits) {
    let refused = admitted(&stream, owner).err();
    if let Some(uid) = refused {
        tracing::warn!(
            uid,
            "admin socket peer refused: not the store file's owner or root"
        );
    }
    let request_timeout = limits.request_timeout;
    let service = hyper::service::service_fn(move |req| {
        let router = router.clone();
        async move {
            if refused.is_some() {
                return Ok::<_, std::convert::Infallible>(
                    ApiError::new(
                        403,
                        "peer_refused",
                        "this socket serves the store file's owner and root only; run the \
                         command as that user",
                    )
                    .response(),
                );
            }
            match tokio::time::timeout(request_timeout, handle(router, req)).await {
                Ok(r) => Ok(r),
                Err(_) => Ok(ApiError::new(
                    503,
                    "timeout",
                    "the request took too long (a slow body, or a busy store); nothing was \
                     changed unless the response says so; retry",
                )
                .response()),
            }
        }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), service);
    // A hard cap per connection: one request, its headers and its handling.
    let cap = limits.header_timeout + limits.request_timeout + std::time::Duration::from_secs(1);
    match tokio::time::timeout(cap, conn).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(error = %e, "admin connection ended"),
        Err(_) => tracing::debug!("admin connection closed: too slow"),
    }
}
