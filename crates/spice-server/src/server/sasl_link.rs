//! The link stage's SASL authentication: the acceptor speaks the exchange,
//! the configured [`crate::sasl::SaslServer`] runs the mechanisms, and a
//! negotiated security layer goes onto the connection's stream.
//!
//! The session's calls run on the main context; Cyrus with a local sasldb
//! answers in microseconds (as in the C server, which also calls it from
//! its main loop).
//!
//! Failed exchanges count in the password throttle as wrong tickets do
//! (the C server has none): a peer that failed waits before its next
//! exchange starts.

use spice_proto::Caps;

use super::auth_throttle::Check;
use super::conn::{Conn, Phase};
use super::link::TicketStep;
use super::ServerState;
use crate::sasl::{SaslConnInfo, SaslSession, SaslStep, MIN_SSF};

/// A connection's SASL session while it authenticates.
pub(crate) struct Session(Box<dyn SaslSession>);

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").finish_non_exhaustive()
    }
}

impl ServerState {
    /// Sends the link reply offering SASL; `false` if the client cannot do
    /// it (refused, close).
    pub(super) fn accept_link_sasl(&self, conn: &mut Conn) -> bool {
        let Phase::Linking { acceptor, out, .. } = &mut conn.phase else {
            return false;
        };
        let common = Caps::with(&[spice_proto::consts::common_cap::MINI_HEADER]);
        let accepted = acceptor.accept_sasl(&common, &super::link::channel_caps(conn.info.channel_type));
        out.extend(&acceptor.take_output());
        match accepted {
            Ok(()) => true,
            Err(failure) => {
                tracing::info!(peer = ?conn.info.peer, error = ?failure.error, reason = %failure.reason, "link refused");
                false
            }
        }
    }

    /// The client chose SASL: starts the exchange now, or later if this
    /// peer failed before.
    pub(super) fn answer_sasl_start(&mut self, id: u64, conn: &mut Conn) -> TicketStep {
        let peer = conn.peer_key;
        match self.auth_throttle.schedule(peer, self.now(), &self.config.limits) {
            Check::Now => self.begin_sasl(conn),
            check => self.defer_auth(id, conn, peer, check, None),
        }
    }

    /// Makes the connection's session and sends the mechanisms.
    pub(super) fn begin_sasl(&mut self, conn: &mut Conn) -> TicketStep {
        let Some(sasl) = &self.config.sasl else {
            return TicketStep::Refused;
        };
        let info = SaslConnInfo {
            local: conn.stream.socket().local_addr(),
            peer: conn.info.peer,
            tls_bits: conn
                .stream
                .is_tls()
                .then(|| conn.stream.tls_bits().unwrap_or(128)),
        };
        let started = sasl
            .server
            .session(&info)
            .and_then(|mut s| s.mechanisms().map(|list| (s, list)));
        let Phase::Linking {
            acceptor,
            out,
            sasl: slot,
            ..
        } = &mut conn.phase
        else {
            return TicketStep::Refused;
        };
        match started {
            Ok((session, list)) => {
                tracing::debug!(peer = ?conn.info.peer, mechanisms = %list, "SASL started");
                acceptor.sasl_mechanisms(&list);
                out.extend(&acceptor.take_output());
                *slot = Some(Session(session));
                TicketStep::Continue
            }
            Err(e) => {
                // As the C server: closed without a word.
                tracing::warn!(peer = ?conn.info.peer, error = %e, "cannot start a SASL session");
                acceptor.sasl_fail(e.to_string());
                TicketStep::Refused
            }
        }
    }

    /// The client's start or step: runs it, answers, and once the session
    /// is done checks its security layer and sends the link result.
    /// `rest`: what the client sent after this message.
    pub(super) fn step_sasl(
        &mut self,
        id: u64,
        conn: &mut Conn,
        input: spice_proto::SaslData,
        rest: &[u8],
    ) -> TicketStep {
        let tls = conn.stream.is_tls();
        let now = self.now();
        let peer_key = conn.peer_key;
        let peer = conn.info.peer;
        let channel = super::channel_name(conn.info.channel_type);
        let refuse = |reason: &str| {
            tracing::info!(?peer, channel, %reason, "link refused: SASL authentication failed");
            TicketStep::Refused
        };
        let Phase::Linking {
            acceptor,
            out,
            sasl: slot,
            ..
        } = &mut conn.phase
        else {
            return TicketStep::Refused;
        };
        let Some(Session(session)) = slot else {
            return TicketStep::Refused;
        };
        let step = match &input.mechanism {
            Some(mechanism) => {
                tracing::debug!(?peer, channel, %mechanism, "SASL mechanism chosen");
                session.start(mechanism, input.data.as_deref())
            }
            None => session.step(input.data.as_deref()),
        };
        let (data, complete) = match step {
            Ok(SaslStep::Continue(data)) => (data, false),
            Ok(SaslStep::Done(data)) => (data, true),
            Err(e) => {
                acceptor.sasl_fail(e.to_string());
                self.auth_throttle
                    .record(peer_key, false, now, &self.config.limits);
                return refuse(&e.to_string());
            }
        };
        let replied = acceptor.sasl_reply(&data, complete);
        out.extend(&acceptor.take_output());
        if let Err(failure) = replied {
            return refuse(&failure.reason);
        }
        if !complete {
            return TicketStep::Continue;
        }
        self.auth_throttle
            .record(peer_key, true, now, &self.config.limits);
        // Without TLS a security layer is required, and then always runs,
        // as in the C server.
        let ssf = session.ssf().unwrap_or(0);
        if !tls && ssf < MIN_SSF {
            let failure = acceptor.sasl_reject(format!("SASL security layer of {ssf} bits is too weak"));
            out.extend(&acceptor.take_output());
            return refuse(&failure.reason);
        }
        acceptor.sasl_accept();
        out.extend(&acceptor.take_output());
        let Some(client) = acceptor.client().cloned() else {
            return TicketStep::Refused;
        };
        let Some(Session(session)) = slot.take() else {
            return TicketStep::Refused;
        };
        if !tls {
            // The result word just queued goes in clear; the link result
            // and everything after it through the layer.
            if let Err(e) = conn.stream.start_sasl_layer(session, out, rest) {
                return refuse(&e.to_string());
            }
        }
        tracing::debug!(?peer, channel, ssf, layer = !tls, "SASL authentication succeeded");
        let verdict = self.check_target(&client);
        self.conclude_link(id, conn, verdict)
    }
}
