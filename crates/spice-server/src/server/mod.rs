//! The main context: listening socket, links, sessions and channel dispatch.
//!
//! [`ServerState`] lives in an `Rc<RefCell<_>>` on the loop thread. Every
//! [`Core`] callback holds only a weak reference, upgrades it, and does its work
//! with the state borrowed; host devices called from there reach back into the
//! server only through [`ServerHandle`], which queues, so nothing re-enters.

mod admission;
mod auth_throttle;
mod backpressure;
mod conn;
mod conn_events;
mod dispatch;
pub(crate) mod keys;
mod link;
mod log_limit;
pub(crate) mod migration;
mod sasl_link;
mod ticket_keys;
mod vmc;

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::Instant;

use spice_proto::consts::mouse_mode;
use spice_proto::ChannelType;

use crate::config::{Auth, Config, Devices};
use crate::core::{ChannelEvent, ChannelInfo, Core, Interest, WatchId};
use crate::display::{DisplayHandle, DisplaySettings};
use crate::error::ServerError;
use crate::handle::{HandleShared, ServerHandle};
use crate::socket::{ClientSocket, Listener};
use crate::waker::{waker_pair, WakeReceiver, Waker};
use crate::worker::{DisplayWorker, ToWorker};
use conn::{Conn, Phase};

/// Agent data is read from the device only while less than this waits on the
/// client's main channel.
const AGENT_BACKLOG_LIMIT: usize = 256 * 1024;

/// A client session: the main channel and the channels linked with its id.
#[derive(Debug)]
struct Session {
    id: u32,
    main: u64,
    /// Its other channels, those waiting in [`conn::Phase::Parked`] too.
    channels: Vec<u64>,
    /// The client is migrating in from another server: its main channel
    /// has not said MIGRATE_END yet, and its other channels wait.
    migrating_in: bool,
    /// It migrated in seamlessly: its channels run at once and take their
    /// state from the source (MIGRATE_DATA); it never gets INIT.
    seamless: bool,
    /// Source side of seamless migration: its channels moved away.
    moved_out: bool,
}

/// The current password and when it stops working.
#[derive(Debug, Clone)]
struct Ticket {
    password: String,
    expires: Option<Instant>,
}

impl Ticket {
    /// The ticket `auth` asks for, with its lifetime counted from `now`; `None` = no auth.
    fn from_auth(auth: &Auth, now: Instant) -> Option<Self> {
        match auth {
            Auth::None => None,
            Auth::Password { password, lifetime } => Some(Self {
                password: password.clone(),
                expires: lifetime.map(|l| now + l),
            }),
        }
    }
}

pub(crate) struct ServerState {
    core: Rc<dyn Core>,
    this: Weak<RefCell<ServerState>>,
    config: Config,
    epoch: Instant,
    listener: Option<Listener>,
    local_addr: SocketAddr,
    /// The TLS port's listener, when TLS is configured.
    tls_listener: Option<Listener>,
    tls_listen_watch: Option<WatchId>,
    watches: Vec<WatchId>,
    wake_rx: WakeReceiver,
    waker: Arc<Waker>,
    handle: Arc<HandleShared>,
    conns: HashMap<u64, Conn>,
    /// Display and cursor channels handed to their display's thread.
    remote: HashMap<u64, ChannelInfo>,
    /// The threads this server started for displays that came without one.
    workers: HashMap<u8, DisplayWorker>,
    /// The net test's verdict on the session's link, as last told to the displays.
    low_bandwidth: bool,
    next_conn: u64,
    /// Client sessions, oldest first. One, unless the host allows several
    /// clients ([`Config::allow_multiple_clients`]); the first is the one
    /// the guest agent serves.
    sessions: Vec<Session>,
    devices: Devices,
    /// The pointer as last sent to the agent (agent mouse mode).
    agent_mouse: spice_proto::agent::MouseState,
    /// Keys the client holds down, released if it leaves.
    held_keys: keys::HeldKeys,
    /// The guest agent's link, when an agent port is attached.
    agent: Option<crate::agent::AgentLink>,
    /// Message boundaries in the client's agent data.
    client_agent_messages: crate::agent::client_messages::ClientMessages,
    /// Char devices served on usbredir, port and webdav channels.
    vmc: vmc::VmcDevices,
    ticket: Option<Ticket>,
    mouse_mode: u32,
    logical_size: Option<(u32, u32)>,
    read_buf: Vec<u8>,
    /// Checks connections whose reading is paused, which get no events while
    /// their client does not read; armed only while there are some.
    stall_timer: Option<crate::core::TimerId>,
    stall_timer_armed: bool,
    /// Connections from the listening socket that have not finished linking.
    pending: admission::PendingLinks,
    /// Accepting paused while out of descriptors.
    accept_gate: admission::AcceptGate,
    accept_timer: Option<crate::core::TimerId>,
    listen_watch: Option<WatchId>,
    /// One line per interval for refused or evicted connections, one for
    /// accept failures.
    refusal_log: log_limit::LogLimit,
    accept_log: log_limit::LogLimit,
    /// Wrong passwords per peer, and when the next check may run.
    auth_throttle: auth_throttle::AuthThrottle,
    auth_log: log_limit::LogLimit,
    /// Ticket keys made ahead on their own thread, one per link.
    ticket_keys: ticket_keys::KeyPool,
    /// Links waiting for a ticket key, oldest first (each is a link in
    /// progress, so as many as those caps allow).
    key_waiters: std::collections::VecDeque<u64>,
    /// Client migration, as the source.
    migration: crate::channel::migration::SourceMigration,
    /// The host's migration callbacks.
    migration_host: Option<Box<dyn migration::MigrationHost>>,
    /// The host allows seamless migration (source side).
    seamless_migration: bool,
    /// Fires when clients took too long to connect to or leave for the destination.
    migration_timer: Option<crate::core::TimerId>,
}

