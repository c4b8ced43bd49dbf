use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Counts failed logins per username; after `limit` failures inside
/// `window` the name is locked for `lockout`. Per process, in memory.
#[derive(Debug)]
pub struct Throttle {
    limit: usize,
    window: Duration,
    lockout: Duration,
    state: Mutex<HashMap<String, Entry>>,
}

#[derive(Debug, Default)]
struct Entry {
    failures: Vec<Instant>,
    locked_until: Option<Instant>,
}

impl Default for Throttle {
    fn default() -> Self {
        Self::new(5, Duration::from_secs(60), Duration::from_secs(60))
    }
}

impl Throttle {
    pub fn new(limit: usize, window: Duration, lockout: Duration) -> Self {
        Self { limit, window, lockout, state: Mutex::new(HashMap::new()) }
    }

    /// Seconds left on a lock, if the name is locked now.
    pub fn locked(&self, username: &str) -> Option<u64> {
        let now = Instant::now();
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let until = state.get(username)?.locked_until?;
        (until > now).then(|| (until - now).as_secs().max(1))
    }

    pub fn failed(&self, username: &str) {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        // Bound memory under a flood of random names.
        if state.len() > 10_000 {
            state.retain(|_, e| e.locked_until.is_some_and(|u| u > now));
        }
        let e = state.entry(username.to_string()).or_default();
        e.failures.retain(|t| now.duration_since(*t) < self.window);
        e.failures.push(now);
        if e.failures.len() >= self.limit {
            e.locked_until = Some(now + self.lockout);
            e.failures.clear();
        }
    }

    pub fn succeeded(&self, username: &str) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).remove(username);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_limit() {
        let t = Throttle::new(3, Duration::from_secs(60), Duration::from_secs(30));
        t.failed("a");
        t.failed("a");
        assert!(t.locked("a").is_none());
        t.failed("a");
        assert!(t.locked("a").is_some());
        assert!(t.locked("b").is_none());
    }
}
