//! The hash-chained trace: recorder, validating reader, torn-tail recovery.
