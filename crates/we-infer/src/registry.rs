//! The model registry: which models exist, where their files are, what their
//! blake3 must be and what tensors they take and give.
//!
//! The registry is a TOML file (`fixtures/models/models.toml` is the project's):
//!
//! ```toml
//! [[model]]
//! name = "policy"
//! version = 1
//! path = "policy.onnx"          # relative to the registry file
//! blake3 = "4d1208…"            # 64 hex digits
//! batchable = true              # requests of one tick are concatenated along dim 0
//! memory_bytes = 65536          # optional: resident size estimate, defaults to the file size
//! inputs = [{ name = "obs", dtype = "f32", shape = [-1, 16] }]
//! outputs = [{ name = "logits", dtype = "f32", shape = [-1, 4] }]
//! ```
//!
//! A model is asked for by `name` (the highest version of that name) or by
//! `name@version` (exactly that one).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

/// Element type of a tensor, as the we-abi tensor format and the registry name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    /// 32-bit float (`f32`).
    F32,
    /// 64-bit signed integer (`i64`).
    I64,
}

impl DType {
    /// The we-abi `DTYPE_*` code.
    pub const fn abi_code(self) -> u8 {
        match self {
            DType::F32 => we_abi::tensor::DTYPE_F32,
            DType::I64 => we_abi::tensor::DTYPE_I64,
        }
    }

    /// The dtype of a we-abi `DTYPE_*` code, if known.
    pub const fn from_abi_code(code: u8) -> Option<DType> {
        match code {
            we_abi::tensor::DTYPE_F32 => Some(DType::F32),
            we_abi::tensor::DTYPE_I64 => Some(DType::I64),
            _ => None,
        }
    }

    /// Bytes per element.
    pub const fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::I64 => 8,
        }
    }

    /// The registry spelling: `f32` or `i64`.
    pub const fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::I64 => "i64",
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One input or output of a model.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TensorSpec {
    /// The tensor's name in the ONNX graph.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Dims; `-1` marks a dynamic one.
    pub shape: Vec<i64>,
}

impl TensorSpec {
    /// Whether `dims` fits this spec (same rank, static dims equal).
    pub fn accepts(&self, dims: impl ExactSizeIterator<Item = u64>) -> bool {
        dims.len() == self.shape.len()
            && dims
                .zip(&self.shape)
                .all(|(d, &s)| s < 0 || u64::try_from(s).is_ok_and(|s| s == d))
    }
}

/// Writes a shape as `[-1, 16]`.
pub(crate) fn fmt_shape<T: std::fmt::Display>(dims: impl IntoIterator<Item = T>) -> String {
    let mut s = String::from("[");
    for (i, d) in dims.into_iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(&d.to_string());
    }
    s.push(']');
    s
}

/// One model of the registry.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    /// Name requests use.
    pub name: String,
    /// Version; `name` alone means the highest.
    pub version: u32,
    /// The `.onnx` file; relative paths in the file are resolved against the
    /// registry's folder when it is loaded, so this is the path to open.
    pub path: PathBuf,
    /// Expected blake3 of the file, 64 lowercase hex digits.
    pub blake3: String,
    /// Whether requests of one tick may be concatenated along dim 0 into one run.
    /// Every input and output of a batchable model has a dynamic dim 0.
    #[serde(default)]
    pub batchable: bool,
    /// Resident size estimate in bytes for the cache budget; the file size when absent.
    #[serde(default)]
    pub memory_bytes: Option<u64>,
    /// Inputs, in the model's order.
    pub inputs: Vec<TensorSpec>,
    /// Outputs, in the model's order.
    pub outputs: Vec<TensorSpec>,
}

impl ModelEntry {
    /// `name@version`, how errors and the cache name the model.
    pub fn id(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }

