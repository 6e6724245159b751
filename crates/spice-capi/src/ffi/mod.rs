//! `#[repr(C)]` mirrors of the structs in `spice.h` (spice-server 0.15) and the
//! parts of `spice/qxl_dev.h` the server reads. Field names follow the C names;
//! `tests/layout.rs` compares every size and offset with the installed headers.

#![allow(non_camel_case_types, non_snake_case, missing_docs)]

pub mod audio;
pub mod base;
pub mod chardev;
pub mod core;
pub mod input;
pub mod migration;
pub mod qxl;

pub use self::audio::*;
pub use self::base::*;
pub use self::chardev::*;
pub use self::core::*;
pub use self::input::*;
pub use self::migration::*;
pub use self::qxl::*;
