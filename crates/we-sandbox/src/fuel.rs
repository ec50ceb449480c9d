//! Fuel metering by region: the check runs once per function call and once
//! per loop iteration instead of once per basic block.
//!
//! A function body and each loop body are *regions*. A region's cost is the
//! number of operators on its longest path, where a nested loop counts as
//! nothing (its body is charged at its own header) and a call counts as one
//! operator (the callee charges its own entry). The cost is charged on entry:
//! at the top of the function, and right after each `loop` operator, so every
//! iteration (a back edge lands there) pays again. Every operator executed
//! lies in exactly one region visit, and every visit is charged at least as
//! many operators as it can run, so a call that has used `n` points has run
//! at most `n` operators: the budget bounds the work as before.
//!
//! What changes against charging each basic block as it runs (the
//! wasmer-middlewares scheme): a region is charged its longest path even when
//! a shorter one runs (an early `return`, a `br_if` out), so fuel is an upper
//! bound of the operators run rather than their count; and an agent runs out
//! of fuel at the entry of the region that would overrun, before running any
//! of it. Both depend on the module and the path alone: the same on every
//! machine. In exchange the checks, each a load, a compare, a subtraction and
//! a store of the remaining points, run far less often in straight-line code
//! with many branches, which is what the SDK's glue and most agents are.
//!
//! Bulk operations (`memory.fill`, `memory.copy`, `memory.init` and their
//! table forms) run as one operator over any length, so each is also charged
//! one point per [`BULK_BYTES_PER_POINT`] bytes (elements, for tables) of
//! its length, checked when it runs: without this a loop of
//! `memory.fill`s of the whole memory would run for hours on a budget of
//! millions of operators.
//!
//! The middleware buffers a function's operators until its final `end`, when
//! every region's cost is known, and then emits the body with the charges in
//! place. Control operators outside the MVP's structured set (exceptions,
//! tail calls, typed-reference branches) are refused with an error naming
//! them; the engine turns those proposals off anyway.

use std::sync::Mutex;
use wasmer::sys::{FunctionMiddleware, MiddlewareError, MiddlewareReaderState, ModuleMiddleware};
use wasmer::wasmparser::{BlockType, Operator};
use wasmer::{ExportIndex, GlobalInit, GlobalType, LocalFunctionIndex, Mutability, Type};
use wasmer_types::{GlobalIndex, ModuleInfo};

/// Export name of the `i64` global holding the points left in the call.
pub(crate) const REMAINING: &str = "we_fuel_remaining";
/// Export name of the `i32` global set to 1 when a check finds too few points.
pub(crate) const EXHAUSTED: &str = "we_fuel_exhausted";

const NAME: &str = "we-fuel";

/// Bytes (or table elements) of a bulk operation's length charged one point.
pub(crate) const BULK_BYTES_PER_POINT: u64 = 16;
const BULK_SHIFT: i64 = BULK_BYTES_PER_POINT.trailing_zeros() as i64;

/// The module middleware: adds the two globals, then meters every function.
#[derive(Debug)]
pub(crate) struct RegionMetering {
    initial: u64,
    globals: Mutex<Option<Globals>>,
}

#[derive(Clone, Copy, Debug)]
struct Globals {
    remaining: u32,
    exhausted: u32,
    /// Holds a bulk operation's length while it is charged.
    length: u32,
}

impl RegionMetering {
    /// A middleware whose remaining-points global starts at `initial` (the
    /// host sets it before each call anyway).
    pub(crate) fn new(initial: u64) -> Self {
        Self {
            initial,
            globals: Mutex::new(None),
        }
    }
}

