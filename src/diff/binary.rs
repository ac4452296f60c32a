//! `GIT binary patch` sections, as `git diff --binary` writes them, so `git apply`
//! reproduces binary files too: a `literal <size>` hunk of the zlib-deflated content in
//! git's base85, one line per 52 input bytes (a length letter, then 5 characters per 4
//! bytes), then the reverse hunk (the old content) so `git apply -R` works as well.
//!
//! `git apply` refuses a binary patch without a full `index <old>..<new>` line, and checks
//! both ids: the preimage must hash to the old one and the result to the new one. They are
//! git blob ids (SHA-1 of `blob <len>\0<content>`), also computed here. Always literal
//! hunks (git may write deltas; literal is what it falls back to and always applies).

use std::fmt::Write as _;
use std::io::Write as _;

use sha1::{Digest, Sha1};

/// git's base85 alphabet (`base85.c`).
const ALPHABET: &[u8; 85] =
    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!#$%&()*+-;<=>?@^_`{|}~";

/// Input bytes per base85 line.
const LINE: usize = 52;

/// git's all-zero id, the side of a file that does not exist.
pub(crate) const NULL_ID: &str = "0000000000000000000000000000000000000000";

/// The git blob id of `content`.
pub(crate) fn blob_id(content: &[u8]) -> String {
    let mut hasher = Sha1::new();
    hasher.update(format!("blob {}\0", content.len()).as_bytes());
    hasher.update(content);
    let digest = hasher.finalize();
    let mut out = String::with_capacity(40);
    for b in digest {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// The body of a binary section from `old` to `new` (either may be empty for an absent
/// side): `GIT binary patch`, the forward literal, the reverse literal.
pub(crate) fn body(old: &[u8], new: &[u8]) -> String {
    let mut out = String::from("GIT binary patch\n");
    literal(&mut out, new);
    literal(&mut out, old);
    out
}

/// One `literal` hunk and the blank line that ends it.
fn literal(out: &mut String, content: &[u8]) {
    let _ = writeln!(out, "literal {}", content.len());
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(content).expect("writing to a Vec cannot fail");
    let deflated = z.finish().expect("writing to a Vec cannot fail");
    for chunk in deflated.chunks(LINE) {
        let n = chunk.len();
        out.push(char::from(if n <= 26 {
            b'A' + n as u8 - 1
        } else {
            b'a' + n as u8 - 27
        }));
        encode85(out, chunk);
        out.push('\n');
    }
    out.push('\n');
}

/// git's `encode_85`: each group of 4 bytes (the last zero-padded) as 5 characters,
/// most significant first.
fn encode85(out: &mut String, bytes: &[u8]) {
    for group in bytes.chunks(4) {
        let mut word = [0u8; 4];
        word[..group.len()].copy_from_slice(group);
        let mut acc = u32::from_be_bytes(word);
        let mut chars = [0u8; 5];
        for c in chars.iter_mut().rev() {
            *c = ALPHABET[(acc % 85) as usize];
            acc /= 85;
        }
        out.extend(chars.iter().map(|&c| char::from(c)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_ids_are_gits() {
        // `git hash-object` of the empty file and of "hello\n".
        assert_eq!(blob_id(b""), "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391");
        assert_eq!(
            blob_id(b"hello\n"),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
    }

    #[test]
    fn base85_matches_gits_encoding() {
        let mut out = String::new();
        encode85(&mut out, &[0, 0, 0, 0]);
        assert_eq!(out, "00000");
        let mut out = String::new();
        encode85(&mut out, &[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(out, "|NsC0");
        // A short group is zero-padded, as git pads it.
        let mut out = String::new();
        encode85(&mut out, &[0xff]);
        assert_eq!(out, "{{R30");
    }

    #[test]
    fn lines_carry_their_length_letter() {
        let body = body(b"", &(0..=255u8).cycle().take(4000).collect::<Vec<_>>());
        let mut lines = body.lines();
        assert_eq!(lines.next(), Some("GIT binary patch"));
        assert_eq!(lines.next(), Some("literal 4000"));
        for line in lines.by_ref().take_while(|l| !l.is_empty()) {
            let letter = line.as_bytes()[0];
            let n = if letter <= b'Z' {
                letter - b'A' + 1
            } else {
                letter - b'a' + 27
            } as usize;
            assert_eq!(line.len() - 1, n.div_ceil(4) * 5, "{line}");
        }
        assert_eq!(lines.next(), Some("literal 0"));
    }
}
