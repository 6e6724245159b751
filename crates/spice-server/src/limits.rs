//! What one client (or one peer address) may cost the server, and what an
//! operator can tune. `SECURITY.md` explains each limit and its default.

use std::time::Duration;

/// Limits on what clients may make the server hold or do.
///
/// The defaults suit a server with a few clients behind the common
/// 1024-descriptor limit; see `SECURITY.md` for the reasoning behind each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Output queued for one connection (main, inputs, playback, record,
    /// a link in progress) past which its requests are no longer read: every
    /// request may queue a reply, so a client that does not read its replies
    /// gets no more served until it catches up. Default 256 KiB.
    pub output_pause_bytes: usize,
    /// Output queued for one connection past which it is disconnected.
    /// Default 8 MiB.
    pub output_max_bytes: usize,
    /// A connection whose reading is paused (see
    /// [`Self::output_pause_bytes`]) and that takes no byte for this long
    /// is disconnected. Default 30 s.
    pub stalled_client_timeout: Duration,
    /// Connections that have not finished linking, in total. When full, the
    /// oldest one is dropped for a newcomer, so a flood cannot hold every
    /// slot against a client that links quickly. Default 64.
    pub max_pending_links: usize,
    /// Connections that have not finished linking, from one peer (an IPv4
    /// address, or an IPv6 /64 prefix). When a peer is at its cap, its own
    /// oldest is dropped for its newcomer, so a flood from one address takes
    /// no other peer's slot. Default 16: spice-gtk links its channels at
    /// the same time.
    pub max_pending_links_per_peer: usize,
    /// Wait imposed on a peer after its first wrong password; it doubles
    /// with each further failure up to [`Self::auth_max_delay`]. Default 250 ms.
    pub auth_delay: Duration,
    /// Ceiling of the per-peer wait after wrong passwords. Default 4 s.
    pub auth_max_delay: Duration,
    /// Password checks from peers that have failed before are spaced at
    /// least this much apart across all peers (a global rate: 10 per second
    /// by default). A peer's first attempt is never held back by this.
    pub auth_global_interval: Duration,
    /// An attempt that would wait longer than this (many parallel attempts
    /// or many peers guessing at once) is refused without being checked,
    /// after waiting this long itself. Default 5 s.
    pub auth_max_wait: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            output_pause_bytes: 256 * 1024,
            output_max_bytes: 8 << 20,
            stalled_client_timeout: Duration::from_secs(30),
            max_pending_links: 64,
            max_pending_links_per_peer: 16,
            auth_delay: Duration::from_millis(250),
            auth_max_delay: Duration::from_secs(4),
            auth_global_interval: Duration::from_millis(100),
            auth_max_wait: Duration::from_secs(5),
        }
    }
}
