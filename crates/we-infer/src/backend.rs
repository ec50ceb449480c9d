//! [`OrtBackend`]: the runtime's `InferenceBackend` on ONNX Runtime.
//!
//! One tick's requests are grouped by model in commit order (groups ordered by
//! their first request). A batchable model's requests are concatenated along
//! dim 0 into one `Session::run` and the outputs are split back by rows; a model
//! that is not batchable runs once per request. Results come back in request
//! order, one per request.
//!
//! A bad request (unknown model, wrong input name, dtype or shape, malformed
//! tensor bytes) gets `Err(reason)` and is left out of the batch; the others run.
//! If a batched run fails as a whole, its requests are run one by one, so only the
//! request that makes ONNX Runtime fail gets the error. Everything here depends on
//! the requests' bytes alone, never on timing, so the grouping and the results are
//! reproducible.
//!
//! A model the runtime asks to post-process with `argmax` gets each request's
//! argmax straight from the output tensor, as the 8-byte payload delivered.
//!
//! On the CPU a batch of at least [`ManagerConfig::split_rows`] rows runs in
//! two halves at once, the second on a second session of the model on a
//! thread the backend keeps for it (started at the first split: starting a
//! thread for each split took about 0.1 ms of a 4 ms tick). Each half goes to
//! ONNX Runtime in runs of at most [`ManagerConfig::chunk_rows`] rows. A
//! row's result does not depend on the batch around it (the tests check a
//! batch against its rows one by one, and a split and cut batch against the
//! same batch whole, bitwise), so neither changes a result.
//!
//! Hot path: input buffers live with the resident model and are reused from tick
//! to tick, group and scratch vectors live in the backend; per request the
//! backend parses the tensor headers once (validation notes where each input's
//! data lies, and the batch is filled from there), and result payloads reuse
//! the buffers of the results it is handed back, so a steady run allocates
//! nothing per request.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use ort::session::SessionInputValue;
use ort::value::TensorRef;
use we_abi::tensor::{self as abi, TensorView, Tensors};
use we_core::hint::short_eq;
use we_core::{
    InferenceBackend, InferenceResult, Postprocess, Request, Requests, ThreadStart, Tick,
};

use crate::error::Result;
use crate::manager::{Buffer, ManagerConfig, ModelManager, Runner};
use crate::registry::{DType, ModelEntry, ModelRegistry, fmt_shape};
use crate::runtime;

/// Serves inference requests with ONNX Runtime through a [`ModelManager`].
#[derive(Debug)]
pub struct OrtBackend {
    manager: ModelManager,
    scratch: Scratch,
    /// Models whose results are their first output's argmax.
    argmax: Vec<String>,
    /// The thread that runs the second half of a split batch; `None` before
    /// the first split, or when no thread could be had (batches then run
    /// whole).
    helper: Option<rayon_core::ThreadPool>,
    /// Whether starting `helper` was tried (it is tried once).
    helper_tried: bool,
    /// What `helper` runs first (see `InferenceBackend::start_threads_with`).
    thread_start: Option<ThreadStart>,
}

/// Vectors reused across ticks.
#[derive(Debug, Default)]
struct Scratch {
    /// Request indices per model group; the first `group_count` are live.
    groups: Vec<Vec<usize>>,
    group_count: usize,
    /// Valid requests of the group being run: (request index, rows).
    valid: Vec<(usize, u64)>,
    /// Trailing dims (all dims but the batch dim) of each valid request, `key_len`
    /// per request, inputs in model order: requests with equal keys share a batch.
    keys: Vec<u64>,
    /// Positions in `valid` still to run, and the batch being formed.
    pending: Vec<usize>,
    rest: Vec<usize>,
    batch: Vec<(usize, u64)>,
    /// Which inputs a request has given so far.
    seen: Vec<bool>,
    /// Where each input's data lies in a valid request's tensor bytes:
    /// `(start, len)` at `request * inputs + input` of the group being run.
    spans: Vec<(usize, usize)>,
    /// The last request of the group found valid, as a template for the next.
    shape: Shape,
    /// Result payload buffers free for reuse.
    payloads: Vec<Vec<u8>>,
    /// Per output of the batch just run: little-endian element bytes and dims.
    outputs: Vec<OutputScratch>,
    /// The same, for the second half of a split batch.
    twin_outputs: Vec<OutputScratch>,
}

