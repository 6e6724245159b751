//! The source side of client migration, without I/O: which main channel
//! clients are told to connect to the destination, when the host hears that
//! the clients are ready (`migrate_connect_complete`) and that the move is
//! over (`migrate_end_complete`), and what each client is told at the end.
//!
//! The behaviour is the C server's (`reds.cpp`'s `reds_mig_*`,
//! `MainChannelClient::migrate_src_complete`): a client with
//! `SPICE_MAIN_CAP_SEMI_SEAMLESS_MIGRATE` gets `MIGRATE_BEGIN` and is waited
//! for (at most [`CONNECT_TIMEOUT`]); at the end a client that reached the
//! destination gets `MIGRATE_END` (or `MIGRATE_CANCEL` when the migration
//! failed), any other `SWITCH_HOST` when it succeeded. After `MIGRATE_END`
//! the server waits (at most [`END_TIMEOUT`]) for those clients to leave
//! before it tells the host.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use spice_proto::msg::main::DstInfo;

/// How long the clients have to report on their connection to the
/// destination (C's `MIGRATE_TIMEOUT`).
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long clients told `MIGRATE_END` have to disconnect (C's
/// `MIGRATE_TIMEOUT` again, for `reds_mig_wait_disconnect_clients`).
pub(crate) const END_TIMEOUT: Duration = Duration::from_secs(10);

/// Where clients are to go: what the host gave `spice_server_migrate_info`
/// or `spice_server_migrate_connect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationTarget {
    /// Host name or address of the destination.
    pub host: String,
    /// Plain port, `None` when the destination has none.
    pub port: Option<u16>,
    /// TLS port, `None` when the destination has none.
    pub tls_port: Option<u16>,
    /// Subject the destination's certificate must carry.
    pub cert_subject: Option<String>,
}

impl MigrationTarget {
    /// The destination as the migrate messages carry it. A missing port
    /// goes as C sends the host's -1: all ones.
    pub(crate) fn dst_info(&self) -> DstInfo {
        DstInfo {
            port: self.port.unwrap_or(u16::MAX),
            sport: self.tls_port.unwrap_or(u16::MAX),
            host: self.host.clone(),
            cert_subject: self.cert_subject.clone(),
        }
    }
}

/// A main channel client at the start of a migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MigrClient {
    /// The connection.
    pub(crate) id: u64,
    /// It has `SPICE_MAIN_CAP_SEMI_SEAMLESS_MIGRATE`.
    pub(crate) semi_seamless: bool,
    /// It has `SPICE_MAIN_CAP_SEAMLESS_MIGRATE` and the host allows
    /// seamless migration (`spice_server_set_seamless_migration`).
    pub(crate) seamless: bool,
}

/// What the driver is to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MigrAction {
    /// Send `MIGRATE_BEGIN` to this client.
    Begin(u64),
    /// Send `MIGRATE_BEGIN_SEAMLESS` to this client.
    BeginSeamless(u64),
    /// Seamless migration: move every channel of this client (`MIGRATE`
    /// and its state on each), in place of `MIGRATE_END`.
    MigrateChannels(u64),
    /// Send `MIGRATE_END` to this client (it reached the destination).
    End(u64),
    /// Send `MIGRATE_CANCEL` to this client.
    Cancel(u64),
    /// Send `MIGRATE_SWITCH_HOST` to this client.
    SwitchHost(u64),
    /// Call the host's `migrate_connect_complete`.
    ConnectComplete,
    /// Call the host's `migrate_end_complete`.
    EndComplete,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// No migration under way.
    Idle,
    /// Waiting for these clients' `MIGRATE_CONNECTED` or `_CONNECT_ERROR`.
    Connecting {
        waiting: BTreeSet<u64>,
        deadline: Instant,
    },
    /// The host has heard `migrate_connect_complete`; it is migrating.
    Connected,
    /// Waiting for these clients, told `MIGRATE_END`, to disconnect.
    Ending {
        waiting: BTreeSet<u64>,
        deadline: Instant,
    },
}

/// The source's migration state.
#[derive(Debug)]
pub(crate) struct SourceMigration {
    target: Option<MigrationTarget>,
    phase: Phase,
    /// Clients that reported a connection to the destination.
    connected: BTreeSet<u64>,
    /// Those of them whose destination took seamless migration.
    seamless: BTreeSet<u64>,
}

