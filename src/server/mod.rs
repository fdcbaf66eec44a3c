//! The admin API (cargo feature `server`): HTTP/1.1 + JSON over a Unix socket, served on
//! threads and a tokio runtime of its own, so a gateway that embeds it keeps its hot path
//! untouched.
//!
//! The socket (by default `<db>.sock` beside the store file, mode 0600) admits only peers
//! whose credentials (`SO_PEERCRED`) are the store file's owner or root; such a caller is the
//! operator and may act as a member with the `x-orgstore-as: EMAIL` header, as the CLI's
//! `--as` does. Every request is authorized by the store's Cedar policies inside the
//! transaction that commits it, exactly as a direct library call.
//!
//! ```no_run
//! # fn main() -> Result<(), orgstore::Error> {
//! use orgstore::Store;
//! use orgstore::server::AdminServer;
//! let store = Store::open("orgstore.redb")?;
//! let running = AdminServer::new(&store).serve_unix("orgstore.redb")?;
//! // ... the gateway checks keys with store.gateway() ...
//! running.shutdown();
//! # Ok(())
//! # }
//! ```

mod body;
mod listen;
mod policy_set;
mod reply;
mod routes;
mod tokens;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, ErrorKind};
use crate::store::Store;

pub use routes::{OPENAPI, routes};
pub use tokens::{MEMBER_TOKEN_PREFIX, OPERATOR_TOKEN_PREFIX, TokenHolder, TokenInfo, Tokens};

/// The header with which the operator on the socket acts as a member (`--as` of the CLI).
pub const ACT_AS_HEADER: &str = "x-orgstore-as";

/// The header the server sets to the id of the bearer token a request came with (one a
/// client sends is dropped), so the store audits changes with the token used.
pub(crate) const TOKEN_ID_HEADER: &str = "x-orgstore-token-id";

/// The socket path a server of the store at `db` listens on by default: `<db>.sock`.
///
/// ```
/// use std::path::Path;
/// assert_eq!(
///     orgstore::server::default_socket_path(Path::new("/srv/orgstore.redb")),
///     Path::new("/srv/orgstore.redb.sock"),
/// );
/// ```
pub fn default_socket_path(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(".sock");
    PathBuf::from(s)
}

/// The limits of an admin server: how much a client may send and for how long.
///
/// ```
/// use std::time::Duration;
/// let limits = orgstore::server::ServerLimits::default();
/// assert_eq!(limits.max_body_bytes, 2 << 20);
/// assert!(limits.header_timeout <= Duration::from_secs(10));
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServerLimits {
    /// The largest request body accepted; a larger one is answered 413.
    pub max_body_bytes: usize,
    /// How long a client may take to send a request's headers, and how long a kept-alive
    /// connection may sit idle between requests (the connection is closed after that).
    pub header_timeout: Duration,
    /// How long a request may take from its headers to its response, reading the body
    /// included (answered 503 after that, the operation not started or rolled back whole).
    pub request_timeout: Duration,
    /// Connections served at once; more wait in the socket's backlog.
    pub max_connections: usize,
    /// How long one connection is kept (never less than `header_timeout`): after that the
    /// server finishes the request in progress (within `request_timeout`) and closes it, so
    /// no client holds a connection for good. Clients reconnect; as with any HTTP server
    /// that closes idle kept-alive connections, a request sent just as its connection closes
    /// gets no answer and was not applied, so clients retry it on a new connection (HTTP
    /// client pools do so for idempotent methods).
    pub max_connection_age: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: 2 << 20,
            header_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            max_connections: 256,
            max_connection_age: Duration::from_secs(60),
        }
    }
}

impl ServerLimits {
    /// Sets the header timeout.
    ///
    /// ```
    /// use std::time::Duration;
    /// let l = orgstore::server::ServerLimits::default().header_timeout(Duration::from_millis(200));
    /// assert_eq!(l.header_timeout, Duration::from_millis(200));
    /// ```
    pub fn header_timeout(mut self, t: Duration) -> Self {
        self.header_timeout = t;
        self
    }

    /// Sets the request timeout.
    ///
    /// ```
    /// use std::time::Duration;
    /// let l = orgstore::server::ServerLimits::default().request_timeout(Duration::from_secs(1));
    /// assert_eq!(l.request_timeout, Duration::from_secs(1));
    /// ```
    pub fn request_timeout(mut self, t: Duration) -> Self {
        self.request_timeout = t;
        self
    }

