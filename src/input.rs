//! Reading untrusted text input (scripts, IMPORT files) with a memory bound.
//!
//! Input may come from a pipe or a device that never ends a line
//! (`/dev/zero`): everything here reads at most a stated number of bytes per
//! line, so memory stays bounded whatever the source.

use std::io::{self, BufRead};

/// The longest line, and the longest statement, that mqlite reads from a
/// script, standard input or an IMPORT file: 64 MiB. A payload is at most
/// the database's payload limit (1 MB by default), so a line carrying one
/// fits many times over.
pub const MAX_LINE_BYTES: usize = 64 << 20;

/// Reads one line into `out` (replacing its contents), including its `\n`,
/// never holding more than `limit` bytes. Returns false at the end of the
/// input with nothing read.
///
/// # Errors
/// `InvalidData` when the line is longer than `limit` bytes; the reader's
/// own errors.
pub fn read_line_limited(r: &mut dyn BufRead, limit: usize, out: &mut Vec<u8>) -> io::Result<bool> {
    out.clear();
    loop {
        let buf = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok(!out.is_empty());
        }
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        if out.len() + take > limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a line is longer than the limit of {limit} bytes"),
            ));
        }
        out.extend_from_slice(&buf[..take]);
        r.consume(take);
        if done {
            return Ok(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], limit: usize) -> io::Result<Vec<Vec<u8>>> {
        let mut r = io::BufReader::with_capacity(4, input);
        let mut out = Vec::new();
        let mut got = Vec::new();
        while read_line_limited(&mut r, limit, &mut out)? {
            got.push(out.clone());
        }
        Ok(got)
    }

    #[test]
    fn lines_keep_their_newline_and_the_last_may_lack_one() {
        let got = lines(b"ab\n\ncdefgh\nxy", 16).unwrap();
        assert_eq!(
            got,
            vec![
                b"ab\n".to_vec(),
                b"\n".to_vec(),
                b"cdefgh\n".to_vec(),
                b"xy".to_vec()
            ]
        );
    }

    #[test]
    fn a_line_over_the_limit_is_an_error_not_an_allocation() {
        let err = lines(b"ok\n0123456789", 8).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("8 bytes"), "{err}");
        // A line of exactly the limit (newline included) is fine.
        assert_eq!(lines(b"1234567\n", 8).unwrap().len(), 1);
        // An endless source stops at the limit.
        let mut zero = io::BufReader::new(io::repeat(0));
        let mut out = Vec::new();
        assert!(read_line_limited(&mut zero, 1 << 16, &mut out).is_err());
        assert!(out.len() <= 1 << 16);
    }
}
