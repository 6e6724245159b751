//! Errors returned to the host.

/// Why the server could not start or carry out a request.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The listening socket could not be set up.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// Address asked for.
        addr: std::net::SocketAddr,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The Unix listening socket could not be set up.
    #[error("cannot listen on unix socket {}: {source}", path.display())]
    ListenUnix {
        /// Path asked for.
        path: std::path::PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// Some other I/O setup failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being set up.
        what: &'static str,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The password is longer than the protocol allows.
    #[error("password is {0} bytes, the limit is 60")]
    PasswordTooLong(usize),
    /// The server thread ended before it started.
    #[error("server thread exited during start-up")]
    ThreadExited,
}
