//! The model manager: an LRU cache of ONNX Runtime sessions under a byte budget,
//! with preloading of hot models.
//!
//! It is its own component, apart from the scheduler: [`crate::OrtBackend`] asks it
//! for a model each tick, and a load failure comes back as an [`Error`] value that
//! the backend turns into a failed result for the requesting agents.
//!
//! **Memory accounting.** A model counts for its registry `memory_bytes`, or else
//! the size of its `.onnx` file. For the dense models this crate is meant for, the
//! weights dominate both the file and the session's memory, so the file size is a
//! fair first estimate; ONNX Runtime's arena and prepacked copies of weights come
//! on top, so leave headroom or state `memory_bytes` in the registry when measured.
//!
//! **Eviction.** Recency is a logical counter bumped on every use, never the clock.
//! A new session is created *before* anything is evicted, so a failed load leaves
//! the cache as it was; once created, least-recently-used models are dropped until
//! the resident total fits the budget. A model larger than the whole budget is
//! refused with [`Error::ModelTooLarge`] before its file is even parsed.

use std::path::PathBuf;

use ort::session::Session;
use ort::value::ValueType;

use crate::error::{Error, Result};
use crate::provider::{self, GraphOptimization, Plan, Provider, SessionSettings, Used};
use crate::registry::{DType, ModelEntry, ModelRegistry, TensorSpec, fmt_shape};
use crate::runtime::{self, Runtime};

/// How a [`ModelManager`] runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManagerConfig {
    /// Bytes the resident models may take together (see the module docs for how a
    /// model is counted).
    pub budget_bytes: u64,
    /// Where inference runs.
    pub provider: Provider,
    /// Intra-op threads per CPU session. 1 (the default) keeps every reduction on
    /// one thread, the reproducible choice.
    pub intra_threads: usize,
    /// Graph optimisation level, fixed for every session.
    pub optimization: GraphOptimization,
    /// A batch of at least this many rows of a batchable model on the CPU is
    /// run in two halves at once, each on its own session of the model (the
    /// second session is opened when first needed, and counts against the
    /// budget; without room for it the batch runs whole). A row's result does
    /// not depend on the batch it is in, so the results are the same bits
    /// (tested). 0 never splits.
    pub split_rows: u64,
    /// A batch is handed to ONNX Runtime in runs of at most this many rows
    /// (whole requests; a request of more rows runs alone). A run of a few
    /// hundred rows keeps the model's intermediate tensors in the core's
    /// cache: the reference policy model took up to a third longer per row
    /// in runs of 5,000 rows than in runs of 1,000 while the machine was
    /// busy, and the same when it was quiet (BENCHMARKS.md, sixth round).
    /// Results are the same bits, as with `split_rows` (tested). 0 never
    /// cuts.
    pub chunk_rows: u64,
    /// The ONNX Runtime shared library; `None` reads `ORT_DYLIB_PATH`. Ignored when
    /// built without the `load-dynamic` feature.
    pub dylib: Option<PathBuf>,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        Self {
            budget_bytes: 256 << 20,
            provider: Provider::Cpu,
            intra_threads: 1,
            optimization: GraphOptimization::Basic,
            split_rows: 2048,
            chunk_rows: 1024,
            dylib: None,
        }
    }
}

