//! Link stage driving: accept, ticket check, session and channel creation.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Instant;

use spice_proto::consts::{
    common_cap, display_cap, inputs_cap, main_cap, playback_cap, record_cap, spicevmc_cap,
};
use spice_proto::link::LinkMess;
use spice_proto::ticket::TicketKey;
use spice_proto::{Caps, ChannelType, Deframer, HeaderKind, LinkAcceptor, LinkError, LinkEvent};

use super::admission::PeerKey;
use super::auth_throttle::Check;
use super::conn::{Channel, Conn, DeferredTicket, Parked, Phase};
use super::ticket_keys::KeyUse;
use super::{channel_name, ServerState, Session};
use crate::channel::inputs::InputsChannel;
use crate::channel::main::{MainChannel, SessionIntro};
use crate::channel::playback::PlaybackChannel;
use crate::channel::record::RecordChannel;
use crate::channel::{ChannelBase, OutBuf};
use crate::core::{ChannelEvent, ChannelInfo, Interest};
use crate::handle::ServerHandle;
use crate::socket::{ClientSocket, Stream};
use crate::worker::{Handover, HandoverKind};

/// Bytes a client may send after a ticket whose check waits; a client
/// waits for its link result, so anything beyond a message or two is abuse.
const MAX_EARLY_BYTES: usize = 64 * 1024;

/// How a link message was answered.
enum RequestStep {
    /// The link reply is queued.
    Answered,
    /// The reply waits for a ticket key from the pool.
    AwaitingKey,
    /// Refused: close the connection.
    Refused,
}

/// How a ticket (or a SASL exchange) was answered.
pub(super) enum TicketStep {
    /// The connection is a channel now.
    Linked,
    /// The SASL exchange goes on: keep reading.
    Continue,
    /// The check waits for the password throttle.
    Deferred,
    /// Refused: close the connection.
    Refused,
}

/// Largest message body a client may send, per channel type.
fn max_client_message(channel: ChannelType) -> u32 {
    match channel {
        // Agent data chunks are at most 2 KiB plus headers.
        ChannelType::Main => 8 * 1024,
        // Captured audio: spice-gtk sends 1924-byte packets.
        ChannelType::Record => spice_proto::msg::record::MAX_RECORD_DATA as u32 + 64,
        ChannelType::UsbRedir | ChannelType::Port | ChannelType::Webdav => {
            spice_proto::msg::spicevmc::MAX_CLIENT_DATA as u32 + 64
        }
        _ => 4 * 1024,
    }
}

impl ServerState {
    /// Starts the link stage on a connected socket; `peer` is `None` for a
    /// Unix socket's client.
    pub(super) fn add_link(
        &mut self,
        stream: ClientSocket,
        peer: Option<SocketAddr>,
        skip_auth: bool,
        tls: bool,
    ) {
        if let Err(e) = stream.set_nonblocking(true) {
            tracing::warn!(?peer, error = %e, "cannot make client socket non-blocking");
            return;
        }
        stream.set_nodelay();
        let stream = if tls {
            let Some(config) = &self.config.tls else {
                tracing::warn!(
                    ?peer,
                    "TLS client handed over, but TLS is not configured; closing it"
                );
                return;
            };
            match Stream::tls(stream, config) {
                Ok(stream) => stream,
                Err(e) => {
                    tracing::warn!(?peer, error = %e, "cannot start TLS; closing the connection");
                    return;
                }
            }
        } else {
            Stream::plain(stream)
        };
        let id = self.next_conn;
        self.next_conn += 1;
        let now = self.now();
        let ready = self.callback(move |s: &mut ServerState, ready: Interest| s.on_conn_ready(id, ready));
        let watch = self
            .core
            .add_watch(stream.socket().as_raw_fd(), Interest::READ, ready);
        let timer = self
            .core
            .add_timer(self.timer_callback(move |s| s.on_link_timeout(id)));
        self.core.start_timer(timer, self.config.link_timeout);
        tracing::debug!(?peer, conn = id, tls, "new connection");
        let info = ChannelInfo {
            link_id: id,
            connection_id: 0,
            channel_type: 0,
            channel_id: 0,
            local: stream.socket().local_addr(),
            peer,
            tls,
        };
        let peer_key = peer.map_or(PeerKey::Local, |p| PeerKey::of(p.ip()));
        self.conns.insert(
            id,
            Conn {
                stream,
                watch,
                interest: Interest::READ,
                phase: Phase::Linking {
                    acceptor: LinkAcceptor::new(now, self.config.link_timeout),
                    key: None,
                    skip_auth,
                    timer,
                    out: OutBuf::default(),
                    deferred: None,
                    awaiting_key: None,
                    sasl: None,
                },
                info,
                peer_key,
                connected_at: now,
                output: super::backpressure::OutputWatch::new(now),
            },
        );
    }