/// The listen backlog, as the C server's (`SOMAXCONN` on current systems):
/// a burst of connects waits in the kernel instead of being dropped and
/// retried a second later.
const LISTEN_BACKLOG: i32 = 4096;

/// Interval between two log lines about refused connections or accept errors.
const REFUSAL_LOG_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// A non-blocking listening socket with [`LISTEN_BACKLOG`].
fn listen(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // As std's TcpListener::bind: a restarted server rebinds its port at once.
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// A server running on the host's event loop (see [`crate::ServerBuilder::start_on`]).
///
/// Dropping it disconnects every client and removes its watches and timers.
pub struct Server {
    state: Rc<RefCell<ServerState>>,
    handle: ServerHandle,
    local_addr: SocketAddr,
    tls_local_addr: Option<SocketAddr>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl Server {
    pub(crate) fn start(
        core: Rc<dyn Core>,
        config: Config,
        devices: Devices,
        handle: ServerHandle,
    ) -> Result<Self, ServerError> {
        let addr = SocketAddr::new(config.addr, config.port);
        let mut devices = devices;
        let given = devices.listen_socket.take();
        let (listener, local_addr) = match (given, &config.unix_path, config.listen) {
            (Some(listener), _, _) => {
                let io = |source| ServerError::Io {
                    what: "the host's listening socket",
                    source,
                };
                listener.set_nonblocking().map_err(io)?;
                let local_addr = listener.tcp_addr().map_err(io)?.unwrap_or(addr);
                (Some(listener), local_addr)
            }
            (None, _, false) => (None, addr),
            (None, Some(path), true) => {
                let listener = Listener::unix(path).map_err(|source| ServerError::ListenUnix {
                    path: path.clone(),
                    source,
                })?;
                (Some(listener), addr)
            }
            (None, None, true) => {
                let listener = listen(addr).map_err(|source| ServerError::Listen { addr, source })?;
                let local_addr = listener.local_addr().map_err(|source| ServerError::Io {
                    what: "listening socket",
                    source,
                })?;
                (Some(Listener::Tcp(listener)), local_addr)
            }
        };
        // The C server would bind its TLS port to the same Unix path,
        // replacing the plain one; TLS over a local socket buys nothing, so
        // it is not opened at all.
        let tls_wanted = config.tls.is_some() && !(config.listen && config.unix_path.is_some());
        if config.tls.is_some() && !tls_wanted {
            tracing::warn!("listening on a Unix socket: the TLS port is not opened");
        }
        let (tls_listener, tls_local_addr) = if tls_wanted {
            let addr = SocketAddr::new(config.addr, config.tls_port);
            let listener = listen(addr).map_err(|source| ServerError::Listen { addr, source })?;
            let local = listener.local_addr().map_err(|source| ServerError::Io {
                what: "TLS listening socket",
                source,
            })?;
            (Some(Listener::Tcp(listener)), Some(local))
        } else {
            (None, None)
        };
        let (waker, wake_rx) = waker_pair().map_err(|source| ServerError::Io {
            what: "wake-up socket",
            source,
        })?;
        let waker = Arc::new(waker);
        handle.shared.attach(Some(waker.clone()));
        handle.shared.publish_mouse_mode(mouse_mode::SERVER);
        for display in devices.displays.values() {
            display.shared.attach(Some(waker.clone()));
        }
        if let Some(playback) = &devices.playback {
            playback.shared.attach_waker(Some(waker.clone()));
        }
        if let Some(record) = &devices.record {
            record.shared.attach_waker(Some(waker.clone()));
        }
        let now = Instant::now();
        let ticket = Ticket::from_auth(&config.auth, now);
        let key_pool = ticket_keys::KeyPool::new(waker.clone());
        let state = Rc::new_cyclic(|this| {
            RefCell::new(ServerState {
                core: core.clone(),
                this: this.clone(),
                config,
                epoch: now,
                listener,
                local_addr,
                tls_listener,
                tls_listen_watch: None,
                watches: Vec::new(),
                wake_rx,
                waker,
                handle: handle.shared.clone(),
                conns: HashMap::new(),
                remote: HashMap::new(),
                workers: HashMap::new(),
                low_bandwidth: false,
                next_conn: 1,
                sessions: Vec::new(),
                agent: None,
                client_agent_messages: Default::default(),
                vmc: Default::default(),
                held_keys: keys::HeldKeys::default(),
                agent_mouse: spice_proto::agent::MouseState {
                    x: 0,
                    y: 0,
                    buttons: 0,
                    display_id: 0,
                },
                devices,
                ticket,
                mouse_mode: mouse_mode::SERVER,
                logical_size: None,
                read_buf: vec![0; 64 * 1024],
                stall_timer: None,
                stall_timer_armed: false,
                pending: Default::default(),
                accept_gate: Default::default(),
                accept_timer: None,
                listen_watch: None,
                refusal_log: log_limit::LogLimit::new(REFUSAL_LOG_INTERVAL),
                accept_log: log_limit::LogLimit::new(REFUSAL_LOG_INTERVAL),
                auth_throttle: Default::default(),
                auth_log: log_limit::LogLimit::new(REFUSAL_LOG_INTERVAL),
                ticket_keys: key_pool,
                key_waiters: Default::default(),
                migration: Default::default(),
                migration_host: None,
                seamless_migration: false,
                migration_timer: None,
            })
        });
        {
            let mut s = state.borrow_mut();
            let wake_fd = s.wake_rx.fd();
            let wake = s.callback(|s, _| s.on_wakeup());
            s.watches = vec![core.add_watch(wake_fd, Interest::READ, wake)];
            s.stall_timer = Some(core.add_timer(s.timer_callback(|s| s.check_stalled())));
            s.migration_timer = Some(core.add_timer(s.timer_callback(|s| s.migrate_timeout())));
            if let Some(listen_fd) = s.listener.as_ref().map(|l| l.as_raw_fd()) {
                let accept = s.callback(|s, _| s.on_accept(false));
                let watch = core.add_watch(listen_fd, Interest::READ, accept);
                s.watches.push(watch);
                s.listen_watch = Some(watch);
            }
            if let Some(listen_fd) = s.tls_listener.as_ref().map(|l| l.as_raw_fd()) {
                let accept = s.callback(|s, _| s.on_accept(true));
                let watch = core.add_watch(listen_fd, Interest::READ, accept);
                s.watches.push(watch);
                s.tls_listen_watch = Some(watch);
            }
            if s.listener.is_some() || s.tls_listener.is_some() {
                s.accept_timer = Some(core.add_timer(s.timer_callback(|s| s.resume_accept())));
            }
            s.agent = s.devices.agent.take().map(crate::agent::AgentLink::new);
            let ids: Vec<u8> = s.devices.displays.keys().copied().collect();
            for id in ids {
                s.serve_display(id);
            }
            // Pick up a display published before the server started.
            s.on_wakeup();
        }
        if let Some(addr) = tls_local_addr {
            tracing::info!(addr = %addr, "spice server listening for TLS clients");
        }
        let unix_path = state
            .borrow()
            .listener
            .as_ref()
            .and_then(|_| state.borrow().config.unix_path.clone());
        if let Some(path) = unix_path {
            tracing::info!(path = %path.display(), "spice server listening on a unix socket");
        } else if state.borrow().listener.is_some() {
            tracing::info!(addr = %local_addr, "spice server listening");
        } else {
            tracing::info!("spice server started without a listening socket");
        }
        Ok(Self {
            state,
            handle,
            local_addr,
            tls_local_addr,
        })
    }

    /// The TLS port's address, when TLS is configured.
    pub fn tls_local_addr(&self) -> Option<SocketAddr> {
        self.tls_local_addr
    }

    /// The address clients connect to (the configured one, port included, when
    /// the server does not listen).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A thread-safe handle for requests to this server.
    pub fn handle(&self) -> ServerHandle {
        self.handle.clone()
    }

    /// Lets the agent link move data now, on the calling (server) thread; for a
    /// host whose agent device expects to be drained inside its own call, as
    /// QEMU's does. Queued for the loop instead if the server is busy.
    pub fn agent_wakeup_now(&self) {
        match self.state.try_borrow_mut() {
            Ok(mut s) => s.agent_pump_up_to(None, crate::agent::MAX_CHUNKS_PER_WAKEUP),
            Err(_) => self.handle.agent_wakeup(),
        }
    }

    /// Attaches (or with `None` detaches) the guest agent's port now, on the
    /// calling (server) thread, so that the device hears `state(true)` (or the
    /// old one `state(false)`) before this returns, as the C server's
    /// `spice_server_add_interface` / `remove_interface` do; QEMU drops what the
    /// guest writes until `state(true)`. Queued for the loop instead if the
    /// server is busy (see [`ServerHandle::set_agent`]). Requests already
    /// queued are carried out first, so none is overtaken.
    pub fn set_agent_now(&self, agent: Option<Box<dyn crate::vdi::CharDevice + Send>>) {
        match self.state.try_borrow_mut() {
            Ok(mut s) => {
                for command in s.handle.take() {
                    s.apply(command);
                }
                s.set_agent(agent);
            }
            Err(_) => self.handle.set_agent(agent),
        }
    }

    /// Carries out `command` now, on the calling (server) thread, after the
    /// requests already queued; queued instead if the server is busy (a
    /// device calling back into the server from inside a server call).
    fn now_or_queue(&self, command: crate::handle::Command) {
        match self.state.try_borrow_mut() {
            Ok(mut s) => {
                for queued in s.handle.take() {
                    s.apply(queued);
                }
                s.apply(command);
            }
            Err(_) => self.handle.push(command),
        }
    }

    /// [`ServerHandle::vmc_wakeup`] now: the device is read (and written)
    /// before this returns, as QEMU's char devices expect of
    /// `spice_server_char_device_wakeup`.
    pub fn vmc_wakeup_now(&self, id: crate::vdi::VmcDeviceId) {
        self.now_or_queue(crate::handle::Command::VmcWakeup(id));
    }

    /// [`ServerHandle::port_event`] now, so the event keeps its place among
    /// the data the device is read for.
    pub fn port_event_now(&self, id: crate::vdi::VmcDeviceId, event: u8) {
        self.now_or_queue(crate::handle::Command::VmcPortEvent(id, event));
    }

    /// [`ServerHandle::remove_vmc_device`] now: a linked client's channel is
    /// closed and the device hears `state(false)` before this returns, as
    /// from the C server's `spice_server_remove_interface`.
    pub fn remove_vmc_device_now(&self, id: crate::vdi::VmcDeviceId) {
        self.now_or_queue(crate::handle::Command::RemoveVmcDevice(id));
    }

    /// Number of client sessions (at most 1 unless several clients are allowed).
    pub fn client_count(&self) -> usize {
        self.state.try_borrow().map_or(0, |s| s.sessions.len())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(mut s) = self.state.try_borrow_mut() {
            s.shutdown();
        }
    }
}

impl ServerState {
    /// Wraps `f` as a core callback that runs with the state borrowed.
    fn callback<A: 'static>(&self, f: impl Fn(&mut ServerState, A) + 'static) -> Box<dyn FnMut(A)> {
        let this = self.this.clone();
        Box::new(move |arg| {
            let Some(state) = this.upgrade() else { return };
            match state.try_borrow_mut() {
                Ok(mut s) => f(&mut s, arg),
                Err(_) => tracing::error!("core invoked a server callback re-entrantly; event dropped"),
            };
        })
    }

    fn timer_callback(&self, f: impl Fn(&mut ServerState) + 'static) -> Box<dyn FnMut()> {
        let mut cb = self.callback(move |s, ()| f(s));
        Box::new(move || cb(()))
    }

    fn now(&self) -> Instant {
        Instant::now()
    }

    /// Milliseconds of the multimedia clock, shared by all channels.
    fn mm_time(&self, now: Instant) -> u32 {
        crate::display::stream::mm_time(now)
    }

    fn supported_mouse_modes(&self) -> u32 {
        let mut modes = mouse_mode::SERVER;
        if self.devices.tablet.is_some() || self.agent_moves_pointer() {
            modes |= mouse_mode::CLIENT;
        }
        modes
    }

    /// Whether client-mode pointer events go to the guest agent.
    fn agent_moves_pointer(&self) -> bool {
        self.config.agent_mouse && self.agent.is_some()
    }

    /// Tells the client the supported mouse modes after a device change, and
    /// leaves client mode if it is no longer possible.
    fn update_mouse_modes(&mut self) {
        let supported = self.supported_mouse_modes();
        if supported & self.mouse_mode == 0 {
            self.set_mouse_mode(mouse_mode::SERVER);
        }
        let current = self.mouse_mode;
        self.for_each_main(|main| main.send_mouse_mode(supported, current));
    }

    fn set_tablet(&mut self, tablet: Option<Box<dyn crate::vdi::Tablet + Send>>) {
        self.devices.tablet = tablet;
        if let (Some(tablet), Some((w, h))) = (self.devices.tablet.as_mut(), self.logical_size) {
            tablet.set_logical_size(w, h);
        }
        self.update_mouse_modes();
    }

    fn add_display(&mut self, id: u8, display: DisplayHandle) {
        display.shared.attach(Some(self.waker.clone()));
        if let Some(old) = self.devices.displays.insert(id, display) {
            old.shared.attach(None);
            self.close_channels_of_display(id);
            self.workers.remove(&id);
            self.serve_display(id);
            return;
        }
        self.serve_display(id);
        self.announce(vec![
            (ChannelType::Display as u8, id),
            (ChannelType::Cursor as u8, id),
        ]);
    }

    /// Makes sure display `id` has a thread to serve its clients (a host
    /// device may have brought its own), and gives it the current settings.
    fn serve_display(&mut self, id: u8) {
        let Some(display) = self.devices.displays.get(&id) else {
            return;
        };
        display.shared.set_settings(self.display_settings());
        if display.shared.worker().is_some() {
            return;
        }
        match DisplayWorker::start(display, None) {
            Ok(worker) => {
                self.workers.insert(id, worker);
            }
            Err(e) => {
                tracing::error!(id, error = %e, "cannot start a display thread; the display is not served")
            }
        }
    }

    fn display_settings(&self) -> DisplaySettings {
        DisplaySettings {
            compression: self.config.image_compression,
            wan: self.wan_codecs(),
            streaming: self.config.streaming_video,
            video_codecs: self.config.video_codecs,
            jpeg_encoder: self.config.jpeg_encoder,
        }
    }

    /// Gives every display the current settings (they wake only on a change).
    fn publish_display_settings(&self) {
        let settings = self.display_settings();
        for display in self.devices.displays.values() {
            display.shared.set_settings(settings);
        }
    }

    fn set_agent(&mut self, agent: Option<Box<dyn crate::vdi::CharDevice + Send>>) {
        let was = match self.agent.take() {
            Some(old) => {
                old.detach();
                true
            }
            None => false,
        };
        self.agent = agent.map(crate::agent::AgentLink::new);
        self.client_agent_messages = Default::default();
        match (was, self.agent.is_some()) {
            (_, true) => {
                tracing::info!("guest agent attached");
                self.with_main(|main| main.send_agent_connected());
                self.update_mouse_modes();
                self.agent_pump(None);
            }
            (true, false) => {
                tracing::info!("guest agent detached");
                self.with_main(|main| main.send_agent_disconnected());
                self.update_mouse_modes();
            }
            (false, false) => {}
        }
    }

    /// Moves agent data both ways and sends the client what came out: to the
    /// main channel given (one being handled) or else the session's.
    pub(super) fn agent_pump(&mut self, main: Option<&mut crate::channel::main::MainChannel>) {
        self.agent_pump_up_to(main, crate::agent::MAX_CHUNKS_PER_PUMP);
    }

    /// [`Self::agent_pump`] reading at most `max_chunks` chunks from the device;
    /// if it stops there, another pump is queued for the loop, so the device is
    /// read again even if nothing else happens (a QEMU port left blocked by a
    /// partial read is only unblocked by the server's next read).
    fn agent_pump_up_to(
        &mut self,
        mut main: Option<&mut crate::channel::main::MainChannel>,
        max_chunks: usize,
    ) {
        // Agent data waits in the device (pushing back on the guest) rather than
        // piling up for a client that does not read.
        let backlog = match main.as_mut() {
            Some(m) => m.base.out.len(),
            None => self.main_backlog(),
        };
        let Some(agent) = &mut self.agent else { return };
        let pumped = agent.pump_with(max_chunks, backlog < AGENT_BACKLOG_LIMIT);
        if pumped.more {
            ServerHandle {
                shared: self.handle.clone(),
            }
            .agent_wakeup();
        }
        if pumped.to_client.is_empty() && pumped.tokens == 0 {
            return;
        }
        let send = move |main: &mut crate::channel::main::MainChannel| {
            for data in &pumped.to_client {
                main.send_agent_data(data);
            }
            if pumped.tokens > 0 {
                main.send_agent_tokens(pumped.tokens);
            }
        };
        match main {
            Some(main) => send(main),
            None => self.with_main(send),
        }
    }

    /// Tells connected clients (that have asked for the list) about new channels.
    fn announce(&mut self, channels: Vec<(u8, u8)>) {
        self.for_each_main(|main| {
            if main.attached {
                main.send_channels_list(channels.clone());
            }
        });
    }

    /// Who is on a linked channel, wherever it is served.
    fn channel_info(&self, id: u64) -> Option<&ChannelInfo> {
        self.conns
            .get(&id)
            .map(|c| &c.info)
            .or_else(|| self.remote.get(&id))
    }

    /// Closes one channel, on the main context or on its display's thread.
    fn close_channel(&mut self, id: u64) {
        if let Some(conn) = self.conns.remove(&id) {
            self.close(id, conn);
        } else if let Some(info) = self.remote.remove(&id) {
            if let Some(worker) = self.display_worker(info.channel_id) {
                worker.send(ToWorker::Close(id));
            }
            self.remote_closed(id, info);
        }
    }

    /// The thread serving display `id`, if there is one.
    fn display_worker(&self, id: u8) -> Option<Arc<crate::worker::WorkerShared>> {
        self.devices.displays.get(&id).and_then(|d| d.shared.worker())
    }

    /// A channel served (or about to be served) on a display thread is gone:
    /// tell the host, and the session forgets it.
    fn remote_closed(&mut self, id: u64, info: ChannelInfo) {
        self.core.channel_event(ChannelEvent::Disconnected, &info);
        tracing::info!(
            channel = channel_name(info.channel_type),
            id = info.channel_id,
            session = info.connection_id,
            "channel disconnected"
        );
        self.forget_channel(id);
        self.close_moved_main();
    }

    /// The session with this id.
    fn session(&self, id: u32) -> Option<&Session> {
        self.sessions.iter().find(|s| s.id == id)
    }

    fn session_mut(&mut self, id: u32) -> Option<&mut Session> {
        self.sessions.iter_mut().find(|s| s.id == id)
    }

    /// The session whose main channel is `main`.
    fn session_of_main(&mut self, main: u64) -> Option<&mut Session> {
        self.sessions.iter_mut().find(|s| s.main == main)
    }

    /// The oldest session. The guest agent serves it (the agent's stream
    /// has one writer and one reader, so other clients are told no agent is
    /// connected until it is theirs), and its main channel's net test
    /// decides the displays' WAN codecs.
    fn first_session(&self) -> Option<&Session> {
        self.sessions.first()
    }

    /// Whether `main` is the main channel of the agent's session.
    fn serves_agent(&self, main: u64) -> bool {
        self.first_session().is_some_and(|s| s.main == main)
    }

    /// A non-main channel is gone: its session forgets it.
    fn forget_channel(&mut self, id: u64) {
        for session in &mut self.sessions {
            session.channels.retain(|&c| c != id);
        }
    }

    /// Seamless migration, source side: once the client took every channel
    /// to the destination and main's state went out, main is closed here
    /// (spice-gtk may keep its old main socket open until the server does).
    fn close_moved_main(&mut self) {
        let mains: Vec<u64> = self.sessions.iter().map(|s| s.main).collect();
        for main in mains {
            let moved = match self.conns.get(&main).map(|c| &c.phase) {
                Some(Phase::Linked {
                    channel: conn::Channel::Main(m),
                    ..
                }) => self.client_moved(main, m),
                _ => false,
            };
            if moved {
                tracing::debug!("the client moved every channel; closing its main channel");
                self.close_channel(main);
            }
        }
    }

    /// Whether, after a seamless migration, the client of main channel
    /// `id` moved every channel to the destination and main's own state
    /// went out: main is done.
    fn client_moved(&self, id: u64, main: &crate::channel::main::MainChannel) -> bool {
        main.base.migration_data_sent()
            && self
                .sessions
                .iter()
                .any(|s| s.main == id && s.moved_out && s.channels.is_empty())
    }

    /// Moves a linked display or cursor channel to its display's thread.
    fn hand_over(&mut self, id: u64, conn: Conn) {
        self.core.remove_watch(conn.watch);
        let Conn {
            stream, phase, info, ..
        } = conn;
        let Phase::Handover(handover) = phase else { return };
        let Some(worker) = self.display_worker(info.channel_id) else {
            tracing::warn!(id = info.channel_id, "display has no thread; closing its channel");
            self.remote_closed(id, info);
            return;
        };
        self.remote.insert(id, info);
        worker.send(ToWorker::Attach(handover, stream));
    }

    /// Closes every linked channel of one type.
    fn close_channels_of(&mut self, kind: ChannelType) {
        let doomed: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| matches!(c.phase, Phase::Linked { .. }) && c.info.channel_type == kind as u8)
            .map(|(&k, _)| k)
            .collect();
        for k in doomed {
            if let Some(conn) = self.conns.remove(&k) {
                self.close(k, conn);
            }
        }
    }

    fn remove_display(&mut self, id: u8) {
        self.close_channels_of_display(id);
        if let Some(old) = self.devices.displays.remove(&id) {
            old.shared.attach(None);
        }
        self.workers.remove(&id);
    }

    fn close_channels_of_display(&mut self, id: u8) {
        let doomed: Vec<u64> = self
            .remote
            .iter()
            .filter(|(_, info)| info.channel_id == id)
            .map(|(&k, _)| k)
            .collect();
        for k in doomed {
            self.close_channel(k);
        }
    }

    /// Runs `f` on the main channel of the agent's session, if there is one.
    fn with_main(&mut self, f: impl FnOnce(&mut crate::channel::main::MainChannel)) {
        if let Some(main) = self.first_session().map(|s| s.main) {
            self.with_main_conn(main, f);
        }
    }

    /// Runs `f` on every session's main channel.
    fn for_each_main(&mut self, mut f: impl FnMut(&mut crate::channel::main::MainChannel)) {
        let mains: Vec<u64> = self.sessions.iter().map(|s| s.main).collect();
        for main in mains {
            self.with_main_conn(main, &mut f);
        }
    }

    /// Runs `f` on main channel `main`, if it is linked, and sends what it queued.
    fn with_main_conn(&mut self, main: u64, f: impl FnOnce(&mut crate::channel::main::MainChannel)) {
        let Some(conn) = self.conns.get_mut(&main) else {
            return;
        };
        if let Phase::Linked {
            channel: conn::Channel::Main(m),
            ..
        } = &mut conn.phase
        {
            f(m);
        }
        self.with_conn(main, |s, conn| s.pump(conn));
    }

    /// The WAN image codecs for the session's display channels: the
    /// settings, with `Auto` resolved by the main channel's net test.
    fn wan_codecs(&self) -> crate::display::compress::WanCodecs {
        crate::display::compress::WanCodecs::resolve(
            self.config.jpeg_compression,
            self.config.zlib_glz_compression,
            self.low_bandwidth,
        )
    }

    /// Records what the session's net test found about the link; the
    /// displays hear about a change.
    fn set_low_bandwidth(&mut self, low: bool) {
        if low != self.low_bandwidth {
            self.low_bandwidth = low;
            self.publish_display_settings();
        }
    }

    /// Bytes queued on the main channel of the agent's session.
    fn main_backlog(&self) -> usize {
        let Some(main) = self.first_session().map(|s| s.main) else {
            return 0;
        };
        match self.conns.get(&main).map(|c| &c.phase) {
            Some(Phase::Linked {
                channel: conn::Channel::Main(m),
                ..
            }) => m.base.out.len(),
            _ => 0,
        }
    }

    /// Records the mouse mode where handles can read it.
    fn set_mouse_mode(&mut self, mode: u32) {
        self.mouse_mode = mode;
        self.handle.publish_mouse_mode(mode);
    }

    fn on_accept(&mut self, tls: bool) {
        if self.accept_gate.is_paused() {
            return;
        }
        loop {
            let listener = if tls { &self.tls_listener } else { &self.listener };
            let Some(listener) = listener else { return };
            match listener.accept() {
                Ok((stream, peer)) => self.admit(stream, peer, tls),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if admission::is_per_connection(&e) => continue,
                // Out of descriptors (or anything else that would fail again
                // at once): the listening socket stays readable, so retrying
                // now would spin. Pause instead.
                Err(e) => {
                    self.pause_accept(&e);
                    break;
                }
            }
        }
    }

    /// Takes an accepted connection if the limits on links in progress allow.
    fn admit(&mut self, stream: ClientSocket, peer: Option<SocketAddr>, tls: bool) {
        let id = self.next_conn;
        let limits = &self.config.limits;
        let admit = self.pending.admit(
            id,
            peer.map_or(admission::PeerKey::Local, |p| admission::PeerKey::of(p.ip())),
            limits.max_pending_links,
            limits.max_pending_links_per_peer,
        );
        let now = self.now();
        match admit {
            admission::Admit::Accept => {}
            admission::Admit::AcceptEvicting(old) => {
                if let Some(held) = self.refusal_log.allow(now) {
                    tracing::warn!(
                        ?peer,
                        total_limit = self.config.limits.max_pending_links,
                        peer_limit = self.config.limits.max_pending_links_per_peer,
                        suppressed = held,
                        "too many connections linking; dropping the oldest"
                    );
                }
                self.close_channel(old);
            }
        }
        self.add_link(stream, peer, false, tls);
        if !self.conns.contains_key(&id) {
            self.pending.finished(id);
        }
    }

    /// Stops watching the listening socket until the retry timer fires or a
    /// connection closes, with one log line per interval.
    fn pause_accept(&mut self, error: &std::io::Error) {
        let now = self.now();
        let until = self.accept_gate.pause(now);
        for watch in [self.listen_watch, self.tls_listen_watch].into_iter().flatten() {
            self.core.update_watch(watch, Interest::default());
        }
        if let Some(timer) = self.accept_timer {
            self.core.start_timer(timer, until.saturating_duration_since(now));
        }
        if let Some(held) = self.accept_log.allow(now) {
            tracing::warn!(
                error = %error,
                out_of_descriptors = admission::is_resource_exhaustion(error),
                connections = self.conns.len(),
                linking = self.pending.len(),
                suppressed = held,
                "cannot accept connections; accepting paused and retried every 250 ms"
            );
        }
    }

    /// Accepting goes on after a pause (a descriptor may be free now).
    fn resume_accept(&mut self) {
        if !self.accept_gate.resume() {
            return;
        }
        if let Some(timer) = self.accept_timer {
            self.core.cancel_timer(timer);
        }
        for watch in [self.listen_watch, self.tls_listen_watch].into_iter().flatten() {
            self.core.update_watch(watch, Interest::READ);
        }
    }

    fn on_wakeup(&mut self) {
        self.wake_rx.drain(&self.waker);
        for command in self.handle.take() {
            self.apply(command);
        }
        self.serve_key_waiters();
        if let Some(display) = self.devices.displays.get(&0) {
            let size = display.size();
            if size.is_some() && size != self.logical_size {
                self.logical_size = size;
                if let (Some((w, h)), Some(tablet)) = (size, self.devices.tablet.as_mut()) {
                    tablet.set_logical_size(w, h);
                }
            }
        }
        let ids: Vec<u64> = self.conns.keys().copied().collect();
        for id in ids {
            self.with_conn(id, |s, conn| s.pump(conn));
        }
    }

    fn apply(&mut self, command: crate::handle::Command) {
        use crate::handle::Command;
        match command {
            Command::SetLeds(leds) => {
                for conn in self.conns.values_mut() {
                    if let Phase::Linked {
                        channel: conn::Channel::Inputs(inputs),
                        ..
                    } = &mut conn.phase
                    {
                        inputs.send_leds(leds);
                    }
                }
            }
            Command::AddClient {
                stream,
                skip_auth,
                tls,
            } => match stream.peer_addr() {
                // Connected: an IP peer, or a Unix one (no address).
                Ok(peer) => self.add_link(stream, peer, skip_auth, tls),
                Err(e) => tracing::warn!(error = %e, "handed-over client socket is not connected"),
            },
            Command::SetKeyboard(keyboard) => self.devices.keyboard = keyboard,
            Command::SetMouse(mouse) => self.devices.mouse = mouse,
            Command::SetTablet(tablet) => self.set_tablet(tablet),
            Command::AddDisplay(id, display) => self.add_display(id, display),
            Command::SetAgent(agent) => self.set_agent(agent),
            Command::SetStreamingVideo(mode) => {
                self.config.streaming_video = mode;
                self.publish_display_settings();
            }
            Command::SetVideoCodecs(codecs) => {
                self.config.video_codecs = codecs;
                self.publish_display_settings();
            }
            Command::SetImageCompression(compression) => {
                self.config.image_compression = compression;
                self.publish_display_settings();
            }
            Command::SetJpegCompression(setting) => {
                self.config.jpeg_compression = setting;
                self.publish_display_settings();
            }
            Command::SetZlibGlzCompression(setting) => {
                self.config.zlib_glz_compression = setting;
                self.publish_display_settings();
            }
            Command::SetChannelSecurity(policy) => self.config.security = policy,
            Command::SetAgentMouse(enabled) => {
                self.config.agent_mouse = enabled;
                self.update_mouse_modes();
            }
            Command::SetPlaybackCompression(enabled) => {
                self.config.playback_compression = enabled;
                let mm_time = self.mm_time(Instant::now());
                for conn in self.conns.values_mut() {
                    if let Phase::Linked {
                        channel: conn::Channel::Playback(playback),
                        ..
                    } = &mut conn.phase
                    {
                        playback.set_compression(enabled, mm_time);
                    }
                }
            }
            Command::AgentWakeup => self.agent_pump(None),
            Command::AddVmcDevice(id, kind, device) => self.add_vmc_device(id, kind, device),
            Command::RemoveVmcDevice(id) => self.remove_vmc_device(id),
            Command::VmcWakeup(id) => self.vmc_wakeup(id),
            Command::VmcPortEvent(id, event) => self.vmc_port_event(id, event),
            Command::SetPlayback(playback) => {
                if let Some(old) = self.devices.playback.take() {
                    old.shared.attach_waker(None);
                }
                self.close_channels_of(ChannelType::Playback);
                if let Some(p) = &playback {
                    p.shared.attach_waker(Some(self.waker.clone()));
                }
                let announce = playback.is_some();
                self.devices.playback = playback;
                if announce {
                    self.announce(vec![(ChannelType::Playback as u8, 0)]);
                }
            }
            Command::SetRecord(record) => {
                if let Some(old) = self.devices.record.take() {
                    old.shared.attach_waker(None);
                }
                self.close_channels_of(ChannelType::Record);
                if let Some(r) = &record {
                    r.shared.attach_waker(Some(self.waker.clone()));
                }
                let announce = record.is_some();
                self.devices.record = record;
                if announce {
                    self.announce(vec![(ChannelType::Record as u8, 0)]);
                }
            }
            Command::RemoveDisplay(id) => self.remove_display(id),
            Command::SetAuth(auth) => {
                if let Auth::Password { password, .. } = &auth {
                    if password.len() > spice_proto::consts::MAX_PASSWORD_LENGTH {
                        tracing::warn!(len = password.len(), "password longer than 60 bytes refused");
                        return;
                    }
                }
                self.ticket = Ticket::from_auth(&auth, self.now());
            }
            Command::ExpirePassword => {
                if let Some(ticket) = &mut self.ticket {
                    ticket.expires = Some(self.epoch);
                }
            }
            Command::DisplayChannelClosed(id) => {
                if let Some(info) = self.remote.remove(&id) {
                    self.remote_closed(id, info);
                }
            }
            Command::SetMigrationHost(host) => self.migration_host = host,
            Command::MigrateInfo(target) => self.migrate_info(target),
            Command::SetSeamlessMigration(enable) => self.seamless_migration = enable,
            Command::MigrateConnect(target) => self.migrate_connect(target),
            Command::MigrateEnd(completed) => self.migrate_end(completed),
            Command::DisconnectClients => {
                if !self.sessions.is_empty() {
                    tracing::info!(clients = self.sessions.len(), "disconnecting clients on request");
                }
                self.end_sessions();
            }
        }
    }

    /// Ends the session at `at` in [`ServerState::sessions`] and closes its
    /// channels. The guest agent, if it served this client, goes to the
    /// next oldest.
    fn end_session(&mut self, at: usize) {
        if at >= self.sessions.len() {
            return;
        }
        let session = self.sessions.remove(at);
        tracing::info!(session = session.id, "client session ended");
        if at == 0 {
            if let Some(agent) = &mut self.agent {
                agent.client_gone();
            }
            // No client takes agent data now: this only writes to the
            // device and drops its data.
            self.agent_pump(None);
            self.client_agent_messages = Default::default();
        }
        for id in std::iter::once(session.main).chain(session.channels) {
            self.close_channel(id);
        }
        if at == 0 && self.agent.is_some() && !self.sessions.is_empty() {
            tracing::debug!("the guest agent goes to the next client");
            self.with_main(|main| main.send_agent_connected());
        }
        if self.sessions.is_empty() {
            self.set_low_bandwidth(false);
            self.set_mouse_mode(mouse_mode::SERVER);
        }
    }

    /// Ends every session, newest first.
    fn end_sessions(&mut self) {
        while let Some(last) = self.sessions.len().checked_sub(1) {
            self.end_session(last);
        }
    }

    fn shutdown(&mut self) {
        self.end_sessions();
        let ids: Vec<u64> = self.conns.keys().chain(self.remote.keys()).copied().collect();
        for id in ids {
            self.close_channel(id);
        }
        self.workers.clear();
        for timer in [self.stall_timer.take(), self.accept_timer.take()]
            .into_iter()
            .flatten()
        {
            self.core.remove_timer(timer);
        }
        for watch in self.watches.drain(..) {
            self.core.remove_watch(watch);
        }
        for display in self.devices.displays.values() {
            display.shared.attach(None);
        }
        if let Some(playback) = &self.devices.playback {
            playback.shared.attach_waker(None);
        }
        if let Some(record) = &self.devices.record {
            record.shared.attach_waker(None);
        }
        self.handle.attach(None);
        tracing::info!(addr = %self.local_addr, "spice server stopped");
    }
}

