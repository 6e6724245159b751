//! Fuzzing support for the SPICE wire protocol, in the style of IronRDP's `ironrdp-fuzzing`.
//!
//! - [`oracles`] holds one function per fuzz target. Each takes arbitrary bytes,
//!   exercises the sans-IO code of `spice-proto` with them and checks invariants
//!   that must hold for every input; it panics only when one of those is broken.
//! - [`seeds`] builds well-formed inputs for each target (what a spice-gtk-like
//!   client sends), used to seed `fuzz/corpus/` and by the replay tests.
//!
//! The cargo-fuzz targets in `fuzz/` are one-liners over [`oracles`]; the tests of
//! this crate replay the committed corpus on stable, so `cargo test` catches a
//! regression on any input the fuzzers ever found interesting.

pub mod oracles;
pub mod seeds;

/// An oracle: runs one input, panicking only if an invariant is broken.
pub type Oracle = fn(&[u8]);

/// Every fuzz target: its name (the directory under `fuzz/corpus/`) and its oracle.
pub const TARGETS: &[(&str, Oracle)] = &[
    ("link_acceptor", oracles::link_acceptor),
    ("link_mess", oracles::link_mess),
    ("deframer", oracles::deframer),
    ("main_messages", oracles::main_messages),
    ("display_messages", oracles::display_messages),
    ("cursor_messages", oracles::cursor_messages),
    ("inputs_messages", oracles::inputs_messages),
    ("client_messages", oracles::client_messages),
];
