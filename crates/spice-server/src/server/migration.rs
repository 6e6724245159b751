//! Client migration on the main context: the host's requests
//! ([`crate::ServerHandle::migrate_connect`], `migrate_end`, …) run through
//! [`SourceMigration`] and its actions become main channel messages and
//! calls of the host's [`MigrationHost`].

use spice_proto::migrate_data::{CharDeviceData, MainData, MigrateData};
use spice_proto::msg::main::MIGRATION_PROTOCOL_VERSION;

use super::conn::{Channel, Phase};
use super::ServerState;
use crate::channel::main::MainChannel;
use crate::channel::migration::{MigrAction, MigrClient, MigrationTarget};
use crate::worker::ToWorker;

/// What the host hears about a migration (the C API's
/// `SpiceMigrateInterface`). Called on the main context.
pub trait MigrationHost: Send {
    /// The clients are connected to the destination, or gave up, or took
    /// too long: the host may start the migration.
    fn connect_complete(&self);
    /// The clients were told where to go and left (or took too long).
    fn end_complete(&self);
}

impl ServerState {
    /// Every session's main channel client as the migration sees it.
    /// Seamless migration moves one client's state, so with several clients
    /// allowed it is off, as in the C server.
    fn migr_clients(&self) -> Vec<MigrClient> {
        let seamless = self.seamless_migration && !self.config.allow_multiple_clients;
        self.sessions
            .iter()
            .filter_map(|s| match self.conns.get(&s.main).map(|c| &c.phase) {
                Some(Phase::Linked {
                    channel: Channel::Main(m),
                    ..
                }) => Some(MigrClient {
                    id: s.main,
                    semi_seamless: m.semi_seamless_migrate(),
                    seamless: seamless && m.seamless_migrate(),
                }),
                _ => None,
            })
            .collect()
    }

    pub(super) fn migrate_info(&mut self, target: MigrationTarget) {
        tracing::debug!(host = %target.host, port = ?target.port, tls_port = ?target.tls_port, "migration destination");
        self.migration.set_target(target);
    }

    pub(super) fn migrate_connect(&mut self, target: MigrationTarget) {
        tracing::info!(host = %target.host, port = ?target.port, tls_port = ?target.tls_port, "migration: clients connect to the destination");
        let clients = self.migr_clients();
        let now = self.now();
        let actions = self.migration.connect(target, &clients, now);
        self.migr_apply(actions, None);
    }

    pub(super) fn migrate_end(&mut self, completed: bool) {
        tracing::info!(completed, "migration: end");
        let clients = self.migr_clients();
        let now = self.now();
        let actions = self.migration.end(completed, &clients, now);
        self.migr_apply(actions, None);
    }

    /// A main channel's `MIGRATE_CONNECTED` or `_CONNECT_ERROR`; `main` is
    /// that channel (its connection is out of the table while it is served).
    pub(super) fn migrate_client_connected(
        &mut self,
        id: u64,
        ok: bool,
        seamless: bool,
        main: &mut MainChannel,
    ) {
        let actions = self.migration.client_connected(id, ok, seamless);
        self.migr_apply(actions, Some((id, main)));
    }

    /// A main channel closed.
    pub(super) fn migrate_client_gone(&mut self, id: u64) {
        let actions = self.migration.client_gone(id);
        self.migr_apply(actions, None);
    }

    pub(super) fn migrate_timeout(&mut self) {
        let now = self.now();
        let actions = self.migration.timeout(now);
        self.migr_apply(actions, None);
    }

    /// Destination side: the client's MIGRATE_END on main channel
    /// `main_id`. Its channels moved here; the session starts: INIT, then
    /// the channels that linked meanwhile.
    pub(super) fn migration_arrived(&mut self, main_id: u64, main: &mut MainChannel) {
        let Some(session) = self.session_of_main(main_id).filter(|s| s.migrating_in) else {
            tracing::debug!("client MIGRATE_END outside a migration; ignored");
            return;
        };
        session.migrating_in = false;
        let (session_id, waiting) = (session.id, session.channels.clone());
        let now = self.now();
        main.introduce(&self.session_intro(session_id, now));
        tracing::info!(
            session = session_id,
            channels = waiting.len(),
            "client migrated in"
        );
        for id in waiting {
            self.unpark(id, now);
        }
    }

