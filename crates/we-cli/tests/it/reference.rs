//! Plain-Rust references of the workloads of shared/workloads.md: no wasm, no
//! runtime, written straight from the spec, to check the runtime's digests.

/// `xorshift64` of the spec.
pub fn xorshift64(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

/// Advances `d` with tick `t`'s messages in commit order.
fn advance(d: &mut [u8; 32], t: u64, msgs: &[(u32, u32, u64)]) {
    let mut h = blake3::Hasher::new();
    h.update(d);
    h.update(&t.to_le_bytes());
    for (s, r, p) in msgs {
        h.update(&s.to_le_bytes());
        h.update(&r.to_le_bytes());
        h.update(&p.to_le_bytes());
    }
    *d = *h.finalize().as_bytes();
}

/// Inboxes for the next tick: per receiver, messages in commit order.
fn deliver(n: u32, msgs: &[(u32, u32, u64)]) -> Vec<Vec<u64>> {
    let mut inbox = vec![Vec::new(); n as usize];
    for &(_, r, p) in msgs {
        inbox[r as usize].push(p);
    }
    inbox
}

pub fn ring(n: u32, ticks: u64) -> [u8; 32] {
    let mut d = [0u8; 32];
    let mut inbox: Vec<Vec<u64>> = vec![Vec::new(); n as usize];
    for t in 0..ticks {
        let mut msgs = Vec::new();
        for i in 0..n {
            if t == 0 {
                msgs.push((i, (i + 1) % n, i as u64));
            } else {
                for &v in &inbox[i as usize] {
                    msgs.push((i, (i + 1) % n, v.wrapping_add(1)));
                }
            }
        }
        advance(&mut d, t, &msgs);
        inbox = deliver(n, &msgs);
    }
    d
}

pub fn compute(n: u32, ticks: u64) -> [u8; 32] {
    let mut d = [0u8; 32];
    let mut state: Vec<u64> = (0..n as u64).map(|i| i + 1).collect();
    let mut inbox: Vec<Vec<u64>> = vec![Vec::new(); n as usize];
    for t in 0..ticks {
        let mut msgs = Vec::new();
        for i in 0..n {
            let s = &mut state[i as usize];
            for &v in &inbox[i as usize] {
                *s ^= v;
            }
            for _ in 0..10_000 {
                *s = xorshift64(*s);
            }
            msgs.push((i, (i * 7 + 1) % n, *s));
        }
        advance(&mut d, t, &msgs);
        inbox = deliver(n, &msgs);
    }
    d
}

pub fn gossip(n: u32, ticks: u64) -> [u8; 32] {
    const K: u32 = 16;
    let mut d = [0u8; 32];
    let mut counter = vec![0u64; n as usize];
    let mut inbox_len = vec![0u64; n as usize];
    // subscribers[k]: agents with i % K == k, ascending.
    let subscribers: Vec<Vec<u32>> = (0..K)
        .map(|k| (0..n).filter(|i| i % K == k).collect())
        .collect();
    for t in 0..ticks {
        let mut msgs = Vec::new();
        for i in 0..n {
            counter[i as usize] += inbox_len[i as usize];
            let topic = ((i as u64 * 3 + t) % K as u64) as usize;
            for &r in &subscribers[topic] {
                if r != i {
                    msgs.push((i, r, counter[i as usize]));
                }
            }
        }
        advance(&mut d, t, &msgs);
        inbox_len = vec![0; n as usize];
        for &(_, r, _) in &msgs {
            inbox_len[r as usize] += 1;
        }
    }
    d
}