impl ModuleMiddleware for RegionMetering {
    fn generate_function_middleware<'a>(
        &self,
        _: LocalFunctionIndex,
    ) -> Box<dyn FunctionMiddleware<'a> + 'a> {
        let globals = self.globals.lock().ok().and_then(|g| *g);
        Box::new(FunctionRegions::new(globals))
    }

    fn transform_module_info(&self, info: &mut ModuleInfo) -> Result<(), MiddlewareError> {
        let mut globals = self
            .globals
            .lock()
            .map_err(|_| MiddlewareError::new(NAME, "state poisoned"))?;
        if globals.is_some() {
            return Err(MiddlewareError::new(
                NAME,
                "one metering middleware instruments exactly one module",
            ));
        }
        let remaining = info
            .globals
            .push(GlobalType::new(Type::I64, Mutability::Var));
        info.global_initializers.push(GlobalInit::I64Const(
            self.initial.min(i64::MAX as u64) as i64
        ));
        info.exports
            .insert(REMAINING.to_string(), ExportIndex::Global(remaining));
        let exhausted = info
            .globals
            .push(GlobalType::new(Type::I32, Mutability::Var));
        info.global_initializers.push(GlobalInit::I32Const(0));
        info.exports
            .insert(EXHAUSTED.to_string(), ExportIndex::Global(exhausted));
        let length = info
            .globals
            .push(GlobalType::new(Type::I32, Mutability::Var));
        info.global_initializers.push(GlobalInit::I32Const(0));
        *globals = Some(Globals {
            remaining: index(remaining),
            exhausted: index(exhausted),
            length: index(length),
        });
        Ok(())
    }
}

fn index(g: GlobalIndex) -> u32 {
    g.as_u32()
}

/// What a control frame is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Block,
    If,
    Loop,
}

/// An open `block`, `if` or `loop` (the function body is the outermost block).
#[derive(Debug)]
struct Frame {
    kind: Kind,
    /// The region the frame's code runs in (for a loop, its own).
    region: usize,
    /// `if`: the cost when the condition was taken, for the `else` path.
    start: Option<u64>,
    /// Block or `if`: the highest cost of a path reaching its end by a branch
    /// or by the `then` arm.
    end_max: Option<u64>,
    /// `if`: whether an `else` was seen.
    has_else: bool,
    /// Loop: the enclosing region's cost on entry.
    saved: Option<u64>,
}

/// One function: its operators until the final `end`, and the analysis.
#[derive(Debug)]
struct FunctionRegions<'a> {
    globals: Option<Globals>,
    ops: Vec<Operator<'a>>,
    /// Cost of each region; 0 is the function body.
    costs: Vec<u64>,
    /// Region of each `loop` operator, by its index in `ops`.
    loops: Vec<(usize, usize)>,
    frames: Vec<Frame>,
    /// Cost of the current path within the current region; `None` where the
    /// code cannot be reached.
    cur: Option<u64>,
}

impl<'a> FunctionRegions<'a> {
    fn new(globals: Option<Globals>) -> Self {
        Self {
            globals,
            ops: Vec::new(),
            costs: vec![0],
            loops: Vec::new(),
            frames: vec![Frame {
                kind: Kind::Block,
                region: 0,
                start: None,
                end_max: None,
                has_else: false,
                saved: None,
            }],
            cur: Some(0),
        }
    }

    fn region(&self) -> usize {
        self.frames.last().map_or(0, |f| f.region)
    }

    /// Sets the current path's cost, keeping the region's longest path.
    fn set(&mut self, cur: Option<u64>) {
        self.cur = cur;
        if let Some(c) = cur {
            let r = self.region();
            if let Some(cost) = self.costs.get_mut(r) {
                *cost = (*cost).max(c);
            }
        }
    }

    fn add(&mut self, n: u64) {
        self.set(self.cur.map(|c| c.saturating_add(n)));
    }

    fn frame(&mut self, depth: u32) -> Result<usize, MiddlewareError> {
        self.frames
            .len()
            .checked_sub(1 + depth as usize)
            .ok_or_else(|| MiddlewareError::new(NAME, format!("branch depth {depth} out of range")))
    }

    /// A branch (taken or not) from here to the label `depth` frames out.
    fn branch(&mut self, depth: u32) -> Result<(), MiddlewareError> {
        let target = self.frame(depth)?;
        let Some(frame) = self.frames.get(target) else {
            return Ok(());
        };
        if frame.kind == Kind::Loop {
            // To a loop header: a new iteration, charged there.
            return Ok(());
        }
        let arriving = if frame.region == self.region() {
            self.cur
        } else {
            // Out of one or more loops: in the target's region the path left
            // at the entry of the outermost loop it crosses.
            self.frames
                .get(target + 1..)
                .and_then(|inner| inner.iter().find(|f| f.kind == Kind::Loop))
                .and_then(|l| l.saved)
        };
        if let Some(frame) = self.frames.get_mut(target) {
            frame.end_max = max(frame.end_max, arriving);
        }
        Ok(())
    }

