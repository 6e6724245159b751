//! What the main context does when a client connection is ready, stalls
//! or closes: reading and dispatching its messages within the per-client
//! limits, writing its output under backpressure, and tearing it down.

use super::conn::{self, Conn, Phase};
use super::{backpressure, channel_name, ServerState, AGENT_BACKLOG_LIMIT};
use crate::core::{ChannelEvent, Interest};
use crate::socket::ReadResult;

impl ServerState {
    /// Runs `f` on a connection taken out of the table; it goes back unless `f`
    /// returns `false`, in which case it is closed.
    pub(super) fn with_conn(&mut self, id: u64, f: impl FnOnce(&mut Self, &mut Conn) -> bool) {
        let Some(mut conn) = self.conns.remove(&id) else {
            return;
        };
        if f(self, &mut conn) {
            self.conns.insert(id, conn);
        } else {
            self.close(id, conn);
        }
    }

    pub(super) fn on_conn_ready(&mut self, id: u64, ready: Interest) {
        let Some(mut conn) = self.conns.remove(&id) else {
            return;
        };
        // TLS input already decrypted is not announced by the socket: read
        // it on any event (a client taking its output after a pause, say).
        let read = (ready.read || conn.stream.maybe_buffered()) && conn.accepts_input();
        let keep = (!read || self.read_from(id, &mut conn)) && self.pump(&mut conn);
        self.settle(id, conn, keep);
    }

    /// Puts a connection back after an event: closed, handed to its display's
    /// thread, or back in the table.
    pub(super) fn settle(&mut self, id: u64, conn: Conn, keep: bool) {
        if !keep {
            self.close(id, conn);
        } else if matches!(conn.phase, Phase::Handover(_)) {
            self.hand_over(id, conn);
        } else {
            self.conns.insert(id, conn);
        }
    }

    /// Reads what the socket has (bounded per call, for fairness) and processes it.
    fn read_from(&mut self, id: u64, conn: &mut Conn) -> bool {
        let mut buf = std::mem::take(&mut self.read_buf);
        let mut keep = true;
        for _ in 0..16 {
            // Every request may queue a reply: a client that does not read
            // them gets no more read until it does (pump() stops asking).
            let queued = conn.out().len();
            if !conn.output.may_read(queued, &self.config.limits) || !conn.accepts_input() {
                break;
            }
            match conn.read(&mut buf) {
                Ok(ReadResult::Data(n)) => {
                    if !self.feed(id, conn, &buf[..n]) {
                        keep = false;
                        break;
                    }
                    if matches!(conn.phase, Phase::Handover(_)) {
                        // The rest is for the display thread to read.
                        break;
                    }
                }
                Ok(ReadResult::WouldBlock) => break,
                Ok(ReadResult::Closed) => {
                    tracing::debug!(conn = id, "peer closed the connection");
                    keep = false;
                    break;
                }
                Err(e) => {
                    tracing::debug!(conn = id, error = %e, "read failed");
                    keep = false;
                    break;
                }
            }
        }
        self.read_buf = buf;
        keep
    }

    /// Produces pending output for display and cursor channels and writes to the
    /// socket, re-arming the watch for writability if the socket is full.
    pub(super) fn pump(&mut self, conn: &mut Conn) -> bool {
        let mm_time = self.mm_time(self.now());
        // Rounds of produce-and-write; a display client with a lot of damage
        // gets it a chunk per round.
        let mut all_rounds_used = true;
        let mut written = 0;
        for _ in 0..64 {
            if let Phase::Linked {
                channel: conn::Channel::Main(m),
                ..
            } = &mut conn.phase
            {
                // The client caught up: agent data held back may flow again.
                if m.base.out.len() < AGENT_BACKLOG_LIMIT && self.agent.as_ref().is_some_and(|a| a.is_held())
                {
                    self.agent_pump(Some(m));
                }
            }
            if let Phase::Linked { channel, .. } = &mut conn.phase {
                match (channel, &self.devices.playback, &self.devices.record) {
                    (conn::Channel::Playback(p), Some(playback), _) => p.produce(&playback.shared, mm_time),
                    (conn::Channel::Record(r), _, Some(record)) => r.produce(&record.shared),
                    (conn::Channel::Vmc(ch, device), _, _) => self.vmc.transfer(*device, ch),
                    _ => {}
                }
            }
            if !conn.has_output() {
                all_rounds_used = false;
                break;
            }
            match conn.flush_counted() {
                Ok((done, n)) => {
                    written += n;
                    if !done {
                        all_rounds_used = false;
                        break;
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "write failed");
                    return false;
                }
            }
        }
        let queued = conn.out().len();
        let verdict = conn
            .output
            .after_write(queued, written, self.now(), &self.config.limits);
        if !self.output_verdict(conn, verdict, queued) {
            return false;
        }
        // Out of rounds with output still to produce: ask for a writable
        // event (it comes at once) to continue on the next turn of the loop
        // instead of waiting for the host's next update.
        let wanted = if verdict == backpressure::OutputVerdict::Pause {
            // Only the client taking output brings it back.
            Interest {
                read: false,
                write: true,
            }
        } else if !conn.has_output() && !all_rounds_used && !conn.stream.maybe_buffered() {
            Interest::READ
        } else {
            // Also for decrypted input left in rustls, which no readable
            // event announces: the writable one comes at once.
            Interest::READ_WRITE
        };
        // A device that does not take the client's data stops the client being read.
        let wanted = Interest {
            read: wanted.read && conn.accepts_input(),
            ..wanted
        };
        if wanted != conn.interest {
            conn.interest = wanted;
            self.core.update_watch(conn.watch, wanted);
        }
        true
    }

