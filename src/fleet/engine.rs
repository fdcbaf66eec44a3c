//! The connection to the fleet's engine (PostgreSQL): connection settings, errors that name
//! the engine without its password, and the schema of the change log.

use std::time::Duration;

use crate::error::{Error, ErrorKind};

/// The change log's tables. `orgstore_head` holds the one row every admin write locks
/// (`FOR UPDATE`): positions are assigned under that lock, so they are gapless and in
/// commit order, and a reader that sees position `p` has every position below it.
/// `orgstore_state` is the current value of every replicated record, for bootstrapping a
/// replica consistently; `orgstore_log` keeps the entries of a retention window.
pub(crate) const LOG_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS orgstore_fleet (
    id integer PRIMARY KEY CHECK (id = 1),
    fleet_id bigint NOT NULL,
    schema_version integer NOT NULL,
    key_fingerprint text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS orgstore_head (
    id integer PRIMARY KEY CHECK (id = 1),
    position bigint NOT NULL,
    trimmed_to bigint NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS orgstore_log (
    position bigint PRIMARY KEY,
    committed_at timestamptz NOT NULL DEFAULT now(),
    replica text NOT NULL,
    entry bytea NOT NULL
);
CREATE TABLE IF NOT EXISTS orgstore_state (
    tbl text NOT NULL,
    k bytea NOT NULL,
    v bytea NOT NULL,
    PRIMARY KEY (tbl, k)
);
CREATE TABLE IF NOT EXISTS orgstore_replicas (
    name text PRIMARY KEY,
    applied bigint NOT NULL,
    seen_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz NOT NULL DEFAULT now()
);
";

/// The schema version `LOG_SCHEMA` creates.
pub(crate) const SCHEMA_VERSION: i32 = 1;

/// The channel a committed write notifies: a wake-up only (replicas poll anyway).
pub(crate) const CHANNEL: &str = "orgstore_log";

/// An engine URL (`postgres://user:password@host:port/db` or `host=... password=...`) and
/// its printable form, with any password replaced by `****`.
#[derive(Clone)]
pub(crate) struct Engine {
    url: String,
    /// What messages and `Debug` show.
    pub(crate) shown: String,
}

/// Never shows the password.
impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Engine({})", self.shown)
    }
}

impl Engine {
    /// Parses `url`; a malformed one is `Invalid` on `fleet` (without echoing it whole).
    pub(crate) fn new(url: &str) -> Result<Self, Error> {
        let shown = redact(url);
        url.parse::<postgres::Config>().map_err(|_| {
            Error::invalid(
                "fleet",
                format!(
                    "`{shown}` is not a PostgreSQL connection URL; write \
                     postgres://USER:PASSWORD@HOST:PORT/DATABASE"
                ),
            )
        })?;
        Ok(Self {
            url: url.to_owned(),
            shown,
        })
    }

    /// A new connection: a short connect timeout, and a TCP user timeout so a partitioned
    /// engine fails a call within seconds instead of hanging it.
    pub(crate) fn connect(&self) -> Result<postgres::Client, Error> {
        let mut cfg: postgres::Config = self
            .url
            .parse()
            .map_err(|e| Error::invalid("fleet", "the engine URL is malformed").with_source(e))?;
        cfg.connect_timeout(Duration::from_secs(2))
            .tcp_user_timeout(Duration::from_secs(5))
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(5))
            .application_name("orgstore");
        cfg.connect(postgres::NoTls)
            .map_err(|e| self.unavailable("connecting", e))
    }

    /// The error for a failed call to the engine: `Unavailable`, naming it (password
    /// hidden) and what was being done.
    pub(crate) fn unavailable(&self, doing: &str, e: postgres::Error) -> Error {
        let why = match e.as_db_error() {
            Some(db) => db.message().to_owned(),
            None if e.is_closed() => "the connection was closed".to_owned(),
            None => "it cannot be reached".to_owned(),
        };
        Error::new(
            ErrorKind::Unavailable,
            "fleet",
            format!(
                "the fleet's PostgreSQL at {} failed while {doing} ({why}); nothing was \
                 changed by this call; retry once the engine is back",
                self.shown
            ),
        )
        .with_source(Redacted(e.to_string()))
    }
}

impl Engine {
    /// The error for a write refused at once because the last connection attempt failed
    /// moments ago.
    pub(crate) fn unavailable_now(&self) -> Error {
        Error::new(
            ErrorKind::Unavailable,
            "fleet",
            format!(
                "the fleet's PostgreSQL at {} cannot be reached; nothing was changed; retry                  once the engine is back (checks are still answered from this replica)",
                self.shown
            ),
        )
    }
}

/// A cause's text, kept as a plain message.
#[derive(Debug)]
struct Redacted(String);

impl std::fmt::Display for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Redacted {}

/// `url` with any password replaced by `****`: the userinfo's password of a URL, and the
/// value of `password=` in the key-value form.
pub(crate) fn redact(url: &str) -> String {
    if let Some(scheme_end) = url.find("://") {
        let rest = &url[scheme_end + 3..];
        let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        if let Some(at) = rest[..auth_end].rfind('@') {
            let userinfo = &rest[..at];
            let user = userinfo.split(':').next().unwrap_or("");
            let masked = if userinfo.contains(':') {
                format!("{user}:****")
            } else {
                user.to_owned()
            };
            return format!("{}{masked}{}", &url[..scheme_end + 3], &rest[at..]);
        }
        return url.to_owned();
    }
    url.split(' ')
        .map(|part| match part.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=****"),
            _ => part.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_never_shown() {
        assert_eq!(
            redact("postgres://app:s3cret@db:5432/org"),
            "postgres://app:****@db:5432/org"
        );
        assert_eq!(redact("postgres://app@db/org"), "postgres://app@db/org");
        assert_eq!(
            redact("host=db user=app password=s3cret dbname=org"),
            "host=db user=app password=**** dbname=org"
        );
        assert_eq!(redact("postgresql://a:p@ss@h/d"), "postgresql://a:****@h/d");
    }
}
