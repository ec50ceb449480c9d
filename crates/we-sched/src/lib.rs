//! Deterministic event queue: FIFO and priority policies, round-robin across agents, dependency order.