    fn on_link_timeout(&mut self, id: u64) {
        self.with_conn(id, |_, conn| match &conn.phase {
            Phase::Linking { .. } => {
                tracing::info!(
                    peer = ?conn.info.peer,
                    after_ms = conn.connected_at.elapsed().as_millis() as u64,
                    "dropping client that did not finish linking in time"
                );
                false
            }
            Phase::Linked { .. } | Phase::Handover(_) | Phase::Parked(_) => true,
        });
    }

    /// Feeds received bytes to the connection's current phase.
    pub(super) fn feed(&mut self, id: u64, conn: &mut Conn, data: &[u8]) -> bool {
        let mut data = data;
        while let Phase::Linking { .. } = conn.phase {
            let Phase::Linking {
                acceptor,
                out,
                deferred,
                awaiting_key,
                ..
            } = &mut conn.phase
            else {
                break;
            };
            if let Some(rest) = awaiting_key {
                // The link reply waits for its key; so does what came after.
                if rest.len() + data.len() > MAX_EARLY_BYTES {
                    tracing::warn!(peer = ?conn.info.peer, "client sent data before its link reply; closing");
                    return false;
                }
                rest.extend_from_slice(data);
                return true;
            }
            if let Some(d) = deferred {
                // The ticket's check waits; what came after it waits too.
                if d.rest.len() + data.len() > MAX_EARLY_BYTES {
                    tracing::warn!(peer = ?conn.info.peer, "client sent data before its link result; closing");
                    return false;
                }
                d.rest.extend_from_slice(data);
                return true;
            }
            let step = acceptor.handle_input(data);
            out.extend(&acceptor.take_output());
            let (used, event) = match step {
                Ok(step) => step,
                Err(failure) => {
                    tracing::info!(peer = ?conn.info.peer, error = ?failure.error, reason = %failure.reason, "link refused");
                    return false;
                }
            };
            data = &data[used..];
            match event {
                Some(LinkEvent::Request(mess)) => match self.answer_link_request(id, conn, &mess) {
                    RequestStep::Answered => {}
                    RequestStep::Refused => return false,
                    RequestStep::AwaitingKey => {
                        if let Phase::Linking {
                            awaiting_key: Some(rest),
                            ..
                        } = &mut conn.phase
                        {
                            rest.extend_from_slice(data);
                        }
                        return true;
                    }
                },
                // Authentication: the ticket, or the start of a SASL exchange.
                Some(event @ (LinkEvent::Ticket(_) | LinkEvent::SaslStart)) => {
                    let step = match event {
                        LinkEvent::Ticket(ticket) => self.answer_ticket(id, conn, &ticket),
                        _ => self.answer_sasl_start(id, conn),
                    };
                    match step {
                        TicketStep::Linked | TicketStep::Continue => {}
                        TicketStep::Refused => return false,
                        TicketStep::Deferred => {
                            if let Phase::Linking {
                                deferred: Some(d), ..
                            } = &mut conn.phase
                            {
                                d.rest.extend_from_slice(data);
                            }
                            return true;
                        }
                    }
                }
                Some(LinkEvent::SaslData(step)) => match self.step_sasl(id, conn, step, data) {
                    // What followed went to the security layer, if any.
                    TicketStep::Linked if conn.stream.has_sasl_layer() => data = &[],
                    TicketStep::Linked | TicketStep::Continue => {}
                    TicketStep::Deferred | TicketStep::Refused => return false,
                },
                None => return true,
            }
        }
        if data.is_empty() {
            return true;
        }
        match &mut conn.phase {
            Phase::Handover(handover) => {
                handover.deframer.push(data);
                return true;
            }
            Phase::Parked(parked) => {
                if parked.early.len() + data.len() > MAX_EARLY_BYTES {
                    tracing::warn!(peer = ?conn.info.peer, "client sent data to a channel before its migration ended; closing");
                    return false;
                }
                parked.early.extend_from_slice(data);
                return true;
            }
            _ => {}
        }
        self.feed_channel(id, conn, data)
    }