impl Default for SourceMigration {
    fn default() -> Self {
        Self::new()
    }
}

impl SourceMigration {
    pub(crate) fn new() -> Self {
        Self {
            target: None,
            phase: Phase::Idle,
            connected: BTreeSet::new(),
            seamless: BTreeSet::new(),
        }
    }

    /// The destination, once the host named one.
    pub(crate) fn target(&self) -> Option<&MigrationTarget> {
        self.target.as_ref()
    }

    /// `spice_server_migrate_info`: remembers the destination; nothing is
    /// sent until the migration starts.
    pub(crate) fn set_target(&mut self, target: MigrationTarget) {
        self.target = Some(target);
    }

    /// `spice_server_migrate_connect`: the destination is known and the
    /// host waits for `migrate_connect_complete`. Clients that can connect
    /// ahead are told `MIGRATE_BEGIN`; with none, the host hears at once.
    pub(crate) fn connect(
        &mut self,
        target: MigrationTarget,
        clients: &[MigrClient],
        now: Instant,
    ) -> Vec<MigrAction> {
        self.target = Some(target);
        self.connected.clear();
        self.seamless.clear();
        let waiting: BTreeSet<u64> = clients
            .iter()
            .filter(|c| c.semi_seamless || c.seamless)
            .map(|c| c.id)
            .collect();
        let mut actions: Vec<MigrAction> = clients
            .iter()
            .filter(|c| waiting.contains(&c.id))
            .map(|c| {
                if c.seamless {
                    MigrAction::BeginSeamless(c.id)
                } else {
                    MigrAction::Begin(c.id)
                }
            })
            .collect();
        if waiting.is_empty() {
            self.phase = Phase::Connected;
            actions.push(MigrAction::ConnectComplete);
        } else {
            self.phase = Phase::Connecting {
                waiting,
                deadline: now + CONNECT_TIMEOUT,
            };
        }
        actions
    }

    /// A client's `MIGRATE_CONNECTED` (`ok`), `MIGRATE_CONNECTED_SEAMLESS`
    /// (`ok` and `seamless`: the destination took seamless migration) or
    /// `MIGRATE_CONNECT_ERROR`. Returns whether the client is to be told
    /// `MIGRATE_CANCEL` (a late success, as in C) and what else to do.
    pub(crate) fn client_connected(&mut self, id: u64, ok: bool, seamless: bool) -> Vec<MigrAction> {
        let Phase::Connecting { waiting, .. } = &mut self.phase else {
            // Not waited for: C cancels a late connection.
            return if ok {
                vec![MigrAction::Cancel(id)]
            } else {
                Vec::new()
            };
        };
        if !waiting.remove(&id) {
            return if ok {
                vec![MigrAction::Cancel(id)]
            } else {
                Vec::new()
            };
        }
        if ok {
            self.connected.insert(id);
            if seamless {
                self.seamless.insert(id);
            }
        }
        if waiting.is_empty() {
            self.phase = Phase::Connected;
            vec![MigrAction::ConnectComplete]
        } else {
            Vec::new()
        }
    }

    /// A client left.
    pub(crate) fn client_gone(&mut self, id: u64) -> Vec<MigrAction> {
        self.connected.remove(&id);
        self.seamless.remove(&id);
        match &mut self.phase {
            Phase::Connecting { waiting, .. } => {
                if waiting.remove(&id) && waiting.is_empty() {
                    self.phase = Phase::Connected;
                    return vec![MigrAction::ConnectComplete];
                }
            }
            Phase::Ending { waiting, .. } => {
                if waiting.remove(&id) && waiting.is_empty() {
                    self.finish();
                    return vec![MigrAction::EndComplete];
                }
            }
            Phase::Idle | Phase::Connected => {}
        }
        Vec::new()
    }

