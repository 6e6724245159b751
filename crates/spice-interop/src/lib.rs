//! Test harness for driving the server with real and scripted peers.
//!
//! - [`gtk::SpiceGtk`] runs the stock spice-gtk client library headless through
//!   Python GObject introspection (`clients/spice_gtk_driver.py`).
//! - [`html5::Html5`] runs spice-html5 in headless Chromium
//!   (`clients/spice_html5_driver.py`, selenium).
//! - [`raw::RawClient`] speaks the wire protocol directly, for link errors,
//!   flow control and hostile input that a well-behaved client never sends.
//! - [`devices`] records what the server hands to the host's devices.
//! - [`pattern`] makes deterministic frames to compare pixel by pixel;
//!   [`pcm`] test tones, and how close a lossy copy came back.
//! - [`qemu::Qemu`] runs unmodified QEMU with our `libspice-server.so.1` or
//!   Debian's C one, for differential tests; [`guest::LinuxGuest`] is a real
//!   Linux guest for it (Debian's kernel on the qxl DRM driver);
//!   [`xorg_guest::XorgGuest`] a Debian desktop (Xorg on the qxl driver,
//!   spice-vdagent) built from Debian's packages, booted and
//!   watched by [`desktop::Desktop`].

pub mod agent;
pub mod desktop;
pub mod devices;
pub mod gtk;
pub mod guest;
pub mod html5;
pub mod pattern;
pub mod pcm;
pub mod pki;
pub mod qemu;
pub mod qmp;
pub mod raw;
pub(crate) mod rootfs;
pub mod xorg_guest;

/// Starts `tracing` output for a test once; `RUST_LOG` picks the level.
/// Through the test harness's captured output (shown when a test fails), in
/// colour only when that goes to a terminal.
pub fn init_logging() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .try_init();
    });
}
