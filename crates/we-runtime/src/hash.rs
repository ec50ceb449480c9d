//! blake3 of a large buffer on two threads.
//!
//! A blake3 hash is a binary tree over 1 KiB chunks: each node joins the
//! chaining value of a left subtree (the largest power-of-two number of
//! chunks shorter than the node's input) and of the rest. The input is cut
//! into subtrees of at most 1/32 of it, each thread computes the chaining
//! values of a run of them holding half of the input
//! ([`blake3::hazmat`]), and they are joined as the tree joins them, which
//! gives exactly `blake3::hash` of the whole input (the tests check it at
//! many lengths). The tick's workload digest hashes one such input: a
//! megabyte a tick for gossip at 1,000 agents, 100 MB at 10,000. A split
//! commit leaves the long runs of it with its two threads, as bytes or as
//! noted copies; [`hash_spliced`] hashes the input they make with the main
//! buffer without building it (a copy of 100 MB a tick, on the
//! orchestrator's thread, made gossip at 10,000 agents 15 % slower).

use blake3::hazmat::{
    ChainingValue, HasherExt, Mode, left_subtree_len, merge_subtrees_non_root, merge_subtrees_root,
};

/// Below this a second thread costs more than it saves.
pub(crate) const PARALLEL_MIN: usize = 256 << 10;

/// A run of the digest input kept outside the main buffer, which goes before
/// byte `at` of it ([`hash_spliced`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Splice {
    pub(crate) at: usize,
    /// Which of the two parts' buffers holds it.
    pub(crate) part: usize,
    pub(crate) run: Run,
}

/// What a [`Splice`] inserts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Run {
    /// Bytes `start..end` of the part's byte buffer.
    Bytes { start: usize, end: usize },
    /// The 16-byte encodings of copies of one 8-byte message from `sender`
    /// (`crate::run::digest_message`), one per receiver in `start..end` of
    /// the part's receiver buffer, in that order: written out only as they
    /// are hashed.
    Copies {
        sender: u32,
        word: [u8; 8],
        start: usize,
        end: usize,
    },
}

impl Splice {
    /// Bytes it inserts.
    pub(crate) fn len(&self) -> usize {
        match self.run {
            Run::Bytes { start, end } => end.saturating_sub(start),
            Run::Copies { start, end, .. } => COPY * end.saturating_sub(start),
        }
    }
}

/// Bytes of one copy's encoding.
const COPY: usize = 16;

/// A piece of the digest input.
#[derive(Clone, Copy)]
enum Segment<'a> {
    Bytes(&'a [u8]),
    Copies {
        sender: u32,
        word: [u8; 8],
        receivers: &'a [u32],
    },
}

impl Segment<'_> {
    fn len(&self) -> usize {
        match self {
            Segment::Bytes(b) => b.len(),
            Segment::Copies { receivers, .. } => COPY * receivers.len(),
        }
    }
}

/// The two parts' buffers that splices point into.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Parts<'a> {
    pub(crate) bytes: &'a [Vec<u8>; 2],
    pub(crate) receivers: &'a [Vec<u32>; 2],
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
    parts: Parts<'_>,
    splices: &[Splice],
    parallel: bool,
) -> [u8; 32] {
    let mut segments: Vec<Segment<'_>> = Vec::with_capacity(2 * splices.len() + 1);
    let mut from = 0usize;
    for s in splices {
        let at = s.at.clamp(from, main.len());
        segments.push(Segment::Bytes(main.get(from..at).unwrap_or(&[])));
        segments.push(match s.run {
            Run::Bytes { start, end } => Segment::Bytes(
                parts
                    .bytes
                    .get(s.part)
                    .and_then(|p| p.get(start..end))
                    .unwrap_or(&[]),
            ),
            Run::Copies {
                sender,
                word,
                start,
                end,
            } => Segment::Copies {
                sender,
                word,
                receivers: parts
                    .receivers
                    .get(s.part)
                    .and_then(|p| p.get(start..end))
                    .unwrap_or(&[]),
            },
        });
        from = at;
    }
    segments.push(Segment::Bytes(main.get(from..).unwrap_or(&[])));
    hash_segments(&segments, parallel)
}

