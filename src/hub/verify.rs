//! Checking a file against the size and hash its source promises, streaming (a 1.7 GB
//! checkpoint is hashed chunk by chunk, natively from disk and in wasm from JS memory).

use sha1::Sha1;
use sha2::{Digest as _, Sha256};

use super::source::{hex, Digest};

/// A running hash of one [`Digest`] kind.
pub enum Hasher {
    /// SHA-256.
    Sha256(Sha256),
    /// A git blob id (the `blob SIZE\0` header is hashed first).
    GitBlob(Sha1),
}

impl Hasher {
    /// A hasher for checking against `want`; `size` is the file's length (git blob ids hash it).
    pub fn for_digest(want: &Digest, size: u64) -> Self {
        match want {
            Digest::Sha256(_) => Hasher::Sha256(Sha256::new()),
            Digest::GitBlob(_) => {
                let mut h = Sha1::new();
                h.update(format!("blob {size}\0").as_bytes());
                Hasher::GitBlob(h)
            }
        }
    }

    /// Feeds the next bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::GitBlob(h) => h.update(bytes),
        }
    }

    /// The hex digest.
    pub fn finish(self) -> String {
        match self {
            Hasher::Sha256(h) => hex(&h.finalize()),
            Hasher::GitBlob(h) => hex(&h.finalize()),
        }
    }
}

/// Compares a finished hash with `want`; `Err` says expected and got.
pub fn check(want: &Digest, got: &str) -> Result<(), String> {
    let (kind, expected) = match want {
        Digest::Sha256(h) => ("sha256", h),
        Digest::GitBlob(h) => ("git blob id", h),
    };
    if expected.eq_ignore_ascii_case(got) {
        Ok(())
    } else {
        Err(format!("its {kind} is {got}, expected {expected}"))
    }
}

/// SHA-256 of `bytes`, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Hashes everything `r` yields (1 MiB at a time) and checks it against `want` and `size`.
#[cfg(not(target_arch = "wasm32"))]
pub fn check_reader(mut r: impl std::io::Read, size: u64, want: &Digest) -> std::io::Result<Result<(), String>> {
    let mut h = Hasher::for_digest(want, size);
    let mut buf = vec![0u8; 1 << 20];
    let mut seen = 0u64;
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        seen += n as u64;
        h.update(&buf[..n]);
    }
    if seen != size {
        return Ok(Err(format!("it has {seen} bytes, expected {size}")));
    }
    Ok(check(want, &h.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hashes() {
        // `printf hello | sha256sum` and `printf hello | git hash-object --stdin`.
        assert_eq!(sha256_hex(b"hello"), "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
        let want = Digest::GitBlob("b6fc4c620b67d95f953a5c1c1230aaab5db5a1b0".into());
        let mut h = Hasher::for_digest(&want, 5);
        h.update(b"hel");
        h.update(b"lo");
        assert_eq!(check(&want, &h.finish()), Ok(()));
        assert!(check(&Digest::Sha256("00".into()), "01").unwrap_err().contains("expected 00"));
    }
}