/// Element storage of one batched input, reused from tick to tick.
#[derive(Debug)]
pub(crate) enum Buffer {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

/// One input's batch under construction: elements and dims.
#[derive(Debug)]
pub(crate) struct InputBuffer {
    pub(crate) data: Buffer,
    pub(crate) dims: Vec<i64>,
}

/// A session of a model and the input buffers its batches are built in.
pub(crate) struct Runner {
    pub(crate) session: Session,
    /// One per input in model order, reused from batch to batch.
    pub(crate) inputs: Vec<InputBuffer>,
}

impl Runner {
    fn new(session: Session, entry: &ModelEntry) -> Self {
        let inputs = entry
            .inputs
            .iter()
            .map(|spec| InputBuffer {
                data: match spec.dtype {
                    DType::F32 => Buffer::F32(Vec::new()),
                    DType::I64 => Buffer::I64(Vec::new()),
                },
                dims: Vec::with_capacity(spec.shape.len()),
            })
            .collect();
        Self { session, inputs }
    }
}

/// A resident model.
pub(crate) struct Resident {
    /// Index of the registry entry.
    pub(crate) index: usize,
    /// A copy of the entry, so the backend can hold it beside the session.
    pub(crate) entry: ModelEntry,
    pub(crate) runner: Runner,
    /// A second session, for the other half of a split batch
    /// ([`ManagerConfig::split_rows`]).
    pub(crate) twin: Option<Runner>,
    /// Whether opening the twin was tried (it is tried once).
    twin_tried: bool,
    /// What the model counts against the budget, its twin included.
    pub(crate) size_bytes: u64,
    pub(crate) used: Used,
    last_used: u64,
}

/// LRU cache of sessions over a [`ModelRegistry`].
pub struct ModelManager {
    registry: ModelRegistry,
    config: ManagerConfig,
    runtime: &'static Runtime,
    plan: Plan,
    settings: SessionSettings,
    resident: Vec<Resident>,
    used_bytes: u64,
    /// Logical recency clock.
    clock: u64,
    /// Provider fallbacks that happened while loading, for `describe`.
    fallbacks: Vec<String>,
}

impl std::fmt::Debug for ModelManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelManager")
            .field("registry", &self.registry.source())
            .field("config", &self.config)
            .field("resident", &self.resident_models())
            .field("used_bytes", &self.used_bytes)
            .finish()
    }
}

impl ModelManager {
    /// Creates a manager; initialises ONNX Runtime if this is the first use in the
    /// process (see [`ManagerConfig::dylib`]). Fails with an error saying how to
    /// provision ONNX Runtime when the library is missing or too old.
    pub fn new(registry: ModelRegistry, config: ManagerConfig) -> Result<Self> {
        let runtime = runtime::runtime(config.dylib.as_deref())?;
        let plan = Plan::decide(config.provider, runtime);
        let settings = SessionSettings {
            intra_threads: config.intra_threads.max(1),
            optimization: config.optimization,
        };
        Ok(Self {
            registry,
            config,
            runtime,
            plan,
            settings,
            resident: Vec::new(),
            used_bytes: 0,
            clock: 0,
            fallbacks: Vec::new(),
        })
    }

    /// The registry models come from.
    pub fn registry(&self) -> &ModelRegistry {
        &self.registry
    }

    /// The configuration.
    pub fn config(&self) -> &ManagerConfig {
        &self.config
    }

    /// The cache budget in bytes.
    pub fn budget_bytes(&self) -> u64 {
        self.config.budget_bytes
    }

    /// Bytes the resident models count for.
    pub fn used_bytes(&self) -> u64 {
        self.used_bytes
    }

    /// Loads each model of the hot list in order (each becomes the most recently
    /// used). Stops at the first failure. Preloading more than the budget holds
    /// evicts the earlier ones, as any load does.
    pub fn preload(&mut self, models: &[&str]) -> Result<()> {
        for model in models {
            self.load(model)?;
        }
        Ok(())
    }

    /// Makes `model` (`name` or `name@version`) resident and the most recently used.
    pub fn load(&mut self, model: &str) -> Result<()> {
        self.acquire(model, false).map(|_| ())
    }

    /// Whether `model` is resident.
    pub fn is_resident(&self, model: &str) -> bool {
        self.registry
            .position(model)
            .is_some_and(|index| self.resident.iter().any(|r| r.index == index))
    }

    /// Resident models as `name@version`, least recently used first.
    pub fn resident_models(&self) -> Vec<String> {
        let mut order: Vec<&Resident> = self.resident.iter().collect();
        order.sort_by_key(|r| r.last_used);
        order.iter().map(|r| r.entry.id()).collect()
    }

