//! redb table definitions: records and their secondary indexes. Record values are the
//! shapes of `records.rs` (`OrgV1`, ...) encoded by `codec`.

use redb::TableDefinition;

/// `"format"` -> store format version (u64 LE). Format 1 files also hold `"audit_seq"`, the
/// last store-wide audit number (unused since audit entries are numbered per org).
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// org id -> encoded `OrgV1`.
pub(crate) const ORGS: TableDefinition<&str, &[u8]> = TableDefinition::new("orgs");
/// (org id, version) -> encoded `ConfigV1`.
pub(crate) const CONFIGS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("configs");
/// (org id, email) -> encoded `MemberV1`.
pub(crate) const MEMBERS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("members");
/// Index: (email, org id) -> role level.
pub(crate) const MEMBER_ORGS: TableDefinition<(&str, &str), u8> =
    TableDefinition::new("member_orgs");
/// key id -> encoded `KeyV1`.
pub(crate) const KEYS: TableDefinition<&[u8; 16], &[u8]> = TableDefinition::new("keys");
/// Index: (org id, key id) -> ().
pub(crate) const KEYS_BY_ORG: TableDefinition<(&str, &[u8; 16]), ()> =
    TableDefinition::new("keys_by_org");
/// Index: SHA-256 digest of the key -> key id.
pub(crate) const KEY_DIGESTS: TableDefinition<&[u8; 32], &[u8; 16]> =
    TableDefinition::new("key_digests");
/// Every key digest ever issued (live, rotated away, revoked) -> the id of the key it was
/// issued to. Never shrinks: an import of any digest in it is refused, so a secret that was
/// rotated away or revoked can never be brought back, in any org. Added in store format 2
/// (filled at migration from the digests a format 1 file still holds).
pub(crate) const ISSUED_DIGESTS: TableDefinition<&[u8; 32], &[u8; 16]> =
    TableDefinition::new("issued_digests");
/// (org id, sequence) -> encoded `AuditV1`; the sequence counts from 1 in each org.
pub(crate) const AUDIT: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("audit");
/// (scope, window start micros) -> spent micro-dollars; scope is `o:<org>` or `k:<key id>`
/// (`records::org_ledger_name`, `records::key_ledger_name`).
pub(crate) const SPEND: TableDefinition<(&str, i64), i64> = TableDefinition::new("spend");
/// invite id -> encoded `InviteV1`.
pub(crate) const INVITES: TableDefinition<&[u8; 8], &[u8]> = TableDefinition::new("invites");
/// Index: (org id, invite id) -> ().
pub(crate) const INVITES_BY_ORG: TableDefinition<(&str, &[u8; 8]), ()> =
    TableDefinition::new("invites_by_org");
/// Index: SHA-256 digest of the invitation's token -> invite id.
pub(crate) const INVITE_DIGESTS: TableDefinition<&[u8; 32], &[u8; 8]> =
    TableDefinition::new("invite_digests");