    /// Answers a link message: refused at once if the channel does not
    /// exist (no key is spent on it), else with a ticket key from the pool,
    /// or later when one is ready.
    fn answer_link_request(&mut self, id: u64, conn: &mut Conn, mess: &LinkMess) -> RequestStep {
        conn.info.channel_type = mess.channel_type;
        conn.info.channel_id = mess.channel_id;
        conn.info.connection_id = mess.connection_id;
        let tls = conn.stream.is_tls();
        let Phase::Linking {
            acceptor,
            out,
            skip_auth,
            ..
        } = &mut conn.phase
        else {
            return RequestStep::Refused;
        };
        let sasl = self.config.sasl.is_some() && !*skip_auth;
        if !self.config.security.for_channel(mess.channel_type).allows(tls) {
            // As the C server: checked first, and the error tells the client
            // which port to use (spice-gtk moves to the TLS port).
            let (error, reason) = if tls {
                (LinkError::NeedUnsecured, "channel must not be encrypted")
            } else {
                (LinkError::NeedSecured, "channel must be encrypted")
            };
            let failure = acceptor.refuse(error, reason);
            out.extend(&acceptor.take_output());
            tracing::info!(peer = ?conn.info.peer, channel = channel_name(mess.channel_type), error = ?failure.error, reason = %failure.reason, "link refused");
            return RequestStep::Refused;
        }
        if let Err(reason) = self.channel_exists(mess) {
            // The C server also refuses these before making a key (it closes
            // without a reply; the error code tells a client more).
            let failure = acceptor.refuse(LinkError::ChannelNotAvailable, reason);
            out.extend(&acceptor.take_output());
            tracing::info!(peer = ?conn.info.peer, error = ?failure.error, reason = %failure.reason, "link refused");
            return RequestStep::Refused;
        }
        if sasl {
            // No ticket follows: no key is spent (the C server sends zeros).
            return if self.accept_link_sasl(conn) {
                RequestStep::Answered
            } else {
                RequestStep::Refused
            };
        }
        match self.ticket_keys.take(self.key_use()) {
            Ok(Some(key)) => {
                self.accept_link(conn, key);
                RequestStep::Answered
            }
            Ok(None) => {
                if let Phase::Linking { awaiting_key, .. } = &mut conn.phase {
                    *awaiting_key = Some(Vec::new());
                }
                self.key_waiters.push_back(id);
                RequestStep::AwaitingKey
            }
            Err(e) => {
                tracing::error!(error = %e, "no ticket key");
                let failure = acceptor.refuse(LinkError::Error, "no ticket key");
                out.extend(&acceptor.take_output());
                tracing::info!(peer = ?conn.info.peer, error = ?failure.error, reason = %failure.reason, "link refused");
                RequestStep::Refused
            }
        }
    }

    /// A fresh key per link while a password is checked; otherwise nothing
    /// secret travels under it and the server's shared key does
    /// (`server/ticket_keys.rs`).
    fn key_use(&self) -> KeyUse {
        if self.ticket.is_some() {
            KeyUse::Fresh
        } else {
            KeyUse::Shared
        }
    }

    /// Sends the link reply with `key`.
    fn accept_link(&self, conn: &mut Conn, key: Arc<TicketKey>) {
        let Phase::Linking {
            acceptor,
            key: slot,
            out,
            ..
        } = &mut conn.phase
        else {
            return;
        };
        let common = Caps::with(&[
            common_cap::PROTOCOL_AUTH_SELECTION,
            common_cap::AUTH_SPICE,
            common_cap::MINI_HEADER,
        ]);
        acceptor.accept(&common, &channel_caps(conn.info.channel_type), key.public_der());
        *slot = Some(key);
        out.extend(&acceptor.take_output());
    }

