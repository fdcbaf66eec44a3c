//! The one error type of the library: cheap, lower-case, and never carrying a secret.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

/// What went wrong, for callers that branch on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input is invalid; the message names the field and the fix.
    Invalid,
    /// The input conflicts with the store's state (duplicate id, last owner, ...).
    Conflict,
    /// The named thing does not exist (or is not visible to the actor).
    NotFound,
    /// A policy denied the operation.
    Denied,
    /// The store file could not be read or written.
    Storage,
    /// The store file holds data this version cannot read.
    Corrupt,
    /// The store file was written by a newer orgstore.
    TooNew,
    /// Another process has the store file open.
    Busy,
    /// The engine that serializes a fleet's writes (PostgreSQL, feature `fleet`) cannot be
    /// reached: the change was not made; the message names the engine, never its password.
    /// Retry once it is back; checks keep being answered from the local replica meanwhile.
    Unavailable,
}

/// Why an admin operation was refused: the details of an [`ErrorKind::Denied`] error,
/// reached through [`Error::denial`] (and returned by
/// [`Policies::authorize`](crate::Policies::authorize)).
///
/// Only the library makes one: every refusal it raises goes through the same decision and
/// is audited in the log of the org it was about (an org that does not exist has no log).
/// It is not the gateway's [`Denial`](crate::Denial), which refuses a request on the hot
/// path and is not an error.
///
/// ```
/// use orgstore::{Actor, Email, ErrorKind, OrgId, Role, Store};
/// let store = Store::open_temporary().unwrap();
/// let acme = OrgId::parse("acme").unwrap();
/// let owner = Email::parse("o@acme.io").unwrap();
/// let viewer = Email::parse("v@acme.io").unwrap();
/// store.orgs().create(&Actor::Operator, &acme, "Acme", &owner).unwrap();
/// store.members().add(&Actor::Operator, &acme, &viewer, Role::Viewer).unwrap();
/// let err = store.orgs().delete(&Actor::Member(viewer), &acme).unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Denied);
/// let d = err.denial().unwrap();
/// assert_eq!((d.action(), d.role()), ("DeleteOrg", Some(Role::Viewer)));
/// assert_eq!(d.who_may(), "only an owner of the org may");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PermissionDenied {
    /// The Cedar action, e.g. `UpdateConfig`.
    pub(crate) action: String,
    /// The actor's role in the org, if they have one.
    pub(crate) role: Option<crate::Role>,
    /// The ids of the deciding policies; empty when no policy permits.
    pub(crate) policies: Vec<String>,
    /// Evaluation errors (any error is a denial).
    pub(crate) errors: Vec<String>,
    /// Who was denied (`operator` or an email); filled in by the store.
    pub(crate) actor: String,
    /// The org the request was about; filled in by the store.
    pub(crate) org: Option<crate::OrgId>,
    /// What the request was about (an email, a key id, `config`, `org`).
    pub(crate) target: String,
    /// Who may do it.
    pub(crate) who_may: String,
}

impl PermissionDenied {
    /// A denial of `action` for an actor with `role`, by `policies`.
    pub(crate) fn new(
        action: impl Into<String>,
        role: Option<crate::Role>,
        policies: Vec<String>,
        errors: Vec<String>,
    ) -> Self {
        Self {
            action: action.into(),
            role,
            policies,
            errors,
            actor: String::new(),
            org: None,
            target: String::new(),
            who_may: String::new(),
        }
    }

    /// The refused action, by its Cedar name (`UpdateConfig`, `CreateKey`, ...): the name
    /// policies use and audit entries record.
    pub fn action(&self) -> &str {
        &self.action
    }

    /// The actor's role in the org, if they have one.
    pub fn role(&self) -> Option<crate::Role> {
        self.role
    }

    /// The ids of the deciding policies (built-in rails such as `tenancy` included); empty
    /// when no policy permits the action.
    pub fn policy_ids(&self) -> &[String] {
        &self.policies
    }

    /// Cedar evaluation errors; any error is a denial.
    pub fn evaluation_errors(&self) -> &[String] {
        &self.errors
    }

    /// Who was refused: `operator` or an email (empty when the policies were asked
    /// directly, not through the store).
    pub fn actor(&self) -> &str {
        &self.actor
    }

    /// The org the request was about (`None` when the policies were asked directly).
    pub fn org(&self) -> Option<&crate::OrgId> {
        self.org.as_ref()
    }

    /// What the request was about: an email, a key id, `config` or `org`.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Who may do it: the rule that decided, or the built-in role matrix for the action
    /// (e.g. "only an owner of the org may").
    pub fn who_may(&self) -> &str {
        &self.who_may
    }
}

/// An orgstore error.
///
/// Cheap to return: one pointer wide (`size_of::<Result<(), Error>>()` is a pointer), with
/// everything behind one allocation made on the cold path. Branch on [`Error::kind`]; show
/// it with `Display` (`field: message`, lower case, saying what to do next). A failure of
/// the storage layer (redb, the file system, the codec, the cipher) keeps its cause,
/// reachable with [`std::error::Error::source`]; `Display` prints only this error's own
/// line, so walk the chain to print the causes. Neither `Display` nor `Debug` ever
/// includes a secret. A policy refusal carries a [`PermissionDenied`] ([`Error::denial`]).
///
/// ```
/// use orgstore::{ErrorKind, OrgId};
/// let err = OrgId::parse("Bad Id").unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Invalid);
/// assert_eq!(err.field(), "org id");
/// assert!(err.to_string().starts_with("org id: "));
/// assert_eq!(std::mem::size_of::<orgstore::Error>(), std::mem::size_of::<usize>());
/// ```
#[derive(Clone)]
pub struct Error(Box<Inner>);