    /// Acts on what the connection's queued output means. Returns `false`
    /// when the client must be disconnected.
    fn output_verdict(&mut self, conn: &Conn, verdict: backpressure::OutputVerdict, queued: usize) -> bool {
        use backpressure::OutputVerdict;
        let channel = channel_name(conn.info.channel_type);
        match verdict {
            OutputVerdict::Serve => true,
            OutputVerdict::Pause => {
                if !self.stall_timer_armed {
                    if let Some(timer) = self.stall_timer {
                        self.stall_timer_armed = true;
                        self.core
                            .start_timer(timer, stall_check_interval(&self.config.limits));
                    }
                }
                true
            }
            // One line per client: it is disconnected.
            OutputVerdict::Overflow => {
                tracing::warn!(
                    peer = ?conn.info.peer,
                    channel,
                    queued,
                    limit = self.config.limits.output_max_bytes,
                    "client does not read its output; queue over the limit, disconnecting"
                );
                false
            }
            OutputVerdict::Stalled => {
                tracing::warn!(
                    peer = ?conn.info.peer,
                    channel,
                    queued,
                    timeout_s = self.config.limits.stalled_client_timeout.as_secs_f32(),
                    "client took no output while its requests were paused; disconnecting"
                );
                false
            }
        }
    }

    /// Disconnects paused clients that have stalled past the timeout; runs
    /// while any connection is paused.
    pub(super) fn check_stalled(&mut self) {
        self.stall_timer_armed = false;
        let now = self.now();
        let paused: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| c.output.paused())
            .map(|(&id, _)| id)
            .collect();
        for id in paused {
            self.with_conn(id, |s, conn| {
                let queued = conn.out().len();
                let verdict = conn.output.verdict(queued, now, &s.config.limits);
                s.output_verdict(conn, verdict, queued)
            });
        }
        if self.conns.values().any(|c| c.output.paused()) {
            if let Some(timer) = self.stall_timer {
                self.stall_timer_armed = true;
                self.core
                    .start_timer(timer, stall_check_interval(&self.config.limits));
            }
        }
    }

    /// Closes one connection; closing a session's main channel ends the session.
    pub(super) fn close(&mut self, id: u64, mut conn: Conn) {
        self.core.remove_watch(conn.watch);
        self.pending.finished(id);
        // Its descriptor is about to be freed: a paused accept may go on.
        self.resume_accept();
        // Best effort: a link error reply is usually still queued.
        let _ = conn.flush();
        conn.stream.close_notify();
        match &conn.phase {
            Phase::Linking {
                timer,
                deferred,
                awaiting_key,
                ..
            } => {
                self.core.remove_timer(*timer);
                if let Some(d) = deferred {
                    self.core.remove_timer(d.timer);
                }
                if awaiting_key.is_some() {
                    self.key_waiters.retain(|&w| w != id);
                }
            }
            // Linked but not yet handed to its display's thread.
            Phase::Handover(_) => self.remote_closed(id, conn.info.clone()),
            Phase::Parked(_) => self.forget_channel(id),
            Phase::Linked {
                session_id, channel, ..
            } => {
                if let conn::Channel::Inputs(_) = channel {
                    // Keys still down would stay stuck in the guest.
                    let releases = self.held_keys.release_all();
                    if let Some(k) = self.devices.keyboard.as_mut() {
                        for b in releases {
                            k.push_scancode(b);
                        }
                    }
                }
                match (channel, &self.devices.playback, &self.devices.record) {
                    (conn::Channel::Playback(p), Some(playback), _) => p.detach(&playback.shared),
                    (conn::Channel::Record(r), _, Some(record)) => r.detach(&record.shared),
                    (conn::Channel::Vmc(_, device), _, _) => self.vmc_unlinked(*device, id),
                    _ => {}
                }
                self.core.channel_event(ChannelEvent::Disconnected, &conn.info);
                tracing::info!(
                    channel = channel_name(conn.info.channel_type),
                    id = conn.info.channel_id,
                    session = session_id,
                    "channel disconnected"
                );
                if let Some(at) = self.sessions.iter().position(|s| s.main == id) {
                    self.migrate_client_gone(id);
                    self.end_session(at);
                } else {
                    self.forget_channel(id);
                    self.close_moved_main();
                }
            }
        }
    }
}

/// How often paused connections are looked at: often enough that a stalled
/// one goes within a second of its timeout.
fn stall_check_interval(limits: &crate::limits::Limits) -> std::time::Duration {
    limits
        .stalled_client_timeout
        .min(std::time::Duration::from_secs(1))
}
