//! The virtual key format: generation, parsing with a checksum, digest, display prefix and
//! header extraction.
//!
//! A generated key is `sk-agentcc-` + 43 base62 characters (256 bits from the OS random number
//! generator) + 6 base62 characters of CRC32 over everything before them, 60 characters in all.
//! A mistyped or invented key fails the checksum and is rejected without any lookup. Keys
//! imported from the upstream gateway (`sk-agentcc-` + 48 lowercase hex digits) carry no
//! checksum and are accepted by shape only. The store keeps only the SHA-256 digest of the
//! whole key string (the upstream scheme, so imported digests match).

use rand::{RngCore, TryRngCore};
use sha2::{Digest as _, Sha256};
use std::fmt;
use zeroize::Zeroizing;

/// The prefix every key starts with.
pub const KEY_PREFIX: &str = "sk-agentcc-";
const BODY_LEN: usize = 43;
const CHECK_LEN: usize = 6;
/// Length of a generated key.
pub const KEY_LEN: usize = KEY_PREFIX.len() + BODY_LEN + CHECK_LEN;
const LEGACY_HEX_LEN: usize = 48;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// SHA-256 of a whole key string: what the store keeps instead of the key.
pub type KeyDigest = [u8; 32];

/// A full key, returned exactly once at creation or rotation. Its memory is wiped on drop and
/// its `Debug` output shows only the display prefix.
///
/// ```
/// let key = orgstore::SecretKey::generate();
/// assert!(key.expose().starts_with("sk-agentcc-"));
/// assert!(!format!("{key:?}").contains(&key.expose()[12..]));
/// ```
pub struct SecretKey(Zeroizing<String>);

impl SecretKey {
    /// Generates a fresh key with 256 random bits and a checksum.
    pub fn generate() -> Self {
        let mut s = String::with_capacity(KEY_LEN);
        s.push_str(KEY_PREFIX);
        // One read from the OS generator per 64 bytes; bytes >= 248 are rejected so that
        // `b % 62` is uniform (248 = 4 * 62): 43 characters carry 256 bits.
        let mut rng = rand::rngs::OsRng.unwrap_err();
        let mut buf = Zeroizing::new([0u8; 64]);
        let mut body = 0;
        while body < BODY_LEN {
            rng.fill_bytes(&mut buf[..]);
            for &b in buf.iter().filter(|&&b| b < 248) {
                if body == BODY_LEN {
                    break;
                }
                s.push(char::from(BASE62[usize::from(b % 62)]));
                body += 1;
            }
        }
        let check = checksum_chars(s.as_bytes());
        s.extend(check.iter().map(|&b| char::from(b)));
        Self(Zeroizing::new(s))
    }

    /// The full key. Show it to the user once; never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The digest the store keeps.
    pub fn digest(&self) -> KeyDigest {
        digest(&self.0)
    }

    /// The display prefix, e.g. `sk-agentcc-A...`.
    pub fn prefix(&self) -> String {
        display_prefix(&self.0)
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({})", display_prefix(&self.0))
    }
}

/// Why a string is not a well-formed key. Stable, cheap and never containing the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyFormatError {
    /// The string does not start with `sk-agentcc-`.
    Prefix,
    /// Wrong length for any accepted format.
    Length,
    /// A character outside the key alphabet.
    Charset,
    /// The checksum does not match: a typo or an invented key.
    Checksum,
}

impl fmt::Display for KeyFormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyFormatError::Prefix => "key must start with sk-agentcc-",
            KeyFormatError::Length => "key has the wrong length; copy the whole key",
            KeyFormatError::Charset => "key contains a character that no key has; copy it again",
            KeyFormatError::Checksum => "key checksum does not match; the key was mistyped",
        })
    }
}

impl std::error::Error for KeyFormatError {}

/// Checks a key's shape (and checksum, for generated keys) without any lookup or allocation.
///
/// ```
/// use orgstore::{SecretKey, check_key_format, KeyFormatError};
/// let key = SecretKey::generate();
/// assert!(check_key_format(key.expose()).is_ok());
/// let mut typo = key.expose().to_owned();
/// let c = if &typo[20..21] == "x" { "y" } else { "x" };
/// typo.replace_range(20..21, c);
/// assert_eq!(check_key_format(&typo), Err(KeyFormatError::Checksum));
/// ```
#[inline]
pub fn check_key_format(key: &str) -> Result<(), KeyFormatError> {
    if check_key_shape(key)? {
        verify_checksum(key)?;
    }
    Ok(())
}

/// Checks prefix, length and alphabet. Returns whether the key carries a checksum (a
/// generated key) that [`verify_checksum`] can check.
#[inline]
fn check_key_shape(key: &str) -> Result<bool, KeyFormatError> {
    let b = key.as_bytes();
    let Some(rest) = b.strip_prefix(KEY_PREFIX.as_bytes()) else {
        return Err(KeyFormatError::Prefix);
    };
    match rest.len() {
        n if n == BODY_LEN + CHECK_LEN => {
            if all_alphanumeric(rest) {
                Ok(true)
            } else {
                Err(KeyFormatError::Charset)
            }
        }
        LEGACY_HEX_LEN => {
            if rest
                .iter()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
            {
                Ok(false)
            } else {
                Err(KeyFormatError::Charset)
            }
        }
        _ => Err(KeyFormatError::Length),
    }
}

