//! The message bus: buffered effects committed in (agent id, emission index) order into bounded mailboxes.
