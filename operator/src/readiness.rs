//! What `/readyz` answers, after kubert's `initialized` pattern: not ready
//! until the operator can do its job, then ready until shutdown. "Can do its
//! job" is, for the leader (or with leader election off), every watch of the
//! controller having finished its first list; for a standby, knowing that
//! another replica holds a live Lease. A standby is ready too, so that a
//! rollout of the operator's own Deployment progresses.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Shared between the admin server (reads) and the controller or the leader
/// election (mark it). Starts not ready.
#[derive(Clone, Debug, Default)]
pub struct Readiness(Arc<State>);

#[derive(Debug, Default)]
struct State {
    initialized: AtomicBool,
    stopping: AtomicBool,
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.0.initialized.load(Ordering::Acquire) && !self.0.stopping.load(Ordering::Acquire)
    }

    /// Started: stays so (a later watch error is retried, not a restart).
    pub fn mark_initialized(&self) {
        self.0.initialized.store(true, Ordering::Release);
    }

    /// Shutting down: not ready from now on.
    pub fn mark_stopping(&self) {
        self.0.stopping.store(true, Ordering::Release);
    }

    /// `n` parts that must each finish starting; the last to call
    /// [`Part::done`] marks this initialized. A part dropped without `done`
    /// (its task stopped first) never counts.
    pub fn parts(&self, n: usize) -> Vec<Part> {
        let left = Arc::new(AtomicUsize::new(n));
        (0..n)
            .map(|_| Part {
                left: left.clone(),
                readiness: self.clone(),
            })
            .collect()
    }
}

/// One thing that must finish starting before the operator is ready.
#[derive(Debug)]
pub struct Part {
    left: Arc<AtomicUsize>,
    readiness: Readiness,
}

impl Part {
    pub fn done(self) {
        if self.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.readiness.mark_initialized();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_after_every_part_and_until_stopping() {
        let r = Readiness::default();
        assert!(!r.is_ready(), "not ready from the first instant");
        let mut parts = r.parts(3);
        parts.pop().expect("part").done();
        parts.pop().expect("part").done();
        assert!(!r.is_ready(), "one part still starting");
        parts.pop().expect("part").done();
        assert!(r.is_ready());
        r.mark_stopping();
        assert!(!r.is_ready());
    }

    #[test]
    fn a_dropped_part_never_counts() {
        let r = Readiness::default();
        let mut parts = r.parts(2);
        parts.pop().expect("part").done();
        drop(parts);
        assert!(!r.is_ready());
    }
}
