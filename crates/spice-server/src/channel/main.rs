//! The main channel: session start, channel list, mouse mode, and the
//! measure of the client's link that picks the WAN image codecs.

use std::time::{Duration, Instant};

use spice_proto::consts::main_cap;
use spice_proto::msg::base::BaseClientMessage;
use spice_proto::msg::main::{
    AgentConnected, AgentConnectedTokens, AgentData, AgentDisconnected, AgentToken, ChannelsList, Init,
    MainClientMessage, MigrateBegin, MigrateBeginSeamless, MigrateCancel, MigrateDstSeamlessAck,
    MigrateDstSeamlessNack, MigrateEnd, MigrateSwitchHost, MouseMode, Name, Uuid, MIGRATION_PROTOCOL_VERSION,
};
use spice_proto::{Caps, DecodeError, Frame};

use super::migration::{MigrAction, MigrationTarget};
use super::{BaseOutcome, ChannelBase};

/// `REDS_AGENT_WINDOW_SIZE`: agent messages the client may send up front.
pub(crate) const AGENT_TOKENS: u32 = 10;

/// Padding of the ping whose round trip times the link (the C server's
/// `NET_TEST_BYTES`).
pub(crate) const NET_TEST_BYTES: usize = 250 * 1024;

/// Below this many bits per second a link is low-bandwidth (the C server's
/// `is_low_bandwidth`: 10 Mbps counted in 2^20).
pub(crate) const LOW_BANDWIDTH_BPS: u64 = 10 * 1024 * 1024;

/// The C server's net test: right after INIT, two empty pings (the first
/// warms the path up; the quicker of the two is the latency) and one with
/// [`NET_TEST_BYTES`] of padding, whose longer round trip is the transfer
/// time. Round trips are timed from when the pings were queued, on our
/// clock: the timestamps the client echoes are not trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NetTest {
    /// Waiting for the pong of ping `first_id + stage` (stage 0 to 2).
    Running {
        first_id: u32,
        sent: Instant,
        stage: u32,
        latency: Duration,
    },
    /// Measured.
    Done { bits_per_sec: u64 },
    /// The round trips made no sense (the padded ping came back as fast as
    /// an empty one): the link is taken as fast, as in the C server.
    Invalid,
}

/// What the main channel needs the server to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MainEvent {
    /// The client takes agent data, `tokens` messages ahead.
    AgentStart(u32),
    /// Agent data from the client.
    AgentData(Vec<u8>),
    /// The client can take `tokens` more agent messages.
    AgentToken(u32),
    /// Send the channel list.
    AttachChannels,
    /// The client asks for a mouse mode.
    MouseModeRequest(u16),
    /// The client reports on its connection to the migration destination
    /// (`MIGRATE_CONNECTED`, `_CONNECTED_SEAMLESS`: ok; `_CONNECT_ERROR`:
    /// not), and whether the destination took seamless migration.
    MigrateConnected { ok: bool, seamless: bool },
    /// On the destination: the client asks for seamless migration from a
    /// source of this migration protocol version (`DST_DO_SEAMLESS`).
    DstDoSeamless(u32),
    /// The client moved its channels here from a migration source
    /// (`SPICE_MSGC_MAIN_MIGRATE_END`, on the destination).
    MigrateEnd,
    /// The client is leaving.
    Disconnect,
}

/// What the session tells a new main channel.
#[derive(Debug, Clone)]
pub(crate) struct SessionIntro<'a> {
    pub(crate) session_id: u32,
    pub(crate) display_channels: u32,
    pub(crate) supported_mouse_modes: u32,
    pub(crate) current_mouse_mode: u32,
    pub(crate) multi_media_time: u32,
    pub(crate) agent_connected: bool,
    pub(crate) name: Option<&'a str>,
    pub(crate) uuid: Option<[u8; 16]>,
}

#[derive(Debug)]
pub(crate) struct MainChannel {
    pub(crate) base: ChannelBase,
    /// The client asked for the channel list; channels added later are announced.
    pub(crate) attached: bool,
    /// The client understands `AGENT_CONNECTED_TOKENS`.
    agent_tokens_cap: bool,
    /// The client has `SPICE_MAIN_CAP_SEMI_SEAMLESS_MIGRATE`.
    semi_seamless_cap: bool,
    /// The client has `SPICE_MAIN_CAP_SEAMLESS_MIGRATE`.
    seamless_cap: bool,
    /// The client has `SPICE_MAIN_CAP_NAME_AND_UUID`.
    name_uuid_cap: bool,
    net_test: NetTest,
}

