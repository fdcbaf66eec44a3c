//! Bearer tokens for the admin API over TCP: operator tokens and member access tokens
//! (bound to one email). Each is shown once, kept only as its SHA-256 in `<db>.tokens`
//! (mode 0600, beside the store), carries a checksum like virtual keys, and may expire or
//! be revoked.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::io_error;
use crate::error::{Error, ErrorKind};
use crate::keys::token::{self, hex};
use crate::model::{Email, Timestamp};

/// The prefix of an operator token.
pub const OPERATOR_TOKEN_PREFIX: &str = "orgstore_op_";
/// The prefix of a member access token.
pub const MEMBER_TOKEN_PREFIX: &str = "orgstore_mb_";

/// Who a token acts as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenHolder {
    /// The operator (may act as a member with the `x-orgstore-as` header).
    Operator,
    /// One member: their role in each org comes from the store, decided by Cedar on every
    /// request.
    Member(Email),
}

/// A token as listed: never the secret.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenInfo {
    /// `tok_` and 16 hex digits.
    pub id: String,
    /// Who it acts as.
    pub holder: TokenHolder,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it stops working, if ever.
    pub expires_at: Option<Timestamp>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
}

impl TokenInfo {
    /// `active`, `expired` or `revoked`.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// use orgstore::server::{TokenHolder, Tokens};
    /// let tokens = Tokens::beside(dir.path().join("org.redb"));
    /// let (info, _) = tokens.create(TokenHolder::Operator, None).unwrap();
    /// assert_eq!(info.status(), "active");
    /// assert_eq!(tokens.revoke(&info.id).unwrap().status(), "revoked");
    /// ```
    pub fn status(&self) -> &'static str {
        if self.revoked_at.is_some() {
            "revoked"
        } else if self.expires_at.is_some_and(|e| e <= Timestamp::now()) {
            "expired"
        } else {
            "active"
        }
    }

    /// Who it acts as, as text: `operator` or the member's email.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// use orgstore::server::{TokenHolder, Tokens};
    /// let tokens = Tokens::beside(dir.path().join("org.redb"));
    /// let (info, _) = tokens.create(TokenHolder::Member(orgstore::Email::parse("a@b.io").unwrap()), None).unwrap();
    /// assert_eq!(info.holder_name(), "a@b.io");
    /// ```
    pub fn holder_name(&self) -> String {
        match &self.holder {
            TokenHolder::Operator => "operator".into(),
            TokenHolder::Member(e) => e.to_string(),
        }
    }

    /// The token as JSON (never its secret), as the admin API and `token list --json` show
    /// it: `id`, `holder`, `status`, `created_at`, `expires_at`, `revoked_at`.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// use orgstore::server::{TokenHolder, Tokens};
    /// let tokens = Tokens::beside(dir.path().join("org.redb"));
    /// let (info, _) = tokens.create(TokenHolder::Operator, None).unwrap();
    /// assert_eq!(info.to_json()["holder"], "operator");
    /// ```
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "holder": self.holder_name(),
            "status": self.status(),
            "created_at": self.created_at.to_string(),
            "expires_at": self.expires_at.map(|e| e.to_string()),
            "revoked_at": self.revoked_at.map(|e| e.to_string()),
        })
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    id: String,
    kind: String,
    email: Option<String>,
    sha256: String,
    created_at: i64,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
}

impl Record {
    fn info(&self) -> Result<TokenInfo, Error> {
        let holder = match (self.kind.as_str(), &self.email) {
            ("operator", None) => TokenHolder::Operator,
            ("member", Some(e)) => TokenHolder::Member(Email::parse(e)?),
            _ => {
                return Err(Error::new(
                    ErrorKind::Corrupt,
                    "tokens",
                    format!(
                        "token {} has no valid holder; revoke it and make a new one",
                        self.id
                    ),
                ));
            }
        };
        Ok(TokenInfo {
            id: self.id.clone(),
            holder,
            created_at: Timestamp::from_micros(self.created_at),
            expires_at: self.expires_at.map(Timestamp::from_micros),
            revoked_at: self.revoked_at.map(Timestamp::from_micros),
        })
    }
}

/// The token file of a store. Writes replace the file whole (a reader sees the old or the
/// new list, never a part).
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// use orgstore::server::{TokenHolder, Tokens};
/// let tokens = Tokens::beside(dir.path().join("org.redb"));
/// let (info, secret) = tokens.create(TokenHolder::Operator, None).unwrap();
/// assert!(secret.starts_with("orgstore_op_"));
/// assert_eq!(tokens.list().unwrap(), vec![info.clone()]);
/// tokens.revoke(&info.id).unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct Tokens {
    path: PathBuf,
}

