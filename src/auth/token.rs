use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// A new bearer token, `drs_` plus 32 random bytes. Shown once.
pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("drs_{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// What is stored: tokens carry 256 random bits, so a plain SHA-256 is
/// enough (no salt or slow hash needed) and allows lookup by hash.
pub fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_are_unique_and_hashed() {
        let a = super::generate();
        assert!(a.starts_with("drs_") && a.len() > 40);
        assert_ne!(a, super::generate());
        assert_eq!(super::digest(&a).len(), 64);
    }
}