/// A valid request's structure: its bytes outside the tensors' data (names,
/// dtypes, dims, lengths) and what validation made of them. Validation reads
/// only those bytes, never the data, so a request of the same model whose
/// bytes outside the same data spans are equal validates the same way; the
/// agents of a workload send requests of one structure, tick after tick.
#[derive(Debug, Default)]
struct Shape {
    /// Whether the fields below describe a request.
    set: bool,
    tensor_count: u16,
    /// The request's tensor bytes (its data bytes are never compared).
    bytes: Vec<u8>,
    /// The ranges of `bytes` outside the data spans, in order.
    gaps: Vec<(usize, usize)>,
    rows: u64,
    keys: Vec<u64>,
    spans: Vec<(usize, usize)>,
    /// The data ranges in byte order, kept for the next `learn`.
    data: Vec<(usize, usize)>,
}

impl Shape {
    /// Whether `req` has this structure.
    fn matches(&self, req: Request<'_>) -> bool {
        self.set
            && req.tensor_count == self.tensor_count
            && req.inputs.len() == self.bytes.len()
            && self.gaps.iter().all(
                |&(a, b)| match (req.inputs.get(a..b), self.bytes.get(a..b)) {
                    (Some(x), Some(y)) => short_eq(x, y),
                    _ => false,
                },
            )
    }

    /// Takes `req`, found valid with `rows`, its `keys` and `spans`, as the
    /// template.
    fn learn(&mut self, req: Request<'_>, rows: u64, keys: &[u64], spans: &[(usize, usize)]) {
        self.set = true;
        self.tensor_count = req.tensor_count;
        self.bytes.clear();
        self.bytes.extend_from_slice(req.inputs);
        self.rows = rows;
        self.keys.clear();
        self.keys.extend_from_slice(keys);
        self.spans.clear();
        self.spans.extend_from_slice(spans);
        self.data.clear();
        self.data.extend(spans.iter().map(|&(a, n)| (a, a + n)));
        self.data.sort_unstable();
        self.gaps.clear();
        let mut at = 0;
        for &(a, b) in &self.data {
            if a > at {
                self.gaps.push((at, a));
            }
            at = at.max(b);
        }
        if at < self.bytes.len() {
            self.gaps.push((at, self.bytes.len()));
        }
    }
}

#[derive(Debug, Default)]
struct OutputScratch {
    bytes: Vec<u8>,
    dims: Vec<u64>,
    /// Bytes per batch row (batchable models) or of the whole tensor.
    row_bytes: usize,
}

impl OrtBackend {
    /// A backend over `manager`.
    pub fn new(manager: ModelManager) -> Self {
        Self {
            manager,
            scratch: Scratch::default(),
            argmax: Vec::new(),
            helper: None,
            helper_tried: false,
            thread_start: None,
        }
    }

    /// Reads the registry at `registry` and creates a manager with `config`.
    pub fn from_registry_file(
        registry: impl AsRef<std::path::Path>,
        config: ManagerConfig,
    ) -> Result<Self> {
        let registry = ModelRegistry::load(registry)?;
        Ok(Self::new(ModelManager::new(registry, config)?))
    }

    /// The model manager (for preloading, inspecting the cache).
    pub fn manager(&self) -> &ModelManager {
        &self.manager
    }

    /// The model manager, mutably.
    pub fn manager_mut(&mut self) -> &mut ModelManager {
        &mut self.manager
    }

    /// Runs one tick's requests into `results`; see the module docs.
    pub fn run_requests(&mut self, requests: &Requests, results: &mut Vec<InferenceResult>) {
        // Earlier payloads become free buffers; every outcome is set below.
        let free = &mut self.scratch.payloads;
        results.truncate(requests.len());
        for (res, req) in results.iter_mut().zip(requests.iter()) {
            if let Ok(payload) = std::mem::replace(&mut res.outcome, Err(String::new())) {
                free.push(payload);
            }
            res.agent = req.agent;
            res.tag = req.tag;
        }
        let have = results.len();
        results.extend(requests.iter().skip(have).map(|r| InferenceResult {
            agent: r.agent,
            tag: r.tag,
            outcome: Err(String::new()),
        }));
        self.scratch.group(requests);
        for g in 0..self.scratch.group_count {
            let Some(members) = self.scratch.groups.get_mut(g).map(std::mem::take) else {
                continue;
            };
            self.run_group(requests, &members, results);
            if let Some(slot) = self.scratch.groups.get_mut(g) {
                *slot = members;
            }
        }
    }

