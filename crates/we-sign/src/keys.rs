//! Ed25519 keys, their ids, and the text key files `we keygen` writes.
//!
//! A key file is a small text file: optional `#` comment lines and exactly one
//! key line, `we-ed25519-secret:<64 hex digits>` (the 32-byte seed) or
//! `we-ed25519-public:<64 hex digits>` (the compressed point). Text rather
//! than raw bytes so a key can be pasted into a review, diffed and checked by
//! eye, and so that a public key given where a secret one is expected (or the
//! other way round) is told apart by its prefix instead of being silently
//! misread as 32 bytes of the other kind.

use crate::{Error, Result};
use ed25519_dalek::{SigningKey, VerifyingKey};
use std::fmt;
use std::io::Read;
use std::path::Path;

/// Prefix of a secret key line.
pub const SECRET_PREFIX: &str = "we-ed25519-secret:";
/// Prefix of a public key line.
pub const PUBLIC_PREFIX: &str = "we-ed25519-public:";
/// Largest key file read; a key file is one short line and a few comments.
pub const KEY_FILE_BYTES_MAX: u64 = 4096;

/// The id of a public key: the first 8 bytes of blake3 of its 32 bytes,
/// shown as 16 hex digits. Signatures name their key by id so the verifier
/// picks the key without trying each one.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 8]);

impl KeyId {
    /// The id of the public key with these bytes.
    pub fn of(public: &[u8; 32]) -> Self {
        let hash = blake3::hash(public);
        let mut id = [0u8; 8];
        id.copy_from_slice(&hash.as_bytes()[..8]);
        KeyId(id)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// An ed25519 signing key. Zeroized on drop; its `Debug` shows only its id.
#[derive(Clone)]
pub struct SecretKey(SigningKey);

/// An ed25519 verifying key that may be trusted to sign modules.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

/// A fresh key pair from the OS random number generator.
pub fn generate_keypair() -> Result<(SecretKey, PublicKey)> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| Error::Random {
        reason: e.to_string(),
    })?;
    let secret = SecretKey::from_seed(&seed);
    seed.fill(0);
    let public = secret.public_key();
    Ok((secret, public))
}

impl SecretKey {
    /// The key with this 32-byte seed (RFC 8032 secret key).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        SecretKey(SigningKey::from_bytes(seed))
    }

    /// Its public half.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// The id of its public half.
    pub fn key_id(&self) -> KeyId {
        self.public_key().key_id()
    }

    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.0
    }

    /// The key file text: a comment naming the key id, then the key line.
    pub fn to_text(&self) -> String {
        format!(
            "# wasm-engine ed25519 secret key {}: keep it private\n{SECRET_PREFIX}{}\n",
            self.key_id(),
            hex(self.0.as_bytes())
        )
    }

    /// Parses key file text; `name` is used in errors.
    pub fn from_text(name: &str, text: &str) -> Result<Self> {
        let seed = parse_key_text(name, text, KeyKind::Secret)?;
        Ok(Self::from_seed(&seed))
    }

    /// Reads a secret key file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = read_key_file(path)?;
        Self::from_text(&path.display().to_string(), &text)
    }

    /// Writes the key file, refusing to overwrite an existing file; on Unix
    /// the file is readable by its owner only.
    pub fn save(&self, path: &Path) -> Result<()> {
        write_new(path, &self.to_text(), true)
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(key id {}, redacted)", self.key_id())
    }
}

impl PublicKey {
    /// The key with these 32 bytes; refuses bytes that are not a point on the
    /// curve and weak (small-order) keys, under which forged signatures exist.
    pub fn from_bytes(name: &str, bytes: &[u8; 32]) -> Result<Self> {
        let key = VerifyingKey::from_bytes(bytes).map_err(|_| Error::KeyFile {
            path: name.to_string(),
            problem: "not a valid ed25519 public key (the bytes are not a curve point)".into(),
        })?;
        if key.is_weak() {
            return Err(Error::KeyFile {
                path: name.to_string(),
                problem: "a weak (small-order) ed25519 public key; refused".into(),
            });
        }
        Ok(PublicKey(key))
    }

    /// Its 32 bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// Its id.
    pub fn key_id(&self) -> KeyId {
        KeyId::of(self.0.as_bytes())
    }

    pub(crate) fn verifying_key(&self) -> &VerifyingKey {
        &self.0
    }

    /// The key file text: a comment naming the key id, then the key line.
    pub fn to_text(&self) -> String {
        format!(
            "# wasm-engine ed25519 public key {}\n{PUBLIC_PREFIX}{}\n",
            self.key_id(),
            hex(self.0.as_bytes())
        )
    }