    /// `spice_server_migrate_end(completed)`: what each client is told, and
    /// when the host hears `migrate_end_complete`.
    pub(crate) fn end(&mut self, completed: bool, clients: &[MigrClient], now: Instant) -> Vec<MigrAction> {
        let mut actions = Vec::new();
        if self.target.is_none() || self.phase == Phase::Idle {
            // Never started: C still answers the host.
            self.finish();
            actions.push(MigrAction::EndComplete);
            return actions;
        }
        let mut waiting = BTreeSet::new();
        for c in clients {
            if self.connected.contains(&c.id) {
                if completed && self.seamless.contains(&c.id) {
                    actions.push(MigrAction::MigrateChannels(c.id));
                    waiting.insert(c.id);
                } else if completed {
                    actions.push(MigrAction::End(c.id));
                    waiting.insert(c.id);
                } else {
                    actions.push(MigrAction::Cancel(c.id));
                }
            } else if completed {
                // Told to reconnect to the destination by itself; waited
                // for like the others (C's mig_wait_disconnect holds every
                // client), which also keeps the target for the message.
                actions.push(MigrAction::SwitchHost(c.id));
                waiting.insert(c.id);
            }
        }
        if waiting.is_empty() {
            self.finish();
            actions.push(MigrAction::EndComplete);
        } else {
            self.phase = Phase::Ending {
                waiting,
                deadline: now + END_TIMEOUT,
            };
        }
        actions
    }

