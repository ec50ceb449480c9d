//! The host functions of ABI v1 and the import/export checks done at load.
//!
//! Every host function that takes a pointer checks the whole range against the
//! guest's current memory before touching it. A bad range, a malformed effect
//! batch or an exceeded budget records the fault kind in the agent's
//! [`HostEnv`] and traps the call; the instance classifies the trap from there.

use crate::{Error, Result, SandboxConfig};
use std::sync::Arc;
use wasmer::{ExternType, FunctionEnvMut, Memory, MemoryView, Module, Type};
use we_abi::{EffectHeader, Records, SplitMix64, ValType, op};
use we_core::{AgentId, Capabilities, FaultKind, LogLine, RegionView};

/// Per-agent state the host functions see.
pub(crate) struct HostEnv {
    pub memory: Option<Memory>,
    pub agent: AgentId,
    pub tick: u64,
    pub rng: SplitMix64,
    pub effects: Vec<u8>,
    pub log: Vec<LogLine>,
    pub log_dropped: u32,
    /// Regions visible during the current call. Set just before a guest call
    /// and cleared right after it, so the erased lifetime never outlives the
    /// borrow it came from (see `WasmAgent::call`).
    pub regions: Option<&'static dyn RegionView>,
    /// The fault a host function detected before trapping.
    pub fault: Option<FaultKind>,
    /// Set during a guest call of a pack (see `crate::pack`).
    pub pack: Option<PackCall>,
    pub config: Arc<SandboxConfig>,
}

/// The host's side of one guest call of a pack: which members it runs and
/// where each one's effects end.
#[derive(Debug, Default)]
pub(crate) struct PackCall {
    /// Slots of the members of this guest call, in order.
    pub slots: Vec<u32>,
    /// Length of `HostEnv::effects` when the call began: its effects are
    /// appended after what earlier calls left there.
    pub base: usize,
    /// Per member whose `PACK_END` has arrived: where its effects lie in
    /// `HostEnv::effects` (from just after the previous member's marker to
    /// its own; the markers stay in the buffer) and its status.
    pub ends: Vec<(std::ops::Range<usize>, i32)>,
    /// Log lines with the index of the member that wrote them.
    pub logs: Vec<(usize, LogLine)>,
}

/// The error a host function returns to trap the guest; the fault itself is in
/// [`HostEnv::fault`].
#[derive(Debug, thiserror::Error)]
#[error("host function refused the call: {0}")]
pub(crate) struct HostTrap(pub FaultKind);

fn fault(env: &mut HostEnv, kind: FaultKind) -> HostTrap {
    env.fault = Some(kind.clone());
    HostTrap(kind)
}

/// Checks `ptr..ptr+len` against the guest memory; returns it as `u64` offsets.
fn guest_range(
    env: &mut HostEnv,
    store: &impl wasmer::AsStoreRef,
    what: &str,
    ptr: i32,
    len: i32,
) -> Result<(u64, usize), HostTrap> {
    let size = env
        .memory
        .as_ref()
        .map(|m| m.view(store).data_size())
        .unwrap_or(0);
    checked_range(env, size, what, ptr, len)
}

/// Checks `ptr..ptr+len` against a guest memory of `size` bytes.
fn checked_range(
    env: &mut HostEnv,
    size: u64,
    what: &str,
    ptr: i32,
    len: i32,
) -> Result<(u64, usize), HostTrap> {
    let ok = ptr >= 0 && len >= 0 && (ptr as u64) + (len as u64) <= size;
    if ok {
        Ok((ptr as u64, len as usize))
    } else {
        Err(fault(
            env,
            FaultKind::OutOfBounds {
                what: what.to_string(),
            },
        ))
    }
}

/// Copies guest memory at `offset` into `dst`; `Err` if out of range.
///
/// A plain copy of the memory's bytes: wasmer's `MemoryView::read` copies
/// byte by byte with volatile accesses, which dominated the cost of a call.
#[inline]
pub(crate) fn read_guest(view: &MemoryView<'_>, offset: u64, dst: &mut [u8]) -> Result<(), ()> {
    with_guest(view, offset, dst.len(), |src| dst.copy_from_slice(src))
}