    /// The provider (`"cpu"` or `"cuda"`) serving `model`, if it is resident.
    pub fn resident_provider(&self, model: &str) -> Option<&'static str> {
        let index = self.registry.position(model)?;
        self.resident
            .iter()
            .find(|r| r.index == index)
            .map(|r| r.used.name())
    }

    /// Drops `model` from the cache; whether it was resident.
    pub fn unload(&mut self, model: &str) -> bool {
        let Some(index) = self.registry.position(model) else {
            return false;
        };
        match self.resident.iter().position(|r| r.index == index) {
            Some(slot) => {
                let gone = self.resident.swap_remove(slot);
                self.used_bytes = self.used_bytes.saturating_sub(gone.size_bytes);
                true
            }
            None => false,
        }
    }

    /// The provider actually used and why, plus the ONNX Runtime in use, e.g.
    /// `onnxruntime 1.31 (/…/libonnxruntime.so.1.31.1); cpu (cuda requested but not
    /// available: …; intra_threads=1, …)`.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "{}; {}",
            self.runtime.describe(),
            provider::describe(&self.plan, self.settings)
        );
        for note in &self.fallbacks {
            s.push_str("; ");
            s.push_str(note);
        }
        s
    }

    /// The ONNX Runtime session of `model`, loading it if needed: an escape hatch
    /// for benchmarks and tools that call ONNX Runtime directly.
    pub fn session_mut(&mut self, model: &str) -> Result<&mut Session> {
        self.acquire(model, false).map(|r| &mut r.runner.session)
    }

    /// The resident model `model`, loading it (and evicting others) if needed, and
    /// marks it most recently used. With `twin`, also opens its second session
    /// if that was never tried and it fits without evicting anything.
    pub(crate) fn acquire(&mut self, model: &str, twin: bool) -> Result<&mut Resident> {
        let index = self
            .registry
            .position(model)
            .ok_or_else(|| self.registry.unknown(model))?;
        self.clock += 1;
        let clock = self.clock;
        let slot = match self.resident.iter().position(|r| r.index == index) {
            Some(slot) => slot,
            None => self.load_new(index)?,
        };
        if twin {
            self.open_twin(slot);
        }
        let resident = self
            .resident
            .get_mut(slot)
            .ok_or_else(|| self.registry.unknown(model))?;
        resident.last_used = clock;
        Ok(resident)
    }

    /// Reads, verifies and opens entry `index`, evicts to fit, and returns its slot.
    fn load_new(&mut self, index: usize) -> Result<usize> {
        let entry = self
            .registry
            .entries()
            .get(index)
            .cloned()
            .ok_or_else(|| self.registry.unknown(&index.to_string()))?;
        let id = entry.id();
        let budget = self.config.budget_bytes;
        if let Some(declared) = entry.memory_bytes {
            check_fits(&id, declared, budget)?;
        }
        let bytes = read_verified(&entry)?;
        let size_bytes = entry.memory_bytes.unwrap_or(bytes.len() as u64);
        check_fits(&id, size_bytes, budget)?;

        let (session, used, fallback) =
            self.build_session(&bytes)
                .map_err(|reason| Error::Session {
                    model: id.clone(),
                    reason,
                })?;
        check_signature(&id, "input", &entry.inputs, session.inputs())?;
        check_signature(&id, "output", &entry.outputs, session.outputs())?;
        if let Some(note) = fallback {
            self.fallbacks.push(format!("model `{id}`: {note}"));
        }

        // Evict least recently used models until the new one fits. The loop ends:
        // each pass removes one model, and with none left the new one fits (it is
        // not larger than the budget).
        while self.used_bytes + size_bytes > budget {
            let Some(lru) = self
                .resident
                .iter()
                .enumerate()
                .min_by_key(|(_, r)| r.last_used)
                .map(|(slot, _)| slot)
            else {
                break;
            };
            let gone = self.resident.swap_remove(lru);
            self.used_bytes = self.used_bytes.saturating_sub(gone.size_bytes);
        }

        let runner = Runner::new(session, &entry);
        self.resident.push(Resident {
            index,
            entry,
            runner,
            twin: None,
            twin_tried: false,
            size_bytes,
            used,
            last_used: 0,
        });
        self.used_bytes += size_bytes;
        Ok(self.resident.len() - 1)
    }
}

