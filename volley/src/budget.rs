//! A server-wide budget of buffered request bytes: partial messages held by every call of a
//! [`Router`](crate::Router) together cannot exceed it, so a peer sending many large partial
//! messages gets `resource_exhausted` instead of the server's memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Default budget: 256 MiB of buffered request bytes per router (64 messages at the default
/// 4 MiB receive limit).
pub const DEFAULT_REQUEST_BUFFER_BUDGET: usize = 256 * 1024 * 1024;

/// What each call may buffer without drawing on the budget (16 KiB, one HTTP/2 frame), so
/// small calls go on being served while large partial messages have used the budget up.
pub const FREE_PER_CALL: usize = 16 * 1024;

/// A pool of bytes shared by every call of a router.
#[derive(Debug)]
pub(crate) struct Budget {
    limit: usize,
    used: AtomicUsize,
}

impl Budget {
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            used: AtomicUsize::new(0),
        })
    }

    fn try_take(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|total| *total <= self.limit)
            })
            .is_ok()
    }

    fn give(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }

    /// Bytes currently drawn.
    #[cfg(test)]
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

/// One call's share of a [`Budget`], returned when dropped.
#[derive(Debug)]
pub(crate) struct Charge {
    budget: Arc<Budget>,
    held: usize,
}

impl Charge {
    pub(crate) fn new(budget: Arc<Budget>) -> Self {
        Self { budget, held: 0 }
    }

    /// Sets what the call holds now to `bytes`; fails (holding what it held before) when the
    /// budget cannot cover the increase.
    pub(crate) fn hold(&mut self, bytes: usize) -> Result<(), crate::Error> {
        let want = bytes.saturating_sub(FREE_PER_CALL);
        if want > self.held {
            if !self.budget.try_take(want - self.held) {
                return Err(crate::Error::resource_exhausted(format!(
                    "the server is holding too many partial request messages (budget of {} bytes); try again later",
                    self.budget.limit
                )));
            }
        } else {
            self.budget.give(self.held - want);
        }
        self.held = want;
        Ok(())
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.give(self.held);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_beyond_the_free_allowance_and_returns_on_drop() {
        let budget = Budget::new(100_000);
        let mut a = Charge::new(budget.clone());
        a.hold(FREE_PER_CALL).unwrap();
        assert_eq!(budget.used(), 0);
        a.hold(FREE_PER_CALL + 60_000).unwrap();
        assert_eq!(budget.used(), 60_000);
        let mut b = Charge::new(budget.clone());
        assert!(b.hold(FREE_PER_CALL + 50_000).is_err());
        b.hold(FREE_PER_CALL + 40_000).unwrap();
        a.hold(10).unwrap();
        assert_eq!(budget.used(), 40_000);
        drop(b);
        drop(a);
        assert_eq!(budget.used(), 0);
    }
}
