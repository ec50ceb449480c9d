//! Capabilities: what an agent module declares it may use.
//!
//! A module carries its declaration in a custom section named
//! [`CAPABILITIES_SECTION`] (written by `we_agent::capabilities!`), as UTF-8
//! text, one `key = values` line per capability:
//!
//! ```text
//! host = tick self_id rand_u64 emit log   # host functions it may import
//! send = *                                # agents it may send to: * or ids/ranges
//! topics = 1 2 10-19                      # topics it may publish to and join
//! regions = 7                             # shared regions it may create and write
//! models = policy                         # models it may run inference on
//! ```
//!
//! Everything not declared is denied: a module with no section may import no
//! host function at all, so it cannot even emit effects. The sandbox refuses
//! to link an undeclared import; the runtime refuses (and counts) a send,
//! publish, join, region write or inference request outside the declaration.
//!
//! ```
//! use we_core::Capabilities;
//! let caps = Capabilities::parse("host = emit tick\nsend = 0-9\ntopics = 3\n").unwrap();
//! assert!(caps.allows_host("emit") && !caps.allows_host("log"));
//! assert!(caps.send.allows(9) && !caps.send.allows(10));
//! assert!(caps.topics.allows(3) && !caps.regions.allows(3));
//! ```

use std::fmt;

/// Name of the custom section holding a module's capability declaration.
pub const CAPABILITIES_SECTION: &str = "we.capabilities";

/// Largest declaration accepted, in bytes.
pub const CAPABILITIES_BYTES_MAX: usize = 16 << 10;

/// A set of numeric ids (agents, topics, regions): all, or sorted disjoint
/// inclusive ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum IdScope {
    /// None (the default).
    #[default]
    Nothing,
    /// Every id.
    All,
    /// These inclusive ranges, sorted and merged.
    Ranges(Vec<(u32, u32)>),
}

impl IdScope {
    /// Parses `*`, or whitespace-separated ids and `lo-hi` ranges (empty text:
    /// no ids).
    pub fn parse(text: &str) -> Result<Self, String> {
        let values: Vec<&str> = text.split_whitespace().collect();
        parse_ids(&values)
    }

    /// Whether `id` is in the set.
    #[inline]
    pub fn allows(&self, id: u32) -> bool {
        match self {
            IdScope::Nothing => false,
            IdScope::All => true,
            IdScope::Ranges(r) => {
                // Last range starting at or before `id`.
                let k = r.partition_point(|&(lo, _)| lo <= id);
                k > 0 && r[k - 1].1 >= id
            }
        }
    }
}

impl fmt::Display for IdScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdScope::Nothing => write!(f, "(none)"),
            IdScope::All => write!(f, "*"),
            IdScope::Ranges(r) => {
                for (k, &(lo, hi)) in r.iter().enumerate() {
                    if k > 0 {
                        write!(f, " ")?;
                    }
                    if lo == hi {
                        write!(f, "{lo}")?;
                    } else {
                        write!(f, "{lo}-{hi}")?;
                    }
                }
                Ok(())
            }
        }
    }
}

/// A set of names (models): all, or a sorted list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum NameScope {
    /// None (the default).
    #[default]
    Nothing,
    /// Every name.
    All,
    /// These names, sorted, without duplicates.
    Only(Vec<String>),
}

impl NameScope {
    /// Whether `name` is in the set.
    pub fn allows(&self, name: &str) -> bool {
        match self {
            NameScope::Nothing => false,
            NameScope::All => true,
            NameScope::Only(names) => names.binary_search_by(|n| n.as_str().cmp(name)).is_ok(),
        }
    }
}

impl fmt::Display for NameScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameScope::Nothing => write!(f, "(none)"),
            NameScope::All => write!(f, "*"),
            NameScope::Only(n) => write!(f, "{}", n.join(" ")),
        }
    }
}

/// A module's capability declaration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Host functions of module `we` it may import (sorted).
    pub host: Vec<String>,
    /// Agents it may send to.
    pub send: IdScope,
    /// Topics it may publish to and join.
    pub topics: IdScope,
    /// Shared regions it may create and write.
    pub regions: IdScope,
    /// Models it may request inference from.
    pub models: NameScope,
}

/// Why a declaration was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("capability declaration, line {line}: {problem}")]
pub struct CapabilityError {
    /// 1-based line (0 for the whole section).
    pub line: usize,
    /// What is wrong.
    pub problem: String,
}

impl Capabilities {
    /// Whether host function `name` (of module `we`) may be imported.
    pub fn allows_host(&self, name: &str) -> bool {
        self.host.binary_search_by(|n| n.as_str().cmp(name)).is_ok()
    }

