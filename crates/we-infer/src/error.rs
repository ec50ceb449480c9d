//! The one error type of we-infer. Every variant names the input it is about (a
//! path, a model) and the problem, so the message alone tells what to fix.

use std::path::PathBuf;

/// How to get the ONNX Runtime shared library; appended to every error about it.
pub const PROVISION_HINT: &str = "run `cargo xtask provision-ort` (it puts ONNX Runtime 1.31.1 from PyPI under \
     build/onnxruntime/) or set ORT_DYLIB_PATH to an ONNX Runtime 1.31 shared library \
     (libonnxruntime.so.1.31.1 / libonnxruntime.1.31.1.dylib / onnxruntime.dll)";

/// Everything that can go wrong in we-infer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No library path was given and `ORT_DYLIB_PATH` is not set.
    #[error("ONNX Runtime is not configured: ORT_DYLIB_PATH is not set; {hint}")]
    OrtPathUnset {
        /// How to provision it.
        hint: &'static str,
    },
    /// The ONNX Runtime library file does not exist.
    #[error("ONNX Runtime library not found at {path}; {hint}")]
    OrtNotFound {
        /// The path that was tried.
        path: PathBuf,
        /// How to provision it.
        hint: &'static str,
    },
    /// The library at `path` is not the ONNX Runtime version this crate needs.
    #[error(
        "ONNX Runtime at {path} is version {found}, but we-infer needs 1.{required_minor} or newer \
         (it is built against API level {required_minor}); {hint}"
    )]
    OrtVersion {
        /// The library.
        path: PathBuf,
        /// The version found (`1.x`), or why none could be read.
        found: String,
        /// The minimum minor version.
        required_minor: u32,
        /// How to provision it.
        hint: &'static str,
    },
    /// The library could not be loaded or ONNX Runtime could not be initialised.
    #[error("ONNX Runtime at {path} could not be initialised: {reason}; {hint}")]
    OrtInit {
        /// The library.
        path: PathBuf,
        /// What failed.
        reason: String,
        /// How to provision it.
        hint: &'static str,
    },
    /// ONNX Runtime is already loaded in this process from another file; a process
    /// can load it only once.
    #[error("ONNX Runtime is already loaded from {loaded}; cannot also load {requested}")]
    OrtAlreadyLoaded {
        /// The library in use.
        loaded: PathBuf,
        /// The library that was asked for.
        requested: PathBuf,
    },
    /// The registry file could not be read.
    #[error("cannot read model registry {path}: {source}")]
    RegistryRead {
        /// The registry file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The registry is not valid TOML of the expected shape.
    #[error("model registry {path} is malformed: {reason}")]
    RegistryParse {
        /// The registry file.
        path: PathBuf,
        /// The parser's message.
        reason: String,
    },
    /// An entry of the registry is inconsistent.
    #[error("model registry {path}: model `{model}`: {problem}")]
    RegistryInvalid {
        /// The registry file.
        path: PathBuf,
        /// The entry, as `name@version`.
        model: String,
        /// What is wrong with it.
        problem: String,
    },
    /// No registry entry has this name (or `name@version`).
    #[error("model `{model}` is not in the registry (known: {known})")]
    UnknownModel {
        /// The name asked for.
        model: String,
        /// The models the registry knows, comma separated.
        known: String,
    },
    /// The model file could not be read.
    #[error("cannot read model `{model}` from {path}: {source}")]
    ModelRead {
        /// The model, as `name@version`.
        model: String,
        /// Its file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The model file's blake3 differs from the registry's; the file is refused.
    #[error(
        "model `{model}` ({path}) fails its checksum: registry says blake3 {expected}, file has {actual}"
    )]
    ChecksumMismatch {
        /// The model, as `name@version`.
        model: String,
        /// Its file.
        path: PathBuf,
        /// blake3 from the registry (hex).
        expected: String,
        /// blake3 of the file (hex).
        actual: String,
    },
    /// The model alone needs more memory than the whole cache budget.
    #[error(
        "model `{model}` needs {size_bytes} bytes, more than the whole cache budget of {budget_bytes} bytes"
    )]
    ModelTooLarge {
        /// The model, as `name@version`.
        model: String,
        /// Its estimated size.
        size_bytes: u64,
        /// The manager's budget.
        budget_bytes: u64,
    },
    /// ONNX Runtime refused to create a session for the model.
    #[error("cannot create an ONNX Runtime session for model `{model}`: {reason}")]
    Session {
        /// The model, as `name@version`.
        model: String,
        /// ONNX Runtime's message.
        reason: String,
    },
    /// The model's inputs or outputs differ from what the registry declares.
    #[error("model `{model}` does not match its registry signature: {problem}")]
    Signature {
        /// The model, as `name@version`.
        model: String,
        /// The difference.
        problem: String,
    },
}

/// Result with we-infer's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
