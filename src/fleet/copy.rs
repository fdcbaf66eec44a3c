//! Reading one table of the fleet's state (`orgstore_state`) by one binary `COPY`: no
//! ordering asked of the engine (a sequential scan, several times cheaper than walking the
//! primary key), the rows cut into chunks of raw bytes with the ranges of their keys and
//! values, never one allocation per row.

use std::io::BufRead;

use super::engine::Engine;
use crate::error::Error;
use crate::store::bootstrap::Chunk;

/// How many rows a chunk holds at most (the writer sorts and writes one at a time).
const CHUNK_ROWS: usize = 1 << 16;

/// The signature, flags and header extension length opening a binary COPY.
const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

fn damaged(what: &str) -> Error {
    Error::corrupt(
        "fleet state",
        format!("the engine's copy of the state is damaged: {what}"),
    )
}

/// Copies the rows of `table` out of `t`, handing each chunk to `send`; stops early (and
/// returns `false`) when `send` returns `false` (the writer gave up).
pub(crate) fn copy_table(
    t: &mut postgres::Transaction<'_>,
    table: &str,
    engine: &Engine,
    send: &mut dyn FnMut(Chunk) -> bool,
) -> Result<bool, Error> {
    // Table names are this build's own (letters and underscores), never user input.
    if !table.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        return Err(Error::invalid(
            "table",
            format!("`{table}` is not a replicated table name"),
        ));
    }
    let un = |e| engine.unavailable("copying the fleet's state", e);
    let mut r = t
        .copy_out(&format!(
            "COPY (SELECT k, v FROM orgstore_state WHERE tbl = '{table}') TO STDOUT \
             (FORMAT binary)"
        ))
        .map_err(un)?;
    let fresh = |bytes: Vec<u8>| Chunk {
        table: table.to_owned(),
        bytes,
        rows: Vec::with_capacity(CHUNK_ROWS),
    };
    let mut chunk = fresh(Vec::with_capacity(CHUNK_ROWS * 64));
    let mut parser = Parser::default();
    loop {
        let buf = r.fill_buf().map_err(|e| {
            match e.into_inner().map(|e| e.downcast::<postgres::Error>()) {
                Some(Ok(e)) => un(*e),
                _ => damaged("the stream could not be read"),
            }
        })?;
        if buf.is_empty() {
            break;
        }
        let n = buf.len();
        chunk.bytes.extend_from_slice(buf);
        r.consume(n);
        parser.parse(&mut chunk)?;
        if chunk.rows.len() >= CHUNK_ROWS {
            let tail = chunk.bytes.split_off(parser.pos);
            let full = std::mem::replace(&mut chunk, fresh(tail));
            parser.pos = 0;
            if !send(full) {
                return Ok(false);
            }
        }
    }
    if !parser.ended || parser.pos != chunk.bytes.len() {
        return Err(damaged("it ends early"));
    }
    Ok(chunk.rows.is_empty() || send(chunk))
}

/// Where the parse of a COPY stream is.
#[derive(Default)]
struct Parser {
    /// The first byte of `Chunk::bytes` not parsed yet.
    pos: usize,
    /// The header was read.
    started: bool,
    /// The trailer was read.
    ended: bool,
}

impl Parser {
    /// Parses every complete row of `chunk.bytes` after `pos` into `chunk.rows`.
    fn parse(&mut self, chunk: &mut Chunk) -> Result<(), Error> {
        let b = &chunk.bytes;
        loop {
            let rest = b.get(self.pos..).unwrap_or_default();
            if self.ended {
                return if rest.is_empty() {
                    Ok(())
                } else {
                    Err(damaged("bytes after its end"))
                };
            }
            if !self.started {
                let Some(ext) = be32(rest, SIGNATURE.len() + 4) else {
                    return Ok(());
                };
                if !rest.starts_with(SIGNATURE) || ext < 0 {
                    return Err(damaged("no binary COPY header"));
                }
                let len = SIGNATURE.len() + 8 + ext as usize;
                if rest.len() < len {
                    return Ok(());
                }
                self.pos += len;
                self.started = true;
                continue;
            }
            let Some(fields) = rest.get(..2).map(|f| i16::from_be_bytes([f[0], f[1]])) else {
                return Ok(());
            };
            if fields == -1 {
                self.pos += 2;
                self.ended = true;
                continue;
            }
            if fields != 2 {
                return Err(damaged("a row without two fields"));
            }
            let Some(kl) = be32(rest, 2) else {
                return Ok(());
            };
            let kl = usize::try_from(kl).map_err(|_| damaged("a null key"))?;
            let Some(vl) = be32(rest, 6 + kl) else {
                return Ok(());
            };
            let vl = usize::try_from(vl).map_err(|_| damaged("a null value"))?;
            let len = 10 + kl + vl;
            if rest.len() < len {
                return Ok(());
            }
            let k = self.pos + 6;
            let v = k + kl + 4;
            chunk.rows.push((k..k + kl, v..v + vl));
            self.pos += len;
        }
    }
}

/// The big-endian `i32` at `at` in `b`, when `b` holds it.
fn be32(b: &[u8], at: usize) -> Option<i32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(i32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(rows: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut b = SIGNATURE.to_vec();
        b.extend_from_slice(&0u32.to_be_bytes());
        b.extend_from_slice(&0u32.to_be_bytes());
        for (k, v) in rows {
            b.extend_from_slice(&2i16.to_be_bytes());
            for f in [k, v] {
                b.extend_from_slice(&(f.len() as i32).to_be_bytes());
                b.extend_from_slice(f);
            }
        }
        b.extend_from_slice(&(-1i16).to_be_bytes());
        b
    }

    #[test]
    fn rows_parse_whatever_the_stream_is_cut_into() {
        let rows: &[(&[u8], &[u8])] = &[(b"a", b"one"), (b"", b""), (b"key", &[7; 300])];
        let all = stream(rows);
        for cut in [1, 2, 3, 7, 19, 64, all.len()] {
            let mut chunk = Chunk::default();
            let mut p = Parser::default();
            for piece in all.chunks(cut) {
                chunk.bytes.extend_from_slice(piece);
                p.parse(&mut chunk).unwrap();
            }
            assert!(p.ended && p.pos == all.len(), "cut {cut}");
            let got: Vec<(&[u8], &[u8])> = chunk
                .rows
                .iter()
                .map(|(k, v)| (&chunk.bytes[k.clone()], &chunk.bytes[v.clone()]))
                .collect();
            assert_eq!(got, rows, "cut {cut}");
        }
    }

    #[test]
    fn a_damaged_stream_is_refused() {
        let mut bad = stream(&[(b"a", b"b")]);
        bad[0] = b'X';
        let mut chunk = Chunk {
            bytes: bad,
            ..Chunk::default()
        };
        assert!(Parser::default().parse(&mut chunk).is_err());
        let mut extra = stream(&[]);
        extra.push(0);
        let mut chunk = Chunk {
            bytes: extra,
            ..Chunk::default()
        };
        assert!(Parser::default().parse(&mut chunk).is_err());
        let mut null = stream(&[]);
        null.truncate(null.len() - 2);
        null.extend_from_slice(&2i16.to_be_bytes());
        null.extend_from_slice(&(-1i32).to_be_bytes());
        let mut chunk = Chunk {
            bytes: null,
            ..Chunk::default()
        };
        assert!(Parser::default().parse(&mut chunk).is_err());
    }
}
