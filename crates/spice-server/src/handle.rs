//! Requests from the host to a running server, from any thread.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use spice_proto::consts::mouse_mode;

use crate::config::Auth;
use crate::display::DisplayHandle;
use crate::vdi::{Keyboard, Leds, Mouse, Tablet};
use crate::waker::Waker;

/// A request queued for the main context.
pub(crate) enum Command {
    SetLeds(Leds),
    AddClient {
        stream: crate::socket::ClientSocket,
        skip_auth: bool,
        tls: bool,
    },
    SetKeyboard(Option<Box<dyn Keyboard + Send>>),
    SetMouse(Option<Box<dyn Mouse + Send>>),
    SetTablet(Option<Box<dyn Tablet + Send>>),
    AddDisplay(u8, DisplayHandle),
    SetPlayback(Option<crate::audio::PlaybackHandle>),
    SetAgent(Option<Box<dyn crate::vdi::CharDevice + Send>>),
    SetAgentMouse(bool),
    SetPlaybackCompression(bool),
    SetChannelSecurity(crate::tls::SecurityPolicy),
    SetImageCompression(crate::display::compress::ImageCompression),
    SetStreamingVideo(crate::display::stream::StreamingVideo),
    SetVideoCodecs(crate::display::video::VideoCodecs),
    SetJpegCompression(crate::display::compress::WanCompression),
    SetZlibGlzCompression(crate::display::compress::WanCompression),
    AgentWakeup,
    SetRecord(Option<crate::audio::RecordHandle>),
    RemoveDisplay(u8),
    SetAuth(Auth),
    ExpirePassword,
    DisconnectClients,
    SetMigrationHost(Option<Box<dyn crate::server::migration::MigrationHost>>),
    MigrateInfo(crate::channel::migration::MigrationTarget),
    SetSeamlessMigration(bool),
    MigrateConnect(crate::channel::migration::MigrationTarget),
    MigrateEnd(bool),
    /// A display thread closed the channel with this link id.
    DisplayChannelClosed(u64),
    AddVmcDevice(
        crate::vdi::VmcDeviceId,
        crate::vdi::VmcKind,
        Box<dyn crate::vdi::CharDevice + Send>,
    ),
    RemoveVmcDevice(crate::vdi::VmcDeviceId),
    VmcWakeup(crate::vdi::VmcDeviceId),
    VmcPortEvent(crate::vdi::VmcDeviceId, u8),
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            Self::SetLeds(_) => "SetLeds",
            Self::AddClient { .. } => "AddClient",
            Self::SetKeyboard(_) => "SetKeyboard",
            Self::SetMouse(_) => "SetMouse",
            Self::SetTablet(_) => "SetTablet",
            Self::AddDisplay(..) => "AddDisplay",
            Self::SetPlayback(_) => "SetPlayback",
            Self::SetAgent(_) => "SetAgent",
            Self::SetAgentMouse(_) => "SetAgentMouse",
            Self::SetPlaybackCompression(_) => "SetPlaybackCompression",
            Self::SetChannelSecurity(_) => "SetChannelSecurity",
            Self::SetImageCompression(_) => "SetImageCompression",
            Self::SetStreamingVideo(_) => "SetStreamingVideo",
            Self::SetVideoCodecs(_) => "SetVideoCodecs",
            Self::SetJpegCompression(_) => "SetJpegCompression",
            Self::SetZlibGlzCompression(_) => "SetZlibGlzCompression",
            Self::AgentWakeup => "AgentWakeup",
            Self::SetRecord(_) => "SetRecord",
            Self::RemoveDisplay(_) => "RemoveDisplay",
            Self::SetAuth(_) => "SetAuth",
            Self::ExpirePassword => "ExpirePassword",
            Self::DisconnectClients => "DisconnectClients",
            Self::SetMigrationHost(_) => "SetMigrationHost",
            Self::MigrateInfo(_) => "MigrateInfo",
            Self::SetSeamlessMigration(_) => "SetSeamlessMigration",
            Self::MigrateConnect(_) => "MigrateConnect",
            Self::MigrateEnd(_) => "MigrateEnd",
            Self::DisplayChannelClosed(_) => "DisplayChannelClosed",
            Self::AddVmcDevice(..) => "AddVmcDevice",
            Self::RemoveVmcDevice(_) => "RemoveVmcDevice",
            Self::VmcWakeup(_) => "VmcWakeup",
            Self::VmcPortEvent(..) => "VmcPortEvent",
        };
        f.write_str(name)
    }
}