    /// Runs the requests of one model.
    fn run_group(
        &mut self,
        requests: &Requests,
        members: &[usize],
        results: &mut [InferenceResult],
    ) {
        let Some(model) = members.first().and_then(|&i| requests.get(i)) else {
            return;
        };
        let argmax = self.argmax.iter().any(|m| **m == **model.model);
        let split_rows = self.manager.config().split_rows;
        let chunk_rows = self.manager.config().chunk_rows;
        // A group that large may be run in two halves: have the twin ready.
        let twin = split_rows > 0 && members.len() as u64 >= split_rows;
        if twin && !self.helper_tried {
            self.helper_tried = true;
            let start = self.thread_start.clone();
            self.helper = rayon_core::ThreadPoolBuilder::new()
                .num_threads(1)
                .thread_name(|_| "we-infer-half".to_string())
                .start_handler(move |_| {
                    if let Some(start) = &start {
                        start.run();
                    }
                })
                .build()
                .ok();
        }
        let helper = self.helper.as_ref();
        let resident = match self.manager.acquire(model.model, twin) {
            Ok(r) => r,
            Err(e) => {
                let reason = e.to_string();
                for &i in members {
                    set(results, i, Err(reason.clone()));
                }
                return;
            }
        };
        let s = &mut self.scratch;
        let key_len: usize = resident
            .entry
            .inputs
            .iter()
            .map(|spec| spec.shape.len().saturating_sub(1))
            .sum();
        s.valid.clear();
        s.keys.clear();
        let inputs = resident.entry.inputs.len();
        s.spans.clear();
        s.spans.resize(requests.len() * inputs, (0, 0));
        // The template is learnt anew for each group (one model entry).
        s.shape.set = false;
        for &i in members {
            let Some(req) = requests.get(i) else { continue };
            let spans = s
                .spans
                .get_mut(i * inputs..(i + 1) * inputs)
                .unwrap_or_default();
            if s.shape.matches(req) && spans.len() == s.shape.spans.len() {
                spans.copy_from_slice(&s.shape.spans);
                s.keys.extend_from_slice(&s.shape.keys);
                s.valid.push((i, s.shape.rows));
                continue;
            }
            match validate(&resident.entry, req, &mut s.seen, &mut s.keys, spans) {
                Ok(rows) => {
                    s.valid.push((i, rows));
                    let keys = s.keys.get(s.keys.len() - key_len..).unwrap_or_default();
                    s.shape.learn(req, rows, keys, spans);
                }
                Err(problem) => {
                    s.keys.truncate(s.valid.len() * key_len);
                    set(
                        results,
                        i,
                        Err(format!("model `{}`: {problem}", resident.entry.id())),
                    );
                }
            }
        }

        if !resident.entry.batchable {
            for v in 0..s.valid.len() {
                s.batch.clear();
                s.batch.extend(s.valid.get(v).copied());
                let (batch, run) = s.batch_run(argmax, chunk_rows);
                execute(
                    &resident.entry,
                    &mut resident.runner,
                    requests,
                    batch,
                    false,
                    run,
                    results,
                );
            }
            return;
        }
        // Batches of requests with equal trailing dims, in commit order; with
        // static trailing dims (the usual case) that is the whole group at once.
        s.pending.clear();
        s.pending.extend(0..s.valid.len());
        while let Some(&first) = s.pending.first() {
            s.batch.clear();
            s.rest.clear();
            let key = |p: usize| s.keys.get(p * key_len..(p + 1) * key_len);
            let first_key = key(first);
            for &p in &s.pending {
                if key(p) == first_key {
                    s.batch.extend(s.valid.get(p).copied());
                } else {
                    s.rest.push(p);
                }
            }
            std::mem::swap(&mut s.pending, &mut s.rest);
            let rows: u64 = s.batch.iter().map(|&(_, r)| r).sum();
            let (batch, run) = s.batch_run(argmax, chunk_rows);
            match (resident.twin.as_mut(), helper) {
                (Some(twin), Some(helper))
                    if split_rows > 0 && rows >= split_rows && batch.len() >= 2 =>
                {
                    let halves = [&mut resident.runner, twin];
                    execute_split(
                        &resident.entry,
                        halves,
                        helper,
                        requests,
                        batch,
                        run,
                        results,
                    );
                }
                _ => execute(
                    &resident.entry,
                    &mut resident.runner,
                    requests,
                    batch,
                    true,
                    run,
                    results,
                ),
            }
        }
    }
}