    /// Parses key file text; `name` is used in errors.
    pub fn from_text(name: &str, text: &str) -> Result<Self> {
        let bytes = parse_key_text(name, text, KeyKind::Public)?;
        Self::from_bytes(name, &bytes)
    }

    /// Reads a public key file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = read_key_file(path)?;
        Self::from_text(&path.display().to_string(), &text)
    }

    /// Writes the key file, refusing to overwrite an existing file.
    pub fn save(&self, path: &Path) -> Result<()> {
        write_new(path, &self.to_text(), false)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.key_id())
    }
}

/// Reads several public key files (a scenario's trusted keys), failing on the
/// first bad one; a key listed twice is kept once.
pub fn load_trusted_keys<P: AsRef<Path>>(paths: &[P]) -> Result<Vec<PublicKey>> {
    let mut keys: Vec<PublicKey> = Vec::with_capacity(paths.len());
    for path in paths {
        let key = PublicKey::load(path.as_ref())?;
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    Ok(keys)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Secret,
    Public,
}

impl KeyKind {
    fn prefix(self) -> &'static str {
        match self {
            KeyKind::Secret => SECRET_PREFIX,
            KeyKind::Public => PUBLIC_PREFIX,
        }
    }
    fn name(self) -> &'static str {
        match self {
            KeyKind::Secret => "secret",
            KeyKind::Public => "public",
        }
    }
    fn other(self) -> KeyKind {
        match self {
            KeyKind::Secret => KeyKind::Public,
            KeyKind::Public => KeyKind::Secret,
        }
    }
}

/// Reads at most [`KEY_FILE_BYTES_MAX`] bytes of a key file as UTF-8.
fn read_key_file(path: &Path) -> Result<String> {
    let err = |problem: String| Error::KeyFile {
        path: path.display().to_string(),
        problem,
    };
    let file = std::fs::File::open(path).map_err(|e| err(format!("cannot read: {e}")))?;
    let mut bytes = Vec::new();
    file.take(KEY_FILE_BYTES_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| err(format!("cannot read: {e}")))?;
    if bytes.len() as u64 > KEY_FILE_BYTES_MAX {
        return Err(err(format!(
            "larger than {KEY_FILE_BYTES_MAX} bytes; a key file is one key line and comments"
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        err(format!(
            "not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })
}

/// Finds the one key line of `kind` and decodes its 32 bytes.
fn parse_key_text(name: &str, text: &str, kind: KeyKind) -> Result<[u8; 32]> {
    let err = |problem: String| Error::KeyFile {
        path: name.to_string(),
        problem,
    };
    let mut found: Option<(usize, &str)> = None;
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some((first, _)) = found {
            return Err(err(format!(
                "more than one key line (lines {first} and {line_no}); a key file holds one key"
            )));
        }
        found = Some((line_no, line));
    }
    let expected = format!("`{}<64 hex digits>`", kind.prefix());
    let Some((line_no, line)) = found else {
        return Err(err(format!("no key line; expected {expected}")));
    };
    let Some(digits) = line.strip_prefix(kind.prefix()) else {
        if line.starts_with(kind.other().prefix()) {
            return Err(err(format!(
                "line {line_no}: this is a {} key, but a {} key is expected here",
                kind.other().name(),
                kind.name()
            )));
        }
        let shown: String = line.chars().take(24).collect();
        return Err(err(format!(
            "line {line_no}: expected {expected}, found `{shown}`"
        )));
    };
    let column0 = kind.prefix().len() + 1;
    if let Some((i, c)) = digits.char_indices().find(|(_, c)| !c.is_ascii_hexdigit()) {
        return Err(err(format!(
            "line {line_no}: `{}` at column {} is not a hex digit",
            c.escape_debug(),
            column0 + digits[..i].chars().count()
        )));
    }
    if digits.len() != 64 {
        return Err(err(format!(
            "line {line_no}: expected 64 hex digits (32 bytes) after `{}`, found {}",
            kind.prefix(),
            digits.len()
        )));
    }
    let mut out = [0u8; 32];
    for (k, byte) in out.iter_mut().enumerate() {
        let pair = &digits[2 * k..2 * k + 2];
        *byte = u8::from_str_radix(pair, 16).map_err(|_| {
            err(format!(
                "line {line_no}: `{pair}` at column {} is not a hex byte",
                column0 + 2 * k
            ))
        })?;
    }
    Ok(out)
}

/// Writes `text` to a new file; `private` makes it owner-only on Unix.
fn write_new(path: &Path, text: &str, private: bool) -> Result<()> {
    use std::io::Write;
    let err = |problem: String| Error::KeyFile {
        path: path.display().to_string(),
        problem,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            err("already exists; refusing to overwrite a key file".into())
        } else {
            err(format!("cannot create: {e}"))
        }
    })?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| err(format!("cannot write: {e}")))
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}
