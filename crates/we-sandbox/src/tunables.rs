//! Tunables that cap each agent's linear memory and choose how it is reserved.
//!
//! The cap is applied by lowering the memory's declared maximum to
//! `memory_pages_max` before the memory is created, so `memory.grow` past the
//! cap returns -1 inside the guest, exactly as the WebAssembly spec says a
//! failed grow does; nothing else changes, so the behaviour is deterministic.

use std::ptr::NonNull;
use wasmer::sys::Tunables;
use wasmer::sys::vm::{
    MemoryError, MemoryStyle, TableStyle, VMConfig, VMMemory, VMMemoryDefinition, VMTable,
    VMTableDefinition,
};
use wasmer::{MemoryType, Pages, TableType};

/// How linear memories are reserved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryStyleChoice {
    /// Reserve the whole 4 GiB space plus guard pages per instance: no bounds
    /// checks in generated code, but about 8 GiB of address space per agent,
    /// which limits a process to roughly 15,000 agents.
    Static,
    /// Reserve only what is used, with explicit bounds checks: scales to
    /// hundreds of thousands of agents.
    Dynamic,
}

/// Largest table an agent may have, in elements; `table.grow` past it fails.
pub const TABLE_ELEMENTS_MAX: u32 = 65_536;

/// Guard bytes after a dynamic memory, so small constant offsets need no check.
const DYNAMIC_GUARD_BYTES: u64 = 64 << 10;

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
