//! Plain data: identifiers, roles, organizations, members, keys.

mod decimal;
mod ids;
mod invite;
mod key;
mod member;
mod model_name;
mod money;
mod org;
mod role;
#[cfg(feature = "serde")]
mod serde_impls;
mod time;

pub(crate) use decimal::Decimal;
pub use ids::{Email, KeyId, OrgId};
pub(crate) use ids::{is_bidi_control, org_id_ok};
pub use invite::{Invite, InviteId, InviteStatus};
pub use key::{Budget, KeyInfo, KeySource, KeySpec, KeyStatus};
pub use member::Member;
pub use model_name::MAX_MODEL_NAME_BYTES;
pub(crate) use model_name::{model_name_fits, validate_model_name};
pub use money::{Period, Usd};
pub use org::{Org, OrgStatus};
pub use role::{Actor, Role};
pub use time::Timestamp;