/// Appends `len` bytes of guest memory at `offset` to `dst` (no zero fill
/// first, as reading into a resized buffer would do); `Err`, and `dst`
/// unchanged, if out of range.
#[inline]
pub(crate) fn append_guest(
    view: &MemoryView<'_>,
    offset: u64,
    len: usize,
    dst: &mut Vec<u8>,
) -> Result<(), ()> {
    with_guest(view, offset, len, |src| dst.extend_from_slice(src))
}

/// Calls `f` on the `len` bytes of guest memory at `offset`; `Err` if out of
/// range.
#[inline]
fn with_guest(
    view: &MemoryView<'_>,
    offset: u64,
    len: usize,
    f: impl FnOnce(&[u8]),
) -> Result<(), ()> {
    // SAFETY: the guest is not running concurrently: this runs either between
    // export calls (the caller holds the store) or inside a host call, while
    // the guest waits for it; the memory is never shared with another thread
    // or instance (threads are disabled). The slice lives only for `f`, which
    // cannot keep it.
    let data = unsafe { view.data_unchecked() };
    let start = usize::try_from(offset).map_err(|_| ())?;
    let end = start.checked_add(len).ok_or(())?;
    f(data.get(start..end).ok_or(())?);
    Ok(())
}

/// Copies `src` into guest memory at `offset`; `Err` if out of range.
#[inline]
pub(crate) fn write_guest(view: &MemoryView<'_>, offset: u64, src: &[u8]) -> Result<(), ()> {
    // SAFETY: as in `read_guest`: no guest code runs during the copy, the
    // memory is not shared, and no other reference to it is alive meanwhile.
    let data = unsafe { view.data_unchecked_mut() };
    let start = usize::try_from(offset).map_err(|_| ())?;
    let end = start.checked_add(src.len()).ok_or(())?;
    data.get_mut(start..end).ok_or(())?.copy_from_slice(src);
    Ok(())
}

pub(crate) fn tick(env: FunctionEnvMut<HostEnv>) -> i64 {
    env.data().tick as i64
}

pub(crate) fn self_id(env: FunctionEnvMut<HostEnv>) -> i32 {
    env.data().agent.index as i32
}

pub(crate) fn rand_u64(mut env: FunctionEnvMut<HostEnv>) -> i64 {
    env.data_mut().rng.next_u64() as i64
}

pub(crate) fn emit(mut env: FunctionEnvMut<HostEnv>, ptr: i32, len: i32) -> Result<i32, HostTrap> {
    let (data, store) = env.data_and_store_mut();
    // One view for the range check and the copy.
    let memory = data.memory.clone();
    let view = memory.as_ref().map(|m| m.view(&store));
    let size = view.as_ref().map_or(0, |v| v.data_size());
    let (offset, len) = checked_range(data, size, "emit", ptr, len)?;
    let start = data.effects.len();
    let base = data.pack.as_ref().map_or(0, |p| p.base.min(start));
    let members = data.pack.as_ref().map_or(1, |p| p.slots.len().max(1));
    // Each member's effects, and its `PACK_END` marker in a pack call.
    let marker = if data.pack.is_some() {
        EffectHeader::SIZE
    } else {
        0
    };
    let limit = (data.config.effect_bytes_max as usize).saturating_add(marker);
    if start - base + len > limit.saturating_mul(members) {
        return Err(fault(data, FaultKind::EffectLimit));
    }
    let read = match &view {
        Some(view) => append_guest(view, offset, len, &mut data.effects),
        // No memory: zero bytes, as the guest's view would be.
        None => {
            data.effects.resize(start + len, 0);
            Ok(())
        }
    };
    if read.is_err() {
        data.effects.truncate(start);
        return Err(fault(
            data,
            FaultKind::OutOfBounds {
                what: "emit".to_string(),
            },
        ));
    }
    let checked = match data.pack.as_mut() {
        None => validate_effects(&data.effects[start..], &data.config),
        Some(pack) => split_pack_effects(&data.effects, start, pack, &data.config),
    };
    if let Err(kind) = checked {
        data.effects.truncate(start);
        return Err(fault(data, kind));
    }
    Ok(we_abi::STATUS_OK)
}

