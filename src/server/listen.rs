//! The Unix socket: binding (mode 0600, stale sockets replaced), the peer check, the accept
//! loop with its connection limit and timeouts, graceful shutdown.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::{Semaphore, oneshot, watch};

use super::reply::ApiError;
use super::routes::handle;
use super::tokens::{TokenHolder, Tokens};
use super::{ACT_AS_HEADER, RunningServer, ServerLimits, TOKEN_ID_HEADER, io_error};
use crate::error::{Error, ErrorKind};

/// The uid owning the store file: the one user (besides root) the socket admits.
pub(super) fn owner_of(db: &Path) -> Result<u32, Error> {
    std::fs::metadata(db)
        .map(|m| m.uid())
        .map_err(|e| io_error("db", "read the owner of", db, e))
}

/// Binds the Unix socket and starts the server's thread and runtime.
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
    let runtime = runtime(&socket)?;
    let listener = {
        let _entered = runtime.enter();
        UnixListener::from_std(std_listener)
            .map_err(|e| io_error("socket", "listen on", &socket, e))?
    };
    tracing::info!(socket = %socket.display(), "admin server listening");
    spawn(
        runtime,
        Listener::Unix { listener, owner },
        router,
        limits,
        signals,
        (Some(socket), None),
    )
}

/// Binds a TCP address (bearer tokens from `tokens`) and starts the server.
pub(super) fn start_tcp(
    addr: SocketAddr,
    tokens: Tokens,
    router: axum::Router,
    limits: ServerLimits,
    signals: bool,
) -> Result<RunningServer, Error> {
    let shown = PathBuf::from(addr.to_string());
    let std_listener = std::net::TcpListener::bind(addr)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| io_error("listen", "listen on", &shown, e))?;
    let local = std_listener
        .local_addr()
        .map_err(|e| io_error("listen", "listen on", &shown, e))?;
    let runtime = runtime(&shown)?;
    let listener = {
        let _entered = runtime.enter();
        TcpListener::from_std(std_listener)
            .map_err(|e| io_error("listen", "listen on", &shown, e))?
    };
    tracing::info!(%local, "admin server listening");
    let failures = Arc::new(Failures::default());
    spawn(
        runtime,
        Listener::Tcp {
            listener,
            tokens,
            failures,
        },
        router,
        limits,
        signals,
        (None, Some(local)),
    )
}

fn runtime(what: &Path) -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("orgstore-admin")
        .enable_all()
        .build()
        .map_err(|e| io_error("socket", "start the runtime for", what, e))
}

fn spawn(
    runtime: tokio::runtime::Runtime,
    listener: Listener,
    router: axum::Router,
    limits: ServerLimits,
    signals: bool,
    (socket, addr): (Option<PathBuf>, Option<SocketAddr>),
) -> Result<RunningServer, Error> {
    let (stop, stopped) = oneshot::channel();
    let path = socket.clone();
    let thread = std::thread::Builder::new()
        .name("orgstore-admin".into())
        .spawn(move || {
            runtime.block_on(serve(listener, router, limits, stopped, signals));
            if let Some(path) = &path {
                let _ = std::fs::remove_file(path);
            }
            tracing::info!("admin server stopped");
        })
        .map_err(|e| {
            io_error(
                "socket",
                "start a thread for",
                Path::new("the admin server"),
                e,
            )
        })?;
    Ok(RunningServer {
        socket: socket.unwrap_or_default(),
        addr,
        stop: Some(stop),
        thread: Some(thread),
    })
}

/// Failed authentications per client address: each answer to a failure waits longer
/// (50 ms doubling, at most 3.2 s) until one succeeds.
#[derive(Default)]
struct Failures(parking_lot::Mutex<HashMap<IpAddr, u32>>);

impl Failures {
    fn fail(&self, ip: IpAddr) -> Duration {
        let mut m = self.0.lock();
        if m.len() > 65_536 {
            m.clear();
        }
        let n = m.entry(ip).or_insert(0);
        *n = n.saturating_add(1);
        Duration::from_millis(50u64 << (*n - 1).min(6))
    }

    fn clear(&self, ip: IpAddr) {
        self.0.lock().remove(&ip);
    }
}

enum Listener {
    Unix {
        listener: UnixListener,
        owner: u32,
    },
    Tcp {
        listener: TcpListener,
        tokens: Tokens,
        failures: Arc<Failures>,
    },
}

/// How a connection's requests are authenticated.
enum Auth {
    /// A socket peer: admitted (the store file's owner or root) or refused (its uid).
    Socket(Option<u32>),
    /// A TCP client: a bearer token on every request.
    Bearer {
        tokens: Tokens,
        peer: IpAddr,
        failures: Arc<Failures>,
    },
}

enum Accepted {
    Unix(UnixStream, Auth),
    Tcp(TcpStream, Auth),
}