    /// Hands keys from the pool to the links waiting for one, oldest first;
    /// runs when the pool's thread wakes the loop.
    pub(super) fn serve_key_waiters(&mut self) {
        while let Some(&id) = self.key_waiters.front() {
            let waiting = self.conns.get(&id).is_some_and(|c| {
                matches!(
                    c.phase,
                    Phase::Linking {
                        awaiting_key: Some(_),
                        ..
                    }
                )
            });
            if !waiting {
                // Closed (or timed out) while it waited.
                self.key_waiters.pop_front();
                continue;
            }
            let key = match self.ticket_keys.take(self.key_use()) {
                Ok(Some(key)) => key,
                // The pool wakes the loop again when the next one is ready.
                Ok(None) => return,
                Err(e) => {
                    // Cannot happen once a link waits (the thread runs);
                    // the waiting links run into their timeout.
                    tracing::error!(error = %e, "no ticket key");
                    return;
                }
            };
            self.key_waiters.pop_front();
            let Some(mut conn) = self.conns.remove(&id) else {
                continue;
            };
            let rest = match &mut conn.phase {
                Phase::Linking { awaiting_key, .. } => awaiting_key.take().unwrap_or_default(),
                _ => Vec::new(),
            };
            self.accept_link(&mut conn, key);
            let keep = (rest.is_empty() || self.feed(id, &mut conn, &rest)) && self.pump(&mut conn);
            self.settle(id, conn, keep);
        }
    }

    /// Whether the channel a link message asks for exists: main always
    /// (whatever its id, as in the C server), others if offered now.
    fn channel_exists(&self, mess: &LinkMess) -> Result<(), String> {
        match ChannelType::from_u8(mess.channel_type) {
            None => Err(format!("unknown channel type {}", mess.channel_type)),
            Some(ChannelType::Main) => Ok(()),
            Some(channel) if self.offers(channel, mess.channel_id) => Ok(()),
            Some(channel) => Err(format!(
                "{} channel {} is not offered",
                channel.name(),
                mess.channel_id
            )),
        }
    }

    /// Checks the ticket now, or later if this peer has given wrong passwords
    /// (see [`super::auth_throttle`]).
    fn answer_ticket(
        &mut self,
        id: u64,
        conn: &mut Conn,
        ticket: &[u8; spice_proto::consts::TICKET_BYTES],
    ) -> TicketStep {
        let Some(peer) = self.throttled_peer(conn) else {
            return self.check_ticket(id, conn, ticket);
        };
        match self.auth_throttle.schedule(peer, self.now(), &self.config.limits) {
            Check::Now => self.check_ticket(id, conn, ticket),
            check => self.defer_auth(id, conn, peer, check, Some(*ticket)),
        }
    }

    /// Holds the attempt of a peer that gave wrong passwords until the
    /// throttle's `check` allows it: a `ticket` to check, or (`None`) a
    /// SASL exchange to start.
    pub(super) fn defer_auth(
        &mut self,
        id: u64,
        conn: &mut Conn,
        peer: PeerKey,
        check: Check,
        ticket: Option<[u8; spice_proto::consts::TICKET_BYTES]>,
    ) -> TicketStep {
        let now = self.now();
        let failures = self.auth_throttle.failures(peer);
        let (wait, check) = match check {
            Check::At(at) => (at.saturating_duration_since(now), true),
            Check::Now | Check::Refuse => (self.config.limits.auth_max_wait, false),
        };
        if let Some(held) = self.auth_log.allow(now) {
            tracing::warn!(
                peer = ?conn.info.peer,
                failures,
                wait_ms = wait.as_millis() as u64,
                checked = check,
                suppressed = held,
                "wrong passwords from this peer: its next attempt waits"
            );
        }
        let timer = self
            .core
            .add_timer(self.timer_callback(move |s| s.on_ticket_due(id)));
        self.core.start_timer(timer, wait);
        if let Phase::Linking { deferred, .. } = &mut conn.phase {
            *deferred = Some(Box::new(DeferredTicket {
                ticket,
                check,
                timer,
                rest: Vec::new(),
            }));
        }
        TicketStep::Deferred
    }