    /// When the driver should call [`SourceMigration::timeout`].
    pub(crate) fn deadline(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Connecting { deadline, .. } | Phase::Ending { deadline, .. } => Some(*deadline),
            Phase::Idle | Phase::Connected => None,
        }
    }

    /// Gives up on clients that did not answer or leave in time.
    pub(crate) fn timeout(&mut self, now: Instant) -> Vec<MigrAction> {
        match &self.phase {
            Phase::Connecting { deadline, .. } if now >= *deadline => {
                tracing::warn!(
                    "clients did not report on their connection to the migration destination in time"
                );
                self.phase = Phase::Connected;
                vec![MigrAction::ConnectComplete]
            }
            Phase::Ending { deadline, .. } if now >= *deadline => {
                tracing::warn!("clients did not leave after the migration in time");
                self.finish();
                vec![MigrAction::EndComplete]
            }
            _ => Vec::new(),
        }
    }

    fn finish(&mut self) {
        self.phase = Phase::Idle;
        self.connected.clear();
        self.seamless.clear();
        self.target = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> MigrationTarget {
        MigrationTarget {
            host: "127.0.0.1".into(),
            port: Some(5930),
            tls_port: None,
            cert_subject: None,
        }
    }

    fn client(id: u64, semi_seamless: bool) -> MigrClient {
        MigrClient {
            id,
            semi_seamless,
            seamless: false,
        }
    }

    #[test]
    fn seamless_client_moves_its_channels_instead_of_migrate_end() {
        let t0 = Instant::now();
        let mut m = SourceMigration::new();
        let clients = [MigrClient {
            id: 1,
            semi_seamless: true,
            seamless: true,
        }];
        assert_eq!(m.connect(target(), &clients, t0), [MigrAction::BeginSeamless(1)]);
        assert_eq!(m.client_connected(1, true, true), [MigrAction::ConnectComplete]);
        assert_eq!(m.end(true, &clients, t0), [MigrAction::MigrateChannels(1)]);
        assert_eq!(m.client_gone(1), [MigrAction::EndComplete]);
        // Its destination declined seamless: semi-seamless, MIGRATE_END.
        m.connect(target(), &clients, t0);
        m.client_connected(1, true, false);
        assert_eq!(m.end(true, &clients, t0), [MigrAction::End(1)]);
    }

    #[test]
    fn semi_seamless_client_connects_then_ends() {
        let t0 = Instant::now();
        let mut m = SourceMigration::new();
        let clients = [client(1, true)];
        assert_eq!(m.connect(target(), &clients, t0), [MigrAction::Begin(1)]);
        assert_eq!(m.deadline(), Some(t0 + CONNECT_TIMEOUT));
        assert_eq!(m.client_connected(1, true, false), [MigrAction::ConnectComplete]);
        assert_eq!(m.deadline(), None);
        assert_eq!(m.end(true, &clients, t0), [MigrAction::End(1)]);
        assert_eq!(m.deadline(), Some(t0 + END_TIMEOUT));
        assert_eq!(m.client_gone(1), [MigrAction::EndComplete]);
        assert!(m.target().is_none());
    }

    #[test]
    fn client_without_cap_is_switched() {
        let t0 = Instant::now();
        let mut m = SourceMigration::new();
        let clients = [client(1, false)];
        assert_eq!(m.connect(target(), &clients, t0), [MigrAction::ConnectComplete]);
        assert_eq!(m.end(true, &clients, t0), [MigrAction::SwitchHost(1)]);
        // The message needs the target until the client has gone.
        assert!(m.target().is_some());
        assert_eq!(m.client_gone(1), [MigrAction::EndComplete]);
        assert!(m.target().is_none());
    }

    #[test]
    fn migration_ending_before_the_client_answered_switches_it() {
        let t0 = Instant::now();
        let mut m = SourceMigration::new();
        let clients = [client(1, true)];
        assert_eq!(m.connect(target(), &clients, t0), [MigrAction::Begin(1)]);
        // QEMU does not wait for connect_complete: a small VM can finish
        // first. As in C, the client is switched, and its late answer
        // cancelled.
        assert_eq!(m.end(true, &clients, t0), [MigrAction::SwitchHost(1)]);
        assert_eq!(m.client_connected(1, true, false), [MigrAction::Cancel(1)]);
        assert_eq!(m.client_gone(1), [MigrAction::EndComplete]);
    }

    #[test]
    fn failed_connection_falls_back_to_switch_host() {
        let t0 = Instant::now();
        let mut m = SourceMigration::new();
        let clients = [client(1, true)];
        m.connect(target(), &clients, t0);
        assert_eq!(m.client_connected(1, false, false), [MigrAction::ConnectComplete]);
        assert_eq!(m.end(true, &clients, t0), [MigrAction::SwitchHost(1)]);
        assert_eq!(m.client_gone(1), [MigrAction::EndComplete]);
    }

    #[test]
    fn failed_migration_cancels_connected_clients() {
        let t0 = Instant::now();
        let mut m = SourceMigration::new();
        let clients = [client(1, true), client(2, false)];
        m.connect(target(), &clients, t0);
        m.client_connected(1, true, false);
        assert_eq!(
            m.end(false, &clients, t0),
            [MigrAction::Cancel(1), MigrAction::EndComplete]
        );
    }

    #[test]
    fn silent_clients_time_out() {
        let t0 = Instant::now();
        let mut m = SourceMigration::new();
        let clients = [client(1, true)];
        m.connect(target(), &clients, t0);
        assert!(m.timeout(t0 + CONNECT_TIMEOUT / 2).is_empty());
        assert_eq!(m.timeout(t0 + CONNECT_TIMEOUT), [MigrAction::ConnectComplete]);
        // It never said it connected: switch host.
        assert_eq!(m.end(true, &clients, t0), [MigrAction::SwitchHost(1)]);
        assert_eq!(m.timeout(t0 + END_TIMEOUT), [MigrAction::EndComplete]);

        m.connect(target(), &clients, t0);
        m.client_connected(1, true, false);
        m.end(true, &clients, t0);
        assert!(m.timeout(t0 + END_TIMEOUT / 2).is_empty());
        assert_eq!(m.timeout(t0 + END_TIMEOUT), [MigrAction::EndComplete]);
        assert_eq!(m.deadline(), None);
    }

    #[test]
    fn late_or_unasked_connection_is_cancelled() {
        let t0 = Instant::now();
        let mut m = SourceMigration::new();
        assert_eq!(m.client_connected(7, true, false), [MigrAction::Cancel(7)]);
        assert!(m.client_connected(7, false, false).is_empty());
        let clients = [client(1, true), client(2, true)];
        m.connect(target(), &clients, t0);
        assert!(m.client_connected(1, true, false).is_empty());
        // A client leaving while waited for counts as answered.
        assert_eq!(m.client_gone(2), [MigrAction::ConnectComplete]);
        assert_eq!(m.client_connected(2, true, false), [MigrAction::Cancel(2)]);
    }

    #[test]
    fn end_without_start_answers_the_host() {
        let mut m = SourceMigration::new();
        assert_eq!(
            m.end(true, &[client(1, true)], Instant::now()),
            [MigrAction::EndComplete]
        );
        m.set_target(target());
        assert_eq!(m.target(), Some(&target()));
    }

    #[test]
    fn dst_info_carries_both_ports() {
        let t = MigrationTarget {
            host: "h".into(),
            port: None,
            tls_port: Some(5901),
            cert_subject: Some("CN=h".into()),
        };
        let d = t.dst_info();
        assert_eq!((d.port, d.sport), (u16::MAX, 5901));
        assert_eq!(d.cert_subject.as_deref(), Some("CN=h"));
    }
}