    /// Parses a declaration. `#` starts a comment; blank lines are ignored;
    /// each key may appear once; unknown keys, malformed ids and ranges are
    /// refused with their line.
    pub fn parse(text: &str) -> Result<Self, CapabilityError> {
        if text.len() > CAPABILITIES_BYTES_MAX {
            return Err(CapabilityError {
                line: 0,
                problem: format!(
                    "{} bytes, more than the {CAPABILITIES_BYTES_MAX}-byte limit",
                    text.len()
                ),
            });
        }
        let mut caps = Capabilities::default();
        let mut seen: Vec<&str> = Vec::new();
        for (k, raw) in text.lines().enumerate() {
            let line = k + 1;
            let err = |problem: String| CapabilityError { line, problem };
            let content = raw.split('#').next().unwrap_or("").trim();
            if content.is_empty() {
                continue;
            }
            let Some((key, values)) = content.split_once('=') else {
                return Err(err(format!("expected `key = values`, found `{content}`")));
            };
            let key = key.trim();
            if seen.contains(&key) {
                return Err(err(format!("`{key}` is declared twice")));
            }
            let values: Vec<&str> = values.split_whitespace().collect();
            match key {
                "host" => {
                    let known: Vec<&str> = we_abi_host_names();
                    for v in &values {
                        if !known.contains(v) {
                            return Err(err(format!(
                                "unknown host function `{v}` (known: {})",
                                known.join(", ")
                            )));
                        }
                        caps.host.push((*v).to_string());
                    }
                    caps.host.sort();
                    caps.host.dedup();
                }
                "send" => caps.send = parse_ids(&values).map_err(err)?,
                "topics" => caps.topics = parse_ids(&values).map_err(err)?,
                "regions" => caps.regions = parse_ids(&values).map_err(err)?,
                "models" => {
                    caps.models = if values == ["*"] {
                        NameScope::All
                    } else if values.is_empty() {
                        NameScope::Nothing
                    } else {
                        if values.contains(&"*") {
                            return Err(err("`*` must stand alone".into()));
                        }
                        let mut names: Vec<String> =
                            values.iter().map(|v| (*v).to_string()).collect();
                        names.sort();
                        names.dedup();
                        NameScope::Only(names)
                    }
                }
                other => {
                    return Err(err(format!(
                        "unknown capability `{other}` (known: host, send, topics, regions, models)"
                    )));
                }
            }
            seen.push(key);
        }
        Ok(caps)
    }
}

impl fmt::Display for Capabilities {
    /// The canonical declaration text: every key, one per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = if self.host.is_empty() {
            "(none)".to_string()
        } else {
            self.host.join(" ")
        };
        writeln!(f, "host = {host}")?;
        writeln!(f, "send = {}", self.send)?;
        writeln!(f, "topics = {}", self.topics)?;
        writeln!(f, "regions = {}", self.regions)?;
        write!(f, "models = {}", self.models)
    }
}

/// The host functions of ABI v1 (module `we`).
fn we_abi_host_names() -> Vec<&'static str> {
    vec![
        "tick",
        "self_id",
        "rand_u64",
        "emit",
        "log",
        "region_read",
        "region_len",
    ]
}

fn parse_ids(values: &[&str]) -> Result<IdScope, String> {
    if values == ["*"] {
        return Ok(IdScope::All);
    }
    if values.contains(&"*") {
        return Err("`*` must stand alone".into());
    }
    let mut ranges = Vec::with_capacity(values.len());
    for v in values {
        let num = |s: &str| {
            s.parse::<u32>()
                .map_err(|_| format!("`{s}` is not an id (a number below 2^32)"))
        };
        let (lo, hi) = match v.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => (num(v)?, num(v)?),
        };
        if lo > hi {
            return Err(format!("range `{v}` is empty"));
        }
        ranges.push((lo, hi));
    }
    if ranges.is_empty() {
        return Ok(IdScope::Nothing);
    }
    ranges.sort_unstable();
    let mut merged: Vec<(u32, u32)> = Vec::with_capacity(ranges.len());
    for (lo, hi) in ranges {
        match merged.last_mut() {
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ => merged.push((lo, hi)),
        }
    }
    Ok(IdScope::Ranges(merged))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_declaration_denies_everything() {
        let c = Capabilities::parse("").unwrap();
        assert!(!c.allows_host("emit"));
        assert!(!c.send.allows(0) && !c.topics.allows(0) && !c.regions.allows(0));
        assert!(!c.models.allows("policy"));
    }

    #[test]
    fn ranges_merge_and_bound() {
        let c = Capabilities::parse("send = 5 1-3 4 10-12 # comment\n").unwrap();
        assert_eq!(c.send, IdScope::Ranges(vec![(1, 5), (10, 12)]));
        for (id, ok) in [
            (0, false),
            (1, true),
            (5, true),
            (6, false),
            (12, true),
            (13, false),
        ] {
            assert_eq!(c.send.allows(id), ok, "{id}");
        }
        assert_eq!(c.send.to_string(), "1-5 10-12");
    }

    #[test]
    fn bad_declarations_name_their_line() {
        for (text, needle) in [
            (
                "host = emit\nhost = log\n",
                "line 2: `host` is declared twice",
            ),
            ("\nhost = fork\n", "line 2: unknown host function `fork`"),
            ("send = 3-1\n", "line 1: range `3-1` is empty"),
            ("send = x\n", "`x` is not an id"),
            ("topics = * 3\n", "`*` must stand alone"),
            ("files = /etc\n", "unknown capability `files`"),
            ("host emit\n", "expected `key = values`"),
        ] {
            let e = Capabilities::parse(text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text:?}: {e}");
        }
        let big = "#".repeat(CAPABILITIES_BYTES_MAX + 1);
        assert!(Capabilities::parse(&big).is_err());
    }

    #[test]
    fn display_is_canonical() {
        let c = Capabilities::parse("models = b a a\nhost = log emit\ntopics = *\n").unwrap();
        let text = c.to_string();
        assert_eq!(
            text,
            "host = emit log\nsend = (none)\ntopics = *\nregions = (none)\nmodels = a b"
        );
    }
}
