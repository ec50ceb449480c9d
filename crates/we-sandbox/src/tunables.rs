//! Tunables that cap each agent's linear memory and choose how it is reserved.
//!
//! The cap is applied by lowering the memory's declared maximum to
//! `memory_pages_max` before the memory is created, so `memory.grow` past the
//! cap returns -1 inside the guest, exactly as the WebAssembly spec says a
//! failed grow does; nothing else changes, so the behaviour is deterministic.
//!
//! Dynamic memories are [`ReservedMemory`]: the capped size is mapped once,
//! read-write, as a single mapping, and `memory.grow` only moves the logical
//! length; generated code bounds-checks every access against that length.
//! Nothing is copied on a grow, only touched pages become resident, and
//! neighbouring mappings merge into few kernel VMAs, so 100,000 agents fit in
//! one process under the default `vm.max_map_count` of 65,530.

use std::cell::UnsafeCell;
use std::ptr::NonNull;
use wasmer::sys::Tunables;
use wasmer::sys::vm::{
    LinearMemory, MaybeInstanceOwned, MemoryError, MemoryStyle, Mmap, MmapType, TableStyle,
    VMConfig, VMMemory, VMMemoryDefinition, VMTable, VMTableDefinition,
};
use wasmer::{MemoryType, Pages, TableType};

/// How linear memories are reserved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryStyleChoice {
    /// Reserve the whole 4 GiB space plus guard pages per instance: no bounds
    /// checks in generated code, but about 8 GiB of address space per agent,
    /// which limits a process to roughly 15,000 agents.
    Static,
    /// Map the capped size once (read-write, one mapping), grow in place with
    /// explicit bounds checks against the current length: only touched pages
    /// are resident and a grow copies nothing; scales to hundreds of thousands
    /// of agents.
    Dynamic,
}

/// Largest table an agent may have, in elements; `table.grow` past it fails.
pub const TABLE_ELEMENTS_MAX: u32 = 65_536;

/// Guard bytes after a dynamic memory: none, every access is bounds-checked
/// in full, because the bytes past the current length are mapped read-write
/// (see [`ReservedMemory`]) and must not be reachable.
const DYNAMIC_GUARD_BYTES: u64 = 0;

/// wasmer tunables with a memory cap.
pub struct LimitingTunables {
    limit: Pages,
    style: MemoryStyleChoice,
    vmconfig: VMConfig,
}

impl LimitingTunables {
    /// Caps memories at `pages_max` pages, reserved in `style`.
    pub fn new(pages_max: u32, style: MemoryStyleChoice) -> Self {
        Self {
            limit: Pages(pages_max),
            style,
            vmconfig: VMConfig {
                wasm_stack_size: None,
            },
        }
    }

    /// The memory type with its maximum lowered to the cap.
    fn adjust(&self, requested: &MemoryType) -> MemoryType {
        let mut adjusted = *requested;
        let max = requested.maximum.unwrap_or(self.limit);
        adjusted.maximum = Some(if max > self.limit { self.limit } else { max });
        adjusted
    }

    /// Whether memories of `style` are [`ReservedMemory`]: the dynamic style
    /// without guard bytes, as [`Tunables::memory_style`] gives it.
    fn reserved(&self, style: &MemoryStyle) -> bool {
        self.style == MemoryStyleChoice::Dynamic
            && matches!(
                style,
                MemoryStyle::Dynamic {
                    offset_guard_size: 0
                }
            )
    }

    /// Refuses a memory whose minimum is already above the cap.
    fn validate(&self, ty: &MemoryType) -> Result<(), MemoryError> {
        if ty.minimum > self.limit {
            return Err(MemoryError::Generic(format!(
                "memory minimum of {} pages exceeds the cap of {} pages",
                ty.minimum.0, self.limit.0
            )));
        }
        Ok(())
    }
}

impl Tunables for LimitingTunables {
    fn memory_style(&self, _memory: &MemoryType) -> MemoryStyle {
        match self.style {
            MemoryStyleChoice::Static => MemoryStyle::Static,
            MemoryStyleChoice::Dynamic => MemoryStyle::Dynamic {
                offset_guard_size: DYNAMIC_GUARD_BYTES,
            },
        }
    }

    fn table_style(&self, _table: &TableType) -> TableStyle {
        TableStyle::CallerChecksSignature
    }

    fn create_host_memory(
        &self,
        ty: &MemoryType,
        style: &MemoryStyle,
    ) -> Result<VMMemory, MemoryError> {
        let adjusted = self.adjust(ty);
        self.validate(&adjusted)?;
        if self.reserved(style) {
            let memory = ReservedMemory::new(adjusted, *style, None)?;
            return Ok(VMMemory(Box::new(memory)));
        }
        VMMemory::new(&adjusted, style)
    }

