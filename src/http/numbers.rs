//! Integer header values without an allocation per value: numbers below [`TABLE_LEN`] are
//! slices of one static table, larger ones of a single buffer shared by a response's values.

use bytes::Bytes;
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

/// The most values [`render`] takes.
pub(crate) const MAX_VALUES: usize = 6;

/// Where the digits of large numbers go: one allocation for all of a response's values.
struct Digits {
    buf: [u8; MAX_VALUES * 20],
    len: usize,
}

impl AsRef<[u8]> for Digits {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Digits {
    fn push(&mut self, mut n: u64) -> std::ops::Range<usize> {
        let mut tmp = [0u8; 20];
        let mut i = tmp.len();
        loop {
            i -= 1;
            tmp[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let start = self.len;
        for &d in &tmp[i..] {
            if let Some(slot) = self.buf.get_mut(self.len) {
                *slot = d;
                self.len += 1;
            }
        }
        start..self.len
    }
}

/// The header values of `values` (at most [`MAX_VALUES`]; more are left `None`), calling
/// `each(i, value)` for each: no allocation when every number is below [`TABLE_LEN`], one
/// otherwise.
pub(crate) fn render(values: &[u64], mut each: impl FnMut(usize, HeaderValue)) {
    let values = &values[..values.len().min(MAX_VALUES)];
    let mut large: Option<(Digits, [std::ops::Range<usize>; MAX_VALUES])> = None;
    for (i, &n) in values.iter().enumerate() {
        if let Some(d) = small(n) {
            if let Ok(v) = HeaderValue::from_maybe_shared(Bytes::from_static(d)) {
                each(i, v);
            }
        } else {
            let (digits, ranges) = large.get_or_insert_with(|| {
                (
                    Digits {
                        buf: [0; MAX_VALUES * 20],
                        len: 0,
                    },
                    std::array::from_fn(|_| 0..0),
                )
            });
            ranges[i] = digits.push(n);
        }
    }
    let Some((digits, ranges)) = large else {
        return;
    };
    let shared = Bytes::from_owner(digits);
    for (i, &n) in values.iter().enumerate() {
        if n >= TABLE_LEN
            && let Some(range) = ranges.get(i)
            && let Ok(v) = HeaderValue::from_maybe_shared(shared.slice(range.clone()))
        {
            each(i, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(values: &[u64]) -> Vec<String> {
        let mut out = vec![String::new(); values.len()];
        render(values, |i, v| out[i] = v.to_str().unwrap().to_owned());
        out
    }

    #[test]
    fn renders_decimal_from_the_table_and_the_shared_buffer() {
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
        for chunk in values.chunks(MAX_VALUES) {
            let want: Vec<String> = chunk.iter().map(u64::to_string).collect();
            assert_eq!(rendered(chunk), want);
        }
        for n in 0..TABLE_LEN {
            assert_eq!(
                std::str::from_utf8(small(n).unwrap()).unwrap(),
                n.to_string()
            );
        }
        assert_eq!(small(TABLE_LEN), None);
    }

    #[test]
    fn table_values_are_static_and_large_ones_share_one_buffer() {
        let mut got = Vec::new();
        render(&[5, 20_000, 30_000], |_, v| got.push(v));
        let ptr = |v: &HeaderValue| v.as_bytes().as_ptr() as usize;
        let table = TABLE.as_ptr() as usize..TABLE.as_ptr() as usize + TABLE.len();
        assert!(table.contains(&ptr(&got[0])));
        assert_eq!(ptr(&got[1]) + 5, ptr(&got[2]));
    }
}