    /// Sets the body size limit.
    ///
    /// ```
    /// let l = orgstore::server::ServerLimits::default().max_body_bytes(1024);
    /// assert_eq!(l.max_body_bytes, 1024);
    /// ```
    pub fn max_body_bytes(mut self, n: usize) -> Self {
        self.max_body_bytes = n;
        self
    }

    /// Sets how long one connection is kept (see [`ServerLimits::max_connection_age`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// let l = orgstore::server::ServerLimits::default().max_connection_age(Duration::from_secs(5));
    /// assert_eq!(l.max_connection_age, Duration::from_secs(5));
    /// ```
    pub fn max_connection_age(mut self, t: Duration) -> Self {
        self.max_connection_age = t;
        self
    }

    /// Sets the connection limit (at least 1).
    ///
    /// ```
    /// let l = orgstore::server::ServerLimits::default().max_connections(8);
    /// assert_eq!(l.max_connections, 8);
    /// ```
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }
}

/// An admin API over a store, not yet serving. See the [module docs](self).
///
/// ```
/// let store = orgstore::Store::open_temporary().unwrap();
/// let server = orgstore::server::AdminServer::new(&store);
/// # drop(server);
/// ```
pub struct AdminServer {
    store: Store,
    limits: ServerLimits,
    socket: Option<PathBuf>,
    signals: bool,
    non_loopback: bool,
}

impl AdminServer {
    /// An admin API over `store` (a handle of it: the store stays usable by the caller).
    pub fn new(store: &Store) -> Self {
        Self {
            store: store.clone(),
            limits: ServerLimits::default(),
            socket: None,
            signals: false,
            non_loopback: false,
        }
    }

    /// Lets [`AdminServer::serve_tcp`] listen on an address that is not loopback. The API
    /// speaks plain HTTP: only do this behind a TLS-terminating proxy on the same host or a
    /// network you trust, since bearer tokens travel in the clear otherwise.
    ///
    /// ```
    /// let store = orgstore::Store::open_temporary().unwrap();
    /// let server = orgstore::server::AdminServer::new(&store).allow_non_loopback();
    /// # drop(server);
    /// ```
    pub fn allow_non_loopback(mut self) -> Self {
        self.non_loopback = true;
        self
    }

    /// Starts serving on a TCP address (port 0 picks a free one) on threads of its own.
    /// Every request needs `Authorization: Bearer <token>` with a live token of `db`'s
    /// token file (see [`Tokens`]): an operator token acts as the operator (and as a member
    /// with the `x-orgstore-as` header), a member access token as its member only. Refused
    /// for an address that is not loopback unless [`AdminServer::allow_non_loopback`].
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let db = dir.path().join("org.redb");
    /// let store = orgstore::Store::open(&db).unwrap();
    /// let running = orgstore::server::AdminServer::new(&store)
    ///     .serve_tcp(&db, "127.0.0.1:0".parse().unwrap())
    ///     .unwrap();
    /// assert!(running.local_addr().unwrap().ip().is_loopback());
    /// ```
    pub fn serve_tcp(
        self,
        db: impl AsRef<Path>,
        addr: std::net::SocketAddr,
    ) -> Result<RunningServer, Error> {
        if !addr.ip().is_loopback() && !self.non_loopback {
            return Err(Error::invalid(
                "listen",
                format!(
                    "{addr} is not a loopback address and the admin API speaks plain HTTP; \
                     listen on 127.0.0.1 behind a TLS-terminating proxy, or allow it explicitly"
                ),
            ));
        }
        let router = routes::router(Arc::new(routes::State {
            store: self.store,
            max_body: self.limits.max_body_bytes,
            tokens: Tokens::beside(&db),
        }));
        listen::start_tcp(addr, Tokens::beside(db), router, self.limits, self.signals)
    }

    /// Shuts down gracefully at SIGINT or SIGTERM (for a process that is only a server, such
    /// as `orgstore serve`; a host with signal handling of its own calls
    /// [`RunningServer::shutdown`] instead).
    ///
    /// ```
    /// let store = orgstore::Store::open_temporary().unwrap();
    /// let server = orgstore::server::AdminServer::new(&store).stop_on_signals();
    /// # drop(server);
    /// ```
    pub fn stop_on_signals(mut self) -> Self {
        self.signals = true;
        self
    }