/// Checks one effect record's header: a known op, zero flags, a payload
/// only where the op has one, within the message limit.
fn check_effect(
    header: &EffectHeader,
    offset: u32,
    config: &SandboxConfig,
) -> Result<(), FaultKind> {
    if header.op == 0 || header.op > op::MAX || header.flags != 0 {
        return Err(FaultKind::MalformedEffects { offset });
    }
    let payload_allowed = match header.op {
        op::SEND | op::PUBLISH | op::INFER | op::REGION_WRITE => true,
        _ => header.len == 0,
    };
    if !payload_allowed {
        return Err(FaultKind::MalformedEffects { offset });
    }
    if header.len > config.message_bytes_max {
        return Err(FaultKind::MessageTooLarge { len: header.len });
    }
    Ok(())
}

/// Checks a batch of effect records: whole records, each passing
/// [`check_effect`]. The runtime's commit relies on this.
pub(crate) fn validate_effects(batch: &[u8], config: &SandboxConfig) -> Result<(), FaultKind> {
    let mut records = Records::new(batch);
    loop {
        let offset = records.offset() as u32;
        let Some(next) = records.next() else {
            return Ok(());
        };
        let (header, _payload) = next.map_err(|_| FaultKind::MalformedEffects { offset })?;
        let header = EffectHeader::decode(header).ok_or(FaultKind::MalformedEffects { offset })?;
        check_effect(&header, offset, config)?;
    }
}

/// A pack's batch, appended to `effects` at `start`: checks every record as
/// [`validate_effects`] does, checks the `PACK_END` markers (each must name
/// the next member's slot, in order) and records where each member's effects
/// lie between them; a member over the per-agent effect limit faults the
/// pack. The markers stay where they are: each member's effects are copied
/// out of the buffer once, by range, so moving the rest up over each marker
/// would be a second copy.
fn split_pack_effects(
    effects: &[u8],
    start: usize,
    pack: &mut PackCall,
    config: &SandboxConfig,
) -> Result<(), FaultKind> {
    let mut read = start;
    while read < effects.len() {
        let offset = (read - start) as u32;
        let malformed = FaultKind::MalformedEffects { offset };
        let (size, header) = match Records::new(&effects[read..]).next() {
            Some(Ok((header, payload))) => {
                let header = EffectHeader::decode(header).ok_or(malformed.clone())?;
                (EffectHeader::SIZE + we_abi::pad(payload.len()), header)
            }
            _ => return Err(malformed),
        };
        if header.op == op::PACK_END {
            let expected = pack.slots.get(pack.ends.len()).copied();
            if header.flags != 0 || header.len != 0 || expected != Some(header.target) {
                return Err(malformed);
            }
            let begin = pack
                .ends
                .last()
                .map_or(pack.base, |(r, _)| r.end + EffectHeader::SIZE);
            if read.saturating_sub(begin) > config.effect_bytes_max as usize {
                return Err(FaultKind::EffectLimit);
            }
            pack.ends.push((begin..read, header.aux as i32));
        } else {
            check_effect(&header, offset, config)?;
        }
        read += size;
    }
    Ok(())
}