/// State shared between the handles and the main context. Requests made
/// before the server starts wait in the queue until it does.
#[derive(Debug)]
pub(crate) struct HandleShared {
    commands: Mutex<VecDeque<Command>>,
    waker: Mutex<Option<Arc<Waker>>>,
    mouse_mode: AtomicU32,
    /// The last [`crate::vdi::VmcDeviceId`] handed out.
    next_vmc_device: std::sync::atomic::AtomicU64,
    /// Every open channel's counters.
    pub(crate) metrics: crate::metrics::Registry,
}

impl Default for HandleShared {
    fn default() -> Self {
        Self {
            commands: Mutex::new(VecDeque::new()),
            waker: Mutex::new(None),
            mouse_mode: AtomicU32::new(mouse_mode::SERVER),
            next_vmc_device: std::sync::atomic::AtomicU64::new(0),
            metrics: Default::default(),
        }
    }
}

impl HandleShared {
    /// Connects the handles to a started server.
    pub(crate) fn attach(&self, waker: Option<Arc<Waker>>) {
        *self.waker.lock().unwrap_or_else(|e| e.into_inner()) = waker;
    }

    pub(crate) fn take(&self) -> VecDeque<Command> {
        std::mem::take(&mut *self.commands.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub(crate) fn publish_mouse_mode(&self, mode: u32) {
        self.mouse_mode.store(mode, Ordering::Relaxed);
    }
}

/// Talks to a server from any thread; cheap to clone.
///
/// Requests are carried out on the server's main context shortly after the call
/// returns, in the order they were made. A handle taken from the builder
/// ([`crate::ServerBuilder::handle`]) works before the server starts: its
/// requests wait until it does, so devices can hold one from the outset.
#[derive(Debug, Clone, Default)]
pub struct ServerHandle {
    pub(crate) shared: Arc<HandleShared>,
}

impl ServerHandle {
    pub(crate) fn push(&self, command: Command) {
        self.shared
            .commands
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(command);
        if let Some(waker) = self
            .shared
            .waker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            waker.wake();
        }
    }

    /// Whether the server is in server mouse mode (relative motion to the
    /// [`crate::Mouse`]) rather than client mode (absolute positions to the
    /// [`crate::Tablet`]) (`spice_server_is_server_mouse`).
    pub fn is_server_mouse(&self) -> bool {
        self.shared.mouse_mode.load(Ordering::Relaxed) == mouse_mode::SERVER
    }

    /// Tells clients the guest's keyboard LEDs changed (`spice_server_kbd_leds`).
    pub fn set_keyboard_leds(&self, leds: Leds) {
        self.push(Command::SetLeds(leds));
    }

    /// Changes how new clients authenticate (`spice_server_set_ticket`,
    /// `spice_server_set_noauth`). A password lifetime counts from this call;
    /// clients already connected stay connected.
    pub fn set_auth(&self, auth: Auth) {
        self.push(Command::SetAuth(auth));
    }

    /// Makes the current password stop working now, so no new client can link
    /// until a new one is set (`spice_server_set_ticket(NULL)`).
    pub fn expire_password(&self) {
        self.push(Command::ExpirePassword);
    }

    /// Serves a client on a socket the host accepted itself
    /// (`spice_server_add_client`): a TCP or a Unix stream socket. With
    /// `skip_auth` its links need no password.
    pub fn add_client(&self, stream: impl Into<crate::socket::ClientSocket>, skip_auth: bool) {
        self.push(Command::AddClient {
            stream: stream.into(),
            skip_auth,
            tls: false,
        });
    }

    /// Serves a client whose socket the host accepted, over TLS with the
    /// server's [`crate::TlsConfig`] (`spice_server_add_ssl_client`); refused
    /// with a log line if the server has none.
    pub fn add_tls_client(&self, stream: impl Into<crate::socket::ClientSocket>, skip_auth: bool) {
        self.push(Command::AddClient {
            stream: stream.into(),
            skip_auth,
            tls: true,
        });
    }

    /// Attaches or detaches the keyboard while the server runs.
    pub fn set_keyboard(&self, keyboard: Option<Box<dyn Keyboard + Send>>) {
        self.push(Command::SetKeyboard(keyboard));
    }

    /// Attaches or detaches the relative mouse while the server runs.
    pub fn set_mouse(&self, mouse: Option<Box<dyn Mouse + Send>>) {
        self.push(Command::SetMouse(mouse));
    }

    /// Attaches or detaches the tablet while the server runs. Client mouse mode
    /// is offered exactly while a tablet is attached; a connected client is told.
    pub fn set_tablet(&self, tablet: Option<Box<dyn Tablet + Send>>) {
        self.push(Command::SetTablet(tablet));
    }

    /// Adds a display (with display and cursor channels of channel id `id`)
    /// while the server runs; a connected client is told about the new channels.
    pub fn add_display(&self, id: u8, display: DisplayHandle) {
        self.push(Command::AddDisplay(id, display));
    }

    /// Adds (or with `None` removes) audio playback while the server runs; a
    /// connected client is told about the new channel.
    pub fn set_playback(&self, playback: Option<crate::audio::PlaybackHandle>) {
        self.push(Command::SetPlayback(playback));
    }

    /// Attaches (or with `None` detaches) the guest agent's port. A connected
    /// client is told the agent came or went.
    pub fn set_agent(&self, agent: Option<Box<dyn crate::vdi::CharDevice + Send>>) {
        self.push(Command::SetAgent(agent));
    }

    /// Whether the guest agent moves the pointer in client mouse mode
    /// (`spice_server_set_agent_mouse`).
    pub fn set_agent_mouse(&self, enabled: bool) {
        self.push(Command::SetAgentMouse(enabled));
    }

    /// Whether playback goes as Opus to clients that decode it
    /// (`spice_server_set_playback_compression`); a connected playback client
    /// whose mode changes is sent `MODE` at once, as by the C server.
    pub fn set_playback_compression(&self, enabled: bool) {
        self.push(Command::SetPlaybackCompression(enabled));
    }

    /// Which channels must come over TLS or plain TCP, for links from now on
    /// (`spice_server_set_channel_security`).
    pub fn set_channel_security(&self, policy: crate::tls::SecurityPolicy) {
        self.push(Command::SetChannelSecurity(policy));
    }

    /// Changes how images are compressed from now on
    /// (`spice_server_set_image_compression`).
    pub fn set_image_compression(&self, compression: crate::display::compress::ImageCompression) {
        self.push(Command::SetImageCompression(compression));
    }

    /// Changes when areas that keep changing go as a video stream, from the
    /// next frame on (`spice_server_set_streaming_video`; see
    /// [`crate::ServerBuilder::streaming_video`]).
    pub fn set_streaming_video(&self, mode: crate::display::stream::StreamingVideo) {
        self.push(Command::SetStreamingVideo(mode));
    }

    /// Changes the video stream codecs, from the next stream on
    /// (`spice_server_set_video_codecs`; see [`crate::Config::video_codecs`]).
    pub fn set_video_codecs(&self, codecs: crate::display::video::VideoCodecs) {
        self.push(Command::SetVideoCodecs(codecs));
    }

    /// Changes when photographic images go as JPEG, from the next image on
    /// (`spice_server_set_jpeg_compression`; see
    /// [`crate::ServerBuilder::jpeg_compression`]).
    pub fn set_jpeg_compression(&self, setting: crate::display::compress::WanCompression) {
        self.push(Command::SetJpegCompression(setting));
    }

    /// Changes when GLZ images are deflated, from the next image on
    /// (`spice_server_set_zlib_glz_compression`; see
    /// [`crate::ServerBuilder::zlib_glz_compression`]).
    pub fn set_zlib_glz_compression(&self, setting: crate::display::compress::WanCompression) {
        self.push(Command::SetZlibGlzCompression(setting));
    }

    /// The agent's device has data to read or room to write.
    pub fn agent_wakeup(&self) {
        self.push(Command::AgentWakeup);
    }

    /// Serves a char device on a usbredir, port or webdav channel (the C
    /// API's char device instances of subtype `usbredir` and `port`), with
    /// the lowest channel id its channel type has free; a connected client
    /// is told about the new channel. The device is read only while a client
    /// is linked and keeps up; it hears `state(true)` when a client links the
    /// channel and `state(false)` when it leaves, and a port's client events
    /// come to its `event`.
    pub fn add_vmc_device(
        &self,
        kind: crate::vdi::VmcKind,
        device: Box<dyn crate::vdi::CharDevice + Send>,
    ) -> crate::vdi::VmcDeviceId {
        let id = crate::vdi::VmcDeviceId(self.shared.next_vmc_device.fetch_add(1, Ordering::Relaxed) + 1);
        self.push(Command::AddVmcDevice(id, kind, device));
        id
    }

    /// Stops serving a char device; a linked client's channel is closed.
    pub fn remove_vmc_device(&self, id: crate::vdi::VmcDeviceId) {
        self.push(Command::RemoveVmcDevice(id));
    }

    /// The char device has data to read or room to write
    /// (`spice_server_char_device_wakeup`).
    pub fn vmc_wakeup(&self, id: crate::vdi::VmcDeviceId) {
        self.push(Command::VmcWakeup(id));
    }

    /// The guest opened or closed the device's port
    /// (`spice_server_port_event`, a `spice_proto::msg::spicevmc::port_event`
    /// value): a linked client gets `PORT_EVENT`, the next one `PORT_INIT`
    /// with the port's state.
    pub fn port_event(&self, id: crate::vdi::VmcDeviceId, event: u8) {
        self.push(Command::VmcPortEvent(id, event));
    }

    /// Adds (or with `None` removes) audio capture while the server runs.
    pub fn set_record(&self, record: Option<crate::audio::RecordHandle>) {
        self.push(Command::SetRecord(record));
    }

    /// Removes a display; its clients' display and cursor channels are closed.
    pub fn remove_display(&self, id: u8) {
        self.push(Command::RemoveDisplay(id));
    }

    /// Sets who hears about migrations (the C API's `SpiceMigrateInterface`).
    pub fn set_migration_host(&self, host: Option<Box<dyn crate::server::migration::MigrationHost>>) {
        self.push(Command::SetMigrationHost(host));
    }

    /// Allows seamless migration (`spice_server_set_seamless_migration`,
    /// QEMU's `seamless-migration=on`): a client that can is told
    /// `MIGRATE_BEGIN_SEAMLESS`, and at the end each of its channels moves
    /// with its state, instead of reconnecting on `MIGRATE_END`. Off by
    /// default, as in C; a destination takes it whatever this says.
    pub fn set_seamless_migration(&self, enable: bool) {
        self.push(Command::SetSeamlessMigration(enable));
    }

    /// Names the migration destination (`spice_server_migrate_info`);
    /// nothing is sent to clients yet.
    pub fn migrate_info(&self, target: crate::MigrationTarget) {
        self.push(Command::MigrateInfo(target));
    }

    /// Names the destination and tells clients with semi-seamless migration
    /// to connect to it (`MIGRATE_BEGIN`); the migration host's
    /// `connect_complete` follows once they answered, left or took 10 s
    /// (`spice_server_migrate_connect`).
    pub fn migrate_connect(&self, target: crate::MigrationTarget) {
        self.push(Command::MigrateConnect(target));
    }

    /// The migration is over (`spice_server_migrate_end`): clients that
    /// reached the destination are told `MIGRATE_END` (or `MIGRATE_CANCEL`
    /// if it failed), others `SWITCH_HOST` if it succeeded; the migration
    /// host's `end_complete` follows.
    pub fn migrate_end(&self, completed: bool) {
        self.push(Command::MigrateEnd(completed));
    }

    /// What the server has sent and received for each connected client, per
    /// channel (see [`ServerStats`](crate::ServerStats)); cheap, from any thread.
    pub fn stats(&self) -> crate::ServerStats {
        self.shared.metrics.snapshot()
    }

    /// Disconnects every client.
    pub fn disconnect_clients(&self) {
        self.push(Command::DisconnectClients);
    }

    /// A display thread closed one of its channels.
    pub(crate) fn display_channel_closed(&self, link_id: u64) {
        self.push(Command::DisplayChannelClosed(link_id));
    }
}
