//! Encrypts stored secrets (hypervisor API token secrets) with a key from
//! `SECRET_KEY` or a key file generated in the data dir. Owns the only copy
//! of the key; never logs a secret or the key.

use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use sha2::{Digest, Sha256, Sha512};

use crate::settings::{Secret, Settings};

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read or create the key file {path}: {source}")]
    KeyFile { path: String, source: std::io::Error },
    #[error("a stored secret cannot be decrypted (was SECRET_KEY changed?)")]
    Decrypt,
}

#[derive(Clone)]
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
    cookie_key: [u8; 64],
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox([redacted])")
    }
}

const PREFIX: &str = "v1:";

impl SecretBox {
    pub fn from_master(master: &Secret) -> Self {
        let enc: [u8; 32] =
            Sha256::digest([b"drswitch-secrets:".as_slice(), master.expose().as_bytes()].concat()).into();
        let cookie: [u8; 64] =
            Sha512::digest([b"drswitch-cookies:".as_slice(), master.expose().as_bytes()].concat()).into();
        Self { cipher: XChaCha20Poly1305::new(&enc.into()), cookie_key: cookie }
    }

    /// Uses `SECRET_KEY`, else `DATA_DIR/secret.key`, creating it (mode 0600)
    /// on first start.
    pub fn load(settings: &Settings) -> Result<Self, SecretError> {
        if let Some(k) = &settings.secret_key {
            return Ok(Self::from_master(k));
        }
        let path = settings.data_dir.join("secret.key");
        let master = read_or_create_key(&path)
            .map_err(|source| SecretError::KeyFile { path: path.display().to_string(), source })?;
        Ok(Self::from_master(&master))
    }

    pub fn encrypt(&self, plain: &str) -> String {
        let mut nonce = [0u8; 24];
        rand::thread_rng().fill_bytes(&mut nonce);
        // Encryption with a fresh nonce and an in-memory buffer cannot fail.
        let sealed = self.cipher.encrypt(XNonce::from_slice(&nonce), plain.as_bytes()).unwrap_or_default();
        format!("{PREFIX}{}", B64.encode([nonce.as_slice(), &sealed].concat()))
    }

    pub fn decrypt(&self, stored: &str) -> Result<Secret, SecretError> {
        let raw = stored.strip_prefix(PREFIX).and_then(|b| B64.decode(b).ok()).ok_or(SecretError::Decrypt)?;
        if raw.len() < 24 {
            return Err(SecretError::Decrypt);
        }
        let (nonce, sealed) = raw.split_at(24);
        let plain = self.cipher.decrypt(XNonce::from_slice(nonce), sealed).map_err(|_| SecretError::Decrypt)?;
        String::from_utf8(plain).map(Secret::new).map_err(|_| SecretError::Decrypt)
    }

    /// 64 bytes for signing and encrypting session cookies.
    pub fn cookie_key(&self) -> &[u8; 64] {
        &self.cookie_key
    }
}

fn read_or_create_key(path: &Path) -> std::io::Result<Secret> {
    match std::fs::read_to_string(path) {
        Ok(s) if s.trim().len() >= 32 => return Ok(Secret::new(s.trim())),
        Ok(_) => return Err(std::io::Error::other("the key file is shorter than 32 characters")),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        Err(_) => {}
    }
    if let Some(dir) = path.parent() {
        crate::files::ensure_private_dir(dir)?;
    }
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let key = hex::encode(bytes);
    if crate::files::create_atomic(path, key.as_bytes())? {
        return Ok(Secret::new(key));
    }
    // Another process created it first: use theirs, which is complete
    // because it appeared in one step.
    match std::fs::read_to_string(path) {
        Ok(s) if s.trim().len() >= 32 => Ok(Secret::new(s.trim())),
        Ok(_) => Err(std::io::Error::other("the key file is shorter than 32 characters")),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_wrong_key() {
        let a = SecretBox::from_master(&Secret::new("a".repeat(40)));
        let b = SecretBox::from_master(&Secret::new("b".repeat(40)));
        let sealed = a.encrypt("top-secret-token");
        assert!(!sealed.contains("top-secret"));
        assert_eq!(a.decrypt(&sealed).unwrap().expose(), "top-secret-token");
        assert!(b.decrypt(&sealed).is_err());
        assert_ne!(a.encrypt("x"), a.encrypt("x"), "nonce must differ");
    }

    #[test]
    fn key_file_is_created_once() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("secret.key");
        let k1 = read_or_create_key(&p).unwrap();
        let k2 = read_or_create_key(&p).unwrap();
        assert_eq!(k1, k2);
    }
}
