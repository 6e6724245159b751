//! The side-by-side display benchmark.
//!
//! One C host program (`benches/host/bench_host.c`) drives
//! `libspice-server.so.1` through `spice.h` the way QEMU's simple display does,
//! drawing content that looks like real use (a scrolling terminal, a photo
//! slideshow, a video-like region, an idle desktop with a clock). Each
//! scenario runs against our library and against Debian's C library,
//! alternating, with the real spice-gtk client on the other end
//! ([`spice_interop::gtk::SpiceGtk`]). Per run: the host's CPU seconds (all
//! threads, `/proc/PID/stat`), the bytes the client's display channel read
//! (`total-read-bytes`), the time from the host's last change to the final
//! pixels at the client, whether the last frame arrived pixel-exact (CRC-32 of
//! the client's surface against the host's), and the host's peak memory
//! (`VmHWM`).
//!
//! Run it with `cargo xtask bench [--quick] [--runs N]`; `BENCHMARKS.md` holds
//! the latest figures.

pub mod guest;
pub mod host;
pub mod procfs;
pub mod proxy;
pub mod quality;
pub mod report;
pub mod run;