/// Verifies the CRC32 checksum of a generated key whose shape is already checked.
#[inline]
fn verify_checksum(key: &str) -> Result<(), KeyFormatError> {
    let b = key.as_bytes();
    match b.len().checked_sub(CHECK_LEN).map(|n| b.split_at(n)) {
        Some((signed, check)) if checksum_chars(signed) == check => Ok(()),
        _ => Err(KeyFormatError::Checksum),
    }
}

/// Branch-free over the whole slice, so the compiler can vectorize it.
#[inline]
fn all_alphanumeric(s: &[u8]) -> bool {
    s.iter().fold(true, |ok, &c| {
        let letter = (c | 0x20).wrapping_sub(b'a') < 26;
        let digit = c.wrapping_sub(b'0') < 10;
        ok & (letter | digit)
    })
}

/// SHA-256 of the whole key string.
#[inline]
pub fn digest(key: &str) -> KeyDigest {
    Sha256::digest(key.as_bytes()).into()
}

/// Parses a 64-digit SHA-256 hex digest (for imports).
pub fn parse_digest_hex(hex: &str) -> Option<KeyDigest> {
    let hex = hex.trim();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The display prefix: the first 12 characters and `...` (upstream's scheme).
pub fn display_prefix(key: &str) -> String {
    let head: String = key.chars().take(12).collect();
    format!("{head}...")
}

fn checksum_chars(signed: &[u8]) -> [u8; CHECK_LEN] {
    let mut v = crc32fast::hash(signed);
    let mut out = [b'0'; CHECK_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(v % 62) as usize];
        v /= 62;
    }
    out
}

/// Why request headers carry no usable key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HeaderError {
    /// Neither `Authorization` nor `x-api-key` was given.
    Missing,
    /// `Authorization` is present but not `Bearer <key>`.
    Scheme,
    /// The header value is empty or has spaces inside the key.
    Malformed,
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HeaderError::Missing => {
                "send the key as `Authorization: Bearer <key>` or `x-api-key: <key>`"
            }
            HeaderError::Scheme => {
                "authorization header must use the Bearer scheme: `Bearer <key>`"
            }
            HeaderError::Malformed => "key header is empty or has spaces inside the key",
        })
    }
}

impl std::error::Error for HeaderError {}

/// Extracts the key from request headers: `Authorization: Bearer <key>` first, else
/// `x-api-key`. Anything else is rejected.
///
/// ```
/// use orgstore::{key_from_headers, HeaderError};
/// assert_eq!(key_from_headers(Some("Bearer sk-agentcc-abc"), None), Ok("sk-agentcc-abc"));
/// assert_eq!(key_from_headers(None, Some("sk-agentcc-abc")), Ok("sk-agentcc-abc"));
/// assert_eq!(key_from_headers(Some("Basic Zm9v"), None), Err(HeaderError::Scheme));
/// assert_eq!(key_from_headers(None, None), Err(HeaderError::Missing));
/// ```
pub fn key_from_headers<'a>(
    authorization: Option<&'a str>,
    x_api_key: Option<&'a str>,
) -> Result<&'a str, HeaderError> {
    let raw = match (authorization, x_api_key) {
        (Some(auth), _) => {
            let auth = auth.trim();
            let (scheme, rest) = auth.split_once(' ').ok_or(HeaderError::Scheme)?;
            if !scheme.eq_ignore_ascii_case("bearer") {
                return Err(HeaderError::Scheme);
            }
            rest.trim()
        }
        (None, Some(k)) => k.trim(),
        (None, None) => return Err(HeaderError::Missing),
    };
    if raw.is_empty() || raw.bytes().any(|c| c.is_ascii_whitespace()) {
        return Err(HeaderError::Malformed);
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_differ() {
        let a = SecretKey::generate();
        let b = SecretKey::generate();
        assert_eq!(a.expose().len(), KEY_LEN);
        assert_ne!(a.expose(), b.expose());
        assert_eq!(check_key_format(a.expose()), Ok(()));
    }

    #[test]
    fn every_single_character_typo_is_caught() {
        let key = SecretKey::generate();
        let k = key.expose();
        for i in KEY_PREFIX.len()..k.len() {
            for &c in BASE62.iter().step_by(7) {
                if k.as_bytes()[i] == c {
                    continue;
                }
                let mut typo = k.as_bytes().to_vec();
                typo[i] = c;
                let typo = String::from_utf8(typo).unwrap();
                assert_eq!(
                    check_key_format(&typo),
                    Err(KeyFormatError::Checksum),
                    "pos {i}"
                );
            }
        }
    }

    #[test]
    fn legacy_hex_keys_are_accepted_by_shape() {
        let k = format!("{KEY_PREFIX}{}", "0123456789abcdef".repeat(3));
        assert_eq!(check_key_format(&k), Ok(()));
        let upper = k.to_uppercase().replace("SK-AGENTCC-", KEY_PREFIX);
        assert_eq!(check_key_format(&upper), Err(KeyFormatError::Charset));
        assert_eq!(
            check_key_format("sk-agentcc-short"),
            Err(KeyFormatError::Length)
        );
        assert_eq!(check_key_format("sk-other"), Err(KeyFormatError::Prefix));
        assert_eq!(
            check_key_format(&"é".repeat(40)),
            Err(KeyFormatError::Prefix)
        );
    }

    #[test]
    fn digest_is_upstream_sha256_hex_compatible() {
        let d = digest("abc");
        assert_eq!(
            parse_digest_hex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
            Some(d)
        );
    }
}
