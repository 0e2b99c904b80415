//! Runs a connection's reader, handler and writer side by side in one task, polling on each
//! wake only those that were woken. `tokio::join!` polls every branch whenever any of them is
//! woken: a broadcast delivery, which wakes only the writer, also polled the reader's socket
//! readiness and wake-ups (each a lock) and the handler's inbox.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

// Under `--cfg ws_loom` (scripts/test), the wake protocol's atomics are loom's, and a model
// test explores every interleaving of a wake with a pass.
#[cfg(ws_loom)]
use loom::sync::atomic::{AtomicBool, AtomicU8, Ordering};
#[cfg(not(ws_loom))]
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

#[cfg(not(ws_loom))]
use futures_util::task::AtomicWaker as TaskWaker;

/// Each branch's bit, in polling order.
const BITS: [u8; 3] = [0b001, 0b010, 0b100];

/// Which branches were woken since they were last polled, and the task's own waker. It is
/// also the first branch's waker (one allocation less per connection than a `Branch` of its
/// own).
struct Woken {
    bits: AtomicU8,
    /// A pass is under way: it sees the bits set meanwhile, so a wake need not wake the task
    /// (which would send it through the runtime's queue once more for an empty pass).
    polling: AtomicBool,
    task: TaskWaker,
}

impl Woken {
    /// Every branch marked woken, for the first pass.
    fn new() -> Self {
        Woken {
            bits: AtomicU8::new(0b111),
            polling: AtomicBool::new(false),
            task: TaskWaker::new(),
        }
    }

    /// Marks a branch woken, then wakes the task unless a pass will see the mark.
    fn mark(&self, bit: u8) {
        // SeqCst with the pass's end (store `polling`, then read `bits`): either the pass sees
        // this bit, or this wake sees that the pass is over and wakes the task.
        self.bits.fetch_or(bit, Ordering::SeqCst);
        if !self.polling.load(Ordering::SeqCst) {
            self.task.wake();
        }
    }

    /// A pass begins: wakes from now on are seen by it, or wake the task again.
    fn begin_pass(&self, task: &Waker) {
        // Registered before the bits are read: a wake after this read wakes the task again.
        self.task.register(task);
        self.polling.store(true, Ordering::SeqCst);
    }

    /// The branches woken since the last look.
    fn take(&self) -> u8 {
        self.bits.swap(0, Ordering::SeqCst)
    }

    /// The pass is over: the branches woken since its last look, which the next pass polls.
    fn end_pass(&self) -> u8 {
        self.polling.store(false, Ordering::SeqCst);
        self.take()
    }

    /// Keeps these branches marked for the next pass.
    fn defer(&self, bits: u8) {
        self.bits.fetch_or(bits, Ordering::SeqCst);
    }
}

/// The first branch's waker.
impl Wake for Woken {
    fn wake(self: Arc<Self>) {
        self.mark(BITS[0]);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.mark(BITS[0]);
    }
}

/// The waker handed to another branch: marks it woken, then wakes the task.
struct Branch {
    woken: Arc<Woken>,
    bit: u8,
}

impl Wake for Branch {
    fn wake(self: Arc<Self>) {
        self.woken.mark(self.bit);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.mark(self.bit);
    }
}

