//! The opaque `SpiceServer` handed to C: configuration gathered before
//! `spice_server_init`, then the running Rust server.

use std::cell::{RefCell, RefMut};
use std::rc::Rc;
use std::thread::ThreadId;
use std::time::Duration;

use spice_server::{Auth, Config, Server, ServerBuilder, ServerHandle};

use crate::core_adapter::CCore;

/// What may only be touched on the thread that created the server (QEMU's main
/// thread): the running server is single-threaded by design.
pub(crate) struct MainState {
    pub(crate) builder: Option<ServerBuilder>,
    pub(crate) server: Option<Server>,
    pub(crate) config: Config,
    /// `-1` until `spice_server_set_port`: the C server listens only when a port is set.
    pub(crate) port: i32,
    pub(crate) addr: Option<String>,
    /// `spice_server_set_addr` came with `SPICE_ADDR_FLAG_UNIX_ONLY`: `addr`
    /// is a Unix socket path, listened on whatever the port.
    pub(crate) unix: bool,
    pub(crate) image_compression: u32,
    /// Why the last `spice_server_set_tls` was refused: `spice_server_init`
    /// fails then, as the C server's (QEMU ignores set_tls's return value).
    pub(crate) tls_error: Option<String>,
    /// `spice_server_set_video_codecs`' list, kept for video streaming.
    pub(crate) video_codecs: Vec<crate::video_codecs::VideoCodec>,
    /// A duplicate of `spice_server_set_listen_socket_fd`'s socket: used
    /// instead of opening one, as the C server; the caller's own descriptor
    /// is never closed.
    pub(crate) listen_socket: Option<std::os::fd::OwnedFd>,
}

/// `SpiceServer`.
pub struct CServer {
    /// QXL instances, for `vm_start`/`vm_stop`.
    qxl: std::sync::Mutex<Vec<std::sync::Arc<crate::qxl::QxlDevice>>>,
    /// A vdagent port is attached (only one may be).
    pub(crate) agent_port: std::sync::atomic::AtomicBool,
    /// A migration interface is added (only one may be).
    pub(crate) migration_interface: std::sync::atomic::AtomicBool,
    /// Whether the VM runs; QXL workers poll their rings only while it does.
    vm_running: std::sync::atomic::AtomicBool,
    /// Thread-safe requests, usable from any thread (vCPU threads call `kbd_leds`).
    pub(crate) handle: ServerHandle,
    main_thread: ThreadId,
    main: RefCell<MainState>,
}

impl CServer {
    pub(crate) fn new() -> Self {
        let builder = ServerBuilder::new();
        let handle = builder.handle();
        let config = Config {
            // Ticketing is on by default with no password, which refuses every client
            // until the host sets a ticket or turns authentication off.
            auth: Auth::Password {
                password: String::new(),
                lifetime: None,
            },
            // MJPEG frames and JPEG images through the system's libjpeg-turbo, as the C server.
            jpeg_encoder: crate::jpeg::LIBJPEG,
            ..Config::default()
        };
        Self {
            qxl: std::sync::Mutex::new(Vec::new()),
            // Stopped until `spice_server_vm_start`: QEMU adds its devices before the
            // VM runs, and its QXL device must not be called until then.
            vm_running: std::sync::atomic::AtomicBool::new(false),
            agent_port: std::sync::atomic::AtomicBool::new(false),
            migration_interface: std::sync::atomic::AtomicBool::new(false),
            handle,
            main_thread: std::thread::current().id(),
            main: RefCell::new(MainState {
                builder: Some(builder),
                server: None,
                config,
                port: -1,
                addr: None,
                unix: false,
                image_compression: 2, // SPICE_IMAGE_COMPRESSION_AUTO_GLZ, the C default
                tls_error: None,
                video_codecs: crate::video_codecs::DEFAULT.to_vec(),
                listen_socket: None,
            }),
        }
    }

    /// The main-thread state, or `None` (logged) when called from another thread
    /// or re-entrantly.
    pub(crate) fn main(&self, entry: &'static str) -> Option<RefMut<'_, MainState>> {
        if std::thread::current().id() != self.main_thread {
            tracing::error!(entry, "called off the thread that created the server; ignored");
            return None;
        }
        match self.main.try_borrow_mut() {
            Ok(m) => Some(m),
            Err(_) => {
                tracing::error!(entry, "called re-entrantly; ignored");
                None
            }
        }
    }

    /// The main-thread state if this is the main thread and it is free; no log otherwise.
    pub(crate) fn try_main(&self) -> Option<RefMut<'_, MainState>> {
        if std::thread::current().id() != self.main_thread {
            return None;
        }
        self.main.try_borrow_mut().ok()
    }

