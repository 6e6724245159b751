//! The software canvas of a QXL device: the draw operations a guest sends
//! (`QXLDrawable`s, parsed by `spice-qxl`) rendered into surfaces, as pure
//! functions with no I/O, no threads and no `unsafe`.
//!
//! The server keeps each surface true this way, as the C server's canvas
//! does, so what it sends clients and what `update_area` writes back into
//! guest memory are what the guest drew. Semantics follow spice-common's
//! canvas: an operation touches its bounding box cut by its clip rectangles
//! and 1-bit mask; raster operations come from `SPICE_ROPD_*` descriptors or
//! ROP3 codes; scaling, format conversion and alpha blending go through
//! pixman, the library the clients draw with, so the pixels match theirs.
//!
//! - [`Surface`], [`SurfaceMut`], [`SurfaceRef`]: pixels in the device's
//!   formats ([`Format`]), stored as the guest stores them;
//! - [`draw`]: one drawable into a target, reading other surfaces through
//!   [`Sources`].

mod composite;
mod draw;
mod error;
mod pixels;
mod region;
pub mod rop;
mod source;
mod stroke;
mod surface;
mod text;

pub use draw::{draw, Damage};
pub use error::CanvasError;
pub use surface::{Format, NoSources, Sources, Surface, SurfaceMut, SurfaceRef, MAX_SURFACE_BYTES};

#[cfg(test)]
mod tests;
