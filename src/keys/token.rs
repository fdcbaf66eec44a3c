//! The format of the store's other bearer secrets (admin API tokens, invitation tokens): a
//! prefix naming the kind (`orgstore_op_`, `orgstore_mb_`, `orgstore_inv_`), 43 characters
//! of URL-safe base64 holding 256 bits from the OS random number generator, `_`, and 8 hex
//! digits of CRC32 over everything before them. A mistyped token fails the checksum and is
//! refused by its shape alone, before any look-up. Only the SHA-256 of the whole text is
//! ever stored.

use base64::Engine;
use rand::TryRngCore;
use sha2::{Digest as _, Sha256};

use crate::error::{Error, ErrorKind};

/// Characters of base64 for 32 random bytes, without padding.
const BODY_LEN: usize = 43;

/// `n` bytes from the OS random number generator; `field` names the caller in the error.
pub(crate) fn random<const N: usize>(field: &'static str) -> Result<[u8; N], Error> {
    let mut b = [0u8; N];
    rand::rngs::OsRng.try_fill_bytes(&mut b).map_err(|e| {
        Error::new(
            ErrorKind::Storage,
            field,
            format!("no randomness ({e}); retry"),
        )
    })?;
    Ok(b)
}

/// Lower-case hex of `bytes` (the admin API's token file).
#[cfg_attr(not(feature = "server"), allow(dead_code))]
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The checksum of a token's text before it: 8 hex digits of CRC32.
fn checksum(body: &str) -> String {
    format!("{:08x}", crc32fast::hash(body.as_bytes()))
}

/// A fresh token of the kind `prefix`; `field` names the caller in the error.
pub(crate) fn generate(prefix: &str, field: &'static str) -> Result<String, Error> {
    let body = format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random::<32>(field)?)
    );
    let check = checksum(&body);
    Ok(format!("{body}_{check}"))
}

/// Whether `token` has the shape of a token of the kind `prefix` and a correct checksum
/// (no look-up).
pub(crate) fn well_formed(token: &str, prefix: &str) -> bool {
    let Some((body, check)) = token.rsplit_once('_') else {
        return false;
    };
    body.starts_with(prefix) && body.len() == prefix.len() + BODY_LEN && check == checksum(body)
}

/// The SHA-256 of the whole token: what is stored instead of it.
pub(crate) fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_check_their_kind_and_checksum() {
        let t = generate("orgstore_inv_", "invite").unwrap();
        assert!(well_formed(&t, "orgstore_inv_"));
        assert!(!well_formed(&t, "orgstore_op_"));
        assert_ne!(t, generate("orgstore_inv_", "invite").unwrap());
        // Every single-character change of the random part is caught by the checksum.
        let at = "orgstore_inv_".len() + 5;
        let mut typo = t.clone().into_bytes();
        typo[at] = if typo[at] == b'A' { b'B' } else { b'A' };
        assert!(!well_formed(
            &String::from_utf8(typo).unwrap(),
            "orgstore_inv_"
        ));
        assert!(!well_formed(&t[..t.len() - 1], "orgstore_inv_"));
        assert!(!well_formed("", "orgstore_inv_"));
        assert_eq!(hex(&[0, 0xab]), "00ab");
        assert_eq!(digest(&t), <[u8; 32]>::from(Sha256::digest(t.as_bytes())));
    }
}