pub(crate) fn log(
    mut env: FunctionEnvMut<HostEnv>,
    level: i32,
    ptr: i32,
    len: i32,
) -> Result<i32, HostTrap> {
    let (data, store) = env.data_and_store_mut();
    let (offset, len) = guest_range(data, &store, "log", ptr, len)?;
    // In a pack call the level's bits 8 and up name the writer's slot + 1;
    // a line whose writer is not among the call's members goes to the
    // member running now.
    let mut level = level;
    let writer = data.pack.as_ref().map(|pack| {
        let slot = ((level as u32) >> 8).wrapping_sub(1);
        level &= 0xff;
        pack.slots
            .binary_search(&slot)
            .unwrap_or(pack.ends.len().min(pack.slots.len().saturating_sub(1)))
    });
    let (lines, members) = match &data.pack {
        Some(pack) => (pack.logs.len(), pack.slots.len().max(1)),
        None => (data.log.len(), 1),
    };
    if lines >= (data.config.log_lines_max as usize).saturating_mul(members) {
        data.log_dropped = data.log_dropped.saturating_add(1);
        return Ok(we_abi::STATUS_OK);
    }
    let keep = len.min(data.config.log_line_bytes_max as usize);
    let mut bytes = vec![0u8; keep];
    if let Some(memory) = data.memory.as_ref()
        && read_guest(&memory.view(&store), offset, &mut bytes).is_err()
    {
        return Err(fault(
            data,
            FaultKind::OutOfBounds {
                what: "log".to_string(),
            },
        ));
    }
    let mut text = String::from_utf8_lossy(&bytes).into_owned();
    if keep < len {
        text.push_str(" [cut]");
    }
    match (writer, data.pack.as_mut()) {
        (Some(member), Some(pack)) => pack.logs.push((member, LogLine { level, text })),
        _ => data.log.push(LogLine { level, text }),
    }
    Ok(we_abi::STATUS_OK)
}

pub(crate) fn region_len(env: FunctionEnvMut<HostEnv>, region: i32) -> i32 {
    let data = env.data();
    match data.regions {
        Some(view) if region >= 0 => view.region_len(data.agent, region as u32),
        _ => we_abi::REGION_STALE,
    }
}

pub(crate) fn region_read(
    mut env: FunctionEnvMut<HostEnv>,
    region: i32,
    offset: i32,
    dst: i32,
    len: i32,
) -> Result<i32, HostTrap> {
    let (data, store) = env.data_and_store_mut();
    let (dst, len) = guest_range(data, &store, "region_read", dst, len)?;
    let (Some(view), true) = (data.regions, region >= 0 && offset >= 0) else {
        return Ok(we_abi::REGION_STALE);
    };
    let mut scratch = vec![0u8; len];
    let n = view.region_read(data.agent, region as u32, offset as u32, &mut scratch);
    if n > 0
        && let Some(memory) = data.memory.as_ref()
        && write_guest(&memory.view(&store), dst, &scratch[..n as usize]).is_err()
    {
        return Err(fault(
            data,
            FaultKind::OutOfBounds {
                what: "region_read".to_string(),
            },
        ));
    }
    Ok(n)
}

fn to_type(v: ValType) -> Type {
    match v {
        ValType::I32 => Type::I32,
        ValType::I64 => Type::I64,
    }
}

fn signature_text(params: &[Type], results: &[Type]) -> String {
    format!("{params:?} -> {results:?}")
}

/// Reads and parses the module's capability declaration (the custom section
/// [`we_core::CAPABILITIES_SECTION`]); none means nothing is declared. `bytes`
/// is a module the validator accepted.
pub(crate) fn read_capabilities(name: &str, bytes: &[u8]) -> Result<Capabilities> {
    let bad = |reason: String| Error::Capabilities {
        module: name.to_string(),
        reason,
    };
    let sections = we_sign::custom_sections(name, bytes, we_core::CAPABILITIES_SECTION)
        .map_err(|e| bad(e.to_string()))?;
    let first = match sections.as_slice() {
        [] => return Ok(Capabilities::default()),
        [one] => *one,
        _ => {
            return Err(bad(format!(
                "more than one `{}` section",
                we_core::CAPABILITIES_SECTION
            )));
        }
    };
    let text = std::str::from_utf8(first).map_err(|e| bad(format!("not UTF-8: {e}")))?;
    Capabilities::parse(text).map_err(|e| bad(e.to_string()))
}

/// Refuses a module importing a host function it does not declare.
pub(crate) fn check_declared(name: &str, module: &Module, caps: &Capabilities) -> Result<()> {
    for import in module.imports() {
        if !caps.allows_host(import.name()) {
            return Err(Error::UndeclaredImport {
                module: name.to_string(),
                name: import.name().to_string(),
                declared: if caps.host.is_empty() {
                    "(none)".to_string()
                } else {
                    caps.host.join(" ")
                },
            });
        }
    }
    Ok(())
}

