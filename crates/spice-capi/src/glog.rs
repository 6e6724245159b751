//! Diagnostics through GLib's `g_log`, as the C library emits them.
//!
//! The C server logs with `g_log` under the domain `Spice`: QEMU, libvirt and
//! the library's own tests install GLib handlers (or rely on GLib's default
//! one, which prints warnings and criticals to stderr and debug output when
//! `G_MESSAGES_DEBUG` names the domain). Under the C ABI our `tracing`
//! events are forwarded there instead of being printed on their own; the
//! Rust API keeps plain `tracing`.
//!
//! Levels: `error!` becomes a critical (GLib's `G_LOG_LEVEL_ERROR` aborts
//! the process, which the C server only does for its own bugs), `warn!` a
//! warning, `info!` an info message and `debug!`/`trace!` debug output.

use std::ffi::{c_char, c_int, CString};
use std::fmt::Write as _;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

/// The C library's log domain.
const DOMAIN: &[u8] = b"Spice\0";

// `GLogLevelFlags` (glib/gmessages.h).
const G_LOG_LEVEL_CRITICAL: c_int = 1 << 3;
const G_LOG_LEVEL_WARNING: c_int = 1 << 4;
const G_LOG_LEVEL_INFO: c_int = 1 << 6;
const G_LOG_LEVEL_DEBUG: c_int = 1 << 7;

// libglib-2.0 is loaded by every host of the C library (QEMU, and the C
// library itself links it), so linking it adds no dependency in practice.
#[link(name = "glib-2.0")]
extern "C" {
    fn g_log(log_domain: *const c_char, log_level: c_int, format: *const c_char, ...);
}

/// The GLib level a `tracing` level maps to.
fn glib_level(level: Level) -> c_int {
    match level {
        Level::ERROR => G_LOG_LEVEL_CRITICAL,
        Level::WARN => G_LOG_LEVEL_WARNING,
        Level::INFO => G_LOG_LEVEL_INFO,
        Level::DEBUG | Level::TRACE => G_LOG_LEVEL_DEBUG,
    }
}

/// Sends one line to `g_log` in the `Spice` domain.
pub(crate) fn log(level: Level, message: &str) {
    // An interior NUL would cut the line short; none of ours has one.
    let text = CString::new(message.replace('\0', " ")).unwrap_or_default();
    // SAFETY: g_log is GLib's thread-safe logger; the domain and the "%s"
    // format are NUL-terminated literals and `text` is a NUL-terminated
    // string that outlives the call, matching the single `%s` conversion.
    unsafe {
        g_log(
            DOMAIN.as_ptr().cast(),
            glib_level(level),
            c"%s".as_ptr(),
            text.as_ptr(),
        );
    }
}

/// Formats an event as `message key=value ...`.
#[derive(Default)]
struct Line {
    message: String,
    fields: String,
}

impl Visit for Line {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={}", field.name(), value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={:?}", field.name(), value);
        }
    }
}

/// The `tracing` layer that forwards events to [`log`].
pub(crate) struct GLogLayer;

impl<S: Subscriber> Layer<S> for GLogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut line = Line::default();
        event.record(&mut line);
        line.message.push_str(&line.fields);
        log(*event.metadata().level(), &line.message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_map_as_the_c_library_emits_them() {
        assert_eq!(glib_level(Level::ERROR), G_LOG_LEVEL_CRITICAL);
        assert_eq!(glib_level(Level::WARN), G_LOG_LEVEL_WARNING);
        assert_eq!(glib_level(Level::INFO), G_LOG_LEVEL_INFO);
        assert_eq!(glib_level(Level::DEBUG), G_LOG_LEVEL_DEBUG);
        assert_eq!(glib_level(Level::TRACE), G_LOG_LEVEL_DEBUG);
    }
}
