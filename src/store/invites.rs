//! Invitations by email: invite, list the pending ones, revoke, accept with the token.
//!
//! The token is made once, handed to the caller and to the host's hook
//! ([`StoreBuilder::on_invite`](super::StoreBuilder::on_invite)), and kept only as its
//! SHA-256; the store sends no mail.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redb::ReadableTable;
use zeroize::Zeroizing;

use super::records::InviteRecord;
use super::tables::{INVITE_DIGESTS, INVITES, INVITES_BY_ORG};
use super::tx::{ReadRecords, WriteTx};
use super::{AuditOutcome, Store, audit_append};
use crate::error::Error;
use crate::keys::token;
use crate::model::{
    Actor, Email, Invite, InviteId, InviteStatus, Member, Org, OrgId, Role, Timestamp,
};
use crate::policy::{AdminAction, Target};

/// The prefix of an invitation token.
pub const INVITE_TOKEN_PREFIX: &str = "orgstore_inv_";

/// How long an invitation can be accepted unless told otherwise: 7 days.
///
/// ```
/// assert_eq!(orgstore::DEFAULT_INVITE_VALIDITY.as_secs(), 7 * 24 * 3600);
/// ```
pub const DEFAULT_INVITE_VALIDITY: Duration = Duration::from_secs(7 * 24 * 3600);

/// The longest an invitation may stay acceptable: 90 days.
const MAX_VALIDITY: Duration = Duration::from_secs(90 * 24 * 3600);

/// The token that accepts an invitation: shown once, kept by the store only as its
/// SHA-256. Its memory is wiped on drop and its `Debug` output hides it.
///
/// ```
/// # let store = orgstore::Store::open_temporary().unwrap();
/// use orgstore::{Actor, Email, OrgId, Role};
/// let acme = OrgId::parse("acme").unwrap();
/// store.orgs().create(&Actor::Operator, &acme, "Acme", &Email::parse("o@acme.io").unwrap()).unwrap();
/// let made = store.invites().create(&Actor::Operator, &acme, &Email::parse("new@acme.io").unwrap(), Role::Member).unwrap();
/// assert!(made.token.expose().starts_with("orgstore_inv_"));
/// assert!(!format!("{:?}", made.token).contains(&made.token.expose()[14..]));
/// ```
pub struct InviteToken(Zeroizing<String>);

impl InviteToken {
    /// The token. Give it to the invited person once (e.g. in an accept link); never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for InviteToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InviteToken(orgstore_inv_...)")
    }
}

/// A new invitation and its token, which is here (and in the hook) and nowhere else.
#[derive(Debug)]
#[non_exhaustive]
pub struct CreatedInvite {
    /// The invitation.
    pub invite: Invite,
    /// The token that accepts it.
    pub token: InviteToken,
}

/// An accepted invitation: the new membership.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AcceptedInvite {
    /// The invitation, now accepted.
    pub invite: Invite,
    /// The invited person's membership.
    pub member: Member,
}

/// What the host's hook is: called with each new invitation and its token.
type HookFn = dyn Fn(&Invite, &str) + Send + Sync;

/// The host's hook for new invitations (see [`StoreBuilder::on_invite`](super::StoreBuilder::on_invite)).
#[derive(Clone)]
pub(crate) struct InviteHook(pub(crate) Arc<HookFn>);

impl fmt::Debug for InviteHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InviteHook")
    }
}

/// Invitations by email. Get one with [`Store::invites`].
///
/// An invitation follows the rules of adding a member (an admin invites below Owner, only
/// an owner invites an owner); its token is single-use and expires
/// ([`DEFAULT_INVITE_VALIDITY`] unless told otherwise). Accepting makes the invited email
/// a member with the invited role; an accepted, revoked or expired invitation cannot be
/// used again.
///
/// ```
/// # let store = orgstore::Store::open_temporary().unwrap();
/// use orgstore::{Actor, Email, OrgId, Role};
/// let op = Actor::Operator;
/// let acme = OrgId::parse("acme").unwrap();
/// store.orgs().create(&op, &acme, "Acme", &Email::parse("o@acme.io").unwrap()).unwrap();
/// let made = store.invites().create(&op, &acme, &Email::parse("New@Acme.io").unwrap(), Role::Admin).unwrap();
/// assert_eq!(store.invites().list(&op, &acme).unwrap().len(), 1);
/// let joined = store.invites().accept(made.token.expose()).unwrap();
/// assert_eq!((joined.member.email.as_str(), joined.member.role), ("new@acme.io", Role::Admin));
/// assert!(store.invites().accept(made.token.expose()).is_err()); // single use
/// assert!(store.invites().list(&op, &acme).unwrap().is_empty());
/// ```
pub struct Invites<'a> {
    pub(super) store: &'a Store,
}

