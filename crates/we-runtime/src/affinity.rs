//! Where the runtime's threads run: every thread it starts (pool workers, the
//! recorder, the commit's helper, an inference backend's helper) keeps off
//! one CPU, which the orchestrator's thread then has to itself.
//!
//! The orchestrator carries each tick's serial part (the commit, inference
//! delivery) and its own share of the agents, so every moment another thread
//! takes its CPU lengthens the tick. Left to the scheduler, the recorder and a
//! worker would now and then run there while the orchestrator waits for a
//! core: on two cores, ring at N = 1,000 in packs of 500 at W = 2 went from
//! 8.4-8.7 to 9.5-9.6 M msgs/s with the other threads kept to the second
//! CPU. The orchestrator's thread itself is never pinned (it is the caller's
//! thread); the scheduler gives it the CPU the others leave free.
//!
//! Nothing here changes what a tick computes, only where threads wait.

use std::sync::Arc;

/// The CPUs the runtime's own threads run on.
pub(crate) type Cpus = Arc<[usize]>;

/// The CPUs for the threads a run at `width` partitions starts: every CPU the
/// process may use but the first, left to the orchestrator. `None` (no
/// restriction) with fewer than two CPUs, or with more partitions than CPUs
/// (the workers then need every CPU), or where the platform has no affinity.
pub(crate) fn support_cpus(width: usize) -> Option<Cpus> {
    let allowed = allowed();
    if allowed.len() < 2 || width > allowed.len() {
        return None;
    }
    Some(allowed[1..].into())
}

/// How many CPUs the process may run on (at least 1).
pub(crate) fn cpu_count() -> usize {
    match allowed().len() {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

/// Restricts the calling thread to `cpus` (`None`: leaves it as it is).
/// Best effort: a refusal (a container that forbids it) leaves the thread
/// where it was.
pub(crate) fn keep_to(cpus: Option<&Cpus>) {
    if let Some(cpus) = cpus {
        set_current(cpus);
    }
}

/// Lets the calling thread run on every CPU the process may use (a thread
/// started by a restricted one inherits its restriction).
pub(crate) fn widen() {
    let allowed = allowed();
    if !allowed.is_empty() {
        set_current(&allowed);
    }
}

/// The CPUs this process may run on, ascending; empty where unknown. Read
/// from the process's main thread, which the runtime never restricts (the
/// calling thread may be one it did).
#[cfg(target_os = "linux")]
fn allowed() -> Vec<usize> {
    // SAFETY: `getpid` has no preconditions.
    mask_of(unsafe { libc::getpid() })
}

/// The CPUs thread `tid` may run on (0: the calling thread), ascending;
/// empty where unknown.
#[cfg(target_os = "linux")]
fn mask_of(tid: libc::pid_t) -> Vec<usize> {
    // SAFETY: `cpu_set_t` is a plain bit array, for which all zeroes is a
    // valid (empty) value.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: the size passed is that of `set`, which the call writes at
    // most.
    let got =
        unsafe { libc::sched_getaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if got != 0 {
        return Vec::new();
    }
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `cpu` is below `CPU_SETSIZE`, the number of bits in `set`.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect()
}

#[cfg(not(target_os = "linux"))]
fn allowed() -> Vec<usize> {
    Vec::new()
}

/// Restricts the calling thread to `cpus`.
#[cfg(target_os = "linux")]
fn set_current(cpus: &[usize]) {
    // SAFETY: as in `allowed`.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus.iter().filter(|&&c| c < libc::CPU_SETSIZE as usize) {
        // SAFETY: `cpu` is below `CPU_SETSIZE`, the number of bits in `set`.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: pid 0 is the calling thread; the size passed is that of `set`,
    // which the call only reads. A failure is ignored (best effort).
    unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
}

#[cfg(not(target_os = "linux"))]
fn set_current(_cpus: &[usize]) {}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The calling thread's CPUs.
    fn current() -> Vec<usize> {
        mask_of(0)
    }

    #[test]
    fn a_restricted_thread_runs_where_it_was_told_and_can_be_widened() {
        let all = allowed();
        assert!(!all.is_empty(), "a Linux process may run somewhere");
        let support = support_cpus(all.len().min(2));
        match support.as_ref() {
            Some(cpus) => {
                assert_eq!(&cpus[..], &all[1..]);
                std::thread::spawn({
                    let cpus = cpus.clone();
                    let all_here = all.clone();
                    move || {
                        keep_to(Some(&cpus));
                        assert_eq!(current(), cpus.to_vec());
                        // The process's CPUs are still all of them.
                        assert_eq!(allowed(), all_here);
                        // A thread it starts inherits the restriction until
                        // it widens it.
                        std::thread::spawn(move || {
                            assert_eq!(current(), cpus.to_vec());
                            widen();
                            current()
                        })
                        .join()
                        .unwrap()
                    }
                })
                .join()
                .map(|widened| assert_eq!(widened, all))
                .unwrap();
            }
            // One CPU: nothing to keep free.
            None => assert!(all.len() < 2),
        }
        // More partitions than CPUs: no restriction.
        assert!(support_cpus(all.len() + 1).is_none());
    }
}