impl MainChannel {
    /// A new main channel. With `intro`, sends INIT (and NAME, UUID when
    /// the client understands them), then the pings of the net test.
    /// Without, the client is migrating in from another server: it hears
    /// INIT only when it says its migration ended ([`Self::introduce`]).
    pub(crate) fn start(
        base: ChannelBase,
        client_caps: &Caps,
        intro: Option<&SessionIntro<'_>>,
        now: Instant,
    ) -> Self {
        let mut main = Self {
            base,
            attached: false,
            agent_tokens_cap: client_caps.has(main_cap::AGENT_CONNECTED_TOKENS),
            semi_seamless_cap: client_caps.has(main_cap::SEMI_SEAMLESS_MIGRATE),
            seamless_cap: client_caps.has(main_cap::SEAMLESS_MIGRATE),
            name_uuid_cap: client_caps.has(main_cap::NAME_AND_UUID),
            net_test: NetTest::Invalid,
        };
        if let Some(intro) = intro {
            main.introduce(intro);
            let first_id = main.base.send_padded_ping(now, 0);
            main.base.send_padded_ping(now, 0);
            main.base.send_padded_ping(now, NET_TEST_BYTES);
            main.net_test = NetTest::Running {
                first_id,
                sent: now,
                stage: 0,
                latency: Duration::MAX,
            };
        }
        main
    }

    /// Sends INIT, and NAME and UUID when the client understands them.
    /// A client that migrated in gets no net test, as from the C server:
    /// its link counts as fast.
    pub(crate) fn introduce(&mut self, intro: &SessionIntro<'_>) {
        self.base.send(&Init {
            session_id: intro.session_id,
            display_channels_hint: intro.display_channels,
            supported_mouse_modes: intro.supported_mouse_modes,
            current_mouse_mode: intro.current_mouse_mode,
            agent_connected: u32::from(intro.agent_connected),
            agent_tokens: AGENT_TOKENS,
            multi_media_time: intro.multi_media_time,
            ram_hint: 0,
        });
        if self.name_uuid_cap {
            if let Some(name) = intro.name {
                self.base.send(&Name(name.to_owned()));
            }
            if let Some(uuid) = intro.uuid {
                self.base.send(&Uuid(uuid));
            }
        }
    }

    /// Whether the net test found the client's link slower than
    /// [`LOW_BANDWIDTH_BPS`]. False until the test completes, and when it
    /// fails: an unmeasured link counts as fast, as in the C server.
    pub(crate) fn is_low_bandwidth(&self) -> bool {
        self.bits_per_sec().is_some_and(|bps| bps < LOW_BANDWIDTH_BPS)
    }

    /// The link's measured bandwidth, once the net test completed.
    fn bits_per_sec(&self) -> Option<u64> {
        match self.net_test {
            NetTest::Done { bits_per_sec } => Some(bits_per_sec),
            NetTest::Running { .. } | NetTest::Invalid => None,
        }
    }

    /// Advances the net test with the pong of ping `id`, received at `now`.
    fn net_test_pong(&mut self, id: u32, now: Instant) {
        let NetTest::Running {
            first_id,
            sent,
            stage,
            latency,
        } = self.net_test
        else {
            return;
        };
        // Other pongs (none today) are not part of the test.
        if id != first_id.wrapping_add(stage) {
            return;
        }
        let rtt = now.saturating_duration_since(sent);
        let latency = latency.min(rtt);
        self.net_test = match stage {
            0 | 1 => NetTest::Running {
                first_id,
                sent,
                stage: stage + 1,
                latency,
            },
            _ => match rtt.checked_sub(latency).map(|d| d.as_micros()) {
                Some(transfer_us) if transfer_us > 0 => {
                    let bits = NET_TEST_BYTES as u128 * 8 * 1_000_000;
                    let bits_per_sec = u64::try_from(bits / transfer_us).unwrap_or(u64::MAX);
                    tracing::info!(
                        latency_us = latency.as_micros() as u64,
                        bits_per_sec,
                        low_bandwidth = bits_per_sec < LOW_BANDWIDTH_BPS,
                        "net test"
                    );
                    NetTest::Done { bits_per_sec }
                }
                _ => {
                    tracing::debug!(
                        latency_us = latency.as_micros() as u64,
                        rtt_us = rtt.as_micros() as u64,
                        "net test: padded ping as fast as an empty one; assuming a fast link"
                    );
                    NetTest::Invalid
                }
            },
        };
    }