/// blake3 of the concatenated `segments`, on two threads when `parallel`
/// and the input is at least [`PARALLEL_MIN`] bytes.
fn hash_segments(segments: &[Segment<'_>], parallel: bool) -> [u8; 32] {
    let total: usize = segments.iter().map(Segment::len).sum();
    let serial = || match segments {
        [Segment::Bytes(one)] => *blake3::hash(one).as_bytes(),
        _ => {
            let mut h = blake3::Hasher::new();
            Reader::new(segments).feed(&mut Gather::default(), &mut h, 0..total);
            *h.finalize().as_bytes()
        }
    };
    if !parallel || total < PARALLEL_MIN {
        return serial();
    }
    // Subtrees of at most `max` bytes, in input order: each thread hashes a
    // run of them holding half of the input (the root's own two subtrees
    // can be 64 and 36 % of it), and their chaining values are joined as
    // the tree joins them.
    let total = total as u64;
    let max = (total / LEAVES).max(CHUNK);
    let mut leaves = Vec::new();
    subtrees(0, total, max, &mut leaves);
    let cut = leaves.partition_point(|&(start, len)| start + len <= total / 2);
    let (first, second) = leaves.split_at(cut.max(1));
    let (mut cvs, second_cvs) = std::thread::scope(|scope| {
        let second = scope.spawn(|| {
            // The recorder's thread keeps off the orchestrator's CPU; this
            // half of a large digest may use it (the tick waits for it).
            crate::affinity::widen();
            chaining_values(segments, second)
        });
        (chaining_values(segments, first), second.join())
    });
    match second_cvs {
        Ok(more) => cvs.extend(more),
        // The second thread cannot panic on valid input; hash serially
        // rather than fail.
        Err(_) => return serial(),
    }
    let mut cvs = cvs.iter();
    let left = left_subtree_len(total);
    match (join(left, max, &mut cvs), join(total - left, max, &mut cvs)) {
        (Some(l), Some(r)) => *merge_subtrees_root(&l, &r, Mode::Hash).as_bytes(),
        _ => serial(),
    }
}

/// Bytes of a blake3 chunk.
const CHUNK: u64 = blake3::CHUNK_LEN as u64;

/// About this many subtrees share a parallel hash between its two threads.
const LEAVES: u64 = 32;

/// The subtrees of at most `max` bytes (at least a chunk) that the subtree
/// of `len` bytes at `start` is made of, in order.
fn subtrees(start: u64, len: u64, max: u64, out: &mut Vec<(u64, u64)>) {
    if len <= max {
        out.push((start, len));
        return;
    }
    let left = left_subtree_len(len);
    subtrees(start, left, max, out);
    subtrees(start + left, len - left, max, out);
}

/// The chaining value of a subtree of `len` bytes from the values of its
/// [`subtrees`] of at most `max`, taken from `cvs` in order.
fn join(
    len: u64,
    max: u64,
    cvs: &mut std::slice::Iter<'_, ChainingValue>,
) -> Option<ChainingValue> {
    if len <= max {
        return cvs.next().copied();
    }
    let left = left_subtree_len(len);
    let l = join(left, max, cvs)?;
    let r = join(len - left, max, cvs)?;
    Some(merge_subtrees_non_root(&l, &r, Mode::Hash))
}

/// The chaining values of consecutive subtrees `(start, len)` of the input.
fn chaining_values(segments: &[Segment<'_>], leaves: &[(u64, u64)]) -> Vec<ChainingValue> {
    let mut reader = Reader::new(segments);
    let mut gather = Gather::default();
    leaves
        .iter()
        .map(|&(start, len)| {
            let mut h = blake3::Hasher::new();
            h.set_input_offset(start);
            let start = start as usize;
            reader.feed(&mut gather, &mut h, start..start + len as usize);
            h.finalize_non_root()
        })
        .collect()
}

/// Walks the concatenated segments forward, range after range.
struct Reader<'s> {
    segments: &'s [Segment<'s>],
    /// The segment the next range starts in, and where that segment starts.
    next: usize,
    next_start: usize,
}

impl<'s> Reader<'s> {
    fn new(segments: &'s [Segment<'s>]) -> Self {
        Self {
            segments,
            next: 0,
            next_start: 0,
        }
    }

    /// Updates `h` with bytes `range` of the input (at or after the ranges
    /// fed before), then hashes what `gather` holds.
    fn feed(&mut self, gather: &mut Gather, h: &mut blake3::Hasher, range: std::ops::Range<usize>) {
        while let Some(seg) = self.segments.get(self.next) {
            let (start, end) = (self.next_start, self.next_start + seg.len());
            let lo = range.start.max(start);
            let hi = range.end.min(end);
            if lo < hi {
                match *seg {
                    Segment::Bytes(bytes) => {
                        gather.bytes(h, bytes.get(lo - start..hi - start).unwrap_or(&[]))
                    }
                    Segment::Copies {
                        sender,
                        word,
                        receivers,
                    } => gather.copies(h, sender, word, receivers, lo - start, hi - start),
                }
            }
            if end > range.end {
                break;
            }
            self.next += 1;
            self.next_start = end;
        }
        gather.flush(h);
    }
}

