//! Cyrus SASL (Debian's `libsasl2`, as the C server, QEMU and spice-gtk
//! use it) behind `spice-server`'s [`SaslServer`] trait.
//!
//! The library is set up once per process (`sasl_server_init`, whose
//! application name picks the configuration file `<appname>.conf`, found
//! through `SASL_CONF_PATH` or Cyrus' default directories); each connection
//! that chooses SASL gets a `sasl_conn_t` for the service "spice", with the C
//! server's security properties: on plain TCP and Unix sockets a security
//! layer of 56 bits or more and no plaintext or anonymous mechanisms, over
//! TLS anything, the cipher's strength being external.

use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};
use std::net::SocketAddr;
use std::ptr;
use std::sync::{Mutex, OnceLock};

use spice_server::sasl::{SaslConnInfo, SaslError, SaslServer, SaslSession, SaslStep, MIN_SSF};

/// `sasl_conn_t`, opaque.
#[repr(C)]
struct SaslConn {
    _private: [u8; 0],
}

/// `sasl_security_properties_t`.
#[repr(C)]
struct SecurityProperties {
    min_ssf: c_uint,
    max_ssf: c_uint,
    maxbufsize: c_uint,
    security_flags: c_uint,
    property_names: *const *const c_char,
    property_values: *const *const c_char,
}

const SASL_OK: c_int = 0;
const SASL_CONTINUE: c_int = 1;
const SASL_SUCCESS_DATA: c_uint = 0x0004;
const SASL_SEC_NOPLAINTEXT: c_uint = 0x0001;
const SASL_SEC_NOANONYMOUS: c_uint = 0x0010;
const SASL_SSF: c_int = 1;
const SASL_MAXOUTBUF: c_int = 2;
const SASL_SSF_EXTERNAL: c_int = 100;
const SASL_SEC_PROPS: c_int = 101;
/// The largest security-layer packet we accept, as the C server asks.
const MAX_BUF_SIZE: c_uint = 8192;

#[link(name = "sasl2")]
extern "C" {
    fn sasl_server_init(callbacks: *const c_void, appname: *const c_char) -> c_int;
    fn sasl_server_new(
        service: *const c_char,
        server_fqdn: *const c_char,
        user_realm: *const c_char,
        iplocalport: *const c_char,
        ipremoteport: *const c_char,
        callbacks: *const c_void,
        flags: c_uint,
        pconn: *mut *mut SaslConn,
    ) -> c_int;
    fn sasl_dispose(pconn: *mut *mut SaslConn);
    fn sasl_setprop(conn: *mut SaslConn, propnum: c_int, value: *const c_void) -> c_int;
    fn sasl_getprop(conn: *mut SaslConn, propnum: c_int, pvalue: *mut *const c_void) -> c_int;
    fn sasl_listmech(
        conn: *mut SaslConn,
        user: *const c_char,
        prefix: *const c_char,
        sep: *const c_char,
        suffix: *const c_char,
        result: *mut *const c_char,
        plen: *mut c_uint,
        pcount: *mut c_int,
    ) -> c_int;
    fn sasl_server_start(
        conn: *mut SaslConn,
        mech: *const c_char,
        clientin: *const c_char,
        clientinlen: c_uint,
        serverout: *mut *const c_char,
        serveroutlen: *mut c_uint,
    ) -> c_int;
    fn sasl_server_step(
        conn: *mut SaslConn,
        clientin: *const c_char,
        clientinlen: c_uint,
        serverout: *mut *const c_char,
        serveroutlen: *mut c_uint,
    ) -> c_int;
    fn sasl_encode(
        conn: *mut SaslConn,
        input: *const c_char,
        inputlen: c_uint,
        output: *mut *const c_char,
        outputlen: *mut c_uint,
    ) -> c_int;
    fn sasl_decode(
        conn: *mut SaslConn,
        input: *const c_char,
        inputlen: c_uint,
        output: *mut *const c_char,
        outputlen: *mut c_uint,
    ) -> c_int;
    fn sasl_errstring(saslerr: c_int, langlist: *const c_char, outlang: *mut *const c_char) -> *const c_char;
    fn sasl_errdetail(conn: *mut SaslConn) -> *const c_char;
}

