//! Deterministic fault injection: the scenario's `[faults]` plan.
//!
//! ```toml
//! [faults]
//! seed = 7                       # optional; default: the run seed
//!
//! [[faults.trap]]                # agents fault (kind `injected`)
//! agents = "0-9"                 # ids and ranges, or "*"; default "*"
//! tick = 10                      # exactly at this tick, or...
//! probability = 0.01             # ...with this probability per step
//! from_tick = 0                  # window (inclusive), optional
//! to_tick = 100
//!
//! [[faults.message]]             # direct messages and topic copies
//! action = "drop"                # "drop", "delay" or "duplicate"
//! from = "0-99"                  # senders; default "*"
//! to = "*"                       # receivers; default "*"
//! topic = 3                      # only copies of publishes to this topic
//! probability = 0.1              # default 1
//! delay_ticks = 2                # for "delay"
//!
//! [[faults.model]]               # inference requests fail as if the model
//! model = "policy"               # could not be loaded
//! probability = 1.0
//! from_tick = 5
//! ```
//!
//! Every decision is a pure function of `(plan seed, rule, tick, agent, ...)`
//! mixed with the SplitMix64 output function, never of timing or worker count, so the same seed
//! gives the same faults; each injected fault is written to the trace as an
//! event and counted in the summary.

use serde::Deserialize;
use we_core::IdScope;

/// `[faults]`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultPlan {
    /// Seed of every decision; the run seed when absent.
    #[serde(default)]
    pub seed: Option<u64>,
    /// `[[faults.trap]]`.
    #[serde(default)]
    pub trap: Vec<TrapRule>,
    /// `[[faults.message]]`.
    #[serde(default)]
    pub message: Vec<MessageRule>,
    /// `[[faults.model]]`.
    #[serde(default)]
    pub model: Vec<ModelRule>,
}

impl Eq for FaultPlan {}

/// When a rule applies: an exact tick, or a probability within a window.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct When {
    /// Exactly this tick.
    #[serde(default)]
    pub tick: Option<u64>,
    /// Probability per opportunity, in 0..=1 (default 1).
    #[serde(default)]
    pub probability: Option<f64>,
    /// First tick of the window.
    #[serde(default)]
    pub from_tick: Option<u64>,
    /// Last tick of the window (inclusive).
    #[serde(default)]
    pub to_tick: Option<u64>,
}

/// `[[faults.trap]]`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrapRule {
    /// Agents it applies to (`*`, ids, ranges).
    #[serde(default)]
    pub agents: Option<String>,
    /// When.
    #[serde(flatten)]
    pub when: When,
}

/// What a message rule does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageAction {
    /// The copy is not delivered.
    #[default]
    Drop,
    /// The copy is delivered `delay_ticks` ticks late.
    Delay,
    /// The copy is delivered twice.
    Duplicate,
}

/// `[[faults.message]]`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageRule {
    /// What happens to a matching copy.
    pub action: MessageAction,
    /// Senders (`*`, ids, ranges).
    #[serde(default)]
    pub from: Option<String>,
    /// Receivers.
    #[serde(default)]
    pub to: Option<String>,
    /// Only copies of publishes to this topic.
    #[serde(default)]
    pub topic: Option<u32>,
    /// Ticks of delay for `delay`.
    #[serde(default)]
    pub delay_ticks: Option<u64>,
    /// When.
    #[serde(flatten)]
    pub when: When,
}

/// `[[faults.model]]`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelRule {
    /// The model whose requests fail.
    pub model: String,
    /// Requesting agents.
    #[serde(default)]
    pub agents: Option<String>,
    /// When.
    #[serde(flatten)]
    pub when: When,
}

/// Largest `delay_ticks`.
pub const DELAY_TICKS_MAX: u64 = 1 << 20;

/// A compiled rule's common part.
#[derive(Clone, Debug)]
struct Gate {
    tick: Option<u64>,
    /// Threshold on a uniform u64: fires when `draw < threshold`; `None` is 1.
    threshold: Option<u64>,
    from: u64,
    to: u64,
}

impl Gate {
    fn new(w: &When, field: &str) -> Result<Self, (String, String)> {
        let threshold = match w.probability {
            None => None,
            Some(p) if (0.0..=1.0).contains(&p) => {
                if p >= 1.0 {
                    None
                } else {
                    // Exact for every p representable in the scenario up to
                    // 2^-64 granularity; the same f64 gives the same threshold
                    // everywhere.
                    Some((p * 18_446_744_073_709_551_616.0) as u64)
                }
            }
            Some(p) => {
                return Err((
                    format!("{field}.probability"),
                    format!("{p} is not in 0..=1"),
                ));
            }
        };
        if w.tick.is_some() && (w.from_tick.is_some() || w.to_tick.is_some()) {
            return Err((
                field.to_string(),
                "give `tick` or a `from_tick`/`to_tick` window, not both".into(),
            ));
        }
        let from = w.from_tick.unwrap_or(0);
        let to = w.to_tick.unwrap_or(u64::MAX);
        if from > to {
            return Err((field.to_string(), format!("window {from}..={to} is empty")));
        }
        Ok(Self {
            tick: w.tick,
            threshold,
            from,
            to,
        })
    }

