//! The only place that knows how records are encoded: one format byte, then bincode 2 of
//! the record's private shape (`records.rs`). A later format adds a branch in `decode` that
//! migrates the older shape.

use bincode::{BorrowDecode, Decode, Encode};

use super::records::Record;
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
pub(crate) fn encode<T: Record>(value: &T) -> Result<Vec<u8>, Error> {
    encode_shape(&value.to_disk())
}

/// Decodes a record; `what` names it in the error.
pub(crate) fn decode<T: Record>(what: &'static str, bytes: &[u8]) -> Result<T, Error> {
    let shape: T::Disk = decode_shape(what, bytes)?;
    T::from_disk(shape, what)
}

/// Encodes a record shape with the format byte.
fn encode_shape<D: Encode>(shape: &D) -> Result<Vec<u8>, Error> {
    let mut out = vec![FORMAT];
    bincode::encode_into_std_write(shape, &mut out, config())
        .map_err(|e| Error::storage("encoding a record", e))?;
    Ok(out)
}

/// Decodes a record shape after checking the format byte.
fn decode_shape<D: Decode<()>>(what: &'static str, bytes: &[u8]) -> Result<D, Error> {
    let body = body(what, bytes)?;
    let (v, used) =
        bincode::decode_from_slice(body, config()).map_err(|e| Error::corrupt(what, e))?;
    whole(what, body, used)?;
    Ok(v)
}

/// Decodes a borrowed mirror of a record shape (the snapshot loader decodes a million keys
/// at open): the same bytes as the owned shape, strings borrowed from `bytes`.
pub(crate) fn decode_borrowed<'a, T: BorrowDecode<'a, ()>>(
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
        let b = encode_shape(&("a".to_owned(), 5u64)).unwrap();
        assert_eq!(b, [FORMAT, 1, b'a', 5]);
        let v: (String, u64) = decode_shape("test", &b).unwrap();
        assert_eq!(v, ("a".to_owned(), 5));
        assert!(decode_shape::<(String, u64)>("test", &[]).is_err());
        assert!(decode_shape::<(String, u64)>("test", &[1, 255, 255, 255, 255]).is_err());
        let e = decode_shape::<(String, u64)>("test", &[9, 0]).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::TooNew);
    }
}
