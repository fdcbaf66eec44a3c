//! serde for users of the library (cargo feature `serde`): JSON and other formats of the
//! public types for an application's own APIs and logs. The store's file format does not
//! use serde (see `store/records.rs`): nothing here changes a byte on disk.
//!
//! Human-readable formats see ids, emails and amounts as text (`"acme"`, `"key_…"`, `"12.5"`)
//! and times as RFC 3339 (`"2026-01-02T03:04:05Z"`); other formats see key ids as their 16
//! bytes, amounts as integer micro-dollars and times as microseconds since the Unix epoch.
//! Deserializing validates like the parsers do (`OrgId::parse`, `Email::parse`, ...).

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Email, InviteId, KeyId, OrgId, Timestamp, Usd};

impl Serialize for OrgId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for OrgId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        OrgId::parse(&s).map_err(D::Error::custom)
    }
}

impl Serialize for Email {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Email {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Email::parse(&s).map_err(D::Error::custom)
    }
}

impl Serialize for KeyId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            self.as_bytes().serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for KeyId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            KeyId::parse(&s).map_err(D::Error::custom)
        } else {
            <[u8; 16]>::deserialize(d).map(KeyId::from_bytes)
        }
    }
}

impl Serialize for InviteId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for InviteId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        InviteId::parse(&s).map_err(D::Error::custom)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            s.serialize_i64(self.as_micros())
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            Timestamp::parse(&s).map_err(D::Error::custom)
        } else {
            i64::deserialize(d).map(Timestamp::from_micros)
        }
    }
}

impl Serialize for Usd {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            s.serialize_i64(self.micros())
        }
    }
}

impl<'de> Deserialize<'de> for Usd {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let v = serde_json::Value::deserialize(d)?;
            let text = match &v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                _ => return Err(D::Error::custom("expected a dollar amount")),
            };
            Usd::parse(&text).map_err(D::Error::custom)
        } else {
            let micros = i64::deserialize(d)?;
            Usd::from_micros(micros).map_err(D::Error::custom)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Budget, Period, Role};

    #[test]
    fn json_forms() {
        let id = KeyId::from_bytes([0xab; 16]);
        let v = serde_json::json!({
            "org": OrgId::parse("acme").unwrap(),
            "email": Email::parse("Ann@X.io").unwrap(),
            "key": id,
            "at": Timestamp::parse("2026-01-02T03:04:05Z").unwrap(),
            "budget": Budget::new(Usd::parse("12.5").unwrap(), Period::Monthly),
            "role": Role::Admin,
        });
        assert_eq!(
            v,
            serde_json::json!({
                "org": "acme",
                "email": "ann@x.io",
                "key": id.to_string(),
                "at": "2026-01-02T03:04:05Z",
                "budget": {"limit": "12.5", "period": "Monthly", "hard": true},
                "role": "Admin",
            })
        );
        let back: KeyId = serde_json::from_value(v["key"].clone()).unwrap();
        assert_eq!(back, id);
        assert!(serde_json::from_str::<OrgId>("\"Not An Id\"").is_err());
        assert!(serde_json::from_str::<Email>("\"nope\"").is_err());
        assert!(serde_json::from_str::<Usd>("-1").is_err());
        assert_eq!(
            serde_json::from_str::<Timestamp>("\"2026-01-02T03:04:05Z\"").unwrap(),
            Timestamp::parse("2026-01-02T03:04:05Z").unwrap()
        );
    }
}