impl ModelManager {
    /// Opens the second session of the model in `slot` (once, on the CPU
    /// only, and only if it fits beside what is resident). A failure leaves
    /// the model without a twin: batches then run whole.
    fn open_twin(&mut self, slot: usize) {
        let budget = self.config.budget_bytes;
        let used_bytes = self.used_bytes;
        let Some(r) = self.resident.get_mut(slot) else {
            return;
        };
        if r.twin_tried || r.used != Used::Cpu || !r.entry.batchable {
            return;
        }
        r.twin_tried = true;
        let size = r.size_bytes;
        if used_bytes.saturating_add(size) > budget {
            return;
        }
        let Ok(bytes) = read_verified(&r.entry) else {
            return;
        };
        let Ok((session, Used::Cpu, _)) = self.build_session(&bytes) else {
            return;
        };
        if let Some(r) = self.resident.get_mut(slot) {
            r.twin = Some(Runner::new(session, &r.entry));
            r.size_bytes += size;
            self.used_bytes += size;
        }
    }

    /// A session over `bytes` with the manager's settings and plan; an ONNX
    /// Runtime panic becomes an error.
    fn build_session(
        &self,
        bytes: &[u8],
    ) -> std::result::Result<(Session, Used, Option<String>), String> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            provider::build(self.runtime, bytes, self.settings, &self.plan)
        }))
        .unwrap_or_else(|panic| {
            Err(format!(
                "ort panicked: {}",
                runtime::panic_message(panic.as_ref())
            ))
        })
    }
}

/// The model file of `entry`, checked against its registered blake3.
fn read_verified(entry: &ModelEntry) -> Result<Vec<u8>> {
    let bytes = std::fs::read(&entry.path).map_err(|source| Error::ModelRead {
        model: entry.id(),
        path: entry.path.clone(),
        source,
    })?;
    let actual = blake3::hash(&bytes).to_hex();
    if actual.as_str() != entry.blake3 {
        return Err(Error::ChecksumMismatch {
            model: entry.id(),
            path: entry.path.clone(),
            expected: entry.blake3.clone(),
            actual: actual.to_string(),
        });
    }
    Ok(bytes)
}

fn check_fits(model: &str, size_bytes: u64, budget_bytes: u64) -> Result<()> {
    if size_bytes > budget_bytes {
        return Err(Error::ModelTooLarge {
            model: model.to_owned(),
            size_bytes,
            budget_bytes,
        });
    }
    Ok(())
}

/// Checks that the session's inputs or outputs are the registry's, in the same
/// order: names, element types, ranks, and every static dim of the model equal.
fn check_signature(
    model: &str,
    kind: &str,
    specs: &[TensorSpec],
    outlets: &[ort::value::Outlet],
) -> Result<()> {
    let mismatch = |problem: String| Error::Signature {
        model: model.to_owned(),
        problem,
    };
    let model_sig = || {
        outlets
            .iter()
            .map(|o| format!("{} {}", o.name(), describe_type(o.dtype())))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if specs.len() != outlets.len() {
        return Err(mismatch(format!(
            "registry lists {} {kind}(s), the model has {} ({})",
            specs.len(),
            outlets.len(),
            model_sig()
        )));
    }
    for (spec, outlet) in specs.iter().zip(outlets) {
        let ok = match outlet.dtype() {
            ValueType::Tensor { ty, shape, .. } => {
                let dtype_ok = matches!(
                    (spec.dtype, ty),
                    (DType::F32, ort::value::TensorElementType::Float32)
                        | (DType::I64, ort::value::TensorElementType::Int64)
                );
                let shape_ok = shape.len() == spec.shape.len()
                    && shape
                        .iter()
                        .zip(&spec.shape)
                        .all(|(&m, &r)| m < 0 || m == r);
                outlet.name() == spec.name && dtype_ok && shape_ok
            }
            _ => false,
        };
        if !ok {
            return Err(mismatch(format!(
                "registry {kind} `{}` is {} {}, the model's {kind}s are ({})",
                spec.name,
                spec.dtype,
                fmt_shape(&spec.shape),
                model_sig()
            )));
        }
    }
    Ok(())
}

fn describe_type(t: &ValueType) -> String {
    match t {
        ValueType::Tensor { ty, shape, .. } => format!("{ty:?} {}", fmt_shape(shape.iter())),
        other => format!("{other:?}"),
    }
}
