//! Validated identifiers.

use std::fmt;

use crate::error::Error;

/// An organization id chosen by the caller: `[a-z0-9][a-z0-9-]{0,62}`.
///
/// ```
/// use orgstore::OrgId;
/// assert!(OrgId::parse("customer-a").is_ok());
/// assert!(OrgId::parse("Customer A").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OrgId(String);

impl OrgId {
    /// No org: what a value that has none shows (never a valid id).
    #[cfg(feature = "tower")]
    pub(crate) const EMPTY: OrgId = OrgId(String::new());

    /// Validates an org id.
    pub fn parse(s: &str) -> Result<Self, Error> {
        if !org_id_ok(s) {
            return Err(Error::invalid(
                "org id",
                "use 1 to 63 characters of a-z, 0-9 and '-', starting with a letter or digit",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// An id read from a record, when it is a valid one.
    pub(crate) fn from_stored(s: String) -> Option<Self> {
        org_id_ok(&s).then_some(Self(s))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether `s` is a valid org id (see [`OrgId`]).
pub(crate) fn org_id_ok(s: &str) -> bool {
    let b = s.as_bytes();
    let ok_first = b
        .first()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let ok_rest = b
        .iter()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-');
    ok_first && ok_rest && b.len() <= 63
}

impl std::borrow::Borrow<str> for OrgId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for OrgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OrgId({})", self.0)
    }
}

/// A person's email, normalised so that two addresses that look the same are one person.
///
/// The rule ([`Email::normalize`]): blanks around it are trimmed; the text is put in Unicode
/// NFKC form (composed accents; compatibility forms such as full-width letters, ligatures
/// like `ﬁ`, superscripts and the long s `ſ` become their plain letters); every character
/// is lower-cased by Unicode's lower-case mapping, without context (`Σ` is `σ` anywhere),
/// and the final sigma `ς` becomes `σ`; and NFKC is applied once more (lower-casing can
/// decompose). Normalising a normalised address changes nothing. The result is then
/// validated: no blanks, control, invisible or text-direction characters, one `@` with text
/// on both sides, at most 254 bytes. `ß` stays `ß` (it does not look like `ss`).
///
/// ```
/// use orgstore::Email;
/// assert_eq!(Email::parse(" Ann@Example.COM ").unwrap().as_str(), "ann@example.com");
/// // Decomposed accent, full-width letters, a ligature: the same people as their plain forms.
/// assert_eq!(Email::parse("zoe\u{308}@x.io").unwrap(), Email::parse("zo\u{eb}@x.io").unwrap());
/// assert_eq!(Email::parse("ＡＮＮ@x.io").unwrap().as_str(), "ann@x.io");
/// assert_eq!(Email::parse("ﬁona@x.io").unwrap().as_str(), "fiona@x.io");
/// assert!(Email::parse("not-an-email").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Email(String);

/// Characters that change text direction: they make displayed text differ from its content.
pub(crate) fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Characters that show nothing (or change direction): two emails differing only by them
/// would look like one person.
pub(crate) fn is_invisible(c: char) -> bool {
    is_bidi_control(c)
        || matches!(c, '\u{00ad}' | '\u{200b}'..='\u{200d}' | '\u{2060}'..='\u{2064}' | '\u{feff}')
}

impl Email {
    /// The normal form of an address (see [`Email`]), without validating it.
    pub fn normalize(s: &str) -> String {
        use unicode_normalization::UnicodeNormalization;
        let lower: String = s
            .trim()
            .nfkc()
            .flat_map(char::to_lowercase)
            .map(|c| if c == '\u{3c2}' { '\u{3c3}' } else { c })
            .collect();
        lower.nfkc().collect()
    }

    /// Normalises and validates an email address.
    pub fn parse(s: &str) -> Result<Self, Error> {
        let norm = Self::normalize(s);
        let fix = "give an address like name@example.com (at most 254 characters, no spaces)";
        if norm.len() > 254
            || norm
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || is_invisible(c))
        {
            return Err(Error::invalid("email", fix));
        }
        match norm.split_once('@') {
            Some((local, domain))
                if !local.is_empty()
                    && !domain.is_empty()
                    && !domain.contains('@')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.') =>
            {
                Ok(Self(norm))
            }
            _ => Err(Error::invalid("email", fix)),
        }
    }

    /// An address read from a record: normalised, not validated (an address stored before
    /// the current rule keeps working).
    pub(crate) fn from_stored(s: &str) -> Self {
        Self(Self::normalize(s))
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({})", self.0)
    }
}

/// A virtual key's id: 128 random bits, shown as `key_` and 32 hex digits. Never a counter,
/// so ids are unique across restarts and replicas.
///
/// ```
/// use orgstore::KeyId;
/// let id = KeyId::random();
/// assert_eq!(KeyId::parse(&id.to_string()).unwrap(), id);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId([u8; 16]);

impl KeyId {
    /// The all-zero id, never given to a key.
    pub(crate) const NIL: KeyId = KeyId([0; 16]);

    /// A fresh id from the OS random number generator.
    pub fn random() -> Self {
        Self(rand::random())
    }

    /// Parses `key_<32 hex digits>`.
    pub fn parse(s: &str) -> Result<Self, Error> {
        let fix = "give a key id as printed by `key list`: key_ followed by 32 hex digits";
        let hex = s
            .strip_prefix("key_")
            .ok_or_else(|| Error::invalid("key id", fix))?;
        let mut out = [0u8; 16];
        if hex.len() != 32 {
            return Err(Error::invalid("key id", fix));
        }
        for (i, byte) in out.iter_mut().enumerate() {
            let pair = hex
                .get(i * 2..i * 2 + 2)
                .ok_or_else(|| Error::invalid("key id", fix))?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| Error::invalid("key id", fix))?;
        }
        Ok(Self(out))
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Builds an id from raw bytes (as stored).
    pub fn from_bytes(b: [u8; 16]) -> Self {
        Self(b)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("key_")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}
