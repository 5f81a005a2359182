//! Tokens at rest: AES-256-GCM with the key from `PBIOPS_TOKEN_KEY`.
//!
//! A stored token is `base64(nonce || ciphertext)` with a fresh random 96-bit nonce per write, so
//! two writes of the same token never look alike. The row's profile and resource are bound as
//! associated data: a ciphertext copied into another row (another profile's, or another
//! resource's) does not decrypt, so nobody with write access to the table can make one profile
//! use another's token. Without a key, tokens are stored as they are (`plain`).

use std::fmt;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};

/// The `token_format` of a token stored as it is.
pub const PLAIN: &str = "plain";
/// The `token_format` of a token encrypted with AES-256-GCM (`base64(nonce || ciphertext)`).
pub const AES256GCM_V1: &str = "aes256gcm-v1";

const NONCE_LEN: usize = 12;

/// The key that encrypts stored tokens (`PBIOPS_TOKEN_KEY`: 32 bytes, base64).
#[derive(Clone)]
pub struct TokenKey([u8; 32]);

impl TokenKey {
    /// Reads the key from its base64 text (standard or URL-safe alphabet, padding optional).
    /// The error never repeats the text, which is a secret.
    pub fn from_base64(text: &str) -> Result<TokenKey, String> {
        let text = text.trim();
        let bytes = STANDARD
            .decode(text)
            .or_else(|_| URL_SAFE.decode(text))
            .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
            .map_err(|_| "is not valid base64; generate a key with `openssl rand -base64 32`")?;
        let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            format!(
                "must be 32 bytes once base64-decoded, not {}; generate a key with `openssl rand -base64 32`",
                bytes.len()
            )
        })?;
        Ok(TokenKey(key))
    }

    /// Builds a key from its bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> TokenKey {
        TokenKey(bytes)
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&self.0))
    }
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenKey(***)")
    }
}

/// The associated data binding a ciphertext to its row; length-prefixed so that no two
/// (profile, resource) pairs give the same bytes.
fn associated_data(profile: &str, resource: &str) -> Vec<u8> {
    format!(
        "pbiops-token-v1:{}:{profile}:{}:{resource}",
        profile.len(),
        resource.len()
    )
    .into_bytes()
}

/// Encrypts `token` for the row (`profile`, `resource`): `base64(nonce || ciphertext)`.
pub(crate) fn seal(
    key: &TokenKey,
    profile: &str,
    resource: &str,
    token: &str,
) -> Result<String, String> {
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let aad = associated_data(profile, resource);
    let sealed = key
        .cipher()
        .encrypt(
            &nonce,
            Payload {
                msg: token.as_bytes(),
                aad: &aad,
            },
        )
        .map_err(|_| "the token could not be encrypted".to_string())?;
    let mut bytes = Vec::with_capacity(NONCE_LEN + sealed.len());
    bytes.extend_from_slice(&nonce);
    bytes.extend_from_slice(&sealed);
    Ok(STANDARD.encode(bytes))
}

/// Decrypts what [`seal`] wrote for the row (`profile`, `resource`). Fails on a wrong key, a
/// damaged value, or a value copied from another row.
pub(crate) fn open(
    key: &TokenKey,
    profile: &str,
    resource: &str,
    stored: &str,
) -> Result<String, String> {
    let bytes = STANDARD
        .decode(stored.trim())
        .map_err(|_| "the stored token is not valid base64".to_string())?;
    if bytes.len() <= NONCE_LEN {
        return Err("the stored token is too short to be encrypted".into());
    }
    let (nonce, sealed) = bytes.split_at(NONCE_LEN);
    let aad = associated_data(profile, resource);
    let plain = key
        .cipher()
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: sealed,
                aad: &aad,
            },
        )
        .map_err(|_| {
            "the stored token does not decrypt with this key (a different key, or a value copied from another row)"
                .to_string()
        })?;
    String::from_utf8(plain).map_err(|_| "the decrypted token is not UTF-8".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> TokenKey {
        TokenKey::from_bytes([byte; 32])
    }

    #[test]
    fn round_trip_with_fresh_nonces() {
        let k = key(7);
        let a = seal(&k, "default", "powerbi", "CANARYTOKEN-abc").expect("seal");
        let b = seal(&k, "default", "powerbi", "CANARYTOKEN-abc").expect("seal");
        assert_ne!(a, b, "each write uses a new nonce");
        assert!(!a.contains("CANARYTOKEN"));
        assert_eq!(
            open(&k, "default", "powerbi", &a).expect("open"),
            "CANARYTOKEN-abc"
        );
    }

    #[test]
    fn wrong_key_or_row_does_not_decrypt() {
        let sealed = seal(&key(1), "a", "powerbi", "CANARYTOKEN").expect("seal");
        let err = open(&key(2), "a", "powerbi", &sealed).expect_err("wrong key");
        assert!(!err.contains("CANARYTOKEN"));
        open(&key(1), "b", "powerbi", &sealed).expect_err("another profile");
        open(&key(1), "a", "fabric", &sealed).expect_err("another resource");
        // Length prefixes keep ("a:b", "c") and ("a", "b:c") apart.
        let s = seal(&key(1), "a:1:b", "c", "t").expect("seal");
        open(&key(1), "a", "1:b:c", &s).expect_err("ambiguous split");
    }

    #[test]
    fn key_text_must_be_32_bytes_of_base64() {
        let text = STANDARD.encode([9u8; 32]);
        assert!(TokenKey::from_base64(&text).is_ok());
        assert!(TokenKey::from_base64(&URL_SAFE_NO_PAD.encode([250u8; 32])).is_ok());
        let short = TokenKey::from_base64(&STANDARD.encode([1u8; 16])).expect_err("short");
        assert!(
            short.contains("32 bytes") && short.contains("16"),
            "{short}"
        );
        let bad = TokenKey::from_base64("not base64 !!").expect_err("bad");
        assert!(!bad.contains("not base64 !!"));
        assert_eq!(format!("{:?}", key(3)), "TokenKey(***)");
    }
}
