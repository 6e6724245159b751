//! What every entry point shares: panic containment, logging, C strings.

use std::ffi::{c_char, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs an entry point's body, turning a panic into `fallback` and a log line:
/// unwinding into C is undefined behaviour, and a bug here must not take the
/// VM down with it.
pub(crate) fn guard<R>(entry: &'static str, fallback: R, body: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(value) => value,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(entry, panic = %what, "internal error contained; the call did nothing");
            fallback
        }
    }
}

/// Sends `tracing` output to GLib's `g_log` (domain `Spice`) once, as the C
/// library logs (see [`crate::glog`]). `SPICE_RS_LOG` (or `RUST_LOG`)
/// selects what is forwarded; by default warnings and worse, and debug
/// output too when `G_MESSAGES_DEBUG` asks GLib to show the domain's.
pub(crate) fn init_logging() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use tracing_subscriber::layer::SubscriberExt as _;
        use tracing_subscriber::util::SubscriberInitExt as _;
        let glib_debug = std::env::var("G_MESSAGES_DEBUG")
            .is_ok_and(|v| v.split([' ', ',']).any(|d| d == "Spice" || d == "all"));
        let filter = std::env::var("SPICE_RS_LOG")
            .or_else(|_| std::env::var("RUST_LOG"))
            .unwrap_or_else(|_| if glib_debug { "debug" } else { "warn" }.into());
        let _ = tracing_subscriber::registry()
            .with(tracing_subscriber::EnvFilter::new(filter))
            .with(crate::glog::GLogLayer)
            .try_init();
    });
}

/// Borrows a C string as UTF-8 text; `None` for NULL or invalid UTF-8.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that outlives `'a`.
pub(crate) unsafe fn c_str<'a>(ptr: *const c_char) -> Option<&'a str> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: non-null and NUL-terminated per the caller's contract.
    unsafe { CStr::from_ptr(ptr) }.to_str().ok()
}