    /// Checks the entry on its own; `problem` text for [`Error::RegistryInvalid`].
    fn validate(&self) -> Result<(), String> {
        if self.name.is_empty() || self.name.contains('@') {
            return Err("the name must be non-empty and must not contain `@`".to_owned());
        }
        if self.blake3.len() != 64
            || !self
                .blake3
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(format!(
                "blake3 `{}` is not 64 lowercase hex digits",
                self.blake3
            ));
        }
        if self.inputs.is_empty() || self.outputs.is_empty() {
            return Err("a model needs at least one input and one output".to_owned());
        }
        for (kind, specs) in [("input", &self.inputs), ("output", &self.outputs)] {
            for (i, spec) in specs.iter().enumerate() {
                if specs[..i].iter().any(|s| s.name == spec.name) {
                    return Err(format!("{kind} `{}` is listed twice", spec.name));
                }
                if spec.name.len() > usize::from(u16::MAX) {
                    return Err(format!("{kind} name is longer than 65535 bytes"));
                }
                if spec.shape.len() > we_abi::tensor::MAX_RANK {
                    return Err(format!(
                        "{kind} `{}` has rank {}, above the we-abi maximum {}",
                        spec.name,
                        spec.shape.len(),
                        we_abi::tensor::MAX_RANK
                    ));
                }
                if spec.shape.iter().any(|&d| d < -1) {
                    return Err(format!(
                        "{kind} `{}` has shape {}; dims are >= 0, or -1 for dynamic",
                        spec.name,
                        fmt_shape(&spec.shape)
                    ));
                }
                if self.batchable && spec.shape.first() != Some(&-1) {
                    return Err(format!(
                        "the model is batchable, so {kind} `{}` needs a dynamic dim 0, but its shape is {}",
                        spec.name,
                        fmt_shape(&spec.shape)
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Checks every entry and that no `name@version` is listed twice.
fn validate_all(entries: &[ModelEntry], source: &Path) -> Result<()> {
    for (i, entry) in entries.iter().enumerate() {
        let invalid = |problem: String| Error::RegistryInvalid {
            path: source.to_path_buf(),
            model: entry.id(),
            problem,
        };
        entry.validate().map_err(invalid)?;
        if entries[..i]
            .iter()
            .any(|e| e.name == entry.name && e.version == entry.version)
        {
            return Err(invalid("listed twice".to_owned()));
        }
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistryFile {
    #[serde(default)]
    model: Vec<ModelEntry>,
}

/// The models one can ask for, read from a TOML registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelRegistry {
    source: PathBuf,
    entries: Vec<ModelEntry>,
}

impl ModelRegistry {
    /// Reads and checks the registry at `path`. Relative model paths are resolved
    /// against the registry's folder. Model files are not read here: their blake3
    /// is checked each time one is loaded.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::RegistryRead {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::from_toml_str(&text, base, path)
    }

    /// Parses registry text. `base` resolves relative model paths; `source` names
    /// the registry in errors.
    pub fn from_toml_str(text: &str, base: &Path, source: &Path) -> Result<Self> {
        let file: RegistryFile = toml::from_str(text).map_err(|e| Error::RegistryParse {
            path: source.to_path_buf(),
            reason: e.to_string(),
        })?;
        let mut entries = file.model;
        validate_all(&entries, source)?;
        for entry in &mut entries {
            if entry.path.is_relative() {
                entry.path = base.join(&entry.path);
            }
        }
        Ok(Self {
            source: source.to_path_buf(),
            entries,
        })
    }

    /// Builds a registry from entries (paths used as they are), checking them as
    /// [`ModelRegistry::load`] does.
    pub fn from_entries(entries: Vec<ModelEntry>) -> Result<Self> {
        let source = PathBuf::from("<in memory>");
        validate_all(&entries, &source)?;
        Ok(Self { source, entries })
    }

    /// Where the registry was read from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// All entries, in file order.
    pub fn entries(&self) -> &[ModelEntry] {
        &self.entries
    }

    /// Index of the entry `model` names (`name` = highest version, `name@version`
    /// = exactly that), if any.
    pub fn position(&self, model: &str) -> Option<usize> {
        match model.split_once('@') {
            Some((name, version)) => {
                let version: u32 = version.parse().ok()?;
                self.entries
                    .iter()
                    .position(|e| e.name == name && e.version == version)
            }
            None => self
                .entries
                .iter()
                .enumerate()
                .filter(|(_, e)| e.name == model)
                .max_by_key(|(_, e)| e.version)
                .map(|(i, _)| i),
        }
    }

    /// The entry `model` names, or [`Error::UnknownModel`].
    pub fn get(&self, model: &str) -> Result<&ModelEntry> {
        self.position(model)
            .and_then(|i| self.entries.get(i))
            .ok_or_else(|| self.unknown(model))
    }

    pub(crate) fn unknown(&self, model: &str) -> Error {
        let known: Vec<String> = self.entries.iter().map(ModelEntry::id).collect();
        Error::UnknownModel {
            model: model.to_owned(),
            known: if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            },
        }
    }
}