    #[inline]
    fn in_time(&self, t: u64) -> bool {
        match self.tick {
            Some(at) => t == at,
            None => t >= self.from && t <= self.to,
        }
    }

    #[inline]
    fn fires(&self, draw: impl FnOnce() -> u64) -> bool {
        match self.threshold {
            None => true,
            Some(th) => draw() < th,
        }
    }
}

#[derive(Clone, Debug)]
struct Trap {
    agents: IdScope,
    gate: Gate,
}

#[derive(Clone, Debug)]
struct Msg {
    action: MessageAction,
    from: IdScope,
    to: IdScope,
    topic: Option<u32>,
    delay: u64,
    gate: Gate,
}

#[derive(Clone, Debug)]
struct Model {
    model: String,
    agents: IdScope,
    gate: Gate,
}

/// What happens to one message copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fate {
    /// Delivered normally.
    Deliver,
    /// Not delivered.
    Drop,
    /// Delivered this many ticks late.
    Delay(u64),
    /// Delivered twice.
    Duplicate,
}

/// A validated plan, ready to decide.
#[derive(Clone, Debug, Default)]
pub(crate) struct Injector {
    seed: u64,
    traps: Vec<Trap>,
    msgs: Vec<Msg>,
    models: Vec<Model>,
}

fn scope(text: &Option<String>, field: String) -> Result<IdScope, (String, String)> {
    match text {
        None => Ok(IdScope::All),
        Some(t) => IdScope::parse(t).map_err(|p| (field, p)),
    }
}

/// Domain tags keep the decision streams of rule kinds apart.
const TRAP: u64 = 0x7472_6170;
const MSG: u64 = 0x6d73_6721;
const MODEL: u64 = 0x6d6f_6465;

/// A uniform draw from the decision inputs: the SplitMix64 output function
/// folded over the parts.
#[inline]
fn draw(seed: u64, parts: &[u64]) -> u64 {
    let mut x = seed;
    for &p in parts {
        let mut z = (x ^ p).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x = z ^ (z >> 31);
    }
    x
}

impl Injector {
    /// Validates `plan`; errors are `(field, problem)`.
    pub fn new(plan: &FaultPlan, run_seed: u64) -> Result<Self, (String, String)> {
        let mut out = Injector {
            seed: plan.seed.unwrap_or(run_seed),
            ..Injector::default()
        };
        for (k, r) in plan.trap.iter().enumerate() {
            let field = format!("faults.trap[{k}]");
            out.traps.push(Trap {
                agents: scope(&r.agents, format!("{field}.agents"))?,
                gate: Gate::new(&r.when, &field)?,
            });
        }
        for (k, r) in plan.message.iter().enumerate() {
            let field = format!("faults.message[{k}]");
            let delay = match (r.action, r.delay_ticks) {
                (MessageAction::Delay, Some(d)) if (1..=DELAY_TICKS_MAX).contains(&d) => d,
                (MessageAction::Delay, Some(d)) => {
                    return Err((
                        format!("{field}.delay_ticks"),
                        format!("{d} is not in 1..={DELAY_TICKS_MAX}"),
                    ));
                }
                (MessageAction::Delay, None) => {
                    return Err((
                        format!("{field}.delay_ticks"),
                        "required for action \"delay\"".into(),
                    ));
                }
                (_, Some(_)) => {
                    return Err((
                        format!("{field}.delay_ticks"),
                        "only for action \"delay\"".into(),
                    ));
                }
                (_, None) => 0,
            };
            out.msgs.push(Msg {
                action: r.action,
                from: scope(&r.from, format!("{field}.from"))?,
                to: scope(&r.to, format!("{field}.to"))?,
                topic: r.topic,
                delay,
                gate: Gate::new(&r.when, &field)?,
            });
        }
        for (k, r) in plan.model.iter().enumerate() {
            let field = format!("faults.model[{k}]");
            out.models.push(Model {
                model: r.model.clone(),
                agents: scope(&r.agents, format!("{field}.agents"))?,
                gate: Gate::new(&r.when, &field)?,
            });
        }
        Ok(out)
    }

    /// Whether any message rule exists (the commit's fast path skips the
    /// per-copy decision otherwise).
    #[inline]
    pub fn has_message_rules(&self) -> bool {
        !self.msgs.is_empty()
    }

    /// Whether any model rule exists.
    #[inline]
    pub fn has_model_rules(&self) -> bool {
        !self.models.is_empty()
    }

