//! Server configuration and the builder that assembles a server.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use crate::audio::{PlaybackHandle, RecordHandle};
use crate::core::Core;
use crate::display::DisplayHandle;
use crate::error::ServerError;
use crate::handle::ServerHandle;
use crate::runtime::RunningServer;
use crate::server::Server;
use crate::vdi::{Keyboard, Mouse, Tablet};

/// How clients authenticate.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// Any client may connect (`disable-ticketing`).
    None,
    /// Clients must present this password as a SPICE ticket.
    Password {
        /// At most 60 bytes.
        password: String,
        /// The password stops working this long after the server starts; `None` = never.
        lifetime: Option<Duration>,
    },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Password { lifetime, .. } => f
                .debug_struct("Password")
                .field("password", &"..")
                .field("lifetime", lifetime)
                .finish(),
        }
    }
}

/// Everything the server needs besides its devices.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on; loopback by default.
    pub addr: IpAddr,
    /// Port to listen on; 0 picks a free one (see [`Server::local_addr`]).
    pub port: u16,
    /// Whether to listen at all. Without a listening socket, clients arrive
    /// only through [`crate::ServerHandle::add_client`].
    pub listen: bool,
    /// Listen on a Unix stream socket at this path instead of
    /// [`Self::addr`]/[`Self::port`] (QEMU's `-spice unix=on,addr=PATH`); a
    /// socket left there by an earlier run is replaced, and a path starting
    /// with `@` names a Linux abstract socket. No TLS port is opened with it.
    pub unix_path: Option<std::path::PathBuf>,
    /// Authentication mode.
    pub auth: Auth,
    /// VM name shown by clients.
    pub name: Option<String>,
    /// VM UUID shown by clients.
    pub uuid: Option<[u8; 16]>,
    /// A client that has not finished linking after this long is dropped.
    pub link_timeout: Duration,
    /// How images are compressed for clients (QEMU's `image-compression`).
    pub image_compression: crate::display::compress::ImageCompression,
    /// When photographic images go as lossy JPEG instead of QUIC (QEMU's
    /// `jpeg-wan-compression`; default [`WanCompression::Auto`]).
    ///
    /// [`WanCompression::Auto`]: crate::WanCompression::Auto
    pub jpeg_compression: crate::display::compress::WanCompression,
    /// When GLZ images are deflated with zlib (QEMU's
    /// `zlib-glz-wan-compression`; default [`WanCompression::Auto`]).
    ///
    /// [`WanCompression::Auto`]: crate::WanCompression::Auto
    pub zlib_glz_compression: crate::display::compress::WanCompression,
    /// In client mouse mode, move the pointer through the guest agent when one
    /// is attached (instead of the tablet); as QEMU's `agent-mouse=on`.
    pub agent_mouse: bool,
    /// Send playback as Opus to clients that decode it (default on, as the C
    /// server's `spice_server_set_playback_compression` and QEMU's
    /// `playback-compression`); raw PCM otherwise. Changed while running with
    /// [`crate::ServerHandle::set_playback_compression`].
    pub playback_compression: bool,
    /// What a client may cost: queued output, links in progress, password
    /// attempts (see `SECURITY.md`).
    pub limits: crate::limits::Limits,
    /// The TLS port's certificate and key; `None`: no TLS port.
    pub tls: Option<crate::tls::TlsConfig>,
    /// Port of the TLS listener (on [`Self::addr`]); 0 picks a free one.
    pub tls_port: u16,
    /// Which channels must come over TLS, or over plain TCP.
    pub security: crate::tls::SecurityPolicy,
    /// SASL authentication instead of the password ticket (see
    /// [`crate::sasl`]); `None`: the ticket, as [`Self::auth`] says.
    pub sasl: Option<crate::sasl::SaslConfig>,
    /// When areas of a display that keep changing go to clients as a lossy
    /// MJPEG video stream (QEMU's `streaming-video`; default
    /// [`StreamingVideo::Filter`], as the C server's).
    ///
    /// [`StreamingVideo::Filter`]: crate::StreamingVideo::Filter
    pub streaming_video: crate::display::stream::StreamingVideo,
    /// The stream codecs, best first (`spice_server_set_video_codecs`;
    /// default as the C server's: MJPEG, H.264, VP8, VP9, so MJPEG unless
    /// a client prefers another). VP8, VP9 and H.264 need the `gstreamer`
    /// feature and a client that decodes them; MJPEG is every client's
    /// fallback.
    pub video_codecs: crate::display::video::VideoCodecs,
    /// The JPEG encoder of MJPEG stream frames and of JPEG images on slow
    /// links ([`Self::jpeg_compression`]); default: `spice-codec`'s own,
    /// pure Rust; the C ABI plugs in the system's libjpeg-turbo.
    pub jpeg_encoder: spice_codec::jpeg::JpegEncoder,
    /// Serve several clients at once (the C server's `SPICE_DEBUG_ALLOW_MC`;
    /// off by default, as there). Off, a client that connects replaces the
    /// one connected. On, each gets the whole display, cursor and playback,
    /// with its own image cache, codecs and queues, and every client's
    /// inputs reach the host; the guest agent, the record channel and each
    /// char device serve one client at a time (see ARCHITECTURE.md).
    pub allow_multiple_clients: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 5900,
            listen: true,
            unix_path: None,
            auth: Auth::None,
            name: None,
            uuid: None,
            link_timeout: Duration::from_secs(10),
            agent_mouse: true,
            playback_compression: true,
            limits: crate::limits::Limits::default(),
            image_compression: crate::display::compress::ImageCompression::default(),
            jpeg_compression: crate::display::compress::WanCompression::default(),
            zlib_glz_compression: crate::display::compress::WanCompression::default(),
            tls: None,
            tls_port: 0,
            security: crate::tls::SecurityPolicy::default(),
            sasl: None,
            streaming_video: crate::display::stream::StreamingVideo::default(),
            video_codecs: crate::display::video::VideoCodecs::default(),
            jpeg_encoder: spice_codec::jpeg::JpegEncoder::default(),
            allow_multiple_clients: false,
        }
    }
}