    unsafe fn create_vm_memory(
        &self,
        ty: &MemoryType,
        style: &MemoryStyle,
        vm_definition_location: NonNull<VMMemoryDefinition>,
    ) -> Result<VMMemory, MemoryError> {
        let adjusted = self.adjust(ty);
        self.validate(&adjusted)?;
        if self.reserved(style) {
            let memory = ReservedMemory::new(adjusted, *style, Some(vm_definition_location))?;
            return Ok(VMMemory(Box::new(memory)));
        }
        // SAFETY: the caller (wasmer's instantiation) guarantees that
        // `vm_definition_location` points to the memory definition slot inside
        // the instance's VMContext; we only forward it with a lowered maximum.
        unsafe { VMMemory::from_definition(&adjusted, style, vm_definition_location) }
    }

    fn create_host_table(&self, ty: &TableType, style: &TableStyle) -> Result<VMTable, String> {
        VMTable::new(&cap_table(ty)?, style)
    }

    unsafe fn create_vm_table(
        &self,
        ty: &TableType,
        style: &TableStyle,
        vm_definition_location: NonNull<VMTableDefinition>,
    ) -> Result<VMTable, String> {
        // SAFETY: forwarded unchanged from wasmer's instantiation, which
        // guarantees the location is the table slot of the instance's VMContext.
        unsafe { VMTable::from_definition(&cap_table(ty)?, style, vm_definition_location) }
    }

    fn vmconfig(&self) -> &VMConfig {
        &self.vmconfig
    }
}

/// The table type with its maximum lowered to [`TABLE_ELEMENTS_MAX`].
fn cap_table(ty: &TableType) -> Result<TableType, String> {
    if ty.minimum > TABLE_ELEMENTS_MAX {
        return Err(format!(
            "table minimum of {} elements exceeds the cap of {TABLE_ELEMENTS_MAX}",
            ty.minimum
        ));
    }
    let mut capped = *ty;
    capped.maximum = Some(
        ty.maximum
            .unwrap_or(TABLE_ELEMENTS_MAX)
            .min(TABLE_ELEMENTS_MAX),
    );
    Ok(capped)
}

/// A linear memory whose whole capped size is mapped once, read-write, and
/// which grows in place by moving its logical length.
///
/// Sound only with [`MemoryStyle::Dynamic`] and no guard bytes: the generated
/// code then checks every access (offset and width included) against
/// `current_length`, and host access goes through the same length, so the
/// mapped bytes past it are never reached. They are fresh anonymous pages,
/// zero when a grow exposes them, as the spec requires, and they cost no
/// resident memory until touched.
#[derive(Debug)]
pub struct ReservedMemory {
    mmap: Mmap,
    /// The memory type, maximum lowered to the cap; `minimum` is the initial size.
    ty: MemoryType,
    style: MemoryStyle,
    /// Current size.
    size: Pages,
    definition: MaybeInstanceOwned<VMMemoryDefinition>,
}

// SAFETY: the memory owns its mapping; the definition it points to is either
// owned (boxed) or the slot in its instance's VMContext, which wasmer moves
// between threads together with the instance's store, never concurrently;
// wasmer's own `VMOwnedMemory` is Send and Sync on the same grounds.
unsafe impl Send for ReservedMemory {}
// SAFETY: see `Send`: no method mutates through `&self`.
unsafe impl Sync for ReservedMemory {}

impl ReservedMemory {
    /// Maps `ty`'s maximum (already capped) and exposes its minimum. With
    /// `location`, the definition lives in the instance's VMContext slot.
    fn new(
        ty: MemoryType,
        style: MemoryStyle,
        location: Option<NonNull<VMMemoryDefinition>>,
    ) -> Result<Self, MemoryError> {
        let maximum = ty.maximum.unwrap_or(ty.minimum).max(ty.minimum);
        let reserve = maximum.bytes().0;
        let mut mmap = Mmap::accessible_reserved(reserve, reserve, None, MmapType::Private)
            .map_err(MemoryError::Region)?;
        let definition = VMMemoryDefinition {
            base: mmap.as_mut_ptr(),
            current_length: ty.minimum.bytes().0,
        };
        let definition = match location {
            Some(mut slot) => {
                // SAFETY: wasmer's instantiation passes the memory definition
                // slot of the instance's VMContext, valid and unaliased while
                // the memory is being created and for the instance's life.
                unsafe { *slot.as_mut() = definition };
                MaybeInstanceOwned::Instance(slot)
            }
            None => MaybeInstanceOwned::Host(Box::new(UnsafeCell::new(definition))),
        };
        Ok(Self {
            mmap,
            size: ty.minimum,
            ty,
            style,
            definition,
        })
    }

    fn maximum(&self) -> Pages {
        self.ty
            .maximum
            .unwrap_or(self.ty.minimum)
            .max(self.ty.minimum)
    }
}

impl LinearMemory for ReservedMemory {
    fn ty(&self) -> MemoryType {
        let mut ty = self.ty;
        ty.minimum = self.size;
        ty
    }

    fn size(&self) -> Pages {
        self.size
    }

    fn style(&self) -> MemoryStyle {
        self.style
    }