    /// Replaces the limits.
    ///
    /// ```
    /// use orgstore::server::{AdminServer, ServerLimits};
    /// let store = orgstore::Store::open_temporary().unwrap();
    /// let server = AdminServer::new(&store).limits(ServerLimits::default().max_connections(4));
    /// # drop(server);
    /// ```
    pub fn limits(mut self, limits: ServerLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Listens on `path` instead of `<db>.sock`.
    ///
    /// ```
    /// let store = orgstore::Store::open_temporary().unwrap();
    /// let server = orgstore::server::AdminServer::new(&store).socket_path("/run/orgstore.sock");
    /// # drop(server);
    /// ```
    pub fn socket_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.socket = Some(path.into());
        self
    }

    /// Starts serving on a Unix socket (`<db>.sock` unless [`AdminServer::socket_path`] says
    /// otherwise) on threads of its own, and returns at once. `db` is the store file: its
    /// owner (and root) may connect. A socket file left by a server that is gone is
    /// replaced; one a live server answers on is refused with `Busy`.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let db = dir.path().join("org.redb");
    /// let store = orgstore::Store::open(&db).unwrap();
    /// let running = orgstore::server::AdminServer::new(&store).serve_unix(&db).unwrap();
    /// assert!(running.socket_path().exists());
    /// running.shutdown();
    /// ```
    pub fn serve_unix(self, db: impl AsRef<Path>) -> Result<RunningServer, Error> {
        let db = db.as_ref();
        let socket = self.socket.unwrap_or_else(|| default_socket_path(db));
        let owner = listen::owner_of(db)?;
        let router = routes::router(Arc::new(routes::State {
            store: self.store,
            max_body: self.limits.max_body_bytes,
            tokens: Tokens::beside(db),
        }));
        listen::start(socket, owner, router, self.limits, self.signals)
    }
}

/// A serving admin server. Dropping it (or [`RunningServer::shutdown`]) stops accepting,
/// lets the requests in flight finish (within the limits' timeouts) and removes the socket.
pub struct RunningServer {
    socket: PathBuf,
    addr: Option<std::net::SocketAddr>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RunningServer {
    /// The TCP address it listens on (`None` for a Unix socket).
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let db = dir.path().join("org.redb");
    /// # let store = orgstore::Store::open(&db).unwrap();
    /// let running = orgstore::server::AdminServer::new(&store).serve_unix(&db).unwrap();
    /// assert!(running.local_addr().is_none());
    /// ```
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.addr
    }

    /// The socket it listens on (empty for a TCP server).
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let db = dir.path().join("org.redb");
    /// # let store = orgstore::Store::open(&db).unwrap();
    /// let running = orgstore::server::AdminServer::new(&store).serve_unix(&db).unwrap();
    /// assert!(running.socket_path().ends_with("org.redb.sock"));
    /// ```
    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    /// Stops the server gracefully and waits for it.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let db = dir.path().join("org.redb");
    /// # let store = orgstore::Store::open(&db).unwrap();
    /// let running = orgstore::server::AdminServer::new(&store).serve_unix(&db).unwrap();
    /// let socket = running.socket_path().to_owned();
    /// running.shutdown();
    /// assert!(!socket.exists());
    /// ```
    pub fn shutdown(mut self) {
        self.stop_and_wait();
    }

    /// Blocks until the server stops: with [`AdminServer::stop_on_signals`], at SIGINT or
    /// SIGTERM; otherwise never (the process's own exit ends it).
    ///
    /// ```no_run
    /// # let store = orgstore::Store::open("org.redb").unwrap();
    /// let running = orgstore::server::AdminServer::new(&store).serve_unix("org.redb").unwrap();
    /// running.wait();
    /// ```
    pub fn wait(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    fn stop_and_wait(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl std::fmt::Debug for RunningServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningServer")
            .field("socket", &self.socket)
            .finish_non_exhaustive()
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.stop_and_wait();
    }
}

fn io_error(field: &'static str, what: &str, path: &Path, e: std::io::Error) -> Error {
    let kind = match e.kind() {
        std::io::ErrorKind::NotFound => ErrorKind::NotFound,
        _ => ErrorKind::Storage,
    };
    Error::new(
        kind,
        field,
        format!(
            "cannot {what} `{}` ({e}); check the path and its directory's permissions",
            path.display()
        ),
    )
}