/// Whether `token` has a token's shape and a correct checksum (no look-up).
fn well_formed(token: &str) -> bool {
    token::well_formed(token, OPERATOR_TOKEN_PREFIX)
        || token::well_formed(token, MEMBER_TOKEN_PREFIX)
}

impl Tokens {
    /// The token file of the store at `db`: `<db>.tokens`.
    pub fn beside(db: impl AsRef<Path>) -> Self {
        let mut s = db.as_ref().as_os_str().to_owned();
        s.push(".tokens");
        Self {
            path: PathBuf::from(s),
        }
    }

    /// The file's path.
    ///
    /// ```
    /// let t = orgstore::server::Tokens::beside("/srv/org.redb");
    /// assert_eq!(t.path(), std::path::Path::new("/srv/org.redb.tokens"));
    /// ```
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read(&self) -> Result<Vec<Record>, Error> {
        match std::fs::read(&self.path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                Error::new(
                    ErrorKind::Corrupt,
                    "tokens",
                    format!(
                        "`{}` is not a token file ({e}); restore it or remove it",
                        self.path.display()
                    ),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(io_error("tokens", "read", &self.path, e)),
        }
    }

    fn write(&self, records: &[Record]) -> Result<(), Error> {
        let text = serde_json::to_vec_pretty(records).map_err(|e| {
            Error::new(
                ErrorKind::Storage,
                "tokens",
                format!("cannot encode the tokens ({e})"),
            )
        })?;
        let mut tmp = self.path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&text)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        };
        write().map_err(|e| io_error("tokens", "write", &self.path, e))
    }

    /// Makes a token; the secret is returned here and nowhere else, ever.
    pub fn create(
        &self,
        holder: TokenHolder,
        expires_at: Option<Timestamp>,
    ) -> Result<(TokenInfo, String), Error> {
        let prefix = match holder {
            TokenHolder::Operator => OPERATOR_TOKEN_PREFIX,
            TokenHolder::Member(_) => MEMBER_TOKEN_PREFIX,
        };
        let secret = token::generate(prefix, "tokens")?;
        let record = Record {
            id: format!("tok_{}", hex(&token::random::<8>("tokens")?)),
            kind: match holder {
                TokenHolder::Operator => "operator".into(),
                TokenHolder::Member(_) => "member".into(),
            },
            email: match &holder {
                TokenHolder::Member(e) => Some(e.as_str().to_owned()),
                TokenHolder::Operator => None,
            },
            sha256: hex(&token::digest(&secret)),
            created_at: Timestamp::now().as_micros(),
            expires_at: expires_at.map(Timestamp::as_micros),
            revoked_at: None,
        };
        let info = record.info()?;
        let mut records = self.read()?;
        records.push(record);
        self.write(&records)?;
        Ok((info, secret))
    }

    /// Every token, revoked and expired ones included, oldest first.
    pub fn list(&self) -> Result<Vec<TokenInfo>, Error> {
        self.read()?.iter().map(Record::info).collect()
    }

    /// Revokes a token for good: every later request with it answers 401.
    pub fn revoke(&self, id: &str) -> Result<TokenInfo, Error> {
        let mut records = self.read()?;
        let Some(r) = records.iter_mut().find(|r| r.id == id) else {
            return Err(Error::not_found(
                "token id",
                format!(
                    "no token {}; see `token list`",
                    id.chars().take(64).collect::<String>()
                ),
            ));
        };
        if r.revoked_at.is_none() {
            r.revoked_at = Some(Timestamp::now().as_micros());
        }
        let info = r.info()?;
        self.write(&records)?;
        Ok(info)
    }

    /// The live token whose secret is `token`: its digest compared in constant time with
    /// every stored one. `None` for a malformed, unknown, revoked or expired token.
    pub(crate) fn verify(&self, token: &str) -> Option<TokenInfo> {
        if !well_formed(token) {
            return None;
        }
        let digest = hex(&token::digest(token));
        let records = self.read().ok()?;
        let mut found = None;
        for r in &records {
            if bool::from(r.sha256.as_bytes().ct_eq(digest.as_bytes())) {
                found = Some(r);
            }
        }
        let r = found?;
        let now = Timestamp::now().as_micros();
        if r.revoked_at.is_some() || r.expires_at.is_some_and(|e| e <= now) {
            return None;
        }
        r.info().ok()
    }
}