/// `spice_server_set_sasl_appname`'s name, until the library is set up.
static APPNAME: Mutex<Option<String>> = Mutex::new(None);
/// The outcome of the one `sasl_server_init`, with the name it used.
static INIT: OnceLock<Result<String, String>> = OnceLock::new();
/// Held around the calls that touch Cyrus' process-wide state (its plugin
/// list, a mechanism's shared caches): Debian's libsasl2 takes no locks of
/// its own unless the application installs them, and two servers in one
/// process authenticate on two main contexts. A connection's encode and
/// decode touch only that connection and run unlocked.
static CYRUS: Mutex<()> = Mutex::new(());

fn cyrus_lock() -> std::sync::MutexGuard<'static, ()> {
    CYRUS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Notes the application name for [`init`] (default "spice", as in C).
pub(crate) fn set_appname(name: &str) {
    if let Some(Ok(used)) = INIT.get() {
        if used != name {
            tracing::warn!(%name, %used, "SASL is already set up in this process; its app name stays");
        }
    }
    *APPNAME.lock().unwrap_or_else(|e| e.into_inner()) = Some(name.to_owned());
}

/// Sets the library up, once per process, as `spice_server_init` does in C.
pub(crate) fn init() -> Result<(), String> {
    INIT.get_or_init(|| {
        let name = APPNAME
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_else(|| "spice".to_owned());
        let c_name = CString::new(name.clone()).map_err(|_| "SASL app name contains NUL".to_owned())?;
        // SAFETY: no callbacks; `c_name` is NUL-terminated and Cyrus copies it.
        let err = unsafe { sasl_server_init(ptr::null(), c_name.as_ptr()) };
        if err != SASL_OK {
            return Err(format!("failed to initialize SASL auth: {}", error_string(err)));
        }
        tracing::debug!(appname = %name, "SASL set up");
        Ok(name)
    })
    .clone()
    .map(|_| ())
}

fn error_string(err: c_int) -> String {
    // SAFETY: sasl_errstring returns a static string for any code.
    let s = unsafe { sasl_errstring(err, ptr::null(), ptr::null_mut()) };
    if s.is_null() {
        return format!("error {err}");
    }
    // SAFETY: non-null, a static NUL-terminated string.
    unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned()
}

/// Cyrus SASL as the server's [`SaslServer`], for `spice_server_set_sasl`
/// and for Rust hosts (`ServerBuilder::sasl(CyrusSasl)`). The library is set
/// up with the first session, under the app name "spice" unless
/// `spice_server_set_sasl_appname` gave another, so its configuration is
/// `spice.conf` in `SASL_CONF_PATH` or Cyrus' default directories.
#[derive(Debug, Clone, Copy, Default)]
pub struct CyrusSasl;

impl SaslServer for CyrusSasl {
    fn session(&self, conn: &SaslConnInfo) -> Result<Box<dyn SaslSession>, SaslError> {
        init().map_err(SaslError)?;
        let local = address(conn.local);
        let remote = address(conn.peer);
        let mut raw = ptr::null_mut();
        let err = {
            let _cyrus = cyrus_lock();
            // SAFETY: the strings (or NULL) are NUL-terminated and outlive the call (Cyrus
            // copies them); `raw` receives the new connection.
            unsafe {
                sasl_server_new(
                    c"spice".as_ptr(),
                    ptr::null(),
                    ptr::null(),
                    local.as_ref().map_or(ptr::null(), |a| a.as_ptr()),
                    remote.as_ref().map_or(ptr::null(), |a| a.as_ptr()),
                    ptr::null(),
                    SASL_SUCCESS_DATA,
                    &mut raw,
                )
            }
        };
        if err != SASL_OK || raw.is_null() {
            return Err(SaslError(format!(
                "sasl context setup failed: {}",
                error_string(err)
            )));
        }
        // Dropped (disposed, which locks) only after the lock below is let go.
        let session = CyrusSession { conn: raw };
        {
            let _cyrus = cyrus_lock();
            session.set_security(conn.tls_bits)?;
        }
        Ok(Box::new(session))
    }
}

/// Cyrus' "a.b.c.d;port", as the C server's `addr_to_string`. A Unix
/// socket has none: NULL, as spice-gtk passes (the C server's "localhost;"
/// makes Cyrus 2.1.28 refuse the connection with `SASL_BADPARAM`).
fn address(addr: Option<SocketAddr>) -> Option<CString> {
    addr.and_then(|a| CString::new(format!("{};{}", a.ip(), a.port())).ok())
}

