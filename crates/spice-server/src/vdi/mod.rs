//! The back-end side of the VDI interfaces: traits the host implements.
//!
//! The server calls these from its main context (the host's loop when it runs
//! through [`crate::Core`], or the built-in loop thread). Implementations must
//! not block for long: they run between network events.

mod chardev;
mod input;

pub use chardev::{CharDevice, VmcDeviceId, VmcKind};
pub use input::{Keyboard, Leds, Mouse, MouseButtons, Tablet};
