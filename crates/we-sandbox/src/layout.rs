//! Where a module keeps the guest memory every call touches, so that the pool
//! can start loading it while the agent before runs.
//!
//! At 10,000 agents a tick is bound by cache and TLB misses: each agent's stack,
//! statics and heap lie in pages of its own. Touching them one after the other
//! during the call makes every miss wait for the one before; prefetching them
//! together, one agent ahead, lets the misses overlap.

/// The global section's id.
const GLOBAL_SECTION: u8 = 6;
/// `i32` value type.
const I32: u8 = 0x7f;
/// `i32.const` opcode.
const I32_CONST: u8 = 0x41;
/// `end` opcode.
const END: u8 = 0x0b;

/// Facts about a module's memory layout. Only ever hints: nothing here is
/// trusted for safety, and a module it cannot read simply gets no prefetch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct GuestLayout {
    /// Initial value of the stack pointer: the first defined global, when it
    /// is a mutable `i32` initialised by a constant, which is where LLVM puts
    /// `__stack_pointer`. The stack grows down from it; with the stack-first
    /// layout Rust uses, the statics start there.
    pub stack_top: Option<u32>,
}

impl GuestLayout {
    /// Reads the layout of `bytes`; an unreadable global section gives the
    /// empty layout (the module is validated elsewhere).
    pub(crate) fn of(name: &str, bytes: &[u8]) -> Self {
        let stack_top = we_sign::sections_with_id(name, bytes, GLOBAL_SECTION)
            .ok()
            .and_then(|s| s.first().copied())
            .and_then(first_global_i32_const);
        Self { stack_top }
    }
}

/// The constant initialising the first global of a global section's contents,
/// if that global is a mutable `i32` with an `i32.const` initialiser.
fn first_global_i32_const(contents: &[u8]) -> Option<u32> {
    let (count, used) = we_sign::module::read_u32_leb(contents)?;
    if count == 0 {
        return None;
    }
    match contents.get(used..)? {
        [I32, 1, I32_CONST, rest @ ..] => {
            let (value, used) = sleb32(rest)?;
            (rest.get(used) == Some(&END)).then_some(value as u32)
        }
        _ => None,
    }
}

fn sleb32(bytes: &[u8]) -> Option<(i32, usize)> {
    let mut value: i64 = 0;
    for (i, &b) in bytes.iter().take(5).enumerate() {
        value |= i64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            let shift = 7 * (i + 1);
            if shift < 64 && b & 0x40 != 0 {
                value |= -1i64 << shift;
            }
            return i32::try_from(value).ok().map(|v| (v, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_stack_pointer_of_a_built_agent() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../build/agents/ring.wasm");
        let bytes = std::fs::read(path).unwrap_or_default();
        assert!(!bytes.is_empty(), "build the agents first: {path}");
        // Rust's wasm32 default: a 1 MiB stack, first in memory.
        assert_eq!(GuestLayout::of("ring", &bytes).stack_top, Some(1 << 20));
    }

    #[test]
    fn decodes_constant_initialisers() {
        // One global: mutable i32, i32.const 1048576 (0x80 0x80 0xc0 0x00).
        let section = [1, I32, 1, I32_CONST, 0x80, 0x80, 0xc0, 0x00, END];
        assert_eq!(first_global_i32_const(&section), Some(1 << 20));
        // Negative constants decode with their sign (and wrap to u32).
        assert_eq!(
            first_global_i32_const(&[1, I32, 1, I32_CONST, 0x7f, END]),
            Some(u32::MAX)
        );
    }

    #[test]
    fn anything_else_gives_no_stack_top() {
        assert_eq!(first_global_i32_const(&[]), None);
        assert_eq!(first_global_i32_const(&[0]), None);
        // Immutable.
        assert_eq!(
            first_global_i32_const(&[1, I32, 0, I32_CONST, 1, END]),
            None
        );
        // i64.
        assert_eq!(first_global_i32_const(&[1, 0x7e, 1, 0x42, 1, END]), None);
        // Not a constant, or truncated.
        assert_eq!(first_global_i32_const(&[1, I32, 1, 0x23, 0, END]), None);
        assert_eq!(first_global_i32_const(&[1, I32, 1, I32_CONST, 0x80]), None);
        assert_eq!(
            GuestLayout::of("garbage", b"not wasm"),
            GuestLayout::default()
        );
    }
}
