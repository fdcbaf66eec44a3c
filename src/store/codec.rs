//! The only place that knows how records are encoded: one format byte, then bincode 2.
//! A later format adds a branch in `decode` that migrates the older shape.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;

/// The record format this build writes.
pub(crate) const FORMAT: u8 = 1;

/// More than any record holds (the largest, a config version, is about 1.4 MiB sealed). The
/// decoder checks every length prefix against it before allocating, so a damaged record
/// cannot make it allocate gigabytes (and abort the process) before it notices.
const MAX_RECORD_BYTES: usize = 16 << 20;

type Config = bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<MAX_RECORD_BYTES>,
>;

fn config() -> Config {
    bincode::config::standard().with_limit::<MAX_RECORD_BYTES>()
}

/// Encodes a record with its format byte.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, Error> {
    let mut out = vec![FORMAT];
    bincode::serde::encode_into_std_write(value, &mut out, config())
        .map_err(|e| Error::storage("encoding a record", e))?;
    Ok(out)
}

/// Decodes a record; `what` names it in the error.
pub(crate) fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, Error> {
    let body = body(what, bytes)?;
    let (v, used) =
        bincode::serde::decode_from_slice(body, config()).map_err(|e| Error::corrupt(what, e))?;
    whole(what, body, used)?;
    Ok(v)
}

/// Decodes a record through bincode's own `BorrowDecode` instead of serde: for mirrors of
/// hot record types (the snapshot loader decodes a million keys at open). The bytes are the
/// same: serde's bincode encoding of a struct, a newtype, a `u8` array or a unit variant is
/// bincode's native encoding of its fields, the inner value, the raw bytes or a `u32` index.
/// Strings are borrowed from `bytes`.
pub(crate) fn decode_borrowed<'a, T: bincode::BorrowDecode<'a, ()>>(
    what: &'static str,
    bytes: &'a [u8],
) -> Result<T, Error> {
    let body = body(what, bytes)?;
    let (v, used) =
        bincode::borrow_decode_from_slice(body, config()).map_err(|e| Error::corrupt(what, e))?;
    whole(what, body, used)?;
    Ok(v)
}

/// The bytes after the format byte, when the format is one this build reads.
fn body<'a>(what: &'static str, bytes: &'a [u8]) -> Result<&'a [u8], Error> {
    match bytes.split_first() {
        Some((&FORMAT, body)) => Ok(body),
        Some((&v, _)) if v > FORMAT => Err(Error::new(
            crate::error::ErrorKind::TooNew,
            "store",
            format!(
                "a {what} was written in record format {v} by a newer orgstore; upgrade orgstore to read it"
            ),
        )),
        Some((v, _)) => Err(Error::corrupt(what, format!("unknown record format {v}"))),
        None => Err(Error::corrupt(what, "empty record")),
    }
}

fn whole(what: &'static str, body: &[u8], used: usize) -> Result<(), Error> {
    if used == body.len() {
        Ok(())
    } else {
        Err(Error::corrupt(what, "trailing bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let b = encode(&("a".to_owned(), 5u64)).unwrap();
        let v: (String, u64) = decode("test", &b).unwrap();
        assert_eq!(v, ("a".to_owned(), 5));
        assert!(decode::<(String, u64)>("test", &[]).is_err());
        assert!(decode::<(String, u64)>("test", &[1, 255, 255, 255, 255]).is_err());
        let e = decode::<(String, u64)>("test", &[9, 0]).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::TooNew);
    }
}
