//! A future polled only after it woke its task itself.
//!
//! A connection's task waits on hyper's connection and on two watchers (server shutdown and
//! the idle timer). The task wakes for hyper about twice per request, and polling both
//! watchers at every wake cost about 800 instructions per publish (callgrind, `herald bench
//! --scenario publish`): a quarter of what the whole connection layer adds to a request. The
//! watchers change state rarely, so [`WokenOnly`] polls them only when their own waker has fired.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;

/// Wraps `future`: polling the wrapper polls `future` the first time and then only after
/// `future` asked to be woken.
pub struct WokenOnly<'a, F> {
    future: Pin<&'a mut F>,
    gate: Arc<Gate>,
    /// The waker `future` sees: it marks the gate, then wakes the task.
    waker: Waker,
}

struct Gate {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Gate {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl<'a, F: Future> WokenOnly<'a, F> {
    pub fn new(future: Pin<&'a mut F>) -> Self {
        let gate = Arc::new(Gate {
            woken: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        let waker = Waker::from(gate.clone());
        Self {
            future,
            gate,
            waker,
        }
    }
}

impl<F: Future> Future for WokenOnly<'_, F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // Registered before the flag is read, so a wake between the two is not lost.
        self.gate.task.register(cx.waker());
        if !self.gate.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        let this = &mut *self;
        this.future
            .as_mut()
            .poll(&mut Context::from_waker(&this.waker))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::pin;
    use std::sync::atomic::AtomicUsize;

    /// Counts its polls; ready once `open` is set, and wakes whoever polled it when asked.
    struct Probe {
        polls: AtomicUsize,
        open: AtomicBool,
        waker: parking_lot::Mutex<Option<Waker>>,
    }

    impl Probe {
        fn wake(&self) {
            if let Some(waker) = self.waker.lock().take() {
                waker.wake();
            }
        }
    }

    impl Future for &Probe {
        type Output = ();
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.polls.fetch_add(1, Ordering::Relaxed);
            if self.open.load(Ordering::Relaxed) {
                return Poll::Ready(());
            }
            *self.waker.lock() = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    #[test]
    fn the_inner_future_is_polled_first_and_then_only_after_its_own_wake() {
        let probe = Probe {
            polls: AtomicUsize::new(0),
            open: AtomicBool::new(false),
            waker: parking_lot::Mutex::new(None),
        };
        let mut inner = pin!(&probe);
        let mut gated = pin!(WokenOnly::new(inner.as_mut()));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(gated.as_mut().poll(&mut cx).is_pending());
        assert!(gated.as_mut().poll(&mut cx).is_pending());
        assert_eq!(
            probe.polls.load(Ordering::Relaxed),
            1,
            "woken by others: not polled"
        );
        probe.open.store(true, Ordering::Relaxed);
        probe.wake();
        assert!(gated.as_mut().poll(&mut cx).is_ready());
        assert_eq!(probe.polls.load(Ordering::Relaxed), 2);
    }
}