/// The host's devices, moved into the server's main context.
#[derive(Default)]
pub(crate) struct Devices {
    pub(crate) keyboard: Option<Box<dyn Keyboard + Send>>,
    pub(crate) mouse: Option<Box<dyn Mouse + Send>>,
    pub(crate) tablet: Option<Box<dyn Tablet + Send>>,
    /// Displays by channel id.
    pub(crate) displays: std::collections::BTreeMap<u8, DisplayHandle>,
    pub(crate) playback: Option<PlaybackHandle>,
    pub(crate) record: Option<RecordHandle>,
    pub(crate) agent: Option<Box<dyn crate::vdi::CharDevice + Send>>,
    /// A listening socket the host opened, used instead of making one.
    pub(crate) listen_socket: Option<crate::socket::Listener>,
}

/// Assembles a server: address, authentication, identity and devices.
///
/// ```no_run
/// use spice_server::{DisplayHandle, ServerBuilder};
///
/// let display = DisplayHandle::new();
/// let server = ServerBuilder::new()
///     .port(5900)
///     .name("my-vm")
///     .display(display.clone())
///     .spawn()
///     .expect("server starts");
/// println!("listening on {}", server.local_addr());
/// ```
#[derive(Default)]
pub struct ServerBuilder {
    config: Config,
    devices: Devices,
    handle: ServerHandle,
}

impl std::fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ServerBuilder {
    /// A builder with defaults: 127.0.0.1:5900, no authentication.
    pub fn new() -> Self {
        Self::default()
    }

    /// Listen address.
    pub fn addr(mut self, addr: IpAddr) -> Self {
        self.config.addr = addr;
        self
    }

    /// Listen port; 0 picks a free one.
    pub fn port(mut self, port: u16) -> Self {
        self.config.port = port;
        self
    }

    /// Opens no listening socket; clients are handed over with
    /// [`crate::ServerHandle::add_client`] (QEMU's local-only mode).
    pub fn no_listen(mut self) -> Self {
        self.config.listen = false;
        self
    }

    /// Listens on a Unix stream socket at `path` instead of TCP (see
    /// [`Config::unix_path`]).
    pub fn listen_unix(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.config.unix_path = Some(path.into());
        self.config.listen = true;
        self
    }

    /// Accepts clients on a socket the host already made listen (TCP or
    /// Unix), instead of opening one from [`Config::addr`]/[`Config::port`]
    /// or [`Config::unix_path`]: the C API's
    /// `spice_server_set_listen_socket_fd`, for hosts that are handed their
    /// socket (systemd socket activation, a privileged parent). It is used
    /// whatever [`Config::listen`] says; the TLS port, if any, is still
    /// opened by the server.
    pub fn listen_socket(mut self, socket: impl Into<crate::socket::Listener>) -> Self {
        self.devices.listen_socket = Some(socket.into());
        self
    }

