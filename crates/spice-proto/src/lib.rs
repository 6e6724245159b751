//! The SPICE wire protocol with no I/O: link stage, data framing and channel messages.
//!
//! Nothing here touches a socket, a clock or a thread. Drivers feed bytes in and
//! send the bytes that come out; time and randomness are passed in. Every length
//! and count from the peer is checked before it is used, and allocations are
//! bounded by explicit limits, so any byte sequence yields either a value or a
//! [`DecodeError`].

pub mod acceptor;
pub mod agent;
pub mod caps;
pub mod consts;
pub mod error;
pub mod framing;
pub mod link;
pub mod migrate_data;
pub mod msg;
pub mod ticket;
pub mod wire;

pub use acceptor::{LinkAcceptor, LinkEvent, LinkFailure, SaslData};
pub use caps::Caps;
pub use consts::{ChannelType, LinkError};
pub use error::DecodeError;
pub use framing::{Deframer, Frame, HeaderKind};