    /// Destination side: the client of a source that offered seamless
    /// migration asks for it (`DST_DO_SEAMLESS`) on main channel
    /// `main_id`. Taken from a source of our protocol version or older, as
    /// C does: its channels start at once and wait for their state
    /// (MIGRATE_DATA) instead of the session starting on MIGRATE_END.
    pub(super) fn seamless_arrival(&mut self, main_id: u64, src_version: u32, main: &mut MainChannel) {
        let session = self.session_of_main(main_id).filter(|s| s.migrating_in);
        let Some(session) = session.filter(|_| src_version <= MIGRATION_PROTOCOL_VERSION) else {
            tracing::debug!(src_version, "refusing seamless migration");
            main.send_dst_seamless(false);
            return;
        };
        session.migrating_in = false;
        session.seamless = true;
        let (session_id, waiting) = (session.id, session.channels.clone());
        main.send_dst_seamless(true);
        tracing::info!(
            session = session_id,
            channels = waiting.len(),
            "client migrating in seamlessly"
        );
        let now = self.now();
        for id in waiting {
            self.unpark(id, now);
        }
    }

    /// Source side of seamless migration: every channel of the session
    /// tells the client it moves (`MIGRATE`) and hands it its state for
    /// the destination; display and cursor channels do so on their
    /// display's thread.
    fn migrate_channels_out(&mut self, main: u64, current: &mut Option<(u64, &mut MainChannel)>) {
        let Some(session) = self.session_of_main(main) else {
            return;
        };
        session.moved_out = true;
        let (main_id, channels) = (session.main, session.channels.clone());
        let main_data = MigrateData::Main(MainData {
            agent: CharDeviceData {
                connected: self.agent.is_some(),
                ..Default::default()
            },
            client_agent_started: false,
        });
        match current {
            Some((cur, main)) if *cur == main_id => main.base.migrate_out(Some(main_data)),
            _ => self.with_main_conn(main_id, |m| m.base.migrate_out(Some(main_data))),
        }
        for id in channels {
            if let Some(info) = self.remote.get(&id) {
                if let Some(worker) = self.display_worker(info.channel_id) {
                    worker.send(ToWorker::MigrateOut(id));
                }
                continue;
            }
            self.with_conn(id, |s, conn| {
                if let Phase::Linked { channel, .. } = &mut conn.phase {
                    let data = match channel {
                        Channel::Inputs(_) => Some(MigrateData::Inputs { motion_count: 0 }),
                        Channel::Vmc(..) => Some(MigrateData::SpiceVmc(CharDeviceData {
                            connected: true,
                            ..Default::default()
                        })),
                        _ => None,
                    };
                    channel.base().migrate_out(data);
                }
                s.pump(conn)
            });
        }
    }

    /// Starts a channel that waited for its session's migration to end.
    fn unpark(&mut self, id: u64, now: std::time::Instant) {
        let Some(mut conn) = self.conns.remove(&id) else {
            return;
        };
        let Phase::Parked(parked) = &mut conn.phase else {
            self.conns.insert(id, conn);
            return;
        };
        let mess = parked.mess.clone();
        let header = parked.header;
        let out = std::mem::take(&mut parked.out);
        let early = std::mem::take(&mut parked.early);
        // It rejoins the session's list as it starts.
        self.forget_channel(id);
        self.start_channel(id, &mut conn, &mess, header, out, now);
        let mut keep = !matches!(conn.phase, Phase::Parked(_));
        if keep && !early.is_empty() {
            keep = self.feed(id, &mut conn, &early);
        }
        let keep = keep && self.pump(&mut conn);
        self.settle(id, conn, keep);
    }

    fn migr_apply(&mut self, actions: Vec<MigrAction>, mut current: Option<(u64, &mut MainChannel)>) {
        for action in actions {
            match action {
                MigrAction::ConnectComplete => {
                    tracing::debug!("migration: connect complete");
                    if let Some(host) = &self.migration_host {
                        host.connect_complete();
                    }
                }
                MigrAction::EndComplete => {
                    tracing::debug!("migration: end complete");
                    if let Some(host) = &self.migration_host {
                        host.end_complete();
                    }
                }
                MigrAction::MigrateChannels(id) => {
                    tracing::debug!(id, "migration: channels move with their state");
                    self.migrate_channels_out(id, &mut current);
                }
                MigrAction::Begin(id)
                | MigrAction::BeginSeamless(id)
                | MigrAction::End(id)
                | MigrAction::Cancel(id)
                | MigrAction::SwitchHost(id) => {
                    let Some(target) = self.migration.target().cloned() else {
                        continue;
                    };
                    tracing::debug!(?action, "migration message");
                    match &mut current {
                        Some((cur, main)) if *cur == id => main.send_migrate(&action, &target),
                        _ => self.with_main_conn(id, |m| m.send_migrate(&action, &target)),
                    }
                }
            }
        }
        if let Some(timer) = self.migration_timer {
            match self.migration.deadline() {
                Some(at) => {
                    let now = self.now();
                    self.core.start_timer(timer, at.saturating_duration_since(now));
                }
                None => self.core.cancel_timer(timer),
            }
        }
    }
}