    pub(crate) fn handle(&mut self, frame: &Frame, now: Instant) -> Result<Option<MainEvent>, DecodeError> {
        Ok(match MainClientMessage::decode(frame.msg_type, &frame.body)? {
            MainClientMessage::Base(base) => {
                if let BaseClientMessage::Pong { id, .. } = base {
                    self.net_test_pong(id, now);
                }
                match self.base.handle_base(base, now) {
                    BaseOutcome::Disconnect => Some(MainEvent::Disconnect),
                    BaseOutcome::Continue | BaseOutcome::WindowOpened | BaseOutcome::Migrated => None,
                }
            }
            MainClientMessage::AttachChannels => {
                self.attached = true;
                Some(MainEvent::AttachChannels)
            }
            MainClientMessage::MouseModeRequest { mode } => Some(MainEvent::MouseModeRequest(mode)),
            MainClientMessage::ClientInfo { cache_size } => {
                tracing::debug!(cache_size, "client info");
                None
            }
            MainClientMessage::AgentStart { tokens } => Some(MainEvent::AgentStart(tokens)),
            MainClientMessage::AgentData(data) => Some(MainEvent::AgentData(data)),
            MainClientMessage::AgentToken { tokens } => Some(MainEvent::AgentToken(tokens)),
            MainClientMessage::MigrateConnected { seamless } => {
                tracing::debug!(seamless, "client connected to the migration destination");
                Some(MainEvent::MigrateConnected { ok: true, seamless })
            }
            MainClientMessage::MigrateConnectError => {
                tracing::debug!("client could not connect to the migration destination");
                Some(MainEvent::MigrateConnected {
                    ok: false,
                    seamless: false,
                })
            }
            MainClientMessage::MigrateEnd => Some(MainEvent::MigrateEnd),
            MainClientMessage::MigrateDstDoSeamless { src_version } => {
                Some(MainEvent::DstDoSeamless(src_version))
            }
            MainClientMessage::Unknown(t) => {
                tracing::debug!(msg_type = t, "ignoring unknown main message");
                None
            }
        })
    }

    pub(crate) fn send_channels_list(&mut self, channels: Vec<(u8, u8)>) {
        self.base.send(&ChannelsList(channels));
    }

    /// The agent attached: the client may start talking to it.
    pub(crate) fn send_agent_connected(&mut self) {
        if self.agent_tokens_cap {
            self.base.send(&AgentConnectedTokens(AGENT_TOKENS));
        } else {
            self.base.send(&AgentConnected);
        }
    }

    pub(crate) fn send_agent_disconnected(&mut self) {
        self.base.send(&AgentDisconnected { error_code: 0 });
    }

    pub(crate) fn send_agent_data(&mut self, data: &[u8]) {
        self.base.send(&AgentData(data));
    }

    pub(crate) fn send_agent_tokens(&mut self, tokens: u32) {
        self.base.send(&AgentToken(tokens));
    }

    /// Whether the client takes `MIGRATE_BEGIN` (semi-seamless migration).
    pub(crate) fn semi_seamless_migrate(&self) -> bool {
        self.semi_seamless_cap
    }

    /// Whether the client takes `MIGRATE_BEGIN_SEAMLESS`.
    pub(crate) fn seamless_migrate(&self) -> bool {
        self.seamless_cap
    }

    /// Answers `DST_DO_SEAMLESS`.
    pub(crate) fn send_dst_seamless(&mut self, ack: bool) {
        if ack {
            self.base.send(&MigrateDstSeamlessAck);
        } else {
            self.base.send(&MigrateDstSeamlessNack);
        }
    }

    /// Queues what [`crate::channel::migration::SourceMigration`] says
    /// this client is told.
    pub(crate) fn send_migrate(&mut self, action: &MigrAction, target: &MigrationTarget) {
        match action {
            MigrAction::Begin(_) => self.base.send(&MigrateBegin(target.dst_info())),
            MigrAction::BeginSeamless(_) => self.base.send(&MigrateBeginSeamless {
                dst: target.dst_info(),
                src_mig_version: MIGRATION_PROTOCOL_VERSION,
            }),
            MigrAction::End(_) => self.base.send(&MigrateEnd),
            MigrAction::Cancel(_) => self.base.send(&MigrateCancel),
            MigrAction::SwitchHost(_) => self.base.send(&MigrateSwitchHost(target.dst_info())),
            MigrAction::MigrateChannels(_) | MigrAction::ConnectComplete | MigrAction::EndComplete => {}
        }
    }

