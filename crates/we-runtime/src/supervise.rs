//! Supervision in the spirit of Erlang/OTP: what happens when an agent faults.
//!
//! ```toml
//! [[supervision]]
//! group = "workers"        # an [[agents]] group name
//! on_fault = "restart"     # "restart" the agent, "stop" it (the default
//!                          # without a rule), or "escalate" to the group
//! backoff_ticks = 2        # the restart happens at fault tick + 1 + backoff
//! max_restarts = 3         # restarts allowed within `window_ticks`...
//! window_ticks = 100
//! on_limit = "escalate"    # ...then "stop", "escalate" or "abort" the run
//! ```
//!
//! - **restart**: the agent gets a fresh instance at the next generation
//!   (`AgentId.generation + 1`), runs `agent_init` again, and keeps its id.
//!   Messages sent to it while it is down are refused and counted as dead
//!   letters, as are the unread messages its dead generation left behind.
//! - **stop**: the agent stays down for the rest of the run.
//! - **escalate**: every agent of the group is stopped and restarted together
//!   (OTP's `one_for_all`), after the same backoff. Group restarts count
//!   against the same `max_restarts` in `window_ticks`; past it the run is
//!   aborted with an error naming the group, the agent and the tick: the
//!   supervisor tree gave up. Everything up to that tick is in the trace.
//!
//! Every decision is a pure function of the faults so far, so a replay makes
//! the same restarts at the same ticks.

use serde::Deserialize;
use std::collections::VecDeque;

/// What to do when an agent faults.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFault {
    /// Restart the agent.
    Restart,
    /// Leave it stopped.
    #[default]
    Stop,
    /// Restart the whole group.
    Escalate,
}

/// What to do when the restart limit is reached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnLimit {
    /// Leave the agent stopped.
    #[default]
    Stop,
    /// Restart the whole group.
    Escalate,
    /// Abort the run with an error.
    Abort,
}

/// One `[[supervision]]` rule.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupervisionRule {
    /// The `[[agents]]` group it supervises.
    pub group: String,
    /// The policy.
    #[serde(default)]
    pub on_fault: OnFault,
    /// Ticks to wait before restarting.
    #[serde(default)]
    pub backoff_ticks: u64,
    /// Restarts allowed within `window_ticks` (per agent; per group for group
    /// restarts).
    #[serde(default = "default_max_restarts")]
    pub max_restarts: u32,
    /// The window of `max_restarts`, in ticks.
    #[serde(default = "default_window")]
    pub window_ticks: u64,
    /// What happens past the limit.
    #[serde(default)]
    pub on_limit: OnLimit,
}

fn default_max_restarts() -> u32 {
    3
}

fn default_window() -> u64 {
    100
}

/// Largest backoff, in ticks.
pub const BACKOFF_TICKS_MAX: u64 = 1 << 32;

/// What the supervisor decided about one fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Leave the agent down.
    Stop,
    /// Restart the agent at this tick.
    Restart { at: u64 },
    /// Restart every agent of the group at this tick.
    RestartGroup { at: u64 },
    /// Give up: abort the run.
    Abort { reason: String },
}

/// Restart history and rules, per group.
#[derive(Clone, Debug, Default)]
pub(crate) struct Supervisor {
    /// Rule per group index (`None`: stop on fault).
    rules: Vec<Option<SupervisionRule>>,
    /// Ticks of each agent's restarts, within the window.
    agent_restarts: Vec<VecDeque<u64>>,
    /// Ticks of each group's restarts, within the window.
    group_restarts: Vec<VecDeque<u64>>,
}

/// Keeps the ticks in `(t - window, t]` and says whether another fits under `max`.
fn under_limit(history: &mut VecDeque<u64>, t: u64, window: u64, max: u32) -> bool {
    while history.front().is_some_and(|&h| h + window <= t) {
        history.pop_front();
    }
    history.len() < max as usize
}

impl Supervisor {
    /// Validates the rules against the group names; errors are `(field, problem)`.
    pub fn new(
        rules: &[SupervisionRule],
        groups: &[String],
        agent_count: u32,
    ) -> Result<Self, (String, String)> {
        let mut by_group: Vec<Option<SupervisionRule>> = vec![None; groups.len()];
        for (k, rule) in rules.iter().enumerate() {
            let field = format!("supervision[{k}]");
            let Some(g) = groups.iter().position(|name| name == &rule.group) else {
                return Err((
                    format!("{field}.group"),
                    format!(
                        "no [[agents]] group is named `{}` (groups: {})",
                        rule.group,
                        groups.join(", ")
                    ),
                ));
            };
            if by_group[g].is_some() {
                return Err((
                    format!("{field}.group"),
                    format!("group `{}` already has a rule", rule.group),
                ));
            }
            if rule.window_ticks == 0 {
                return Err((format!("{field}.window_ticks"), "must be at least 1".into()));
            }
            if rule.backoff_ticks > BACKOFF_TICKS_MAX {
                return Err((
                    format!("{field}.backoff_ticks"),
                    format!("must be at most {BACKOFF_TICKS_MAX}"),
                ));
            }
            by_group[g] = Some(rule.clone());
        }
        Ok(Self {
            agent_restarts: vec![VecDeque::new(); agent_count as usize],
            group_restarts: vec![VecDeque::new(); groups.len()],
            rules: by_group,
        })
    }