pub(crate) fn channel_name(channel_type: u8) -> &'static str {
    spice_proto::ChannelType::from_u8(channel_type).map_or("unknown", |t| t.name())
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use crate::core::{Core, Interest, TimerCallback, TimerId, WatchCallback, WatchId};
    use crate::vdi::CharDevice;
    use crate::ServerBuilder;

    /// A loop that never runs anything: whatever the server queues stays queued.
    struct Idle;

    impl Core for Idle {
        fn add_timer(&self, _callback: TimerCallback) -> TimerId {
            TimerId(0)
        }
        fn start_timer(&self, _timer: TimerId, _after: Duration) {}
        fn cancel_timer(&self, _timer: TimerId) {}
        fn remove_timer(&self, _timer: TimerId) {}
        fn add_watch(
            &self,
            _fd: std::os::fd::RawFd,
            _interest: Interest,
            _callback: WatchCallback,
        ) -> WatchId {
            WatchId(0)
        }
        fn update_watch(&self, _watch: WatchId, _interest: Interest) {}
        fn remove_watch(&self, _watch: WatchId) {}
    }

    /// Records its `state` calls as `(name, connected)`.
    struct Port(&'static str, Arc<Mutex<Vec<(&'static str, bool)>>>);

    impl CharDevice for Port {
        fn read(&mut self, _buf: &mut [u8]) -> usize {
            0
        }
        fn write(&mut self, data: &[u8]) -> usize {
            data.len()
        }
        fn state(&mut self, connected: bool) {
            self.1.lock().unwrap().push((self.0, connected));
        }
    }

    /// A guest agent with bytes to read.
    #[derive(Clone, Default)]
    struct Guest(Arc<Mutex<std::collections::VecDeque<u8>>>);

    impl Guest {
        fn send(&self, chunks: usize) {
            let mut bytes = Vec::new();
            for _ in 0..chunks {
                spice_proto::agent::ChunkHeader::encode_chunk(
                    spice_proto::agent::PORT_CLIENT,
                    b"grab",
                    &mut bytes,
                );
            }
            self.0.lock().unwrap().extend(bytes);
        }

        fn unread_chunks(&self) -> usize {
            self.0.lock().unwrap().len() / (spice_proto::agent::ChunkHeader::SIZE + 4)
        }
    }

    impl CharDevice for Guest {
        fn read(&mut self, buf: &mut [u8]) -> usize {
            let mut q = self.0.lock().unwrap();
            let n = buf.len().min(q.len());
            for (b, v) in buf.iter_mut().zip(q.drain(..n)) {
                *b = v;
            }
            n
        }
        fn write(&mut self, data: &[u8]) -> usize {
            data.len()
        }
    }

    #[test]
    fn the_hosts_wakeup_reads_all_offered_and_a_bounded_pump_queues_another() {
        let server = ServerBuilder::new()
            .no_listen()
            .start_on(std::rc::Rc::new(Idle))
            .unwrap();
        let guest = Guest::default();
        guest.send(100);
        // Attaching pumps once from the loop's side: bounded, and another is queued.
        server.set_agent_now(Some(Box::new(guest.clone())));
        assert_eq!(guest.unread_chunks(), 100 - crate::agent::MAX_CHUNKS_PER_PUMP);
        let queued: Vec<_> = server.state.borrow().handle.take().into_iter().collect();
        assert!(
            matches!(queued[..], [crate::handle::Command::AgentWakeup]),
            "{queued:?}"
        );
        // The host's own wakeup (QEMU's spice_chr_write) reads all it offered.
        guest.send(1000);
        server.agent_wakeup_now();
        assert_eq!(guest.unread_chunks(), 0);
        assert!(
            server.state.borrow().handle.take().is_empty(),
            "nothing more to do"
        );
    }

    #[test]
    fn set_agent_now_tells_the_device_before_returning() {
        let server = ServerBuilder::new()
            .no_listen()
            .start_on(std::rc::Rc::new(Idle))
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        server.set_agent_now(Some(Box::new(Port("a", log.clone()))));
        assert_eq!(*log.lock().unwrap(), [("a", true)], "state(true) inside the call");
        server.set_agent_now(None);
        assert_eq!(
            *log.lock().unwrap(),
            [("a", true), ("a", false)],
            "state(false) inside the call"
        );

        // A request queued earlier (the loop never ran it) is not overtaken.
        server.handle().set_agent(Some(Box::new(Port("b", log.clone()))));
        server.set_agent_now(Some(Box::new(Port("c", log.clone()))));
        assert_eq!(
            log.lock().unwrap()[2..],
            [("b", true), ("b", false), ("c", true)],
            "the queued port first, then the new one replaces it"
        );
    }
}
