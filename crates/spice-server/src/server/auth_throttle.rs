//! Password guessing, slowed down: after a wrong ticket a peer's next check
//! waits, twice as long after each further failure up to a ceiling, and
//! checks from peers that have failed before are spaced out across all
//! peers. A peer with no failures (a fresh client with the right password)
//! is never held back. No I/O: the driver asks when a check may run and
//! reports how it went, with the time.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::admission::PeerKey;
use crate::limits::Limits;

/// Peers remembered at most; past this the least recently seen is forgotten.
const MAX_PEERS: usize = 4096;
/// A peer's failures are forgotten this long after its last attempt.
const FORGET_AFTER: Duration = Duration::from_secs(600);

/// When a ticket may be checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// At once.
    Now,
    /// Not before then (the connection waits, reading nothing more).
    At(Instant),
    /// Not within [`Limits::auth_max_wait`]: refuse without checking (after
    /// that wait too, so refusals come no faster than checks).
    Refuse,
}

#[derive(Debug, Clone)]
struct Record {
    failures: u32,
    /// The peer's next check may not run before then.
    next_allowed: Instant,
    last_seen: Instant,
}

#[derive(Debug, Default)]
pub(crate) struct AuthThrottle {
    peers: HashMap<PeerKey, Record>,
    /// The next check from a peer with failures may not run before then.
    global_next: Option<Instant>,
}

/// The wait after `failures` wrong tickets.
fn delay(failures: u32, limits: &Limits) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let factor = 1u32 << (failures - 1).min(16);
    limits
        .auth_delay
        .saturating_mul(factor)
        .min(limits.auth_max_delay)
}

impl AuthThrottle {
    /// Schedules the check of a ticket from `peer` that arrived at `now`, and
    /// reserves the peer's (and the global) next slot as if it fails, so
    /// parallel connections from one peer are checked one after the other.
    pub(crate) fn schedule(&mut self, peer: impl Into<PeerKey>, now: Instant, limits: &Limits) -> Check {
        let key = peer.into();
        let Some(record) = self.peers.get(&key) else {
            return Check::Now;
        };
        if record.failures == 0 {
            return Check::Now;
        }
        let at = record.next_allowed.max(self.global_next.unwrap_or(now)).max(now);
        if at.saturating_duration_since(now) > limits.auth_max_wait {
            return Check::Refuse;
        }
        let failures = record.failures;
        if let Some(record) = self.peers.get_mut(&key) {
            record.next_allowed = at + delay(failures.saturating_add(1), limits);
            record.last_seen = now;
        }
        self.global_next = Some(at + limits.auth_global_interval);
        if at > now {
            Check::At(at)
        } else {
            Check::Now
        }
    }

    /// A check of `peer`'s ticket ran at `now`: `ok` if the password was right.
    pub(crate) fn record(&mut self, peer: impl Into<PeerKey>, ok: bool, now: Instant, limits: &Limits) {
        let key = peer.into();
        if ok {
            self.peers.remove(&key);
            return;
        }
        if !self.peers.contains_key(&key) && self.peers.len() >= MAX_PEERS {
            self.make_room(now);
        }
        let record = self.peers.entry(key).or_insert(Record {
            failures: 0,
            next_allowed: now,
            last_seen: now,
        });
        record.failures = record.failures.saturating_add(1);
        record.next_allowed = record.next_allowed.max(now + delay(record.failures, limits));
        record.last_seen = now;
    }

    /// How many wrong tickets `peer` has given (for the log).
    pub(crate) fn failures(&self, peer: impl Into<PeerKey>) -> u32 {
        self.peers.get(&peer.into()).map_or(0, |r| r.failures)
    }

    /// Forgets peers not seen for a while, or else the least recently seen.
    fn make_room(&mut self, now: Instant) {
        self.peers
            .retain(|_, r| now.saturating_duration_since(r.last_seen) < FORGET_AFTER || r.next_allowed > now);
        if self.peers.len() >= MAX_PEERS {
            if let Some(oldest) = self
                .peers
                .iter()
                .min_by_key(|(_, r)| r.last_seen)
                .map(|(k, _)| *k)
            {
                self.peers.remove(&oldest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_fresh_peer_is_checked_at_once() {
        let mut t = AuthThrottle::default();
        let l = Limits::default();
        let now = Instant::now();
        for _ in 0..5 {
            assert_eq!(t.schedule(ip(1), now, &l), Check::Now);
        }
    }

    #[test]
    fn failures_double_the_wait_up_to_the_ceiling() {
        let mut t = AuthThrottle::default();
        let l = Limits::default();
        let mut now = Instant::now();
        let mut waits = Vec::new();
        for _ in 0..8 {
            let at = match t.schedule(ip(1), now, &l) {
                Check::Now => now,
                Check::At(at) => at,
                Check::Refuse => panic!("refused"),
            };
            waits.push(at - now);
            now = at;
            t.record(ip(1), false, now, &l);
        }
        assert_eq!(
            waits,
            [0, 250, 500, 1000, 2000, 4000, 4000, 4000].map(ms),
            "exponential per peer, capped at 4 s"
        );
        assert_eq!(t.failures(ip(1)), 8);
        // The right password clears the peer's record.
        t.record(ip(1), true, now, &l);
        assert_eq!(t.schedule(ip(1), now, &l), Check::Now);
    }

    #[test]
    fn parallel_attempts_from_one_peer_are_checked_one_after_another() {
        let mut t = AuthThrottle::default();
        let l = Limits::default();
        let now = Instant::now();
        t.record(ip(1), false, now, &l);
        let a = t.schedule(ip(1), now, &l);
        let b = t.schedule(ip(1), now, &l);
        assert_eq!(a, Check::At(now + ms(250)));
        // Reserved as if the first one fails (a second failure: 500 ms).
        assert_eq!(b, Check::At(now + ms(750)));
    }

    #[test]
    fn peers_with_failures_share_a_global_rate_and_waits_have_a_ceiling() {
        let mut t = AuthThrottle::default();
        let l = Limits::default();
        let now = Instant::now();
        for peer in 1..=100 {
            t.record(ip(peer), false, now - Duration::from_secs(10), &l);
        }
        let mut at = Vec::new();
        let mut refused = 0;
        for peer in 1..=100 {
            match t.schedule(ip(peer), now, &l) {
                Check::Now => at.push(now),
                Check::At(when) => at.push(when),
                Check::Refuse => refused += 1,
            }
        }
        // 10 per second over the 5 s a check may wait, the rest refused.
        assert_eq!(at.len(), 51);
        assert_eq!(refused, 49);
        for pair in at.windows(2) {
            assert_eq!(pair[1] - pair[0], ms(100));
        }
        // A fresh client is not held back by any of this.
        assert_eq!(t.schedule(ip(200), now, &l), Check::Now);
    }

    #[test]
    fn the_table_is_bounded() {
        let mut t = AuthThrottle::default();
        let l = Limits::default();
        let now = Instant::now();
        for i in 0..(MAX_PEERS as u32 + 100) {
            let peer = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            t.record(peer, false, now + Duration::from_micros(i.into()), &l);
        }
        assert!(t.peers.len() <= MAX_PEERS);
    }
}
