use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Counts login attempts per key (a username, or a client address); after
/// `limit` attempts inside `window` the key is locked for `lockout`.
/// Attempts are counted *before* the password is checked, so parallel
/// guesses cannot all slip past the limit; a success takes its attempt
/// back. Per process, in memory.
#[derive(Debug)]
pub struct Throttle {
    limit: usize,
    window: Duration,
    lockout: Duration,
    state: Mutex<HashMap<String, Entry>>,
}

#[derive(Debug, Default)]
struct Entry {
    attempts: Vec<Instant>,
    locked_until: Option<Instant>,
}

impl Default for Throttle {
    /// Per username: 5 attempts a minute, then a minute's lock.
    fn default() -> Self {
        Self::new(5, Duration::from_secs(60), Duration::from_secs(60))
    }
}

impl Throttle {
    pub fn new(limit: usize, window: Duration, lockout: Duration) -> Self {
        Self { limit, window, lockout, state: Mutex::new(HashMap::new()) }
    }

    /// Per client address: generous, since many users may share one
    /// address (a NAT, a reverse proxy), but a bound on one guesser.
    pub fn per_address() -> Self {
        Self::new(30, Duration::from_secs(60), Duration::from_secs(60))
    }

    /// Records an attempt, or refuses it with the seconds left on a lock.
    /// The attempt that reaches the limit still runs; the next is refused.
    pub fn begin(&self, key: &str) -> Result<(), u64> {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        // Bound memory under a flood of random keys.
        if state.len() > 10_000 {
            let window = self.window;
            state.retain(|_, e| {
                e.locked_until.is_some_and(|u| u > now) || e.attempts.iter().any(|t| now.duration_since(*t) < window)
            });
        }
        let e = state.entry(key.to_string()).or_default();
        if let Some(until) = e.locked_until {
            if until > now {
                return Err((until - now).as_secs().max(1));
            }
            e.locked_until = None;
        }
        e.attempts.retain(|t| now.duration_since(*t) < self.window);
        e.attempts.push(now);
        if e.attempts.len() >= self.limit {
            e.locked_until = Some(now + self.lockout);
            e.attempts.clear();
        }
        Ok(())
    }

    /// The attempt succeeded: it does not count against the key.
    pub fn refund(&self, key: &str) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = state.get_mut(key) {
            e.attempts.pop();
        }
    }

    /// A correct password for this username: its count starts again.
    pub fn succeeded(&self, key: &str) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}

/// Everything that stands between a login request and a password check.
pub struct LoginGuard {
    /// Attempts per username.
    pub per_name: Throttle,
    /// Attempts per client address.
    pub per_addr: Throttle,
    /// argon2 verifications running at once (each takes ~19 MiB and a core
    /// for a moment); further logins wait their turn.
    pub verify_slots: std::sync::Arc<tokio::sync::Semaphore>,
}

/// Password verifications at once.
const VERIFY_SLOTS: usize = 4;

impl Default for LoginGuard {
    fn default() -> Self {
        Self {
            per_name: Throttle::default(),
            per_addr: Throttle::per_address(),
            verify_slots: std::sync::Arc::new(tokio::sync::Semaphore::new(VERIFY_SLOTS)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_limit() {
        let t = Throttle::new(3, Duration::from_secs(60), Duration::from_secs(30));
        assert!(t.begin("a").is_ok());
        assert!(t.begin("a").is_ok());
        assert!(t.begin("a").is_ok(), "the attempt that reaches the limit still runs");
        assert!(t.begin("a").is_err());
        assert!(t.begin("b").is_ok());
        t.refund("b");
        t.succeeded("a");
        assert!(t.begin("a").is_ok());
    }
}
