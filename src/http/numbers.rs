//! Integer header values without an allocation per value: numbers below [`TABLE_LEN`] are
//! slices of one static table, larger ones slices of a per-thread chunk of digits that many
//! responses share (one allocation per [`CHUNK_LEN`] bytes of digits, about a hundred
//! responses of large rate values).

use std::cell::RefCell;

use bytes::{Bytes, BytesMut};
use http::HeaderValue;

/// Numbers below this are pre-rendered.
pub(crate) const TABLE_LEN: u64 = 10_000;

/// Digits of each number below [`TABLE_LEN`], zero-padded to four bytes: `0000`, `0001`, ...
static TABLE: [u8; 4 * TABLE_LEN as usize] = table();

const fn table() -> [u8; 4 * TABLE_LEN as usize] {
    let mut t = [0u8; 4 * TABLE_LEN as usize];
    let mut n = 0;
    while n < TABLE_LEN as usize {
        t[4 * n] = b'0' + (n / 1000) as u8;
        t[4 * n + 1] = b'0' + (n / 100 % 10) as u8;
        t[4 * n + 2] = b'0' + (n / 10 % 10) as u8;
        t[4 * n + 3] = b'0' + (n % 10) as u8;
        n += 1;
    }
    t
}

/// The decimal digits of `n` from the static table (`n < TABLE_LEN`).
fn small(n: u64) -> Option<&'static [u8]> {
    if n >= TABLE_LEN {
        return None;
    }
    let n = n as usize;
    let len = match n {
        0..10 => 1,
        10..100 => 2,
        100..1000 => 3,
        _ => 4,
    };
    TABLE.get(4 * n + 4 - len..4 * n + 4)
}

/// The bytes of digits a thread renders large numbers into before it starts another chunk.
/// A chunk is freed when the last header value slicing it is dropped.
pub(crate) const CHUNK_LEN: usize = 4096;

thread_local! {
    /// The rest of this thread's current chunk of digits.
    static CHUNK: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// The decimal digits of any `n`.
fn digits(mut n: u64, out: &mut [u8; 20]) -> &[u8] {
    let mut i = out.len();
    loop {
        i -= 1;
        out[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &out[i..]
}

/// `n` (at least [`TABLE_LEN`]) as a slice of this thread's chunk.
fn large(n: u64) -> Bytes {
    let mut buf = [0u8; 20];
    let d = digits(n, &mut buf);
    let from_chunk = CHUNK.try_with(|chunk| {
        let mut chunk = chunk.try_borrow_mut().ok()?;
        if chunk.capacity() - chunk.len() < d.len() {
            *chunk = BytesMut::with_capacity(CHUNK_LEN);
        }
        chunk.extend_from_slice(d);
        Some(chunk.split().freeze())
    });
    // Without the thread's chunk (a thread being torn down): a buffer of its own.
    from_chunk
        .ok()
        .flatten()
        .unwrap_or_else(|| Bytes::copy_from_slice(d))
}

/// The header value of `n`: from the static table below [`TABLE_LEN`], else a slice of this
/// thread's chunk of digits.
pub(crate) fn value(n: u64) -> Option<HeaderValue> {
    let bytes = match small(n) {
        Some(d) => Bytes::from_static(d),
        None => large(n),
    };
    HeaderValue::from_maybe_shared(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(n: u64) -> String {
        value(n).unwrap().to_str().unwrap().to_owned()
    }

    #[test]
    fn renders_decimal_from_the_table_and_the_chunk() {
        let values = [
            0,
            7,
            10,
            99,
            100,
            999,
            1000,
            9999,
            10_000,
            123_456,
            u64::MAX,
        ];
        for n in values {
            assert_eq!(rendered(n), n.to_string());
        }
        for n in 0..TABLE_LEN {
            assert_eq!(
                std::str::from_utf8(small(n).unwrap()).unwrap(),
                n.to_string()
            );
        }
        assert_eq!(small(TABLE_LEN), None);
        // Across chunk boundaries.
        for n in (0..2 * CHUNK_LEN as u64).map(|i| u64::MAX - i * 7_919) {
            assert_eq!(rendered(n), n.to_string());
        }
    }

    #[test]
    fn table_values_are_static_and_large_ones_share_a_chunk() {
        let got = [5, 20_000, 30_000].map(|n| value(n).unwrap());
        let ptr = |v: &HeaderValue| v.as_bytes().as_ptr() as usize;
        let table = TABLE.as_ptr() as usize..TABLE.as_ptr() as usize + TABLE.len();
        assert!(table.contains(&ptr(&got[0])));
        assert_eq!(ptr(&got[1]) + 5, ptr(&got[2]));
    }
}