    /// Decides about agent `agent` of group `group`, which faulted at tick `t`.
    pub fn on_fault(&mut self, agent: u32, group: usize, t: u64) -> Decision {
        let Some(rule) = self.rules.get(group).and_then(Option::as_ref) else {
            return Decision::Stop;
        };
        let at = t.saturating_add(1).saturating_add(rule.backoff_ticks);
        match rule.on_fault {
            OnFault::Stop => return Decision::Stop,
            OnFault::Escalate => {}
            OnFault::Restart => {
                let Some(history) = self.agent_restarts.get_mut(agent as usize) else {
                    return Decision::Stop;
                };
                if under_limit(history, t, rule.window_ticks, rule.max_restarts) {
                    history.push_back(t);
                    return Decision::Restart { at };
                }
                match rule.on_limit {
                    OnLimit::Stop => return Decision::Stop,
                    OnLimit::Abort => {
                        return Decision::Abort {
                            reason: format!(
                                "agent {agent} of group `{}` reached {} restarts within {} ticks",
                                rule.group, rule.max_restarts, rule.window_ticks
                            ),
                        };
                    }
                    OnLimit::Escalate => {}
                }
            }
        }
        let Some(history) = self.group_restarts.get_mut(group) else {
            return Decision::Stop;
        };
        if under_limit(history, t, rule.window_ticks, rule.max_restarts) {
            history.push_back(t);
            Decision::RestartGroup { at }
        } else {
            Decision::Abort {
                reason: format!(
                    "group `{}` reached {} group restarts within {} ticks (escalated by agent {agent})",
                    rule.group, rule.max_restarts, rule.window_ticks
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sup(rule: &str) -> Supervisor {
        let rule: SupervisionRule = toml::from_str(rule).unwrap();
        Supervisor::new(&[rule], &["g".to_string()], 4).unwrap()
    }

    #[test]
    fn restart_after_backoff_until_the_limit_then_stop() {
        let mut s = sup(
            "group='g'\non_fault='restart'\nbackoff_ticks=2\nmax_restarts=2\nwindow_ticks=10\n",
        );
        assert_eq!(s.on_fault(1, 0, 0), Decision::Restart { at: 3 });
        assert_eq!(s.on_fault(1, 0, 3), Decision::Restart { at: 6 });
        assert_eq!(s.on_fault(1, 0, 6), Decision::Stop);
        // Another agent has its own count.
        assert_eq!(s.on_fault(2, 0, 6), Decision::Restart { at: 9 });
        // The window slides: restarts at 0 and 3 are out of (10, 20].
        assert_eq!(s.on_fault(1, 0, 20), Decision::Restart { at: 23 });
    }

    #[test]
    fn limit_escalates_to_the_group_then_aborts() {
        let mut s = sup(
            "group='g'\non_fault='restart'\nmax_restarts=1\nwindow_ticks=100\non_limit='escalate'\n",
        );
        assert_eq!(s.on_fault(0, 0, 5), Decision::Restart { at: 6 });
        assert_eq!(s.on_fault(0, 0, 7), Decision::RestartGroup { at: 8 });
        assert!(matches!(s.on_fault(0, 0, 9), Decision::Abort { .. }));
    }

    #[test]
    fn stop_and_no_rule_leave_agents_down() {
        let mut s = sup("group='g'\non_fault='stop'\n");
        assert_eq!(s.on_fault(0, 0, 5), Decision::Stop);
        let mut none = Supervisor::new(&[], &["g".to_string()], 1).unwrap();
        assert_eq!(none.on_fault(0, 0, 5), Decision::Stop);
    }

    #[test]
    fn abort_names_the_agent_and_group() {
        let mut s = sup("group='g'\non_fault='restart'\nmax_restarts=0\non_limit='abort'\n");
        let Decision::Abort { reason } = s.on_fault(3, 0, 1) else {
            panic!("expected abort");
        };
        assert!(
            reason.contains("agent 3") && reason.contains("`g`"),
            "{reason}"
        );
    }

    #[test]
    fn unknown_or_duplicate_groups_are_refused() {
        let rule: SupervisionRule = toml::from_str("group='h'\n").unwrap();
        let (field, problem) =
            Supervisor::new(std::slice::from_ref(&rule), &["g".to_string()], 1).unwrap_err();
        assert_eq!(field, "supervision[0].group");
        assert!(problem.contains("`h`"), "{problem}");
        let g: SupervisionRule = toml::from_str("group='g'\n").unwrap();
        assert!(Supervisor::new(&[g.clone(), g], &["g".to_string()], 1).is_err());
    }
}
