//! `spice-server.h`: creation, configuration and lifecycle.

use std::ffi::{c_char, c_int, CString};
use std::os::fd::FromRawFd;

use spice_server::Auth;

use super::server_ref;
use crate::core_adapter::CCore;
use crate::ffi::SpiceCoreInterface;
use crate::guard::{c_str, guard, init_logging};
use crate::server::{lifetime, CServer};

/// `SPICE_COMPAT_VERSION_0_6`, the only version this server speaks.
const COMPAT_VERSION_0_6: c_int = 1;
/// `SPICE_ADDR_FLAG_UNIX_ONLY`.
const ADDR_FLAG_UNIX_ONLY: c_int = 1 << 2;
/// Image compression values accepted by `spice_server_set_image_compression`.
const IMAGE_COMPRESSION_OFF: c_int = 1;
const IMAGE_COMPRESSION_LZ4: c_int = 7;

#[no_mangle]
pub extern "C" fn spice_get_current_compat_version() -> c_int {
    COMPAT_VERSION_0_6
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_set_compat_version(s: *mut CServer, version: c_int) -> c_int {
    guard("spice_server_set_compat_version", -1, || {
        // SAFETY: `s` comes from spice_server_new (spice.h contract).
        if unsafe { server_ref(s) }.is_none() {
            return -1;
        }
        if version == COMPAT_VERSION_0_6 {
            0
        } else {
            tracing::warn!(version, "only compat version 0.6 is supported");
            -1
        }
    })
}

#[no_mangle]
pub extern "C" fn spice_server_new() -> *mut CServer {
    guard("spice_server_new", std::ptr::null_mut(), || {
        init_logging();
        Box::into_raw(Box::new(CServer::new()))
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_init(s: *mut CServer, core: *mut SpiceCoreInterface) -> c_int {
    guard("spice_server_init", -1, || {
        // SAFETY: `s` comes from spice_server_new.
        let Some(server) = (unsafe { server_ref(s) }) else {
            return -1;
        };
        if core.is_null() {
            tracing::error!("spice_server_init without a core interface");
            return -1;
        }
        // SAFETY: non-null; the host keeps its core interface alive (spice.h contract).
        let major = unsafe { (*core).base.major_version };
        if major != 1 {
            tracing::error!(major, "unsupported core interface version");
            return -1;
        }
        let Some(mut main) = server.main("spice_server_init") else {
            return -1;
        };
        // As the C server: several clients at once only when asked for
        // through the environment (the C API has no call for it).
        if std::env::var_os("SPICE_DEBUG_ALLOW_MC").is_some() {
            tracing::warn!("allowing multiple client connections");
            main.config.allow_multiple_clients = true;
        }
        if main.config.sasl.is_some() {
            if let Err(e) = crate::sasl::init() {
                tracing::error!(error = %e, "spice server failed to start");
                return -1;
            }
        }
        // SAFETY: `core` is valid for the server's lifetime, as above.
        let core = unsafe { CCore::new(core) };
        match main.start(core) {
            Ok(()) => 0,
            Err(e) => {
                tracing::error!(error = %e, "spice server failed to start");
                -1
            }
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_destroy(s: *mut CServer) {
    guard("spice_server_destroy", (), || {
        if s.is_null() {
            return;
        }
        // SAFETY: `s` came from Box::into_raw in spice_server_new and is destroyed once.
        let server = unsafe { Box::from_raw(s) };
        // QXL workers call into the host: stop them even if the host never
        // removed their interfaces.
        for device in server.qxl_devices().drain(..) {
            device.stop();
        }
        if let Some(mut main) = server.main("spice_server_destroy") {
            // Stop serving before the core interface (owned by the host) goes away.
            main.server.take();
        }
        drop(server);
    })
}

/// Applies `f` to the configuration before init, or reports that it is too late.
fn configure(
    s: *mut CServer,
    entry: &'static str,
    f: impl FnOnce(&mut crate::server::MainState) -> c_int,
) -> c_int {
    // SAFETY: `s` comes from spice_server_new (spice.h contract).
    let Some(server) = (unsafe { server_ref(s) }) else {
        return -1;
    };
    let Some(mut main) = server.main(entry) else {
        return -1;
    };
    f(&mut main)
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_set_port(s: *mut CServer, port: c_int) -> c_int {
    guard("spice_server_set_port", -1, || {
        configure(s, "spice_server_set_port", |m| {
            if !(0..=65535).contains(&port) {
                tracing::error!(port, "port out of range");
                return -1;
            }
            m.port = port;
            0
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_set_addr(s: *mut CServer, addr: *const c_char, flags: c_int) {
    guard("spice_server_set_addr", (), || {
        // SAFETY: NULL or a NUL-terminated string (spice.h contract).
        let addr = unsafe { c_str(addr) }.map(str::to_owned);
        configure(s, "spice_server_set_addr", |m| {
            // As the C server: exactly UNIX_ONLY selects a Unix path; the
            // IPv4/IPv6-only flags are not honoured (the address picks the family).
            m.unix = flags == ADDR_FLAG_UNIX_ONLY;
            m.addr = addr;
            0
        });
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_set_listen_socket_fd(s: *mut CServer, listen_fd: c_int) -> c_int {
    guard("spice_server_set_listen_socket_fd", -1, || {
        configure(s, "spice_server_set_listen_socket_fd", |m| {
            // -1, as the C server's initial value, means "none".
            if listen_fd < 0 {
                m.listen_socket = None;
                return 0;
            }
            // A duplicate, so the caller's descriptor stays theirs to close.
            // SAFETY: fcntl with F_DUPFD_CLOEXEC reads no memory; an invalid
            // descriptor only makes it fail with EBADF.
            let dup = unsafe { libc::fcntl(listen_fd, libc::F_DUPFD_CLOEXEC, 0) };
            if dup < 0 {
                let err = std::io::Error::last_os_error();
                tracing::error!(listen_fd, %err, "cannot use the listening socket");
                return -1;
            }
            // SAFETY: `dup` is a descriptor fcntl just created for us alone.
            m.listen_socket = Some(unsafe { std::os::fd::OwnedFd::from_raw_fd(dup) });
            0
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_set_exit_on_disconnect(s: *mut CServer, flag: c_int) -> c_int {
    guard("spice_server_set_exit_on_disconnect", -1, || {
        configure(s, "spice_server_set_exit_on_disconnect", |_| {
            if flag != 0 {
                tracing::warn!("exit-on-disconnect is not supported");
            }
            0
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_set_noauth(s: *mut CServer) -> c_int {
    guard("spice_server_set_noauth", -1, || {
        configure(s, "spice_server_set_noauth", |m| {
            m.config.auth = Auth::None;
            if let Some(server) = &m.server {
                server.handle().set_auth(Auth::None);
            }
            0
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_set_sasl(s: *mut CServer, enabled: c_int) -> c_int {
    guard("spice_server_set_sasl", -1, || {
        configure(s, "spice_server_set_sasl", |m| {
            // Cyrus SASL, set up at spice_server_init as in the C server.
            m.config.sasl =
                (enabled != 0).then(|| spice_server::sasl::SaslConfig::new(crate::sasl::CyrusSasl));
            0
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_set_sasl_appname(s: *mut CServer, appname: *const c_char) -> c_int {
    guard("spice_server_set_sasl_appname", -1, || {
        // SAFETY: NULL or a NUL-terminated string.
        let name = unsafe { c_str(appname) }.unwrap_or_default().to_owned();
        configure(s, "spice_server_set_sasl_appname", |_| {
            // Cyrus takes it once per process (it names `<appname>.conf`).
            crate::sasl::set_appname(&name);
            0
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_set_ticket(
    s: *mut CServer,
    passwd: *const c_char,
    lifetime_secs: c_int,
    fail_if_connected: c_int,
    disconnect_if_connected: c_int,
) -> c_int {
    guard("spice_server_set_ticket", -1, || {
        // SAFETY: `s` comes from spice_server_new.
        let Some(server) = (unsafe { server_ref(s) }) else {
            return -1;
        };
        // SAFETY: NULL or a NUL-terminated string.
        let password = unsafe { c_str(passwd) }.map(str::to_owned);
        if password
            .as_ref()
            .is_some_and(|p| p.len() > spice_proto::consts::MAX_PASSWORD_LENGTH)
        {
            tracing::error!("password longer than 60 bytes");
            return -1;
        }
        let Some(mut main) = server.main("spice_server_set_ticket") else {
            return -1;
        };
        let connected = main.server.as_ref().is_some_and(|srv| srv.client_count() > 0);
        if connected && fail_if_connected != 0 {
            return -1;
        }
        let auth = Auth::Password {
            password: password.clone().unwrap_or_default(),
            lifetime: lifetime(lifetime_secs),
        };
        main.config.auth = auth.clone();
        if let Some(srv) = &main.server {
            // NULL expires the ticket: nobody can link until a new one is set.
            if password.is_none() {
                srv.handle().expire_password();
            } else {
                srv.handle().set_auth(auth);
            }
            if connected && disconnect_if_connected != 0 {
                srv.handle().disconnect_clients();
            }
        }
        0
    })
}

/// Loads the TLS files at once (the C server reads them in
/// `spice_server_init`), so a file that cannot be used is named in the log
/// line; returns -1 then, and `spice_server_init` fails too, as the C
/// server's does (QEMU does not look at this function's return value). What rustls cannot do is refused the same way:
/// a cipher list that selects none of its suites, a key in OpenSSL's
/// traditional encrypted PEM form. DH parameters are checked and unused.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn spice_server_set_tls(
    s: *mut CServer,
    port: c_int,
    ca_cert_file: *const c_char,
    certs_file: *const c_char,
    private_key_file: *const c_char,
    key_passwd: *const c_char,
    dh_key_file: *const c_char,
    ciphersuite: *const c_char,
) -> c_int {
    guard("spice_server_set_tls", -1, || {
        // SAFETY: NULL or NUL-terminated strings (spice.h contract), as the three below.
        let (ca, cert, key) = unsafe { (c_str(ca_cert_file), c_str(certs_file), c_str(private_key_file)) };
        // SAFETY: as above.
        let (password, dh, ciphers) = unsafe { (c_str(key_passwd), c_str(dh_key_file), c_str(ciphersuite)) };
        let (Some(ca), Some(cert), Some(key)) = (ca, cert, key) else {
            tracing::error!("spice_server_set_tls needs the CA, certificate and key files");
            return -1;
        };
        let Ok(port) = u16::try_from(port) else {
            tracing::error!(port, "TLS port out of range");
            return -1;
        };
        if port == 0 {
            tracing::error!("spice_server_set_tls needs a TLS port");
            return -1;
        }
        let files = spice_server::TlsFiles {
            cert: cert.into(),
            key: key.into(),
            key_password: password.map(str::to_owned),
            ca: Some(ca.into()),
            dh_params: dh.filter(|d| !d.is_empty()).map(Into::into),
            ciphers: ciphers.map(str::to_owned),
        };
        configure(s, "spice_server_set_tls", |m| {
            if m.server.is_some() {
                tracing::error!("spice_server_set_tls after spice_server_init; ignored");
                return -1;
            }
            match files.load() {
                Ok(tls) => {
                    m.config.tls = Some(tls);
                    m.config.tls_port = port;
                    m.tls_error = None;
                    0
                }
                Err(e) => {
                    tracing::error!(error = %e, "TLS set-up refused");
                    m.tls_error = Some(e.to_string());
                    -1
                }
            }
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_add_client(s: *mut CServer, socket: c_int, skip_auth: c_int) -> c_int {
    guard("spice_server_add_client", -1, || {
        // SAFETY: `s` comes from spice_server_new.
        let Some(server) = (unsafe { server_ref(s) }) else {
            return -1;
        };
        if socket < 0 {
            return -1;
        }
        // SAFETY: the host hands over ownership of a connected socket (spice.h contract).
        let stream = unsafe { client_socket(socket) };
        server.handle.add_client(stream, skip_auth != 0);
        0
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_add_ssl_client(
    s: *mut CServer,
    socket: c_int,
    skip_auth: c_int,
) -> c_int {
    guard("spice_server_add_ssl_client", -1, || {
        // SAFETY: `s` comes from spice_server_new.
        let Some(server) = (unsafe { server_ref(s) }) else {
            return -1;
        };
        if socket < 0 {
            return -1;
        }
        let has_tls = server
            .main("spice_server_add_ssl_client")
            .is_some_and(|m| m.config.tls.is_some());
        if !has_tls {
            tracing::error!(
                socket,
                "TLS client handed over, but spice_server_set_tls was not called"
            );
            return -1;
        }
        // SAFETY: the host hands over ownership of a connected socket (spice.h contract).
        let stream = unsafe { client_socket(socket) };
        server.handle.add_tls_client(stream, skip_auth != 0);
        0
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_set_image_compression(s: *mut CServer, comp: c_int) -> c_int {
    guard("spice_server_set_image_compression", -1, || {
        configure(s, "spice_server_set_image_compression", |m| {
            if !(IMAGE_COMPRESSION_OFF..=IMAGE_COMPRESSION_LZ4).contains(&comp) {
                tracing::error!(comp, "invalid image compression");
                return -1;
            }
            let Some(setting) = spice_server::ImageCompression::from_wire(comp as u8) else {
                return -1;
            };
            m.image_compression = comp as u32;
            m.config.image_compression = setting;
            if let Some(server) = &m.server {
                server.handle().set_image_compression(setting);
            }
            0
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_get_image_compression(s: *mut CServer) -> c_int {
    guard("spice_server_get_image_compression", 0, || {
        // SAFETY: `s` comes from spice_server_new.
        let Some(server) = (unsafe { server_ref(s) }) else {
            return 0;
        };
        server
            .main("spice_server_get_image_compression")
            .map_or(0, |m| m.image_compression as c_int)
    })
}

/// `spice_wan_compression_t`: AUTO=1, ALWAYS=2, NEVER=3. The C server
/// refuses INVALID (0) with -1 and stores anything else (values past NEVER
/// then act as NEVER); we refuse those too, since no header names them.
/// Before the server starts the setting goes into its configuration; after,
/// it applies from the next image on (the C server keeps the value a display
/// channel saw when it connected).
fn wan_compression(
    entry: &'static str,
    s: *mut CServer,
    comp: c_int,
    set: fn(&mut spice_server::Config, Option<&spice_server::ServerHandle>, spice_server::WanCompression),
) -> c_int {
    configure(s, entry, |m| {
        let Some(setting) = u8::try_from(comp)
            .ok()
            .and_then(spice_server::WanCompression::from_wire)
        else {
            tracing::error!(entry, comp, "invalid wan compression");
            return -1;
        };
        tracing::debug!(entry, ?setting, "wan compression");
        let handle = m.server.as_ref().map(|server| server.handle());
        set(&mut m.config, handle.as_ref(), setting);
        0
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_set_jpeg_compression(s: *mut CServer, comp: c_int) -> c_int {
    guard("spice_server_set_jpeg_compression", -1, || {
        wan_compression(
            "spice_server_set_jpeg_compression",
            s,
            comp,
            |config, handle, setting| {
                config.jpeg_compression = setting;
                if let Some(handle) = handle {
                    handle.set_jpeg_compression(setting);
                }
            },
        )
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_set_zlib_glz_compression(s: *mut CServer, comp: c_int) -> c_int {
    guard("spice_server_set_zlib_glz_compression", -1, || {
        wan_compression(
            "spice_server_set_zlib_glz_compression",
            s,
            comp,
            |config, handle, setting| {
                config.zlib_glz_compression = setting;
                if let Some(handle) = handle {
                    handle.set_zlib_glz_compression(setting);
                }
            },
        )
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_set_channel_security(
    s: *mut CServer,
    channel: *const c_char,
    security: c_int,
) -> c_int {
    guard("spice_server_set_channel_security", -1, || {
        // SAFETY: NULL or a NUL-terminated string.
        let name = unsafe { c_str(channel) }.unwrap_or("default").to_owned();
        let named = !channel.is_null();
        configure(s, "spice_server_set_channel_security", |m| {
            let security = spice_server::Security::from_bits(security as u32);
            if !named {
                m.config.security.set_default(security);
            } else if let Err(e) = m.config.security.set_named(&name, security) {
                tracing::warn!(error = %e, "spice_server_set_channel_security");
                return -1;
            }
            // As in the C server, a change applies to links from now on.
            if let Some(server) = &m.server {
                server.handle().set_channel_security(m.config.security.clone());
            }
            0
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_add_renderer(s: *mut CServer, name: *const c_char) -> c_int {
    guard("spice_server_add_renderer", -1, || {
        // SAFETY: NULL or a NUL-terminated string.
        let name = unsafe { c_str(name) }.unwrap_or_default().to_owned();
        configure(s, "spice_server_add_renderer", |_| {
            // The C server only knows "sw" too.
            if name == "sw" {
                0
            } else {
                tracing::warn!(%name, "unknown renderer");
                -1
            }
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_set_streaming_video(s: *mut CServer, value: c_int) -> c_int {
    guard("spice_server_set_streaming_video", -1, || {
        configure(s, "spice_server_set_streaming_video", |m| {
            let Some(mode) = spice_server::StreamingVideo::from_wire(value) else {
                return -1;
            };
            m.config.streaming_video = mode;
            if let Some(server) = &m.server {
                server.handle().set_streaming_video(mode);
            }
            0
        })
    })
}

/// Validates as the C library does (see [`crate::video_codecs`]): 0 when at
/// least one entry is good (the list is replaced by the good ones), -1 when
/// none is or for NULL (the list stays). Bad entries are logged as warnings.
#[no_mangle]
pub unsafe extern "C" fn spice_server_set_video_codecs(
    s: *mut CServer,
    video_codecs: *const c_char,
) -> c_int {
    guard("spice_server_set_video_codecs", -1, || {
        if video_codecs.is_null() {
            tracing::error!("spice_server_set_video_codecs: assertion 'codecs != nullptr' failed");
            return -1;
        }
        // SAFETY: non-null and NUL-terminated (spice.h contract). Bytes that
        // are not UTF-8 become U+FFFD, which no name accepts, as C refuses them.
        let input = unsafe { std::ffi::CStr::from_ptr(video_codecs) }
            .to_string_lossy()
            .into_owned();
        configure(s, "spice_server_set_video_codecs", |m| {
            let parsed = crate::video_codecs::parse(&input);
            for problem in &parsed.problems {
                tracing::warn!("{problem}");
            }
            if parsed.codecs.is_empty() {
                tracing::warn!("Failed to set video codecs, input string: '{input}'");
                return -1;
            }
            tracing::debug!(codecs = %crate::video_codecs::to_string(&parsed.codecs), "video codecs set");
            m.config.video_codecs = crate::video_codecs::for_server(&parsed.codecs);
            m.video_codecs = parsed.codecs;
            if let Some(server) = &m.server {
                server.handle().set_video_codecs(m.config.video_codecs);
            }
            0
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_get_video_codecs(s: *mut CServer) -> *const c_char {
    guard("spice_server_get_video_codecs", std::ptr::null(), || {
        // SAFETY: `s` comes from spice_server_new (spice.h contract).
        let Some(server) = (unsafe { server_ref(s) }) else {
            return std::ptr::null();
        };
        let list = server
            .main("spice_server_get_video_codecs")
            .map(|m| crate::video_codecs::to_string(&m.video_codecs))
            .unwrap_or_default();
        CString::new(list).map_or(std::ptr::null(), |c| c.into_raw() as *const c_char)
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_free_video_codecs(s: *mut CServer, video_codecs: *const c_char) {
    guard("spice_server_free_video_codecs", (), || {
        let _ = s;
        if !video_codecs.is_null() {
            // SAFETY: the string came from CString::into_raw in spice_server_get_video_codecs.
            drop(unsafe { CString::from_raw(video_codecs as *mut c_char) });
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_set_playback_compression(s: *mut CServer, enable: c_int) -> c_int {
    guard("spice_server_set_playback_compression", -1, || {
        configure(s, "spice_server_set_playback_compression", |m| {
            // Opus for playback clients that decode it; a connected client
            // whose mode changes is told at once, as by the C server.
            m.config.playback_compression = enable != 0;
            if let Some(server) = &m.server {
                server.handle().set_playback_compression(enable != 0);
            }
            0
        })
    })
}

fn agent_option(entry: &'static str, s: *mut CServer, enable: c_int) -> c_int {
    configure(s, entry, |_| {
        tracing::debug!(entry, enable, "agent option noted");
        0
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_set_agent_mouse(s: *mut CServer, enable: c_int) -> c_int {
    guard("spice_server_set_agent_mouse", -1, || {
        configure(s, "spice_server_set_agent_mouse", |m| {
            m.config.agent_mouse = enable != 0;
            if let Some(server) = &m.server {
                server.handle().set_agent_mouse(enable != 0);
            }
            0
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_set_agent_copypaste(s: *mut CServer, enable: c_int) -> c_int {
    guard("spice_server_set_agent_copypaste", -1, || {
        agent_option("spice_server_set_agent_copypaste", s, enable)
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_set_agent_file_xfer(s: *mut CServer, enable: c_int) -> c_int {
    guard("spice_server_set_agent_file_xfer", -1, || {
        agent_option("spice_server_set_agent_file_xfer", s, enable)
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_get_sock_info(
    s: *mut CServer,
    _sa: *mut libc::sockaddr,
    _salen: *mut libc::socklen_t,
) -> c_int {
    guard("spice_server_get_sock_info", -1, || {
        let _ = s;
        tracing::warn!("spice_server_get_sock_info is deprecated and not supported");
        -1
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_get_peer_info(
    s: *mut CServer,
    _sa: *mut libc::sockaddr,
    _salen: *mut libc::socklen_t,
) -> c_int {
    guard("spice_server_get_peer_info", -1, || {
        let _ = s;
        tracing::warn!("spice_server_get_peer_info is deprecated and not supported");
        -1
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_is_server_mouse(s: *mut CServer) -> c_int {
    guard("spice_server_is_server_mouse", 1, || {
        // SAFETY: `s` comes from spice_server_new.
        unsafe { server_ref(s) }.map_or(1, |server| c_int::from(server.handle.is_server_mouse()))
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_set_name(s: *mut CServer, name: *const c_char) {
    guard("spice_server_set_name", (), || {
        // SAFETY: NULL or a NUL-terminated string.
        let name = unsafe { c_str(name) }.map(str::to_owned);
        configure(s, "spice_server_set_name", |m| {
            m.config.name = name;
            0
        });
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_set_uuid(s: *mut CServer, uuid: *const u8) {
    guard("spice_server_set_uuid", (), || {
        if uuid.is_null() {
            return;
        }
        // SAFETY: spice.h passes a `const uint8_t uuid[16]`.
        let uuid: [u8; 16] = unsafe { std::ptr::read(uuid as *const [u8; 16]) };
        configure(s, "spice_server_set_uuid", |m| {
            m.config.uuid = Some(uuid);
            0
        });
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_vm_start(s: *mut CServer) {
    guard("spice_server_vm_start", (), || {
        // SAFETY: `s` comes from spice_server_new.
        if let Some(server) = unsafe { server_ref(s) } {
            server.set_vm_running(true);
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_vm_stop(s: *mut CServer) {
    guard("spice_server_vm_stop", (), || {
        // SAFETY: `s` comes from spice_server_new.
        if let Some(server) = unsafe { server_ref(s) } {
            server.set_vm_running(false);
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_get_num_clients(s: *mut CServer) -> c_int {
    guard("spice_server_get_num_clients", 0, || {
        // SAFETY: `s` comes from spice_server_new.
        let Some(server) = (unsafe { server_ref(s) }) else {
            return 0;
        };
        server
            .main("spice_server_get_num_clients")
            .and_then(|m| m.server.as_ref().map(|srv| srv.client_count() as c_int))
            .unwrap_or(0)
    })
}

/// Takes ownership of a connected socket the host accepted: a Unix stream
/// socket (QEMU's `add_client` monitor command with a passed descriptor may
/// be one) or, for anything else, TCP.
///
/// # Safety
///
/// `fd` must be an open descriptor the caller gives up.
unsafe fn client_socket(fd: c_int) -> spice_server::ClientSocket {
    use std::os::fd::{FromRawFd, OwnedFd};
    // SAFETY: the caller hands over ownership of the open descriptor.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: all-zero bytes are a valid sockaddr_storage.
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `addr` is writable for `len` bytes and `fd` is open.
    let rc = unsafe { libc::getsockname(fd, &mut addr as *mut _ as *mut libc::sockaddr, &mut len) };
    if rc == 0 && i32::from(addr.ss_family) == libc::AF_UNIX {
        spice_server::ClientSocket::Unix(std::os::unix::net::UnixStream::from(owned))
    } else {
        // Not a socket at all fails later, at its first read, with a log line.
        spice_server::ClientSocket::Tcp(std::net::TcpStream::from(owned))
    }
}
