//! The orchestrator: the deterministic tick, composing host, bus, scheduler, trace and inference.