/// Checks every import against ABI v1; returns them as `module.name`.
pub(crate) fn check_imports(name: &str, module: &Module) -> Result<Vec<String>> {
    let mut found = Vec::new();
    for import in module.imports() {
        let known = || {
            we_abi::imports::SIGNATURES
                .iter()
                .map(|s| s.name)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let sig = (import.module() == we_abi::IMPORT_MODULE)
            .then(|| {
                we_abi::imports::SIGNATURES
                    .iter()
                    .find(|s| s.name == import.name())
            })
            .flatten();
        let Some(sig) = sig else {
            return Err(Error::UnknownImport {
                module: name.to_string(),
                import_module: import.module().to_string(),
                name: import.name().to_string(),
                known: known(),
            });
        };
        let params: Vec<Type> = sig.params.iter().map(|&v| to_type(v)).collect();
        let results: Vec<Type> = sig.results.iter().map(|&v| to_type(v)).collect();
        let matches = match import.ty() {
            ExternType::Function(f) => f.params() == params && f.results() == results,
            _ => false,
        };
        if !matches {
            return Err(Error::ImportType {
                module: name.to_string(),
                name: import.name().to_string(),
                found: format!("{:?}", import.ty()),
                expected: signature_text(&params, &results),
            });
        }
        found.push(format!("{}.{}", import.module(), import.name()));
    }
    Ok(found)
}

/// Whether the module exports `we_pack_call` with its ABI type.
pub(crate) fn exports_pack_call(module: &Module) -> bool {
    exports_function(module, &we_abi::exports::PACK_CALL_SIGNATURE)
}

/// Whether the module exports the function `sig` names, with its exact type.
fn exports_function(module: &Module, sig: &we_abi::Signature) -> bool {
    let params: Vec<Type> = sig.params.iter().map(|&v| to_type(v)).collect();
    let results: Vec<Type> = sig.results.iter().map(|&v| to_type(v)).collect();
    module.exports().any(|e| {
        e.name() == sig.name
            && matches!(e.ty(), ExternType::Function(f) if f.params() == params && f.results() == results)
    })
}

/// Checks that every ABI export exists with its exact type, and the memory.
pub(crate) fn check_exports(name: &str, module: &Module) -> Result<()> {
    for sig in we_abi::exports::SIGNATURES {
        if !exports_function(module, &sig) {
            let params: Vec<Type> = sig.params.iter().map(|&v| to_type(v)).collect();
            let results: Vec<Type> = sig.results.iter().map(|&v| to_type(v)).collect();
            return Err(Error::MissingExport {
                module: name.to_string(),
                export: sig.name.to_string(),
                expected: signature_text(&params, &results),
            });
        }
    }
    let has_memory = module
        .exports()
        .any(|e| e.name() == we_abi::exports::MEMORY && matches!(e.ty(), ExternType::Memory(_)));
    if !has_memory {
        return Err(Error::MissingExport {
            module: name.to_string(),
            export: we_abi::exports::MEMORY.to_string(),
            expected: "a linear memory".to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(op: u16, target: u32, aux: u32, payload: &[u8]) -> Vec<u8> {
        let header = EffectHeader {
            op,
            flags: 0,
            target,
            aux,
            len: payload.len() as u32,
        };
        let mut out = Vec::new();
        we_abi::write_record(&mut out, header.encode(), payload);
        out
    }

    fn pack_of(slots: &[u32]) -> PackCall {
        PackCall {
            slots: slots.to_vec(),
            ..PackCall::default()
        }
    }

    #[test]
    fn pack_effects_are_split_at_the_markers_which_are_taken_out() {
        let config = SandboxConfig::default();
        let send = record(op::SEND, 4, 0, &7u64.to_le_bytes());
        let join = record(op::JOIN, 2, 0, &[]);
        let mut batch = Vec::new();
        batch.extend_from_slice(&send);
        batch.extend_from_slice(&record(op::PACK_END, 3, 0, &[]));
        batch.extend_from_slice(&record(op::PACK_END, 5, (-9i32) as u32, &[]));
        batch.extend_from_slice(&join);
        batch.extend_from_slice(&send);
        batch.extend_from_slice(&record(op::PACK_END, 8, 0, &[]));
        // Earlier effects of the call (another emit) stay in front.
        let mut effects = b"earlier!".to_vec();
        effects.extend_from_slice(&batch);
        let mut pack = pack_of(&[3, 5, 8]);
        split_pack_effects(&effects, 8, &mut pack, &config).unwrap();
        let mut expected = b"earlier!".to_vec();
        expected.extend_from_slice(&send);
        expected.extend_from_slice(&join);
        expected.extend_from_slice(&send);
        let m = EffectHeader::SIZE;
        let a = 8 + send.len();
        let b = a + 2 * m + join.len() + send.len();
        assert_eq!(
            pack.ends,
            vec![(0..a, 0), (a + m..a + m, -9), (a + 2 * m..b, 0)]
        );
        // Each range holds the member's effects and no marker.
        let taken: Vec<u8> = pack
            .ends
            .iter()
            .flat_map(|(r, _)| effects[r.clone()].iter().copied())
            .collect();
        assert_eq!(taken, expected);
        // The same bytes after an earlier call's effects: the first member's
        // range begins where this call began.
        let mut pack = PackCall {
            base: 8,
            ..pack_of(&[3, 5, 8])
        };
        split_pack_effects(&effects, 8, &mut pack, &config).unwrap();
        assert_eq!(
            pack.ends,
            vec![(8..a, 0), (a + m..a + m, -9), (a + 2 * m..b, 0)]
        );
    }

    #[test]
    fn bad_pack_markers_are_malformed_effects() {
        let config = SandboxConfig::default();
        let check = |batch: Vec<u8>, slots: &[u32]| {
            split_pack_effects(&batch, 0, &mut pack_of(slots), &config)
        };
        // Out of order, a slot not in the call, a marker with a payload,
        // more markers than members.
        let two = [
            record(op::PACK_END, 2, 0, &[]),
            record(op::PACK_END, 1, 0, &[]),
        ]
        .concat();
        assert!(matches!(
            check(two, &[1, 2]),
            Err(FaultKind::MalformedEffects { offset: 0 })
        ));
        assert!(check(record(op::PACK_END, 9, 0, &[]), &[1]).is_err());
        assert!(check(record(op::PACK_END, 1, 0, b"x"), &[1]).is_err());
        let extra = [
            record(op::PACK_END, 1, 0, &[]),
            record(op::PACK_END, 1, 0, &[]),
        ]
        .concat();
        assert!(matches!(
            check(extra, &[1]),
            Err(FaultKind::MalformedEffects { offset: 16 })
        ));
        // Outside a pack call the marker is no effect at all.
        assert!(validate_effects(&record(op::PACK_END, 1, 0, &[]), &config).is_err());
    }

    #[test]
    fn each_member_is_held_to_the_effect_limit() {
        let config = SandboxConfig {
            effect_bytes_max: 48,
            ..SandboxConfig::default()
        };
        let send = record(op::SEND, 4, 0, &7u64.to_le_bytes());
        // Two sends (48 bytes) each for two members: within the limit.
        let ok = [
            &send[..],
            &send,
            &record(op::PACK_END, 0, 0, &[]),
            &send,
            &send,
            &record(op::PACK_END, 1, 0, &[]),
        ]
        .concat();
        split_pack_effects(&ok, 0, &mut pack_of(&[0, 1]), &config).unwrap();
        // Three for one member: over.
        let effects = [&send[..], &send, &send, &record(op::PACK_END, 0, 0, &[])].concat();
        assert_eq!(
            split_pack_effects(&effects, 0, &mut pack_of(&[0, 1]), &config),
            Err(FaultKind::EffectLimit)
        );
    }
}