/// One connection's `sasl_conn_t`.
struct CyrusSession {
    conn: *mut SaslConn,
}

// SAFETY: the connection is owned by this value alone and used through
// `&mut self` (or `&self` for reads of its properties), so by one thread at
// a time; Cyrus keeps no thread affinity for a connection.
unsafe impl Send for CyrusSession {}

impl Drop for CyrusSession {
    fn drop(&mut self) {
        let _cyrus = cyrus_lock();
        // SAFETY: the connection came from sasl_server_new and is disposed once.
        unsafe { sasl_dispose(&mut self.conn) };
    }
}

impl CyrusSession {
    /// The C server's security properties: over TLS (`tls_bits`, the
    /// external SSF) anything goes; otherwise a layer of at least
    /// [`MIN_SSF`] bits and no plaintext or anonymous mechanisms.
    fn set_security(&self, tls_bits: Option<u32>) -> Result<(), SaslError> {
        let props = match tls_bits {
            Some(bits) => {
                let ssf: c_uint = bits;
                // SAFETY: a live connection; SASL_SSF_EXTERNAL takes a sasl_ssf_t, copied.
                let err =
                    unsafe { sasl_setprop(self.conn, SASL_SSF_EXTERNAL, (&ssf as *const c_uint).cast()) };
                self.check(err, "cannot set SASL external SSF")?;
                SecurityProperties {
                    min_ssf: 0,
                    max_ssf: 0,
                    maxbufsize: MAX_BUF_SIZE,
                    security_flags: 0,
                    property_names: ptr::null(),
                    property_values: ptr::null(),
                }
            }
            None => SecurityProperties {
                min_ssf: MIN_SSF,
                max_ssf: 100_000,
                maxbufsize: MAX_BUF_SIZE,
                security_flags: SASL_SEC_NOANONYMOUS | SASL_SEC_NOPLAINTEXT,
                property_names: ptr::null(),
                property_values: ptr::null(),
            },
        };
        // SAFETY: a live connection; the properties are copied by Cyrus.
        let err = unsafe {
            sasl_setprop(
                self.conn,
                SASL_SEC_PROPS,
                (&props as *const SecurityProperties).cast(),
            )
        };
        self.check(err, "cannot set SASL security props")
    }

    fn detail(&self) -> String {
        // SAFETY: a live connection; the string lives until the next call on it.
        let s = unsafe { sasl_errdetail(self.conn) };
        if s.is_null() {
            return "unknown error".to_owned();
        }
        // SAFETY: non-null and NUL-terminated, copied at once.
        unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned()
    }

    fn check(&self, err: c_int, what: &str) -> Result<(), SaslError> {
        if err == SASL_OK {
            Ok(())
        } else {
            Err(SaslError(format!("{what}: {}", self.detail())))
        }
    }

    /// Runs a start or step call and copies its output.
    fn exchange(
        &mut self,
        call: impl FnOnce(*const c_char, c_uint, *mut *const c_char, *mut c_uint) -> c_int,
        data: Option<&[u8]>,
    ) -> Result<SaslStep, SaslError> {
        // Cyrus wants client data NUL-terminated (the wire's NUL, restored).
        let input: Option<Vec<u8>> = data.map(|d| d.iter().copied().chain([0]).collect());
        let (ptr_in, len_in) = match &input {
            Some(v) => (v.as_ptr().cast(), len(v.len() - 1)?),
            None => (ptr::null(), 0),
        };
        let mut out: *const c_char = ptr::null();
        let mut out_len: c_uint = 0;
        let err = call(ptr_in, len_in, &mut out, &mut out_len);
        if err != SASL_OK && err != SASL_CONTINUE {
            return Err(SaslError(format!("sasl step failed: {}", self.detail())));
        }
        let data = if out.is_null() || out_len == 0 {
            Vec::new()
        } else {
            // SAFETY: Cyrus returned `out_len` bytes at `out`, valid until the
            // next call on this connection; copied at once.
            unsafe { std::slice::from_raw_parts(out.cast::<u8>(), out_len as usize) }.to_vec()
        };
        Ok(if err == SASL_CONTINUE {
            SaslStep::Continue(data)
        } else {
            SaslStep::Done(data)
        })
    }