    /// The peer whose attempts the password throttle counts: clients that
    /// must give a password (not those the host handed over with auth waived).
    fn throttled_peer(&self, conn: &Conn) -> Option<PeerKey> {
        let Phase::Linking { skip_auth, .. } = &conn.phase else {
            return None;
        };
        match (&self.ticket, skip_auth) {
            (Some(_), false) => Some(conn.peer_key),
            _ => None,
        }
    }

    /// A deferred ticket's time came: check it, then feed what followed it.
    fn on_ticket_due(&mut self, id: u64) {
        let Some(mut conn) = self.conns.remove(&id) else {
            return;
        };
        let deferred = match &mut conn.phase {
            Phase::Linking { deferred, .. } => deferred.take(),
            _ => None,
        };
        let Some(d) = deferred else {
            self.conns.insert(id, conn);
            return;
        };
        self.core.remove_timer(d.timer);
        if !d.check {
            if let Phase::Linking { acceptor, out, .. } = &mut conn.phase {
                let _ = acceptor.finish(LinkError::PermissionDenied, "too many failed attempts");
                out.extend(&acceptor.take_output());
            }
            tracing::info!(peer = ?conn.info.peer, "link refused: too many failed attempts");
            self.settle(id, conn, false);
            return;
        }
        let step = match &d.ticket {
            Some(ticket) => self.check_ticket(id, &mut conn, ticket),
            None => self.begin_sasl(&mut conn),
        };
        let keep = match step {
            TicketStep::Linked | TicketStep::Continue => {
                d.rest.is_empty() || self.feed(id, &mut conn, &d.rest)
            }
            TicketStep::Deferred | TicketStep::Refused => false,
        } && self.pump(&mut conn);
        self.settle(id, conn, keep);
    }

    /// Checks the ticket and the requested channel; on success the connection
    /// becomes a channel.
    fn check_ticket(
        &mut self,
        id: u64,
        conn: &mut Conn,
        ticket: &[u8; spice_proto::consts::TICKET_BYTES],
    ) -> TicketStep {
        let now = self.now();
        let throttled = self.throttled_peer(conn);
        let Phase::Linking {
            acceptor,
            key,
            skip_auth,
            ..
        } = &mut conn.phase
        else {
            return TicketStep::Refused;
        };
        let verdict = self.check_link(key.as_deref(), ticket, acceptor.client(), *skip_auth, now);
        if let Some(peer) = throttled {
            let wrong = matches!(&verdict, Err((LinkError::PermissionDenied, _)));
            self.auth_throttle.record(peer, !wrong, now, &self.config.limits);
        }
        self.conclude_link(id, conn, verdict)
    }

    /// Sends the link result of an authenticated (or refused) client; on
    /// success the connection becomes a channel.
    pub(super) fn conclude_link(
        &mut self,
        id: u64,
        conn: &mut Conn,
        verdict: Result<(), (LinkError, String)>,
    ) -> TicketStep {
        let now = self.now();
        let Phase::Linking {
            acceptor, out, timer, ..
        } = &mut conn.phase
        else {
            return TicketStep::Refused;
        };
        let finished = match verdict {
            Ok(()) => acceptor.finish(LinkError::Ok, ""),
            Err((error, reason)) => acceptor.finish(error, reason),
        };
        out.extend(&acceptor.take_output());
        if let Err(failure) = finished {
            tracing::info!(
                peer = ?conn.info.peer,
                channel = channel_name(conn.info.channel_type),
                error = ?failure.error,
                reason = %failure.reason,
                "link refused"
            );
            return TicketStep::Refused;
        }
        self.core.remove_timer(*timer);
        self.pending.finished(id);
        let header = if acceptor.use_mini_header() {
            HeaderKind::Mini
        } else {
            HeaderKind::Full
        };
        let Some(mess) = acceptor.client().cloned() else {
            return TicketStep::Refused;
        };
        let out = std::mem::take(out);
        self.start_channel(id, conn, &mess, header, out, now);
        TicketStep::Linked
    }

