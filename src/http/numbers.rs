//! Integer header values without an allocation per value: numbers below [`TABLE_LEN`] are
//! slices of one static table, larger ones slices of a per-thread chunk of digits that many
//! responses share (one allocation per [`CHUNK_LEN`] bytes of digits, about a hundred
//! responses of large rate values). A thread keeps its last large limit of each kind, and
//! with it the chunk that limit is a slice of.

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

/// A thread's digits: the rest of its current chunk, and the last large limit of each
/// kind rendered (a key's limit is the same on every response, its remaining count not).
struct Digits {
    chunk: BytesMut,
    limits: [(u64, Option<HeaderValue>); LIMIT_SLOTS],
}

/// Kinds of limit remembered: requests and tokens per minute.
pub(crate) const LIMIT_SLOTS: usize = 2;

thread_local! {
    static DIGITS: RefCell<Digits> = RefCell::new(Digits {
        chunk: BytesMut::new(),
        limits: [(0, None), (0, None)],
    });
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

impl Digits {
    /// `n` as a slice of the chunk (a new chunk when this one is full).
    fn large(&mut self, n: u64) -> Bytes {
        let mut buf = [0u8; 20];
        let d = digits(n, &mut buf);
        if self.chunk.capacity() - self.chunk.len() < d.len() {
            self.chunk = BytesMut::with_capacity(CHUNK_LEN);
        }
        self.chunk.extend_from_slice(d);
        self.chunk.split().freeze()
    }
}

/// `n` (at least [`TABLE_LEN`]) through this thread's digits, else (a thread being torn
/// down) in a buffer of its own.
fn with_digits(n: u64, f: impl FnOnce(&mut Digits) -> Option<HeaderValue>) -> Option<HeaderValue> {
    DIGITS
        .try_with(|d| d.try_borrow_mut().ok().and_then(|mut d| f(&mut d)))
        .ok()
        .flatten()
        .or_else(|| HeaderValue::from_maybe_shared(Bytes::from(n.to_string())).ok())
}

/// The header value of `n`: from the static table below [`TABLE_LEN`], else a slice of this
/// thread's chunk of digits.
pub(crate) fn value(n: u64) -> Option<HeaderValue> {
    match small(n) {
        Some(d) => HeaderValue::from_maybe_shared(Bytes::from_static(d)).ok(),
        None => with_digits(n, |d| HeaderValue::from_maybe_shared(d.large(n)).ok()),
    }
}

/// [`value`] of a limit of kind `slot` (below [`LIMIT_SLOTS`]): a large one is rendered
/// once and shared while it stays the thread's last limit of that kind.
pub(crate) fn limit_value(slot: usize, n: u64) -> Option<HeaderValue> {
    if n < TABLE_LEN {
        return value(n);
    }
    with_digits(n, |d| {
        if let Some((last, Some(v))) = d.limits.get(slot)
            && *last == n
        {
            return Some(v.clone());
        }
        let v = HeaderValue::from_maybe_shared(d.large(n)).ok()?;
        if let Some(kept) = d.limits.get_mut(slot) {
            *kept = (n, Some(v.clone()));
        }
        Some(v)
    })
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
    fn a_large_limit_is_rendered_once_per_kind() {
        let a = limit_value(0, 1_000_000).unwrap();
        let b = limit_value(1, 2_000_000).unwrap();
        let ptr = |v: &HeaderValue| v.as_bytes().as_ptr() as usize;
        assert_eq!(ptr(&limit_value(0, 1_000_000).unwrap()), ptr(&a));
        assert_eq!(ptr(&limit_value(1, 2_000_000).unwrap()), ptr(&b));
        let c = limit_value(0, 1_000_001).unwrap();
        assert_eq!(c.to_str().unwrap(), "1000001");
        assert_ne!(ptr(&c), ptr(&a));
        assert_eq!(limit_value(0, 42).unwrap().to_str().unwrap(), "42");
        assert_eq!(
            limit_value(7, 3_000_000).unwrap().to_str().unwrap(),
            "3000000"
        );
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