impl InferenceBackend for OrtBackend {
    fn run_into(&mut self, _tick: Tick, requests: &Requests, results: &mut Vec<InferenceResult>) {
        self.run_requests(requests, results);
    }

    fn describe(&self) -> String {
        self.manager.describe()
    }

    fn start_threads_with(&mut self, start: ThreadStart) {
        self.thread_start = Some(start);
    }

    fn postprocess(&mut self, model: &str, post: Postprocess) -> bool {
        match post {
            Postprocess::Argmax => {
                if !self.argmax.iter().any(|m| m == model) {
                    self.argmax.push(model.to_string());
                }
                true
            }
        }
    }
}

/// What running one batch needs besides the requests and results.
struct Run<'a> {
    outputs: &'a mut Vec<OutputScratch>,
    payloads: &'a mut Vec<Vec<u8>>,
    spans: &'a [(usize, usize)],
    /// Results are the first output's argmax.
    argmax: bool,
    /// Request index of the first of the results handed along with this run.
    offset: usize,
    /// Most rows per `Session::run` ([`ManagerConfig::chunk_rows`]; 0: no
    /// limit).
    chunk_rows: u64,
    /// The output buffers of the second half of a split batch.
    twin_outputs: &'a mut Vec<OutputScratch>,
}

impl Run<'_> {
    /// The same run, borrowing this one's buffers, for a part of its batch.
    fn reborrow(&mut self) -> Run<'_> {
        Run {
            outputs: &mut *self.outputs,
            payloads: &mut *self.payloads,
            twin_outputs: &mut *self.twin_outputs,
            ..*self
        }
    }
}

impl Scratch {
    /// The batch formed and what running it needs.
    fn batch_run(&mut self, argmax: bool, chunk_rows: u64) -> (&[(usize, u64)], Run<'_>) {
        let run = Run {
            outputs: &mut self.outputs,
            payloads: &mut self.payloads,
            spans: &self.spans,
            argmax,
            offset: 0,
            chunk_rows,
            twin_outputs: &mut self.twin_outputs,
        };
        (&self.batch, run)
    }

    /// Groups request indices by model name, groups in order of first appearance.
    fn group(&mut self, requests: &Requests) {
        self.group_count = 0;
        // The group of the request before: most requests are of the same
        // model as the one before them.
        let mut last = 0;
        for (i, r) in requests.iter().enumerate() {
            let of_group = |g: &Vec<usize>| {
                g.first()
                    .and_then(|&h| requests.get(h))
                    .is_some_and(|head| {
                        // The runtime shares one name among a model's
                        // requests: usually equal pointers, no name read.
                        Arc::ptr_eq(head.model, r.model)
                            || short_eq(head.model.as_bytes(), r.model.as_bytes())
                    })
            };
            let live = &self.groups[..self.group_count];
            let found = match live.get(last) {
                Some(g) if of_group(g) => Some(last),
                _ => live.iter().position(of_group),
            };
            match found {
                Some(k) => {
                    last = k;
                    if let Some(g) = self.groups.get_mut(k) {
                        g.push(i);
                    }
                }
                None => {
                    if self.group_count == self.groups.len() {
                        self.groups.push(Vec::new());
                    }
                    if let Some(g) = self.groups.get_mut(self.group_count) {
                        g.clear();
                        g.push(i);
                    }
                    last = self.group_count;
                    self.group_count += 1;
                }
            }
        }
    }
}

fn set(results: &mut [InferenceResult], i: usize, outcome: Result<Vec<u8>, String>) {
    if let Some(r) = results.get_mut(i) {
        r.outcome = outcome;
    }
}

