//! Errors of loading and instantiating agent modules.

use we_core::FaultKind;

/// Why a module could not be loaded or instantiated. Every variant names the module.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bytes are not a valid WebAssembly module, or use a refused proposal.
    #[error("module {module}: invalid WebAssembly: {reason}")]
    InvalidModule {
        /// Module name.
        module: String,
        /// What the validator or compiler said.
        reason: String,
    },
    /// A required export is missing or has the wrong type.
    #[error("module {module}: missing or mistyped export `{export}`: expected {expected}")]
    MissingExport {
        /// Module name.
        module: String,
        /// The export.
        export: String,
        /// The expected type.
        expected: String,
    },
    /// The module imports something the host does not provide.
    #[error(
        "module {module}: unknown import `{import_module}.{name}` (the host provides only module `we` with {known})"
    )]
    UnknownImport {
        /// Module name.
        module: String,
        /// The import's module.
        import_module: String,
        /// The import's name.
        name: String,
        /// The names the host provides.
        known: String,
    },
    /// The capability declaration is malformed.
    #[error("module {module}: bad `we.capabilities` section: {reason}")]
    Capabilities {
        /// Module name.
        module: String,
        /// What is wrong.
        reason: String,
    },
    /// The module imports a host function its capabilities do not declare.
    #[error(
        "module {module}: imports `we.{name}` but its capabilities do not declare it (declared host functions: {declared}); add it to `host = ...` in `we_agent::capabilities!`"
    )]
    UndeclaredImport {
        /// Module name.
        module: String,
        /// The import's name.
        name: String,
        /// The declared host functions.
        declared: String,
    },
    /// An import has the right name but the wrong type.
    #[error("module {module}: import `we.{name}` has type {found}, expected {expected}")]
    ImportType {
        /// Module name.
        module: String,
        /// The import's name.
        name: String,
        /// Its declared type.
        found: String,
        /// The host's type.
        expected: String,
    },
    /// The module declares an ABI version outside the supported range.
    #[error(
        "module {module}: declares ABI version {declared}, this runtime supports {min}..={max}"
    )]
    AbiMismatch {
        /// Module name.
        module: String,
        /// The declared version.
        declared: u32,
        /// Oldest supported.
        min: u32,
        /// Newest supported.
        max: u32,
    },
    /// Reading the ABI version faulted.
    #[error("module {module}: `we_abi_version` faulted: {fault}")]
    AbiProbe {
        /// Module name.
        module: String,
        /// The fault.
        fault: FaultKind,
    },
    /// Instantiation failed (for example, its minimum memory exceeds the cap, or
    /// its start function trapped).
    #[error("module {module}: cannot instantiate agent {agent}: {reason}")]
    Instantiate {
        /// Module name.
        module: String,
        /// The agent being instantiated.
        agent: String,
        /// What went wrong.
        reason: String,
    },
    /// A module index that was never loaded.
    #[error("unknown module index {index} ({count} loaded)")]
    UnknownModule {
        /// The index.
        index: usize,
        /// Number of modules loaded.
        count: usize,
    },
}

/// Result with the we-sandbox [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