    /// Listen address and port together.
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.config.addr = addr.ip();
        self.config.port = addr.port();
        self
    }

    /// When areas that keep changing go as a lossy video stream (see
    /// [`Config::streaming_video`]).
    pub fn streaming_video(mut self, mode: crate::display::stream::StreamingVideo) -> Self {
        self.config.streaming_video = mode;
        self
    }

    /// The video stream codecs, best first (see [`Config::video_codecs`]).
    pub fn video_codecs(mut self, codecs: &[crate::display::video::VideoCodec]) -> Self {
        self.config.video_codecs = crate::display::video::VideoCodecs::new(codecs);
        self
    }

    /// The JPEG encoder for MJPEG stream frames and JPEG images (see
    /// [`Config::jpeg_encoder`]): a host that links a faster one, such as
    /// libjpeg-turbo, wraps it in a [`crate::jpeg::JpegEncoder`].
    pub fn jpeg_encoder(mut self, encoder: crate::jpeg::JpegEncoder) -> Self {
        self.config.jpeg_encoder = encoder;
        self
    }

    /// Serve several clients at once (see [`Config::allow_multiple_clients`]).
    pub fn allow_multiple_clients(mut self, allow: bool) -> Self {
        self.config.allow_multiple_clients = allow;
        self
    }

    /// Accept any client.
    pub fn no_auth(mut self) -> Self {
        self.config.auth = Auth::None;
        self
    }

    /// Require a password (a SPICE ticket). An empty password refuses every
    /// client, like the C server's default of ticketing without a ticket.
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.config.auth = Auth::Password {
            password: password.into(),
            lifetime: None,
        };
        self
    }

    /// Require a password that expires `lifetime` after the server starts.
    pub fn password_with_lifetime(mut self, password: impl Into<String>, lifetime: Duration) -> Self {
        self.config.auth = Auth::Password {
            password: password.into(),
            lifetime: Some(lifetime),
        };
        self
    }

    /// VM name sent to clients.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.config.name = Some(name.into());
        self
    }

    /// VM UUID sent to clients.
    pub fn uuid(mut self, uuid: [u8; 16]) -> Self {
        self.config.uuid = Some(uuid);
        self
    }

    /// How long a client may take to link before it is dropped.
    pub fn link_timeout(mut self, timeout: Duration) -> Self {
        self.config.link_timeout = timeout;
        self
    }

    /// Limits on what clients may cost the server (defaults in
    /// [`crate::Limits`] and `SECURITY.md`).
    pub fn limits(mut self, limits: crate::limits::Limits) -> Self {
        self.config.limits = limits;
        self
    }

    /// A handle on the server this builder will start. Requests made through it
    /// before the server starts are carried out once it does, so a device can
    /// be given a handle (to report keyboard LEDs, say) before it is added.
    pub fn handle(&self) -> ServerHandle {
        self.handle.clone()
    }

    /// How images are compressed (default: [`crate::ImageCompression::AutoGlz`]).
    pub fn image_compression(mut self, compression: crate::display::compress::ImageCompression) -> Self {
        self.config.image_compression = compression;
        self
    }

    /// When images the policy would send as QUIC (photographic ones) go as
    /// lossy JPEG at the C server's quality instead
    /// (`spice_server_set_jpeg_compression`; default
    /// [`WanCompression::Auto`]: only for clients on a low-bandwidth link).
    ///
    /// JPEG is decoded by every client (spice-gtk and spice-html5). It is
    /// lossy: what the client shows is close to, not equal to, the host's
    /// pixels until that area is drawn again. Only updates go lossy: the
    /// whole picture a client gets when it connects (or the surface changes
    /// size) is lossless, as the C server sends it.
    ///
    /// [`WanCompression::Auto`]: crate::WanCompression::Auto
    pub fn jpeg_compression(mut self, setting: crate::display::compress::WanCompression) -> Self {
        self.config.jpeg_compression = setting;
        self
    }

    /// When GLZ images are deflated with zlib as ZLIB_GLZ_RGB, which costs
    /// server CPU for fewer bytes (`spice_server_set_zlib_glz_compression`;
    /// default [`WanCompression::Auto`]: only for clients on a low-bandwidth
    /// link). Applies only where GLZ is used (clients with a GLZ window, such
    /// as spice-gtk), and only to images that deflate makes smaller.
    ///
    /// [`WanCompression::Auto`]: crate::WanCompression::Auto
    pub fn zlib_glz_compression(mut self, setting: crate::display::compress::WanCompression) -> Self {
        self.config.zlib_glz_compression = setting;
        self
    }

    /// Whether the guest agent moves the pointer in client mouse mode (default on).
    pub fn agent_mouse(mut self, enabled: bool) -> Self {
        self.config.agent_mouse = enabled;
        self
    }

    /// Also listens for TLS clients on `port` (0 picks a free one, see
    /// [`Server::tls_local_addr`]) with this certificate and key
    /// ([`crate::TlsConfig::from_pem_files`]). Clients are moved between the
    /// ports by [`Self::channel_security`].
    pub fn tls(mut self, port: u16, tls: crate::tls::TlsConfig) -> Self {
        self.config.tls = Some(tls);
        self.config.tls_port = port;
        self
    }

    /// Which channels must come over TLS or over plain TCP (default: either).
    /// A plain link to a TLS-only channel is answered `NEED_SECURED`, which
    /// sends the client to the TLS port, and the reverse `NEED_UNSECURED`.
    pub fn channel_security(mut self, policy: crate::tls::SecurityPolicy) -> Self {
        self.config.security = policy;
        self
    }

    /// Authenticates clients through SASL (the C API's
    /// `spice_server_set_sasl`): the link reply offers `AUTH_SASL` instead of
    /// the ticket, and `sasl` runs the mechanisms. Clients the host hands
    /// over with authentication waived still use the ticket.
    pub fn sasl(mut self, sasl: impl crate::sasl::SaslServer + 'static) -> Self {
        self.config.sasl = Some(crate::sasl::SaslConfig::new(sasl));
        self
    }

    /// Replaces the whole configuration.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Adds the keyboard.
    pub fn keyboard(mut self, keyboard: impl Keyboard + Send + 'static) -> Self {
        self.devices.keyboard = Some(Box::new(keyboard));
        self
    }

    /// Adds the relative mouse (server mouse mode).
    pub fn mouse(mut self, mouse: impl Mouse + Send + 'static) -> Self {
        self.devices.mouse = Some(Box::new(mouse));
        self
    }

    /// Adds the tablet, which enables client mouse mode.
    pub fn tablet(mut self, tablet: impl Tablet + Send + 'static) -> Self {
        self.devices.tablet = Some(Box::new(tablet));
        self
    }

    /// Adds the display the host will drive through `display`, as display 0.
    pub fn display(self, display: DisplayHandle) -> Self {
        self.display_with_id(0, display)
    }

    /// Adds a display with channel id `id` (a second monitor, for instance).
    pub fn display_with_id(mut self, id: u8, display: DisplayHandle) -> Self {
        self.devices.displays.insert(id, display);
        self
    }

    /// Attaches the guest agent's port (a virtio-serial channel to spice-vdagent).
    pub fn agent(mut self, agent: impl crate::vdi::CharDevice + Send + 'static) -> Self {
        self.devices.agent = Some(Box::new(agent));
        self
    }

    /// Adds audio playback the host will drive through `playback`; clients
    /// are offered a playback channel.
    pub fn playback(mut self, playback: PlaybackHandle) -> Self {
        self.devices.playback = Some(playback);
        self
    }

    /// Whether playback goes as Opus to clients that decode it (default on);
    /// see [`Config::playback_compression`]. Recording is in Opus whenever
    /// the client chooses it, whatever this says, as in the C server.
    pub fn playback_compression(mut self, enabled: bool) -> Self {
        self.config.playback_compression = enabled;
        self
    }

    /// Adds audio capture the host will read through `record`; clients are
    /// offered a record channel.
    pub fn record(mut self, record: RecordHandle) -> Self {
        self.devices.record = Some(record);
        self
    }

    fn validate(&self) -> Result<(), ServerError> {
        if let Auth::Password { password, .. } = &self.config.auth {
            if password.len() > spice_proto::consts::MAX_PASSWORD_LENGTH {
                return Err(ServerError::PasswordTooLong(password.len()));
            }
        }
        Ok(())
    }

    /// Starts the server on the host's event loop. Everything runs inside `core`
    /// callbacks on the calling thread; the returned [`Server`] stops it when dropped.
    pub fn start_on(self, core: Rc<dyn Core>) -> Result<Server, ServerError> {
        self.validate()?;
        Server::start(core, self.config, self.devices, self.handle)
    }

    /// Starts the server on its own thread with the built-in event loop.
    pub fn spawn(self) -> Result<RunningServer, ServerError> {
        self.validate()?;
        RunningServer::spawn(self.config, self.devices, self.handle)
    }
}
