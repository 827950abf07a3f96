//! The pool's policy, apart from the connections it holds: newest first (a
//! busy pool keeps reusing the same few, whose buffers are warm), each kept
//! for a limited time, and a limited number of them.

use std::time::{Duration, Instant};

pub struct IdleStack<T> {
    /// Oldest first; the newest is taken first.
    entries: Vec<(T, Instant)>,
    max: usize,
    timeout: Duration,
}

impl<T> IdleStack<T> {
    pub fn new(max: usize, timeout: Duration) -> Self {
        Self {
            entries: Vec::new(),
            max,
            timeout,
        }
    }

    /// The newest entry that `usable` accepts and that is not past its time;
    /// those met on the way are dropped.
    pub fn take(&mut self, now: Instant, mut usable: impl FnMut(&mut T) -> bool) -> Option<T> {
        while let Some((mut entry, since)) = self.entries.pop() {
            if now.duration_since(since) < self.timeout && usable(&mut entry) {
                return Some(entry);
            }
        }
        None
    }

    /// Keeps `entry` as the newest, or drops it when the stack is full. The
    /// oldest, at the bottom where steady traffic never reaches, are dropped
    /// here once past their time.
    pub fn push(&mut self, entry: T, now: Instant) {
        let expired = self
            .entries
            .iter()
            .take_while(|(_, since)| now.duration_since(*since) >= self.timeout)
            .count();
        self.entries.drain(..expired);
        if self.entries.len() < self.max {
            self.entries.push((entry, now));
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(90);

    #[test]
    fn the_newest_usable_entry_is_taken_and_the_unusable_dropped() {
        let start = Instant::now();
        let mut stack = IdleStack::new(8, TIMEOUT);
        for n in 1..=4 {
            stack.push(n, start);
        }
        assert_eq!(stack.take(start, |_| true), Some(4));
        // 3 is closed: dropped on the way to 2.
        assert_eq!(stack.take(start, |n| *n != 3), Some(2));
        assert_eq!(stack.len(), 1);
        assert_eq!(stack.take(start, |_| false), None);
        assert_eq!(stack.len(), 0);
    }

    #[test]
    fn entries_past_their_time_are_never_taken() {
        let start = Instant::now();
        let mut stack = IdleStack::new(8, TIMEOUT);
        stack.push("old", start);
        stack.push("new", start + Duration::from_secs(60));
        let later = start + Duration::from_secs(100);
        assert_eq!(stack.take(later, |_| true), Some("new"));
        assert_eq!(stack.take(later, |_| true), None);
    }

    #[test]
    fn a_push_drops_the_oldest_past_their_time() {
        let start = Instant::now();
        let mut stack = IdleStack::new(8, TIMEOUT);
        stack.push(1, start);
        stack.push(2, start + Duration::from_secs(30));
        stack.push(3, start + Duration::from_secs(95));
        // 1 is past its time and goes; 2 is not yet.
        assert_eq!(stack.len(), 2);
        // 2 and 3 are past their time too by now.
        stack.push(4, start + Duration::from_secs(200));
        assert_eq!(stack.len(), 1);
        let now = start + Duration::from_secs(200);
        assert_eq!(stack.take(now, |_| true), Some(4));
        assert_eq!(stack.take(now, |_| true), None);
    }

    #[test]
    fn a_full_stack_drops_what_comes_back() {
        let start = Instant::now();
        let mut stack = IdleStack::new(2, TIMEOUT);
        for n in 1..=3 {
            stack.push(n, start);
        }
        assert_eq!(stack.len(), 2);
        assert_eq!(stack.take(start, |_| true), Some(2));
    }
}