    /// Follows one operator; returns whether it closed the function.
    fn follow(&mut self, op: &Operator<'a>) -> Result<bool, MiddlewareError> {
        match op {
            Operator::Block { .. } => {
                self.add(1);
                self.push(Kind::Block, self.region(), None, None);
            }
            Operator::If { .. } => {
                self.add(1);
                self.push(Kind::If, self.region(), self.cur, None);
            }
            Operator::Loop { .. } => {
                self.add(1);
                let region = self.costs.len();
                self.costs.push(0);
                self.loops.push((self.ops.len(), region));
                let saved = self.cur;
                self.push(Kind::Loop, region, None, saved);
                // The loop's body is reachable iff its entry is.
                self.set(saved.map(|_| 0));
            }
            Operator::Else => {
                let cur = self.cur;
                let Some(frame) = self.frames.last_mut().filter(|f| f.kind == Kind::If) else {
                    return Err(MiddlewareError::new(NAME, "`else` outside an `if`"));
                };
                frame.end_max = max(frame.end_max, cur);
                frame.has_else = true;
                let start = frame.start;
                self.set(start);
                self.add(1);
            }
            Operator::End => {
                let cur = self.cur;
                let Some(frame) = self.frames.pop() else {
                    return Err(MiddlewareError::new(NAME, "`end` with no open block"));
                };
                let after = match frame.kind {
                    Kind::Block => max(cur, frame.end_max),
                    Kind::If if frame.has_else => max(cur, frame.end_max),
                    // Without an `else` the condition may skip the arm.
                    Kind::If => max(max(cur, frame.end_max), frame.start),
                    // Falling out of a loop resumes the enclosing region
                    // where it entered the loop.
                    Kind::Loop => cur.and(frame.saved),
                };
                if self.frames.is_empty() {
                    // The function's own `end`.
                    self.costs[0] = self.costs[0].max(after.unwrap_or(0).saturating_add(1));
                    return Ok(true);
                }
                self.set(after);
                self.add(1);
            }
            Operator::Br { relative_depth } => {
                self.add(1);
                self.branch(*relative_depth)?;
                self.set(None);
            }
            Operator::BrIf { relative_depth } => {
                self.add(1);
                self.branch(*relative_depth)?;
            }
            Operator::BrTable { targets } => {
                self.add(1);
                for depth in targets.targets() {
                    let depth = depth.map_err(|e| MiddlewareError::new(NAME, e.to_string()))?;
                    self.branch(depth)?;
                }
                self.branch(targets.default())?;
                self.set(None);
            }
            Operator::Return | Operator::Unreachable => {
                self.add(1);
                self.set(None);
            }
            Operator::Try { .. }
            | Operator::TryTable { .. }
            | Operator::Catch { .. }
            | Operator::CatchAll
            | Operator::Delegate { .. }
            | Operator::Throw { .. }
            | Operator::ThrowRef
            | Operator::Rethrow { .. }
            | Operator::ReturnCall { .. }
            | Operator::ReturnCallIndirect { .. }
            | Operator::ReturnCallRef { .. }
            | Operator::BrOnNull { .. }
            | Operator::BrOnNonNull { .. }
            | Operator::BrOnCast { .. }
            | Operator::BrOnCastFail { .. } => {
                return Err(MiddlewareError::new(
                    NAME,
                    format!("fuel metering does not support the control operator {op:?}"),
                ));
            }
            _ => self.add(1),
        }
        Ok(false)
    }

    fn push(&mut self, kind: Kind, region: usize, start: Option<u64>, saved: Option<u64>) {
        self.frames.push(Frame {
            kind,
            region,
            start,
            end_max: None,
            has_else: false,
            saved,
        });
    }
}

/// Whether `op` runs over a length taken from the top of the stack (an
/// `i32`: memory64 and table64 are off).
fn is_bulk(op: &Operator<'_>) -> bool {
    matches!(
        op,
        Operator::MemoryFill { .. }
            | Operator::MemoryCopy { .. }
            | Operator::MemoryInit { .. }
            | Operator::TableFill { .. }
            | Operator::TableCopy { .. }
            | Operator::TableInit { .. }
    )
}