    /// Runs sasl_encode or sasl_decode on `input`, appending to `out`.
    fn code(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        f: unsafe extern "C" fn(
            *mut SaslConn,
            *const c_char,
            c_uint,
            *mut *const c_char,
            *mut c_uint,
        ) -> c_int,
        what: &str,
    ) -> Result<(), SaslError> {
        let mut result: *const c_char = ptr::null();
        let mut result_len: c_uint = 0;
        // SAFETY: a live connection; `input` is valid for its length; the
        // output pointer and length are written by Cyrus.
        let err = unsafe {
            f(
                self.conn,
                input.as_ptr().cast(),
                len(input.len())?,
                &mut result,
                &mut result_len,
            )
        };
        self.check(err, what)?;
        if !result.is_null() && result_len > 0 {
            // SAFETY: Cyrus returned `result_len` bytes at `result`, valid
            // until the next call on this connection; copied at once.
            out.extend_from_slice(unsafe {
                std::slice::from_raw_parts(result.cast::<u8>(), result_len as usize)
            });
        }
        Ok(())
    }

    fn prop_uint(&self, prop: c_int) -> Result<c_uint, SaslError> {
        let mut value: *const c_void = ptr::null();
        // SAFETY: a live connection; `value` receives a pointer into it.
        let err = unsafe { sasl_getprop(self.conn, prop, &mut value) };
        self.check(err, "cannot read a SASL property")?;
        if value.is_null() {
            return Err(SaslError("SASL property missing".into()));
        }
        // SAFETY: SASL_SSF and SASL_MAXOUTBUF point at an unsigned int.
        Ok(unsafe { *value.cast::<c_uint>() })
    }
}

fn len(n: usize) -> Result<c_uint, SaslError> {
    c_uint::try_from(n).map_err(|_| SaslError("SASL data too long".into()))
}

impl SaslSession for CyrusSession {
    fn mechanisms(&mut self) -> Result<String, SaslError> {
        let _cyrus = cyrus_lock();
        let mut list: *const c_char = ptr::null();
        // SAFETY: a live connection; the separators are static C strings;
        // the list stays valid until the next call on the connection.
        let err = unsafe {
            sasl_listmech(
                self.conn,
                ptr::null(),
                c",".as_ptr(),
                c",".as_ptr(),
                c",".as_ptr(),
                &mut list,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        self.check(err, "cannot list SASL mechanisms")?;
        if list.is_null() {
            return Err(SaslError("no SASL mechanisms".into()));
        }
        // SAFETY: non-null and NUL-terminated, copied at once.
        Ok(unsafe { CStr::from_ptr(list) }.to_string_lossy().into_owned())
    }

    fn start(&mut self, mechanism: &str, data: Option<&[u8]>) -> Result<SaslStep, SaslError> {
        let mech = CString::new(mechanism).map_err(|_| SaslError("mechanism name contains NUL".into()))?;
        let conn = self.conn;
        let _cyrus = cyrus_lock();
        self.exchange(
            // SAFETY: a live connection, a NUL-terminated name, and the
            // input and output pointers `exchange` prepared.
            |input, n, out, out_len| unsafe {
                sasl_server_start(conn, mech.as_ptr(), input, n, out, out_len)
            },
            data,
        )
    }

    fn step(&mut self, data: Option<&[u8]>) -> Result<SaslStep, SaslError> {
        let conn = self.conn;
        let _cyrus = cyrus_lock();
        self.exchange(
            // SAFETY: a live connection and the pointers `exchange` prepared.
            |input, n, out, out_len| unsafe { sasl_server_step(conn, input, n, out, out_len) },
            data,
        )
    }

    fn ssf(&self) -> Result<u32, SaslError> {
        self.prop_uint(SASL_SSF)
    }

    fn encode(&mut self, plain: &[u8], out: &mut Vec<u8>) -> Result<(), SaslError> {
        // sasl_encode refuses more than the peer's buffer at once.
        let max = (self.prop_uint(SASL_MAXOUTBUF)? as usize).max(1);
        for chunk in plain.chunks(max) {
            self.code(chunk, out, sasl_encode, "sasl_encode failed")?;
        }
        Ok(())
    }

    fn decode(&mut self, wire: &[u8], out: &mut Vec<u8>) -> Result<(), SaslError> {
        self.code(wire, out, sasl_decode, "sasl_decode failed")
    }
}
