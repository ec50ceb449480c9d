//! Errors of signing, verification and key files. Every variant names the
//! module or the key file it is about, and says what was wrong.

use crate::KeyId;

/// Why a module was refused, or a key could not be read or made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bytes do not start with the WebAssembly core module preamble.
    #[error("module {module}: not a WebAssembly module: {reason}")]
    NotWasm {
        /// Module name.
        module: String,
        /// What the first bytes were.
        reason: String,
    },
    /// The section structure is broken (a truncated or corrupted module): the
    /// signature cannot even be located.
    #[error("module {module}: malformed at byte {offset}: {reason}")]
    Malformed {
        /// Module name.
        module: String,
        /// Byte offset of the problem.
        offset: usize,
        /// What is wrong there.
        reason: String,
    },
    /// The module carries no `we.signature` section.
    #[error(
        "module {module}: unsigned: it has no `we.signature` section (sign it with `we sign`; unsigned modules run only with the development flag --allow-unsigned)"
    )]
    Unsigned {
        /// Module name.
        module: String,
    },
    /// A signature section is there but cannot be used: wrong size or format
    /// version, not the last section, or damaged.
    #[error("module {module}: bad signature section: {reason}")]
    BadSignatureSection {
        /// Module name.
        module: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The module is signed by a key that is not trusted.
    #[error(
        "module {module}: signed by unknown key {key_id}: not one of the {trusted} trusted key(s) [{trusted_ids}]"
    )]
    UnknownKey {
        /// Module name.
        module: String,
        /// The key id in the signature section.
        key_id: KeyId,
        /// Number of trusted keys.
        trusted: usize,
        /// Their key ids, comma-separated.
        trusted_ids: String,
    },
    /// The signature does not match the module's bytes: they were changed
    /// after signing.
    #[error(
        "module {module}: tampered: the signature by trusted key {key_id} does not match the module's {signed_len} signed bytes"
    )]
    Tampered {
        /// Module name.
        module: String,
        /// The signing key's id.
        key_id: KeyId,
        /// Number of bytes the signature covers.
        signed_len: usize,
    },
    /// A key file could not be read, or its contents are not a key.
    #[error("key file {path}: {problem}")]
    KeyFile {
        /// The file (or the name given for in-memory text).
        path: String,
        /// What is wrong.
        problem: String,
    },
    /// The OS random number generator failed while generating a key.
    #[error("cannot generate a key: the OS random number generator failed: {reason}")]
    Random {
        /// What the OS said.
        reason: String,
    },
}

/// Result with the we-sign [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The module this error is about, if it is about a module.
    pub fn module(&self) -> Option<&str> {
        match self {
            Error::NotWasm { module, .. }
            | Error::Malformed { module, .. }
            | Error::Unsigned { module }
            | Error::BadSignatureSection { module, .. }
            | Error::UnknownKey { module, .. }
            | Error::Tampered { module, .. } => Some(module),
            Error::KeyFile { .. } | Error::Random { .. } => None,
        }
    }
}