/// Emits the check and charge of the points that `points` (operators that
/// push an `i64`) computes: a trap with the exhausted flag set when fewer are
/// left, else the points taken from the remaining ones. Stack-neutral.
fn charge<'a>(state: &mut MiddlewareReaderState<'a>, g: Globals, points: &[Operator<'a>]) {
    state.push_operator(Operator::GlobalGet {
        global_index: g.remaining,
    });
    state.extend(points.iter().cloned());
    state.extend([
        Operator::I64LtU,
        Operator::If {
            blockty: BlockType::Empty,
        },
        Operator::I32Const { value: 1 },
        Operator::GlobalSet {
            global_index: g.exhausted,
        },
        Operator::Unreachable,
        Operator::End,
        Operator::GlobalGet {
            global_index: g.remaining,
        },
    ]);
    state.extend(points.iter().cloned());
    state.extend([
        Operator::I64Sub,
        Operator::GlobalSet {
            global_index: g.remaining,
        },
    ]);
}

/// Charges a region's static `cost`.
fn charge_cost(state: &mut MiddlewareReaderState<'_>, g: Globals, cost: u64) {
    let value = cost.min(i64::MAX as u64) as i64;
    charge(state, g, &[Operator::I64Const { value }]);
}

/// Charges a bulk operation's length (on top of the stack, left there):
/// `length >> BULK_SHIFT` points.
fn charge_length(state: &mut MiddlewareReaderState<'_>, g: Globals) {
    state.push_operator(Operator::GlobalSet {
        global_index: g.length,
    });
    let points = [
        Operator::GlobalGet {
            global_index: g.length,
        },
        Operator::I64ExtendI32U,
        Operator::I64Const { value: BULK_SHIFT },
        Operator::I64ShrU,
    ];
    charge(state, g, &points);
    state.push_operator(Operator::GlobalGet {
        global_index: g.length,
    });
}