    /// The attached QXL devices.
    pub(crate) fn qxl_devices(
        &self,
    ) -> std::sync::MutexGuard<'_, Vec<std::sync::Arc<crate::qxl::QxlDevice>>> {
        self.qxl.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn vm_running(&self) -> bool {
        self.vm_running.load(std::sync::atomic::Ordering::Acquire)
    }

    /// `spice_server_vm_start` / `vm_stop`: QXL workers start or stop pulling
    /// commands; stopping waits until what was queued is drawn.
    pub(crate) fn set_vm_running(&self, running: bool) {
        tracing::debug!(running, "VM run state");
        self.vm_running
            .store(running, std::sync::atomic::Ordering::Release);
        let devices: Vec<_> = self.qxl_devices().clone();
        for device in devices {
            device.set_running(running);
        }
    }
}

impl MainState {
    /// Starts the Rust server on the host's core.
    pub(crate) fn start(&mut self, core: CCore) -> Result<(), String> {
        if let Some(e) = &self.tls_error {
            return Err(format!("TLS was refused: {e}"));
        }
        let Some(mut builder) = self.builder.take() else {
            return Err("already initialised".into());
        };
        if let Some(fd) = self.listen_socket.take() {
            builder = builder.listen_socket(listener_from_fd(fd)?);
        }
        let mut config = self.config.clone();
        if self.unix {
            // As the C server: a Unix path is listened on with or without a
            // port, and the TLS port is left out (see `Config::unix_path`).
            let path = self.addr.as_deref().filter(|a| !a.is_empty());
            let Some(path) = path else {
                return Err("a unix socket needs a path (spice_server_set_addr)".into());
            };
            config.unix_path = Some(path.into());
            config.listen = true;
            let core: Rc<dyn spice_server::Core> = Rc::new(core);
            let server = builder.config(config).start_on(core).map_err(|e| e.to_string())?;
            self.server = Some(server);
            return Ok(());
        }
        config.listen = self.port >= 0;
        config.port =
            u16::try_from(self.port.max(0)).map_err(|_| format!("port {} out of range", self.port))?;
        if let Some(addr) = self.addr.as_deref().filter(|a| !a.is_empty()) {
            config.addr = resolve(addr, config.port)?;
        } else if config.listen || config.tls.is_some() {
            // The C server listens on every address when none is given.
            config.addr = std::net::IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED);
        }
        let core: Rc<dyn spice_server::Core> = Rc::new(core);
        let server = builder.config(config).start_on(core).map_err(|e| e.to_string())?;
        self.server = Some(server);
        Ok(())
    }
}

/// The host's listening socket as TCP or Unix, from its address family.
fn listener_from_fd(fd: std::os::fd::OwnedFd) -> Result<spice_server::Listener, String> {
    use std::os::fd::AsRawFd;
    // SAFETY: an all-zero sockaddr_storage is a valid value of the plain C struct.
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `addr` and `len` are valid for writes and `len` holds `addr`'s size.
    let rc = unsafe { libc::getsockname(fd.as_raw_fd(), std::ptr::addr_of_mut!(addr).cast(), &mut len) };
    if rc != 0 {
        return Err(format!(
            "the listening socket's address: {}",
            std::io::Error::last_os_error()
        ));
    }
    match i32::from(addr.ss_family) {
        libc::AF_UNIX => Ok(std::os::unix::net::UnixListener::from(fd).into()),
        libc::AF_INET | libc::AF_INET6 => Ok(std::net::TcpListener::from(fd).into()),
        family => Err(format!(
            "the listening socket is neither TCP nor a Unix socket (family {family})"
        )),
    }
}

fn resolve(addr: &str, port: u16) -> Result<std::net::IpAddr, String> {
    if let Ok(ip) = addr.parse() {
        return Ok(ip);
    }
    use std::net::ToSocketAddrs;
    (addr, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {addr}: {e}"))?
        .next()
        .map(|a| a.ip())
        .ok_or_else(|| format!("{addr} has no address"))
}

/// A password lifetime in seconds as `spice_server_set_ticket` takes it (0 = forever).
pub(crate) fn lifetime(seconds: i32) -> Option<Duration> {
    (seconds > 0).then(|| Duration::from_secs(seconds as u64))
}