impl Invites<'_> {
    /// Invites `email` to `org` with `role`, acceptable for [`DEFAULT_INVITE_VALIDITY`].
    /// Inviting a member, or a person with a pending invitation to the org, is a
    /// `Conflict`. The host's hook, if any, is called with the invitation and its token
    /// after the commit.
    pub fn create(
        &self,
        actor: &Actor,
        org: &OrgId,
        email: &Email,
        role: Role,
    ) -> Result<CreatedInvite, Error> {
        self.create_valid_for(actor, org, email, role, DEFAULT_INVITE_VALIDITY)
    }

    /// Like [`Invites::create`], acceptable for `valid_for` (1 second to 90 days).
    ///
    /// ```
    /// # let store = orgstore::Store::open_temporary().unwrap();
    /// use std::time::Duration;
    /// use orgstore::{Actor, Email, OrgId, Role};
    /// let acme = OrgId::parse("acme").unwrap();
    /// store.orgs().create(&Actor::Operator, &acme, "Acme", &Email::parse("o@acme.io").unwrap()).unwrap();
    /// let day = Duration::from_secs(86_400);
    /// let made = store.invites().create_valid_for(&Actor::Operator, &acme, &Email::parse("n@acme.io").unwrap(), Role::Viewer, day).unwrap();
    /// assert_eq!(made.invite.expires_at.as_micros() - made.invite.created_at.as_micros(), 86_400_000_000);
    /// ```
    pub fn create_valid_for(
        &self,
        actor: &Actor,
        org: &OrgId,
        email: &Email,
        role: Role,
        valid_for: Duration,
    ) -> Result<CreatedInvite, Error> {
        if valid_for < Duration::from_secs(1) || valid_for > MAX_VALIDITY {
            return Err(Error::invalid(
                "expires in",
                "give an invitation from 1 second to 90 days to be accepted",
            ));
        }
        let secret = Zeroizing::new(token::generate(INVITE_TOKEN_PREFIX, "invite token")?);
        let id = InviteId::from_bytes(token::random::<8>("invite id")?);
        let micros = i64::try_from(valid_for.as_micros()).unwrap_or(i64::MAX);
        let invite = self.store.write(|tx| {
            let o = self.store.org_for(tx, actor, org, AdminAction::InviteMember)?;
            let target = Target::Membership { email, role: None, new_role: Some(role) };
            self.store.authorize(tx, actor, AdminAction::InviteMember, &o, target)?;
            if tx.member(org, email)?.is_some() {
                return Err(Error::conflict(
                    "email",
                    format!("{email} is already a member of `{org}`; use `member role` to change the role"),
                ));
            }
            if let Some(p) = pending_of(&*tx, org, tx.now)?.into_iter().find(|i| &i.email == email) {
                return Err(Error::conflict(
                    "email",
                    format!("{email} already has a pending invitation to `{org}` ({}); revoke it first to send a new one", p.id),
                ));
            }
            let invite = Invite {
                id,
                org: org.clone(),
                email: email.clone(),
                role,
                created_at: tx.now,
                created_by: actor.to_string(),
                expires_at: Timestamp::from_micros(tx.now.as_micros().saturating_add(micros)),
                status: InviteStatus::Pending,
                closed_at: None,
            };
            let rec = InviteRecord { invite: invite.clone(), digest: token::digest(&secret) };
            put(tx, &rec, true)?;
            audit_append(
                tx,
                &actor.to_string(),
                org,
                AdminAction::InviteMember,
                email.as_str(),
                format!("invited as {role} ({}, expires {})", invite.id, invite.expires_at),
                AuditOutcome::Applied,
            )?;
            Ok(invite)
        })?;
        if let Some(hook) = &self.store.inner.invite_hook {
            (hook.0)(&invite, &secret);
        }
        Ok(CreatedInvite {
            invite,
            token: InviteToken(secret),
        })
    }

    /// The org's pending invitations, oldest first (Owners and Admins).
    pub fn list(&self, actor: &Actor, org: &OrgId) -> Result<Vec<Invite>, Error> {
        self.store.read(|r| {
            let o = self
                .store
                .org_for(r, actor, org, AdminAction::ListInvites)?;
            self.store
                .authorize(r, actor, AdminAction::ListInvites, &o, Target::Org)?;
            // A file written before invitations existed, opened read-only, has no table.
            if let Err(redb::TableError::TableDoesNotExist(_)) = r.open_table(INVITES_BY_ORG) {
                return Ok(Vec::new());
            }
            pending_of(r, org, Timestamp::now())
        })
    }

    /// Revokes a pending invitation: its token stops working. An invitation of an org the
    /// actor is not a member of answers like one that does not exist.
    ///
    /// ```
    /// # let store = orgstore::Store::open_temporary().unwrap();
    /// use orgstore::{Actor, Email, InviteStatus, OrgId, Role};
    /// let acme = OrgId::parse("acme").unwrap();
    /// store.orgs().create(&Actor::Operator, &acme, "Acme", &Email::parse("o@acme.io").unwrap()).unwrap();
    /// let made = store.invites().create(&Actor::Operator, &acme, &Email::parse("n@acme.io").unwrap(), Role::Member).unwrap();
    /// let revoked = store.invites().revoke(&Actor::Operator, &made.invite.id).unwrap();
    /// assert_eq!(revoked.status, InviteStatus::Revoked);
    /// assert!(store.invites().accept(made.token.expose()).is_err());
    /// ```
    pub fn revoke(&self, actor: &Actor, id: &InviteId) -> Result<Invite, Error> {
        self.store.write(|tx| {
            let (mut rec, o) = self.invite_for(tx, actor, id, AdminAction::RevokeInvite)?;
            let i = &rec.invite;
            let target = Target::Membership {
                email: &i.email,
                role: None,
                new_role: Some(i.role),
            };
            self.store
                .authorize(tx, actor, AdminAction::RevokeInvite, &o, target)?;
            let status = status_at(i, tx.now);
            if status != InviteStatus::Pending {
                return Err(Error::conflict(
                    "invite id",
                    format!("invitation {id} is {status}, not pending; there is nothing to revoke"),
                ));
            }
            rec.invite.status = InviteStatus::Revoked;
            rec.invite.closed_at = Some(tx.now);
            put(tx, &rec, false)?;
            let (org, email) = (rec.invite.org.clone(), rec.invite.email.clone());
            audit_append(
                tx,
                &actor.to_string(),
                &org,
                AdminAction::RevokeInvite,
                email.as_str(),
                format!("revoked invitation {id}"),
                AuditOutcome::Applied,
            )?;
            Ok(rec.invite)
        })
    }

    /// Accepts an invitation with its token: the invited email becomes a member of the org
    /// with the invited role, in one transaction. The token is the credential: the decision
    /// (Cedar action `AcceptInvite`) is taken for the invited person, who acts and is
    /// audited. An unknown token is `NotFound`; an accepted, revoked or expired one, or an
    /// invited person who is a member by now, is a `Conflict`.
    pub fn accept(&self, token_text: &str) -> Result<AcceptedInvite, Error> {
        let token_text = token_text.trim();
        if !token::well_formed(token_text, INVITE_TOKEN_PREFIX) {
            return Err(Error::invalid(
                "invite token",
                "this is not an invitation token (orgstore_inv_...); copy the whole token",
            ));
        }
        let digest = token::digest(token_text);
        self.store.write(|tx| {
            let unknown = || {
                Error::not_found(
                    "invite token",
                    "no invitation has this token; ask for a new invitation",
                )
            };
            let id = tx
                .table(INVITE_DIGESTS)?
                .get(&digest)
                .map_err(read_error)?
                .map(|v| *v.value())
                .ok_or_else(unknown)?;
            let mut rec = find(tx, &InviteId::from_bytes(id))?.ok_or_else(unknown)?;
            let i = rec.invite.clone();
            match status_at(&i, tx.now) {
                InviteStatus::Pending => {}
                InviteStatus::Expired => {
                    return Err(Error::conflict(
                        "invite token",
                        format!(
                            "this invitation expired at {}; ask for a new one",
                            i.expires_at
                        ),
                    ));
                }
                s => {
                    return Err(Error::conflict(
                        "invite token",
                        format!(
                            "this invitation was {s} and cannot be used again; ask for a new one"
                        ),
                    ));
                }
            }
            let mut o: Org = tx.live_org(&i.org)?;
            if tx.member(&i.org, &i.email)?.is_some() {
                return Err(Error::conflict(
                    "invite token",
                    format!("{} is already a member of `{}`", i.email, i.org),
                ));
            }
            let invitee = Actor::Member(i.email.clone());
            let target = Target::Membership {
                email: &i.email,
                role: None,
                new_role: Some(i.role),
            };
            self.store
                .authorize(tx, &invitee, AdminAction::AcceptInvite, &o, target)?;
            let m = Member {
                org: i.org.clone(),
                email: i.email.clone(),
                role: i.role,
                added_at: tx.now,
                added_by: i.created_by.clone(),
            };
            tx.put_member(&m)?;
            if i.role == Role::Owner {
                o.owner_count += 1;
                tx.put_org(&o)?;
            }
            rec.invite.status = InviteStatus::Accepted;
            rec.invite.closed_at = Some(tx.now);
            put(tx, &rec, false)?;
            audit_append(
                tx,
                i.email.as_str(),
                &i.org,
                AdminAction::AcceptInvite,
                i.email.as_str(),
                format!("accepted invitation {} and joined as {}", i.id, i.role),
                AuditOutcome::Applied,
            )?;
            Ok(AcceptedInvite {
                invite: rec.invite,
                member: m,
            })
        })
    }

    /// The invitation `id` and its live org as `actor` may address them: one of an org the
    /// actor is not a member of answers exactly like one that does not exist (audited in
    /// its org).
    fn invite_for(
        &self,
        tx: &impl ReadRecords,
        actor: &Actor,
        id: &InviteId,
        action: AdminAction,
    ) -> Result<(InviteRecord, Org), Error> {
        let missing = || {
            Error::not_found(
                "invite id",
                format!("no invitation {id}; check the id against `member invites`"),
            )
        };
        let rec = find(tx, id)?.ok_or_else(missing)?;
        if let Actor::Member(email) = actor
            && tx.member(&rec.invite.org, email)?.is_none()
        {
            let e = self
                .store
                .not_a_member(actor, action, &rec.invite.org, id.to_string());
            let d = e.denial().cloned().ok_or_else(missing)?;
            return Err(Error::concealed(missing(), d));
        }
        let org = tx.live_org(&rec.invite.org)?;
        Ok((rec, org))
    }
}