impl Listener {
    async fn accept(&self) -> std::io::Result<Accepted> {
        match self {
            Listener::Unix { listener, owner } => {
                let (s, _) = listener.accept().await?;
                let refused = admitted(&s, *owner).err();
                if let Some(uid) = refused {
                    tracing::warn!(
                        uid,
                        "admin socket peer refused: not the store file's owner or root"
                    );
                }
                Ok(Accepted::Unix(s, Auth::Socket(refused)))
            }
            Listener::Tcp {
                listener,
                tokens,
                failures,
            } => {
                let (s, peer) = listener.accept().await?;
                Ok(Accepted::Tcp(
                    s,
                    Auth::Bearer {
                        tokens: tokens.clone(),
                        peer: peer.ip(),
                        failures: failures.clone(),
                    },
                ))
            }
        }
    }
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
    listener: Listener,
    router: axum::Router,
    limits: ServerLimits,
    mut stopped: oneshot::Receiver<()>,
    signals: bool,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    // Tells open connections to finish the request in progress and close.
    let (closing, closed) = watch::channel(false);
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
                Ok(a) => a,
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
        let closed = closed.clone();
        tokio::spawn(async move {
            match stream {
                Accepted::Unix(s, auth) => connection(s, auth, router, &limits, closed).await,
                Accepted::Tcp(s, auth) => connection(s, auth, router, &limits, closed).await,
            }
            drop(permit);
        });
    }
    // Graceful: no new connections; idle kept-alive ones close at once, the ones with a
    // request in flight answer it and close, within their timeouts.
    let _ = closing.send(true);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(
        limits.header_timeout + limits.request_timeout + Duration::from_secs(1),
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

/// Whether `req` accepts an invitation (the one route a TCP client may call without a
/// bearer token: the invitation's token in the body is the credential).
fn is_accept(req: &http::Request<hyper::body::Incoming>) -> bool {
    req.method() == http::Method::POST && req.uri().path() == "/v1/invites/accept"
}

/// The bearer token of a request, if it has one.
fn bearer(headers: &http::HeaderMap) -> Option<String> {
    let v = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

/// Authenticates a request: `Ok` with the request to serve (a member token's email set as
/// the acting member, whatever the client sent), or the refusal to answer.
async fn authenticate(
    auth: &Auth,
    mut req: http::Request<hyper::body::Incoming>,
) -> Result<http::Request<hyper::body::Incoming>, ApiError> {
    // Set by the server only.
    req.headers_mut().remove(TOKEN_ID_HEADER);
    match auth {
        Auth::Socket(None) => Ok(req),
        Auth::Socket(Some(_)) => Err(ApiError::new(
            403,
            "peer_refused",
            "this socket serves the store file's owner and root only; run the command as that \
             user",
        )),
        Auth::Bearer {
            tokens,
            peer,
            failures,
        } => {
            let presented = bearer(req.headers());
            if presented.is_none() && is_accept(&req) {
                // The invitation's token is the credential: anonymous, as nobody.
                req.headers_mut().remove(ACT_AS_HEADER);
                return Ok(req);
            }
            let tokens = tokens.clone();
            let found = match presented {
                Some(t) => tokio::task::spawn_blocking(move || tokens.verify(&t))
                    .await
                    .ok()
                    .flatten(),
                None => None,
            };
            let Some(info) = found else {
                let wait = failures.fail(*peer);
                tracing::warn!(%peer, "admin request with no valid bearer token");
                tokio::time::sleep(wait).await;
                return Err(ApiError::new(
                    401,
                    "unauthorized",
                    "send `Authorization: Bearer <token>` with a live token (`orgstore token \
                     create`)",
                ));
            };
            failures.clear(*peer);
            tracing::info!(token = info.id, "admin request authenticated");
            let id = http::HeaderValue::from_str(&info.id)
                .map_err(|_| ApiError::new(401, "unauthorized", "the token's id cannot be used"))?;
            req.headers_mut().insert(TOKEN_ID_HEADER, id);
            match &info.holder {
                TokenHolder::Operator => {}
                TokenHolder::Member(email) => {
                    let v = http::HeaderValue::from_str(email.as_str()).map_err(|_| {
                        ApiError::new(401, "unauthorized", "the token's email cannot be used")
                    })?;
                    req.headers_mut().insert(ACT_AS_HEADER, v);
                }
            }
            Ok(req)
        }
    }
}

async fn connection<I>(
    io: I,
    auth: Auth,
    router: axum::Router,
    limits: &ServerLimits,
    mut closed: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let auth = Arc::new(auth);
    let request_timeout = limits.request_timeout;
    let service = hyper::service::service_fn(move |req| {
        let router = router.clone();
        let auth = auth.clone();
        async move {
            let req = match authenticate(&auth, req).await {
                Ok(r) => r,
                Err(e) => return Ok::<_, std::convert::Infallible>(e.response()),
            };
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
    // Kept alive between requests: the header timeout also bounds the idle time before
    // the next request's headers.
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), service);
    let mut conn = std::pin::pin!(conn);
    // Never shorter than the header timeout: a connection always gets to send a request.
    let age = limits.max_connection_age.max(limits.header_timeout);
    let ended = tokio::select! {
        ended = conn.as_mut() => Some(ended),
        () = tokio::time::sleep(age) => None,
        _ = closed.wait_for(|c| *c) => None,
    };
    let ended = match ended {
        Some(ended) => Ok(ended),
        None => {
            // Old enough, or the server is stopping: finish the request in progress (an
            // idle connection closes at once), then close.
            conn.as_mut().graceful_shutdown();
            let finish = limits.header_timeout + limits.request_timeout + Duration::from_secs(1);
            tokio::time::timeout(finish, conn).await
        }
    };
    match ended {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(error = %e, "admin connection ended"),
        Err(_) => tracing::debug!("admin connection closed: too slow"),
    }
}
