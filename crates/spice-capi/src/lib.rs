//! `libspice-server.so.1`: the C ABI of the SPICE server.
//!
//! This crate exports the 97 functions of the C library, with the same symbol
//! versions (`spice-server.map`), as adapters onto the Rust library in
//! `spice-server`. It holds no protocol logic. All of the workspace's `unsafe`
//! that deals with C pointers lives here, each block with a `// SAFETY:` note,
//! and every `extern "C"` function catches panics so none unwinds into C.
//!
//! Build the shared library with `cargo xtask capi`.

mod api;
mod audio;
mod chardev;
mod core_adapter;
pub mod ffi;
mod glog;
mod guard;
mod input;
mod instance;
mod jpeg;
mod migration;
mod qxl;
mod sasl;
mod server;
mod video_codecs;

pub use sasl::CyrusSasl;
pub use server::CServer;
