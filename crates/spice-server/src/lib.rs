//! A memory-safe SPICE server.
//!
//! The host (a VMM, an emulator, any program with a screen) implements the
//! back-end traits of [`vdi`] for its keyboard, mouse and tablet, drives a
//! [`DisplayHandle`] with its framebuffer (and, for sound, a [`PlaybackHandle`]
//! and a [`RecordHandle`]), and builds a server with
//! [`ServerBuilder`]. The server runs either on the host's own event loop
//! through the [`Core`] trait ([`ServerBuilder::start_on`]) or on a built-in
//! loop thread ([`ServerBuilder::spawn`]). Stock SPICE clients such as
//! `remote-viewer` connect to it.
//!
//! ```no_run
//! use spice_server::{DisplayHandle, Frame, ServerBuilder};
//!
//! let display = DisplayHandle::new();
//! let pixels = vec![0x80u8; 640 * 480 * 4];
//! display
//!     .publish(&Frame { width: 640, height: 480, stride: 640 * 4, data: &pixels })
//!     .unwrap();
//! let server = ServerBuilder::new().port(5900).display(display).spawn().unwrap();
//! println!("spice://{}", server.local_addr());
//! ```

mod agent;
pub mod audio;
mod channel;
mod config;
pub mod core;
pub mod display;
mod error;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod handle;
/// A JPEG encoder of the host's for stream frames and JPEG images
/// ([`ServerBuilder::jpeg_encoder`]): a function with
/// [`jpeg::encode_rgb32`]'s contract, named for logs.
pub mod jpeg {
    pub use spice_codec::jpeg::{check_image, encode_rgb32, EncodeFn, JpegEncoder, MAX_SIDE};
    pub use spice_codec::{CodecError, ImageRef};
}
mod limits;
mod metrics;
mod runtime;
pub mod sasl;
mod server;
mod socket;
pub mod tls;
pub mod vdi;
mod waker;
mod worker;

pub use crate::audio::{
    PlaybackHandle, RecordHandle, StereoFrame, FRAMES_PER_PACKET, PLAYBACK_RATE, RECORD_RATE,
};
pub use crate::channel::migration::MigrationTarget;
pub use crate::config::{Auth, Config, ServerBuilder};
pub use crate::core::{BuiltinLoop, ChannelEvent, ChannelInfo, Core, Interest, TimerId, WatchId};
pub use crate::display::compress::{ImageCompression, WanCompression};
pub use crate::display::stream::StreamingVideo;
pub use crate::display::video::{VideoCodec, VideoCodecs};
pub use crate::display::{
    ClientMonitor, ClientMonitors, ClientMonitorsHandler, CursorImage, DeferredDraw, DisplayError,
    DisplayHandle, Frame, Head, HeadsError, Rect, SharedPixels, MAX_HEADS,
};
pub use crate::error::ServerError;
pub use crate::handle::ServerHandle;
pub use crate::limits::Limits;
pub use crate::metrics::{ChannelStats, ClientStats, DisplayStats, ImageCodec, LiveStream, ServerStats};
pub use crate::runtime::RunningServer;
pub use crate::server::migration::MigrationHost;
pub use crate::server::Server;
pub use crate::socket::{ClientSocket, Listener};
pub use crate::tls::{Security, SecurityPolicy, TlsConfig, TlsError, TlsFiles};
pub use crate::vdi::{CharDevice, Keyboard, Leds, Mouse, MouseButtons, Tablet, VmcDeviceId, VmcKind};
pub use crate::worker::{DisplayDevice, DisplayWorker, WorkerWaker};
