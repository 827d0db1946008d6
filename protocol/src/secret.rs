//! The TRACK secret: base64 text (RFC 3887 section 4) whose decoded octets, hashed with SHA-1,
//! must equal the hash B the message was enabled with (RFC 3885).

use base64::alphabet::STANDARD;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use sha1::{Digest, Sha1};

use super::MAX_LINE;

/// A SHA-1 hash: the form in which secrets are stored and compared.
pub type Hash = [u8; 20];

/// Standard alphabet; padding optional, because RFC 3885 carries B without `=` (an ESMTP
/// parameter value cannot contain it) and clients copy that habit to the secret.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Decodes base64 `text` into `out`, returning the decoded octets, or None when `text` is not
/// canonical base64 or does not fit.
pub fn decode<'o>(text: &[u8], out: &'o mut [u8]) -> Option<&'o [u8]> {
    let n = BASE64.decode_slice(text, out).ok()?;
    Some(&out[..n])
}

/// The SHA-1 hash of the decoded secret, or None when `text` is not base64.
pub fn hash_secret(text: &[u8]) -> Option<Hash> {
    let mut buf = [0u8; MAX_LINE * 3 / 4 + 3];
    let secret = decode(text, &mut buf)?;
    Some(Sha1::digest(secret).into())
}

/// Decodes a stored hash B given in base64 (27 characters unpadded, 28 padded).
pub fn decode_hash(text: &[u8]) -> Option<Hash> {
    let mut buf = [0u8; 24];
    decode(text, &mut buf)?.try_into().ok()
}

/// Encodes octets as padded standard base64 (for tests, the demo and the load driver).
pub fn encode(raw: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(raw)
}

/// Compares two hashes in time that does not depend on where they differ.
pub fn hashes_equal(a: &Hash, b: &Hash) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// The SHA-1 of `secret` (the hash B that enables tracking of a message with secret A).
pub fn sha1(secret: &[u8]) -> Hash {
    Sha1::digest(secret).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_is_optional() {
        let mut buf = [0u8; 16];
        assert_eq!(decode(b"YWJjZGVmZ2gK", &mut buf), Some(&b"abcdefgh\n"[..]));
        let mut buf = [0u8; 16];
        assert_eq!(decode(b"YWI=", &mut buf), Some(&b"ab"[..]));
        let mut buf = [0u8; 16];
        assert_eq!(decode(b"YWI", &mut buf), Some(&b"ab"[..]));
        let mut buf = [0u8; 16];
        assert_eq!(decode(b"YQ==", &mut buf), Some(&b"a"[..]));
        let mut buf = [0u8; 16];
        assert_eq!(decode(b"YQ", &mut buf), Some(&b"a"[..]));
    }

    #[test]
    fn garbage_is_refused() {
        for bad in [
            &b"Y"[..],
            b"Y===",
            b"YW!j",
            b"YW-j",
            b"YW_j",
            b"YR==",
            b"YWJj ZA",
        ] {
            assert_eq!(hash_secret(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn hash_is_sha1_of_the_decoded_octets() {
        // SHA-1("abc") = a9993e36 4706816a ba3e2571 7850c26c 9cd0d89d (FIPS 180-1 vector).
        let want: Hash = [
            0xa9, 0x99, 0x3e, 0x36, 0x47, 0x06, 0x81, 0x6a, 0xba, 0x3e, 0x25, 0x71, 0x78, 0x50,
            0xc2, 0x6c, 0x9c, 0xd0, 0xd8, 0x9d,
        ];
        assert_eq!(hash_secret(b"YWJj"), Some(want));
        assert_eq!(sha1(b"abc"), want);
    }

    #[test]
    fn stored_hash_in_both_paddings() {
        let h = sha1(b"secret");
        let padded = encode(&h);
        assert_eq!(padded.len(), 28);
        assert_eq!(decode_hash(padded.as_bytes()), Some(h));
        assert_eq!(
            decode_hash(padded.trim_end_matches('=').as_bytes()),
            Some(h)
        );
        assert_eq!(decode_hash(b"YWJj"), None);
    }

    #[test]
    fn longest_secret_on_a_line_fits() {
        let text = encode(&[7u8; 740]);
        assert!(text.len() <= MAX_LINE);
        assert_eq!(hash_secret(text.as_bytes()), Some(sha1(&[7u8; 740])));
    }

    #[test]
    fn equality() {
        let a = sha1(b"a");
        let mut b = a;
        assert!(hashes_equal(&a, &b));
        b[19] ^= 1;
        assert!(!hashes_equal(&a, &b));
    }
}
