//! A pack: several agents of one group in one sandboxed instance, run by
//! `we_pack_call` (see `we_abi::pack` and [`we_core::PackInstance`]).
//!
//! The members of a call are handed to the guest in chunks of at most
//! [`CHUNK_BYTES`] of buffer (at least one member each), so the exchange
//! buffer stays small whatever the inboxes; each chunk is one metered guest
//! call whose budget is the per-agent budget times its members. The guest
//! closes each member's effects with a `PACK_END` record; `host::emit`
//! checks the order and notes where each member's effects lie. The effects
//! are emitted straight into the caller's [`PackOutputs::effects`], markers
//! and all, and stay there: each member's are handed back as a range.

use crate::host::PackCall;
use crate::instance::{Guest, instantiate_error};
use crate::layout::GuestLayout;
use crate::{Result, SandboxConfig};
use std::sync::Arc;
use wasmer::{Engine, Module, TypedFunction};
use we_abi::pack::{PACK_INIT, PACK_SHUTDOWN, PACK_STEP, PackEntry, PackHeader};
use we_abi::{SplitMix64, exports};
use we_core::hint::prefetch;
use we_core::{
    AgentId, Emitted, FaultKind, ModuleInfo, PackInstance, PackMember, PackOutput, PackOutputs,
    PackPhase, RegionView, Tick,
};

/// Most bytes of exchange buffer one guest call of a pack is given (unless
/// a single member needs more).
pub const CHUNK_BYTES: usize = 256 << 10;

/// A running pack.
pub struct WasmPack {
    guest: Guest,
    f_pack: TypedFunction<(i32, i32), i32>,
    seed: u64,
    slots: u32,
    /// The chunk's effects (the caller's buffer, lent) and unattributed log
    /// lines while the guest runs.
    scratch: Emitted,
    /// Kept between calls for its buffers.
    call_state: PackCall,
    faulted: Option<FaultKind>,
}

impl WasmPack {
    pub(crate) fn new(
        engine: &Engine,
        module: &Module,
        info: &ModuleInfo,
        layout: GuestLayout,
        slots: u32,
        seed: u64,
        config: Arc<SandboxConfig>,
    ) -> Result<Self> {
        // The pack answers the `self_id` import with this marker id: a
        // member's id is in its entry (the SDK never asks the host).
        let pack_id = AgentId::new(u32::MAX);
        let (guest, instance) = Guest::new(engine, module, info, layout, pack_id, seed, config)?;
        let f_pack = instance
            .exports
            .get_typed_function(&guest.store, exports::PACK_CALL)
            .map_err(|e| instantiate_error(info, pack_id, e))?;
        Ok(Self {
            guest,
            f_pack,
            seed,
            slots,
            scratch: Emitted::default(),
            call_state: PackCall::default(),
            faulted: None,
        })
    }

