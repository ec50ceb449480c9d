//! blake3 of a large buffer on two threads.
//!
//! A blake3 hash is a binary tree over 1 KiB chunks: the root joins the
//! chaining value of a left subtree (the largest power-of-two number of
//! chunks shorter than the input) and of the rest. Both are computed
//! independently ([`blake3::hazmat`]) and joined, which gives exactly
//! `blake3::hash` of the whole input (the tests check it at many lengths).
//! The tick's workload digest hashes one such buffer: a megabyte a tick for
//! gossip at 1,000 agents.

use blake3::hazmat::{HasherExt, Mode, left_subtree_len, merge_subtrees_root};

/// Below this a second thread costs more than it saves.
pub(crate) const PARALLEL_MIN: usize = 256 << 10;

/// `blake3::hash(bytes)`, on two threads when `parallel` and the input is at
/// least [`PARALLEL_MIN`] bytes.
pub(crate) fn hash(bytes: &[u8], parallel: bool) -> [u8; 32] {
    if !parallel || bytes.len() < PARALLEL_MIN {
        return *blake3::hash(bytes).as_bytes();
    }
    // At least two chunks, so both subtrees are non-empty and the split is a
    // chunk boundary, as the hazmat functions require.
    let split = left_subtree_len(bytes.len() as u64) as usize;
    let (left, right) = bytes.split_at(split);
    let (left_cv, right_cv) = std::thread::scope(|scope| {
        let right = scope.spawn(|| {
            // The recorder's thread keeps off the orchestrator's CPU; this
            // half of a large digest may use it (the tick waits for it).
            crate::affinity::widen();
            blake3::Hasher::new()
                .set_input_offset(split as u64)
                .update(right)
                .finalize_non_root()
        });
        let left_cv = blake3::Hasher::new().update(left).finalize_non_root();
        (left_cv, right.join())
    });
    match right_cv {
        Ok(right_cv) => *merge_subtrees_root(&left_cv, &right_cv, Mode::Hash).as_bytes(),
        // The right half's thread cannot panic on valid input; hash serially
        // rather than fail.
        Err(_) => *blake3::hash(bytes).as_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equals_blake3_at_every_kind_of_length() {
        let data: Vec<u8> = (0..(3 << 20) + 77).map(|i| (i * 31 % 251) as u8).collect();
        let chunk = 1024;
        for len in [
            0,
            1,
            chunk,
            PARALLEL_MIN - 1,
            PARALLEL_MIN,
            PARALLEL_MIN + 1,
            PARALLEL_MIN + chunk,
            1 << 20,
            (1 << 20) + 16,
            (1 << 20) + chunk + 1,
            3 << 20,
            data.len(),
        ] {
            let bytes = &data[..len];
            let expected = *blake3::hash(bytes).as_bytes();
            assert_eq!(hash(bytes, true), expected, "length {len}");
            assert_eq!(hash(bytes, false), expected, "length {len}");
        }
    }
}
