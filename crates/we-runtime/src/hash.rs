//! blake3 of a large buffer on two threads.
//!
//! A blake3 hash is a binary tree over 1 KiB chunks: the root joins the
//! chaining value of a left subtree (the largest power-of-two number of
//! chunks shorter than the input) and of the rest. Both are computed
//! independently ([`blake3::hazmat`]) and joined, which gives exactly
//! `blake3::hash` of the whole input (the tests check it at many lengths).
//! The tick's workload digest hashes one such input: a megabyte a tick for
//! gossip at 1,000 agents, 100 MB at 10,000. A split commit leaves the long
//! runs of it in its two threads' buffers; [`hash_spliced`] hashes the input
//! they make with the main buffer without copying them together (a copy of
//! 100 MB a tick, on the orchestrator's thread, made gossip at 10,000 agents
//! 15 % slower).

use blake3::hazmat::{HasherExt, Mode, left_subtree_len, merge_subtrees_root};

/// Below this a second thread costs more than it saves.
pub(crate) const PARALLEL_MIN: usize = 256 << 10;

/// A run of `parts[part][start..end]` that goes before byte `at` of the
/// main buffer ([`hash_spliced`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Splice {
    pub(crate) at: usize,
    pub(crate) part: usize,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

/// Runs below this are gathered into a buffer before blake3 sees them: its
/// SIMD path hashes many whole chunks of one `update` at once.
const GATHER: usize = 64 << 10;

/// blake3 of `main` with the runs of `splices` (ordered by `at`, each
/// within `main`'s length) inserted, without building that input; on two
/// threads when `parallel` and the input is at least [`PARALLEL_MIN`]
/// bytes. Without splices, `blake3::hash(main)`.
pub(crate) fn hash_spliced(
    main: &[u8],
    parts: &[Vec<u8>; 2],
    splices: &[Splice],
    parallel: bool,
) -> [u8; 32] {
    let mut segments: Vec<&[u8]> = Vec::with_capacity(2 * splices.len() + 1);
    let mut from = 0usize;
    for s in splices {
        let at = s.at.clamp(from, main.len());
        segments.push(main.get(from..at).unwrap_or(&[]));
        let part = parts.get(s.part).map_or(&[][..], |p| p.as_slice());
        segments.push(part.get(s.start..s.end).unwrap_or(&[]));
        from = at;
    }
    segments.push(main.get(from..).unwrap_or(&[]));
    hash_segments(&segments, parallel)
}

/// blake3 of the concatenated `segments`, on two threads when `parallel`
/// and the input is at least [`PARALLEL_MIN`] bytes.
fn hash_segments(segments: &[&[u8]], parallel: bool) -> [u8; 32] {
    let total: usize = segments.iter().map(|s| s.len()).sum();
    let serial = || match segments {
        [one] => *blake3::hash(one).as_bytes(),
        _ => {
            let mut h = blake3::Hasher::new();
            feed(&mut h, segments, 0..total);
            *h.finalize().as_bytes()
        }
    };
    if !parallel || total < PARALLEL_MIN {
        return serial();
    }
    // At least two chunks, so both subtrees are non-empty and the split is a
    // chunk boundary, as the hazmat functions require.
    let split = left_subtree_len(total as u64) as usize;
    let (left_cv, right_cv) = std::thread::scope(|scope| {
        let right = scope.spawn(|| {
            // The recorder's thread keeps off the orchestrator's CPU; this
            // half of a large digest may use it (the tick waits for it).
            crate::affinity::widen();
            let mut h = blake3::Hasher::new();
            h.set_input_offset(split as u64);
            feed(&mut h, segments, split..total);
            h.finalize_non_root()
        });
        let mut h = blake3::Hasher::new();
        feed(&mut h, segments, 0..split);
        (h.finalize_non_root(), right.join())
    });
    match right_cv {
        Ok(right_cv) => *merge_subtrees_root(&left_cv, &right_cv, Mode::Hash).as_bytes(),
        // The right half's thread cannot panic on valid input; hash serially
        // rather than fail.
        Err(_) => serial(),
    }
}

/// Updates `h` with bytes `range` of the concatenated `segments`, gathering
/// short pieces ([`GATHER`]).
fn feed(h: &mut blake3::Hasher, segments: &[&[u8]], range: std::ops::Range<usize>) {
    // Allocated on the first short piece.
    let mut gathered: Vec<u8> = Vec::new();
    let mut offset = 0usize;
    for seg in segments {
        let (start, end) = (offset, offset + seg.len());
        offset = end;
        let lo = range.start.max(start);
        let hi = range.end.min(end);
        if lo >= hi {
            continue;
        }
        let piece = seg.get(lo - start..hi - start).unwrap_or(&[]);
        if piece.len() >= GATHER {
            if !gathered.is_empty() {
                h.update(&gathered);
                gathered.clear();
            }
            h.update(piece);
            continue;
        }
        if gathered.capacity() == 0 {
            gathered.reserve_exact(GATHER);
        }
        let mut piece = piece;
        while !piece.is_empty() {
            let room = GATHER - gathered.len();
            let (now, rest) = piece.split_at(room.min(piece.len()));
            gathered.extend_from_slice(now);
            piece = rest;
            if gathered.len() == GATHER {
                h.update(&gathered);
                gathered.clear();
            }
        }
    }
    if !gathered.is_empty() {
        h.update(&gathered);
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
            for parallel in [true, false] {
                let got = hash_spliced(bytes, &Default::default(), &[], parallel);
                assert_eq!(got, expected, "length {len}, parallel {parallel}");
            }
        }
    }

    #[test]
    fn spliced_equals_blake3_of_the_spliced_input() {
        let data: Vec<u8> = (0..(2 << 20) + 333).map(|i| (i * 17 % 253) as u8).collect();
        let parts = [data[..(1 << 20)].to_vec(), data[(1 << 20)..].to_vec()];
        for (main_len, runs) in [
            (40usize, 1usize),
            (100, 7),
            (5000, 30),
            (PARALLEL_MIN, 200),
            (1 << 20, 60),
            ((1 << 20) + 5, 3),
        ] {
            let main = &data[..main_len];
            let mut splices = Vec::new();
            let mut expected = Vec::new();
            let mut from = 0;
            for k in 0..runs {
                let at = (main_len * k / runs).max(from);
                let part = k % 2;
                let start = (k * 7919) % 4000;
                // Runs from short to past GATHER.
                let end = (start + 1 + (k * 1237) % (3 * GATHER)).min(parts[part].len());
                expected.extend_from_slice(&main[from..at]);
                expected.extend_from_slice(&parts[part][start..end]);
                splices.push(Splice {
                    at,
                    part,
                    start,
                    end,
                });
                from = at;
            }
            expected.extend_from_slice(&main[from..]);
            let want = *blake3::hash(&expected).as_bytes();
            for parallel in [false, true] {
                assert_eq!(
                    hash_spliced(main, &parts, &splices, parallel),
                    want,
                    "main {main_len}, {runs} runs, parallel {parallel}"
                );
            }
        }
    }
}