#[derive(Clone)]
struct Inner {
    kind: ErrorKind,
    field: Cow<'static, str>,
    message: String,
    denial: Option<PermissionDenied>,
    source: Option<Cause>,
}

/// The cause of an error: shared, so an `Error` stays `Clone`.
type Cause = Arc<dyn StdError + Send + Sync + 'static>;

impl PartialEq for Error {
    /// Equal when kind, field, message and denial are; causes compare by their text.
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (&*self.0, &*other.0);
        a.kind == b.kind
            && a.field == b.field
            && a.message == b.message
            && a.denial == b.denial
            && a.source.as_ref().map(ToString::to_string)
                == b.source.as_ref().map(ToString::to_string)
    }
}

impl Eq for Error {}

impl Error {
    #[cold]
    pub(crate) fn new(
        kind: ErrorKind,
        field: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        Self(Box::new(Inner {
            kind,
            field: field.into(),
            message: message.into(),
            denial: None,
            source: None,
        }))
    }

    /// Keeps `cause` as this error's [`source`](std::error::Error::source).
    #[cold]
    pub(crate) fn with_source(
        mut self,
        cause: impl Into<Box<dyn StdError + Send + Sync + 'static>>,
    ) -> Self {
        self.0.source = Some(Arc::from(cause.into()));
        self
    }

    /// Invalid input in `field`; `fix` says what to give instead.
    #[cold]
    pub(crate) fn invalid(field: impl Into<Cow<'static, str>>, fix: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, field, fix)
    }

    /// A conflict with the store's state.
    #[cold]
    pub(crate) fn conflict(
        field: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        Self::new(ErrorKind::Conflict, field, message)
    }

    /// Something named by `field` was not found.
    #[cold]
    pub(crate) fn not_found(
        field: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        Self::new(ErrorKind::NotFound, field, message)
    }

    /// A storage failure while doing `context`; `cause` (a redb, io, codec or cipher error,
    /// or a description) becomes the error's source.
    #[cold]
    pub(crate) fn storage(
        context: &'static str,
        cause: impl Into<Box<dyn StdError + Send + Sync + 'static>>,
    ) -> Self {
        Self::new(
            ErrorKind::Storage,
            "store",
            format!("{context} failed; check the disk and the file's permissions, then retry"),
        )
        .with_source(cause)
    }

    /// Data (`what`) that cannot be decoded; `detail` becomes the error's source.
    #[cold]
    pub(crate) fn corrupt(
        what: &'static str,
        detail: impl Into<Box<dyn StdError + Send + Sync + 'static>>,
    ) -> Self {
        Self::new(
            ErrorKind::Corrupt,
            "store",
            format!("{what} cannot be decoded; restore the file from a backup"),
        )
        .with_source(detail)
    }

    /// A policy denial.
    #[cold]
    pub(crate) fn denied(denial: PermissionDenied) -> Self {
        let actor = &denial.actor;
        let role = denial
            .role
            .map_or("no role".to_owned(), |r| format!("role {r}"));
        let why = if denial.policies.is_empty() {
            "no policy permits it".to_owned()
        } else {
            format!("denied by {}", denial.policies.join(", "))
        };
        let who = if denial.who_may.is_empty() {
            "ask an owner of the org"
        } else {
            &denial.who_may
        };
        let message = format!("{actor} ({role}) may not {}: {why}; {who}", denial.action);
        let mut err = Self::new(ErrorKind::Denied, "permission", message);
        err.0.denial = Some(denial);
        err
    }

    /// A refusal that must answer exactly like `not_found` (an id of another org answers
    /// like an id that does not exist), while the store still audits `denial`: the store
    /// removes the denial with [`Error::conceal`] before the error reaches the caller.
    #[cold]
    pub(crate) fn concealed(mut not_found: Error, denial: PermissionDenied) -> Self {
        not_found.0.denial = Some(denial);
        not_found
    }

    /// Drops the audit details of a [`Error::concealed`] refusal, so it is identical to
    /// the plain not-found error.
    pub(crate) fn conceal(mut self) -> Self {
        if self.0.kind != ErrorKind::Denied {
            self.0.denial = None;
        }
        self
    }

    /// What kind of error this is.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// The field or subject the error is about, e.g. `org id`, `config.budgets.limit`.
    pub fn field(&self) -> &str {
        &self.0.field
    }

    /// The message without the field.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// Details of a policy denial.
    pub fn denial(&self) -> Option<&PermissionDenied> {
        self.0.denial.as_ref()
    }

    /// The same error about `field` instead (a denial that concerns one argument).
    #[cold]
    pub(crate) fn on_field(mut self, field: &'static str) -> Self {
        self.0.field = Cow::Borrowed(field);
        self
    }

    /// Prefixes the field with a path, e.g. `budgets` + `limit` -> `budgets.limit`.
    #[cold]
    pub(crate) fn in_field(mut self, prefix: &str) -> Self {
        self.0.field = Cow::Owned(format!("{prefix}.{}", self.0.field));
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.0.field, self.0.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Error({:?}, {self}", self.0.kind)?;
        let mut cause = self.source();
        while let Some(c) = cause {
            write!(f, ": {c}")?;
            cause = c.source();
        }
        f.write_str(")")
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.0
            .source
            .as_deref()
            .map(|c| c as &(dyn StdError + 'static))
    }
}