/// Gathers short pieces of the input for blake3 ([`GATHER`]), allocated on
/// the first one. Between pieces it hands blake3 only whole chunks, so that
/// each `update` after the first takes its many-chunk SIMD path.
#[derive(Default)]
struct Gather {
    buf: Box<[u8]>,
    /// Bytes of `buf` gathered.
    len: usize,
}

impl Gather {
    /// Room for at least `n` (at most [`GATHER`]) more bytes: what was
    /// gathered is hashed when the buffer is full.
    #[inline]
    fn room(&mut self, h: &mut blake3::Hasher, n: usize) -> bool {
        if self.buf.is_empty() {
            self.buf = vec![0; GATHER].into_boxed_slice();
        }
        if self.len == GATHER {
            self.flush(h);
        }
        self.len + n <= GATHER
    }

    /// Appends `piece`, which fits ([`Gather::room`]).
    #[inline]
    fn put(&mut self, piece: &[u8]) {
        if let Some(to) = self.buf.get_mut(self.len..self.len + piece.len()) {
            to.copy_from_slice(piece);
            self.len += piece.len();
        }
    }

    fn bytes(&mut self, h: &mut blake3::Hasher, mut piece: &[u8]) {
        if piece.len() >= GATHER {
            // Whole chunks go to blake3 straight from the piece, once the
            // buffer ends on a chunk boundary.
            let top_up = (blake3::CHUNK_LEN - self.len % blake3::CHUNK_LEN) % blake3::CHUNK_LEN;
            let (head, rest) = piece.split_at(top_up);
            if !head.is_empty() {
                self.room(h, head.len());
                self.put(head);
            }
            self.flush(h);
            let whole = rest.len() - rest.len() % blake3::CHUNK_LEN;
            let (direct, tail) = rest.split_at(whole);
            h.update(direct);
            piece = tail;
        }
        while !piece.is_empty() {
            self.room(h, 0);
            let take = (GATHER - self.len).min(piece.len());
            let (now, rest) = piece.split_at(take);
            self.put(now);
            piece = rest;
        }
    }

    /// Bytes `lo..hi` of the encodings of copies of `word` from `sender` to
    /// each of `receivers`, written here as they are hashed.
    fn copies(
        &mut self,
        h: &mut blake3::Hasher,
        sender: u32,
        word: [u8; 8],
        receivers: &[u32],
        lo: usize,
        hi: usize,
    ) {
        let encode = |receiver: u32| {
            let mut encoding = [0u8; COPY];
            encoding[..4].copy_from_slice(&sender.to_le_bytes());
            encoding[4..8].copy_from_slice(&receiver.to_le_bytes());
            encoding[8..].copy_from_slice(&word);
            encoding
        };
        let mut at = lo;
        // A range that starts inside an encoding (a split between threads).
        if !at.is_multiple_of(COPY) {
            let k = at / COPY;
            let Some(&receiver) = receivers.get(k) else {
                return;
            };
            let to = COPY.min(hi - k * COPY);
            self.bytes(h, encode(receiver).get(at % COPY..to).unwrap_or(&[]));
            at = k * COPY + to;
        }
        let whole = hi / COPY;
        let mut rest = receivers
            .get(at.div_ceil(COPY).min(whole)..whole)
            .unwrap_or(&[]);
        while let Some((&first, _)) = rest.split_first() {
            if !self.room(h, COPY) {
                // Across the end of the buffer.
                self.bytes(h, &encode(first));
                rest = rest.get(1..).unwrap_or(&[]);
                continue;
            }
            // As many whole encodings as fit, written in place.
            let fit = ((GATHER - self.len) / COPY).min(rest.len());
            let (now, later) = rest.split_at(fit);
            let Some(out) = self.buf.get_mut(self.len..self.len + fit * COPY) else {
                break;
            };
            for (slot, &receiver) in out.chunks_exact_mut(COPY).zip(now) {
                slot.copy_from_slice(&encode(receiver));
            }
            self.len += fit * COPY;
            rest = later;
        }
        at = at.max(whole * COPY);
        // A range that ends inside one.
        if at < hi
            && let Some(&receiver) = receivers.get(at / COPY)
        {
            self.bytes(h, encode(receiver).get(..hi - at).unwrap_or(&[]));
        }
    }