fn max(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

impl<'a> FunctionMiddleware<'a> for FunctionRegions<'a> {
    fn feed(
        &mut self,
        operator: Operator<'a>,
        state: &mut MiddlewareReaderState<'a>,
    ) -> Result<(), MiddlewareError> {
        let Some(g) = self.globals else {
            return Err(MiddlewareError::new(
                NAME,
                "the module was not prepared for metering",
            ));
        };
        let done = self.follow(&operator)?;
        self.ops.push(operator);
        if !done {
            return Ok(());
        }
        // The whole body is known: emit it with the charges in place.
        let mut loops = self.loops.iter().peekable();
        let cost = |region: usize| self.costs.get(region).copied().unwrap_or(0);
        if cost(0) > 0 {
            charge_cost(state, g, cost(0));
        }
        for (i, op) in self.ops.drain(..).enumerate() {
            if is_bulk(&op) {
                charge_length(state, g);
            }
            state.push_operator(op);
            if let Some(&&(at, region)) = loops.peek()
                && at == i
            {
                loops.next();
                if cost(region) > 0 {
                    charge_cost(state, g, cost(region));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use std::sync::Arc;
    use wasmer::sys::{CompilerConfig, Cranelift, EngineBuilder, Features};
    use wasmer::{Engine, Instance, Module, Store, Value, imports};

    const WAT: &str = r#"(module
      (func $leaf (result i32) i32.const 1 i32.const 2 i32.add)
      (func (export "straight") (result i32) i32.const 1 i32.const 2 i32.add)
      (func (export "arms") (param i32) (result i32)
        local.get 0
        if (result i32) i32.const 1 else i32.const 2 i32.const 3 i32.add end)
      (func (export "count") (param i32)
        loop local.get 0 i32.const 1 i32.sub local.tee 0 br_if 0 end)
      ;; Two nested loops, a branch out of both, a br_table, an early return
      ;; and a call.
      (func (export "nested") (param i32) (result i32) (local i32 i32)
        block $out
          loop $outer
            local.get 1 i32.const 1 i32.add local.set 1
            local.get 1 local.get 0 i32.ge_u br_if $out
            i32.const 0 local.set 2
            loop $inner
              local.get 2 i32.const 1 i32.add local.tee 2
              i32.const 7 i32.eq
              if
                local.get 1 i32.const 5 i32.eq
                local.get 0 i32.const 1 i32.and i32.and
                br_if $out
              end
              local.get 2 i32.const 8 i32.lt_u br_if $inner
            end
            block $a
              block $b
                block $c
                  local.get 1 i32.const 3 i32.rem_u br_table $a $b $c
                end
                local.get 1 i32.const 10 i32.gt_u
                if i32.const 99 return end
              end
              call $leaf drop
            end
            br $outer
          end
        end
        local.get 1)
      (func (export "spin") loop br 0 end))"#;

    /// An instance of `wat` metered by regions, or by blocks (the
    /// wasmer-middlewares scheme, which counts exactly the operators run).
    fn instance(wat: &str, regions: bool, tail_calls: bool) -> Result<(Store, Instance), String> {
        let mut compiler = Cranelift::new();
        if regions {
            compiler.push_middleware(Arc::new(RegionMetering::new(0)));
        } else {
            compiler.push_middleware(Arc::new(wasmer_middlewares::Metering::new(0, |_| 1)));
        }
        let mut features = Features::new();
        features.tail_call(tail_calls);
        let engine: Engine = EngineBuilder::new(compiler)
            .set_features(Some(features))
            .engine()
            .into();
        let mut store = Store::new(engine);
        let module =
            Module::new(&store, wat::parse_str(wat).unwrap()).map_err(|e| e.to_string())?;
        let instance = Instance::new(&mut store, &module, &imports! {}).unwrap();
        Ok((store, instance))
    }

    /// Calls `f(args)` with `budget` points: the points used, whether the
    /// call ran out, and its result.
    fn call(
        (store, inst): &mut (Store, Instance),
        regions: bool,
        f: &str,
        args: &[Value],
        budget: u64,
    ) -> (u64, bool, Option<i32>) {
        let (remaining, exhausted) = if regions {
            (REMAINING, EXHAUSTED)
        } else {
            (
                "wasmer_metering_remaining_points",
                "wasmer_metering_points_exhausted",
            )
        };
        let remaining = inst.exports.get_global(remaining).unwrap().clone();
        let exhausted = inst.exports.get_global(exhausted).unwrap().clone();
        remaining.set(store, Value::I64(budget as i64)).unwrap();
        exhausted.set(store, Value::I32(0)).unwrap();
        let out = inst.exports.get_function(f).unwrap().call(store, args);
        let left = remaining.get(store).unwrap_i64() as u64;
        let ran_out = exhausted.get(store).unwrap_i32() != 0;
        assert_eq!(ran_out, out.is_err(), "{f}: only running out traps here");
        let value = out.ok().and_then(|v| v.first().and_then(Value::i32));
        (budget - left, ran_out, value)
    }

    fn both() -> [(Store, Instance); 2] {
        [
            instance(WAT, true, false).unwrap(),
            instance(WAT, false, false).unwrap(),
        ]
    }

    #[test]
    fn straight_code_and_loops_cost_what_they_run() {
        let [mut r, mut b] = both();
        // Three operators and the function's `end`.
        assert_eq!(
            call(&mut r, true, "straight", &[], 1000),
            (4, false, Some(3))
        );
        assert_eq!(
            call(&mut b, false, "straight", &[], 1000),
            (4, false, Some(3))
        );
        // `loop`, five operators an iteration, the loop's and the function's
        // `end`: both schemes agree on every count.
        for n in [1, 2, 10, 1000] {
            let want = 3 + 5 * n as u64;
            assert_eq!(
                call(&mut r, true, "count", &[Value::I32(n)], 1 << 30).0,
                want
            );
            assert_eq!(
                call(&mut b, false, "count", &[Value::I32(n)], 1 << 30).0,
                want
            );
        }
    }

    #[test]
    fn a_region_is_charged_its_longest_path() {
        let [mut r, mut b] = both();
        // `else` has three operators against one: either way, regions charge
        // the longer arm; blocks charge the arm that ran.
        for (arg, want) in [(1, Some(1)), (0, Some(5))] {
            let (regions, _, v) = call(&mut r, true, "arms", &[Value::I32(arg)], 1000);
            let (blocks, _, w) = call(&mut b, false, "arms", &[Value::I32(arg)], 1000);
            assert_eq!((v, w), (want, want));
            assert_eq!(regions, 8, "arg {arg}");
            assert!(blocks <= regions, "arg {arg}: {blocks} > {regions}");
        }
    }

    /// Never fewer points than operators run (the blocks scheme's count), on
    /// every path through branches out of nested loops, a br_table and an
    /// early return, and never wildly more.
    #[test]
    fn never_fewer_points_than_operators_run() {
        let [mut r, mut b] = both();
        let mut exits = std::collections::BTreeSet::new();
        for n in 0..40 {
            let (regions, _, v) = call(&mut r, true, "nested", &[Value::I32(n)], 1 << 30);
            let (blocks, _, w) = call(&mut b, false, "nested", &[Value::I32(n)], 1 << 30);
            assert_eq!(v, w, "n {n}");
            assert!(regions >= blocks, "n {n}: {regions} < {blocks}");
            assert!(
                regions <= 2 * blocks + 40,
                "n {n}: {regions} against {blocks}"
            );
            exits.insert(v);
        }
        // The loop's end (n), the branch out of both loops (5) and the early
        // return (99) were all taken.
        assert!(exits.contains(&Some(3)) && exits.contains(&Some(5)) && exits.contains(&Some(99)));
    }

    #[test]
    fn an_endless_loop_runs_out_and_the_budget_bounds_it() {
        let [mut r, _] = both();
        for budget in [0, 1, 10, 12_345] {
            let (used, ran_out, _) = call(&mut r, true, "spin", &[], budget);
            assert!(ran_out, "budget {budget}");
            // The check fails before charging: what was used fits the budget.
            assert!(used <= budget, "budget {budget}: used {used}");
            assert!(
                budget - used < 3,
                "budget {budget}: {used} used before running out"
            );
        }
    }

    const BULK: &str = r#"(module
      (memory 1)
      (table 8 funcref)
      (func (export "fill") (param i32) i32.const 0 i32.const 7 local.get 0 memory.fill)
      (func (export "copy") (param i32) i32.const 0 i32.const 100 local.get 0 memory.copy)
      (func (export "table_fill") (param i32) i32.const 0 ref.null func local.get 0 table.fill 0)
      (global $rounds (export "rounds") (mut i32) (i32.const 0))
      (func (export "fill_forever")
        loop
          global.get $rounds i32.const 1 i32.add global.set $rounds
          i32.const 0 i32.const 0 i32.const 65536 memory.fill
          br 0
        end))"#;

    #[test]
    fn bulk_operations_pay_for_their_length() {
        let mut r = instance(BULK, true, false).unwrap();
        let per = BULK_BYTES_PER_POINT;
        for f in ["fill", "copy"] {
            let (zero, _, _) = call(&mut r, true, f, &[Value::I32(0)], 1 << 30);
            for n in [15u64, 16, 1600, 40_000] {
                let (used, ran_out, _) = call(&mut r, true, f, &[Value::I32(n as i32)], 1 << 30);
                assert!(!ran_out);
                assert_eq!(used - zero, n / per, "{f}({n})");
            }
        }
        let (zero, _, _) = call(&mut r, true, "table_fill", &[Value::I32(0)], 1000);
        let (eight, _, _) = call(&mut r, true, "table_fill", &[Value::I32(8)], 1000);
        assert_eq!(eight - zero, 8 / per);
        // A length the budget cannot pay for runs out before the operation.
        let (_, ran_out, _) = call(&mut r, true, "fill", &[Value::I32(40_000)], 100);
        assert!(ran_out);
        // A loop of whole-memory fills runs out after about budget / 4,096
        // rounds, not after budget / 13 (its operators alone).
        let rounds = r.1.exports.get_global("rounds").unwrap().clone();
        for budget in [10_000u64, 1_000_000] {
            rounds.set(&mut r.0, Value::I32(0)).unwrap();
            let (used, ran_out, _) = call(&mut r, true, "fill_forever", &[], budget);
            assert!(ran_out && used <= budget, "budget {budget}: used {used}");
            let ran = rounds.get(&mut r.0).unwrap_i32() as u64;
            let most = budget / (65_536 / per) + 1;
            assert!(ran <= most, "budget {budget}: {ran} rounds, at most {most}");
        }
    }

    #[test]
    fn unsupported_control_operators_are_refused_by_name() {
        let wat = r#"(module
          (func $f (result i32) i32.const 1)
          (func (export "g") (result i32) return_call $f))"#;
        let err = instance(wat, true, true).unwrap_err();
        assert!(err.contains("ReturnCall"), "{err}");
    }
}
