//! An ordered parallel map for the few places where a large ring's elements
//! are handled one by one and independently: reading and parsing key files,
//! and interpreting the parsed elements. Results come back in input order,
//! so the outcome is the same as on one thread.
//!
//! Written here rather than taken from `rayon`: two call sites need one
//! function, scoped threads from `std` do it, and a global pool would keep
//! threads alive in every process that only loads a ring once.

use std::sync::Mutex;

/// Items per thread below which a map stays on the calling thread: starting
/// a thread costs about as much as handling this many elements.
const ITEMS_PER_THREAD: usize = 128;
/// Threads at most, however many cores there are: beyond a few, the
/// allocator (and for files, the directory) is shared and gains little.
const MAX_THREADS: usize = 4;

/// How many threads to use for `items` items: one for a small ring, else up
/// to one per core.
pub(crate) fn threads_for(items: usize) -> usize {
    let wanted = (items / ITEMS_PER_THREAD).min(MAX_THREADS);
    if wanted <= 1 {
        return 1;
    }
    std::thread::available_parallelism().map_or(1, |cores| cores.get().min(wanted))
}

/// `f` applied to every item, on up to `threads` threads (the calling one
/// included), the results in item order. Threads take `block` items at a
/// time as they go, so one that is slowed down (preempted) does not hold
/// back the others; a thread that cannot be started leaves its share to the
/// others.
pub(crate) fn map_in_order<E: Send, T: Send>(
    items: Vec<E>,
    threads: usize,
    block: usize,
    f: impl Fn(E) -> T + Sync,
) -> Vec<T> {
    let block = block.max(1);
    if threads <= 1 || items.len() <= block {
        return items.into_iter().map(f).collect();
    }
    // Blocks with their position, the first block last so `pop` takes it first.
    let mut blocks = Vec::with_capacity(items.len().div_ceil(block));
    let mut items = items.into_iter();
    loop {
        let next: Vec<E> = items.by_ref().take(block).collect();
        if next.is_empty() {
            break;
        }
        blocks.push((blocks.len(), next));
    }
    blocks.reverse();
    let queue = Mutex::new(blocks);
    let work = || {
        let mut done = Vec::new();
        loop {
            let next = queue.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let Some((position, items)) = next else {
                return done;
            };
            done.push((position, items.into_iter().map(&f).collect::<Vec<T>>()));
        }
    };
    std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..threads)
            .filter_map(|_| {
                std::thread::Builder::new()
                    .name("dataprotection-ring".into())
                    .spawn_scoped(scope, work)
                    .ok()
            })
            .collect();
        let mut blocks = work();
        for helper in helpers {
            match helper.join() {
                Ok(theirs) => blocks.extend(theirs),
                // A panic is a bug, not an input: resumed here as on one thread.
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        blocks.sort_unstable_by_key(|(position, _)| *position);
        blocks.into_iter().flat_map(|(_, block)| block).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_order_is_kept_whatever_the_threads_and_blocks() {
        for threads in [1, 2, 3, 8] {
            for block in [0, 1, 7, 64, 1000] {
                for len in [0, 1, 63, 64, 65, 500] {
                    let items: Vec<String> = (0..len).map(|i| i.to_string()).collect();
                    let mapped = map_in_order(items, threads, block, |s| s.parse::<usize>());
                    let expected: Vec<_> = (0..len).map(Ok).collect();
                    assert_eq!(mapped, expected, "threads {threads}, block {block}");
                }
            }
        }
    }

    #[test]
    fn small_work_stays_on_one_thread() {
        assert_eq!(threads_for(0), 1);
        assert_eq!(threads_for(ITEMS_PER_THREAD), 1);
        assert!(threads_for(100 * ITEMS_PER_THREAD) <= MAX_THREADS);
    }
}