    /// Hashes what was gathered (when full, and at the end of a range).
    fn flush(&mut self, h: &mut blake3::Hasher) {
        if self.len > 0 {
            h.update(self.buf.get(..self.len).unwrap_or(&[]));
            self.len = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `hash_spliced`, serial and parallel, is blake3 of `expected`.
    fn assert_hashes_as(
        main: &[u8],
        parts: Parts<'_>,
        splices: &[Splice],
        expected: &[u8],
        case: &str,
    ) {
        let want = *blake3::hash(expected).as_bytes();
        for parallel in [false, true] {
            assert_eq!(
                hash_spliced(main, parts, splices, parallel),
                want,
                "{case}, parallel {parallel}"
            );
        }
    }

    /// Splices `runs` runs into `main`, the k-th (from `run(k, expected)`,
    /// which appends the run's bytes to `expected`) before offset
    /// `main.len() * k / runs`; the splices and the whole input written out.
    fn splice_runs(
        main: &[u8],
        runs: usize,
        mut run: impl FnMut(usize, &mut Vec<u8>) -> (usize, Run),
    ) -> (Vec<Splice>, Vec<u8>) {
        let mut splices = Vec::new();
        let mut expected = Vec::new();
        let mut from = 0;
        for k in 0..runs {
            let at = (main.len() * k / runs).max(from);
            expected.extend_from_slice(&main[from..at]);
            let (part, run) = run(k, &mut expected);
            splices.push(Splice { at, part, run });
            from = at;
        }
        expected.extend_from_slice(&main[from..]);
        (splices, expected)
    }

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
            let none: [Vec<u8>; 2] = Default::default();
            let no_receivers: [Vec<u32>; 2] = Default::default();
            let parts = Parts {
                bytes: &none,
                receivers: &no_receivers,
            };
            assert_hashes_as(bytes, parts, &[], bytes, &format!("length {len}"));
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
            let (splices, expected) = splice_runs(main, runs, |k, expected| {
                let part = k % 2;
                let start = (k * 7919) % 4000;
                // Runs from short to past GATHER.
                let end = (start + 1 + (k * 1237) % (3 * GATHER)).min(parts[part].len());
                expected.extend_from_slice(&parts[part][start..end]);
                (part, Run::Bytes { start, end })
            });
            let no_receivers: [Vec<u32>; 2] = Default::default();
            let spliced = Parts {
                bytes: &parts,
                receivers: &no_receivers,
            };
            let case = format!("main {main_len}, {runs} runs");
            assert_hashes_as(main, spliced, &splices, &expected, &case);
        }
    }

    #[test]
    fn noted_copies_hash_as_their_encodings_written_out() {
        let data: Vec<u8> = (0..(1 << 20) + 99).map(|i| (i * 13 % 241) as u8).collect();
        let bytes = [data[..(1 << 19)].to_vec(), data[(1 << 19)..].to_vec()];
        let receivers: [Vec<u32>; 2] = [
            (0..40_000).map(|i| i * 3 + 1).collect(),
            (0..60_000).map(|i| i * 5 + 2).collect(),
        ];
        let encoding = |sender: u32, receiver: u32, word: [u8; 8]| {
            let mut e = Vec::with_capacity(16);
            e.extend_from_slice(&sender.to_le_bytes());
            e.extend_from_slice(&receiver.to_le_bytes());
            e.extend_from_slice(&word);
            e
        };
        // Copies runs of 1 to past a gather buffer's worth (4,096), between
        // byte runs and main-buffer pieces of odd lengths, so that the
        // two-thread split and the gather buffer's ends fall inside
        // encodings.
        for (main_len, runs) in [(9usize, 1usize), (333, 5), (5000, 24), (PARALLEL_MIN, 40)] {
            let main = &data[..main_len];
            let (splices, expected) = splice_runs(main, runs, |k, expected| {
                let part = k % 2;
                let run = if k % 3 == 2 {
                    let start = (k * 7919) % 4000;
                    let end = (start + 1 + (k * 1237) % 5000).min(bytes[part].len());
                    expected.extend_from_slice(&bytes[part][start..end]);
                    Run::Bytes { start, end }
                } else {
                    let sender = k as u32 * 101;
                    let word = (k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes();
                    let start = (k * 4099) % 20_000;
                    let end = (start + 1 + (k * 3571) % 9000).min(receivers[part].len());
                    for &r in &receivers[part][start..end] {
                        expected.extend(encoding(sender, r, word));
                    }
                    Run::Copies {
                        sender,
                        word,
                        start,
                        end,
                    }
                };
                (part, run)
            });
            assert!(splices.iter().all(|splice| splice.len() > 0));
            let total = main_len + splices.iter().map(Splice::len).sum::<usize>();
            assert_eq!(total, expected.len());
            let parts = Parts {
                bytes: &bytes,
                receivers: &receivers,
            };
            let case = format!("main {main_len}, {runs} runs, {total} bytes");
            assert_hashes_as(main, parts, &splices, &expected, &case);
        }
    }
}