/// The status of `i` at `now`: a pending invitation past its expiry is expired.
fn status_at(i: &Invite, now: Timestamp) -> InviteStatus {
    if i.status == InviteStatus::Pending && i.expires_at <= now {
        InviteStatus::Expired
    } else {
        i.status
    }
}

fn read_error(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
    Error::storage("reading the invitations", e)
}

fn write_error(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
    Error::storage("writing the invitations", e)
}

fn find(r: &impl ReadRecords, id: &InviteId) -> Result<Option<InviteRecord>, Error> {
    let t = r.table(INVITES)?;
    let v = t.get(id.as_bytes()).map_err(read_error)?;
    v.map(|v| super::codec::decode("invite", v.value()))
        .transpose()
}

/// The pending invitations of `org` at `now`, oldest first.
fn pending_of(r: &impl ReadRecords, org: &OrgId, now: Timestamp) -> Result<Vec<Invite>, Error> {
    let index = r.table(INVITES_BY_ORG)?;
    let mut out = Vec::new();
    let range = index
        .range((org.as_str(), &[0u8; 8])..=(org.as_str(), &[0xffu8; 8]))
        .map_err(read_error)?;
    for item in range {
        let (k, _) = item.map_err(read_error)?;
        let id = InviteId::from_bytes(*k.value().1);
        if let Some(rec) = find(r, &id)?
            && status_at(&rec.invite, now) == InviteStatus::Pending
        {
            out.push(rec.invite);
        }
    }
    out.sort_by_key(|i| i.created_at);
    Ok(out)
}

/// Writes an invitation record (and, when `new`, its indexes).
fn put(tx: &mut WriteTx, rec: &InviteRecord, new: bool) -> Result<(), Error> {
    let bytes = super::codec::encode(rec)?;
    let id = rec.invite.id.as_bytes();
    super::journal::open(&tx.txn, &tx.journal, INVITES)
        .map_err(write_error)?
        .insert(id, bytes.as_slice())
        .map_err(write_error)?;
    if new {
        super::journal::open(&tx.txn, &tx.journal, INVITES_BY_ORG)
            .map_err(write_error)?
            .insert((rec.invite.org.as_str(), id), ())
            .map_err(write_error)?;
        super::journal::open(&tx.txn, &tx.journal, INVITE_DIGESTS)
            .map_err(write_error)?
            .insert(&rec.digest, id)
            .map_err(write_error)?;
    }
    Ok(())
}