    /// Writes one chunk's buffer into guest memory and runs it; appends its
    /// members' effects to `out.effects` and their outputs to `out.members`
    /// and `out.logs`.
    fn run_chunk(
        &mut self,
        tick: Tick,
        phase: PackPhase<'_>,
        members: &[PackMember<'_>],
        regions: Option<&dyn RegionView>,
        out: &mut PackOutputs,
    ) -> Result<(), FaultKind> {
        let (kind, config, agent_count) = match phase {
            PackPhase::Init {
                config,
                agent_count,
            } => (PACK_INIT, config, agent_count),
            PackPhase::Step => (PACK_STEP, &[][..], 0),
            PackPhase::Shutdown => (PACK_SHUTDOWN, &[][..], 0),
        };
        let body: usize = match phase {
            PackPhase::Step => members.iter().map(|m| m.inbox.len()).sum(),
            _ => config.len(),
        };
        let oob = || FaultKind::OutOfBounds {
            what: exports::BUFFER.to_string(),
        };
        let entries_end = PackHeader::SIZE + members.len() * PackEntry::SIZE;
        let need = entries_end + body;
        let mut fuel = 0;
        let ptr = self.guest.buffer(need, &mut fuel)? as usize;
        {
            let view = self.guest.memory.view(&self.guest.store);
            // SAFETY: no guest code runs while the host writes the buffer
            // (the store is held here), the memory belongs to this instance
            // alone (threads are disabled), and the slice is dropped before
            // the guest is called.
            let data = unsafe { view.data_unchecked_mut() };
            let dst = data.get_mut(ptr..ptr + need).ok_or_else(oob)?;
            let head = PackHeader {
                kind,
                count: members.len() as u32,
                tick: tick.0,
                fuel_per_call: self.guest.fuel_per_call,
                agent_count,
                config_len: config.len() as u32,
            };
            let mut bytes = [0u8; PackHeader::SIZE];
            head.encode(&mut bytes);
            dst[..PackHeader::SIZE].copy_from_slice(&bytes);
            let mut at = entries_end;
            for (k, m) in members.iter().enumerate() {
                // Each inbox is a buffer of its own, last written by the
                // committing thread: start loading the one two ahead.
                if kind == PACK_STEP
                    && let Some(ahead) = members.get(k + 2)
                {
                    prefetch(ahead.inbox.as_ptr());
                }
                let entry = PackEntry {
                    slot: m.slot,
                    agent_id: m.id.index,
                    generation: m.id.generation,
                    group_index: m.group_index,
                    inbox_len: m.inbox_len,
                    inbox_bytes: if kind == PACK_STEP {
                        m.inbox.len() as u32
                    } else {
                        0
                    },
                    refused: m.refused,
                    rng_state: if kind == PACK_INIT {
                        SplitMix64::for_agent(self.seed, m.id.index, m.id.generation).state()
                    } else {
                        0
                    },
                };
                let mut e = [0u8; PackEntry::SIZE];
                entry.encode(&mut e);
                let off = PackHeader::SIZE + k * PackEntry::SIZE;
                dst[off..off + PackEntry::SIZE].copy_from_slice(&e);
                if kind == PACK_STEP {
                    dst[at..at + m.inbox.len()].copy_from_slice(m.inbox);
                    at += m.inbox.len();
                }
            }
            if kind == PACK_INIT {
                dst[entries_end..].copy_from_slice(config);
            }
        }
        let mut call = std::mem::take(&mut self.call_state);
        call.slots.clear();
        call.slots.extend(members.iter().map(|m| m.slot));
        call.ends.clear();
        call.logs.clear();
        call.base = out.effects.len();
        let base = call.base;
        self.guest.env.as_mut(&mut self.guest.store).pack = Some(call);
        self.scratch.clear();
        let mut scratch = std::mem::take(&mut self.scratch);
        // The guest emits straight into the caller's buffer.
        std::mem::swap(&mut scratch.effects, &mut out.effects);
        self.guest.enter(tick, regions, &mut scratch);
        let f = self.f_pack.clone();
        let budget = self
            .guest
            .fuel_per_call
            .saturating_mul(members.len() as u64);
        let result = self.guest.metered(budget, &mut fuel, |store| {
            f.call(store, ptr as i32, need as i32)
        });
        self.guest.leave(&mut scratch);
        std::mem::swap(&mut scratch.effects, &mut out.effects);
        let mut call = self
            .guest
            .env
            .as_mut(&mut self.guest.store)
            .pack
            .take()
            .unwrap_or_default();
        let outcome = match result {
            Err(kind) => Err(kind),
            Ok(we_abi::STATUS_OK) if call.ends.len() == members.len() => {
                Self::hand_out(&mut scratch, &mut call, out, fuel);
                Ok(())
            }
            Ok(we_abi::STATUS_OK) => Err(FaultKind::MalformedEffects {
                offset: out.effects.len().saturating_sub(base) as u32,
            }),
            Ok(code) => Err(FaultKind::ErrorCode(code)),
        };
        self.scratch = scratch;
        self.call_state = call;
        outcome
    }

    /// Hands each member of a chunk its effects' range, log lines and status.
    fn hand_out(all: &mut Emitted, call: &mut PackCall, out: &mut PackOutputs, fuel: u64) {
        let first = out.members.len();
        for (k, (range, status)) in call.ends.iter().enumerate() {
            out.members.push(PackOutput {
                effects: range.clone(),
                fuel_used: if k == 0 { fuel } else { 0 },
                status: *status,
            });
        }
        // Lines the host could not attribute (a marker line about dropped
        // lines) go to the chunk's first member, ahead of its own.
        out.logs.extend(all.log.drain(..).map(|line| (first, line)));
        out.logs.extend(
            call.logs
                .drain(..)
                .map(|(member, line)| (first + member, line)),
        );
    }
}

impl PackInstance for WasmPack {
    fn call(
        &mut self,
        tick: Tick,
        phase: PackPhase<'_>,
        members: &[PackMember<'_>],
        regions: Option<&dyn RegionView>,
        out: &mut PackOutputs,
    ) -> Result<(), FaultKind> {
        out.members.clear();
        out.logs.clear();
        if let Some(kind) = &self.faulted {
            return Err(kind.clone());
        }
        if members.iter().any(|m| m.slot >= self.slots) {
            return Err(FaultKind::OutOfBounds {
                what: exports::PACK_CALL.to_string(),
            });
        }
        let base = out.effects.len();
        let fixed = match phase {
            PackPhase::Init { config, .. } => PackHeader::SIZE + config.len(),
            _ => PackHeader::SIZE,
        };
        let mut first = 0;
        while first < members.len() {
            // As many members as fit in a chunk, at least one.
            let mut bytes = fixed;
            let mut end = first;
            while end < members.len() {
                let more = PackEntry::SIZE
                    + match phase {
                        PackPhase::Step => members[end].inbox.len(),
                        _ => 0,
                    };
                if end > first && bytes + more > CHUNK_BYTES {
                    break;
                }
                bytes += more;
                end += 1;
            }
            let chunk = &members[first..end];
            if let Err(kind) = self.run_chunk(tick, phase, chunk, regions, out) {
                self.faulted = Some(kind.clone());
                out.effects.truncate(base);
                out.members.clear();
                out.logs.clear();
                return Err(kind);
            }
            first = end;
        }
        Ok(())
    }

    fn memory_bytes(&self) -> u64 {
        self.guest.memory_bytes()
    }
}