    fn grow(&mut self, delta: Pages) -> Result<Pages, MemoryError> {
        let previous = self.size;
        let refused = MemoryError::CouldNotGrow {
            current: previous,
            attempted_delta: delta,
        };
        let new = previous.checked_add(delta).ok_or(refused.clone())?;
        if new > self.maximum() || new.bytes().0 > self.mmap.len() {
            return Err(refused);
        }
        self.size = new;
        // SAFETY: the definition is ours or our instance's slot (see `new`);
        // wasmer calls `grow` with exclusive access to the instance.
        unsafe { self.definition.as_ptr().as_mut().current_length = new.bytes().0 };
        Ok(previous)
    }

    fn grow_at_least(&mut self, min_size: u64) -> Result<(), MemoryError> {
        let current = self.size.bytes().0 as u64;
        if current < min_size {
            let page = wasmer::WASM_PAGE_SIZE as u64;
            let pages = (min_size - current).div_ceil(page);
            let delta = u32::try_from(pages).map_err(|_| MemoryError::CouldNotGrow {
                current: self.size,
                attempted_delta: Pages(u32::MAX),
            })?;
            self.grow(Pages(delta))?;
        }
        Ok(())
    }

    fn vmmemory(&self) -> NonNull<VMMemoryDefinition> {
        self.definition.as_ptr()
    }

    fn try_clone(&self) -> Result<Box<dyn LinearMemory + Send + Sync + 'static>, MemoryError> {
        Err(MemoryError::MemoryNotShared)
    }

    fn copy(&self) -> Result<Box<dyn LinearMemory + Send + Sync + 'static>, MemoryError> {
        let mut ty = self.ty;
        ty.minimum = self.size;
        let mut copy = Self::new(ty, self.style, None)?;
        let len = self.size.bytes().0;
        copy.mmap.as_mut_slice()[..len].copy_from_slice(&self.mmap.as_slice()[..len]);
        Ok(Box::new(copy))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use wasmer::sys::{Cranelift, EngineBuilder, NativeEngineExt};
    use wasmer::{Engine, Instance, Module, Store, imports};

    const WAT: &str = r#"(module
        (memory (export "memory") 1)
        (func (export "grow") (param i32) (result i32) local.get 0 memory.grow)
        (func (export "size") (result i32) memory.size)
        (func (export "load") (param i32) (result i32) local.get 0 i32.load offset=0)
        (func (export "load_off") (param i32) (result i32) local.get 0 i32.load offset=65532)
        (func (export "store") (param i32 i32) local.get 0 local.get 1 i32.store))"#;

    fn instance(style: MemoryStyleChoice) -> (Store, Instance) {
        let mut engine: Engine = EngineBuilder::new(Cranelift::new()).engine().into();
        engine.set_tunables(LimitingTunables::new(4, style));
        let mut store = Store::new(engine);
        let module = Module::new(&store, wat::parse_str(WAT).unwrap()).unwrap();
        let instance = Instance::new(&mut store, &module, &imports! {}).unwrap();
        (store, instance)
    }

    /// The reserved (dynamic) memory behaves as the static one: grows up to
    /// the cap and no further, new pages are zero, every access past the
    /// current length traps, offsets included.
    #[test]
    fn reserved_memory_matches_static() {
        for style in [MemoryStyleChoice::Dynamic, MemoryStyleChoice::Static] {
            let (mut store, inst) = instance(style);
            let f = |name: &str| inst.exports.get_function(name).unwrap().clone();
            let call = |store: &mut Store, name: &str, args: &[wasmer::Value]| {
                f(name)
                    .call(store, args)
                    .map(|v| v.first().and_then(|v| v.i32()))
            };
            use wasmer::Value::I32;
            // In bounds; one byte past the end traps; an offset past it traps.
            assert_eq!(call(&mut store, "load", &[I32(65532)]).unwrap(), Some(0));
            assert!(
                call(&mut store, "load", &[I32(65533)]).is_err(),
                "{style:?}"
            );
            assert_eq!(call(&mut store, "load_off", &[I32(0)]).unwrap(), Some(0));
            assert!(
                call(&mut store, "load_off", &[I32(1)]).is_err(),
                "{style:?}"
            );
            call(&mut store, "store", &[I32(100), I32(7)]).unwrap();
            // Grow to the cap of 4 pages, then refuse.
            assert_eq!(call(&mut store, "grow", &[I32(3)]).unwrap(), Some(1));
            assert_eq!(call(&mut store, "grow", &[I32(1)]).unwrap(), Some(-1));
            assert_eq!(call(&mut store, "size", &[]).unwrap(), Some(4));
            // Old data kept, new pages zero and reachable, the end still traps.
            assert_eq!(call(&mut store, "load", &[I32(100)]).unwrap(), Some(7));
            assert_eq!(
                call(&mut store, "load", &[I32(4 * 65536 - 4)]).unwrap(),
                Some(0)
            );
            assert!(call(&mut store, "load", &[I32(4 * 65536 - 3)]).is_err());
            let memory = inst.exports.get_memory("memory").unwrap();
            assert_eq!(memory.view(&store).data_size(), 4 * 65536);
        }
    }
}
