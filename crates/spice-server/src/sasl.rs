//! SASL authentication: what the link stage needs from a SASL library.
//!
//! The server speaks the SPICE side of the exchange (`spice-proto`'s
//! acceptor); the mechanisms themselves (DIGEST-MD5, SCRAM, GSSAPI, a
//! password database) belong to a SASL implementation behind
//! [`SaslServer`]. Under the C ABI that is Cyrus SASL, as in the C server
//! (`spice-capi`); a Rust host may bring its own with
//! [`crate::ServerBuilder::sasl`].
//!
//! As in the C server, a client on plain TCP or a Unix socket must
//! negotiate a security layer of at least [`MIN_SSF`] bits; the layer then
//! encodes everything after the authentication result. Over TLS the
//! session is told the cipher's strength and no layer is asked for.

use std::net::SocketAddr;
use std::sync::Arc;

/// The weakest security layer accepted without TLS (56: single DES, "good
/// enough for Kerberos", as the C server and spice-gtk require).
pub const MIN_SSF: u32 = 56;

/// Why a SASL operation failed; the link is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SaslError(pub String);

/// Where a session's connection comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaslConnInfo {
    /// Our end, for TCP connections.
    pub local: Option<SocketAddr>,
    /// The client's end, for TCP connections.
    pub peer: Option<SocketAddr>,
    /// The TLS cipher's strength in bits (`SASL_SSF_EXTERNAL`); `None` on
    /// plain TCP and Unix sockets, where the session must negotiate a
    /// security layer of at least [`MIN_SSF`].
    pub tls_bits: Option<u32>,
}

/// A SASL implementation: one session per connection that chose SASL.
///
/// Sessions are made and stepped on the server's main context (a blocking
/// call blocks it, so lookups should be quick: a local password database);
/// their security layer runs on whichever thread serves the channel.
pub trait SaslServer: Send + Sync {
    /// Starts the server side of an authentication for one connection.
    fn session(&self, conn: &SaslConnInfo) -> Result<Box<dyn SaslSession>, SaslError>;
}

/// Where a session is after the client's start or step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslStep {
    /// More is needed: send this challenge and wait for the next step.
    Continue(Vec<u8>),
    /// The client is authenticated; send this last data (possibly empty).
    Done(Vec<u8>),
}

/// One connection's SASL server session.
pub trait SaslSession: Send {
    /// The mechanisms offered, `,`-separated with a leading and trailing
    /// `,` (",DIGEST-MD5,SCRAM-SHA-256,"), as the C server sends them.
    fn mechanisms(&mut self) -> Result<String, SaslError>;
    /// The client's first message, with its chosen mechanism; `None` and
    /// `Some(&[])` differ for SASL.
    fn start(&mut self, mechanism: &str, data: Option<&[u8]>) -> Result<SaslStep, SaslError>;
    /// The client's next message.
    fn step(&mut self, data: Option<&[u8]>) -> Result<SaslStep, SaslError>;
    /// The negotiated security layer's strength in bits; 0 for none. Asked
    /// once authentication is done.
    fn ssf(&self) -> Result<u32, SaslError>;
    /// Encodes outgoing bytes through the security layer (appended to `out`).
    fn encode(&mut self, plain: &[u8], out: &mut Vec<u8>) -> Result<(), SaslError>;
    /// Decodes bytes received through the security layer (appended to
    /// `out`; possibly nothing until a whole packet is in).
    fn decode(&mut self, wire: &[u8], out: &mut Vec<u8>) -> Result<(), SaslError>;
}

/// The server's SASL implementation, as the configuration holds it.
#[derive(Clone)]
pub struct SaslConfig {
    pub(crate) server: Arc<dyn SaslServer>,
}

impl SaslConfig {
    /// Wraps an implementation.
    pub fn new(server: impl SaslServer + 'static) -> Self {
        Self {
            server: Arc::new(server),
        }
    }
}

impl std::fmt::Debug for SaslConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslConfig").finish_non_exhaustive()
    }
}
