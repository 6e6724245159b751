//! Fuzzing support for the parsers of untrusted input, in the style of IronRDP's
//! `ironrdp-fuzzing`: the SPICE wire protocol (`spice-proto`, what a client
//! sends), the image codecs (`spice-codec`) and QXL command parsing
//! (`spice-qxl`, what a guest hands the server), the software canvas that
//! draws what it parses (`spice-canvas`), and the channel state machines
//! that sequences of client messages drive (`spice-server`).
//!
//! - [`oracles`] holds one function per fuzz target. Each takes arbitrary bytes,
//!   exercises the sans-IO code under test with them and checks invariants
//!   that must hold for every input; it panics only when one of those is broken.
//! - [`seeds`] builds well-formed inputs for each target (what a spice-gtk-like
//!   client sends, streams from the codecs' own encoders, QXL commands from
//!   `spice_qxl::fuzzing::fuzz_seeds`), used to seed `fuzz/corpus/` and by the
//!   replay tests.
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
    ("sasl_exchange", oracles::sasl_exchange),
    ("deframer", oracles::deframer),
    ("main_messages", oracles::main_messages),
    ("display_messages", oracles::display_messages),
    ("cursor_messages", oracles::cursor_messages),
    ("inputs_messages", oracles::inputs_messages),
    ("client_messages", oracles::client_messages),
    ("agent_monitors_config", oracles::agent_monitors_config),
    ("lz", oracles::lz),
    ("lz4", oracles::lz4),
    ("quic", oracles::quic),
    ("glz", oracles::glz),
    ("qxl_command", oracles::qxl_command),
    ("canvas_draw", oracles::canvas_draw),
    ("main_sequence", oracles::main_sequence),
    ("agent_messages", oracles::agent_messages),
    ("inputs_sequence", oracles::inputs_sequence),
    ("record_sequence", oracles::record_sequence),
    ("spicevmc_sequence", oracles::spicevmc_sequence),
    ("websocket_framing", oracles::websocket_framing),
    ("migrate_data", oracles::migrate_data),
];
