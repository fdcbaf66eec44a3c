//! The only place that knows how records are encoded: one format byte, then bincode 2.
//! A later format adds a branch in `decode` that migrates the older shape.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;

/// The record format this build writes.
pub(crate) const FORMAT: u8 = 1;

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
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
    match bytes.split_first() {
        Some((&FORMAT, body)) => {
            let (v, used) = bincode::serde::decode_from_slice(body, config())
                .map_err(|e| Error::corrupt(what, e))?;
            if used != body.len() {
                return Err(Error::corrupt(what, "trailing bytes"));
            }
            Ok(v)
        }
        Some((&v, _)) if v > FORMAT => Err(Error::new(
            crate::error::ErrorKind::TooNew,
            "store",
            format!("a {what} was written in record format {v} by a newer orgstore; upgrade orgstore to read it"),
        )),
        Some((v, _)) => Err(Error::corrupt(what, format!("unknown record format {v}"))),
        None => Err(Error::corrupt(what, "empty record")),
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