    /// Whether agent `agent` is made to fault at tick `t`.
    pub fn trap(&self, t: u64, agent: u32) -> bool {
        self.traps.iter().enumerate().any(|(k, r)| {
            r.gate.in_time(t)
                && r.agents.allows(agent)
                && r.gate
                    .fires(|| draw(self.seed, &[TRAP, k as u64, t, agent as u64]))
        })
    }

    /// The fate of one copy from `sender` to `receiver` (`topic` for a publish),
    /// the `seq`-th copy the sender emitted this tick. The first matching rule
    /// that fires decides.
    pub fn message(
        &self,
        t: u64,
        sender: u32,
        receiver: u32,
        topic: Option<u32>,
        seq: u64,
    ) -> Fate {
        for (k, r) in self.msgs.iter().enumerate() {
            if !r.gate.in_time(t) || !r.from.allows(sender) || !r.to.allows(receiver) {
                continue;
            }
            if r.topic.is_some() && r.topic != topic {
                continue;
            }
            let fired = r.gate.fires(|| {
                draw(
                    self.seed,
                    &[MSG, k as u64, t, sender as u64, receiver as u64, seq],
                )
            });
            if fired {
                return match r.action {
                    MessageAction::Drop => Fate::Drop,
                    MessageAction::Delay => Fate::Delay(r.delay),
                    MessageAction::Duplicate => Fate::Duplicate,
                };
            }
        }
        Fate::Deliver
    }

    /// Whether the `seq`-th inference request of the tick, by `agent` for
    /// `model`, fails as if the model could not be loaded.
    pub fn model_fails(&self, t: u64, agent: u32, model: &str, seq: u64) -> bool {
        self.models.iter().enumerate().any(|(k, r)| {
            r.model == model
                && r.gate.in_time(t)
                && r.agents.allows(agent)
                && r.gate
                    .fires(|| draw(self.seed, &[MODEL, k as u64, t, agent as u64, seq]))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(text: &str) -> FaultPlan {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn exact_tick_traps_only_then() {
        let inj = Injector::new(&plan("[[trap]]\nagents = '3 5'\ntick = 4\n"), 1).unwrap();
        assert!(inj.trap(4, 3) && inj.trap(4, 5));
        assert!(!inj.trap(4, 4) && !inj.trap(3, 3) && !inj.trap(5, 5));
    }

    #[test]
    fn probabilities_are_seeded_and_close_to_p() {
        let p = plan("[[trap]]\nprobability = 0.1\n");
        let a = Injector::new(&p, 1).unwrap();
        let b = Injector::new(&p, 1).unwrap();
        let c = Injector::new(&p, 2).unwrap();
        let hits = |inj: &Injector| -> Vec<bool> {
            (0..10_000)
                .map(|i| inj.trap(i / 100, (i % 100) as u32))
                .collect()
        };
        assert_eq!(hits(&a), hits(&b));
        assert_ne!(hits(&a), hits(&c));
        let n = hits(&a).iter().filter(|&&h| h).count();
        assert!((800..1200).contains(&n), "{n} of 10000 at p = 0.1");
    }

    #[test]
    fn message_rules_match_in_order() {
        let inj = Injector::new(
            &plan(
                "[[message]]\naction='delay'\ndelay_ticks=2\nfrom='1'\n\
                 [[message]]\naction='drop'\ntopic=4\n[[message]]\naction='duplicate'\nto='9'\n",
            ),
            0,
        )
        .unwrap();
        assert_eq!(inj.message(0, 1, 9, None, 0), Fate::Delay(2));
        assert_eq!(inj.message(0, 2, 3, Some(4), 0), Fate::Drop);
        assert_eq!(inj.message(0, 2, 3, Some(5), 0), Fate::Deliver);
        assert_eq!(inj.message(0, 2, 9, None, 0), Fate::Duplicate);
    }

    #[test]
    fn bad_rules_name_their_field() {
        for (text, field) in [
            (
                "[[trap]]\nprobability = 1.5\n",
                "faults.trap[0].probability",
            ),
            ("[[trap]]\nagents = 'x'\n", "faults.trap[0].agents"),
            ("[[trap]]\ntick = 1\nfrom_tick = 0\n", "faults.trap[0]"),
            (
                "[[message]]\naction='delay'\n",
                "faults.message[0].delay_ticks",
            ),
            (
                "[[message]]\naction='drop'\ndelay_ticks=1\n",
                "faults.message[0].delay_ticks",
            ),
            (
                "[[model]]\nmodel='m'\nfrom_tick=5\nto_tick=4\n",
                "faults.model[0]",
            ),
        ] {
            let (f, _) = Injector::new(&plan(text), 0).unwrap_err();
            assert_eq!(f, field, "{text}");
        }
    }
}