/// Runs one batch in two halves of about equal rows at once, the second on
/// the model's twin session on the `helper` thread. Each half is run (and, if
/// it fails, retried) exactly as a batch of its own would be.
fn execute_split(
    entry: &ModelEntry,
    [main, twin]: [&mut Runner; 2],
    helper: &rayon_core::ThreadPool,
    requests: &Requests,
    batch: &[(usize, u64)],
    run: Run<'_>,
    results: &mut [InferenceResult],
) {
    let total: u64 = batch.iter().map(|&(_, r)| r).sum();
    let mut rows = 0;
    let cut = batch
        .iter()
        .position(|&(_, r)| {
            rows += r;
            rows * 2 >= total
        })
        .map_or(1, |p| p + 1)
        .clamp(1, batch.len() - 1);
    let (first, second) = batch.split_at(cut);
    // Requests come in increasing order: the second half's results all lie
    // at or after its first request.
    let at = second.first().map_or(0, |&(i, _)| i);
    let Run {
        outputs,
        payloads,
        spans,
        argmax,
        offset,
        chunk_rows,
        twin_outputs,
    } = run;
    let (low, high) = results.split_at_mut(at.saturating_sub(offset).min(results.len()));
    let mut twin_payloads = payloads.split_off(payloads.len() / 2);
    let mut spare = Vec::new();
    let mut second_done = false;
    // The second half is handed to the helper thread; this thread runs the
    // first, and the scope returns once both have.
    helper.in_place_scope(|scope| {
        let high = &mut *high;
        let second_done = &mut second_done;
        let twin_payloads = &mut twin_payloads;
        let spare = &mut spare;
        scope.spawn(move |_| {
            let half = Run {
                outputs: twin_outputs,
                payloads: twin_payloads,
                spans,
                argmax,
                offset: at,
                chunk_rows,
                twin_outputs: spare,
            };
            // A panic here is not let out of the scope: the half is run
            // again below.
            *second_done = std::panic::catch_unwind(AssertUnwindSafe(|| {
                execute(entry, twin, requests, second, true, half, high);
            }))
            .is_ok();
        });
        let half = Run {
            outputs: &mut *outputs,
            payloads: &mut *payloads,
            spans,
            argmax,
            offset,
            chunk_rows,
            twin_outputs: &mut Vec::new(),
        };
        execute(entry, &mut *main, requests, first, true, half, &mut *low);
    });
    payloads.append(&mut twin_payloads);
    if !second_done {
        // The half panicked outside ONNX Runtime (whose panics `execute`
        // catches): run it here.
        let half = Run {
            outputs,
            payloads,
            spans,
            argmax,
            offset: at,
            chunk_rows,
            twin_outputs: &mut Vec::new(),
        };
        execute(entry, main, requests, second, true, half, high);
    }
}

/// Checks one request against the model's inputs. Returns its rows (dim 0 of its
/// inputs for a batchable model, else 1) and appends its trailing dims to `keys`.
fn validate(
    entry: &ModelEntry,
    req: Request<'_>,
    seen: &mut Vec<bool>,
    keys: &mut Vec<u64>,
    spans: &mut [(usize, usize)],
) -> Result<u64, String> {
    let n = entry.inputs.len();
    if usize::from(req.tensor_count) != n {
        return Err(format!(
            "takes {n} input tensor(s) ({}), the request has {}",
            input_names(entry),
            req.tensor_count
        ));
    }
    seen.clear();
    seen.resize(n, false);
    let key_start = keys.len();
    let key_len: usize = entry
        .inputs
        .iter()
        .map(|s| s.shape.len().saturating_sub(1))
        .sum();
    keys.resize(key_start + key_len, 0);
    let mut rows: Option<u64> = None;
    let mut count = 0usize;
    for tensor in Tensors::new(req.inputs) {
        let view = tensor.map_err(|e| format!("malformed tensor bytes: {e:?}"))?;
        count += 1;
        let idx = input_index(entry, &view)?;
        let spec = entry.inputs.get(idx).ok_or("input index out of range")?;
        if seen.get(idx).copied().unwrap_or(true) {
            return Err(format!("input `{}` is given twice", spec.name));
        }
        if let Some(s) = seen.get_mut(idx) {
            *s = true;
        }
        if let Some(span) = spans.get_mut(idx) {
            // `view.data` lies within `req.inputs`.
            let start = (view.data.as_ptr() as usize).wrapping_sub(req.inputs.as_ptr() as usize);
            *span = (start, view.data.len());
        }
        let dtype = DType::from_abi_code(view.dtype);
        if dtype != Some(spec.dtype) {
            return Err(format!(
                "input `{}` has dtype {}, the model takes {}",
                spec.name,
                dtype.map_or("unknown", DType::name),
                spec.dtype
            ));
        }
        let dims = (0..view.rank()).map(|d| view.dim(d));
        if !spec.accepts(dims.clone()) || dims.clone().any(|d| d > i64::MAX as u64) {
            return Err(format!(
                "input `{}` has shape {}, the model takes {}",
                spec.name,
                fmt_shape(dims),
                fmt_shape(&spec.shape)
            ));
        }
        if entry.batchable {
            let r = view.dim(0);
            if r == 0 {
                return Err(format!(
                    "input `{}` has an empty batch (dim 0 is 0)",
                    spec.name
                ));
            }
            match rows {
                None => rows = Some(r),
                Some(prev) if prev != r => {
                    return Err(format!(
                        "inputs disagree on the batch size (dim 0): {prev} and {r} (input `{}`)",
                        spec.name
                    ));
                }
                Some(_) => {}
            }
            let offset: usize = entry.inputs[..idx]
                .iter()
                .map(|s| s.shape.len().saturating_sub(1))
                .sum();
            for d in 1..view.rank() {
                if let Some(k) = keys.get_mut(key_start + offset + d - 1) {
                    *k = view.dim(d);
                }
            }
        }
    }
    if count != n {
        return Err(format!(
            "declares {} tensor(s) but carries {count}",
            req.tensor_count
        ));
    }
    Ok(rows.unwrap_or(1))
}