    pub(crate) fn send_mouse_mode(&mut self, supported: u32, current: u32) {
        self.base.send(&MouseMode {
            supported: supported as u16,
            current: current as u16,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spice_proto::msg::base::{client_type, server_type};
    use spice_proto::{Deframer, HeaderKind};

    fn intro() -> SessionIntro<'static> {
        SessionIntro {
            session_id: 1,
            display_channels: 1,
            supported_mouse_modes: 3,
            current_mouse_mode: 2,
            multi_media_time: 0,
            agent_connected: false,
            name: None,
            uuid: None,
        }
    }

    /// The pings the channel queued: (id, body length).
    fn pings(main: &MainChannel) -> Vec<(u32, usize)> {
        let mut d = Deframer::new(HeaderKind::Mini, 1 << 20);
        d.push(main.base.out.pending());
        let mut out = Vec::new();
        while let Some(f) = d.next_frame().unwrap() {
            if f.msg_type == server_type::PING {
                out.push((u32::from_le_bytes(f.body[..4].try_into().unwrap()), f.body.len()));
            }
        }
        out
    }

    fn pong(main: &mut MainChannel, id: u32, at: Instant) {
        let mut body = id.to_le_bytes().to_vec();
        // The echoed timestamp is not trusted: a wild one changes nothing.
        body.extend(u64::MAX.to_le_bytes());
        let frame = Frame {
            msg_type: client_type::PONG,
            body,
        };
        assert_eq!(main.handle(&frame, at).unwrap(), None);
    }

    /// Runs the net test with the pongs arriving `rtts` after the start.
    fn net_test(rtts: [Duration; 3]) -> MainChannel {
        let t0 = Instant::now();
        let base = ChannelBase::new(HeaderKind::Mini, t0);
        let mut main = MainChannel::start(base, &Caps::new(), Some(&intro()), t0);
        let p = pings(&main);
        assert_eq!(p.len(), 3);
        assert_eq!(p[0].1, 12);
        assert_eq!(p[1].1, 12);
        assert_eq!(p[2].1, 12 + NET_TEST_BYTES);
        assert!(!main.is_low_bandwidth());
        for (&(id, _), rtt) in p.iter().zip(rtts) {
            pong(&mut main, id, t0 + rtt);
        }
        main
    }

    #[test]
    fn net_test_measures_the_link() {
        let ms = Duration::from_millis;
        // 250 KiB in 20 ms after 5 ms of latency: about 100 Mbps.
        let lan = net_test([ms(6), ms(5), ms(25)]);
        assert_eq!(lan.bits_per_sec(), Some(NET_TEST_BYTES as u64 * 8 * 50));
        assert!(!lan.is_low_bandwidth());
        // 250 KiB in 1 s: 2 Mbps, a WAN link.
        let wan = net_test([ms(40), ms(45), ms(1040)]);
        assert_eq!(wan.bits_per_sec(), Some(NET_TEST_BYTES as u64 * 8));
        assert!(wan.is_low_bandwidth());
        // The padded ping as fast as the empty ones: no measure, a fast link.
        let odd = net_test([ms(5), ms(5), ms(5)]);
        assert_eq!(odd.bits_per_sec(), None);
        assert!(!odd.is_low_bandwidth());
    }

    #[test]
    fn net_test_ignores_pongs_out_of_order_or_unknown() {
        let t0 = Instant::now();
        let base = ChannelBase::new(HeaderKind::Mini, t0);
        let mut main = MainChannel::start(base, &Caps::new(), Some(&intro()), t0);
        let ids: Vec<u32> = pings(&main).iter().map(|p| p.0).collect();
        let s = Duration::from_secs;
        pong(&mut main, ids[2], t0 + s(9));
        pong(&mut main, 77, t0 + s(9));
        assert_eq!(main.bits_per_sec(), None);
        pong(&mut main, ids[0], t0 + s(1));
        pong(&mut main, ids[1], t0 + s(1));
        pong(&mut main, ids[1], t0 + s(50));
        pong(&mut main, ids[2], t0 + s(2));
        assert_eq!(main.bits_per_sec(), Some(NET_TEST_BYTES as u64 * 8));
        assert!(main.is_low_bandwidth());
        // Later pongs do not change the result.
        pong(&mut main, ids[2], t0 + s(3));
        assert_eq!(main.bits_per_sec(), Some(NET_TEST_BYTES as u64 * 8));
    }
}
