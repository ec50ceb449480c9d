//! The `infer` workload (`shared/workloads.md`): agent `i` holds
//! `state = i + 1`. Each tick it first applies last tick's inference result
//! (`state = xorshift64(state ^ argmax(logits))`, lowest index on a tie), then
//! builds `obs[j] = ((state >> 4j) & 15) / 15` (16 f32) and requests the
//! `policy` model on it with the tick as the request tag.

use we_agent::prelude::*;

/// The model every agent asks.
pub const MODEL: &str = "policy";
/// Observation width.
pub const OBS: usize = 16;

/// `x ^= x << 13; x ^= x >> 7; x ^= x << 17`.
#[inline]
pub fn xorshift64(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

/// `k as f32 / 15.0` for every nibble `k`, evaluated at compile time.
/// Rust's constant evaluation rounds floating-point division as IEEE 754
/// does at run time, so each entry is bit for bit the spec's quotient; the
/// test `the_table_is_the_spec_formula` checks all sixteen.
const LEVELS: [f32; 16] = {
    let mut t = [0f32; 16];
    let mut k = 0;
    while k < 16 {
        t[k] = k as f32 / 15.0;
        k += 1;
    }
    t
};

/// The observation of a state: `obs[j] = ((state >> 4j) & 15) / 15`, read
/// from [`LEVELS`] (a load per element instead of an unsigned 64-bit
/// conversion and a division).
pub fn observe(state: u64) -> [f32; OBS] {
    let mut obs = [0f32; OBS];
    for (j, o) in obs.iter_mut().enumerate() {
        *o = LEVELS[((state >> (4 * j)) & 15) as usize];
    }
    obs
}

/// An inference-driven agent and its state.
#[derive(Debug, Default)]
pub struct Infer {
    state: u64,
}

impl Infer {
    /// The current state.
    pub fn state(&self) -> u64 {
        self.state
    }
}

impl Agent for Infer {
    fn init(&mut self, ctx: &mut Ctx, _config: &[u8]) {
        self.state = u64::from(ctx.id()) + 1;
    }

    fn receive(&mut self, ctx: &mut Ctx, msg: &Message) {
        if !msg.is_inference_result() {
            if msg.is_inference_error() {
                ctx.warn("infer: the policy request failed");
            }
            return;
        }
        // The policy service answers with the action itself (8 bytes, the
        // `argmax` post-processing of the scenario), or with raw logits.
        let action = if msg.payload().len() == 8 {
            Some(msg.u64() as usize)
        } else {
            msg.tensor("logits").and_then(|t| argmax(f32_values(&t)?))
        };
        match action {
            Some(a) => self.state = xorshift64(self.state ^ a as u64),
            None => ctx.warn("infer: result without f32 logits"),
        }
    }

    fn step(&mut self, ctx: &mut Ctx) {
        let obs = observe(self.state);
        let tag = ctx.tick() as u32;
        if let Err(e) = ctx.infer(MODEL, tag, &[TensorRef::f32("obs", &[1, OBS as u64], &obs)]) {
            ctx.fail(e);
        }
    }
}

we_agent::capabilities!(
    "host = tick self_id emit log
     models = policy"
);

export_agent!(Infer);

#[cfg(test)]
mod tests {
    use super::*;
    use we_agent::native::{Effect, Harness};

    #[test]
    fn the_table_is_the_spec_formula() {
        for state in [
            0u64,
            1,
            0x0123_4567_89ab_cdef,
            u64::MAX,
            0xfedc_ba98_7654_3210,
        ] {
            let obs = observe(state);
            for (j, o) in obs.iter().enumerate() {
                let spec = ((state >> (4 * j)) & 15) as f32 / 15.0;
                assert_eq!(o.to_bits(), spec.to_bits(), "state {state:#x}, element {j}");
            }
        }
        // Every nibble value appears in 0x0123...cdef and 0xfedc...3210.
        for k in 0..16u64 {
            let spec = std::hint::black_box(k) as f32 / 15.0;
            assert_eq!(LEVELS[k as usize].to_bits(), spec.to_bits(), "nibble {k}");
        }
    }

    #[test]
    fn requests_then_folds_the_argmax() {
        let mut h = Harness::<Infer>::new(2, 4, 0);
        h.init(&[]);
        let effects = h.step();
        let [
            Effect::Infer {
                slot,
                tag,
                model,
                inputs,
            },
        ] = effects.as_slice()
        else {
            panic!("expected one request, got {effects:?}");
        };
        assert_eq!((*slot, *tag, model.as_str()), (0, 0, MODEL));
        assert_eq!(inputs[0].name, "obs");
        assert_eq!(inputs[0].dims, vec![1, 16]);
        assert_eq!(inputs[0].f32_values(), Some(observe(3).to_vec()));

        // Ties go to the lowest index: argmax is 1.
        h.deliver_infer_result(
            0,
            &[TensorRef::f32("logits", &[1, 4], &[0.0, 2.0, 2.0, -1.0])],
        )
        .unwrap();
        let effects = h.step();
        let next = xorshift64(3 ^ 1);
        assert_eq!(h.agent().state(), next);
        let Effect::Infer { tag, inputs, .. } = &effects[0] else {
            panic!("expected a request, got {effects:?}");
        };
        assert_eq!(*tag, 1);
        assert_eq!(inputs[0].f32_values(), Some(observe(next).to_vec()));
        assert!(h.faults().is_empty());
    }
}
