//! Which new connections are taken while others are still linking, and when
//! accepting pauses because the process is out of descriptors. No I/O: the
//! driver reports accepts, link ends and accept errors, with the time.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Who a limit counts against: an IPv4 address, or an IPv6 /64 (one site's
/// prefix, which a single attacker can fill with addresses), or every client
/// of a Unix socket together (they are local users the socket file's
/// permissions already let in, and have no address to tell them apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum PeerKey {
    V4(u32),
    V6(u64),
    Local,
}

impl From<IpAddr> for PeerKey {
    fn from(ip: IpAddr) -> Self {
        Self::of(ip)
    }
}

impl PeerKey {
    pub(crate) fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self::V4(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::V4(u32::from(v4)),
                None => Self::V6((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

/// What to do with a connection just accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Serve it.
    Accept,
    /// Serve it, and drop the oldest link in progress (connection `id`) to
    /// make room: the peer's own oldest when the peer is at its cap, else
    /// the oldest of all.
    AcceptEvicting(u64),
}

/// Connections that have not finished linking, by age.
#[derive(Debug, Default)]
pub(crate) struct PendingLinks {
    /// Connection id (ids grow with time, so the first is the oldest) to peer.
    by_id: BTreeMap<u64, PeerKey>,
    per_peer: HashMap<PeerKey, usize>,
}

impl PendingLinks {
    /// Counts connection `id` from `peer` if the limits let it in.
    pub(crate) fn admit(
        &mut self,
        id: u64,
        peer: impl Into<PeerKey>,
        max_total: usize,
        max_per_peer: usize,
    ) -> Admit {
        let key = peer.into();
        let evicted = if self.per_peer.get(&key).copied().unwrap_or(0) >= max_per_peer.max(1) {
            // A peer's links cycle through its own slots: a flood from one
            // address costs nobody else a slot, and a client sharing that
            // address (behind the same NAT) still gets in if it links promptly.
            self.by_id
                .iter()
                .find(|(_, k)| **k == key)
                .map(|(&id, _)| id)
                .inspect(|&old| self.finished(old))
        } else if self.by_id.len() >= max_total.max(1) {
            // The oldest has had the longest to link: a flood's connections
            // cycle out, while a client that links promptly gets through.
            self.by_id
                .keys()
                .next()
                .copied()
                .inspect(|&old| self.finished(old))
        } else {
            None
        };
        self.by_id.insert(id, key);
        *self.per_peer.entry(key).or_default() += 1;
        evicted.map_or(Admit::Accept, Admit::AcceptEvicting)
    }

    /// Connection `id` linked or closed (no effect if it was not counted).
    pub(crate) fn finished(&mut self, id: u64) {
        let Some(key) = self.by_id.remove(&id) else {
            return;
        };
        if let Some(n) = self.per_peer.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.per_peer.remove(&key);
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }
}

/// How long accepting pauses when the process or system is out of
/// descriptors, unless a connection closes first.
pub(crate) const ACCEPT_RETRY: Duration = Duration::from_millis(250);

/// Whether an accept error means the process cannot take more connections
/// for now (descriptors or memory), as opposed to one connection failing.
pub(crate) fn is_resource_exhaustion(error: &io::Error) -> bool {
    // EMFILE, ENFILE, ENOBUFS, ENOMEM on Linux.
    matches!(error.raw_os_error(), Some(24 | 23 | 105 | 12))
}

/// Whether an accept error concerns only the connection being accepted (it
/// went away before it was taken): accepting goes on.
pub(crate) fn is_per_connection(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset | io::ErrorKind::Interrupted
    ) || matches!(
        error.raw_os_error(),
        Some(71 | 110 | 113 | 101 | 100 | 64 | 92 | 95)
    )
}

/// Accepting on or paused, with the time it pauses until.
#[derive(Debug, Default)]
pub(crate) struct AcceptGate {
    paused_until: Option<Instant>,
}

impl AcceptGate {
    /// Accepting hit resource exhaustion at `now`: pause until the returned time.
    pub(crate) fn pause(&mut self, now: Instant) -> Instant {
        let until = now + ACCEPT_RETRY;
        self.paused_until = Some(until);
        until
    }

    pub(crate) fn is_paused(&self) -> bool {
        self.paused_until.is_some()
    }

    /// Accepting goes on (the retry time came, or a descriptor was freed).
    /// Returns whether it was paused.
    pub(crate) fn resume(&mut self) -> bool {
        self.paused_until.take().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn v4(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
    }

    #[test]
    fn a_peer_at_its_cap_cycles_through_its_own_slots() {
        let mut p = PendingLinks::default();
        assert_eq!(p.admit(0, v4(2), 10, 3), Admit::Accept);
        for id in 1..4 {
            assert_eq!(p.admit(id, v4(1), 10, 3), Admit::Accept);
        }
        assert_eq!(p.admit(4, v4(1), 10, 3), Admit::AcceptEvicting(1));
        assert_eq!(p.admit(5, v4(1), 10, 3), Admit::AcceptEvicting(2));
        // One of its links ends: it may open another without evicting.
        p.finished(3);
        assert_eq!(p.admit(6, v4(1), 10, 3), Admit::Accept);
        assert_eq!(p.len(), 4, "the other peer's link was never touched");
    }

    #[test]
    fn when_full_the_oldest_link_makes_room() {
        let mut p = PendingLinks::default();
        for (id, peer) in (10..14).zip(1..) {
            assert_eq!(p.admit(id, v4(peer), 4, 2), Admit::Accept);
        }
        assert_eq!(p.admit(14, v4(9), 4, 2), Admit::AcceptEvicting(10));
        assert_eq!(p.admit(15, v4(9), 4, 2), Admit::AcceptEvicting(11));
        assert_eq!(p.len(), 4);
        // The evicted one's own end later is harmless.
        p.finished(10);
        assert_eq!(p.len(), 4);
    }

    #[test]
    fn ipv6_counts_by_prefix_and_mapped_ipv4_as_ipv4() {
        let a: Ipv6Addr = "2001:db8:1:2::1".parse().unwrap();
        let b: Ipv6Addr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: Ipv6Addr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(PeerKey::of(a.into()), PeerKey::of(b.into()));
        assert_ne!(PeerKey::of(a.into()), PeerKey::of(c.into()));
        let mapped: Ipv6Addr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(PeerKey::of(mapped.into()), PeerKey::of(v4(1)));
    }

    #[test]
    fn descriptor_exhaustion_pauses_until_retry_or_resume() {
        let t0 = Instant::now();
        let mut g = AcceptGate::default();
        assert!(is_resource_exhaustion(&io::Error::from_raw_os_error(24)));
        assert!(is_resource_exhaustion(&io::Error::from_raw_os_error(23)));
        assert!(!is_resource_exhaustion(&io::Error::from_raw_os_error(103)));
        assert!(is_per_connection(&io::Error::from_raw_os_error(103)));
        assert_eq!(g.pause(t0), t0 + ACCEPT_RETRY);
        assert!(g.is_paused());
        assert!(g.resume());
        assert!(!g.resume(), "resuming twice is a no-op");
    }
}