/// The model input a tensor view names.
fn input_index(entry: &ModelEntry, view: &TensorView<'_>) -> Result<usize, String> {
    entry
        .inputs
        .iter()
        .position(|s| s.name.as_bytes() == view.name)
        .ok_or_else(|| {
            format!(
                "has no input `{}` (inputs: {})",
                String::from_utf8_lossy(view.name),
                input_names(entry)
            )
        })
}

fn input_names(entry: &ModelEntry) -> String {
    entry
        .inputs
        .iter()
        .map(|s| s.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs one batch (already validated requests) and sets their results, in
/// runs of at most `run.chunk_rows` rows.
fn execute(
    entry: &ModelEntry,
    runner: &mut Runner,
    requests: &Requests,
    batch: &[(usize, u64)],
    batched: bool,
    mut run: Run<'_>,
    results: &mut [InferenceResult],
) {
    let limit = run.chunk_rows;
    if !batched || limit == 0 {
        return execute_run(entry, runner, requests, batch, batched, run, results);
    }
    let mut rest = batch;
    while !rest.is_empty() {
        // Whole requests up to the limit; at least one.
        let mut rows = 0u64;
        let cut = rest
            .iter()
            .position(|&(_, r)| {
                rows = rows.saturating_add(r);
                rows > limit
            })
            .unwrap_or(rest.len())
            .max(1);
        let (chunk, after) = rest.split_at(cut);
        execute_run(
            entry,
            runner,
            requests,
            chunk,
            batched,
            run.reborrow(),
            results,
        );
        rest = after;
    }
}

/// Runs one batch (already validated requests) as one `Session::run` and sets
/// their results. When a batch of several fails as a whole, each request is
/// retried alone.
fn execute_run(
    entry: &ModelEntry,
    runner: &mut Runner,
    requests: &Requests,
    batch: &[(usize, u64)],
    batched: bool,
    mut run: Run<'_>,
    results: &mut [InferenceResult],
) {
    if batch.is_empty() {
        return;
    }
    let spans = run.spans;
    let outputs = &mut *run.outputs;
    let ran = std::panic::catch_unwind(AssertUnwindSafe(|| {
        fill_inputs(entry, runner, requests, batch, batched, spans);
        run_session(entry, runner, batch, batched, outputs)
    }));
    let failure = match ran {
        Ok(Ok(())) => None,
        Ok(Err(reason)) => Some(reason),
        Err(panic) => Some(format!(
            "ort panicked: {}",
            runtime::panic_message(panic.as_ref())
        )),
    };
    if let Some(reason) = failure {
        if batch.len() > 1 {
            for one in batch.chunks(1) {
                execute_run(
                    entry,
                    runner,
                    requests,
                    one,
                    batched,
                    run.reborrow(),
                    results,
                );
            }
        } else {
            for &(i, _) in batch {
                set(
                    results,
                    i.wrapping_sub(run.offset),
                    Err(format!(
                        "model `{}`: inference failed: {reason}",
                        entry.id()
                    )),
                );
            }
        }
        return;
    }
    split_outputs(entry, batch, batched, &mut run, results);
}

/// Concatenates the batch's inputs into the model's reusable buffers, from
/// where validation found each input's data.
fn fill_inputs(
    entry: &ModelEntry,
    runner: &mut Runner,
    requests: &Requests,
    batch: &[(usize, u64)],
    batched: bool,
    spans: &[(usize, usize)],
) {
    let total_rows: u64 = batch.iter().map(|&(_, rows)| rows).sum();
    for buf in &mut runner.inputs {
        buf.dims.clear();
        match &mut buf.data {
            Buffer::F32(v) => v.clear(),
            Buffer::I64(v) => v.clear(),
        }
    }
    // Dims come from the batch's first request (the rest share its trailing
    // dims; dim 0 is the batch's rows).
    if let Some(req) = batch.first().and_then(|&(i, _)| requests.get(i)) {
        // Validated already: every tensor parses and names a distinct input.
        for view in Tensors::new(req.inputs).flatten() {
            let Ok(idx) = input_index(entry, &view) else {
                continue;
            };
            let Some(buf) = runner.inputs.get_mut(idx) else {
                continue;
            };
            buf.dims
                .extend((0..view.rank()).map(|d| view.dim(d) as i64));
            if batched && let Some(d0) = buf.dims.first_mut() {
                *d0 = total_rows as i64;
            }
        }
    }
    let n = runner.inputs.len();
    for (idx, buf) in runner.inputs.iter_mut().enumerate() {
        for &(i, _) in batch {
            let Some(req) = requests.get(i) else { continue };
            let data = spans
                .get(i * n + idx)
                .and_then(|&(start, len)| req.inputs.get(start..start + len))
                .unwrap_or_default();
            match &mut buf.data {
                Buffer::F32(v) => v.extend(
                    data.chunks_exact(4)
                        .map(|c| <[u8; 4]>::try_from(c).map_or(0.0, f32::from_le_bytes)),
                ),
                Buffer::I64(v) => v.extend(
                    data.chunks_exact(8)
                        .map(|c| <[u8; 8]>::try_from(c).map_or(0, i64::from_le_bytes)),
                ),
            }
        }
    }
}

/// Runs the session on the filled buffers and copies the outputs into `outputs`
/// as little-endian bytes, checking them against the registry.
fn run_session(
    entry: &ModelEntry,
    runner: &mut Runner,
    batch: &[(usize, u64)],
    batched: bool,
    outputs: &mut Vec<OutputScratch>,
) -> Result<(), String> {
    let total_rows: u64 = batch.iter().map(|&(_, rows)| rows).sum();
    let Runner { session, inputs } = runner;
    let values = inputs
        .iter()
        .map(|buf| -> ort::Result<SessionInputValue<'_>> {
            Ok(match &buf.data {
                Buffer::F32(v) => {
                    TensorRef::from_array_view((buf.dims.as_slice(), v.as_slice()))?.into()
                }
                Buffer::I64(v) => {
                    TensorRef::from_array_view((buf.dims.as_slice(), v.as_slice()))?.into()
                }
            })
        })
        .collect::<ort::Result<Vec<_>>>()
        .map_err(|e| e.to_string())?;
    let out = session.run(values.as_slice()).map_err(|e| e.to_string())?;
    outputs.resize_with(entry.outputs.len(), OutputScratch::default);
    for (spec, scratch) in entry.outputs.iter().zip(outputs.iter_mut()) {
        let value = out
            .get(&spec.name)
            .ok_or_else(|| format!("the model gave no output `{}`", spec.name))?;
        scratch.bytes.clear();
        scratch.dims.clear();
        let shape = match spec.dtype {
            DType::F32 => {
                let (shape, data) = value
                    .try_extract_tensor::<f32>()
                    .map_err(|e| e.to_string())?;
                put_le(&mut scratch.bytes, data, |x| x.to_le_bytes());
                shape
            }
            DType::I64 => {
                let (shape, data) = value
                    .try_extract_tensor::<i64>()
                    .map_err(|e| e.to_string())?;
                put_le(&mut scratch.bytes, data, |x| x.to_le_bytes());
                shape
            }
        };
        scratch
            .dims
            .extend(shape.iter().map(|&d| u64::try_from(d).unwrap_or(0)));
        let fits = spec.accepts(scratch.dims.iter().copied())
            && (!batched || scratch.dims.first() == Some(&total_rows));
        if !fits {
            return Err(format!(
                "output `{}` has shape {}, expected {}{}",
                spec.name,
                fmt_shape(shape.iter()),
                fmt_shape(&spec.shape),
                if batched {
                    format!(" with dim 0 = {total_rows} (the batch)")
                } else {
                    String::new()
                }
            ));
        }
        scratch.row_bytes = if batched && total_rows > 0 {
            scratch.bytes.len() / total_rows as usize
        } else {
            scratch.bytes.len()
        };
    }
    Ok(())
}

/// Sets `bytes` to the little-endian bytes of `data`: sized once, then
/// filled element by element into fixed-size pieces, a loop the compiler
/// vectorises (appending each element's bytes re-checks the length and
/// capacity every time, which it cannot).
fn put_le<T: Copy, const N: usize>(bytes: &mut Vec<u8>, data: &[T], le: impl Fn(T) -> [u8; N]) {
    bytes.clear();
    bytes.resize(data.len() * N, 0);
    for (dst, &x) in bytes.chunks_exact_mut(N).zip(data) {
        dst.copy_from_slice(&le(x));
    }
}

/// Writes each request's result payload from the batch outputs: its rows of
/// every output, or with `argmax` the argmax of its rows of the first.
fn split_outputs(
    entry: &ModelEntry,
    batch: &[(usize, u64)],
    batched: bool,
    run: &mut Run<'_>,
    results: &mut [InferenceResult],
) {
    let specs = &entry.outputs;
    let outputs = &mut *run.outputs;
    let Ok(count) = u16::try_from(specs.len()) else {
        let reason = format!(
            "model `{}` has {} outputs, more than a result can carry (65535)",
            entry.id(),
            specs.len()
        );
        for &(i, _) in batch {
            set(results, i.wrapping_sub(run.offset), Err(reason.clone()));
        }
        return;
    };
    let mut row = 0usize;
    for &(i, rows) in batch {
        let rows_usize = rows as usize;
        let rows_of = |o: &OutputScratch| -> std::ops::Range<usize> {
            if batched {
                row * o.row_bytes..(row + rows_usize) * o.row_bytes
            } else {
                0..o.bytes.len()
            }
        };
        let mut payload = run.payloads.pop().unwrap_or_default();
        payload.clear();
        if run.argmax {
            let first = specs.first().zip(outputs.first());
            let best = first
                .filter(|(spec, _)| spec.dtype == DType::F32)
                .and_then(|(_, o)| abi::argmax_f32_le(o.bytes.get(rows_of(o))?));
            row += rows_usize;
            match best {
                Some(a) => payload.extend_from_slice(&(a as u64).to_le_bytes()),
                None => {
                    run.payloads.push(payload);
                    set(
                        results,
                        i.wrapping_sub(run.offset),
                        Err(abi::ARGMAX_NOT_F32.to_string()),
                    );
                    continue;
                }
            }
            set(results, i.wrapping_sub(run.offset), Ok(payload));
            continue;
        }
        let mut size = 4;
        for (spec, o) in specs.iter().zip(outputs.iter()) {
            size += 8 + 8 * o.dims.len() + spec.name.len() + rows_of(o).len();
        }
        payload.reserve(size);
        abi::write_result_header(&mut payload, count);
        for (spec, o) in specs.iter().zip(outputs.iter_mut()) {
            if batched && let Some(d0) = o.dims.first_mut() {
                *d0 = rows;
            }
            let data = o.bytes.get(rows_of(o)).unwrap_or(&[]);
            abi::write_tensor(
                &mut payload,
                &spec.name,
                spec.dtype.abi_code(),
                &o.dims,
                data,
            );
        }
        row += rows_usize;
        set(results, i.wrapping_sub(run.offset), Ok(payload));
    }
}