    /// Authentication, then session and channel availability, as the C server orders them.
    fn check_link(
        &self,
        key: Option<&TicketKey>,
        ticket: &[u8; spice_proto::consts::TICKET_BYTES],
        client: Option<&LinkMess>,
        skip_auth: bool,
        now: Instant,
    ) -> Result<(), (LinkError, String)> {
        let denied = |reason: &str| Err((LinkError::PermissionDenied, reason.to_owned()));
        let Some(key) = key else {
            return denied("no ticket key");
        };
        let Some(client) = client else {
            return denied("no link message");
        };
        // Like the C server, a ticket that does not decrypt is refused even without auth.
        let Ok(password) = key.decrypt(&mut getrandom::SysRng, ticket) else {
            return denied("ticket does not decrypt");
        };
        if let (Some(expected), false) = (&self.ticket, skip_auth) {
            if expected.password.is_empty() {
                return denied("ticketing is enabled but no password is set");
            }
            if expected.expires.is_some_and(|t| now >= t) {
                return denied("ticket expired");
            }
            if !password.matches(&expected.password) {
                return denied("wrong password");
            }
        }
        self.check_target(client)
    }

    /// After authentication: the session and the channel's availability.
    pub(super) fn check_target(&self, client: &LinkMess) -> Result<(), (LinkError, String)> {
        let Some(channel) = ChannelType::from_u8(client.channel_type) else {
            return Err((
                LinkError::ChannelNotAvailable,
                format!("unknown channel type {}", client.channel_type),
            ));
        };
        if channel == ChannelType::Main {
            return Ok(());
        }
        match self.session(client.connection_id) {
            Some(_) => {}
            None => {
                return Err((
                    LinkError::BadConnectionId,
                    format!("no session with id {}", client.connection_id),
                ))
            }
        }
        if !self.offers(channel, client.channel_id) {
            return Err((
                LinkError::ChannelNotAvailable,
                format!("{} channel {} is not offered", channel.name(), client.channel_id),
            ));
        }
        Ok(())
    }

    /// Channels this server offers besides main.
    pub(super) fn channel_list(&self) -> Vec<(u8, u8)> {
        let mut list = Vec::new();
        for &id in self.devices.displays.keys() {
            list.push((ChannelType::Display as u8, id));
            list.push((ChannelType::Cursor as u8, id));
        }
        list.push((ChannelType::Inputs as u8, 0));
        if self.devices.playback.is_some() {
            list.push((ChannelType::Playback as u8, 0));
        }
        if self.devices.record.is_some() {
            list.push((ChannelType::Record as u8, 0));
        }
        list.extend(self.vmc.channels());
        list
    }

    fn offers(&self, channel: ChannelType, id: u8) -> bool {
        self.channel_list().contains(&(channel as u8, id))
    }

