//! Ed25519 signatures on agent modules, and the key files they use.
//!
//! The runtime admits a module only if it carries a valid signature by one of
//! the keys the scenario trusts; this crate is that check and the tools that
//! make signatures (`we keygen`, `we sign`). It names no engine and does no I/O
//! except reading and writing key files.
//!
//! # Where the signature lives: a final custom section
//!
//! A signed module is the original module with one custom section,
//! `we.signature`, appended (layout in [`module`]). The signature covers every
//! byte before that section. Chosen over a sidecar `.sig` file because:
//!
//! - **One file.** A signed module is copied, cached, recorded in traces (by
//!   its blake3) and shipped as one artefact; a sidecar can be lost, left
//!   stale next to a rebuilt module, or paired with the wrong module.
//! - **Still a valid module.** Custom sections are ignored by every
//!   WebAssembly tool and engine, so a signed module loads, validates and
//!   disassembles as before; stripping the signature is cutting the tail.
//! - **Unambiguous coverage.** "Everything before the last section" is a byte
//!   range that needs no canonicalisation: the verifier checks exactly the
//!   bytes it then hands to the compiler ([`Verified::module`]).
//!
//! What it costs: signing changes the file, so its blake3 differs from the
//! unsigned build; the signature must be the last section (anything appended
//! after it is refused, see [`Error::BadSignatureSection`]).
//!
//! # Keys
//!
//! Key ids are the first 8 bytes of blake3 of the 32-byte public key, in hex
//! ([`KeyId`]); a signature names its key by id. Key files are one-line text
//! files ([`keys`]): `we-ed25519-secret:<hex>` and `we-ed25519-public:<hex>`.
//! Keys are generated from the OS random number generator ([`generate_keypair`]).
//!
//! # Checks
//!
//! [`verify_module`] refuses, naming the module and the reason: non-modules,
//! broken section framing, unsigned modules, damaged or misplaced signature
//! sections, unknown keys and signatures that do not match the bytes.
//! [`check_module`] is the runtime's admission rule, with the development
//! switch that lets unsigned (and only unsigned) modules through.

mod error;
pub mod keys;
pub mod module;

pub use error::{Error, Result};
pub use keys::{KeyId, PublicKey, SecretKey, generate_keypair, load_trusted_keys};
pub use module::{
    Verdict, Verified, check_module, custom_sections, sections_with_id, sign_module,
    signature_key_id, verify_module,
};