/// Pending once, then ready: the branch awaiting it wakes itself and lets the branches after
/// it run in this pass of [`join3`]; it is polled again in the next pass, which the task
/// schedules like any self-wake (at the back of the worker's queue, without the I/O driver
/// poll that `tokio::task::yield_now` waits for).
pub(crate) fn yield_to_others() -> impl Future<Output = ()> {
    let mut yielded = false;
    poll_fn(move |cx| {
        if yielded {
            return Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
}

/// Runs the three futures to completion, concurrently, in this task; in each pass they are
/// polled in order (first, second, third), each only if it was woken.
///
/// They come pinned by the caller: an `async fn` taking them by value would hold each twice in
/// its state (as its argument and as its pinned local), which for a connection's task was 2.4
/// KiB more per idle connection. For the same reason this is not an `async fn`: one moves its
/// arguments into locals of their own.
pub(crate) fn join3<A, B, C>(
    mut first: Pin<&mut A>,
    mut second: Pin<&mut B>,
    mut third: Pin<&mut C>,
) -> impl Future<Output = ()>
where
    A: Future<Output = ()>,
    B: Future<Output = ()>,
    C: Future<Output = ()>,
{
    let woken = Arc::new(Woken::new());
    let branch = |bit| {
        Waker::from(Arc::new(Branch {
            woken: woken.clone(),
            bit,
        }))
    };
    let wakers = [Waker::from(woken.clone()), branch(BITS[1]), branch(BITS[2])];
    let mut done = [false; 3];
    poll_fn(move |cx| {
        woken.begin_pass(cx.waker());
        let mut pending = 0;
        for (i, bit) in BITS.into_iter().enumerate() {
            // Wakes made by the branches polled before in this pass count at once: what the
            // reader hands to the handler, and the handler to the writer, goes on in the same
            // pass instead of after a trip through the runtime's queue (behind every other
            // ready connection, by which time the data has left the cache).
            pending |= woken.take();
            if pending & bit == 0 || done[i] {
                continue;
            }
            pending &= !bit;
            done[i] = match i {
                0 => first.as_mut().poll(&mut Context::from_waker(&wakers[0])),
                1 => second.as_mut().poll(&mut Context::from_waker(&wakers[1])),
                _ => third.as_mut().poll(&mut Context::from_waker(&wakers[2])),
            }
            .is_ready();
        }
        // A branch woken after its turn (by itself or a later one) is polled in the next pass,
        // for which the task wakes itself: wakes during the pass did not.
        pending |= woken.end_pass();
        for (i, bit) in BITS.into_iter().enumerate() {
            if done[i] {
                pending &= !bit;
            }
        }
        if pending != 0 {
            woken.defer(pending);
            cx.waker().wake_by_ref();
        }
        if done.iter().all(|&d| d) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
}

/// Under loom, the task's waker is a flag the model reads: whether the task was woken.
#[cfg(ws_loom)]
struct TaskWaker(AtomicBool);

#[cfg(ws_loom)]
impl TaskWaker {
    fn new() -> Self {
        TaskWaker(AtomicBool::new(false))
    }

    // The signature of `AtomicWaker::register`, which join3 calls.
    #[allow(clippy::unused_self)]
    fn register(&self, _: &Waker) {}

    fn wake(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Model tests of the wake protocol under loom: `RUSTFLAGS="--cfg ws_loom" cargo test -p
/// ws-runtime --lib rt::join::loom_model` (scripts/test runs it).
#[cfg(all(test, ws_loom))]
mod loom_model {
    use super::*;

    /// A branch woken from another thread while a pass runs is never lost: the pass sees it,
    /// or it is left for the next pass and the task is woken (or the pass defers it).
    #[test]
    fn a_wake_during_a_pass_is_seen_or_wakes_the_task() {
        loom::model(|| {
            let woken = loom::sync::Arc::new(Woken::new());
            let noop = Waker::noop();
            // The first pass, as join3 makes it: everything is marked.
            woken.begin_pass(noop);
            assert_eq!(woken.take(), 0b111);
            assert_eq!(woken.end_pass(), 0);
            let other = {
                let woken = woken.clone();
                loom::thread::spawn(move || woken.mark(BITS[2]))
            };
            // A second pass, racing the wake.
            woken.begin_pass(noop);
            let mut seen = woken.take();
            seen |= woken.end_pass();
            other.join().unwrap();
            let task_woken = woken.task.0.load(Ordering::SeqCst);
            let left = woken.take();
            assert!(
                seen & BITS[2] != 0 || (task_woken && left & BITS[2] != 0),
                "a lost wake: seen {seen:#b}, left {left:#b}, task woken {task_woken}"
            );
        });
    }

    /// Two branches woken from two threads between passes both wake the task, or are both
    /// seen by the next pass.
    #[test]
    fn wakes_between_passes_wake_the_task() {
        loom::model(|| {
            let woken = loom::sync::Arc::new(Woken::new());
            let noop = Waker::noop();
            woken.begin_pass(noop);
            woken.take();
            woken.end_pass();
            let threads: Vec<_> = [BITS[1], BITS[2]]
                .into_iter()
                .map(|bit| {
                    let woken = woken.clone();
                    loom::thread::spawn(move || woken.mark(bit))
                })
                .collect();
            for thread in threads {
                thread.join().unwrap();
            }
            assert!(woken.task.0.load(Ordering::SeqCst), "no pass was running");
            assert_eq!(woken.take(), BITS[1] | BITS[2]);
        });
    }
}

#[cfg(all(test, not(ws_loom)))]
mod tests {
    use super::*;
    use futures_util::task::AtomicWaker;
    use std::sync::atomic::AtomicUsize;

    /// A task waker that counts its wakes.
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Pins three futures and their join in the calling scope, as a connection's task does.
    macro_rules! pinned_join {
        ($joined:ident = $first:expr, $second:expr, $third:expr) => {
            let (first, second, third) = (
                std::pin::pin!($first),
                std::pin::pin!($second),
                std::pin::pin!($third),
            );
            let $joined = join3(first, second, third);
            let mut $joined = std::pin::pin!($joined);
        };
    }

    /// Counts its polls; ready once `open` is set, woken by whoever sets it.
    struct Gate<'a> {
        polls: &'a AtomicUsize,
        open: &'a std::sync::atomic::AtomicBool,
        waker: &'a AtomicWaker,
    }

    impl Future for Gate<'_> {
        type Output = ();

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.polls.fetch_add(1, Ordering::SeqCst);
            self.waker.register(cx.waker());
            if self.open.load(Ordering::SeqCst) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }
    }

    /// What a branch wakes in a later branch during a pass is polled in that same pass.
    #[test]
    fn a_later_branch_woken_in_a_pass_runs_in_it() {
        use std::sync::atomic::AtomicBool;
        let (gate, handed) = (AtomicBool::new(false), AtomicBool::new(false));
        let (gate_waker, handed_waker) = (AtomicWaker::new(), AtomicWaker::new());
        // The first waits for the gate, then hands over to the second and ends.
        let first = poll_fn(|cx| {
            gate_waker.register(cx.waker());
            if !gate.load(Ordering::SeqCst) {
                return Poll::Pending;
            }
            handed.store(true, Ordering::SeqCst);
            handed_waker.wake();
            Poll::Ready(())
        });
        let second = poll_fn(|cx| {
            handed_waker.register(cx.waker());
            if handed.load(Ordering::SeqCst) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        });
        let third = std::future::ready(());
        pinned_join!(joined = first, second, third);
        let mut cx = Context::from_waker(Waker::noop());
        assert!(joined.as_mut().poll(&mut cx).is_pending());
        gate.store(true, Ordering::SeqCst);
        gate_waker.wake();
        assert!(joined.as_mut().poll(&mut cx).is_ready(), "one pass");
    }

    /// A branch that yields lets the later ones run in the same pass, wakes the task, and
    /// goes on in the next pass.
    #[test]
    fn a_branch_yielding_to_the_others_goes_on_after_them() {
        let order = std::sync::Mutex::new(Vec::new());
        let log = |step| order.lock().expect("not poisoned").push(step);
        let first = async {
            log("first, before");
            yield_to_others().await;
            log("first, after");
        };
        let second = async { log("second") };
        let third = async { log("third") };
        pinned_join!(joined = first, second, third);
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let task = Waker::from(count.clone());
        let mut cx = Context::from_waker(&task);
        assert!(joined.as_mut().poll(&mut cx).is_pending());
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "the task woke itself");
        assert!(joined.as_mut().poll(&mut cx).is_ready());
        assert_eq!(
            *order.lock().expect("not poisoned"),
            ["first, before", "second", "third", "first, after"]
        );
    }

    /// A wake that a pass sees (a hand-over to a later branch) does not wake the task again;
    /// one the pass leaves for the next (a branch waking itself) does.
    #[test]
    fn the_task_is_woken_only_for_a_pass_still_to_come() {
        use std::sync::atomic::AtomicBool;
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let task = Waker::from(count.clone());
        let go = AtomicBool::new(false);
        let (first_waker, handed) = (AtomicWaker::new(), AtomicWaker::new());
        let second_polls = AtomicUsize::new(0);
        let mut turns = 0;
        // Once told to go, hands over to the second; never ends.
        let first = poll_fn(|cx| {
            first_waker.register(cx.waker());
            if go.load(Ordering::SeqCst) {
                handed.wake();
            }
            Poll::<()>::Pending
        });
        let second = poll_fn(|cx| {
            second_polls.fetch_add(1, Ordering::SeqCst);
            handed.register(cx.waker());
            Poll::<()>::Pending
        });
        // Wakes itself once, then is done.
        let third = poll_fn(|cx| {
            turns += 1;
            if turns == 2 {
                return Poll::Ready(());
            }
            cx.waker().wake_by_ref();
            Poll::Pending
        });
        pinned_join!(joined = first, second, third);
        let mut cx = Context::from_waker(&task);
        assert!(joined.as_mut().poll(&mut cx).is_pending());
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            1,
            "for the third's own wake"
        );
        assert!(joined.as_mut().poll(&mut cx).is_pending());
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            1,
            "nothing left to wake for"
        );
        // A wake from outside wakes the task; the hand-over it leads to does not.
        go.store(true, Ordering::SeqCst);
        first_waker.wake();
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
        assert!(joined.as_mut().poll(&mut cx).is_pending());
        assert_eq!(second_polls.load(Ordering::SeqCst), 2, "in the same pass");
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
    }

    /// A branch is polled again only when it is woken, and the join ends when all have.
    #[tokio::test]
    async fn polls_only_the_woken_branch() {
        let polls: [AtomicUsize; 3] = Default::default();
        let open: [std::sync::atomic::AtomicBool; 3] = Default::default();
        let wakers: [AtomicWaker; 3] = Default::default();
        let gate = |i: usize| Gate {
            polls: &polls[i],
            open: &open[i],
            waker: &wakers[i],
        };
        let opener = async {
            for i in [2, 0, 1] {
                tokio::task::yield_now().await;
                open[i].store(true, Ordering::SeqCst);
                wakers[i].wake();
            }
        };
        let (a, b, c) = (gate(0), gate(1), gate(2));
        let (a, b, c) = (std::pin::pin!(a), std::pin::pin!(b), std::pin::pin!(c));
        tokio::join!(join3(a, b, c), opener);
        // Each: the first poll, then the one after its own wake.
        let counts: Vec<usize> = polls.iter().map(|p| p.load(Ordering::SeqCst)).collect();
        assert_eq!(counts, [2, 2, 2]);
    }
}