    pub(super) fn start_channel(
        &mut self,
        id: u64,
        conn: &mut Conn,
        mess: &LinkMess,
        header: HeaderKind,
        out: OutBuf,
        now: Instant,
    ) {
        let Some(kind) = ChannelType::from_u8(mess.channel_type) else {
            return;
        };
        if kind != ChannelType::Main && self.session(mess.connection_id).is_some_and(|s| s.migrating_in) {
            self.park(id, conn, mess, header, out);
            return;
        }
        let mut base = ChannelBase::new(header, self.epoch);
        base.counters.queued_at_link(out.len());
        base.out = out;
        let session_id = if kind == ChannelType::Main {
            self.begin_session(id, mess.connection_id)
        } else {
            mess.connection_id
        };
        conn.info.connection_id = session_id;
        self.handle.metrics.register(&base.counters, &conn.info);
        let channel = match kind {
            ChannelType::Main => {
                // A main link naming a session is a client migrating in from
                // another server: INIT waits for its MIGRATE_END, as in C.
                let intro = (mess.connection_id == 0).then(|| self.session_intro(session_id, now));
                if intro.is_none() {
                    tracing::info!(session = session_id, "client migrating in from another server");
                }
                Channel::Main(MainChannel::start(base, &mess.channel_caps, intro.as_ref(), now))
            }
            ChannelType::Display | ChannelType::Cursor => {
                if !self.devices.displays.contains_key(&mess.channel_id) {
                    return;
                }
                let kind = if kind == ChannelType::Display {
                    HandoverKind::Display {
                        caps: mess.channel_caps.clone(),
                        migrated_in: self.session(session_id).is_some_and(|s| s.seamless),
                    }
                } else {
                    HandoverKind::Cursor
                };
                self.replace_duplicate(mess);
                if let Some(session) = self.session_mut(session_id) {
                    session.channels.push(id);
                }
                conn.phase = Phase::Handover(Box::new(Handover {
                    info: conn.info.clone(),
                    kind,
                    base,
                    deframer: Deframer::new(header, max_client_message(ChannelType::Display)),
                    server: ServerHandle {
                        shared: self.handle.clone(),
                    },
                }));
                self.channel_linked(conn, header);
                return;
            }
            ChannelType::Inputs => {
                let leds = self
                    .devices
                    .keyboard
                    .as_ref()
                    .map(|k| k.leds())
                    .unwrap_or_default();
                Channel::Inputs(InputsChannel::start(base, leds))
            }
            ChannelType::Playback => {
                let Some(playback) = &self.devices.playback else {
                    return;
                };
                Channel::Playback(PlaybackChannel::start(
                    base,
                    id,
                    &mess.channel_caps,
                    &playback.shared,
                    self.mm_time(now),
                    self.config.playback_compression,
                ))
            }
            ChannelType::Record => {
                let Some(record) = &self.devices.record else {
                    return;
                };
                Channel::Record(RecordChannel::start(base, id, &mess.channel_caps, &record.shared))
            }
            ChannelType::UsbRedir | ChannelType::Port | ChannelType::Webdav => {
                // A client relinking replaces its old channel, whose device
                // hears state(false) before the new link's state(true).
                self.replace_duplicate(mess);
                let Some(channel) =
                    self.vmc_link(id, mess.channel_type, mess.channel_id, base, &mess.channel_caps)
                else {
                    return;
                };
                channel
            }
            _ => return,
        };
        if kind != ChannelType::Main {
            self.replace_duplicate(mess);
            if let Some(session) = self.session_mut(session_id) {
                session.channels.push(id);
            }
        }
        conn.phase = Phase::Linked {
            session_id,
            deframer: Deframer::new(header, max_client_message(kind)),
            channel,
        };
        self.channel_linked(conn, header);
    }

    /// Tells the host and the log that a channel linked.
    fn channel_linked(&self, conn: &Conn, header: HeaderKind) {
        self.core.channel_event(ChannelEvent::Connected, &conn.info);
        self.core.channel_event(ChannelEvent::Initialized, &conn.info);
        tracing::info!(
            peer = ?conn.info.peer,
            channel = channel_name(conn.info.channel_type),
            id = conn.info.channel_id,
            session = conn.info.connection_id,
            mini_header = header == HeaderKind::Mini,
            tls = conn.info.tls,
            websocket = conn.stream.is_websocket(),
            "channel linked"
        );
    }

    /// A new main channel starts a new session. Unless several clients are
    /// allowed, one is served at a time: like the C server, a newcomer
    /// replaces the current client.
    fn begin_session(&mut self, main: u64, requested: u32) -> u32 {
        if !self.config.allow_multiple_clients && !self.sessions.is_empty() {
            tracing::info!("new client connected: disconnecting the previous one");
            self.end_sessions();
        }
        let id = if requested != 0 {
            requested
        } else {
            self.unused_session_id()
        };
        // Two clients migrating in with the same id are one client relinking.
        if let Some(at) = self.sessions.iter().position(|s| s.id == id) {
            self.end_session(at);
        }
        if self.sessions.is_empty() {
            // The agent's stream starts afresh with its new client.
            self.client_agent_messages = Default::default();
        }
        self.sessions.push(Session {
            id,
            main,
            channels: Vec::new(),
            migrating_in: requested != 0,
            seamless: false,
            moved_out: false,
        });
        id
    }

    /// A fresh id no current session has.
    fn unused_session_id(&self) -> u32 {
        let mut id = fresh_session_id();
        while id == 0 || self.session(id).is_some() {
            id = id.wrapping_add(1);
        }
        id
    }

    /// What INIT tells the client of session `session_id`.
    pub(super) fn session_intro(&self, session_id: u32, now: Instant) -> SessionIntro<'_> {
        SessionIntro {
            session_id,
            display_channels: self.devices.displays.len() as u32,
            supported_mouse_modes: self.supported_mouse_modes(),
            current_mouse_mode: self.mouse_mode,
            multi_media_time: self.mm_time(now).wrapping_sub(400),
            // Only the oldest client has the agent (see `first_session`).
            agent_connected: self.agent.is_some() && self.first_session().is_some_and(|s| s.id == session_id),
            name: self.config.name.as_deref(),
            uuid: self.config.uuid,
        }
    }

    /// A channel of a session that migrates in waits, linked, for the
    /// client's MIGRATE_END (`server/migration.rs` starts it then): the
    /// client does not read it before.
    fn park(&mut self, id: u64, conn: &mut Conn, mess: &LinkMess, header: HeaderKind, out: OutBuf) {
        // At most one waiting link per channel, like linked channels.
        self.replace_duplicate(mess);
        let Some(session) = self.session_mut(mess.connection_id) else {
            return;
        };
        session.channels.push(id);
        conn.info.connection_id = session.id;
        tracing::debug!(
            channel = channel_name(mess.channel_type),
            id = mess.channel_id,
            "channel linked; starts when the client's migration ends"
        );
        conn.phase = Phase::Parked(Box::new(Parked {
            mess: mess.clone(),
            header,
            out,
            early: Vec::new(),
        }));
    }

    /// A client relinking a channel it already has replaces the old connection.
    fn replace_duplicate(&mut self, mess: &LinkMess) {
        let Some(session) = self.session(mess.connection_id) else {
            return;
        };
        let duplicate = session.channels.iter().copied().find(|&c| {
            self.channel_info(c).is_some_and(|info| {
                info.channel_type == mess.channel_type && info.channel_id == mess.channel_id
            })
        });
        if let Some(old) = duplicate {
            tracing::debug!(
                channel = channel_name(mess.channel_type),
                "replacing duplicate channel"
            );
            self.close_channel(old);
        }
    }
}

fn fresh_session_id() -> u32 {
    let mut bytes = [0u8; 4];
    loop {
        if getrandom::fill(&mut bytes).is_err() {
            // The OS RNG is gone; uniqueness is all a session id needs.
            return (std::process::id() | 1).wrapping_mul(2654435761);
        }
        let id = u32::from_le_bytes(bytes);
        if id != 0 {
            return id;
        }
    }
}

/// Channel capabilities the server advertises in its link reply.
pub(super) fn channel_caps(channel_type: u8) -> Caps {
    match ChannelType::from_u8(channel_type) {
        // Migration: spice-gtk acts on MIGRATE_END only from a server with
        // SEMI_SEAMLESS, and asks a destination without SEAMLESS for none.
        Some(ChannelType::Main) => Caps::with(&[
            main_cap::SEMI_SEAMLESS_MIGRATE,
            main_cap::SEAMLESS_MIGRATE,
            main_cap::NAME_AND_UUID,
            main_cap::AGENT_CONNECTED_TOKENS,
        ]),
        // As the C server: spice-gtk sends its preferred stream codecs only
        // to a server with PREF_VIDEO_CODEC_TYPE.
        Some(ChannelType::Display) => Caps::with(&[
            display_cap::MONITORS_CONFIG,
            display_cap::PREF_COMPRESSION,
            display_cap::PREF_VIDEO_CODEC_TYPE,
            display_cap::STREAM_REPORT,
        ]),
        Some(ChannelType::Inputs) => Caps::with(&[inputs_cap::KEY_SCANCODE]),
        // Opus, as the C server once the host set its rate to 48 kHz (QEMU does).
        Some(ChannelType::Playback) => Caps::with(&[playback_cap::VOLUME, playback_cap::OPUS]),
        Some(ChannelType::Record) => Caps::with(&[record_cap::VOLUME, record_cap::OPUS]),
        Some(ChannelType::UsbRedir | ChannelType::Port | ChannelType::Webdav) => {
            Caps::with(&[spicevmc_cap::DATA_COMPRESS_LZ4])
        }
        _ => Caps::new(),
    }
}
